/**
 * Uniform (affine) integer quantization with b = 2…8 bits, per tensor or per output channel.
 *
 * For one group (the tensor, or one channel), with round(·) = round half to even (as ONNX
 * QuantizeLinear) and clip ratio α (1 for `minmax`):
 * - symmetric: qmax = 2^(b-1) - 1, scale = s(α·max|w| / qmax), zero point 0,
 *   code = clamp(round(w / scale), -qmax, qmax).
 * - asymmetric: lo = α·min(min w, 0), hi = α·max(max w, 0) (0 is always in range so it is exact),
 *   scale = s((hi - lo) / (2^b - 1)), zp = clamp(round(-lo / scale), 0, 2^b - 1),
 *   code = clamp(round(w / scale) + zp, 0, 2^b - 1).
 * - reconstruction: ŵ = fround(scale · (code - zp)) (what DequantizeLinear computes in float32).
 * - s(x): fround(x) at 8 bits; below, the nearest float16 when x is in its normal range (stored
 *   as float16 by the packed decoder: half the bytes), else fround(x).
 * - a group whose range is 0 (all zeros) gets scale 1, zero point 0, codes 0 — exact.
 * - `mse` clipping tries α = 1 - i/100 for i = 0…79 and keeps the α with the least Σ(w - ŵ)²
 *   (the first one on ties), separately per group. Each candidate's error is computed exactly from
 *   the sorted group and prefix sums (the codes of a sorted group form runs), O(2^b log n) per α.
 *
 * Bits: indices n·b; params G·16 below 8 bits when every scale is a float16 (else G·32) + G·b
 * (zero points, asymmetric only) for G groups;
 * entropy-coded indices: Huffman over the 2^b codes.
 * With pruning first (`prune+quant`), ranges come from the kept weights only and pruned weights
 * get the code of exact 0 (0, or zp).
 */
import { fail, throwIfAborted } from '../errors';
import { huffmanBits } from './huffman';
import { pruneMask, validatePruneSpec } from './prune';
import { halfScale, makeBits, scaleBits } from './storage';
import {
  channelLayout,
  makeCompressOptions,
  sumSquaredError,
  tensorLabel,
  validateTensor,
} from './tensor';
import type {
  CompressOptions,
  CompressedTensor,
  PruneQuantSpec,
  QuantSpec,
  QuantStorage,
  WeightTensor,
} from './types';

/** Clip ratios tried by `clip: 'mse'`: 1, 0.99, …, 0.21. */
export const MSE_CLIP_RATIOS: readonly number[] = Array.from({ length: 80 }, (_, i) => 1 - i / 100);

/** Round half to even. */
export function roundHalfEven(x: number): number {
  const f = Math.floor(x);
  const d = x - f;
  if (d > 0.5) return f + 1;
  if (d < 0.5) return f;
  return f % 2 === 0 ? f : f + 1;
}

/** Checks a quant level: bits an integer in 2…8, clip minmax|mse. @throws CompressError `E_BAD_ARGUMENT`. */
export function validateQuantSpec(spec: QuantSpec, t?: WeightTensor): void {
  const where = t ? `${tensorLabel(t)}: ` : '';
  if (!Number.isInteger(spec.bits) || spec.bits < 2 || spec.bits > 8) {
    fail(
      'E_BAD_ARGUMENT',
      `${where}quantization bits = ${String(spec.bits)} is not an integer in 2…8.`,
    );
  }
  if (spec.clip !== 'minmax' && spec.clip !== 'mse') {
    fail(
      'E_BAD_ARGUMENT',
      `${where}quantization clip '${String(spec.clip)}' is not minmax or mse.`,
    );
  }
}

/** A scale as stored: float16 below 8 bits ({@link halfScale}); 8 bits keep float32 (DequantizeLinear's scale type is its output's). */
function storedScale(x: number, bits: number): number {
  return bits >= 8 ? Math.fround(x) : halfScale(x);
}

/** Scale and zero point of one group for a clip ratio. */
function groupParams(
  lo: number,
  hi: number,
  maxAbs: number,
  bits: number,
  symmetric: boolean,
  alpha: number,
): { scale: number; zp: number } {
  if (symmetric) {
    const qmax = 2 ** (bits - 1) - 1;
    const scale = storedScale((alpha * maxAbs) / qmax, bits);
    return scale > 0 && Number.isFinite(scale) ? { scale, zp: 0 } : { scale: 1, zp: 0 };
  }
  const qmax = 2 ** bits - 1;
  const l = alpha * Math.min(lo, 0);
  const h = alpha * Math.max(hi, 0);
  const scale = storedScale((h - l) / qmax, bits);
  if (!(scale > 0) || !Number.isFinite(scale)) return { scale: 1, zp: 0 };
  return { scale, zp: Math.min(qmax, Math.max(0, roundHalfEven(-l / scale))) };
}

/** Code of w for (scale, zp). */
function codeOf(w: number, scale: number, zp: number, qlo: number, qhi: number): number {
  const q = roundHalfEven(w / scale) + zp;
  return q < qlo ? qlo : q > qhi ? qhi : q;
}

/**
 * The end of the run of code `q` that starts at `start` in ascending `sorted`: the first index
 * after `start` whose code exceeds `q` (m if none). Galloping from `start` on the value where
 * rounding would switch to q + 1 finds it in O(log run) comparisons; a final check with
 * {@link codeOf} itself moves it onto the exact boundary (codes are monotone in w), so the result is
 * the one a binary search with codeOf gives.
 */
function runEnd(sorted: Float32Array, start: number, m: number, q: number, sc: number, zp: number, qlo: number, qhi: number): number {
  const t = (q - zp + 0.5) * sc;
  let lo = start + 1;
  let hi = lo;
  let step = 1;
  while (hi < m && sorted[hi]! <= t) {
    lo = hi + 1;
    hi += step;
    step *= 2;
  }
  if (hi > m) hi = m;
  while (lo < hi) {
    const mid = (lo + hi) >>> 1;
    if (sorted[mid]! > t) hi = mid;
    else lo = mid + 1;
  }
  let end = lo;
  while (end < m && codeOf(sorted[end]!, sc, zp, qlo, qhi) <= q) end++;
  while (end > start + 1 && codeOf(sorted[end - 1]!, sc, zp, qlo, qhi) > q) end--;
  return end;
}

/** Uniform quantization of a tensor. See the module comment for formulas and bits. */
export function quantizeWeights(
  tensor: WeightTensor,
  spec: QuantSpec,
  options: Partial<CompressOptions> = {},
): CompressedTensor {
  validateTensor(tensor);
  validateQuantSpec(spec, tensor);
  const opts = makeCompressOptions(options);
  return quantCore(tensor, spec, spec, null, opts);
}

/**
 * Pruning, then quantization of the kept weights (pruned weights get the code of exact 0).
 * Bits as quantization alone (the zero code carries the sparsity; see `entropyIndices`).
 */
export function pruneQuantizeWeights(
  tensor: WeightTensor,
  spec: PruneQuantSpec,
  options: Partial<CompressOptions> = {},
): CompressedTensor {
  validateTensor(tensor);
  validatePruneSpec(spec.prune, tensor);
  validateQuantSpec(spec.quant, tensor);
  const opts = makeCompressOptions(options);
  const mask = pruneMask(tensor, spec.prune);
  return quantCore(tensor, spec, spec.quant, mask.keep, opts);
}

function quantCore(
  tensor: WeightTensor,
  fullSpec: QuantSpec | PruneQuantSpec,
  spec: QuantSpec,
  keep: Uint8Array | null,
  opts: CompressOptions,
): CompressedTensor {
  const data = tensor.data;
  const n = data.length;
  const { bits, symmetric } = spec;
  const l = spec.perChannel
    ? channelLayout(tensor)
    : { outer: 1, channels: 1, inner: n, perChannel: n };
  const groups = l.channels;
  const qlo = symmetric ? -(2 ** (bits - 1) - 1) : 0;
  const qhi = symmetric ? 2 ** (bits - 1) - 1 : 2 ** bits - 1;
  // Per-group statistics over the kept weights.
  const lo = new Float64Array(groups).fill(Infinity);
  const hi = new Float64Array(groups).fill(-Infinity);
  for (let o = 0, p = 0; o < l.outer; o++) {
    for (let c = 0; c < groups; c++) {
      for (let i = 0; i < l.inner; i++, p++) {
        if (keep && !keep[p]) continue;
        const v = data[p]!;
        if (v < lo[c]!) lo[c] = v;
        if (v > hi[c]!) hi[c] = v;
      }
    }
  }
  const scale = new Float32Array(groups);
  const zeroPoint = new Int32Array(groups);
  const alphas = spec.clip === 'mse' ? MSE_CLIP_RATIOS : [1];
  const err = new Float64Array(groups * alphas.length);
  const cand: { scale: number; zp: number }[][] = [];
  for (let c = 0; c < groups; c++) {
    const a = lo[c]! === Infinity ? 0 : lo[c]!;
    const b = hi[c]! === -Infinity ? 0 : hi[c]!;
    cand.push(alphas.map((alpha) => groupParams(a, b, Math.max(-a, b), bits, symmetric, alpha)));
  }
  if (alphas.length > 1) {
    // Channels are gathered a block at a time (a channel of a MatMul [K, N] weight is a column:
    // one strided pass per channel would read the whole tensor from memory per channel).
    const block = Math.max(1, Math.min(64, Math.floor((1 << 19) / l.perChannel)));
    const buf = new Float32Array(block * l.perChannel);
    const counts = new Int32Array(block);
    const ps = new Float64Array(l.perChannel + 1);
    const pq = new Float64Array(l.perChannel + 1);
    for (let c0 = 0; c0 < groups; c0 += block) {
      throwIfAborted(opts.signal);
      const nb = Math.min(block, groups - c0);
      counts.fill(0);
      for (let o = 0; o < l.outer; o++) {
        for (let b = 0; b < nb; b++) {
          const base = (o * groups + c0 + b) * l.inner;
          let m = counts[b]!;
          const at = b * l.perChannel;
          for (let i = 0; i < l.inner; i++) if (!keep || keep[base + i]) buf[at + m++] = data[base + i]!;
          counts[b] = m;
        }
      }
      for (let b = 0; b < nb; b++) {
        const c = c0 + b;
        // Kept values of the group, sorted, with prefix sums: since the code is a monotone function
        // of w, each code covers a contiguous run, so the error of a candidate costs O(2^b log n)
        // instead of a pass over the group.
        const m = counts[b]!;
        const sorted = buf.subarray(b * l.perChannel, b * l.perChannel + m).sort();
        for (let i = 0; i < m; i++) {
          ps[i + 1] = ps[i]! + sorted[i]!;
          pq[i + 1] = pq[i]! + sorted[i]! * sorted[i]!;
        }
        for (let ai = 0; ai < alphas.length; ai++) {
          const { scale: sc, zp } = cand[c]![ai]!;
          let e = 0;
          let start = 0;
          while (start < m) {
            const q = codeOf(sorted[start]!, sc, zp, qlo, qhi);
            const end = q >= qhi ? m : runEnd(sorted, start, m, q, sc, zp, qlo, qhi);
            const v = Math.fround(sc * (q - zp));
            const cnt = end - start;
            const sum = ps[end]! - ps[start]!;
            e += pq[end]! - pq[start]! - 2 * v * sum + cnt * v * v;
            start = end;
          }
          err[c * alphas.length + ai] = e;
        }
      }
    }
  }
  for (let c = 0; c < groups; c++) {
    let best = 0;
    for (let ai = 1; ai < alphas.length; ai++) {
      if (err[c * alphas.length + ai]! < err[c * alphas.length + best]!) best = ai;
    }
    scale[c] = cand[c]![best]!.scale;
    zeroPoint[c] = cand[c]![best]!.zp;
  }
  const codes = symmetric ? new Int8Array(n) : new Uint8Array(n);
  const weights = new Float32Array(n);
  const counts = new Float64Array(qhi - qlo + 1);
  for (let o = 0, p = 0; o < l.outer; o++) {
    for (let c = 0; c < groups; c++) {
      const s = scale[c]!;
      const zp = zeroPoint[c]!;
      for (let i = 0; i < l.inner; i++, p++) {
        const q = keep && !keep[p] ? zp : codeOf(data[p]!, s, zp, qlo, qhi);
        codes[p] = q;
        weights[p] = Math.fround(s * (q - zp));
        counts[q - qlo]!++;
      }
    }
  }
  const storage: QuantStorage = {
    kind: 'quant',
    bits,
    symmetric,
    axis: spec.perChannel ? (tensor.shape.length === 0 ? 0 : tensor.channelAxis) : null,
    scale,
    zeroPoint,
    codes,
  };
  return {
    spec: fullSpec,
    weights,
    storage,
    bits: makeBits({
      indices: n * bits,
      params: (bits < 8 ? scaleBits(scale) : groups * 32) + (symmetric ? 0 : groups * bits),
      entropyIndices: huffmanBits(counts).total,
    }),
    sse: sumSquaredError(data, weights),
  };
}
