import * as assert from 'node:assert/strict';
import { DataType, floatToBfloat16, floatToHalf, halfToFloat, bfloat16ToFloat } from '../../../src/engine/onnx';
import { packBits, packedLength, unpackWideBits } from '../../../src/engine/encode/bits';
import { toBinary } from '@bufbuild/protobuf';
import { castDecoder, codebookDecoder, maskDecoder, maskedCodebookDecoder, maskedQuantDecoder, quantDecoder, scaledCodebookDecoder, specializedDecoder, specializedRadixDecoder } from '../../../src/engine/encode/decoders';
import { AttributeProtoSchema } from '../../../src/engine/onnx/proto';
import { mulberry32 } from '../../../src/engine/util/random';
import { randomWeights } from '../helpers/onnxBuilder';
import { firstBitDifference, ortDecode } from './decodeHarness';

function randomCodes(n: number, max: number, seed: number): Uint8Array {
  const r = mulberry32(seed);
  return Uint8Array.from({ length: n }, () => Math.floor(r() * max));
}

describe('encode/bits', () => {
  it('packs and unpacks every width 1..16 at odd lengths; size is ⌈n/8⌉·b', () => {
    for (let bits = 1; bits <= 16; bits++) {
      for (const n of [1, 7, 8, 9, 63, 1000]) {
        const r = mulberry32(bits * 1000 + n);
        const codes = Uint16Array.from({ length: n }, () => Math.floor(r() * 2 ** bits));
        const p = packBits(codes, bits);
        assert.equal(p.length, packedLength(n, bits));
        assert.equal(p.length, bits === 8 ? n : Math.ceil(n / 8) * bits);
        assert.deepEqual([...unpackWideBits(p, bits, n)], [...codes]);
      }
    }
    assert.deepEqual([...packBits([1, 0, 1, 1, 0, 0, 0, 1], 1)], [0b10001101]);
    assert.deepEqual([...packBits([0xa, 0x5], 4)], [0x5a, 0, 0, 0]);
    assert.throws(() => packBits([4], 2), /does not fit in 2 bits/);
  });
});

describe('encode/decoders run in onnxruntime and decode bit for bit', () => {
  const dims = [6, 5, 3, 3];
  const n = 6 * 5 * 9;

  for (const bits of [1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 12]) {
    for (const axis of [null, 0, 1] as const) {
      it(`codebook, ${bits}-bit indices, ${axis === null ? 'per tensor' : `per channel on axis ${axis}`}`, async () => {
        const k = 2 ** bits;
        const channels = axis === null ? 1 : dims[axis]!;
        const codebook = randomWeights(channels * k, bits + 17);
        const r = mulberry32(bits * 31 + (axis ?? 9));
        const indices = Uint16Array.from({ length: n }, () => Math.floor(r() * k));
        const expected = new Float32Array(n);
        const strides = [5 * 9, 9, 3, 1];
        for (let i = 0; i < n; i++) {
          const c = axis === null ? 0 : Math.floor(i / strides[axis]!) % dims[axis]!;
          expected[i] = codebook[c * k + indices[i]!]!;
        }
        const got = await ortDecode('w', dims, codebookDecoder('w', { dims, codebook, k, axis, indices, bits }));
        assert.equal(firstBitDifference(got, expected), undefined);
      });
    }
  }

  for (const bits of [2, 3, 4, 5, 7, 8]) {
    for (const symmetric of [true, false]) {
      for (const axis of [null, 0, 1] as const) {
        it(`quant ${bits}-bit ${symmetric ? 'symmetric' : 'asymmetric'} ${axis === null ? 'per tensor' : `axis ${axis}`}`, async () => {
          const channels = axis === null ? 1 : dims[axis]!;
          const scale = Float32Array.from({ length: channels }, (_, c) => 0.01 * (c + 1) + 0.003);
          const max = 2 ** bits;
          const r = mulberry32(bits * 7 + channels);
          const zeroPoint = Int32Array.from({ length: channels }, () => (symmetric ? 0 : Math.floor(r() * max)));
          const raw = randomCodes(n, symmetric ? max - 1 : max, bits);
          const codes = symmetric ? Int8Array.from(raw, (c) => c - (2 ** (bits - 1) - 1)) : raw;
          const strides = [5 * 9, 9, 3, 1];
          const expected = new Float32Array(n);
          for (let i = 0; i < n; i++) {
            const c = axis === null ? 0 : Math.floor(i / strides[axis]!) % dims[axis]!;
            expected[i] = Math.fround(scale[c]! * (codes[i]! - zeroPoint[c]!));
          }
          const got = await ortDecode('w', dims, quantDecoder('w', { dims, bits, symmetric, axis, scale, zeroPoint, codes }));
          assert.equal(firstBitDifference(got, expected), undefined);
        });
      }
    }
  }

  for (const [label, dt, enc, dec] of [
    ['float16', DataType.FLOAT16, floatToHalf, halfToFloat],
    ['bfloat16', DataType.BFLOAT16, floatToBfloat16, bfloat16ToFloat],
  ] as const) {
    it(`${label} + Cast, subnormals included`, async () => {
      const w = randomWeights(n, 5, 0.5);
      w[0] = 1e-7;
      w[1] = -3e-39;
      const codes = Uint16Array.from(w, (v) => enc(v));
      const expected = Float32Array.from(codes, (c) => dec(c));
      const got = await ortDecode('w', dims, castDecoder('w', dims, dt, codes));
      assert.equal(firstBitDifference(got, expected), undefined);
    });
  }

  it('pruned: bit mask + kept values', async () => {
    const w = randomWeights(n, 8);
    const r = mulberry32(4);
    const mask = Uint8Array.from({ length: n }, () => (r() < 0.3 ? 1 : 0));
    const values = w.filter((_, i) => mask[i] === 1);
    const expected = Float32Array.from(w, (v, i) => (mask[i] ? v : 0));
    const got = await ortDecode('w', dims, maskDecoder('w', dims, mask, values));
    assert.equal(firstBitDifference(got, expected), undefined);
  });
});

describe('encode/decoders: function bodies carry no bytes they do not need', () => {
  const dims = [6, 5, 3, 3];
  const n = 6 * 5 * 9;
  const codebook = randomWeights(6 * 16, 3);
  const indices = (k: number): Uint16Array => Uint16Array.from({ length: n }, (_, i) => (i * 7) % k);
  const scale = Float32Array.from({ length: 6 }, (_, c) => 0.01 * (c + 1));
  const quant = (bits: number) => ({ dims, bits, symmetric: false, axis: 0, scale, zeroPoint: new Int32Array(6).fill(1), codes: Uint8Array.from({ length: n }, (_, i) => (i * 5) % 2 ** bits) });
  const graphs = [
    ...[3, 4, 8].flatMap((bits) => [null, 0].map((axis) => codebookDecoder('w', { dims, codebook, k: 2 ** bits, axis, indices: indices(2 ** bits), bits }))),
    ...[null, 0].map((axis) => codebookDecoder('w', { dims, codebook, k: 6, axis, indices: indices(6), bits: 3, radix: true })),
    scaledCodebookDecoder('w', { dims, codebook, k: 16, indices: indices(16), bits: 4, scale, scaleAxis: 0 }),
    ...[false, true].map((radix) => maskedCodebookDecoder('w', { dims, codebook, k: 6, axis: null, indices: indices(6), zeroIndex: 0, radix })),
    quantDecoder('w', quant(4)),
    maskedQuantDecoder('w', quant(3)),
    maskDecoder('w', dims, Uint8Array.from({ length: n }, (_, i) => i % 2), new Float32Array(n / 2)),
  ];
  const functions = new Map(graphs.flatMap((g) => g.functions).map((f) => [f.name, f]));
  for (const [op, k] of [['Codebook', 3], ['CodebookPC', 5], ['Quant', 2]] as const) functions.set(`${op}${k}`, specializedDecoder(op, k)!);
  for (const op of ['CodebookR', 'CodebookRPC', 'CodebookRS']) functions.set(`${op} 6`, specializedRadixDecoder(op, 6)!);
  /** Attributes that say what leaving them out says (Gather/Split axis 0, Reduce* keepdims 1). */
  const DEFAULT: Record<string, [string, number]> = { Gather: ['axis', 0], Split: ['axis', 0], ReduceProd: ['keepdims', 1], ReduceSum: ['keepdims', 1] };

  it('no equal constants twice, no default attributes, no Identity, one-letter names (up to 52 values)', () => {
    assert.ok(functions.size >= 16, `${functions.size} functions`);
    for (const [name, f] of functions) {
      const constants = f.node.filter((x) => x.opType === 'Constant').map((x) => Buffer.from(toBinary(AttributeProtoSchema, x.attribute[0]!)).toString('hex'));
      assert.equal(new Set(constants).size, constants.length, `${name}: a constant made twice`);
      for (const x of f.node) {
        const d = DEFAULT[x.opType];
        assert.ok(!d || !x.attribute.some((a) => a.name === d[0] && Number(a.i) === d[1]), `${name}: ${x.opType} ${d?.[0]}`);
        assert.notEqual(x.opType, 'Identity', name);
      }
      // 52 one-letter names (a-z, A-Z), then two letters (MaskedQuant3 has 55 values)
      const values = [...f.input, ...f.node.flatMap((x) => x.output)];
      const long = values.filter((o) => o.length > 1);
      assert.ok(long.length <= Math.max(0, values.length - 52) && long.every((o) => o.length === 2), `${name}: ${values.join(' ')}`);
      assert.equal(new Set(values).size, values.length, name);
    }
  });
});
