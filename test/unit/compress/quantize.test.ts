import assert from 'node:assert/strict';
import {
  MSE_CLIP_RATIOS,
  quantizeWeights,
  roundHalfEven,
} from '../../../src/engine/compress/quantize';
import type { QuantSpec } from '../../../src/engine/compress/types';
import { roundToHalf } from '../../../src/engine/util/half';
import { expectError, tensor, trainedLike } from './helpers';

const q = (
  bits: number,
  symmetric: boolean,
  perChannel = false,
  clip: 'minmax' | 'mse' = 'minmax',
): QuantSpec => ({
  technique: 'quant',
  bits,
  symmetric,
  perChannel,
  clip,
});

/** A scale as the quantizer stores it: float16 below 8 bits (in float16's normal range), else float32. */
const stored = (x: number, bits: number): number => (bits < 8 && Math.fround(x) >= 2 ** -14 && Math.fround(x) <= 65504 ? roundToHalf(Math.fround(x)) : Math.fround(x));

describe('compress/quantize', () => {
  it('rounds half to even', () => {
    assert.deepEqual(
      [0.5, 1.5, 2.5, -0.5, -1.5, -2.5, 2.4999, 2.5001].map(roundHalfEven),
      [0, 2, 2, 0, -2, -2, 2, 3],
    );
  });

  it('symmetric closed form: scale = max|w|/(2^(b-1)-1), codes RNE, narrow range', () => {
    const r = quantizeWeights(tensor(Float32Array.of(-3, -1.5, 0.5, 2.5, 3)), q(3, true));
    const s = r.storage;
    assert.ok(s.kind === 'quant');
    assert.equal(s.scale[0], 1);
    assert.equal(s.zeroPoint[0], 0);
    assert.ok(s.codes instanceof Int8Array);
    assert.deepEqual(Array.from(s.codes), [-3, -2, 0, 2, 3]);
    assert.deepEqual(Array.from(r.weights), [-3, -2, 0, 2, 3]);
    assert.equal(r.sse, 0.25 + 0.25 + 0.25);
    assert.equal(r.bits.indices, 5 * 3);
    assert.equal(r.bits.params, 16, 'one float16 scale');
  });

  it('asymmetric closed form: range includes 0, integer zero point', () => {
    const a = quantizeWeights(tensor(Float32Array.of(-1, 0, 1, 2)), q(2, false));
    assert.ok(a.storage.kind === 'quant');
    assert.equal(a.storage.scale[0], 1);
    assert.equal(a.storage.zeroPoint[0], 1);
    assert.deepEqual(Array.from(a.storage.codes), [0, 1, 2, 3]);
    assert.equal(a.sse, 0);
    assert.equal(a.bits.params, 16 + 2);
    // All-positive data: lo is clamped to 0, so zp = 0 and 0.5 (a tie) rounds to code 0.
    const b = quantizeWeights(tensor(Float32Array.of(0.5, 1, 3)), q(2, false));
    assert.ok(b.storage.kind === 'quant');
    assert.equal(b.storage.zeroPoint[0], 0);
    assert.deepEqual(Array.from(b.weights), [0, 1, 3]);
  });

  for (const bits of [2, 4, 8]) {
    for (const symmetric of [true, false]) {
      it(`${bits}-bit ${symmetric ? 'symmetric' : 'asymmetric'} per channel: error ≤ scale/2, decode matches`, () => {
        const data = trainedLike(6 * 50, bits * 10 + (symmetric ? 1 : 0));
        const t = tensor(data, [6, 50], 'gemm', 0);
        const r = quantizeWeights(t, q(bits, symmetric, true));
        const s = r.storage;
        assert.ok(s.kind === 'quant');
        for (let c = 0; c < 6; c++) {
          const ch = data.subarray(c * 50, c * 50 + 50);
          const lo = Math.min(0, ...ch);
          const hi = Math.max(0, ...ch);
          const expected = symmetric
            ? Math.max(-lo, hi) / (2 ** (bits - 1) - 1)
            : (hi - lo) / (2 ** bits - 1);
          assert.equal(s.scale[c], stored(expected, bits));
          for (let i = 0; i < 50; i++) {
            const p = c * 50 + i;
            assert.ok(Math.abs(data[p]! - r.weights[p]!) <= s.scale[c]! * 0.5 * (1 + 1e-6) + 1e-12);
            assert.equal(r.weights[p], Math.fround(s.scale[c]! * (s.codes[p]! - s.zeroPoint[c]!)));
          }
        }
        assert.equal(r.bits.indices, 300 * bits);
        assert.equal(r.bits.params, 6 * (bits < 8 ? 16 : 32) + (symmetric ? 0 : 6 * bits));
      });
    }
  }

  it('MSE clipping is the best α of its grid (brute force) and never worse than min/max', () => {
    const data = trainedLike(2000, 77);
    for (const symmetric of [true, false]) {
      const bits = 3;
      const mse = quantizeWeights(tensor(data), q(bits, symmetric, false, 'mse'));
      const mm = quantizeWeights(tensor(data), q(bits, symmetric, false, 'minmax'));
      assert.ok(mse.sse <= mm.sse);
      let best = Infinity;
      const lo = Math.min(0, ...data);
      const hi = Math.max(0, ...data);
      for (const alpha of MSE_CLIP_RATIOS) {
        let sse = 0;
        if (symmetric) {
          const qmax = 2 ** (bits - 1) - 1;
          const scale = stored((alpha * Math.max(-lo, hi)) / qmax, bits);
          for (const w of data) {
            const c = Math.max(-qmax, Math.min(qmax, roundHalfEven(w / scale)));
            sse += (w - Math.fround(scale * c)) ** 2;
          }
        } else {
          const qmax = 2 ** bits - 1;
          const scale = stored((alpha * hi - alpha * lo) / qmax, bits);
          const zp = Math.max(0, Math.min(qmax, roundHalfEven((-alpha * lo) / scale)));
          for (const w of data) {
            const c = Math.max(0, Math.min(qmax, roundHalfEven(w / scale) + zp));
            sse += (w - Math.fround(scale * (c - zp))) ** 2;
          }
        }
        best = Math.min(best, sse);
      }
      assert.ok(Math.abs(mse.sse - best) <= 1e-9 * best, `${mse.sse} vs ${best}`);
      assert.ok(mse.sse < mm.sse * 0.9, 'clipping should help at 3 bits on heavy-tailed data');
    }
  });

  it('an all-zero tensor quantizes exactly (scale 1)', () => {
    const r = quantizeWeights(tensor(new Float32Array(5)), q(4, false, false, 'mse'));
    assert.equal(r.sse, 0);
    assert.ok(r.storage.kind === 'quant');
    assert.equal(r.storage.scale[0], 1);
  });

  it('rejects bad bit widths and clip modes', () => {
    const t = tensor(Float32Array.of(1, 2));
    for (const bits of [1, 9, 4.5])
      expectError(() => quantizeWeights(t, q(bits, true)), 'E_BAD_ARGUMENT', String(bits));
    expectError(
      () => quantizeWeights(t, { ...q(4, true), clip: 'kl' as 'mse' }),
      'E_BAD_ARGUMENT',
      'kl',
    );
  });
});
