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
 */
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

/** Truncated SVD of a conv/gemm/matmul weight. See the module comment. */
export function lowRankWeights(
  tensor: WeightTensor,
  spec: LowRankSpec,
  options: Partial<CompressOptions> = {},
): CompressedTensor {
  validateTensor(tensor);
  validateLowRankSpec(spec, tensor);
  const opts = makeCompressOptions(options);
  const data = tensor.data;
  const l = channelLayout(tensor);
  const rows = l.channels;
  const cols = l.perChannel;
  const M = new Float64Array(rows * cols);
  for (let o = 0, p = 0; o < l.outer; o++) {
    for (let c = 0; c < rows; c++) {
      for (let i = 0; i < l.inner; i++, p++) M[c * cols + o * l.inner + i] = data[p]!;
    }
  }
  const byRows = rows <= cols;
  const g = byRows ? rows : cols;
  const G = new Float64Array(g * g);
  if (byRows) {
    for (let a = 0; a < rows; a++) {
      throwIfAborted(opts.signal);
      for (let b = 0; b <= a; b++) {
        const ra = a * cols;
        const rb = b * cols;
        // Four partial sums break the floating-point add chain (about 3× faster).
        let s0 = 0;
        let s1 = 0;
        let s2 = 0;
        let s3 = 0;
        let j = 0;
        for (; j + 3 < cols; j += 4) {
          s0 += M[ra + j]! * M[rb + j]!;
          s1 += M[ra + j + 1]! * M[rb + j + 1]!;
          s2 += M[ra + j + 2]! * M[rb + j + 2]!;
          s3 += M[ra + j + 3]! * M[rb + j + 3]!;
        }
        for (; j < cols; j++) s0 += M[ra + j]! * M[rb + j]!;
        const s = s0 + s1 + s2 + s3;
        G[a * g + b] = s;
        G[b * g + a] = s;
      }
    }
  } else {
    for (let a = 0; a < rows; a++) {
      const ra = a * cols;
      for (let x = 0; x < cols; x++) {
        const mx = M[ra + x]!;
        if (mx === 0) continue;
        for (let y = 0; y <= x; y++) G[x * g + y] = G[x * g + y]! + mx * M[ra + y]!;
      }
    }
    for (let x = 0; x < cols; x++) for (let y = 0; y < x; y++) G[y * g + x] = G[x * g + y]!;
  }
  const { values, vectors } = symmetricEigen(G, g, opts.signal);
  const singularValues = Float64Array.from(values, (v) => Math.sqrt(Math.max(v, 0)));
  let rank: number;
  if (spec.rank !== undefined) {
    rank = Math.min(spec.rank, g);
  } else {
    let total = 0;
    for (const v of singularValues) total += v * v;
    let acc = 0;
    rank = g;
    for (let r = 0; r < g; r++) {
      acc += singularValues[r]! ** 2;
      if (acc >= spec.energy! * total) {
        rank = r + 1;
        break;
      }
    }
  }
  const left = new Float32Array(rows * rank);
  const right = new Float32Array(rank * cols);
  const acc = new Float64Array(cols);
  for (let t = 0; t < rank; t++) {
    const v = vectors.subarray(t * g, t * g + g);
    if (byRows) {
      for (let a = 0; a < rows; a++) left[a * rank + t] = v[a]!;
      // Row-wise accumulation keeps M's accesses contiguous.
      acc.fill(0);
      for (let a = 0; a < rows; a++) {
        const va = v[a]!;
        const ra = a * cols;
        for (let j = 0; j < cols; j++) acc[j] = acc[j]! + va * M[ra + j]!;
      }
      right.set(acc, t * cols);
    } else {
      for (let j = 0; j < cols; j++) right[t * cols + j] = v[j]!;
      for (let a = 0; a < rows; a++) {
        let s = 0;
        for (let j = 0; j < cols; j++) s += M[a * cols + j]! * v[j]!;
        left[a * rank + t] = s;
      }
    }
  }
  const weights = new Float32Array(data.length);
  const row = new Float64Array(cols);
  for (let c = 0; c < rows; c++) {
    row.fill(0);
    for (let t = 0; t < rank; t++) {
      const lt = left[c * rank + t]!;
      const base = t * cols;
      for (let j = 0; j < cols; j++) row[j] = row[j]! + lt * right[base + j]!;
    }
    for (let o = 0; o < l.outer; o++) {
      const p = (o * rows + c) * l.inner;
      for (let i = 0; i < l.inner; i++) weights[p + i] = row[o * l.inner + i]!;
    }
  }
  const storage: LowRankStorage = {
    kind: 'lowrank',
    rank,
    rows,
    cols,
    axis: tensor.shape.length === 0 ? 0 : tensor.channelAxis,
    left,
    right,
    singularValues,
  };
  return {
    spec,
    weights,
    storage,
    bits: makeBits({ indices: 32 * rank * (rows + cols) }),
    sse: sumSquaredError(data, weights),
  };
}
