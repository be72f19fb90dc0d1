import { strict as assert } from 'node:assert';
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import * as ort from 'onnxruntime-node';
import { openDataset } from '../../../src/engine/eval/dataset';
import { loadDatasetSpec } from '../../../src/engine/eval/datasetSpec';
import { layoutFeed } from '../../../src/engine/eval/layoutFeed';
import { createSession } from '../../../src/engine/eval/session';
import { modelIo, VariantEvaluator } from '../../../src/engine/eval/variantEvaluator';
import { substituteWeights, type WeightTensor } from '../../../src/engine/eval/weightsAsInputs';
import { decodeModel, encodeModel } from '../../../src/engine/onnx/codec';
import { makeFloatTensor } from '../../../src/engine/onnx';
import { mulberry32 } from '../../../src/engine/util/random';
import { node, randomWeights, tinyCnn } from '../helpers/onnxBuilder';

/** Outputs `y` of a fresh session on `bytes` for the input `x` (extra feeds optional). */
async function run(bytes: Uint8Array, x: ort.Tensor, extra: Record<string, ort.Tensor> = {}, level: 'all' | 'disabled' = 'all'): Promise<Float32Array> {
  const s = await createSession(bytes, { graphOptimizationLevel: level });
  try {
    return (await s.run({ x, ...extra }))['y']!.data as Float32Array;
  } finally {
    await s.release();
  }
}

const input = () => new ort.Tensor('float32', randomWeights(5 * 3 * 8 * 8, 7, 1), [5, 3, 8, 8]);
const weightsOf = (bytes: Uint8Array, names: string[], m = tinyCnn()): Map<string, WeightTensor> =>
  new Map(names.map((n) => {
    const t = m.graph!.initializer.find((i) => i.name === n)!;
    return [n, { dims: t.dims.map(Number), data: new Float32Array(new Uint8Array(t.rawData).buffer.slice(0)) }];
  }));

/** Moves every value by up to ±5 % (seeded), so that a wrong index map cannot go unnoticed. */
function perturb(d: Float32Array, seed: number): Float32Array {
  const r = mulberry32(seed);
  return d.map((x) => x * (1 + (r() - 0.5) * 0.1) + (r() - 0.5) * 0.01);
}

describe('eval/layoutFeed', () => {
  it("feeding a variant in onnxruntime's layout gives a fresh session's outputs on the substituted weights", async () => {
    const bytes = encodeModel(tinyCnn());
    const names = ['conv1.weight', 'conv2.weight', 'fc.weight'];
    const weights = weightsOf(bytes, names);
    const lf = await layoutFeed(bytes, weights, {});
    assert.ok(lf, 'the tiny CNN can be fed in layout');
    // every derived input comes from one of the weights, with its own element count or padded
    for (const d of lf.inputs) assert.ok(names.includes(d.weight) && d.dims.reduce((a, b) => a * b, 1) >= weights.get(d.weight)!.data.length);
    const x = input();
    for (const [i, changed] of [[], ['conv2.weight'], names].entries()) {
      const variant = new Map(changed.map((n, k) => [n, perturb(weights.get(n)!.data, 10 * i + k)]));
      const got = await run(lf.bytes, x, lf.feeds(variant, weights), 'disabled');
      const want = await run(substituteWeights(bytes, variant), x);
      assert.equal(got.length, want.length);
      for (let k = 0; k < got.length; k++) assert.ok(Math.abs(got[k]! - want[k]!) < 1e-5, `${changed.join('+') || 'original'}: y[${k}] ${got[k]} vs ${want[k]}`);
    }
  });

  it('declines when onnxruntime computes the derived weights (a batch norm folded into the convolution)', async () => {
    const m = tinyCnn();
    const g = m.graph!;
    // conv2 → BatchNormalization: onnxruntime folds the scale into conv2's weights (not a gather).
    const bn = (n: string, seed: number, lo: number) => makeFloatTensor(n, randomWeights(8, seed).map((v) => lo + Math.abs(v)), [8]);
    g.initializer.push(bn('bn.scale', 20, 0.5), bn('bn.bias', 21, 0), bn('bn.mean', 22, 0), bn('bn.var', 23, 0.5));
    const at = g.node.findIndex((n) => n.name === 'conv2');
    g.node[at]!.output[0] = 'c2raw';
    g.node.splice(at + 1, 0, node('BatchNormalization', ['c2raw', 'bn.scale', 'bn.bias', 'bn.mean', 'bn.var'], ['c2'], 'bn'));
    const bytes = encodeModel(m);
    assert.equal(await layoutFeed(bytes, weightsOf(bytes, ['conv2.weight'], m), {}), undefined);
    // a weight the fold does not touch still can be fed in layout
    assert.ok(await layoutFeed(bytes, weightsOf(bytes, ['conv1.weight'], m), {}));
  });

  const FIX = join(__dirname, '..', '..', 'fixtures');
  for (const [fixture, pickAt] of [['lenet5', [0, 1]], ['resnet8', [1, 4, 8]], ['mobilenet', [1, 2, 6]]] as const) {
    it(`${fixture}: the evaluator fed in layout gives the same results as rebuilt sessions`, async function () {
      const file = join(FIX, `${fixture}.onnx`);
      if (!existsSync(file)) this.skip();
      const bytes = readFileSync(file);
      const spec = { ...(await loadDatasetSpec(join(FIX, 'data', 'fmnist-test-1000.dataset.json'))), limit: 200 };
      const ds = await openDataset(spec, modelIo(bytes).inputs, { numClasses: 10 });
      const convs = decodeModel(bytes).graph!.initializer.filter((t) => t.dims.length === 4).map((t) => t.name);
      const pick = pickAt.map((i) => convs[i]!);
      const store = await VariantEvaluator.prepare(bytes, pick.map((n) => [n]), ds, { batchSize: 100 });
      for (const [k, name] of pick.entries()) {
        const fed = await VariantEvaluator.fromStore(bytes, [name], store, { batchSize: 100, strategy: 'feed' });
        const rebuilt = await VariantEvaluator.fromStore(bytes, [name], store, { batchSize: 100, strategy: 'rebuild' });
        try {
          const v = new Map([[name, perturb(fed.originalWeights().get(name)!.data, k)]]);
          const a = await fed.evaluate(v, { keepOutputs: true });
          const b = await rebuilt.evaluate(v, { keepOutputs: true });
          assert.ok(fed.layoutFed, `${name} fed in layout`);
          let d = 0;
          for (let i = 0; i < a.outputs!.length; i++) d = Math.max(d, Math.abs(a.outputs![i]! - b.outputs![i]!));
          assert.ok(d < 1e-4, `${name}: max |Δ| ${d}`);
          assert.equal(a.top1, b.top1);
          assert.equal(a.agreement, b.agreement);
          assert.equal(a.loss, b.loss);
        } finally {
          await fed.dispose();
          await rebuilt.dispose();
        }
      }
    });
  }
});
