/**
 * The `onnxCompress.*` settings (contributed in `package.json`), read in one place with their
 * defaults. Values from settings files are untrusted: each is checked and falls back to its default.
 */
import * as vscode from 'vscode';

/** Technique families the engine knows, in the order quick picks show them. */
export const TECHNIQUES = ['share', 'prune', 'quant', 'float', 'lowrank'] as const;

/** Settings of the extension. */
export interface Settings {
  /** Technique families analysed and searched (default: all). */
  techniques: string[];
  /** Default budget of `Compress Model…`: max accuracy loss as a fraction (default 0.01 = 1 point). */
  maxLoss: number;
  /** Default size budget in bytes when the budget kind is size (0 = ask). */
  maxSize: number;
  /** Evaluation samples per measurement (0 = the whole dataset). Default 1000. */
  samples: number;
  /** Results folder; empty = `<model>.compress/` next to the model. */
  resultsFolder: string;
  /** Folder for exported models; empty = next to the model. */
  exportFolder: string;
  /** Dataset JSON used when the model has no `<model>.dataset.json`; empty = ask. */
  dataset: string;
  /** onnxruntime intra-op threads (0 = onnxruntime's default). */
  threads: number;
  /**
   * Levels per technique family from `onnxCompress.levels.<family>` (only families whose setting
   * is a valid non-empty list; the others keep the engine's default ladder).
   */
  levels: Record<string, number[]>;
  /** Also write the `.onnxc` archive when exporting (default true). */
  exportArchive: boolean;
}

/**
 * Valid values of each family's levels: `share` clusters 2…256, `prune` sparsity in (0, 1),
 * `quant` bits 2…8, `float` bf16 mantissa bits 0…7, `lowrank` energy kept in (0, 1].
 */
export const LEVEL_RANGES: Record<(typeof TECHNIQUES)[number], { min: number; max: number; integer: boolean; open?: 'min' | 'both' }> = {
  share: { min: 2, max: 256, integer: true },
  prune: { min: 0, max: 1, integer: false, open: 'both' },
  quant: { min: 2, max: 8, integer: true },
  float: { min: 0, max: 7, integer: true },
  lowrank: { min: 0, max: 1, integer: false, open: 'min' },
};

/** The valid, de-duplicated values of a `levels.<family>` setting, in the given order (undefined when none). */
export function checkLevels(family: (typeof TECHNIQUES)[number], v: unknown): number[] | undefined {
  if (!Array.isArray(v)) return undefined;
  const r = LEVEL_RANGES[family];
  const ok = (x: unknown): x is number =>
    typeof x === 'number' && Number.isFinite(x) && (!r.integer || Number.isInteger(x)) &&
    (r.open ? x > r.min : x >= r.min) && (r.open === 'both' ? x < r.max : x <= r.max);
  const out = [...new Set(v.filter(ok))];
  return out.length > 0 ? out : undefined;
}

function num(v: unknown, d: number, min: number, max: number): number {
  return typeof v === 'number' && Number.isFinite(v) && v >= min && v <= max ? v : d;
}

/** Reads the settings for `scope` (the model's URI, so folder settings apply). */
export function readSettings(scope?: vscode.Uri): Settings {
  const c = vscode.workspace.getConfiguration('onnxCompress', scope);
  const t = c.get<unknown>('techniques');
  const techniques = Array.isArray(t) ? t.filter((x): x is string => typeof x === 'string' && (TECHNIQUES as readonly string[]).includes(x)) : [];
  const s = (k: string): string => {
    const v = c.get<unknown>(k);
    return typeof v === 'string' ? v.trim() : '';
  };
  return {
    techniques: techniques.length > 0 ? techniques : [...TECHNIQUES],
    maxLoss: num(c.get('maxLoss'), 0.01, 0, 1),
    maxSize: num(c.get('maxSize'), 0, 0, Number.MAX_SAFE_INTEGER),
    samples: Math.round(num(c.get('samples'), 1000, 0, 1e9)),
    resultsFolder: s('resultsFolder'),
    exportFolder: s('exportFolder'),
    dataset: s('dataset'),
    threads: Math.round(num(c.get('threads'), 0, 0, 1024)),
    levels: Object.fromEntries(TECHNIQUES.flatMap((f) => {
      const l = checkLevels(f, c.get<unknown>(`levels.${f}`));
      return l ? [[f, l]] : [];
    })),
    exportArchive: c.get<unknown>('exportArchive') !== false,
  };
}
