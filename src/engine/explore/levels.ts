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
  /** Shared values per tensor (one codebook per tensor). */
  share: [64, 32, 16, 8, 4, 2],
  /** Fraction of weights zeroed (unstructured magnitude pruning). */
  prune: [0.3, 0.5, 0.7, 0.9],
  /** Bits of symmetric per-channel quantization with MSE clipping. */
  quant: [8, 7, 6, 5, 4, 3, 2],
  /** bf16 with this many mantissa bits (exponent cut to what the tensor needs). */
  float: [7, 5, 4, 3, 2, 1],
  /** Fraction of the spectral energy Σσ² kept by a truncated SVD (Gemm / MatMul). */
  lowrank: [0.999, 0.99, 0.95, 0.9, 0.8],
};

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

/** Default levels of the given families, in column order. */
export function defaultLevels(families: readonly TechniqueFamily[]): LevelDef[] {
  return families.flatMap((f) => DEFAULT_LEVELS[f].map((v) => makeLevel(f, v)));
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
