import assert from 'node:assert/strict';
import { SortedWeights, kmeans1d } from '../../../src/engine/compress/kmeans1d';
import { shareSweep, shareWeights } from '../../../src/engine/compress/share';
import { makeCompressOptions } from '../../../src/engine/compress/tensor';
import { isHalfExact } from '../../../src/engine/util/half';
import { mulberry32 } from '../../../src/engine/util/random';
import { bruteForceKmeans, expectError, smallInts, tensor, trainedLike } from './helpers';

const exactOpts = makeCompressOptions({ maxExactPoints: 1 << 20 });
// Default histogram sizing; only the exact-path threshold is lowered so 20 000 values take it.
const histOpts = makeCompressOptions({ maxExactPoints: 8 });

describe('compress/kmeans1d', () => {
  it('exact DP equals the brute-force optimum on small arrays', () => {
    const rand = mulberry32(1);
    for (let trial = 0; trial < 60; trial++) {
      const n = 2 + Math.floor(rand() * 8);
      const values =
        trial % 2 === 0
          ? Float32Array.from({ length: n }, () => Math.fround(rand() * 4 - 2))
          : smallInts(n, 3, trial);
      const sw = SortedWeights.from(values);
      for (let k = 1; k <= n + 1; k++) {
        const [r] = kmeans1d(sw, [k], exactOpts);
        const brute = bruteForceKmeans(values, k);
        assert.ok(r!.exact);
        assert.ok(
          Math.abs(r!.sse - brute) <= 1e-9 * (1 + brute),
          `n=${n} k=${k}: ${r!.sse} vs ${brute}`,
        );
        assert.equal(r!.k, Math.min(k, sw.distinct));
      }
    }
  });

  it('histogram path stays within 1 % of the exact optimum', () => {
    const values = trainedLike(20000, 7);
    const sw = SortedWeights.from(values);
    const ks = [2, 3, 4, 8, 16, 32];
    const exact = kmeans1d(sw, ks, exactOpts);
    const approx = kmeans1d(sw, ks, histOpts);
    ks.forEach((k, i) => {
      assert.ok(exact[i]!.exact && !approx[i]!.exact);
      assert.ok(approx[i]!.sse >= exact[i]!.sse * (1 - 1e-9), `k=${k} below optimum`);
      assert.ok(
        approx[i]!.sse <= exact[i]!.sse * 1.01,
        `k=${k}: ${approx[i]!.sse} vs ${exact[i]!.sse}`,
      );
    });
  });

  it('SSE never increases with k (exact and histogram paths)', () => {
    const sw = SortedWeights.from(trainedLike(5000, 3));
    const ks = Array.from({ length: 63 }, (_, i) => i + 2);
    for (const opts of [exactOpts, histOpts]) {
      const res = kmeans1d(sw, ks, opts);
      for (let i = 1; i < res.length; i++) assert.ok(res[i]!.sse <= res[i - 1]!.sse, `k=${ks[i]}`);
    }
  });
});

describe('compress/share', () => {
  it('reconstruction decodes from the codebook storage, per tensor and per channel', () => {
    const data = trainedLike(4 * 3 * 5, 11);
    for (const perChannel of [false, true]) {
      const t = tensor(data, [4, 3, 5], 'conv', 1);
      const r = shareWeights(t, { technique: 'share', k: 4, perChannel });
      const s = r.storage;
      assert.equal(s.kind, 'codebook');
      if (s.kind !== 'codebook') return;
      assert.equal(s.axis, perChannel ? 1 : null);
      for (let i = 0; i < data.length; i++) {
        const c = perChannel ? Math.floor(i / 5) % 3 : 0;
        assert.equal(r.weights[i], s.codebook[c * s.k + s.indices[i]!]);
      }
      // Each weight uses its nearest codebook entry.
      for (let i = 0; i < data.length; i++) {
        const c = perChannel ? Math.floor(i / 5) % 3 : 0;
        const book = s.codebook.subarray(c * s.k, (c + 1) * s.k);
        const best = Math.min(...Array.from(book, (v) => Math.abs(v - data[i]!)));
        assert.equal(Math.abs(r.weights[i]! - data[i]!), best);
      }
    }
  });

  it('per-channel SSE is the sum of per-channel optima (brute force)', () => {
    const data = smallInts(3 * 6, 5, 4);
    const t = tensor(data, [3, 6], 'gemm', 0);
    const r = shareWeights(t, { technique: 'share', k: 3, perChannel: true });
    let brute = 0;
    for (let c = 0; c < 3; c++) brute += bruteForceKmeans(data.subarray(c * 6, c * 6 + 6), 3);
    // Cluster means are rounded to float16: the SSE is the optimum's plus that rounding (≤ 2^-11 relative).
    assert.ok(r.sse >= brute - 1e-9 && r.sse <= brute * (1 + 1e-5) + 1e-9, `${r.sse} vs ${brute}`);
  });

  it('codebooks are float16 values (16 bits per entry) unless a lossless codebook needs float32', () => {
    const data = Float32Array.from({ length: 300 }, (_, i) => Math.fround(Math.sin(i * 1.7) * 0.3));
    const r = shareWeights(tensor(data), { technique: 'share', k: 8, perChannel: false });
    assert.ok(r.storage.kind === 'codebook');
    const cb = r.storage.kind === 'codebook' ? r.storage.codebook : new Float32Array();
    assert.ok(isHalfExact(cb), Array.from(cb).join());
    assert.equal(r.bits.codebook, 8 * 16);
    // Within float16 rounding of the float32 cluster means (k-means on the same sorted runs).
    for (let j = 0; j < 8; j++) {
      let sum = 0;
      let n = 0;
      for (let i = 0; i < data.length; i++) if (r.weights[i] === cb[j]) (sum += data[i]!), n++;
      if (n > 0) assert.ok(Math.abs(cb[j]! - sum / n) <= Math.abs(sum / n) * 2 ** -11 + 2 ** -25, `${cb[j]} vs ${sum / n}`);
    }
    // Lossless (3 distinct values, one not a float16 value): float32 entries, zero error.
    const exact = Float32Array.of(0.1, -1, 0.1, 2, -1);
    const e = shareWeights(tensor(exact), { technique: 'share', k: 16, perChannel: false });
    assert.ok(e.sse < 1e-12);
    assert.deepEqual(Array.from(e.weights), Array.from(exact));
    assert.equal(e.bits.codebook, 3 * 32);
  });

  it('k ≥ distinct values gives zero error and a codebook of the distinct values', () => {
    const data = Float32Array.of(0.5, -1, 0.5, 2, -1, 2, 2);
    const r = shareWeights(tensor(data), { technique: 'share', k: 16, perChannel: false });
    assert.equal(r.sse, 0);
    assert.deepEqual(Array.from(r.weights), Array.from(data));
    assert.equal(r.storage.kind === 'codebook' && r.storage.k, 3);
    assert.deepEqual(r.storage.kind === 'codebook' && Array.from(r.storage.codebook), [-1, 0.5, 2]);
    assert.equal(r.bits.indices, 7 * 2);
    assert.equal(r.bits.codebook, 3 * 16, 'float16 values: 16 bits each');
  });

  it('storage bits: n·⌈log2 k⌉ + C·k·16, Huffman on the indices', () => {
    const data = Float32Array.of(1, 1, 1, 1, 2, 2, 3, 4, 10, 10, 10, 10);
    const r = shareWeights(tensor(data, [2, 6], 'gemm', 0), {
      technique: 'share',
      k: 4,
      perChannel: false,
    });
    assert.equal(r.bits.indices, 12 * 2);
    assert.equal(r.bits.codebook, 4 * 16);
    assert.equal(r.bits.total, 24 + 64);
    // Clusters {1×4}, {2,2}, {3,4}, {10×4}: counts 4,2,2,4 → lengths 2,2,2,2 → 24 bits + table 4·2.
    assert.equal(r.bits.entropyIndices, 24 + 8);
    assert.ok(Math.abs(r.sse - 0.5) < 1e-12);
    const pc = shareWeights(tensor(data, [2, 6], 'gemm', 0), {
      technique: 'share',
      k: 4,
      perChannel: true,
    });
    // Channel 0 has 2 distinct values, channel 1 has 3: the codebooks shrink to k = 3.
    assert.equal(pc.storage.kind === 'codebook' && pc.storage.k, 3);
    assert.equal(pc.bits.codebook, 2 * 3 * 16);
    assert.equal(pc.bits.indices, 12 * 2);
    assert.equal(pc.sse, 0);
  });

  it('a sweep equals single-k calls on the exact path', () => {
    const t = tensor(smallInts(300, 40, 9), [10, 30], 'gemm', 0);
    const ks = [2, 4, 8, 16];
    for (const perChannel of [false, true]) {
      const sweep = shareSweep(t, ks, perChannel);
      ks.forEach((k, i) => {
        const single = shareWeights(t, { technique: 'share', k, perChannel });
        assert.deepEqual(sweep[i]!.weights, single.weights);
        assert.equal(sweep[i]!.sse, single.sse);
      });
    }
  });

  it('is deterministic', () => {
    const t = tensor(trainedLike(30000, 5), [30000]);
    const a = shareWeights(t, { technique: 'share', k: 16, perChannel: false });
    const b = shareWeights(t, { technique: 'share', k: 16, perChannel: false });
    assert.deepEqual(a.weights, b.weights);
  });

  it('rejects bad k and bad tensors', () => {
    const t = tensor(Float32Array.of(1, 2, 3));
    for (const k of [1, 257, 2.5, NaN]) {
      expectError(
        () => shareWeights(t, { technique: 'share', k, perChannel: false }),
        'E_BAD_ARGUMENT',
        String(k),
      );
    }
    const spec = { technique: 'share', k: 4, perChannel: false } as const;
    expectError(
      () => shareWeights(tensor(Float32Array.of(1, NaN)), spec),
      'E_TENSOR_DATA',
      'element 1 is NaN',
    );
    expectError(
      () => shareWeights(tensor(Float32Array.of(Infinity, 1)), spec),
      'E_TENSOR_DATA',
      'element 0 is Infinity',
    );
    expectError(
      () => shareWeights(tensor(new Float32Array(0), [0, 3]), spec),
      'E_TENSOR_DATA',
      'empty',
    );
    expectError(
      () =>
        shareWeights(
          { ...tensor(Float32Array.of(1)), data: Float64Array.of(1) as unknown as Float32Array },
          spec,
        ),
      'E_TENSOR_DATA',
      'Float64Array',
    );
    expectError(
      () => shareWeights(tensor(Float32Array.of(1, 2), [3]), spec),
      'E_TENSOR_DATA',
      'holds 3',
    );
    expectError(
      () => shareWeights(tensor(Float32Array.of(1, 2), [2], 'other', 1), spec),
      'E_BAD_ARGUMENT',
      'channelAxis',
    );
  });
});
