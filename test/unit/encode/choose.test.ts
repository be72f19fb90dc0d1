import * as assert from 'node:assert/strict';
import { compressTensor, type TechniqueSpec, type WeightTensor } from '../../../src/engine/compress';
import { encodingChoices } from '../../../src/engine/encode/choose';
import { randomWeights } from '../helpers/onnxBuilder';
import { firstBitDifference, ortDecode } from './decodeHarness';

const SPECS: Array<[string, TechniqueSpec]> = [
  ['share k=16 per tensor', { technique: 'share', k: 16, perChannel: false }],
  ['share k=5 per channel', { technique: 'share', k: 5, perChannel: true }],
  ['share k=16 scaled', { technique: 'share', k: 16, perChannel: false, scaled: true }],
  ['share k=256', { technique: 'share', k: 256, perChannel: false }],
  ['share k=6 per tensor (radix)', { technique: 'share', k: 6, perChannel: false }],
  ['share k=3 scaled (radix)', { technique: 'share', k: 3, perChannel: false, scaled: true }],
  ['prune 50% + share k=4 (kept indices base 3)', { technique: 'prune+share', prune: { technique: 'prune', pattern: 'unstructured', sparsity: 0.5 }, share: { technique: 'share', k: 4, perChannel: true } }],
  ['prune 70% unstructured', { technique: 'prune', pattern: 'unstructured', sparsity: 0.7 }],
  ['prune 2:4', { technique: 'prune', pattern: 'n:m', sparsity: 0, n: 2, m: 4 }],
  ['prune channels 50%', { technique: 'prune', pattern: 'channel', sparsity: 0.5 }],
  ['quant 8 symmetric per channel', { technique: 'quant', bits: 8, symmetric: true, perChannel: true, clip: 'minmax' }],
  ['quant 8 asymmetric per tensor', { technique: 'quant', bits: 8, symmetric: false, perChannel: false, clip: 'mse' }],
  ['quant 4 symmetric per channel', { technique: 'quant', bits: 4, symmetric: true, perChannel: true, clip: 'mse' }],
  ['quant 3 asymmetric per channel', { technique: 'quant', bits: 3, symmetric: false, perChannel: true, clip: 'minmax' }],
  ['fp16', { technique: 'float', format: 'fp16' }],
  ['bf16', { technique: 'float', format: 'bf16' }],
  ['bf16 m=3', { technique: 'float', format: 'bf16m', mantissaBits: 3 }],
  ['bf16 m=2 e=4', { technique: 'float', format: 'bf16m', mantissaBits: 2, exponentBits: 4 }],
  ['fp8 e4m3', { technique: 'float', format: 'fp8e4m3' }],
  ['fp8 e5m2', { technique: 'float', format: 'fp8e5m2' }],
  ['prune 50% + share k=8', { technique: 'prune+share', prune: { technique: 'prune', pattern: 'unstructured', sparsity: 0.5 }, share: { technique: 'share', k: 8, perChannel: true } }],
  ['prune 60% + quant 4', { technique: 'prune+quant', prune: { technique: 'prune', pattern: 'unstructured', sparsity: 0.6 }, quant: { technique: 'quant', bits: 4, symmetric: true, perChannel: true, clip: 'minmax' } }],
];

describe('encode/choose: every encoding of every technique decodes to the reconstruction bit for bit', () => {
  const dims = [16, 8, 3, 3];
  const tensor: WeightTensor = { data: randomWeights(16 * 8 * 9, 77, 0.05), shape: dims, role: 'conv', channelAxis: 0, name: 'w' };
  for (const [label, spec] of SPECS) {
    it(label, async () => {
      const ct = compressTensor(tensor, spec);
      const choices = encodingChoices('w', dims, ct);
      assert.ok(choices.length >= 2);
      for (const c of choices) {
        const got = await ortDecode('w', dims, c.graph);
        assert.equal(firstBitDifference(got, ct.weights), undefined, `${c.kind}`);
      }
      if (spec.technique === 'share' ? spec.k !== 256 && spec.k !== 16 : spec.technique === 'prune+share' && spec.share.k === 4) {
        assert.ok(choices.some((c) => c.kind.startsWith('radix-')), 'a radix candidate');
      }
      const dense = choices.find((c) => c.kind === 'dense')!;
      assert.ok(choices[0]!.bytes < dense.bytes, `${choices[0]!.kind} (${choices[0]!.bytes} B) beats dense (${dense.bytes} B)`);
    });
  }
});
