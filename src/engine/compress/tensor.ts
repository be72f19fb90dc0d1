/**
 * Input checks and channel geometry shared by the techniques.
 */
import { fail } from '../errors';
import { radixLayout, radixLength } from '../encode/bits';
import type { CompressOptions, WeightTensor } from './types';

/** Defaults for {@link CompressOptions}; see each field there. */
export function makeCompressOptions(options: Partial<CompressOptions> = {}): CompressOptions {
  const o: CompressOptions = {
    signal: undefined,
    maxExactPoints: 4096,
    binsPerCluster: 8,
    minBins: 256,
    lloydIterations: 50,
    ...options,
  };
  for (const key of ['maxExactPoints', 'binsPerCluster', 'minBins'] as const) {
    if (!Number.isInteger(o[key]) || o[key] < 1) {
      fail('E_BAD_ARGUMENT', `Option ${key} = ${String(o[key])} must be a positive integer.`);
    }
  }
  if (!Number.isInteger(o.lloydIterations) || o.lloydIterations < 0) {
    fail(
      'E_BAD_ARGUMENT',
      `Option lloydIterations = ${String(o.lloydIterations)} must be an integer ≥ 0.`,
    );
  }
  return o;
}

/** `tensor 'name'` or `tensor` for messages. */
export function tensorLabel(t: { readonly name?: string }): string {
  return t.name === undefined ? 'tensor' : `tensor '${t.name}'`;
}

/**
 * Checks a {@link WeightTensor}: `data` is a `Float32Array` (other dtypes are refused, never
 * converted), the shape is non-negative integers whose product is `data.length`, the tensor is not
 * empty, the channel axis is valid, and every value is finite.
 * @throws CompressError `E_TENSOR_DATA` or `E_BAD_ARGUMENT` naming the tensor and the bad value.
 */
export function validateTensor(t: WeightTensor): void {
  const label = tensorLabel(t);
  if (!(t.data instanceof Float32Array)) {
    const kind = (t.data as unknown as { constructor?: { name?: string } } | null)?.constructor
      ?.name;
    fail(
      'E_TENSOR_DATA',
      `${label}: data is ${kind ?? String(t.data)}, expected Float32Array. Only float32 weights can be compressed; convert or skip the tensor.`,
    );
  }
  let n = 1;
  for (const d of t.shape) {
    if (!Number.isInteger(d) || d < 0) {
      fail('E_TENSOR_DATA', `${label}: shape [${t.shape.join(', ')}] has a bad dimension ${d}.`);
    }
    n *= d;
  }
  if (n !== t.data.length) {
    fail(
      'E_TENSOR_DATA',
      `${label}: shape [${t.shape.join(', ')}] holds ${n} elements but data has ${t.data.length}.`,
    );
  }
  if (n === 0) {
    fail(
      'E_TENSOR_DATA',
      `${label} is empty (shape [${t.shape.join(', ')}]); there is nothing to compress, skip it.`,
    );
  }
  if (
    t.shape.length > 0 &&
    (!Number.isInteger(t.channelAxis) || t.channelAxis < 0 || t.channelAxis >= t.shape.length)
  ) {
    fail(
      'E_BAD_ARGUMENT',
      `${label}: channelAxis ${t.channelAxis} is outside 0…${t.shape.length - 1} for shape [${t.shape.join(', ')}].`,
    );
  }
  const d = t.data;
  for (let i = 0; i < d.length; i++) {
    const v = d[i]!;
    if (v - v !== 0) {
      fail(
        'E_TENSOR_DATA',
        `${label}: element ${i} is ${v}; weights must be finite. Fix the model or exclude this tensor.`,
      );
    }
  }
}

/**
 * The tensor seen as `[outer, channels, inner]` around the channel axis: element
 * `(o·channels + c)·inner + i` belongs to channel `c`.
 */
export interface ChannelLayout {
  readonly outer: number;
  readonly channels: number;
  readonly inner: number;
  /** Elements per channel = outer · inner. */
  readonly perChannel: number;
}

/** The {@link ChannelLayout} of a tensor (rank 0 → one channel of one element). */
export function channelLayout(t: WeightTensor): ChannelLayout {
  if (t.shape.length === 0) return { outer: 1, channels: 1, inner: 1, perChannel: 1 };
  let outer = 1;
  let inner = 1;
  for (let a = 0; a < t.channelAxis; a++) outer *= t.shape[a]!;
  for (let a = t.channelAxis + 1; a < t.shape.length; a++) inner *= t.shape[a]!;
  const channels = t.shape[t.channelAxis]!;
  return { outer, channels, inner, perChannel: outer * inner };
}

/** Copies channel `c` into `out` (length `perChannel`), in tensor order. */
export function gatherChannel(
  data: Float32Array,
  l: ChannelLayout,
  c: number,
  out: Float32Array,
): void {
  let k = 0;
  for (let o = 0; o < l.outer; o++) {
    const base = (o * l.channels + c) * l.inner;
    for (let i = 0; i < l.inner; i++) out[k++] = data[base + i]!;
  }
}

/** Calls `f(flatIndex, k)` for the k-th element of channel `c`, in tensor order. */
export function forEachInChannel(
  l: ChannelLayout,
  c: number,
  f: (flat: number, k: number) => void,
): void {
  let k = 0;
  for (let o = 0; o < l.outer; o++) {
    const base = (o * l.channels + c) * l.inner;
    for (let i = 0; i < l.inner; i++) f(base + i, k++);
  }
}

/** Channel of each element, as an `Int32Array` in tensor order. */
export function channelOfElements(l: ChannelLayout): Int32Array {
  const out = new Int32Array(l.outer * l.channels * l.inner);
  let k = 0;
  for (let o = 0; o < l.outer; o++) {
    for (let c = 0; c < l.channels; c++) {
      out.fill(c, k, k + l.inner);
      k += l.inner;
    }
  }
  return out;
}

/** Σ (a_i - b_i)², accumulated in float64. */
export function sumSquaredError(a: Float32Array, b: Float32Array): number {
  let s = 0;
  for (let i = 0; i < a.length; i++) {
    const d = a[i]! - b[i]!;
    s += d * d;
  }
  return s;
}

/** ⌈log2 k⌉ for k ≥ 1 (0 for k = 1): bits for an index into k entries. */
export function indexBits(k: number): number {
  let b = 0;
  while (2 ** b < k) b++;
  return b;
}

/**
 * Bits of `n` indices into k entries as the ONNX file stores them: `n·⌈log2 k⌉`, or the bytes of
 * their base-k digits packed in words (`encode/bits.ts` `radixLayout`, padding included) when that
 * is fewer (k = 3: 1.6 bits per index, k = 5: 2.46, k = 6: 2.67).
 */
export function indexStreamBits(n: number, k: number): number {
  const r = radixLayout(k);
  return Math.min(n * indexBits(k), r ? 8 * radixLength(n, r) : Infinity);
}
