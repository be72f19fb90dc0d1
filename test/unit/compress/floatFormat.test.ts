import assert from 'node:assert/strict';
import {
  FLOAT_FORMATS,
  decodeFormat,
  encodeFloats,
  floatWeights,
  maxFinite,
  resolveFloatFormat,
  roundToFormat,
} from '../../../src/engine/compress/floatFormat';
import type { FloatFormat } from '../../../src/engine/compress/types';
import { mulberry32 } from '../../../src/engine/util/random';
import { expectError, tensor, trainedLike } from './helpers';

const { fp16, bf16, fp8e4m3, fp8e5m2 } = FLOAT_FORMATS;

function check(f: FloatFormat, cases: [number, number, number][]): void {
  for (const [x, value, code] of cases) {
    const r = roundToFormat(x, f);
    assert.ok(Object.is(r.value, value), `${x}: value ${r.value}, expected ${value}`);
    assert.equal(
      r.code,
      code,
      `${x}: code 0x${r.code.toString(16)}, expected 0x${code.toString(16)}`,
    );
    if (Number.isFinite(value)) assert.ok(Object.is(decodeFormat(code, f), value));
  }
}

/** Independent bf16 reference: RNE on the float32 bit pattern. */
function bf16Reference(x: number): number {
  const u = new Uint32Array(Float32Array.of(x).buffer)[0]!;
  return ((u + 0x7fff + ((u >>> 16) & 1)) >>> 16) & 0xffff;
}

describe('compress/floatFormat', () => {
  it('max finite values', () => {
    assert.equal(maxFinite(fp16), 65504);
    assert.equal(maxFinite(bf16), 3.3895313892515355e38);
    assert.equal(maxFinite(fp8e4m3), 448);
    assert.equal(maxFinite(fp8e5m2), 57344);
  });

  it('fp16: RNE ties, subnormals, signed zero, overflow to Inf', () => {
    check(fp16, [
      [1, 1, 0x3c00],
      [-2, -2, 0xc000],
      [-0, -0, 0x8000],
      [1 + 2 ** -11, 1, 0x3c00], // tie → even mantissa 0
      [1 + 3 * 2 ** -11, 1 + 2 ** -9, 0x3c02], // tie → even mantissa 2
      [65504, 65504, 0x7bff],
      [65519.99, 65504, 0x7bff],
      [65520, Infinity, 0x7c00], // tie between 65504 and 65536 → even = overflow
      [-1e6, -Infinity, 0xfc00],
      [2 ** -14, 2 ** -14, 0x0400], // smallest normal
      [2 ** -24, 2 ** -24, 0x0001], // smallest subnormal
      [2 ** -25, 0, 0x0000], // tie → even 0
      [-(2 ** -25), -0, 0x8000],
      [1.5 * 2 ** -24, 2 ** -23, 0x0002], // tie → even 2
      [2 ** -25 * 1.0001, 2 ** -24, 0x0001],
    ]);
  });

  it('bf16 matches the float32-bit-pattern reference on 20 000 values', () => {
    const rand = mulberry32(5);
    const view = new Uint32Array(1);
    const f = new Float32Array(view.buffer);
    for (let i = 0; i < 20000; i++) {
      view[0] = Math.floor(rand() * 2 ** 32);
      const x = f[0]!;
      if (!Number.isFinite(x)) continue;
      assert.equal(roundToFormat(x, bf16).code, bf16Reference(x), `x = ${x}`);
    }
    // Ties and the overflow edge explicitly.
    for (const x of [1 + 2 ** -8, 1 + 3 * 2 ** -8, 3.4028234663852886e38, 1e-40, -1e-45]) {
      assert.equal(roundToFormat(Math.fround(x), bf16).code, bf16Reference(x));
    }
    assert.equal(roundToFormat(3.4028234663852886e38, bf16).value, Infinity);
  });

  it('fp8 e4m3: max 448, no Inf (saturate), subnormals', () => {
    check(fp8e4m3, [
      [448, 448, 0x7e],
      [464, 448, 0x7e], // tie with the missing 480 → saturate
      [1e6, 448, 0x7e],
      [-1e6, -448, 0xfe],
      [240, 240, 0x77],
      [1, 1, 0x38],
      [2 ** -6, 2 ** -6, 0x08], // smallest normal
      [2 ** -9, 2 ** -9, 0x01], // smallest subnormal
      [2 ** -10, 0, 0x00], // tie → 0
      [1.5 * 2 ** -9, 2 ** -8, 0x02], // tie → even
      [1.0625, 1, 0x38], // tie (1 + 1/16) → even
      [1.1875, 1.25, 0x3a], // tie → even mantissa 2
    ]);
    assert.ok(Number.isNaN(decodeFormat(0x7f, fp8e4m3)));
  });

  it('fp8 e5m2: max 57344, saturates, subnormals', () => {
    check(fp8e5m2, [
      [57344, 57344, 0x7b],
      [61440, 57344, 0x7b], // tie to 65536 → saturate
      [1e9, 57344, 0x7b],
      [1, 1, 0x3c],
      [2 ** -14, 2 ** -14, 0x04],
      [2 ** -16, 2 ** -16, 0x01],
      [2 ** -17, 0, 0x00],
      [1.125, 1, 0x3c],
      [1.375, 1.5, 0x3e],
    ]);
    assert.equal(decodeFormat(0x7c, fp8e5m2), Infinity);
  });

  it('bf16m with m = 0…7 mantissa bits keeps the bf16 exponent when 8 bits are asked for', () => {
    const data = trainedLike(500, 3);
    for (let m = 0; m <= 7; m++) {
      const r = floatWeights(tensor(data), {
        technique: 'float',
        format: 'bf16m',
        mantissaBits: m,
        exponentBits: 8,
      });
      const s = r.storage;
      assert.ok(s.kind === 'float');
      assert.equal(s.spec.bias, 127);
      assert.equal(r.bits.indices, 500 * (9 + m));
      assert.equal(r.bits.params, 0);
      for (let i = 0; i < data.length; i++) {
        const x = data[i]!;
        const e = Math.floor(Math.log2(Math.abs(x)));
        const ulp = 2 ** (e - m);
        assert.ok(Math.abs(r.weights[i]! - x) <= ulp / 2, `m=${m}, x=${x}`);
      }
      if (m === 7) {
        const ref = floatWeights(tensor(data), { technique: 'float', format: 'bf16' });
        assert.deepEqual(r.weights, ref.weights);
      }
    }
  });

  it('bf16m reduced exponent: fewest bits covering the tensor, per-tensor bias, no loss of range', () => {
    // Exponents span 2^-3 … 2^2: 6 binades → 3 exponent bits (7 normal codes).
    const data = Float32Array.of(0.125, -0.2, 1, 3.5, -4, 0);
    const f = resolveFloatFormat({ technique: 'float', format: 'bf16m', mantissaBits: 3 }, data);
    assert.equal(f.exponentBits, 3);
    assert.equal(f.bias, 7 - 2);
    const r = floatWeights(tensor(data), { technique: 'float', format: 'bf16m', mantissaBits: 3 });
    assert.deepEqual(Array.from(r.weights), [0.125, -0.203125, 1, 3.5, -4, 0]);
    assert.equal(r.bits.indices, 6 * (1 + 3 + 3));
    assert.equal(r.bits.params, 8);
    // 3.9 rounds to 4 with 1 mantissa bit: the top exponent moves up so it still fits.
    const g = resolveFloatFormat(
      { technique: 'float', format: 'bf16m', mantissaBits: 1, exponentBits: 2 },
      Float32Array.of(3.9, 1),
    );
    assert.equal(2 ** (3 - g.bias), 4);
    // Forcing too few exponent bits: small values underflow gradually to subnormals/zero.
    const h = floatWeights(tensor(Float32Array.of(4, 2 ** -10)), {
      technique: 'float',
      format: 'bf16m',
      mantissaBits: 2,
      exponentBits: 2,
    });
    assert.deepEqual(Array.from(h.weights), [4, 0]);
  });

  it('the bit-level encoder equals the arithmetic reference on random float32 patterns', () => {
    const rand = mulberry32(99);
    const u = new Uint32Array(30000);
    for (let i = 0; i < u.length; i++) {
      // Mix full-range patterns with small magnitudes (where subnormal targets matter).
      u[i] =
        i % 2
          ? Math.floor(rand() * 2 ** 32)
          : ((rand() < 0.5 ? 0x80000000 : 0) |
              ((Math.floor(rand() * 60) + 90) << 23) |
              Math.floor(rand() * 2 ** 23)) >>>
            0;
    }
    u[0] = 0x80000000;
    u[1] = 0x00000001;
    const data = new Float32Array(u.buffer).map((x) => (Number.isFinite(x) ? x : 1));
    const formats: FloatFormat[] = [
      fp16,
      bf16,
      fp8e4m3,
      fp8e5m2,
      {
        exponentBits: 3,
        mantissaBits: 2,
        bias: -3,
        ieeeSpecials: false,
        nanAllOnes: false,
        overflow: 'saturate',
      },
      {
        exponentBits: 6,
        mantissaBits: 0,
        bias: 140,
        ieeeSpecials: false,
        nanAllOnes: false,
        overflow: 'saturate',
      },
      { ...bf16, mantissaBits: 3, overflow: 'saturate' },
    ];
    for (const f of formats) {
      const codes = encodeFloats(data, f);
      for (let i = 0; i < data.length; i++) {
        assert.equal(
          codes[i],
          roundToFormat(data[i]!, f).code,
          `x = ${data[i]} in ${JSON.stringify(f)}`,
        );
      }
    }
  });

  it('fp16/fp8 tensors: bits and decode', () => {
    const data = trainedLike(100, 9);
    for (const format of ['fp16', 'bf16', 'fp8e4m3', 'fp8e5m2'] as const) {
      const r = floatWeights(tensor(data), { technique: 'float', format });
      const s = r.storage;
      assert.ok(s.kind === 'float');
      const width = 1 + s.spec.exponentBits + s.spec.mantissaBits;
      assert.equal(r.bits.indices, 100 * width);
      for (let i = 0; i < 100; i++)
        assert.equal(r.weights[i], Math.fround(decodeFormat(s.codes[i]!, s.spec)));
    }
  });

  it('documented overflow on tensors: fp16/bf16 give ±Inf (SSE Infinity), fp8 saturates', () => {
    const data = Float32Array.of(1e5, -1e6, 1);
    const h = floatWeights(tensor(data), { technique: 'float', format: 'fp16' });
    assert.deepEqual(Array.from(h.weights), [Infinity, -Infinity, 1]);
    assert.equal(h.sse, Infinity);
    const e4 = floatWeights(tensor(data), { technique: 'float', format: 'fp8e4m3' });
    assert.deepEqual(Array.from(e4.weights), [448, -448, 1]);
    const e5 = floatWeights(tensor(data), { technique: 'float', format: 'fp8e5m2' });
    assert.deepEqual(Array.from(e5.weights), [57344, -57344, 1]);
    // bf16m never overflows: its top exponent is taken from the tensor.
    const m = floatWeights(tensor(data), { technique: 'float', format: 'bf16m', mantissaBits: 2 });
    assert.ok(Number.isFinite(m.sse));
  });

  it('rejects bad float specs', () => {
    const t = tensor(Float32Array.of(1));
    expectError(
      () => floatWeights(t, { technique: 'float', format: 'fp4' as 'fp16' }),
      'E_BAD_ARGUMENT',
      'fp4',
    );
    expectError(
      () => floatWeights(t, { technique: 'float', format: 'bf16m', mantissaBits: 8 }),
      'E_BAD_ARGUMENT',
      '8',
    );
    expectError(
      () => floatWeights(t, { technique: 'float', format: 'bf16m', exponentBits: 0 }),
      'E_BAD_ARGUMENT',
    );
    expectError(
      () => floatWeights(t, { technique: 'float', format: 'fp16', mantissaBits: 3 }),
      'E_BAD_ARGUMENT',
      'bf16m',
    );
  });
});
