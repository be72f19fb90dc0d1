/**
 * One entry point for every technique: {@link compressTensor} looks the spec's `technique` up in
 * {@link COMPRESSORS} and runs it. Adding a technique means adding its spec to `TechniqueSpec` and
 * one entry here.
 */
import { calibrateRounding, type LayerHessian } from './gptq';
import { fail } from '../errors';
import { floatWeights, validateFloatSpec } from './floatFormat';
import { lowRankWeights, validateLowRankSpec } from './lowRank';
import { pruneWeights, validatePruneSpec } from './prune';
import { pruneQuantizeWeights, quantizeWeights, validateQuantSpec } from './quantize';
import { pruneShareWeights, shareWeights, validateShareSpec } from './share';
import type {
  CompressOptions,
  CompressedTensor,
  Technique,
  TechniqueSpec,
  WeightTensor,
} from './types';

/** A compression technique: checks a level and applies it to one tensor. */
export interface Compressor<S extends TechniqueSpec = TechniqueSpec> {
  readonly technique: S['technique'];
  /** One-line description for UIs and reports. */
  readonly summary: string;
  /** Throws `E_BAD_ARGUMENT` for an invalid level (optionally naming the tensor). */
  validate(spec: S, tensor?: WeightTensor): void;
  /** Compresses; never modifies the tensor. */
  apply(tensor: WeightTensor, spec: S, options?: Partial<CompressOptions>): CompressedTensor;
}

type Registry = { readonly [T in Technique]: Compressor<Extract<TechniqueSpec, { technique: T }>> };

const REGISTRY: Registry = {
  share: {
    technique: 'share',
    summary: 'k-means weight sharing (k = 2…256 shared values, per tensor or per channel)',
    validate: validateShareSpec,
    apply: shareWeights,
  },
  prune: {
    technique: 'prune',
    summary: 'magnitude pruning (unstructured, N:M, or whole channels by L1/L2 norm)',
    validate: validatePruneSpec,
    apply: pruneWeights,
  },
  quant: {
    technique: 'quant',
    summary:
      'uniform integer quantization (2–8 bits, symmetric/asymmetric, min/max or MSE clipping)',
    validate: validateQuantSpec,
    apply: quantizeWeights,
  },
  float: {
    technique: 'float',
    summary: 'reduced floating point (fp16, bf16, bf16 with m mantissa / e exponent bits, fp8)',
    validate: validateFloatSpec,
    apply: floatWeights,
  },
  lowrank: {
    technique: 'lowrank',
    summary: 'truncated SVD of conv/gemm/matmul weights (by rank or kept energy)',
    validate: validateLowRankSpec,
    apply: lowRankWeights,
  },
  'prune+share': {
    technique: 'prune+share',
    summary: 'pruning, then weight sharing of the kept weights (exact zero entry)',
    validate: (s, t) => {
      validatePruneSpec(s.prune, t);
      validateShareSpec(s.share, t);
    },
    apply: pruneShareWeights,
  },
  'prune+quant': {
    technique: 'prune+quant',
    summary: 'pruning, then quantization of the kept weights (exact zero code)',
    validate: (s, t) => {
      validatePruneSpec(s.prune, t);
      validateQuantSpec(s.quant, t);
    },
    apply: pruneQuantizeWeights,
  },
};

/** Every technique, keyed by name. */
export const COMPRESSORS: ReadonlyMap<Technique, Compressor> = new Map(
  Object.values(REGISTRY).map((c) => [c.technique, c as unknown as Compressor]),
);

/**
 * Whether a spec asks for calibrated rounding (`compress/gptq.ts`): share and quant with
 * `calibrated: true`, and prune+share / prune+quant whose sharing / quantization says so.
 */
export function isCalibrated(spec: TechniqueSpec): boolean {
  const inner = spec.technique === 'prune+share' ? spec.share : spec.technique === 'prune+quant' ? spec.quant : spec;
  return (inner.technique === 'share' || inner.technique === 'quant') && inner.calibrated === true;
}

/** Calibrated results per layer statistics and spec (treat results as read-only). */
const calibratedMemo = new WeakMap<LayerHessian, Map<string, CompressedTensor>>();

/**
 * Compresses one tensor with one technique and level.
 * @throws CompressError `E_BAD_ARGUMENT` for an unknown technique or bad level, `E_TENSOR_DATA` for
 * a bad tensor (not float32, empty, NaN/Inf, shape mismatch).
 */
export function compressTensor(
  tensor: WeightTensor,
  spec: TechniqueSpec,
  options: Partial<CompressOptions> = {},
): CompressedTensor {
  const c = COMPRESSORS.get(spec?.technique);
  if (c === undefined) {
    fail(
      'E_BAD_ARGUMENT',
      `Unknown technique '${String((spec as { technique?: unknown } | undefined)?.technique)}'; expected one of ${[...COMPRESSORS.keys()].join(', ')}.`,
    );
  }
  // Calibrated rounding needs the layer's input statistics; without them (a consumer that
  // `eval/calibration.ts` does not support) the plain rounding stands.
  const calibrated = isCalibrated(spec) && options.calibration !== undefined;
  if (!calibrated) return c.apply(tensor, spec, options);
  // Calibrated rounding costs seconds per large layer and compress rebuilds every candidate:
  // results are kept per layer statistics (one object per layer of one model) and spec.
  let memo = calibratedMemo.get(options.calibration!);
  if (!memo) calibratedMemo.set(options.calibration!, (memo = new Map()));
  const key = JSON.stringify(spec);
  const hit = memo.get(key);
  if (hit && hit.weights.length === tensor.data.length) return hit;
  const ct = calibrateRounding(tensor, c.apply(tensor, spec, options), options.calibration!, options.signal);
  memo.set(key, ct);
  return ct;
}
