/**
 * The columns of the sensitivity matrix: one technique at one level ({@link LevelDef}), and which
 * of them apply to a layer. Technique families are picked with `--techniques share,prune,...`.
 */
import type { TechniqueSpec } from '../compress';
import { fail } from '../errors';
import type { OnnxModel, WeightInfo } from '../onnx';
import { lowRankUnsupported } from '../encode/lowRank';
import type { LevelDef } from './types';

/** Technique families of the sensitivity study, in column order. */
export const TECHNIQUE_FAMILIES = ['share', 'prune', 'quant', 'float', 'lowrank'] as const;

/** A technique family: `share` (k-means k), `prune` (sparsity), `quant` (bits), `float` (bf16 mantissa bits), `lowrank` (energy kept). */
export type TechniqueFamily = (typeof TECHNIQUE_FAMILIES)[number];

/** Default levels per family, mildest first (the order of a family's "ladder"). */
export const DEFAULT_LEVELS: Readonly<Record<TechniqueFamily, readonly number[]>> = {
  /**
   * Shared values per tensor (one codebook per tensor). 6 and 3 are stored as base-k digits
   * (`encode/bits.ts` `radixLayout`: 2.67 and 1.6 bits per weight), steps between 8, 4 and 2.
   */
  share: [64, 32, 16, 8, 6, 4, 3, 2],
  /** Fraction of weights zeroed (unstructured magnitude pruning). */
  prune: [0.3, 0.5, 0.7, 0.9],
  /** Bits of symmetric per-channel quantization with MSE clipping. */
  quant: [8, 7, 6, 5, 4, 3, 2],
  /** bf16 with this many mantissa bits (exponent cut to what the tensor needs). */
  float: [7, 5, 4, 3, 2, 1],
  /** Fraction of the spectral energy Σσ² kept by a truncated SVD (Gemm / MatMul). */
  lowrank: [0.999, 0.99, 0.95, 0.9, 0.8],
};

/**
 * Shared values per tensor of the scaled sharing levels (a second ladder of the `share` family):
 * one k-entry codebook for the tensor times one float16 scale per output channel
 * (`compress/scaledShare.ts`). Channels of very different magnitudes (batch norm folded into
 * convolutions, depthwise layers) need far fewer shared values this way: on the MobileNet fixture a
 * depthwise layer's output divergence at k = 4 is 5.0e-3 nats scaled and 47e-3 plain, for 2 bytes
 * per channel more.
 */
export const SCALED_SHARE_LEVELS: readonly number[] = [16, 8, 6, 4];

/** The scaled sharing level with `k` shared values ({@link SCALED_SHARE_LEVELS}). */
export function makeScaledShareLevel(k: number): LevelDef {
  return { id: `share:k=${k}s`, technique: 'share', label: `k=${k}×s`, spec: { technique: 'share', k, perChannel: false, scaled: true } };
}

/**
 * The ladder a level belongs to, for smoothing losses along it (mildest level first): its family,
 * with scaled sharing a ladder of its own.
 */
export function ladderOf(level: LevelDef): string {
  return level.spec.technique === 'share' && level.spec.scaled ? 'share/scaled' : level.technique;
}

/** The level of family `t` at `v` (see {@link DEFAULT_LEVELS} for the meaning of `v`). */
export function makeLevel(t: TechniqueFamily, v: number): LevelDef {
  let spec: TechniqueSpec;
  switch (t) {
    case 'share':
      spec = { technique: 'share', k: v, perChannel: false };
      return { id: `share:k=${v}`, technique: t, label: `k=${v}`, spec };
    case 'prune':
      spec = { technique: 'prune', pattern: 'unstructured', sparsity: v };
      return { id: `prune:${v}`, technique: t, label: `${Math.round(v * 100)}%`, spec };
    case 'quant':
      spec = { technique: 'quant', bits: v, symmetric: true, perChannel: true, clip: 'mse' };
      return { id: `quant:${v}`, technique: t, label: `${v} bit`, spec };
    case 'float':
      spec = { technique: 'float', format: 'bf16m', mantissaBits: v };
      return { id: `bf16m:${v}`, technique: t, label: `m=${v}`, spec };
    case 'lowrank':
      spec = { technique: 'lowrank', energy: v };
      return { id: `lowrank:${v}`, technique: t, label: `${+(v * 100).toFixed(1)}%E`, spec };
  }
}

/**
 * Parses `--techniques` (comma-separated families; `all` = every family).
 * @throws E_BAD_ARGUMENT naming the unknown family.
 */
export function parseTechniques(list: string | readonly string[] | undefined): TechniqueFamily[] {
  const items = (typeof list === 'string' ? list.split(',') : list ?? ['all']).map((s) => s.trim()).filter(Boolean);
  const out = new Set<TechniqueFamily>();
  for (const s of items) {
    if (s === 'all') TECHNIQUE_FAMILIES.forEach((f) => out.add(f));
    else if ((TECHNIQUE_FAMILIES as readonly string[]).includes(s)) out.add(s as TechniqueFamily);
    else fail('E_BAD_ARGUMENT', `Unknown technique '${s}' in --techniques; expected a comma-separated list of ${TECHNIQUE_FAMILIES.join(', ')} (or all).`);
  }
  if (out.size === 0) fail('E_BAD_ARGUMENT', '--techniques is empty; give at least one of ' + TECHNIQUE_FAMILIES.join(', ') + '.');
  return TECHNIQUE_FAMILIES.filter((f) => out.has(f));
}

/**
 * The levels of family `f`: its ladder at `values`, or by default {@link DEFAULT_LEVELS} plus, for
 * `share`, the scaled sharing ladder ({@link SCALED_SHARE_LEVELS}) after it. Explicit values are
 * exactly the columns asked for.
 */
export function familyLevels(f: TechniqueFamily, values?: readonly number[]): LevelDef[] {
  if (values) return values.map((v) => makeLevel(f, v));
  const out = DEFAULT_LEVELS[f].map((v) => makeLevel(f, v));
  if (f === 'share') out.push(...SCALED_SHARE_LEVELS.map(makeScaledShareLevel));
  return out;
}

/** Default levels of the given families, in column order. */
export function defaultLevels(families: readonly TechniqueFamily[]): LevelDef[] {
  return families.flatMap((f) => familyLevels(f));
}

/**
 * Why `level` does not apply to layer `w` (undefined when it does): low rank needs a Gemm/MatMul
 * (or a Conv the low-rank rewrite supports) with a single consumer in the main graph.
 */
export function levelUnsupported(model: OnnxModel, w: WeightInfo, level: LevelDef): string | undefined {
  if (level.spec.technique !== 'lowrank') return undefined;
  if (w.kind === 'other') return 'low rank applies to Conv, Gemm and MatMul weights';
  if (w.graph !== 'main' || w.source !== 'initializer') return 'low rank applies to initializers of the main graph';
  return lowRankUnsupported(model, w.name, w.shape);
}
