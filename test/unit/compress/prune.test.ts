import assert from 'node:assert/strict';
import { pruneMask, pruneWeights } from '../../../src/engine/compress/prune';
import { pruneShareWeights } from '../../../src/engine/compress/share';
import { pruneQuantizeWeights } from '../../../src/engine/compress/quantize';
import type { PruneSpec } from '../../../src/engine/compress/types';
import { bruteForceKmeans, expectError, tensor, trainedLike } from './helpers';
import { isHalfExact } from '../../../src/engine/util/half';

const unstructured = (sparsity: number): PruneSpec => ({
  technique: 'prune',
  pattern: 'unstructured',
  sparsity,
});

describe('compress/prune', () => {
  it('unstructured prunes exactly round(s·n) smallest |w|, ties by index', () => {
    const data = Float32Array.of(3, -1, 2, 1, -5, 0.5, 1, 4);
    const r = pruneWeights(tensor(data), unstructured(0.5));
    // |w| sorted: 0.5, 1, 1, 1, 2, ... → prune 0.5 and the first three 1s (indices 1, 3, 6).
    assert.deepEqual(Array.from(r.weights), [3, 0, 2, 0, -5, 0, 0, 4]);
    assert.equal(r.bits.indices, 4 * 32);
    assert.equal(r.bits.sparsity, 8);
    assert.equal(r.sse, 1 + 1 + 0.25 + 1);
    const s = r.storage;
    assert.ok(s.kind === 'sparse');
    assert.deepEqual(Array.from(s.values), [3, 2, -5, 4]);
  });

  it('unstructured: every kept |w| ≥ every pruned |w| (property)', () => {
    const data = trainedLike(1000, 2);
    for (const s of [0, 0.1, 0.5, 0.9, 0.999]) {
      const m = pruneMask(tensor(data), unstructured(s));
      let maxPruned = 0;
      let minKept = Infinity;
      for (let i = 0; i < data.length; i++) {
        if (m.keep[i]) minKept = Math.min(minKept, Math.abs(data[i]!));
        else maxPruned = Math.max(maxPruned, Math.abs(data[i]!));
      }
      assert.equal(data.length - m.kept, Math.round(s * data.length));
      assert.ok(maxPruned <= minKept);
    }
  });

  for (const [n, m] of [
    [2, 4],
    [4, 8],
    [1, 4],
  ] as const) {
    it(`${n}:${m} keeps the ${n} largest of every group of ${m} along the channel's weights`, () => {
      // Conv [O=3, I=4, 1, 2]: each out channel has 8 weights.
      const data = trainedLike(3 * 8, 6);
      const t = tensor(data, [3, 4, 1, 2], 'conv', 0);
      const r = pruneWeights(t, { technique: 'prune', pattern: 'n:m', sparsity: 0, n, m });
      for (let g = 0; g < data.length; g += m) {
        const group = Array.from(data.subarray(g, g + m));
        const kept = group.filter((_, q) => r.weights[g + q] !== 0);
        assert.equal(kept.length, n);
        const threshold = [...group].map(Math.abs).sort((a, b) => b - a)[n - 1]!;
        for (const v of kept) assert.ok(Math.abs(v) >= threshold);
      }
      assert.equal(r.bits.sparsity, (data.length / m) * n * Math.log2(m));
      assert.deepEqual(r.storage.kind === 'sparse' && r.storage.encoding, { kind: 'n:m', n, m });
    });
  }

  it('n:m groups run down the reduction axis for a MatMul [K, N] (channel axis 1)', () => {
    // K = 4, N = 2: column 0 = [1, 4, 2, 3], column 1 = [8, 5, 7, 6].
    const data = Float32Array.of(1, 8, 4, 5, 2, 7, 3, 6);
    const r = pruneWeights(tensor(data, [4, 2], 'matmul', 1), {
      technique: 'prune',
      pattern: 'n:m',
      sparsity: 0,
    });
    assert.deepEqual(Array.from(r.weights), [0, 8, 4, 0, 0, 7, 3, 0]);
  });

  it('n:m trailing partial group keeps min(n, g)', () => {
    const data = Float32Array.of(1, 2, 3, 4, 5, 6);
    const r = pruneWeights(tensor(data, [1, 6], 'gemm', 0), {
      technique: 'prune',
      pattern: 'n:m',
      sparsity: 0,
      n: 2,
      m: 4,
    });
    assert.deepEqual(Array.from(r.weights), [0, 0, 3, 4, 5, 6]);
  });

  for (const norm of ['l1', 'l2'] as const) {
    it(`channel pruning by ${norm} zeroes and lists the weakest channels`, () => {
      // Channels (axis 0): [3,0,0,0] L1 3 L2 3; [1,1,1,1] L1 4 L2 2; [2,2,0,0] L1 4 L2 2.83; [5,0,0,0].
      const data = Float32Array.of(3, 0, 0, 0, 1, 1, 1, 1, 2, 2, 0, 0, 5, 0, 0, 0);
      const r = pruneWeights(tensor(data, [4, 4], 'gemm', 0), {
        technique: 'prune',
        pattern: 'channel',
        sparsity: 0.5,
        norm,
      });
      const expected = norm === 'l1' ? [0, 1] : [1, 2];
      assert.deepEqual(r.storage.kind === 'sparse' && r.storage.encoding, {
        kind: 'channels',
        prunedChannels: expected,
      });
      for (let c = 0; c < 4; c++) {
        for (let i = 0; i < 4; i++) {
          assert.equal(r.weights[c * 4 + i], expected.includes(c) ? 0 : data[c * 4 + i]);
        }
      }
      assert.equal(r.bits.sparsity, 4);
      assert.equal(r.bits.indices, 8 * 32);
    });
  }

  it('channel pruning on a non-leading axis', () => {
    const data = Float32Array.of(1, 9, 1, 9, 1, 9);
    const r = pruneWeights(tensor(data, [3, 2], 'matmul', 1), {
      technique: 'prune',
      pattern: 'channel',
      sparsity: 0.5,
    });
    assert.deepEqual(Array.from(r.weights), [0, 9, 0, 9, 0, 9]);
  });

  it('prune+share: pruned weights use the exact-0 index 0, survivors clustered into k-1 values', () => {
    const data = trainedLike(60, 4);
    const t = tensor(data, [6, 10], 'gemm', 0);
    for (const perChannel of [false, true]) {
      const r = pruneShareWeights(t, {
        technique: 'prune+share',
        prune: unstructured(0.5),
        share: { technique: 'share', k: 4, perChannel },
      });
      const s = r.storage;
      assert.ok(s.kind === 'codebook');
      assert.equal(s.zeroIndex, 0);
      const mask = pruneMask(t, unstructured(0.5));
      let sseKept = 0;
      const kept: number[] = [];
      for (let i = 0; i < data.length; i++) {
        const c = perChannel ? Math.floor(i / 10) : 0;
        assert.equal(s.codebook[c * s.k], 0);
        if (!mask.keep[i]) {
          assert.equal(s.indices[i], 0);
          assert.equal(r.weights[i], 0);
        } else {
          assert.notEqual(s.indices[i], 0);
          kept.push(data[i]!);
          sseKept += (data[i]! - r.weights[i]!) ** 2;
        }
      }
      if (!perChannel) {
        // Kept weights get the optimal 3-level clustering (float32 rounding of the centres aside).
        const brute = bruteForceKmeans(kept, 3);
        assert.ok(Math.abs(sseKept - brute) <= 1e-6 * brute);
      }
      assert.equal(r.bits.indices, 60 * 2);
      // float16 entries, unless a channel kept ≤ 3 distinct values exactly (float32 then).
      const book = r.storage.kind === 'codebook' ? r.storage.codebook : new Float32Array();
      assert.equal(r.bits.codebook, (perChannel ? 6 : 1) * 4 * (isHalfExact(book) ? 16 : 32));
      if (!perChannel) assert.ok(isHalfExact(book));
    }
  });

  it('prune+quant: pruned weights decode to exact 0 (symmetric and asymmetric)', () => {
    const data = trainedLike(200, 8);
    const t = tensor(data, [10, 20], 'gemm', 0);
    for (const symmetric of [true, false]) {
      const r = pruneQuantizeWeights(t, {
        technique: 'prune+quant',
        prune: { technique: 'prune', pattern: 'n:m', sparsity: 0, n: 2, m: 4 },
        quant: { technique: 'quant', bits: 4, symmetric, perChannel: true, clip: 'minmax' },
      });
      const s = r.storage;
      assert.ok(s.kind === 'quant');
      let zeros = 0;
      for (let i = 0; i < data.length; i++) {
        const c = Math.floor(i / 20);
        assert.equal(r.weights[i], Math.fround(s.scale[c]! * (s.codes[i]! - s.zeroPoint[c]!)));
        if (r.weights[i] === 0) zeros++;
      }
      assert.ok(zeros >= 100);
    }
  });

  it('rejects bad pruning levels', () => {
    const t = tensor(Float32Array.of(1, 2, 3, 4));
    expectError(() => pruneWeights(t, unstructured(1)), 'E_BAD_ARGUMENT', 'sparsity 1');
    expectError(() => pruneWeights(t, unstructured(-0.1)), 'E_BAD_ARGUMENT');
    expectError(() => pruneWeights(t, unstructured(NaN)), 'E_BAD_ARGUMENT', 'NaN');
    expectError(
      () => pruneWeights(t, { technique: 'prune', pattern: 'n:m', sparsity: 0, n: 4, m: 4 }),
      'E_BAD_ARGUMENT',
      '4:4',
    );
    expectError(
      () => pruneWeights(t, { technique: 'prune', pattern: 'blocks' as 'n:m', sparsity: 0.5 }),
      'E_BAD_ARGUMENT',
      'blocks',
    );
  });
});
