/**
 * Types shared by every compression technique: the input weight tensor, the technique specs
 * (levels), and the result with an exact storage description that a later encoder turns into bytes.
 *
 * Conventions used throughout `compress/`:
 * - "tensor order" is the row-major (C order) element order of `WeightTensor.data`.
 * - A "channel" is one index along `WeightTensor.channelAxis` (the output-channel axis).
 * - All bit counts are exact integers (no fractional bits), except where a field says otherwise.
 */
import type { LayerHessian } from './gptq';

/** The role of a weight tensor in the graph, which decides what techniques make sense. */
export type WeightRole =
  /** A Conv weight, shape `[out, in/group, kh, kw]` (output-channel axis 0). */
  | 'conv'
  /** A Gemm `B` input (axis of outputs is 1 when `transB = 0`, 0 when `transB = 1`). */
  | 'gemm'
  /** A MatMul constant right-hand side `[K, N]` (output axis 1). */
  | 'matmul'
  /** Anything else (biases, embeddings, norms...). Low rank is refused for this role. */
  | 'other';

/** A float32 weight tensor to compress. Never modified by any function in `compress/`. */
export interface WeightTensor {
  /** The values, row-major. Must be a `Float32Array` with no NaN/Inf and at least one element. */
  readonly data: Float32Array;
  /** Dimensions; their product must equal `data.length`. A scalar is `[]` (one element). */
  readonly shape: readonly number[];
  /** What the tensor is used for. */
  readonly role: WeightRole;
  /** The output-channel axis (0 ≤ axis < rank; ignored for rank-0 tensors, which have 1 channel). */
  readonly channelAxis: number;
  /** Initializer name, quoted in error messages. */
  readonly name?: string;
}

/** k-means weight sharing: each weight replaced by the nearest of k shared values. */
export interface ShareSpec {
  readonly technique: 'share';
  /** Number of shared values per codebook, an integer in 2…256. */
  readonly k: number;
  /** One codebook per output channel (true) or one for the whole tensor (false). */
  readonly perChannel: boolean;
  /**
   * Scaled sharing (ignored when `perChannel`): one codebook for the weights divided by a float32
   * scale per output channel, so w ≈ fround(scale[c] · codebook[index]). Costs one float per
   * channel and suits layers whose channels differ in scale (batch norm folded into convolutions).
   * Default false.
   */
  readonly scaled?: boolean;
  /** Calibrated rounding on the same grid (needs `CompressOptions.calibration`; see `gptq.ts`). */
  readonly calibrated?: boolean;
}

/** Sparsity patterns for pruning. */
export type PrunePattern =
  /** Smallest-magnitude weights anywhere in the tensor. */
  | 'unstructured'
  /** In every group of `m` consecutive weights of a channel row, keep the `n` largest. */
  | 'n:m'
  /** Whole output channels with the smallest L1/L2 norm. */
  | 'channel';

/** Magnitude pruning: pruned weights become exactly 0. */
export interface PruneSpec {
  readonly technique: 'prune';
  readonly pattern: PrunePattern;
  /**
   * Fraction of weights (unstructured) or channels (channel) to zero, in [0, 1).
   * Ignored for `n:m`, whose sparsity is `1 - n/m`.
   */
  readonly sparsity: number;
  /** Kept weights per group for `n:m` (1 ≤ n < m). Default 2. */
  readonly n?: number;
  /** Group size for `n:m` (2 ≤ m ≤ 32). Default 4. */
  readonly m?: number;
  /** Channel norm for `channel` pruning. Default `'l1'`. */
  readonly norm?: 'l1' | 'l2';
}

/** Uniform (affine) integer quantization. */
export interface QuantSpec {
  readonly technique: 'quant';
  /** Bits per code, an integer in 2…8. */
  readonly bits: number;
  /**
   * Symmetric: codes in [-(2^(b-1) - 1), 2^(b-1) - 1], zero point 0 ("narrow range").
   * Asymmetric: codes in [0, 2^b - 1] with an integer zero point, real 0 exactly representable.
   */
  readonly symmetric: boolean;
  /** Scale (and zero point) per output channel instead of per tensor. */
  readonly perChannel: boolean;
  /**
   * How the range is chosen: `minmax` uses the observed min/max; `mse` searches clipping ratios
   * α = 1 - i/100, i = 0…79, of that range and keeps the one with least squared error.
   */
  readonly clip: 'minmax' | 'mse';
  /** Calibrated rounding on the same grid (needs `CompressOptions.calibration`; see `gptq.ts`). */
  readonly calibrated?: boolean;
}

/** Reduced-precision float formats. */
export type FloatFormatName =
  /** IEEE binary16: 1+5+10 bits, bias 15, subnormals, overflow → ±Inf. */
  | 'fp16'
  /** bfloat16: 1+8+7 bits, bias 127, subnormals, overflow → ±Inf. */
  | 'bf16'
  /**
   * bfloat16 with the mantissa cut to `mantissaBits` (0…7) and optionally the exponent cut to
   * `exponentBits` with a per-tensor bias chosen so the largest weight fits; saturates, no Inf/NaN.
   */
  | 'bf16m'
  /** OCP/ONNX FLOAT8E4M3FN: 1+4+3 bits, bias 7, no Inf, max 448; overflow saturates (ONNX saturate=1). */
  | 'fp8e4m3'
  /** OCP/ONNX FLOAT8E5M2: 1+5+2 bits, bias 15, max 57344; overflow saturates (ONNX saturate=1). */
  | 'fp8e5m2';

/** Rounding to a reduced float format (round to nearest, ties to even). */
export interface FloatSpec {
  readonly technique: 'float';
  readonly format: FloatFormatName;
  /** For `bf16m`: mantissa bits 0…7. Default 7. */
  readonly mantissaBits?: number;
  /**
   * For `bf16m`: exponent bits 1…8. Default: the fewest bits whose normal range covers every
   * non-zero |w| of the tensor (at most 8).
   */
  readonly exponentBits?: number;
}

/** Truncated SVD of the weight viewed as a `[channels, rest]` matrix. */
export interface LowRankSpec {
  readonly technique: 'lowrank';
  /** Rank to keep (1 ≤ rank; capped at min(rows, cols)). Give `rank` or `energy`. */
  readonly rank?: number;
  /** Keep the smallest rank whose Σσ² reaches this fraction (0, 1] of the total. */
  readonly energy?: number;
}

/** Pruning first, then weight sharing on the survivors (pruned weights use an exact 0 entry). */
export interface PruneShareSpec {
  readonly technique: 'prune+share';
  readonly prune: PruneSpec;
  readonly share: ShareSpec;
}

/** Pruning first, then quantization of the survivors (pruned weights use the code of exact 0). */
export interface PruneQuantSpec {
  readonly technique: 'prune+quant';
  readonly prune: PruneSpec;
  readonly quant: QuantSpec;
}

/** A technique and its level. Discriminated on `technique`. */
export type TechniqueSpec =
  ShareSpec | PruneSpec | QuantSpec | FloatSpec | LowRankSpec | PruneShareSpec | PruneQuantSpec;

/** The `technique` names. */
export type Technique = TechniqueSpec['technique'];

/** How pruned positions are encoded when they are stored apart from the values. */
export type SparsityEncoding =
  /** One bit per weight in tensor order, 1 = kept. Bits: `n`. */
  | { readonly kind: 'bitmask' }
  /**
   * Per group of `m` consecutive weights of a channel row (see `prune.ts`), the in-group position
   * of each kept weight, `⌈log2 m⌉` bits each. Bits: `Σ_groups kept(group) · ⌈log2 m⌉`.
   */
  | { readonly kind: 'n:m'; readonly n: number; readonly m: number }
  /** One bit per output channel, 1 = kept. Bits: `channels`. */
  | { readonly kind: 'channels'; readonly prunedChannels: readonly number[] };

/** Storage of a tensor as codebook(s) + one index per weight. */
export interface CodebookStorage {
  readonly kind: 'codebook';
  /** Entries per codebook. Index bits per weight: ⌈log2 k⌉. */
  readonly k: number;
  /** `null`: one codebook for the tensor; otherwise one codebook per index along this axis. */
  readonly axis: number | null;
  /** `codebooks · k` values, codebook `c` at `[c·k, (c+1)·k)`, ascending within a codebook. */
  readonly codebook: Float32Array;
  /** One index per weight in tensor order; weight i is `codebook[c(i)·k + indices[i]]`. */
  readonly indices: Uint8Array | Uint16Array;
  /** When pruned first: index whose codebook entry is exactly 0 in every codebook (it is 0). */
  readonly zeroIndex: number | null;
  /**
   * Scaled sharing: one float32 scale per index along `axis`; then `axis` of the storage is null
   * (one codebook) and weight i is `fround(scale.values[c(i)] · codebook[indices[i]])`.
   */
  readonly scale?: { readonly axis: number; readonly values: Float32Array };
}

/** Storage as integer codes with per-tensor or per-channel scale / zero point. */
export interface QuantStorage {
  readonly kind: 'quant';
  readonly bits: number;
  readonly symmetric: boolean;
  /** `null`: per tensor; otherwise per index along this axis. */
  readonly axis: number | null;
  /** Scales (float32), one per tensor or channel. */
  readonly scale: Float32Array;
  /** Zero points (all 0 when symmetric), one per tensor or channel. */
  readonly zeroPoint: Int32Array;
  /**
   * One code per weight in tensor order: signed (`Int8Array`) when symmetric, unsigned
   * (`Uint8Array`) otherwise. Weight = `fround(scale[c] · (code - zeroPoint[c]))`, exactly as
   * ONNX DequantizeLinear computes it in float32.
   */
  readonly codes: Int8Array | Uint8Array;
}

/** A binary float format: 1 sign bit, `exponentBits`, `mantissaBits`, value as IEEE-754. */
export interface FloatFormat {
  readonly exponentBits: number;
  readonly mantissaBits: number;
  /** Exponent bias: a normal value is `(-1)^s · 2^(E - bias) · (1 + M / 2^m)`. */
  readonly bias: number;
  /** Whether the all-ones exponent encodes Inf/NaN (IEEE-like). False: it holds normal values. */
  readonly ieeeSpecials: boolean;
  /**
   * For formats without IEEE specials: whether the single all-ones pattern (exponent and mantissa)
   * is NaN, as in FLOAT8E4M3FN; then the largest mantissa at the top exponent is not a value.
   */
  readonly nanAllOnes: boolean;
  /** Overflow rule: `inf` (IEEE, only if `ieeeSpecials`) or `saturate` to ±max finite. */
  readonly overflow: 'inf' | 'saturate';
}

/** Storage as reduced-precision float bit patterns. */
export interface FloatStorage {
  readonly kind: 'float';
  readonly format: FloatFormatName;
  readonly spec: FloatFormat;
  /** One bit pattern per weight in tensor order (sign | exponent | mantissa, right-aligned). */
  readonly codes: Uint8Array | Uint16Array;
}

/** Storage as two factors, `W_matrix ≈ left · right`. */
export interface LowRankStorage {
  readonly kind: 'lowrank';
  readonly rank: number;
  /** Rows = size of the channel axis. */
  readonly rows: number;
  /** Columns = product of the other dimensions, in their original order. */
  readonly cols: number;
  /** The channel axis that was moved to the front to form the matrix. */
  readonly axis: number;
  /** `rows × rank`, row-major. */
  readonly left: Float32Array;
  /** `rank × cols`, row-major. */
  readonly right: Float32Array;
  /** All min(rows, cols) singular values, descending (float64, for reports). */
  readonly singularValues: Float64Array;
}

/** Storage as kept float32 values plus a sparsity encoding (pruning alone). */
export interface SparseStorage {
  readonly kind: 'sparse';
  /** Kept values in tensor order. */
  readonly values: Float32Array;
  /** 1 = kept, one per weight in tensor order (always given; what is *counted* is `encoding`). */
  readonly mask: Uint8Array;
  readonly encoding: SparsityEncoding;
}

/** How a compressed tensor is stored. Discriminated on `kind`. */
export type StorageDescription =
  CodebookStorage | QuantStorage | FloatStorage | LowRankStorage | SparseStorage;

/**
 * Exact storage size in bits. `total = indices + codebook + params + sparsity`.
 * `entropyTotal = total - indices + entropyIndices`.
 */
export interface BitBreakdown {
  /** Per-element payload: codebook indices, integer codes, float bit patterns, kept float32 values, or low-rank factor entries. */
  readonly indices: number;
  /** Codebook values (float32 each). */
  readonly codebook: number;
  /** Per-tensor / per-channel parameters (scales, zero points, exponent bias). */
  readonly params: number;
  /** Sparsity encoding (mask, N:M positions, channel list). */
  readonly sparsity: number;
  /** `indices` after Huffman coding, including the code table (see `huffman.ts`). */
  readonly entropyIndices: number;
  readonly total: number;
  readonly entropyTotal: number;
}

/** The result of compressing one tensor. */
export interface CompressedTensor {
  /** The spec that produced this result. */
  readonly spec: TechniqueSpec;
  /** The reconstruction, same length and order as the input; exactly what the storage decodes to. */
  readonly weights: Float32Array;
  readonly storage: StorageDescription;
  readonly bits: BitBreakdown;
  /**
   * Σ (w - ŵ)² over all weights, in float64 (weight sharing computes it from sorted prefix sums,
   * which equals the element-wise sum up to float64 rounding).
   */
  readonly sse: number;
}

/** Options common to all techniques. Build with `makeCompressOptions`. */
export interface CompressOptions {
  /** Cancels long work; checked once per channel or chunk. Default none. */
  readonly signal: AbortSignal | undefined;
  /**
   * Weight sharing: run the exact DP on the sorted distinct values when there are at most this many;
   * otherwise use a quantile histogram (see `kmeans1d.ts`). Default 4096.
   */
  readonly maxExactPoints: number;
  /** Weight sharing, histogram path: histogram bins per cluster (bins = max(minBins, this·k)). Default 8. */
  readonly binsPerCluster: number;
  /** Weight sharing, histogram path: minimum number of histogram bins. Default 256. */
  readonly minBins: number;
  /** Weight sharing, histogram path: maximum Lloyd passes after the DP. Default 50. */
  readonly lloydIterations: number;
  /**
   * Input statistics of the layer (`eval/calibration.ts`), used by specs with `calibrated: true`
   * (sharing and quantization round with error feedback on the same grid, `gptq.ts`). Default none.
   */
  readonly calibration?: LayerHessian;
}
