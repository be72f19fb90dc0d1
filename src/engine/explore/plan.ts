/**
 * Compression plans: which technique and level each layer gets. The JSON form (README, "Plan
 * files") is what `apply --plan` reads and what `compress` writes for each candidate:
 *
 * ```json
 * { "default": { "technique": "share", "k": 16 },
 *   "layers": { "conv1.weight": { "technique": "none" },
 *               "fc.weight": { "technique": "prune+share", "sparsity": 0.7, "k": 16 } } }
 * ```
 * Layers are named by their weight initializer; `default` applies to every compressible layer not
 * listed (no default = leave them alone).
 */
import { COMPRESSORS, type TechniqueSpec, type WeightTensor } from '../compress';
import { CompressError, fail } from '../errors';
import type { WeightInfo } from '../onnx';

/** One layer's entry in a plan file. Unlisted fields take the defaults documented per field. */
export interface LayerPlan {
  /** `none`, `share`, `prune`, `quant`, `float`, `lowrank`, `prune+share` or `prune+quant`. */
  technique: string;
  /** share: clusters 2…256 (default 16). */
  k?: number;
  /** share / quant: one codebook or scale per output channel (default: share false, quant true). */
  perChannel?: boolean;
  /** share: one codebook times a scale per output channel (default false); see `compress/scaledShare.ts`. */
  scaled?: boolean;
  /**
   * share, quant: calibrated rounding on the same grid (error feedback through the layer's input
   * statistics, `compress/gptq.ts`; default false). Needs data when the plan is applied.
   */
  calibrated?: boolean;
  /** prune: fraction of weights (or channels) zeroed, [0, 1) (default 0.5). */
  sparsity?: number;
  /** prune: `unstructured` (default), `n:m` or `channel`. */
  pattern?: 'unstructured' | 'n:m' | 'channel';
  /** prune n:m: kept per group (default 2) and group size (default 4). */
  n?: number;
  m?: number;
  /** prune channel: `l1` (default) or `l2`. */
  norm?: 'l1' | 'l2';
  /** quant: bits 2…8 (default 8). */
  bits?: number;
  /** quant: symmetric (default true). */
  symmetric?: boolean;
  /** quant: `minmax` or `mse` (default `mse`). */
  clip?: 'minmax' | 'mse';
  /** float: `fp16`, `bf16`, `bf16m`, `fp8e4m3`, `fp8e5m2` (default `bf16`). */
  format?: 'fp16' | 'bf16' | 'bf16m' | 'fp8e4m3' | 'fp8e5m2';
  /** float bf16m: mantissa bits 0…7 and exponent bits 1…8 (default: what the tensor needs). */
  mantissaBits?: number;
  exponentBits?: number;
  /** lowrank: rank to keep, or the fraction of energy (Σσ²) to keep. */
  rank?: number;
  energy?: number;
}

/** A plan file. */
export interface PlanFile {
  default?: LayerPlan;
  layers?: Record<string, LayerPlan>;
  /**
   * Correct the biases of the compressed Conv / Gemm layers for the shift of their output means
   * (`eval/biasCorrection.ts`; default false). Needs data when the plan is applied.
   */
  biasCorrection?: boolean;
  /**
   * With `biasCorrection`: calibrated layers are compressed again in graph order from the inputs
   * they get in the compressed model (`explore/calibrate.ts` `calibrateSequentially`; default
   * false). Needs data when the plan is applied.
   */
  sequentialCalibration?: boolean;
}

/** The keys a plan file may have. */
const PLAN_KEYS: readonly string[] = ['default', 'layers', 'biasCorrection', 'sequentialCalibration', '$schema', 'comment'];

const KEYS: Record<string, readonly string[]> = {
  none: [],
  share: ['k', 'perChannel', 'scaled', 'calibrated'],
  prune: ['sparsity', 'pattern', 'n', 'm', 'norm'],
  quant: ['bits', 'symmetric', 'perChannel', 'clip', 'calibrated'],
  float: ['format', 'mantissaBits', 'exponentBits'],
  lowrank: ['rank', 'energy'],
  'prune+share': ['sparsity', 'pattern', 'n', 'm', 'norm', 'k', 'perChannel', 'calibrated'],
  'prune+quant': ['sparsity', 'pattern', 'n', 'm', 'norm', 'bits', 'symmetric', 'perChannel', 'clip', 'calibrated'],
};

/** JSON type of every plan key (for validation before the compressors see them). */
const VALUE_TYPES: Record<string, 'number' | 'boolean' | 'string'> = {
  k: 'number', perChannel: 'boolean', calibrated: 'boolean', scaled: 'boolean', sparsity: 'number', pattern: 'string', n: 'number', m: 'number', norm: 'string',
  bits: 'number', symmetric: 'boolean', clip: 'string', format: 'string', mantissaBits: 'number', exponentBits: 'number',
  rank: 'number', energy: 'number',
};

/** Technique names a plan accepts. */
export const PLAN_TECHNIQUES = Object.keys(KEYS);

function def<T>(v: T | undefined, d: T): T {
  return v === undefined ? d : v;
}

/**
 * Turns a plan entry into a technique spec (`null` for `none`).
 * @throws E_PLAN for unknown techniques or keys.
 */
export function layerSpec(p: LayerPlan, where: string): TechniqueSpec | null {
  if (typeof p !== 'object' || p === null || typeof p.technique !== 'string') {
    fail('E_PLAN', `${where}: expected an object with a "technique" (one of ${PLAN_TECHNIQUES.join(', ')}).`);
  }
  const allowed = KEYS[p.technique];
  if (!allowed) fail('E_PLAN', `${where}: unknown technique '${p.technique}'; expected one of ${PLAN_TECHNIQUES.join(', ')}.`);
  for (const [key, v] of Object.entries(p)) {
    if (key !== 'technique' && !allowed.includes(key)) {
      fail('E_PLAN', `${where}: '${key}' does not apply to technique '${p.technique}' (it takes: ${allowed.join(', ') || 'nothing'}).`);
    }
    // JSON gives any type; the compressors expect these (a null or "16" would slip through their range checks).
    const want = key === 'technique' ? 'string' : VALUE_TYPES[key];
    if (want && typeof v !== want) fail('E_PLAN', `${where}: '${key}' must be a ${want}, got ${JSON.stringify(v)}.`);
    if (want === 'number' && !Number.isFinite(v)) fail('E_PLAN', `${where}: '${key}' must be a finite number, got ${JSON.stringify(v)}.`);
  }
  const prune = {
    technique: 'prune' as const,
    pattern: def(p.pattern, 'unstructured' as const),
    sparsity: def(p.sparsity, p.pattern === 'n:m' ? 0 : 0.5),
    ...(p.n !== undefined ? { n: p.n } : {}),
    ...(p.m !== undefined ? { m: p.m } : {}),
    ...(p.norm !== undefined ? { norm: p.norm } : {}),
  };
  const share = { technique: 'share' as const, k: def(p.k, 16), perChannel: def(p.perChannel, false), ...(p.scaled ? { scaled: true } : {}) };
  const quant = { technique: 'quant' as const, bits: def(p.bits, 8), symmetric: def(p.symmetric, true), perChannel: def(p.perChannel, true), clip: def(p.clip, 'mse' as const) };
  const cal = p.calibrated ? { calibrated: true } : {};
  switch (p.technique) {
    case 'none':
      return null;
    case 'share':
      return { ...share, ...cal };
    case 'prune':
      return prune;
    case 'quant':
      return { ...quant, ...cal };
    case 'float':
      return {
        technique: 'float',
        format: def(p.format, 'bf16' as const),
        ...(p.mantissaBits !== undefined ? { mantissaBits: p.mantissaBits } : {}),
        ...(p.exponentBits !== undefined ? { exponentBits: p.exponentBits } : {}),
      };
    case 'lowrank':
      if (p.rank === undefined && p.energy === undefined) fail('E_PLAN', `${where}: lowrank needs "rank" or "energy".`);
      return { technique: 'lowrank', ...(p.rank !== undefined ? { rank: p.rank } : {}), ...(p.energy !== undefined ? { energy: p.energy } : {}) };
    case 'prune+share':
      return { technique: 'prune+share', prune, share: { ...share, perChannel: def(p.perChannel, false), ...cal } };
    default:
      return { technique: 'prune+quant', prune, quant: { ...quant, ...cal } };
  }
}

/** Plan entry for a spec (inverse of {@link layerSpec}). */
export function specToLayerPlan(spec: TechniqueSpec | null): LayerPlan {
  if (!spec) return { technique: 'none' };
  switch (spec.technique) {
    case 'share':
      return { technique: 'share', k: spec.k, perChannel: spec.perChannel, ...(spec.scaled ? { scaled: true } : {}), ...(spec.calibrated ? { calibrated: true } : {}) };
    case 'prune':
      return stripUndefined({ technique: 'prune', sparsity: spec.sparsity, pattern: spec.pattern, n: spec.n, m: spec.m, norm: spec.norm });
    case 'quant':
      return { technique: 'quant', bits: spec.bits, symmetric: spec.symmetric, perChannel: spec.perChannel, clip: spec.clip, ...(spec.calibrated ? { calibrated: true } : {}) };
    case 'float':
      return stripUndefined({ technique: 'float', format: spec.format, mantissaBits: spec.mantissaBits, exponentBits: spec.exponentBits });
    case 'lowrank':
      return stripUndefined({ technique: 'lowrank', rank: spec.rank, energy: spec.energy });
    case 'prune+share':
      return stripUndefined({ technique: 'prune+share', sparsity: spec.prune.sparsity, pattern: spec.prune.pattern, n: spec.prune.n, m: spec.prune.m, norm: spec.prune.norm, k: spec.share.k, perChannel: spec.share.perChannel, calibrated: spec.share.calibrated || undefined });
    case 'prune+quant':
      return stripUndefined({ technique: 'prune+quant', sparsity: spec.prune.sparsity, pattern: spec.prune.pattern, n: spec.prune.n, m: spec.prune.m, norm: spec.prune.norm, bits: spec.quant.bits, symmetric: spec.quant.symmetric, perChannel: spec.quant.perChannel, clip: spec.quant.clip, calibrated: spec.quant.calibrated || undefined });
  }
}

function stripUndefined(o: Record<string, unknown>): LayerPlan {
  return Object.fromEntries(Object.entries(o).filter(([, v]) => v !== undefined)) as unknown as LayerPlan;
}

/** A short label for a spec, e.g. `share k=16`, `prune 70% + share k=16`, `quant 4b`. */
export function specLabel(spec: TechniqueSpec | null): string {
  if (!spec) return 'none';
  switch (spec.technique) {
    case 'share':
      return `share k=${spec.k}${spec.perChannel ? '/ch' : spec.scaled ? ' scaled' : ''}${spec.calibrated ? ' cal' : ''}`;
    case 'prune':
      return spec.pattern === 'n:m' ? `prune ${spec.n ?? 2}:${spec.m ?? 4}` : `prune ${Math.round(spec.sparsity * 100)}%${spec.pattern === 'channel' ? ' ch' : ''}`;
    case 'quant':
      return `quant ${spec.bits}b${spec.symmetric ? '' : ' asym'}${spec.perChannel ? '' : ' /t'}${spec.calibrated ? ' cal' : ''}`;
    case 'float':
      return spec.format === 'bf16m' ? `bf16 m=${spec.mantissaBits ?? 7}${spec.exponentBits !== undefined ? ` e=${spec.exponentBits}` : ''}` : spec.format;
    case 'lowrank':
      return spec.rank !== undefined ? `lowrank r=${spec.rank}` : `lowrank ${Math.round(spec.energy! * 100)}%E`;
    case 'prune+share':
      return `${specLabel(spec.prune)} + ${specLabel(spec.share)}`;
    case 'prune+quant':
      return `${specLabel(spec.prune)} + ${specLabel(spec.quant)}`;
  }
}

/**
 * Resolves a plan against a model's weights: every compressible weight gets the `default` spec
 * unless listed. Validates every spec against its tensor (levels in range, low rank only where it
 * applies) before anything is computed.
 * @throws E_PLAN naming the layer: unknown layers (with the list of known ones), layers that are
 * not compressible (and why), levels out of range.
 */
export function resolvePlan(plan: PlanFile, weights: readonly WeightInfo[], source = 'plan'): Map<string, TechniqueSpec> {
  if (typeof plan !== 'object' || plan === null || Array.isArray(plan)) fail('E_PLAN', `${source}: a plan is a JSON object with "default" and/or "layers".`);
  for (const key of Object.keys(plan)) {
    if (!PLAN_KEYS.includes(key)) fail('E_PLAN', `${source}: unknown key '${key}' (expected "default", "layers", "biasCorrection" and "sequentialCalibration").`);
  }
  for (const key of ['biasCorrection', 'sequentialCalibration'] as const) {
    if (plan[key] !== undefined && typeof plan[key] !== 'boolean') fail('E_PLAN', `${source}: "${key}" must be true or false, got ${JSON.stringify(plan[key]).slice(0, 40)}.`);
  }
  if (plan.sequentialCalibration && !plan.biasCorrection) fail('E_PLAN', `${source}: "sequentialCalibration" works within the bias correction pass: set "biasCorrection": true as well, or remove it.`);
  if (plan.layers !== undefined && (typeof plan.layers !== 'object' || plan.layers === null || Array.isArray(plan.layers))) {
    fail('E_PLAN', `${source}: "layers" must be an object mapping layer names to entries, got ${JSON.stringify(plan.layers).slice(0, 80)}.`);
  }
  const byName = new Map(weights.map((w) => [w.name, w]));
  const out = new Map<string, TechniqueSpec>();
  const listed = new Set(Object.keys(plan.layers ?? {}));
  const compressible = weights.filter((w) => w.compressible);
  for (const name of listed) {
    const w = byName.get(name);
    if (!w) {
      const known = compressible.map((x) => x.name);
      fail('E_PLAN', `${source}: layer '${name}' is not a weight of this model. Compressible layers: ${known.slice(0, 30).join(', ')}${known.length > 30 ? `, … (${known.length})` : ''}.`);
    }
    const spec = layerSpec(plan.layers![name]!, `${source}: layer '${name}'`);
    if (spec && !w.compressible) fail('E_PLAN', `${source}: layer '${name}' cannot be compressed (${w.reason}). Remove it from the plan or set "technique": "none".`);
    if (spec) out.set(name, validated(spec, w, source));
  }
  if (plan.default) {
    const spec = layerSpec(plan.default, `${source}: default`);
    if (spec) {
      for (const w of compressible) {
        if (listed.has(w.name)) continue;
        if (spec.technique === 'lowrank' && w.kind === 'other') continue;
        out.set(w.name, validated(spec, w, source));
      }
    }
  }
  return out;
}

function validated(spec: TechniqueSpec, w: WeightInfo, source: string): TechniqueSpec {
  const c = COMPRESSORS.get(spec.technique)!;
  const probe: WeightTensor = { data: new Float32Array(w.params), shape: w.shape, role: w.kind, channelAxis: w.channelAxis, name: w.name };
  try {
    c.validate(spec as never, probe);
  } catch (e) {
    if (e instanceof CompressError) fail('E_PLAN', `${source}: layer '${w.name}': ${e.message}`, e);
    throw e;
  }
  return spec;
}
