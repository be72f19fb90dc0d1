import assert from 'node:assert/strict';
import {
  clearLowRankCache,
  lowRankDecomposition,
  lowRankRank,
  lowRankWeights,
  symmetricEigen,
} from '../../../src/engine/compress/lowRank';
import { gaussian, mulberry32 } from '../../../src/engine/util/random';
import { expectError, tensor } from './helpers';

/** n×n random orthogonal matrix (Gram–Schmidt on seeded Gaussians), row-major. */
function orthogonal(n: number, seed: number): number[][] {
  const g = gaussian(mulberry32(seed));
  const q: number[][] = [];
  while (q.length < n) {
    const v = Array.from({ length: n }, () => g());
    for (const u of q) {
      const d = u.reduce((s, x, i) => s + x * v[i]!, 0);
      for (let i = 0; i < n; i++) v[i] = v[i]! - d * u[i]!;
    }
    const norm = Math.hypot(...v);
    q.push(v.map((x) => x / norm));
  }
  return q;
}

/** rows×cols matrix with the given singular values: U·diag(s)·Vᵀ. */
function withSingularValues(rows: number, cols: number, s: number[], seed: number): Float32Array {
  const u = orthogonal(rows, seed);
  const v = orthogonal(cols, seed + 1);
  const out = new Float32Array(rows * cols);
  for (let i = 0; i < rows; i++) {
    for (let j = 0; j < cols; j++) {
      let x = 0;
      for (let t = 0; t < s.length; t++) x += u[t]![i]! * s[t]! * v[t]![j]!;
      out[i * cols + j] = x;
    }
  }
  return out;
}

describe('compress/lowRank', () => {
  it('symmetric eigen-decomposition reconstructs the matrix', () => {
    const n = 7;
    const g = gaussian(mulberry32(3));
    const a = new Float64Array(n * n);
    for (let i = 0; i < n; i++) for (let j = 0; j <= i; j++) a[i * n + j] = a[j * n + i] = g();
    const { values, vectors } = symmetricEigen(a.slice(), n);
    for (let i = 1; i < n; i++) assert.ok(values[i - 1]! >= values[i]!);
    for (let i = 0; i < n; i++) {
      for (let j = 0; j < n; j++) {
        let x = 0;
        for (let t = 0; t < n; t++) x += vectors[t * n + i]! * values[t]! * vectors[t * n + j]!;
        assert.ok(Math.abs(x - a[i * n + j]!) < 1e-12);
      }
    }
  });

  const s = [5, 3, 2, 1, 0.5];
  const cases = [
    { name: 'gemm 5×7 (rows ≤ cols)', shape: [5, 7], axis: 0, role: 'gemm' as const },
    { name: 'matmul [K=7, N=5] (channel axis 1)', shape: [7, 5], axis: 1, role: 'matmul' as const },
    { name: 'conv [5, 7, 1, 1]', shape: [5, 7, 1, 1], axis: 0, role: 'conv' as const },
    { name: 'gemm 7×5 (rows > cols)', shape: [7, 5], axis: 0, role: 'gemm' as const },
  ];
  for (const c of cases) {
    it(`${c.name}: σ recovered, SSE(rank r) = Σ_{i>r} σ_i² (Eckart–Young)`, () => {
      const rows = c.shape[c.axis]!;
      const cols = 35 / rows;
      const m = withSingularValues(rows, cols, s, 11);
      // Lay the matrix out along the tensor's axes: M[ch, j] at element (j, ch) when axis is 1.
      const data = new Float32Array(35);
      for (let ch = 0; ch < rows; ch++) {
        for (let j = 0; j < cols; j++)
          data[c.axis === 0 ? ch * cols + j : j * rows + ch] = m[ch * cols + j]!;
      }
      const t = tensor(data, c.shape, c.role, c.axis);
      for (let r = 1; r <= 5; r++) {
        const res = lowRankWeights(t, { technique: 'lowrank', rank: r });
        const st = res.storage;
        assert.ok(st.kind === 'lowrank');
        assert.equal(st.rank, r);
        s.forEach((v, i) => assert.ok(Math.abs(st.singularValues[i]! - v) < 1e-5, `σ${i}`));
        const tail = s.slice(r).reduce((a, v) => a + v * v, 0);
        assert.ok(Math.abs(res.sse - tail) < 1e-4 * (1 + tail), `r=${r}: ${res.sse} vs ${tail}`);
        assert.equal(res.bits.indices, 32 * r * (rows + cols));
        assert.equal(res.bits.total, res.bits.indices);
      }
      const full = lowRankWeights(t, { technique: 'lowrank', rank: 100 });
      assert.ok(full.storage.kind === 'lowrank' && full.storage.rank === 5);
      assert.ok(full.sse < 1e-10);
    });
  }

  it('conv reshape out × (in·kh·kw): decode follows the documented layout', () => {
    const g = gaussian(mulberry32(8));
    const data = Float32Array.from({ length: 4 * 2 * 3 * 3 }, () => g());
    const r = lowRankWeights(tensor(data, [4, 2, 3, 3], 'conv', 0), {
      technique: 'lowrank',
      rank: 2,
    });
    const st = r.storage;
    assert.ok(st.kind === 'lowrank');
    assert.equal(st.rows, 4);
    assert.equal(st.cols, 18);
    for (let c = 0; c < 4; c++) {
      for (let j = 0; j < 18; j++) {
        let x = 0;
        for (let t = 0; t < 2; t++) x += st.left[c * 2 + t]! * st.right[t * 18 + j]!;
        assert.equal(r.weights[c * 18 + j], Math.fround(x));
      }
    }
  });

  it('rank by kept energy', () => {
    const m = withSingularValues(5, 7, s, 4);
    const t = tensor(m, [5, 7], 'gemm', 0);
    // σ² = 25, 9, 4, 1, 0.25 of 39.25: 0.9 needs 38/39.25 → rank 3; 0.5 → rank 1; 1 → rank 5.
    for (const [energy, rank] of [
      [0.9, 3],
      [0.5, 1],
      [0.86, 2],
      [1, 5],
    ] as const) {
      const r = lowRankWeights(t, { technique: 'lowrank', energy });
      assert.equal(r.storage.kind === 'lowrank' && r.storage.rank, rank, `energy ${energy}`);
    }
  });

  // Shapes that cross the kernels' 256-column blocks and 4-row groups, both Gram orientations, and
  // a channel axis that is not the first one (the matrix view is then a copy).
  const large = [
    { name: 'gemm 6×300', shape: [6, 300], axis: 0, role: 'gemm' as const, rows: 6, cols: 300 },
    { name: 'matmul [K=300, N=6] (axis 1)', shape: [300, 6], axis: 1, role: 'matmul' as const, rows: 6, cols: 300 },
    { name: 'gemm 300×7 (rows > cols)', shape: [300, 7], axis: 0, role: 'gemm' as const, rows: 300, cols: 7 },
  ];
  for (const c of large) {
    it(`${c.name}: blocked kernels give the Eckart–Young error and the documented reconstruction`, () => {
      const sv = [9, 4, 3, 2, 1, 0.5].slice(0, Math.min(c.rows, c.cols));
      const m = withSingularValues(c.rows, c.cols, sv, 21);
      const data = new Float32Array(c.rows * c.cols);
      for (let ch = 0; ch < c.rows; ch++) {
        for (let j = 0; j < c.cols; j++)
          data[c.axis === 0 ? ch * c.cols + j : j * c.rows + ch] = m[ch * c.cols + j]!;
      }
      const t = tensor(data, c.shape, c.role, c.axis);
      for (const r of [1, 3, 5]) {
        const res = lowRankWeights(t, { technique: 'lowrank', rank: r });
        const st = res.storage;
        assert.ok(st.kind === 'lowrank');
        const tail = sv.slice(r).reduce((a, v) => a + v * v, 0);
        assert.ok(Math.abs(res.sse - tail) < 1e-4 * (1 + tail), `r=${r}: ${res.sse} vs ${tail}`);
        for (let ch = 0; ch < c.rows; ch++) {
          for (let j = 0; j < c.cols; j++) {
            let x = 0;
            for (let k = 0; k < r; k++) x += st.left[ch * r + k]! * st.right[k * c.cols + j]!;
            const at = c.axis === 0 ? ch * c.cols + j : j * c.rows + ch;
            assert.equal(res.weights[at], Math.fround(x), `(${ch}, ${j})`);
          }
        }
      }
    });
  }

  it('one decomposition serves every level; the cache never changes a result', () => {
    const g = gaussian(mulberry32(5));
    const data = Float32Array.from({ length: 24 * 2 * 3 * 3 }, () => g());
    const t = tensor(data, [24, 2, 3, 3], 'conv', 0);
    clearLowRankCache();
    const dec = lowRankDecomposition(t);
    assert.equal(lowRankDecomposition({ ...t, data: data.slice() }), dec, 'same data: cached');
    const energies = [0.999, 0.99, 0.95, 0.9, 0.8];
    const cached = energies.map((energy) => lowRankWeights(t, { technique: 'lowrank', energy }));
    energies.forEach((energy, i) => {
      clearLowRankCache();
      const fresh = lowRankWeights(t, { technique: 'lowrank', energy });
      assert.deepEqual(cached[i]!.weights, fresh.weights);
      const rank = lowRankRank(lowRankDecomposition(t), { technique: 'lowrank', energy });
      assert.equal(fresh.storage.kind === 'lowrank' && fresh.storage.rank, rank);
    });
    // Another tensor with the same shape (one weight changed) gets its own decomposition.
    const other = data.slice();
    other[7] = other[7]! + 1;
    assert.notEqual(lowRankDecomposition({ ...t, data: other }), lowRankDecomposition(t));
    // Another layout of the same bytes is another matrix.
    assert.notEqual(lowRankDecomposition(tensor(data, [2, 24, 3, 3], 'conv', 1)), lowRankDecomposition(t));
  });

  it('rejects role other and bad levels', () => {
    const t = tensor(Float32Array.of(1, 2, 3, 4), [2, 2], 'gemm', 0);
    expectError(
      () => lowRankWeights({ ...t, role: 'other' }, { technique: 'lowrank', rank: 1 }),
      'E_BAD_ARGUMENT',
      'other',
    );
    expectError(() => lowRankWeights(t, { technique: 'lowrank' }), 'E_BAD_ARGUMENT', 'exactly one');
    expectError(
      () => lowRankWeights(t, { technique: 'lowrank', rank: 0 }),
      'E_BAD_ARGUMENT',
      'rank = 0',
    );
    expectError(
      () => lowRankWeights(t, { technique: 'lowrank', energy: 1.5 }),
      'E_BAD_ARGUMENT',
      '1.5',
    );
  });
});
