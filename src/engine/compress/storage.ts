/**
 * Storage accounting: per-layer bit breakdowns and the total for a whole model.
 *
 * Per technique (n weights, C codebooks/channels, survivors s, see each module for details):
 * - share:  indices n·⌈log2 k⌉, codebook C·k·16 (float16 entries; ·32 when a lossless codebook is
 *   not float16-exact), params 0, sparsity 0.
 * - prune:  indices s·32 (kept float32 values), sparsity = mask bits (see `SparsityEncoding`).
 * - prune+share: as share; pruned weights use the exact-0 entry, so sparsity is carried by the
 *   indices (and shows in the entropy-coded size).
 * - share with per-channel scales (`scaled`): as share, plus params C·16 (float16 scales; ·32 when
 *   one is outside float16's normal range).
 * - quant:  indices n·b, params C·16 below 8 bits (float16 scales, else C·32) + C·b (zero points,
 *   asymmetric only).
 * - prune+quant: as quant; pruned weights use the code of exact 0.
 * - float:  indices n·(1 + e + m), params 8 bits for the per-tensor bias of `bf16m` with a reduced
 *   exponent, else 0.
 * - lowrank: indices 32·r·(rows + cols), nothing else.
 * `entropyIndices` replaces `indices` by the Huffman-coded size of the same symbols (codebook
 * indices, integer codes, float bit patterns; for prune and lowrank it equals `indices`).
 */
import { fail } from '../errors';
import { isHalfExact, roundToHalf } from '../util/half';
import type { BitBreakdown } from './types';

/** Bits per codebook entry as stored: 16 when every entry is a float16 value, else 32. */
export function codebookEntryBits(codebook: Float32Array): number {
  return isHalfExact(codebook) ? 16 : 32;
}

/** Smallest normal float16 (2^-14): below it float16 loses precision. */
const HALF_MIN_NORMAL = 2 ** -14;

/**
 * A per-channel scale as stored: the nearest float16 when |x| is in float16's normal range (the
 * decoders then store scales in half the bytes; relative change ≤ 2^-11, and the compressors choose
 * codes for the rounded scale, so the reconstruction is exact), else fround(x).
 */
export function halfScale(x: number): number {
  const f = Math.fround(x);
  return Math.abs(f) >= HALF_MIN_NORMAL && Math.abs(f) <= 65504 ? roundToHalf(f) : f;
}

/** Bits of C per-channel scales as stored: 16 each when all are float16 values, else 32. */
export function scaleBits(scales: Float32Array): number {
  return scales.length * (isHalfExact(scales) ? 16 : 32);
}

/** Builds a {@link BitBreakdown}, computing `total` and `entropyTotal`. */
export function makeBits(parts: {
  indices: number;
  codebook?: number;
  params?: number;
  sparsity?: number;
  entropyIndices?: number;
}): BitBreakdown {
  const codebook = parts.codebook ?? 0;
  const params = parts.params ?? 0;
  const sparsity = parts.sparsity ?? 0;
  const entropyIndices = parts.entropyIndices ?? parts.indices;
  const rest = codebook + params + sparsity;
  return {
    indices: parts.indices,
    codebook,
    params,
    sparsity,
    entropyIndices,
    total: parts.indices + rest,
    entropyTotal: entropyIndices + rest,
  };
}

/** One tensor of a model for {@link totalModelBits}. */
export interface ModelTensorSize {
  readonly name: string;
  /** Number of elements. */
  readonly elements: number;
  /** Bits per element as stored in the original model (32 for float32, 16 for fp16, 64 for int64...). */
  readonly bitsPerElement: number;
}

/** A model total from {@link totalModelBits}. */
export interface ModelBits {
  /** Size of all listed tensors as they are in the original model. */
  readonly originalBits: number;
  /** Compressed layers at `bits.total`, untouched tensors at their original size. */
  readonly totalBits: number;
  /** As `totalBits` with compressed layers at `bits.entropyTotal`. */
  readonly entropyTotalBits: number;
  /** Bits of the tensors that have no result (counted at original size). */
  readonly untouchedBits: number;
  /** originalBits / totalBits (Infinity if totalBits is 0). */
  readonly ratio: number;
  /** Per tensor: original and compressed bits (equal when untouched). */
  readonly perTensor: readonly {
    name: string;
    originalBits: number;
    bits: number;
    entropyBits: number;
    compressed: boolean;
  }[];
}

/**
 * Totals a model. Every tensor in `tensors` is counted once: at its compressed size when `results`
 * has an entry for its name, else at `elements · bitsPerElement`.
 * @throws CompressError `E_PLAN` when a result names a tensor that is not listed, or a name repeats.
 */
export function totalModelBits(
  tensors: readonly ModelTensorSize[],
  results: ReadonlyMap<string, { readonly bits: BitBreakdown }>,
): ModelBits {
  const seen = new Set<string>();
  let originalBits = 0;
  let totalBits = 0;
  let entropyTotalBits = 0;
  let untouchedBits = 0;
  const perTensor: {
    name: string;
    originalBits: number;
    bits: number;
    entropyBits: number;
    compressed: boolean;
  }[] = [];
  for (const t of tensors) {
    if (seen.has(t.name))
      fail('E_PLAN', `Tensor '${t.name}' is listed twice; list each initializer once.`);
    seen.add(t.name);
    const orig = t.elements * t.bitsPerElement;
    originalBits += orig;
    const r = results.get(t.name);
    const bits = r === undefined ? orig : r.bits.total;
    const entropyBits = r === undefined ? orig : r.bits.entropyTotal;
    if (r === undefined) untouchedBits += orig;
    totalBits += bits;
    entropyTotalBits += entropyBits;
    perTensor.push({
      name: t.name,
      originalBits: orig,
      bits,
      entropyBits,
      compressed: r !== undefined,
    });
  }
  for (const name of results.keys()) {
    if (!seen.has(name))
      fail('E_PLAN', `A result names tensor '${name}', which is not in the model's tensor list.`);
  }
  return {
    originalBits,
    totalBits,
    entropyTotalBits,
    untouchedBits,
    ratio: totalBits === 0 ? Infinity : originalBits / totalBits,
    perTensor,
  };
}
