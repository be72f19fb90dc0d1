/**
 * Low rank: truncated SVD of a weight viewed as the matrix `M[c, j]` with c along the channel axis
 * (rows) and j enumerating the other dimensions in their original order (columns): Gemm/MatMul
 * weights as out × in, Conv weights `[O, I, kh, kw]` as O × (I·kh·kw).
 *
 * Method: the symmetric eigendecomposition (Householder tridiagonalisation + implicit QL, as in
 * EISPACK tred2/tql2) of the smaller Gram matrix `M·Mᵀ` or `Mᵀ·M`, in float64. With U_r the top-r
 * eigenvectors of `M·Mᵀ`, `left = U_r` and `right = U_rᵀ·M`, so `left·right` is the orthogonal
 * projection of M on its top-r left singular subspace — the Eckart–Young optimum, whose squared
 * error is Σ_{i>r} σ_i². (Symmetrically with `Mᵀ·M`.) Squaring through the Gram matrix loses
 * relative accuracy only for singular values below ~1e-8·σ_1, which never decide a truncation.
 *
 * The rank is `rank` (capped at min(rows, cols)) or the smallest r with Σ_{i≤r} σ_i² ≥
 * energy · Σ σ_i² (at least 1). Storage: both factors as float32, row-major; the reconstruction is
 * `fround(Σ_t left[c,t]·right[t,j])` summed in float64 over t ascending (a runtime MatMul in float32
 * may differ in the last bits). Bits: indices 32·r·(rows + cols); no codebook, params or sparsity.
 *
 * Cost: the decomposition (Gram matrix + eigen-decomposition) does not depend on the level; it is
 * kept in a small cache keyed by the tensor's shape, channel axis and data (sha256), so a ladder of
 * levels, or the candidates of a search, decompose each layer once. {@link lowRankRank} gives a
 * level's rank (hence its exact bytes, 4·r·(rows + cols)) from the decomposition alone. The matrix
 * products are blocked by 256 columns with four rows per pass over the block (a 512×4608 conv, 2
 * loaded cores: 2.6–3.6 s to decompose once, then 3.5–8.7 s per level at rank 509, where the
 * unblocked version took 12.7–17.9 s per level; `.tmp`-free numbers in bench/compress.ts).
 */
import { createHash } from 'node:crypto';
import { fail, throwIfAborted } from '../errors';
import { makeBits } from './storage';
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
  LowRankSpec,
  LowRankStorage,
  WeightTensor,
} from './types';

/** Checks a low-rank level for this tensor. @throws CompressError `E_BAD_ARGUMENT`. */
export function validateLowRankSpec(spec: LowRankSpec, t?: WeightTensor): void {
  const where = t ? `${tensorLabel(t)}: ` : '';
  if (t && t.role === 'other') {
    fail(
      'E_BAD_ARGUMENT',
      `${where}low rank needs a conv, gemm or matmul weight, this one has role 'other'.`,
    );
  }
  if ((spec.rank === undefined) === (spec.energy === undefined)) {
    fail('E_BAD_ARGUMENT', `${where}low rank needs exactly one of rank or energy.`);
  }
  if (spec.rank !== undefined && (!Number.isInteger(spec.rank) || spec.rank < 1)) {
    fail('E_BAD_ARGUMENT', `${where}low rank rank = ${String(spec.rank)} is not an integer ≥ 1.`);
  }
  if (spec.energy !== undefined && !(spec.energy > 0 && spec.energy <= 1)) {
    fail('E_BAD_ARGUMENT', `${where}low rank energy = ${String(spec.energy)} is outside (0, 1].`);
  }
}

/**
 * Eigen-decomposition of a symmetric n×n matrix `a` (row-major, float64; destroyed).
 * @returns eigenvalues descending and eigenvectors as rows of `vectors` (n×n row-major).
 */
export function symmetricEigen(
  a: Float64Array,
  n: number,
  signal?: AbortSignal,
): { values: Float64Array; vectors: Float64Array } {
  // V is stored column-major (V(row k, col j) at [j·n + k]) so that the O(n³) loops of tred2, which
  // walk down columns, read memory contiguously; `a` is symmetric, so its layout is the same.
  const V = a;
  const d = new Float64Array(n);
  const e = new Float64Array(n);
  // tred2: Householder reduction to tridiagonal form (EISPACK, via JAMA).
  for (let j = 0; j < n; j++) d[j] = V[j * n + (n - 1)]!;
  for (let i = n - 1; i > 0; i--) {
    if (i % 64 === 0) throwIfAborted(signal);
    let scale = 0;
    let h = 0;
    for (let k = 0; k < i; k++) scale += Math.abs(d[k]!);
    if (scale === 0) {
      e[i] = d[i - 1]!;
      for (let j = 0; j < i; j++) {
        d[j] = V[j * n + (i - 1)]!;
        V[j * n + i] = 0;
        V[i * n + j] = 0;
      }
    } else {
      for (let k = 0; k < i; k++) {
        d[k] = d[k]! / scale;
        h += d[k]! * d[k]!;
      }
      let f = d[i - 1]!;
      let g = Math.sqrt(h);
      if (f > 0) g = -g;
      e[i] = scale * g;
      h -= f * g;
      d[i - 1] = f - g;
      for (let j = 0; j < i; j++) e[j] = 0;
      for (let j = 0; j < i; j++) {
        f = d[j]!;
        V[i * n + j] = f;
        g = e[j]! + V[j * n + j]! * f;
        for (let k = j + 1; k <= i - 1; k++) {
          g += V[j * n + k]! * d[k]!;
          e[k] = e[k]! + V[j * n + k]! * f;
        }
        e[j] = g;
      }
      f = 0;
      for (let j = 0; j < i; j++) {
        e[j] = e[j]! / h;
        f += e[j]! * d[j]!;
      }
      const hh = f / (h + h);
      for (let j = 0; j < i; j++) e[j] = e[j]! - hh * d[j]!;
      for (let j = 0; j < i; j++) {
        f = d[j]!;
        g = e[j]!;
        for (let k = j; k <= i - 1; k++) V[j * n + k] = V[j * n + k]! - (f * e[k]! + g * d[k]!);
        d[j] = V[j * n + (i - 1)]!;
        V[j * n + i] = 0;
      }
    }
    d[i] = h;
  }
  for (let i = 0; i < n - 1; i++) {
    V[i * n + (n - 1)] = V[i * n + i]!;
    V[i * n + i] = 1;
    const h = d[i + 1]!;
    if (h !== 0) {
      for (let k = 0; k <= i; k++) d[k] = V[(i + 1) * n + k]! / h;
      for (let j = 0; j <= i; j++) {
        let g = 0;
        for (let k = 0; k <= i; k++) g += V[(i + 1) * n + k]! * V[j * n + k]!;
        for (let k = 0; k <= i; k++) V[j * n + k] = V[j * n + k]! - g * d[k]!;
      }
    }
    for (let k = 0; k <= i; k++) V[(i + 1) * n + k] = 0;
  }
  for (let j = 0; j < n; j++) {
    d[j] = V[j * n + (n - 1)]!;
    V[j * n + (n - 1)] = 0;
  }
  V[n * n - 1] = 1;
  e[0] = 0;
  // Column-major V: eigenvector i is already the contiguous row i (the QL rotations touch pairs).
  const Q = V;
  // tql2: implicit QL on the tridiagonal matrix.
  for (let i = 1; i < n; i++) e[i - 1] = e[i]!;
  e[n - 1] = 0;
  let f = 0;
  let tst1 = 0;
  const eps = 2 ** -52;
  for (let l = 0; l < n; l++) {
    if (l % 64 === 0) throwIfAborted(signal);
    tst1 = Math.max(tst1, Math.abs(d[l]!) + Math.abs(e[l]!));
    let m = l;
    while (m < n - 1 && Math.abs(e[m]!) > eps * tst1) m++;
    if (m > l) {
      let iter = 0;
      do {
        if (++iter > 100)
          fail('E_INTERNAL', 'Eigen-decomposition did not converge in 100 QL iterations.');
        let g = d[l]!;
        let p = (d[l + 1]! - g) / (2 * e[l]!);
        let r = Math.sqrt(p * p + 1);
        if (p < 0) r = -r;
        d[l] = e[l]! / (p + r);
        d[l + 1] = e[l]! * (p + r);
        const dl1 = d[l + 1]!;
        let h = g - d[l]!;
        for (let i = l + 2; i < n; i++) d[i] = d[i]! - h;
        f += h;
        p = d[m]!;
        let c = 1;
        let c2 = c;
        let c3 = c;
        const el1 = e[l + 1]!;
        let s = 0;
        let s2 = 0;
        for (let i = m - 1; i >= l; i--) {
          c3 = c2;
          c2 = c;
          s2 = s;
          g = c * e[i]!;
          h = c * p;
          r = Math.sqrt(p * p + e[i]! * e[i]!);
          e[i + 1] = s * r;
          s = e[i]! / r;
          c = p / r;
          p = c * d[i]! - s * g;
          d[i + 1] = h + s * (c * g + s * d[i]!);
          const qi = i * n;
          const qj = (i + 1) * n;
          for (let k = 0; k < n; k++) {
            const hk = Q[qj + k]!;
            const vk = Q[qi + k]!;
            Q[qj + k] = s * vk + c * hk;
            Q[qi + k] = c * vk - s * hk;
          }
        }
        p = (-s * s2 * c3 * el1 * e[l]!) / dl1;
        e[l] = s * p;
        d[l] = c * p;
      } while (Math.abs(e[l]!) > eps * tst1);
    }
    d[l] = d[l]! + f;
    e[l] = 0;
  }
  const order = Array.from({ length: n }, (_, i) => i).sort((x, y) => d[y]! - d[x]! || x - y);
  const values = new Float64Array(n);
  const vectors = new Float64Array(n * n);
  order.forEach((src, dst) => {
    values[dst] = d[src]!;
    vectors.set(Q.subarray(src * n, src * n + n), dst * n);
  });
  return { values, vectors };
}


/**
 * The level-independent part of a low-rank compression of one tensor: its matrix view and the
 * eigen-decomposition of the smaller Gram matrix. One decomposition serves every rank and energy
 * ({@link lowRankDecomposition} keeps recent ones), so a ladder of levels costs one decomposition.
 */
export interface LowRankDecomposition {
  /** Rows of the matrix view (channels). */
  rows: number;
  /** Columns of the matrix view (the other dimensions in order). */
  cols: number;
  /** True when the Gram matrix is `M·Mᵀ` (rows ≤ cols): `vectors` are left singular vectors. */
  byRows: boolean;
  /** Singular values, descending; length min(rows, cols). Shared: do not modify. */
  singularValues: Float64Array;
  /** Eigenvectors of the Gram matrix as rows (g×g, g = min(rows, cols)), ordered as `singularValues`. Shared: do not modify. */
  vectors: Float64Array;
}

/** Columns per cache block of the matrix kernels: a block of a 512-row matrix is 512 KiB of float32. */
const BLOCK = 256;
/** Bytes of decompositions kept for reuse (least recently used dropped first). */
const CACHE_BYTES = 256 * 2 ** 20;
const cache = new Map<string, LowRankDecomposition>();
let cacheBytes = 0;

/** Drops every cached decomposition (frees their memory; results do not change). */
export function clearLowRankCache(): void {
  cache.clear();
  cacheBytes = 0;
}

/** Cache key: the matrix view (shape, channel axis) and the data bytes. */
function cacheKey(t: WeightTensor): string {
  const h = createHash('sha256');
  h.update(new Uint8Array(t.data.buffer, t.data.byteOffset, t.data.byteLength));
  return `${t.shape.join('x')}@${t.channelAxis}:${h.digest('hex')}`;
}

/** The matrix `M[c, j]` of the module comment, as float32 (the data itself when the channel axis is first). */
function matrixOf(t: WeightTensor): { M: Float32Array; rows: number; cols: number } {
  const l = channelLayout(t);
  const rows = l.channels;
  const cols = l.perChannel;
  if (l.outer === 1) return { M: t.data, rows, cols };
  const M = new Float32Array(rows * cols);
  for (let o = 0, p = 0; o < l.outer; o++) {
    for (let c = 0; c < rows; c++) {
      for (let i = 0; i < l.inner; i++, p++) M[c * cols + o * l.inner + i] = t.data[p]!;
    }
  }
  return { M, rows, cols };
}

/** `M·Mᵀ` (rows×rows, float64), blocked by columns, four dot products per pass over a row. */
function gramOfRows(M: Float32Array, rows: number, cols: number, signal?: AbortSignal): Float64Array {
  const G = new Float64Array(rows * rows);
  for (let j0 = 0; j0 < cols; j0 += BLOCK) {
    throwIfAborted(signal);
    const j1 = Math.min(cols, j0 + BLOCK);
    for (let a = 0; a < rows; a++) {
      const ra = a * cols;
      const ga = a * rows;
      let b = 0;
      for (; b + 3 <= a; b += 4) {
        const r0 = b * cols;
        const r1 = r0 + cols;
        const r2 = r1 + cols;
        const r3 = r2 + cols;
        let s0 = 0;
        let s1 = 0;
        let s2 = 0;
        let s3 = 0;
        for (let j = j0; j < j1; j++) {
          const x = M[ra + j]!;
          s0 += x * M[r0 + j]!;
          s1 += x * M[r1 + j]!;
          s2 += x * M[r2 + j]!;
          s3 += x * M[r3 + j]!;
        }
        G[ga + b] = G[ga + b]! + s0;
        G[ga + b + 1] = G[ga + b + 1]! + s1;
        G[ga + b + 2] = G[ga + b + 2]! + s2;
        G[ga + b + 3] = G[ga + b + 3]! + s3;
      }
      for (; b <= a; b++) {
        const rb = b * cols;
        let s = 0;
        for (let j = j0; j < j1; j++) s += M[ra + j]! * M[rb + j]!;
        G[ga + b] = G[ga + b]! + s;
      }
    }
  }
  for (let a = 0; a < rows; a++) for (let b = 0; b < a; b++) G[b * rows + a] = G[a * rows + b]!;
  return G;
}

/** `Mᵀ·M` (cols×cols, float64) as a sum of outer products of the rows. */
function gramOfCols(M: Float32Array, rows: number, cols: number, signal?: AbortSignal): Float64Array {
  const G = new Float64Array(cols * cols);
  for (let a = 0; a < rows; a++) {
    if (a % 64 === 0) throwIfAborted(signal);
    const ra = a * cols;
    for (let x = 0; x < cols; x++) {
      const mx = M[ra + x]!;
      if (mx === 0) continue;
      const gx = x * cols;
      for (let y = 0; y <= x; y++) G[gx + y] = G[gx + y]! + mx * M[ra + y]!;
    }
  }
  for (let x = 0; x < cols; x++) for (let y = 0; y < x; y++) G[y * cols + x] = G[x * cols + y]!;
  return G;
}

/**
 * The decomposition of `tensor`'s matrix view (see the module comment), from the cache when the same
 * shape, channel axis and data were decomposed recently.
 */
export function lowRankDecomposition(tensor: WeightTensor, signal?: AbortSignal): LowRankDecomposition {
  const key = cacheKey(tensor);
  const hit = cache.get(key);
  if (hit) {
    cache.delete(key);
    cache.set(key, hit);
    return hit;
  }
  const { M, rows, cols } = matrixOf(tensor);
  const byRows = rows <= cols;
  const g = byRows ? rows : cols;
  const G = byRows ? gramOfRows(M, rows, cols, signal) : gramOfCols(M, rows, cols, signal);
  const { values, vectors } = symmetricEigen(G, g, signal);
  const singularValues = Float64Array.from(values, (v) => Math.sqrt(Math.max(v, 0)));
  const dec: LowRankDecomposition = { rows, cols, byRows, singularValues, vectors };
  const bytes = vectors.byteLength + singularValues.byteLength;
  if (bytes <= CACHE_BYTES) {
    for (const [k, v] of cache) {
      if (cacheBytes + bytes <= CACHE_BYTES) break;
      cache.delete(k);
      cacheBytes -= v.vectors.byteLength + v.singularValues.byteLength;
    }
    cache.set(key, dec);
    cacheBytes += bytes;
  }
  return dec;
}

/**
 * The rank a level keeps: `spec.rank` capped at min(rows, cols), or the smallest r with
 * Σ_{i≤r} σ_i² ≥ energy · Σ σ_i² (at least 1). The factors then take `4·r·(rows + cols)` bytes.
 */
export function lowRankRank(dec: LowRankDecomposition, spec: LowRankSpec): number {
  const s = dec.singularValues;
  if (spec.rank !== undefined) return Math.min(spec.rank, s.length);
  let total = 0;
  for (const v of s) total += v * v;
  let acc = 0;
  for (let r = 0; r < s.length; r++) {
    acc += s[r]! ** 2;
    if (acc >= spec.energy! * total) return r + 1;
  }
  return s.length;
}

/**
 * `A·B` with A m×k and B k×n (row-major), each entry summed in float64 over k ascending. Blocked by
 * columns, four rows of A per pass over a block of B; `write(i, j0, values)` receives row i's
 * entries j0… of the block (a view, valid during the call).
 */
function blockedProduct(A: ArrayLike<number>, m: number, k: number, B: ArrayLike<number>, n: number, write: (i: number, j0: number, values: Float64Array) => void, signal?: AbortSignal): void {
  const acc = new Float64Array(4 * BLOCK);
  for (let j0 = 0; j0 < n; j0 += BLOCK) {
    throwIfAborted(signal);
    const w = Math.min(n, j0 + BLOCK) - j0;
    for (let i = 0; i < m; i += 4) {
      const rowsHere = Math.min(4, m - i);
      acc.fill(0);
      // Missing rows (fewer than 4 left) repeat row i; their results are not written.
      const a0 = i * k;
      const a1 = (rowsHere > 1 ? i + 1 : i) * k;
      const a2 = (rowsHere > 2 ? i + 2 : i) * k;
      const a3 = (rowsHere > 3 ? i + 3 : i) * k;
      for (let s = 0; s < k; s++) {
        const x0 = A[a0 + s]!;
        const x1 = A[a1 + s]!;
        const x2 = A[a2 + s]!;
        const x3 = A[a3 + s]!;
        const bs = s * n + j0;
        for (let j = 0; j < w; j++) {
          const b = B[bs + j]!;
          acc[j] = acc[j]! + x0 * b;
          acc[BLOCK + j] = acc[BLOCK + j]! + x1 * b;
          acc[2 * BLOCK + j] = acc[2 * BLOCK + j]! + x2 * b;
          acc[3 * BLOCK + j] = acc[3 * BLOCK + j]! + x3 * b;
        }
      }
      for (let r = 0; r < rowsHere; r++) write(i + r, j0, acc.subarray(r * BLOCK, r * BLOCK + w));
    }
  }
}

/** Truncated SVD of a conv/gemm/matmul weight. See the module comment. */
export function lowRankWeights(
  tensor: WeightTensor,
  spec: LowRankSpec,
  options: Partial<CompressOptions> = {},
): CompressedTensor {
  validateTensor(tensor);
  validateLowRankSpec(spec, tensor);
  const opts = makeCompressOptions(options);
  const dec = lowRankDecomposition(tensor, opts.signal);
  const { rows, cols, vectors } = dec;
  const rank = lowRankRank(dec, spec);
  const left = new Float32Array(rows * rank);
  const right = new Float32Array(rank * cols);
  if (dec.byRows) {
    for (let t = 0; t < rank; t++) for (let a = 0; a < rows; a++) left[a * rank + t] = vectors[t * rows + a]!;
    // right = U_rᵀ·M: the first `rank` eigenvector rows times the matrix.
    blockedProduct(vectors, rank, rows, matrixOf(tensor).M, cols, (t, j0, v) => right.set(v, t * cols + j0), opts.signal);
  } else {
    const { M } = matrixOf(tensor);
    for (let t = 0; t < rank; t++) {
      throwIfAborted(opts.signal);
      const v = vectors.subarray(t * cols, t * cols + cols);
      for (let j = 0; j < cols; j++) right[t * cols + j] = v[j]!;
      for (let a = 0; a < rows; a++) {
        let s = 0;
        for (let j = 0; j < cols; j++) s += M[a * cols + j]! * v[j]!;
        left[a * rank + t] = s;
      }
    }
  }
  const weights = new Float32Array(tensor.data.length);
  const l = channelLayout(tensor);
  blockedProduct(left, rows, rank, right, cols, (c, j0, v) => {
    if (l.outer === 1) {
      weights.set(v, c * cols + j0);
      return;
    }
    for (let j = 0; j < v.length; j++) {
      const o = Math.floor((j0 + j) / l.inner);
      weights[(o * rows + c) * l.inner + ((j0 + j) % l.inner)] = v[j]!;
    }
  }, opts.signal);
  const storage: LowRankStorage = {
    kind: 'lowrank',
    rank,
    rows,
    cols,
    axis: tensor.shape.length === 0 ? 0 : tensor.channelAxis,
    left,
    right,
    singularValues: dec.singularValues.slice(),
  };
  return {
    spec,
    weights,
    storage,
    bits: makeBits({ indices: 32 * rank * (rows + cols) }),
    sse: sumSquaredError(tensor.data, weights),
  };
}
