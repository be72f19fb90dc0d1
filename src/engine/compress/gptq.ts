/**
 * Calibrated rounding (GPTQ-style error feedback, Frantar et al. 2023, "GPTQ: Accurate
 * Post-Training Quantization for Generative Pre-trained Transformers", with the grid fixed by the
 * plain compressor). Plain weight sharing and quantization round every weight to its nearest grid
 * value independently; what matters is the layer's *output* error ‖(W − Ŵ)·X‖² over real inputs X.
 * With H = Σ x·xᵀ (the input second moments of the layer, per group for grouped convolutions),
 * the weights of one output channel are rounded one input column at a time, and each rounding error
 * is pushed onto the columns not yet rounded through the Cholesky factor of H⁻¹, so later choices
 * compensate earlier ones.
 *
 * The storage layout stays the plain compressor's (the same per-channel scales and zero points;
 * for sharing the same k entries, which may be refit to the calibrated assignment), so the bits and
 * every ONNX encoding are unchanged: only the indices/codes (and refit entries) differ. Per-channel
 * codebooks are returned unchanged. Pruned + shared / quantized tensors keep their mask: pruned
 * weights stay exactly 0 (their error is fed forward to the kept ones, as in SparseGPT's fixed-mask
 * case), kept ones round on the grid without its zero entry (sharing; no codebook refit) or on the
 * whole grid (quantization).
 *
 * Cost: per group one Cholesky factorisation and one inverse of a d×d matrix (d = inputs per output
 * channel, e.g. C·kh·kw), in blocks of at most {@link MAX_BLOCK} columns (cross-block correlations
 * are ignored past that), plus rows·d²/2 multiply-adds for the feedback.
 */
import { huffmanBits } from './huffman';
import { makeBits } from './storage';
import { roundToHalf } from '../util/half';
import type { CompressedTensor, WeightTensor } from './types';

/** Input statistics of one layer, in the orientation of the layer's output channels. */
export interface LayerHessian {
  /** Inputs per output channel (columns of the rounding problem). */
  readonly dim: number;
  /** Output channels per group (rows). */
  readonly rowsPerGroup: number;
  /** One dim×dim symmetric matrix per group, row-major: Σ x·xᵀ over the calibration inputs. */
  readonly groups: readonly Float64Array[];
  /** The stored weight is [dim, rows] (MatMul, Gemm without transB): rows are its columns. */
  readonly transposed: boolean;
  /** Input vectors accumulated (samples × output positions). */
  readonly count: number;
}

/** Largest block of columns solved jointly. */
export const MAX_BLOCK = 1024;
/** Dampening added to the diagonal, relative to its mean (GPTQ's default). */
const DAMP = 0.01;

/** Per output channel: the sorted grid values it may take and the code of each. */
interface Grid {
  values(row: number): Float32Array;
  code(row: number, position: number): number;
  /** Pruned weights (element index → true) stay exactly 0 with code `zeroCode`; their error is fed forward like any other. */
  pruned?: (index: number) => boolean;
  zeroCode?: number;
}

/** The grid of a plain result, or undefined when calibrated rounding does not apply. */
function gridOf(ct: CompressedTensor, rows: number): Grid | undefined {
  const s = ct.storage;
  if (s.kind === 'codebook') {
    if (s.axis !== null) return undefined;
    if (s.zeroIndex !== null) {
      // pruned + shared: the pruned weights keep the exact-zero entry, the kept ones round to the others
      if (s.scale) return undefined;
      const z = s.zeroIndex;
      const kept = Array.from(s.codebook.keys()).filter((j) => j !== z).sort((a, b) => s.codebook[a]! - s.codebook[b]!);
      if (kept.length === 0) return undefined;
      const values = Float32Array.from(kept, (j) => s.codebook[j]!);
      const indices = s.indices;
      return { values: () => values, code: (_r, p) => kept[p]!, pruned: (i) => indices[i] === z, zeroCode: z };
    }
    const order = Array.from(s.codebook.keys()).sort((a, b) => s.codebook[a]! - s.codebook[b]!);
    if (!s.scale) {
      const values = Float32Array.from(order, (j) => s.codebook[j]!);
      return { values: () => values, code: (_r, p) => order[p]! };
    }
    const scale = s.scale.values;
    const cache = new Map<number, Float32Array>();
    return {
      values: (r) => {
        let v = cache.get(r);
        if (!v) cache.set(r, (v = Float32Array.from(order, (j) => Math.fround(scale[r]! * s.codebook[j]!))));
        return v;
      },
      // a negative scale reverses the order of the products
      code: (r, p) => order[scale[r]! < 0 ? order.length - 1 - p : p]!,
    };
  }
  if (s.kind === 'quant') {
    const qlo = s.symmetric ? -(2 ** (s.bits - 1) - 1) : 0;
    const qhi = s.symmetric ? 2 ** (s.bits - 1) - 1 : 2 ** s.bits - 1;
    const perRow = s.axis !== null && s.scale.length === rows;
    const cache = new Map<number, Float32Array>();
    // pruned + quantized: the weights at the code of exact 0 stay there (one zero point per tensor)
    const masked = ct.spec.technique === 'prune+quant';
    if (masked && (perRow ? new Set(s.zeroPoint).size !== 1 : false)) return undefined;
    const codes = s.codes;
    const zp = s.zeroPoint[0]!;
    return {
      ...(masked ? { pruned: (i: number) => codes[i] === zp, zeroCode: zp } : {}),
      values: (r) => {
        const c = perRow ? r : 0;
        let v = cache.get(c);
        if (!v) {
          v = new Float32Array(qhi - qlo + 1);
          for (let q = qlo; q <= qhi; q++) v[q - qlo] = Math.fround(s.scale[c]! * (q - s.zeroPoint[c]!));
          cache.set(c, v);
        }
        return v;
      },
      code: (_r, p) => p + qlo,
    };
  }
  return undefined;
}

/** Position of the value of `sorted` nearest to `x`. */
function nearest(sorted: Float32Array, x: number): number {
  let lo = 0;
  let hi = sorted.length - 1;
  if (sorted[0]! > sorted[hi]!) {
    // decreasing (negative scale)
    while (hi - lo > 1) {
      const mid = (lo + hi) >> 1;
      if (sorted[mid]! >= x) lo = mid;
      else hi = mid;
    }
  } else {
    while (hi - lo > 1) {
      const mid = (lo + hi) >> 1;
      if (sorted[mid]! <= x) lo = mid;
      else hi = mid;
    }
  }
  return Math.abs(sorted[lo]! - x) <= Math.abs(sorted[hi]! - x) ? lo : hi;
}

/** In place: the lower Cholesky factor of the n×n SPD matrix `a` (upper part zeroed). False if not SPD. */
function cholesky(a: Float64Array, n: number): boolean {
  for (let j = 0; j < n; j++) {
    const rj = j * n;
    let d = a[rj + j]!;
    for (let k = 0; k < j; k++) d -= a[rj + k]! * a[rj + k]!;
    if (!(d > 0)) return false;
    const l = Math.sqrt(d);
    a[rj + j] = l;
    for (let i = j + 1; i < n; i++) {
      const ri = i * n;
      let s = a[ri + j]!;
      for (let k = 0; k < j; k++) s -= a[ri + k]! * a[rj + k]!;
      a[ri + j] = s / l;
    }
    for (let k = j + 1; k < n; k++) a[rj + k] = 0;
  }
  return true;
}

/**
 * The upper factor U of H⁻¹ = Uᵀ·U for the n×n block `h` (GPTQ's `cholesky(cholesky_inverse(cholesky(H)), upper)`),
 * with the dampening added; undefined when H is not positive definite even then.
 */
function inverseFactor(h: Float64Array, n: number): Float64Array | undefined {
  const a = Float64Array.from(h);
  let mean = 0;
  for (let j = 0; j < n; j++) mean += a[j * n + j]!;
  mean /= n;
  for (let j = 0; j < n; j++) {
    if (a[j * n + j] === 0) a[j * n + j] = mean > 0 ? mean : 1; // an input that is always zero
    a[j * n + j]! += DAMP * (mean > 0 ? mean : 1);
  }
  if (!cholesky(a, n)) return undefined;
  // Linv (lower) by forward substitution, then H⁻¹ = Linvᵀ·Linv.
  const li = new Float64Array(n * n);
  for (let c = 0; c < n; c++) {
    li[c * n + c] = 1 / a[c * n + c]!;
    for (let i = c + 1; i < n; i++) {
      let s = 0;
      for (let k = c; k < i; k++) s -= a[i * n + k]! * li[k * n + c]!;
      li[i * n + c] = s / a[i * n + i]!;
    }
  }
  const inv = new Float64Array(n * n);
  for (let k = 0; k < n; k++) {
    const rk = k * n;
    for (let i = 0; i <= k; i++) {
      const lki = li[rk + i]!;
      if (lki === 0) continue;
      for (let j = 0; j <= i; j++) inv[i * n + j]! += lki * li[rk + j]!;
    }
  }
  for (let i = 0; i < n; i++) for (let j = 0; j < i; j++) inv[j * n + i] = inv[i * n + j]!;
  // H⁻¹ = L2·L2ᵀ; U = L2ᵀ … but GPTQ wants H⁻¹ = Uᵀ·U with U upper: U = (chol of H⁻¹)ᵀ.
  if (!cholesky(inv, n)) return undefined;
  const u = new Float64Array(n * n);
  for (let i = 0; i < n; i++) for (let j = 0; j <= i; j++) u[j * n + i] = inv[i * n + j]!;
  return u;
}

/**
 * Re-rounds a plain share/quant result with error feedback through `h` (see the module comment).
 * Returns `ct` itself when the storage kind is not supported or H is degenerate.
 */
export function calibrateRounding(tensor: WeightTensor, ct: CompressedTensor, h: LayerHessian, signal?: AbortSignal): CompressedTensor {
  const n = tensor.data.length;
  const d = h.dim;
  const rows = n / d;
  if (!Number.isInteger(rows) || rows !== h.rowsPerGroup * h.groups.length) return ct;
  // element (row r, column j) of the stored tensor
  const stored = h.transposed ? (r: number, j: number) => j * rows + r : (r: number, j: number) => r * d + j;
  const grid = gridOf(ct, rows);
  if (!grid) return ct;
  // Two column orders: as stored, and GPTQ's "act order" (largest input second moment first, while
  // the most columns remain to compensate). Each gets one pass; the one with the smaller output
  // error wins per layer and level, and only the winner is refined further (codebook refits), which
  // is most of the cost of a calibrated share cell on wide layers.
  type Run = { out: Float32Array; codes: Int32Array; error: number; ct: CompressedTensor; hp: LayerHessian; at: (r: number, j: number) => number; factors: Float64Array[][] };
  let best: Run | undefined;
  for (const order of ['stored', 'act'] as const) {
    if (order === 'act' && h.groups.length !== 1) break; // one order for grouped convolutions (a permutation per group would be needed)
    const H0 = h.groups[0]!;
    const perm = order === 'act' ? Array.from({ length: d }, (_, j) => j).sort((a, b) => H0[b * d + b]! - H0[a * d + a]! || a - b) : undefined;
    const at = perm ? (r: number, j: number) => stored(r, perm[j]!) : stored;
    const groups = perm ? [permuted(H0, perm)] : h.groups;
    const hp: LayerHessian = { ...h, groups };
    const factors = factorsOf(h, order, groups, d);
    if (!factors) break;
    const first = pass(tensor, hp, grid, at, factors, signal);
    const error = outputError(tensor.data, first.out, hp, at);
    if (!best || error < best.error) best = { ...first, error, ct, hp, at, factors };
  }
  if (!best) return ct;
  // Sharing: refit the codebook to the calibrated assignment (least squares in the H metric), round
  // again with it, and keep whichever result has the smaller output error.
  for (let round = 0; round < 2 && best.ct.storage.kind === 'codebook' && best.ct.storage.zeroIndex === null; round++) {
    const refit = refitCodebook(tensor, best.ct, best.codes, best.hp, best.at);
    if (!refit) break;
    const next = pass(tensor, best.hp, gridOf(refit, rows)!, best.at, best.factors, signal);
    const e = outputError(tensor.data, next.out, best.hp, best.at);
    if (!(e < best.error)) break;
    best = { ...best, ...next, ct: refit, error: e };
  }
  return rebuild(tensor, best!.ct, best!.out, best!.codes);
}

/** Inverse factors by statistics object and column order: they depend on H alone, so every level of a layer shares them. */
const FACTORS = new WeakMap<LayerHessian, Map<string, Float64Array[][] | null>>();

/** The {@link inverseFactor} of each group's diagonal blocks (cached, see FACTORS); null when one is not positive definite. */
function factorsOf(h: LayerHessian, order: string, groups: readonly Float64Array[], d: number): Float64Array[][] | null {
  let byOrder = FACTORS.get(h);
  if (!byOrder) FACTORS.set(h, (byOrder = new Map()));
  const hit = byOrder.get(order);
  if (hit !== undefined) return hit;
  let factors: Float64Array[][] | null = [];
  for (const H of groups) {
    const us: Float64Array[] = [];
    for (let b0 = 0; b0 < d && factors; b0 += MAX_BLOCK) {
      const bn = Math.min(MAX_BLOCK, d - b0);
      const block = new Float64Array(bn * bn);
      for (let i = 0; i < bn; i++) for (let j = 0; j < bn; j++) block[i * bn + j] = H[(b0 + i) * d + b0 + j]!;
      const u = inverseFactor(block, bn);
      if (u) us.push(u);
      else factors = null;
    }
    if (!factors) break;
    factors.push(us);
  }
  byOrder.set(order, factors);
  return factors;
}

/** `H` with rows and columns reordered by `perm`. */
function permuted(H: Float64Array, perm: readonly number[]): Float64Array {
  const d = perm.length;
  const out = new Float64Array(d * d);
  for (let i = 0; i < d; i++) {
    const src = perm[i]! * d;
    for (let j = 0; j < d; j++) out[i * d + j] = H[src + perm[j]!]!;
  }
  return out;
}

/** One error-feedback rounding pass on `grid`. */
function pass(
  tensor: WeightTensor,
  h: LayerHessian,
  grid: Grid,
  at: (r: number, j: number) => number,
  factors: Float64Array[][],
  signal: AbortSignal | undefined,
): { out: Float32Array; codes: Int32Array } {
  const d = h.dim;
  const out = new Float32Array(tensor.data.length);
  const codes = new Int32Array(tensor.data.length);
  const w = new Float64Array(d);
  for (let g = 0; g < h.groups.length; g++) {
    for (let b0 = 0, bi = 0; b0 < d; b0 += MAX_BLOCK, bi++) {
      const bn = Math.min(MAX_BLOCK, d - b0);
      const u = factors[g]![bi]!;
      for (let r = g * h.rowsPerGroup; r < (g + 1) * h.rowsPerGroup; r++) {
        if (signal?.aborted) throw signal.reason;
        const values = grid.values(r);
        for (let j = 0; j < bn; j++) w[j] = tensor.data[at(r, b0 + j)]!;
        for (let j = 0; j < bn; j++) {
          const idx = at(r, b0 + j);
          let q: number;
          if (grid.pruned?.(idx)) {
            q = 0;
            codes[idx] = grid.zeroCode!;
          } else {
            const p = nearest(values, w[j]!);
            q = values[p]!;
            codes[idx] = grid.code(r, p);
          }
          out[idx] = q;
          const e = (w[j]! - q) / u[j * bn + j]!;
          if (e === 0) continue;
          const ur = j * bn;
          for (let k = j + 1; k < bn; k++) w[k]! -= e * u[ur + k]!;
        }
      }
    }
  }
  return { out, codes };
}

/** Σ over output channels of (w − ŵ)ᵀ·H·(w − ŵ). */
function outputError(w: Float32Array, q: Float32Array, h: LayerHessian, at: (r: number, j: number) => number): number {
  const d = h.dim;
  const diff = new Float64Array(d);
  let e = 0;
  for (let g = 0; g < h.groups.length; g++) {
    const H = h.groups[g]!;
    for (let r = g * h.rowsPerGroup; r < (g + 1) * h.rowsPerGroup; r++) {
      for (let j = 0; j < d; j++) diff[j] = w[at(r, j)]! - q[at(r, j)]!;
      for (let a = 0; a < d; a++) {
        const da = diff[a]!;
        if (da === 0) continue;
        let s = 0;
        const row = a * d;
        for (let b = 0; b < d; b++) s += H[row + b]! * diff[b]!;
        e += da * s;
      }
    }
  }
  return e;
}

/**
 * The codebook that minimises the output error for fixed indices `codes` (one k×k least-squares
 * system in the H metric; a per-channel scale multiplies the entries of its channel), or undefined
 * when the storage is not a single shared codebook or the system is singular.
 */
function refitCodebook(tensor: WeightTensor, ct: CompressedTensor, codes: Int32Array, h: LayerHessian, at: (r: number, j: number) => number): CompressedTensor | undefined {
  const s = ct.storage;
  if (s.kind !== 'codebook' || s.axis !== null || s.zeroIndex !== null) return undefined;
  const k = s.codebook.length;
  const d = h.dim;
  const A = new Float64Array(k * k);
  const b = new Float64Array(k);
  const idx = new Int32Array(d);
  const hw = new Float64Array(d);
  for (let g = 0; g < h.groups.length; g++) {
    const H = h.groups[g]!;
    for (let r = g * h.rowsPerGroup; r < (g + 1) * h.rowsPerGroup; r++) {
      const sc = s.scale ? s.scale.values[r]! : 1;
      for (let j = 0; j < d; j++) idx[j] = codes[at(r, j)]!;
      hw.fill(0);
      for (let i = 0; i < d; i++) {
        const row = i * d;
        let acc = 0;
        const ai = idx[i]! * k;
        for (let j = 0; j < d; j++) {
          const hij = H[row + j]!;
          acc += hij * tensor.data[at(r, j)]!;
          A[ai + idx[j]!]! += sc * sc * hij;
        }
        hw[i] = acc;
      }
      for (let i = 0; i < d; i++) b[idx[i]!]! += sc * hw[i]!;
    }
  }
  // Ridge towards the old entries (unused entries keep their value).
  let trace = 0;
  for (let a = 0; a < k; a++) trace += A[a * k + a]!;
  const lambda = (trace / k) * 1e-6 + 1e-30;
  for (let a = 0; a < k; a++) {
    A[a * k + a]! += lambda;
    b[a]! += lambda * s.codebook[a]!;
  }
  if (!cholesky(A, k)) return undefined;
  const y = new Float64Array(k);
  for (let i = 0; i < k; i++) {
    let t = b[i]!;
    for (let j = 0; j < i; j++) t -= A[i * k + j]! * y[j]!;
    y[i] = t / A[i * k + i]!;
  }
  const c = new Float64Array(k);
  for (let i = k - 1; i >= 0; i--) {
    let t = y[i]!;
    for (let j = i + 1; j < k; j++) t -= A[j * k + i]! * c[j]!;
    c[i] = t / A[i * k + i]!;
  }
  if (!c.every(Number.isFinite)) return undefined;
  const codebook = Float32Array.from(c, roundToHalf);
  // Equal entries would make the grid ambiguous; keep the old codebook then.
  if (new Set(codebook).size !== k) return undefined;
  return { ...ct, storage: { ...s, codebook } };
}

/** The plain result with new reconstructions and codes (same grid, same storage layout). */
function rebuild(tensor: WeightTensor, ct: CompressedTensor, weights: Float32Array, codes: Int32Array): CompressedTensor {
  const s = ct.storage;
  let sse = 0;
  for (let i = 0; i < weights.length; i++) sse += (tensor.data[i]! - weights[i]!) ** 2;
  if (s.kind === 'codebook') {
    const indices = s.indices instanceof Uint8Array ? Uint8Array.from(codes) : Uint16Array.from(codes);
    const counts = new Float64Array(s.codebook.length);
    for (const c of codes) counts[c]!++;
    return { ...ct, weights, sse, storage: { ...s, indices }, bits: makeBits({ ...bitParts(ct), entropyIndices: huffmanBits(counts).total }) };
  }
  if (s.kind === 'quant') {
    const out = s.symmetric ? Int8Array.from(codes) : Uint8Array.from(codes);
    const lo = s.symmetric ? -(2 ** (s.bits - 1) - 1) : 0;
    const counts = new Float64Array(2 ** s.bits);
    for (const c of codes) counts[c - lo]!++;
    return { ...ct, weights, sse, storage: { ...s, codes: out }, bits: makeBits({ ...bitParts(ct), entropyIndices: huffmanBits(counts).total }) };
  }
  return ct;
}

function bitParts(ct: CompressedTensor): { indices: number; codebook: number; params: number; sparsity: number } {
  return { indices: ct.bits.indices, codebook: ct.bits.codebook, params: ct.bits.params, sparsity: ct.bits.sparsity };
}

/**
 * The weights that best reproduce the original layer's outputs from the inputs it gets in a
 * compressed model (asymmetric calibration; Li et al. 2025, "GPTAQ: Efficient Finetuning-Free
 * Quantization for Asymmetric Calibration"): per output channel w' = argmin Σ (w'·q − w·x)² =
 * Hq⁻¹·C·w, with x the layer's inputs in the original model, q the same inputs with the
 * layers before it compressed, Hq = Σ q·qᵀ (`hq`, per group) and C = Σ q·xᵀ (`cross`). Compressing
 * w' instead of w makes the layer take back part of the error that reaches it from upstream. It is solved as
 * the ridge problem pulled towards w, w' = w + (Hq + λI)⁻¹·(C − Hq)·w with GPTQ's dampening λ
 * ({@link DAMP} × the mean diagonal), so that w' = w exactly when nothing upstream changed (q = x). Returns `tensor.data` itself when a group's
 * Hq is not positive definite.
 */
export function compensatedWeights(tensor: WeightTensor, hq: LayerHessian, cross: readonly Float64Array[]): Float32Array {
  const d = hq.dim;
  const rows = tensor.data.length / d;
  if (!Number.isInteger(rows) || rows !== hq.rowsPerGroup * hq.groups.length || cross.length !== hq.groups.length) return tensor.data;
  const stored = hq.transposed ? (r: number, j: number) => j * rows + r : (r: number, j: number) => r * d + j;
  const out = new Float32Array(tensor.data.length);
  const w = new Float64Array(d);
  const v = new Float64Array(d);
  for (let g = 0; g < hq.groups.length; g++) {
    const a = Float64Array.from(hq.groups[g]!);
    let mean = 0;
    for (let j = 0; j < d; j++) mean += a[j * d + j]!;
    mean = mean > 0 ? mean / d : 1;
    for (let j = 0; j < d; j++) {
      if (a[j * d + j] === 0) a[j * d + j] = mean;
      a[j * d + j]! += DAMP * mean;
    }
    if (!cholesky(a, d)) return tensor.data;
    const c = cross[g]!;
    const h = hq.groups[g]!;
    for (let r = g * hq.rowsPerGroup; r < (g + 1) * hq.rowsPerGroup; r++) {
      for (let j = 0; j < d; j++) w[j] = tensor.data[stored(r, j)]!;
      // v = (C − Hq)·w, then w' = w + (Hq + λI)⁻¹·v (L·Lᵀ = Hq + λI)
      for (let i = 0; i < d; i++) {
        let s = 0;
        const row = i * d;
        for (let j = 0; j < d; j++) s += (c[row + j]! - h[row + j]!) * w[j]!;
        v[i] = s;
      }
      for (let i = 0; i < d; i++) {
        let s = v[i]!;
        const row = i * d;
        for (let k = 0; k < i; k++) s -= a[row + k]! * v[k]!;
        v[i] = s / a[row + i]!;
      }
      for (let i = d - 1; i >= 0; i--) {
        let s = v[i]!;
        for (let k = i + 1; k < d; k++) s -= a[k * d + i]! * v[k]!;
        v[i] = s / a[i * d + i]!;
      }
      for (let j = 0; j < d; j++) out[stored(r, j)] = w[j]! + v[j]!;
    }
  }
  return out;
}
