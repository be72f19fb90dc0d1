import * as assert from 'node:assert/strict';
import { compressTensor, type TechniqueSpec, type WeightTensor } from '../../../src/engine/compress';
import { chooseEncoding, encodingChoices, exactnessReference } from '../../../src/engine/encode/choose';
import { mulberry32 } from '../../../src/engine/util/random';
import { randomWeights } from '../helpers/onnxBuilder';

describe('encode/choose: sizes computed without building the encodings', () => {
  it('fp16 / bf16 exactness from bit patterns agrees with the round-trip definition', () => {
    const rand = mulberry32(5);
    const bits = new Uint32Array(200_000);
    for (let i = 0; i < bits.length; i++) {
      const r = (rand() * 2 ** 32) >>> 0;
      // Mostly patterns already on the float16 / bfloat16 grids (random exponents), some raw.
      bits[i] = i % 3 === 0 ? r : i % 3 === 1 ? r & 0xffff0000 : (r & 0x8fffe000) + (((r >>> 7) % 48) << 23);
    }
    const specials = [0, 0x80000000, 0x7f800000, 0xff800000, 0x7fc00000, 0x33800000, 0x33c00000, 0x38800000, 0x387fe000, 0x477fe000, 0x477ff000, 0x00000001, 0x3f800001];
    const one = new Float32Array(1);
    const u = new Uint32Array(one.buffer);
    for (const b of [...specials, ...bits]) {
      u[0] = b;
      assert.equal(exactnessReference.fastHalf(one), exactnessReference.half(one), `half 0x${b.toString(16)}`);
      assert.equal(exactnessReference.fastBfloat16(one), exactnessReference.bfloat16(one), `bf16 0x${b.toString(16)}`);
    }
  });

  const specs: TechniqueSpec[] = [
    { technique: 'share', k: 16, perChannel: false },
    { technique: 'share', k: 3, perChannel: true },
    { technique: 'quant', bits: 8, symmetric: false, perChannel: true, clip: 'minmax' },
    { technique: 'quant', bits: 5, symmetric: true, perChannel: false, clip: 'mse' },
    { technique: 'float', format: 'bf16m', mantissaBits: 1 },
    { technique: 'float', format: 'fp16' },
    { technique: 'prune', pattern: 'unstructured', sparsity: 0.9 },
    { technique: 'prune+share', prune: { technique: 'prune', pattern: 'unstructured', sparsity: 0.8 }, share: { technique: 'share', k: 4, perChannel: true } },
    { technique: 'prune+quant', prune: { technique: 'prune', pattern: 'n:m', sparsity: 0, n: 1, m: 4 }, quant: { technique: 'quant', bits: 8, symmetric: false, perChannel: true, clip: 'minmax' } },
    { technique: 'prune+quant', prune: { technique: 'prune', pattern: 'unstructured', sparsity: 0.95 }, quant: { technique: 'quant', bits: 3, symmetric: true, perChannel: true, clip: 'mse' } },
  ];
  for (const [shape, axis] of [[[24, 10], 1], [[6, 4, 3, 3], 0], [[7], 0]] as const) {
    it(`chooseEncoding = the smallest built encoding, sizes exact (shape [${shape.join(',')}])`, () => {
      const n = shape.reduce((a, b) => a * b, 1);
      const tensor: WeightTensor = { data: randomWeights(n, 11, 0.1), shape, role: 'other', channelAxis: axis, name: 'w' };
      for (const spec of specs) {
        const ct = compressTensor(tensor, spec);
        // encodingChoices builds every candidate and fails if a size differs from the computed one.
        const all = encodingChoices('w', shape, ct);
        const best = chooseEncoding('w', shape, ct);
        assert.equal(best.kind, all[0]!.kind, JSON.stringify(spec));
        assert.equal(best.bytes, all[0]!.bytes);
        assert.deepEqual(best.graph.initializers.map((t) => t.rawData), all[0]!.graph.initializers.map((t) => t.rawData));
      }
    });
  }
});
