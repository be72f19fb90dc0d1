/**
 * Scaled weight sharing: w ≈ fround(s_c · q[index]) with one k-entry codebook q shared by the whole
 * tensor and one scale s_c per output channel (a float16 value when in float16's normal range, so
 * it is stored in 2 bytes: `halfScale`).
 *
 * Per-tensor sharing wastes clusters when channels have very different magnitudes (batch norm
 * folded into convolutions multiplies each output channel by its own factor); per-channel codebooks
 * fix that at C·k floats. Scaling costs C floats and recovers most of the accuracy.
 *
 * Algorithm (deterministic): s_c = max|w| over channel c (1 for an all-zero channel); the exact 1-D
 * k-means (`kmeans1d.ts`) of the normalised values w / s_c gives q; then two alternations of
 * (assign each weight to the q nearest w / s_c, refit s_c by least squares Σ w·q / Σ q², refit each
 * q by least squares over its weights Σ s·w / Σ s²). SSE never increases in the refits; it is
 * reported exactly for the float32 reconstruction.
 *
 * Bits: n·⌈log2 k⌉ indices + k·16 codebook (entries rounded to float16) + C·16 scales (C·32 when
 * one is not a float16 value).
 */
import { fail } from '../errors';
import { huffmanBits } from './huffman';
import { kmeans1d, SortedWeights } from './kmeans1d';
import { codebookEntryBits, halfScale, makeBits, scaleBits } from './storage';
import { roundToHalf } from '../util/half';
import { channelLayout, channelOfElements, indexStreamBits, makeCompressOptions, tensorLabel, validateTensor } from './tensor';
import type { CompressedTensor, CompressOptions, ShareSpec, WeightTensor } from './types';

/** Nearest entry of the ascending `q` to `x` (binary search on midpoints; ties to the lower). */
function nearest(q: Float32Array, x: number): number {
  let lo = 0;
  let hi = q.length - 1;
  while (lo < hi) {
    const mid = (lo + hi) >> 1;
    if (x > (q[mid]! + q[mid + 1]!) / 2) lo = mid + 1;
    else hi = mid;
  }
  return lo;
}

/** Scaled sharing of one tensor; see the module comment. */
export function scaledShareWeights(tensor: WeightTensor, spec: ShareSpec, options: Partial<CompressOptions> = {}): CompressedTensor {
  validateTensor(tensor);
  if (!Number.isInteger(spec.k) || spec.k < 2 || spec.k > 256) {
    fail('E_BAD_ARGUMENT', `${tensorLabel(tensor)}: weight sharing k = ${String(spec.k)} is not an integer in 2…256.`);
  }
  const opts = makeCompressOptions(options);
  const w = tensor.data;
  const n = w.length;
  const layout = tensor.shape.length === 0 ? { outer: 1, channels: 1, inner: 1, perChannel: 1 } : channelLayout(tensor);
  const C = layout.channels;
  const ch = channelOfElements(layout);
  const scale = new Float32Array(C);
  for (let i = 0; i < n; i++) scale[ch[i]!] = Math.max(scale[ch[i]!]!, Math.abs(w[i]!));
  for (let c = 0; c < C; c++) scale[c] = scale[c] === 0 ? 1 : halfScale(scale[c]!);
  const v = new Float32Array(n);
  for (let i = 0; i < n; i++) v[i] = w[i]! / scale[ch[i]!]!;
  opts.signal?.throwIfAborted();
  const km = kmeans1d(SortedWeights.from(v), [spec.k], opts)[0]!;
  const k = Math.max(1, km.k);
  const q = Float32Array.from(km.centers, Math.fround);
  const indices = new Uint8Array(n);
  for (let round = 0; round < 2; round++) {
    opts.signal?.throwIfAborted();
    for (let i = 0; i < n; i++) indices[i] = nearest(q, w[i]! / scale[ch[i]!]!);
    const num = new Float64Array(C);
    const den = new Float64Array(C);
    for (let i = 0; i < n; i++) {
      const qi = q[indices[i]!]!;
      num[ch[i]!] += w[i]! * qi;
      den[ch[i]!] += qi * qi;
    }
    for (let c = 0; c < C; c++) if (den[c]! > 0 && num[c]! !== 0) scale[c] = halfScale(num[c]! / den[c]!);
    const qn = new Float64Array(k);
    const qd = new Float64Array(k);
    for (let i = 0; i < n; i++) {
      const s = scale[ch[i]!]!;
      qn[indices[i]!] += s * w[i]!;
      qd[indices[i]!] += s * s;
    }
    for (let j = 0; j < k; j++) if (qd[j]! > 0) q[j] = Math.fround(qn[j]! / qd[j]!);
    // Keep the codebook ascending (refits can swap neighbours) and remap indices.
    const order = Array.from(q.keys()).sort((a, b) => q[a]! - q[b]! || a - b);
    const rank = new Uint8Array(k);
    order.forEach((src, dst) => (rank[src] = dst));
    const sorted = Float32Array.from(order, (j) => q[j]!);
    q.set(sorted);
    for (let i = 0; i < n; i++) indices[i] = rank[indices[i]!]!;
  }
  const codebook = new Float32Array(Math.max(2, k));
  codebook.set(q.map(roundToHalf));
  if (k < codebook.length) codebook.fill(codebook[k - 1]!, k);
  const weights = new Float32Array(n);
  const counts = new Float64Array(codebook.length);
  let sse = 0;
  for (let i = 0; i < n; i++) {
    const r = Math.fround(scale[ch[i]!]! * codebook[indices[i]!]!);
    weights[i] = r;
    counts[indices[i]!]++;
    sse += (w[i]! - r) ** 2;
  }
  const kk = codebook.length;
  return {
    spec,
    weights,
    storage: { kind: 'codebook', k: kk, axis: null, codebook, indices, zeroIndex: null, scale: { axis: tensor.shape.length === 0 ? 0 : tensor.channelAxis, values: scale } },
    bits: makeBits({ indices: indexStreamBits(n, kk), codebook: kk * codebookEntryBits(codebook), params: scaleBits(scale), entropyIndices: huffmanBits(counts).total }),
    sse,
  };
}
