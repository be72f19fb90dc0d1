import { strict as assert } from 'node:assert';
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { openDataset } from '../../../src/engine/eval/dataset';
import { loadDatasetSpec } from '../../../src/engine/eval/datasetSpec';
import { ClassificationAccumulator } from '../../../src/engine/eval/metrics';
import { computeReference } from '../../../src/engine/eval/referenceCache';
import { classesOf, runDataset, sessionInputs, sessionOutputs, withSession } from '../../../src/engine/eval/session';
import { VariantEvaluator } from '../../../src/engine/eval/variantEvaluator';
import { substituteWeights } from '../../../src/engine/eval/weightsAsInputs';
import { decodeModel } from '../../../src/engine/onnx/codec';

const FIX = join(__dirname, '..', '..', 'fixtures');

interface Expected {
  models: Record<string, { accuracy: Record<string, number>; logitsFirst4: number[][]; predictionsTest1000: number[] }>;
}

describe('eval on the real fixtures', () => {
  for (const name of ['lenet5', 'resnet8', 'mobilenet']) {
    it(`${name}: accuracy on fmnist-test-1000 matches PyTorch within 0.2 points, first logits within 1e-4`, async function () {
      const model = join(FIX, `${name}.onnx`);
      const expectedFile = join(FIX, 'expected.json');
      if (!existsSync(model) || !existsSync(expectedFile)) this.skip();
      const expected = (JSON.parse(readFileSync(expectedFile, 'utf8')) as Expected).models[name];
      if (!expected) this.skip();
      const spec = await loadDatasetSpec(join(FIX, 'data', 'fmnist-test-1000.dataset.json'));
      await withSession(readFileSync(model), {}, async (s) => {
        const ds = await openDataset(spec, sessionInputs(s), { numClasses: classesOf(sessionOutputs(s)[0]) });
        const acc = new ClassificationAccumulator();
        const first: number[] = [];
        let disagree = 0;
        await runDataset(
          s,
          ds,
          (out, b) => {
            const d = out['logits']!.data;
            const top1 = acc.add(d, b.count, 10, b.labels);
            top1.forEach((c, i) => (disagree += c === expected.predictionsTest1000[b.start + i] ? 0 : 1));
            if (b.start === 0) first.push(...d.subarray(0, 40));
          },
          { batchSize: 100 },
        );
        assert.equal(acc.counts.samples, 1000);
        assert.ok(Math.abs(acc.top1 - expected.accuracy['fmnist-test-1000']!) <= 0.002, `${acc.top1} vs ${expected.accuracy['fmnist-test-1000']}`);
        expected.logitsFirst4.flat().forEach((v, i) => assert.ok(Math.abs(first[i]! - v) < 1e-4, `logit ${i}: ${first[i]} vs ${v}`));
        assert.ok(disagree <= 2, `${disagree} predictions differ from PyTorch`);
      });
    });
  }

  it('resnet8: evaluators of three layers (one shared pass) match fresh sessions on 4-bit variants', async function () {
    const model = join(FIX, 'resnet8.onnx');
    if (!existsSync(model)) this.skip();
    const bytes = readFileSync(model);
    const spec = { ...(await loadDatasetSpec(join(FIX, 'data', 'fmnist-test-1000.dataset.json'))), limit: 300 };
    const ds = await withSession(bytes, {}, async (s) => openDataset(spec, sessionInputs(s), { numClasses: 10 }));
    const names = decodeModel(bytes).graph!.initializer.filter((t) => t.dims.length >= 2).map((t) => t.name);
    const pick = [names[0]!, names[Math.floor(names.length / 2)]!, names[names.length - 1]!];
    const evs = await VariantEvaluator.createMany(bytes, pick.map((n) => [n]), ds, { batchSize: 100 });
    try {
      for (const [i, ev] of evs.entries()) {
        assert.equal(ev.mode, 'split');
        const same = await ev.evaluate(new Map());
        assert.equal(same.agreement, 1);
        const w = ev.originalWeights().get(pick[i]!)!.data;
        let lo = Infinity;
        let hi = -Infinity;
        for (const x of w) (lo = Math.min(lo, x)), (hi = Math.max(hi, x));
        const step = (hi - lo) / 15;
        const v = w.map((x) => lo + Math.round((x - lo) / step) * step);
        const r = await ev.evaluate(new Map([[pick[i]!, v]]), { keepOutputs: true });
        const want = await withSession(substituteWeights(bytes, new Map([[pick[i]!, v]])), {}, async (s) => (await computeReference(s, ds)).outputs['logits']!.data);
        let md = 0;
        for (let k = 0; k < want.length; k++) md = Math.max(md, Math.abs(want[k]! - r.outputs![k]!));
        assert.ok(md < 1e-4, `${pick[i]}: max |Δ| ${md}`);
      }
    } finally {
      for (const ev of evs) await ev.dispose();
    }
  });

  it('the 100-image IDX files give the same accuracy as the first 100 npy samples', async function () {
    const model = join(FIX, 'lenet5.onnx');
    const idx = join(FIX, 'data', 'fmnist-test-100-images.idx');
    if (!existsSync(model) || !existsSync(idx)) this.skip();
    const spec = await loadDatasetSpec(join(FIX, 'data', 'fmnist-test-1000.dataset.json'));
    const idxSpec = { ...spec, format: 'idx' as const, inputs: idx, labels: join(FIX, 'data', 'fmnist-test-100-labels.idx') };
    const tops: number[][] = [];
    for (const sp of [{ ...spec, limit: 100 }, idxSpec]) {
      await withSession(readFileSync(model), {}, async (s) => {
        const ds = await openDataset(sp, sessionInputs(s), { numClasses: 10 });
        const acc = new ClassificationAccumulator();
        await runDataset(s, ds, (out, b) => void acc.add(out['logits']!.data, b.count, 10, b.labels));
        tops.push([acc.counts.samples, acc.counts.top1Correct, acc.counts.top5Correct]);
      });
    }
    assert.deepEqual(tops[0], tops[1]);
  });
});
