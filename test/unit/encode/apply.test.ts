import * as assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as ort from 'onnxruntime-node';
import type { TechniqueSpec } from '../../../src/engine/compress';
import { applySpecs, setReconstructions } from '../../../src/engine/encode/apply';
import { CompressError } from '../../../src/engine/errors';
import { layerSpec, resolvePlan } from '../../../src/engine/explore/plan';
import { encodeModel, listWeights, modelFromBytes, type OnnxModel } from '../../../src/engine/onnx';
import { randomWeights } from '../helpers/onnxBuilder';

const LENET = 'test/fixtures/lenet5.onnx';

async function run(bytes: Uint8Array, x: Float32Array): Promise<Float32Array> {
  const s = await ort.InferenceSession.create(bytes, { logSeverityLevel: 3 });
  try {
    const out = await s.run({ [s.inputNames[0]!]: new ort.Tensor('float32', x, [8, 1, 28, 28]) });
    return out[s.outputNames[0]!]!.data as Float32Array;
  } finally {
    await s.release();
  }
}

function maxRelDiff(a: Float32Array, b: Float32Array): number {
  let scale = 0;
  for (const v of a) scale = Math.max(scale, Math.abs(v));
  let d = 0;
  for (let i = 0; i < a.length; i++) d = Math.max(d, Math.abs(a[i]! - b[i]!));
  return d / Math.max(scale, 1e-12);
}

const CASES: Array<[string, Record<string, unknown>]> = [
  ['share k=16', { technique: 'share', k: 16 }],
  ['share k=4 per channel', { technique: 'share', k: 4, perChannel: true }],
  ['share k=8 scaled', { technique: 'share', k: 8, scaled: true }],
  ['quant 4 bit', { technique: 'quant', bits: 4 }],
  ['quant 8 bit', { technique: 'quant', bits: 8 }],
  ['prune 70%', { technique: 'prune', sparsity: 0.7 }],
  ['prune 50% + share k=16', { technique: 'prune+share', sparsity: 0.5, k: 16 }],
  ['prune 60% + quant 4', { technique: 'prune+quant', sparsity: 0.6, bits: 4 }],
  ['fp16', { technique: 'float', format: 'fp16' }],
  ['bf16 m=3', { technique: 'float', format: 'bf16m', mantissaBits: 3 }],
  ['fp8 e4m3', { technique: 'float', format: 'fp8e4m3' }],
  ['low rank 90% energy', { technique: 'lowrank', energy: 0.9 }],
];

describe('encode/apply on the LeNet-5 fixture', function () {
  this.timeout(120_000);
  const original = fs.readFileSync(LENET);
  const x = randomWeights(8 * 28 * 28, 11, 1);
  let reference: Float32Array;
  before(async () => {
    reference = await run(original, x);
  });

  for (const [label, entry] of CASES) {
    it(`${label}: the encoded model equals the simulated one, untouched tensors stay byte-identical, and it is smaller`, async () => {
      const m = modelFromBytes(original, LENET);
      const weights = listWeights(m);
      const specs = resolvePlan({ default: entry as never }, weights);
      assert.ok(specs.size >= 3, `${specs.size} layers planned`);
      const fromDefault = new Set(specs.keys());
      const result = applySpecs(m, specs, { fromDefault });
      const encoded = encodeModel(m.proto);
      const sim = modelFromBytes(original, LENET);
      setReconstructions(sim, result.reconstructions);
      const a = await run(encoded, x);
      const b = await run(encodeModel(sim.proto), x);
      const tol = entry.technique === 'lowrank' ? 1e-4 : 1e-5;
      assert.ok(maxRelDiff(b, a) <= tol, `encoded vs simulated: ${maxRelDiff(b, a)}`);
      // Untouched tensors (biases...) are the same bytes.
      const after = new Map(listWeights(modelFromBytes(encoded)).map((w) => [w.name, w.tensor]));
      for (const w of weights.filter((w) => !specs.has(w.name) || result.skipped.some((s) => s.name === w.name))) {
        assert.ok(Buffer.from(after.get(w.name)!.rawData).equals(Buffer.from(w.tensor.rawData)), `${w.name} unchanged`);
      }
      assert.ok(encoded.length < original.length, `${encoded.length} < ${original.length}`);
      assert.ok(maxRelDiff(reference, a) < 1, 'still a sane model');
    });
  }

  it('16-cluster sharing on every conv/gemm weight: ONNX file ≤ 0.15 × the original', () => {
    const m = modelFromBytes(original, LENET);
    applySpecs(m, resolvePlan({ default: { technique: 'share', k: 16 } }, listWeights(m)));
    const ratio = encodeModel(m.proto).length / original.length;
    assert.ok(ratio <= 0.15, `ratio ${ratio.toFixed(4)}`);
  });

  it('plan errors name the layer and come before any work', () => {
    const m = modelFromBytes(original, LENET);
    const ws = listWeights(m);
    const compressible = ws.find((w) => w.compressible)!.name;
    const bias = ws.find((w) => w.role === 'bias')!.name;
    const cases: Array<[unknown, RegExp]> = [
      [{ layers: { 'no.such.layer': { technique: 'share', k: 4 } } }, /layer 'no\.such\.layer' is not a weight of this model\. Compressible layers: /],
      [{ layers: { [compressible]: { technique: 'zip' } } }, /unknown technique 'zip'/],
      [{ layers: { [compressible]: { technique: 'share', k: 1000 } } }, new RegExp(`layer '${compressible.replace(/\./g, '\\.')}'.*1000`)],
      [{ layers: { [compressible]: { technique: 'quant', bits: 9 } } }, /bits|9/],
      [{ layers: { [compressible]: { technique: 'share', bits: 4 } } }, /'bits' does not apply to technique 'share'/],
      [{ layers: { [bias]: { technique: 'share', k: 4 } } }, /cannot be compressed \(bias of/],
      [{ defaults: {} }, /unknown key 'defaults'/],
      [{ default: { technique: 'share', k: 4 }, sequentialCalibration: true }, /"sequentialCalibration" works within the bias correction pass: set "biasCorrection": true/],
      [{ default: { technique: 'share', k: 4 }, biasCorrection: true, sequentialCalibration: 'yes' }, /"sequentialCalibration" must be true or false/],
    ];
    for (const [plan, re] of cases) {
      assert.throws(() => resolvePlan(plan as never, ws), (e: unknown) => e instanceof CompressError && e.code === 'E_PLAN' && re.test(e.message), JSON.stringify(plan));
    }
  });

  it('layerSpec fills documented defaults', () => {
    const s = layerSpec({ technique: 'prune+share', sparsity: 0.7, k: 16 }, 'x') as TechniqueSpec & { technique: 'prune+share' };
    assert.deepEqual(s, { technique: 'prune+share', prune: { technique: 'prune', pattern: 'unstructured', sparsity: 0.7 }, share: { technique: 'share', k: 16, perChannel: false } });
  });
});

export type { OnnxModel };
