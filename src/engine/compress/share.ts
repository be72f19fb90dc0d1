/**
 * Weight sharing: every weight is replaced by the nearest of k shared values (a codebook), chosen
 * by 1-D k-means (see `kmeans1d.ts`) per tensor or per output channel.
 *
 * Storage ({@link CodebookStorage}): n indices of ⌈log2 k⌉ bits (fewer as base-k digits, see
 * `indexStreamBits`), C codebooks of k values
 * (C = 1 per tensor, C = channels per channel). The cluster means are rounded to the nearest float16
 * (a relative change below 2^-11, far inside the clustering error), so a codebook is stored in 16
 * bits per entry; when k-means is lossless (no more distinct values than k) the values stay
 * float32. Bits: `indexStreamBits(n, k) + C·k·16` (·32 for float32 codebooks); entropy-coded indices as in
 * `huffman.ts` (one Huffman code for the whole tensor, alphabet k).
 *
 * When k exceeds the number of distinct values (of the tensor, or of the busiest channel), k
 * shrinks to that number: the codebook holds the distinct values, the error is 0, and the stored
 * `k` is the effective one (documented no-op, not an error). Per channel, a channel with fewer
 * distinct values than the codebook size repeats its last entry to fill its codebook.
 */
import { fail, throwIfAborted } from '../errors';
import { scaledShareWeights } from './scaledShare';
import { huffmanBits } from './huffman';
import { SortedWeights, kmeans1d } from './kmeans1d';
import { codebookEntryBits, makeBits } from './storage';
import { roundToHalf } from '../util/half';
import {
  channelLayout,
  gatherChannel,
  indexStreamBits,
  makeCompressOptions,
  tensorLabel,
  validateTensor,
} from './tensor';
import { pruneMask, validatePruneSpec } from './prune';
import type {
  CodebookStorage,
  CompressOptions,
  CompressedTensor,
  PruneShareSpec,
  ShareSpec,
  TechniqueSpec,
  WeightTensor,
} from './types';

/** Checks a share level: k an integer in 2…256. */
export function validateShareSpec(spec: ShareSpec, t?: WeightTensor): void {
  if (!Number.isInteger(spec.k) || spec.k < 2 || spec.k > 256) {
    fail(
      'E_BAD_ARGUMENT',
      `${t ? tensorLabel(t) + ': ' : ''}weight sharing k = ${String(spec.k)} is not an integer in 2…256.`,
    );
  }
}

/**
 * Weight sharing of one tensor at one k. See the module comment for storage and edge cases.
 * @throws CompressError `E_TENSOR_DATA` for bad tensors, `E_BAD_ARGUMENT` for k outside 2…256.
 */
export function shareWeights(
  tensor: WeightTensor,
  spec: ShareSpec,
  options: Partial<CompressOptions> = {},
): CompressedTensor {
  if (spec.scaled && !spec.perChannel) return scaledShareWeights(tensor, spec, options);
  return shareSweep(tensor, [spec.k], spec.perChannel, options)[0]!;
}

/**
 * Weight sharing at several k with one sort and one DP (per tensor or per channel): the cost of a
 * sweep is about one sort plus, per k, one pass over the weights to assign indices.
 * Results on the histogram path can differ slightly from single-k calls (the histogram is sized
 * for the largest k).
 * @returns one result per entry of `ks`, in order.
 */
export function shareSweep(
  tensor: WeightTensor,
  ks: readonly number[],
  perChannel: boolean,
  options: Partial<CompressOptions> = {},
): CompressedTensor[] {
  validateTensor(tensor);
  for (const k of ks) validateShareSpec({ technique: 'share', k, perChannel }, tensor);
  return shareCore(tensor, ks, perChannel, makeCompressOptions(options), null).map((r, i) =>
    finish(tensor, { technique: 'share', k: ks[i]!, perChannel }, r),
  );
}

/**
 * Pruning, then weight sharing of the kept weights: index 0 is an exact 0 in every codebook (used
 * by all pruned weights) and the kept weights are clustered into k - 1 values (indices 1…k-1);
 * pruned weights are not part of the clustering. Bits as weight sharing (the sparsity is carried
 * by index 0 and shows in `entropyIndices`).
 */
export function pruneShareWeights(
  tensor: WeightTensor,
  spec: PruneShareSpec,
  options: Partial<CompressOptions> = {},
): CompressedTensor {
  validateTensor(tensor);
  validatePruneSpec(spec.prune, tensor);
  validateShareSpec(spec.share, tensor);
  const opts = makeCompressOptions(options);
  const mask = pruneMask(tensor, spec.prune);
  return finish(
    tensor,
    spec,
    shareCore(tensor, [spec.share.k], spec.share.perChannel, opts, mask.keep)[0]!,
  );
}

/** A codebook clustering before bit accounting. */
export interface ShareParts {
  readonly storage: CodebookStorage;
  readonly weights: Float32Array;
  /** Occurrences of each index. */
  readonly counts: Uint32Array;
  /** Σ (w - ŵ)², float64. */
  readonly sse: number;
}

/**
 * The shared core. With `keep` (1 = kept weight), pruned weights get index 0 whose entry is exactly
 * 0 in every codebook, and only kept weights are clustered, into k - 1 values at indices 1…k-1.
 * Tensor must already be validated.
 */
export function shareCore(
  tensor: WeightTensor,
  ks: readonly number[],
  perChannel: boolean,
  opts: CompressOptions,
  keep: Uint8Array | null,
): ShareParts[] {
  const data = tensor.data;
  const n = data.length;
  const off = keep ? 1 : 0;
  const clusterKs = ks.map((k) => k - off);
  const layout = perChannel
    ? channelLayout(tensor)
    : { outer: 1, channels: 1, inner: n, perChannel: n };
  const groups = layout.channels;
  // codebooks[r][c] = sorted float32 entries of group c (without the zero entry) for request r.
  const books: Float32Array[][] = ks.map(() => []);
  const buf = new Float32Array(layout.perChannel);
  const keepBuf = keep ? new Uint8Array(layout.perChannel) : null;
  const sws: SortedWeights[] = [];
  let prunedCount = 0;
  let prunedSq = 0;
  if (keep) {
    for (let i = 0; i < n; i++) {
      if (keep[i] === 0) {
        prunedCount++;
        prunedSq += data[i]! * data[i]!;
      }
    }
  }
  for (let c = 0; c < groups; c++) {
    if (c % 16 === 0) throwIfAborted(opts.signal);
    let values: Float32Array;
    if (groups === 1) {
      values = data;
    } else {
      gatherChannel(data, layout, c, buf);
      values = buf;
    }
    if (keep) {
      let kept: Float32Array;
      if (groups === 1) {
        kept = filterKept(data, keep);
      } else {
        gatherMask(keep, layout, c, keepBuf!);
        kept = filterKept(buf, keepBuf!);
      }
      values = kept;
    }
    const sw = SortedWeights.from(values);
    sws.push(sw);
    const res = kmeans1d(sw, clusterKs, opts);
    res.forEach((r, i) => books[i]!.push(Float32Array.from(r.centers, r.k >= sw.distinct ? Math.fround : roundToHalf)));
  }
  return ks.map((_, r) => {
    const perGroup = books[r]!;
    let kEff = 0;
    for (const b of perGroup) kEff = Math.max(kEff, b.length + off);
    kEff = Math.max(kEff, 1);
    const codebook = new Float32Array(groups * kEff);
    for (let c = 0; c < groups; c++) {
      const b = perGroup[c]!;
      codebook.set(b, c * kEff + off);
      const last = b.length > 0 ? b[b.length - 1]! : 0;
      codebook.fill(last, c * kEff + off + b.length, (c + 1) * kEff);
    }
    const indices = new Uint8Array(n);
    const weights = new Float32Array(n);
    const counts = new Uint32Array(kEff);
    const assigners = perGroup.map((b) => makeAssigner(b));
    // Counts and SSE come from the sorted groups (O(k log n) each): the weights of entry j are the
    // sorted run (mid[j-1], mid[j]], the same rule assignRun applies element by element.
    let sse = prunedSq;
    counts[0] = counts[0]! + prunedCount;
    for (let c = 0; c < groups; c++) sse += runStats(sws[c]!, assigners[c]!, off, counts);
    // Walk the tensor in order; each run of `inner` elements belongs to one channel.
    for (let o = 0, p = 0; o < layout.outer; o++) {
      for (let c = 0; c < groups; c++, p += layout.inner) {
        assignRun(assigners[c]!, data, p, p + layout.inner, off, indices, weights);
      }
    }
    if (keep) {
      for (let i = 0; i < n; i++) {
        if (keep[i] === 0) {
          indices[i] = 0;
          weights[i] = 0;
        }
      }
    }
    const storage: CodebookStorage = {
      kind: 'codebook',
      k: kEff,
      axis: perChannel ? (tensor.shape.length === 0 ? 0 : tensor.channelAxis) : null,
      codebook,
      indices,
      zeroIndex: keep ? 0 : null,
    };
    return { storage, weights, counts, sse };
  });
}

/** Bits and SSE for a {@link ShareParts}. */
export function finish(
  tensor: WeightTensor,
  spec: TechniqueSpec,
  parts: ShareParts,
): CompressedTensor {
  const s = parts.storage;
  const n = tensor.data.length;
  const groups = s.codebook.length / s.k;
  const entropy = huffmanBits(parts.counts);
  return {
    spec,
    weights: parts.weights,
    storage: s,
    bits: makeBits({
      indices: indexStreamBits(n, s.k),
      codebook: groups * s.k * codebookEntryBits(s.codebook),
      entropyIndices: entropy.total,
    }),
    sse: parts.sse,
  };
}

function filterKept(values: Float32Array, keep: Uint8Array): Float32Array {
  let m = 0;
  for (let i = 0; i < values.length; i++) m += keep[i]!;
  const out = new Float32Array(m);
  for (let i = 0, j = 0; i < values.length; i++) if (keep[i]) out[j++] = values[i]!;
  return out;
}

function gatherMask(
  mask: Uint8Array,
  l: { outer: number; channels: number; inner: number },
  c: number,
  out: Uint8Array,
): void {
  let k = 0;
  for (let o = 0; o < l.outer; o++) {
    const base = (o * l.channels + c) * l.inner;
    for (let i = 0; i < l.inner; i++) out[k++] = mask[base + i]!;
  }
}

/**
 * Nearest-entry lookup for one ascending codebook (ties at a midpoint go to the lower entry).
 * Index of x = #{midpoints < x}. With cell(x) = clamp(⌊(x - lo)·scale⌋, 0, cells), which is
 * monotone in x even in floating point, every midpoint in an earlier cell is < x and every one in a
 * later cell is > x; so the answer is `before[cell]` plus the midpoints of x's own cell below x.
 */
interface Assigner {
  readonly book: Float32Array;
  /** Midpoints between consecutive entries, float64. */
  readonly mid: Float64Array;
  readonly lo: number;
  readonly scale: number;
  readonly cells: number;
  /** before[cell] = number of midpoints in earlier cells. */
  readonly before: Int32Array;
  /** first[cell] = smallest midpoint in the cell, +Infinity if none. */
  readonly first: Float64Array;
}

function makeAssigner(book: Float32Array): Assigner {
  const m = book.length;
  const mid = new Float64Array(Math.max(m - 1, 0));
  for (let j = 0; j + 1 < m; j++) mid[j] = (book[j]! + book[j + 1]!) / 2;
  const lo = m > 0 ? book[0]! : 0;
  const hi = m > 0 ? book[m - 1]! : 0;
  const cells = m > 1 && hi > lo ? Math.min(1 << 16, 64 * m) : 0;
  const scale = cells > 0 ? cells / (hi - lo) : 0;
  const before = new Int32Array(cells + 1);
  const first = new Float64Array(cells + 1).fill(Infinity);
  const cellOf = (x: number): number => {
    const c = (x - lo) * scale;
    return c <= 0 ? 0 : c >= cells ? cells : Math.floor(c);
  };
  for (let j = mid.length - 1; j >= 0; j--) first[cellOf(mid[j]!)] = mid[j]!;
  for (let c = 1, j = 0; c <= cells; c++) {
    while (j < mid.length && cellOf(mid[j]!) < c) j++;
    before[c] = j;
  }
  return { book, mid, lo, scale, cells, before, first };
}

/**
 * Assigns `data[from, to)` to the nearest entry, writing `indices` (offset by `off`) and
 * `weights`. Pruning and statistics are applied afterwards by {@link finishAssignment}, which keeps
 * this loop tight (it dominates a sharing sweep).
 */
function assignRun(
  a: Assigner,
  data: Float32Array,
  from: number,
  to: number,
  off: number,
  indices: Uint8Array,
  weights: Float32Array,
): void {
  const { book, mid, lo, scale, cells, before, first } = a;
  const last = book.length - 1;
  if (last < 0) {
    indices.fill(0, from, to);
    weights.fill(0, from, to);
    return;
  }
  for (let i = from; i < to; i++) {
    const x = data[i]!;
    const t = (x - lo) * scale;
    const cell = t <= 0 ? 0 : t >= cells ? cells : t | 0;
    // Branch-free for the usual single midpoint per cell; the loop only runs for crowded cells.
    let j = before[cell]! + ((x > first[cell]!) as unknown as number);
    while (j < last && mid[j]! < x) j++;
    indices[i] = j + off;
    weights[i] = book[j]!;
  }
}

/** Adds the per-entry counts of one sorted group to `counts` and returns its Σ(w - ŵ)². */
function runStats(sw: SortedWeights, a: Assigner, off: number, counts: Uint32Array): number {
  const m = a.book.length;
  let sse = 0;
  let start = 0;
  for (let j = 0; j < m; j++) {
    const end = j < m - 1 ? sw.upperBound(a.mid[j]!, start) : sw.n;
    const cnt = end - start;
    if (cnt > 0) {
      const v = a.book[j]! - sw.shift;
      const sum = sw.prefixSum(end) - sw.prefixSum(start);
      const e = sw.prefixSq(end) - sw.prefixSq(start) - 2 * v * sum + cnt * v * v;
      sse += e > 0 ? e : 0;
      counts[j + off] = counts[j + off]! + cnt;
    }
    start = end;
  }
  return sse;
}
