/**
 * Magnitude pruning: pruned weights become exactly 0.
 *
 * - `unstructured`: the p = round(sparsity · n) weights of smallest |w| are pruned; among equal |w|
 *   the lower flat index is pruned first.
 * - `n:m`: each channel's weights, taken in tensor order (for a Conv `[O, I, kh, kw]` with axis 0
 *   that is `I·kh·kw` with kw fastest; for a MatMul `[K, N]` with axis 1 it runs down K, the
 *   reduction axis), are cut into consecutive groups of m; each group keeps its n largest |w|
 *   (ties: lower position kept). A trailing group of g < m weights keeps min(n, g).
 * - `channel`: the round(sparsity · C) output channels with the smallest L1 or L2 norm are zeroed
 *   (ties: lower channel index first) and listed.
 *
 * Storage alone ({@link SparseStorage}): kept values as float32 plus the sparsity encoding:
 * bitmask n bits (unstructured), kept · ⌈log2 m⌉ position bits (n:m), C bits (channel).
 */
import { fail } from '../errors';
import { makeBits } from './storage';
import {
  channelLayout,
  indexBits,
  makeCompressOptions,
  sumSquaredError,
  tensorLabel,
  validateTensor,
} from './tensor';
import type {
  CompressOptions,
  CompressedTensor,
  PruneSpec,
  SparsityEncoding,
  WeightTensor,
} from './types';

/** A pruning decision. */
export interface PruneMask {
  /** 1 = kept, per weight in tensor order. */
  readonly keep: Uint8Array;
  /** Number of kept weights. */
  readonly kept: number;
  readonly encoding: SparsityEncoding;
  /** Bits of `encoding` for this tensor (see the module comment). */
  readonly sparsityBits: number;
}

/** Checks a prune level. @throws CompressError `E_BAD_ARGUMENT`. */
export function validatePruneSpec(spec: PruneSpec, t?: WeightTensor): void {
  const where = t ? `${tensorLabel(t)}: ` : '';
  if (spec.pattern !== 'unstructured' && spec.pattern !== 'n:m' && spec.pattern !== 'channel') {
    fail(
      'E_BAD_ARGUMENT',
      `${where}pruning pattern '${String(spec.pattern)}' is not one of unstructured, n:m, channel.`,
    );
  }
  if (spec.pattern === 'n:m') {
    const n = spec.n ?? 2;
    const m = spec.m ?? 4;
    if (!Number.isInteger(m) || m < 2 || m > 32 || !Number.isInteger(n) || n < 1 || n >= m) {
      fail(
        'E_BAD_ARGUMENT',
        `${where}N:M pruning ${String(n)}:${String(m)} needs integers 1 ≤ n < m ≤ 32 (e.g. 2:4, 4:8).`,
      );
    }
  } else if (!(spec.sparsity >= 0 && spec.sparsity < 1)) {
    fail('E_BAD_ARGUMENT', `${where}pruning sparsity ${String(spec.sparsity)} is outside [0, 1).`);
  }
  if (
    spec.pattern === 'channel' &&
    spec.norm !== undefined &&
    spec.norm !== 'l1' &&
    spec.norm !== 'l2'
  ) {
    fail('E_BAD_ARGUMENT', `${where}channel norm '${String(spec.norm)}' is not l1 or l2.`);
  }
}

/**
 * Which weights a prune spec keeps. The tensor must be valid (see `validateTensor`).
 * @throws CompressError `E_BAD_ARGUMENT` for a bad spec.
 */
export function pruneMask(tensor: WeightTensor, spec: PruneSpec): PruneMask {
  validatePruneSpec(spec, tensor);
  const data = tensor.data;
  const n = data.length;
  const keep = new Uint8Array(n).fill(1);
  if (spec.pattern === 'unstructured') {
    const p = Math.round(spec.sparsity * n);
    if (p > 0) {
      // |w| compared as the bit patterns of |w| (same order for finite values, -0 = 0).
      const mag = new Uint32Array(data.buffer, data.byteOffset, n);
      const t = smallestMagnitudeBits(mag, p - 1);
      let pruned = 0;
      for (let i = 0; i < n; i++) if ((mag[i]! & 0x7fffffff) < t) ((keep[i] = 0), pruned++);
      for (let i = 0; i < n && pruned < p; i++) if ((mag[i]! & 0x7fffffff) === t) ((keep[i] = 0), pruned++);
    }
    return { keep, kept: n - p, encoding: { kind: 'bitmask' }, sparsityBits: n };
  }
  const l = channelLayout(tensor);
  if (spec.pattern === 'n:m') {
    const nKeep = spec.n ?? 2;
    const m = spec.m ?? 4;
    const pos = new Int32Array(l.perChannel);
    const chosen = new Uint8Array(m);
    let kept = 0;
    for (let c = 0; c < l.channels; c++) {
      let k = 0;
      for (let o = 0; o < l.outer; o++) {
        const base = (o * l.channels + c) * l.inner;
        for (let i = 0; i < l.inner; i++) pos[k++] = base + i;
      }
      for (let g = 0; g < l.perChannel; g += m) {
        const size = Math.min(m, l.perChannel - g);
        const keepHere = Math.min(nKeep, size);
        chosen.fill(0);
        // n rounds of "largest remaining |w|, lowest position on ties": tiny groups, no sorting.
        for (let r = 0; r < keepHere; r++) {
          let best = -1;
          let bestAbs = -1;
          for (let q = 0; q < size; q++) {
            const a = Math.abs(data[pos[g + q]!]!);
            if (!chosen[q] && a > bestAbs) {
              best = q;
              bestAbs = a;
            }
          }
          chosen[best] = 1;
        }
        for (let q = 0; q < size; q++) if (!chosen[q]) keep[pos[g + q]!] = 0;
        kept += keepHere;
      }
    }
    return {
      keep,
      kept,
      encoding: { kind: 'n:m', n: nKeep, m },
      sparsityBits: kept * indexBits(m),
    };
  }
  const norms = new Float64Array(l.channels);
  const l2 = spec.norm === 'l2';
  for (let o = 0, p = 0; o < l.outer; o++) {
    for (let c = 0; c < l.channels; c++) {
      let s = 0;
      for (let i = 0; i < l.inner; i++, p++) s += l2 ? data[p]! * data[p]! : Math.abs(data[p]!);
      norms[c] = norms[c]! + s;
    }
  }
  const count = Math.round(spec.sparsity * l.channels);
  const byNorm = Array.from({ length: l.channels }, (_, c) => c).sort(
    (a, b) => norms[a]! - norms[b]! || a - b,
  );
  const prunedChannels = byNorm.slice(0, count).sort((a, b) => a - b);
  const isPruned = new Uint8Array(l.channels);
  for (const c of prunedChannels) isPruned[c] = 1;
  for (let o = 0, p = 0; o < l.outer; o++) {
    for (let c = 0; c < l.channels; c++, p += l.inner)
      if (isPruned[c]) keep.fill(0, p, p + l.inner);
  }
  return {
    keep,
    kept: n - count * l.perChannel,
    encoding: { kind: 'channels', prunedChannels },
    sparsityBits: l.channels,
  };
}

/**
 * The `rank`-th smallest (0-based) of the magnitude bit patterns `bits[i] & 0x7fffffff` of float32
 * values: two counting passes (the top 16 bits, then the low 16 bits within the chosen bucket)
 * instead of sorting a copy of |w|, which took seconds and 2 × 4 bytes per weight on big layers.
 */
function smallestMagnitudeBits(bits: Uint32Array, rank: number): number {
  const hist = new Float64Array(1 << 16);
  for (let i = 0; i < bits.length; i++) hist[(bits[i]! & 0x7fffffff) >>> 16]!++;
  let top = 0;
  let below = 0;
  while (below + hist[top]! <= rank) below += hist[top++]!;
  hist.fill(0);
  for (let i = 0; i < bits.length; i++) {
    const m = bits[i]! & 0x7fffffff;
    if (m >>> 16 === top) hist[m & 0xffff]!++;
  }
  let low = 0;
  while (below + hist[low]! <= rank) below += hist[low++]!;
  return ((top << 16) | low) >>> 0;
}

/** Applies a keep mask: a copy of `data` with pruned weights set to 0. */
export function applyMask(data: Float32Array, keep: Uint8Array): Float32Array {
  const out = new Float32Array(data.length);
  for (let i = 0; i < data.length; i++) out[i] = keep[i] ? data[i]! : 0;
  return out;
}

/**
 * Pruning alone. Storage: kept values (float32, tensor order) + the sparsity encoding.
 * Bits: `kept·32 + sparsityBits`; `entropyIndices` = `indices` (float values are not entropy coded).
 */
export function pruneWeights(
  tensor: WeightTensor,
  spec: PruneSpec,
  options: Partial<CompressOptions> = {},
): CompressedTensor {
  validateTensor(tensor);
  makeCompressOptions(options);
  const mask = pruneMask(tensor, spec);
  const weights = applyMask(tensor.data, mask.keep);
  const values = new Float32Array(mask.kept);
  for (let i = 0, j = 0; i < weights.length; i++) if (mask.keep[i]) values[j++] = weights[i]!;
  return {
    spec,
    weights,
    storage: { kind: 'sparse', values, mask: mask.keep, encoding: mask.encoding },
    bits: makeBits({ indices: mask.kept * 32, sparsity: mask.sparsityBits }),
    sse: sumSquaredError(tensor.data, weights),
  };
}
