import { strict as assert } from 'node:assert';
import { copyFileSync, mkdirSync, readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import type { TechniqueSpec } from '../../../src/engine/compress';
import { applySpecs } from '../../../src/engine/encode/apply';
import { isCancellationError } from '../../../src/engine/errors';
import { openDataset } from '../../../src/engine/eval/dataset';
import { loadDatasetSpec, type DatasetSpec } from '../../../src/engine/eval/datasetSpec';
import { classesOf, sessionInputs, sessionOutputs, withSession } from '../../../src/engine/eval/session';
import { VariantEvaluator, type VariantResult } from '../../../src/engine/eval/variantEvaluator';
import { openEvaluator, prepareModel, type OpenedEvaluator, type PreparedModel } from '../../../src/engine/explore/workspace';
import { loadModel, saveModel } from '../../../src/engine/onnx';
import { mulberry32 } from '../../../src/engine/util/random';
import { DATA as EVAL_DATA, tempDir } from './helpers';

const FIX = join(__dirname, '../../fixtures');
const DATA = join(FIX, 'data/fmnist-test-1000.dataset.json');

/** LeNet-5 in a fresh folder, inline or with every tensor over 1 kB in `weights.bin`. */
async function lenet(external: boolean): Promise<string> {
  const dir = tempDir();
  const file = join(dir, 'lenet5.onnx');
  if (external) await saveModel(await loadModel(join(FIX, 'lenet5.onnx')), file, { externalData: { location: 'weights.bin', threshold: 1024 } });
  else copyFileSync(join(FIX, 'lenet5.onnx'), file);
  return file;
}

/** The model, 300 samples of the test set, and an evaluator whose variable weights are all compressible layers. */
async function open(file: string): Promise<{ pm: PreparedModel; data: OpenedEvaluator; ev: VariantEvaluator }> {
  const pm = await prepareModel(file, join(file, '..', 'res'));
  const names = pm.layers.map((w) => w.name);
  const data = await openEvaluator(pm, { spec: await loadDatasetSpec(DATA), source: DATA }, [names], { limit: 300, threads: 1, batchSize: 100, signal: undefined });
  return { pm, data, ev: await data.evaluatorFor(names) };
}

/** 3-bit quantized reconstructions of `layers`. */
async function reconstructions(file: string, layers: readonly string[]): Promise<Map<string, Float32Array>> {
  const spec: TechniqueSpec = { technique: 'quant', bits: 3, symmetric: true, perChannel: true, clip: 'minmax' };
  return applySpecs(await loadModel(file), new Map(layers.map((n) => [n, spec])), { encode: false }).reconstructions;
}

function maxDiff(a: Float32Array, b: Float32Array): number {
  assert.equal(a.length, b.length);
  let m = 0;
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i]! - b[i]!));
  return m;
}

function sameResult(disk: VariantResult, fed: VariantResult): void {
  assert.equal(disk.samples, fed.samples);
  assert.equal(disk.loss, fed.loss);
  assert.equal(disk.top1, fed.top1);
  assert.equal(disk.agreement, fed.agreement);
  assert.ok(maxDiff(disk.outputs!, fed.outputs!) < 1e-4, `outputs differ by ${maxDiff(disk.outputs!, fed.outputs!)}`);
}

describe('eval/diskVariant: variants evaluated from a temp data file', function () {
  this.timeout(120_000);

  for (const external of [false, true]) {
    it(`LeNet-5${external ? ' with external data' : ''}: same loss, top-1 and outputs as feeding the variant, originals never read, temp file removed`, async () => {
      const file = await lenet(external);
      const { pm, ev } = await open(file);
      const work = join(file, '..', 'work');
      mkdirSync(work);
      try {
        // Every layer replaced, then only some (the others are copied from the original).
        for (const layers of [pm.layers.map((w) => w.name), [pm.layers[0]!.name, pm.layers[3]!.name]]) {
          const recs = await reconstructions(file, layers);
          const v = ev.diskVariant(work);
          let disk: VariantResult;
          try {
            assert.equal(readdirSync(work).length, 1);
            for (const [n, w] of recs) v.set(n, w);
            disk = await ev.evaluateOnDisk(v, { keepOutputs: true });
          } finally {
            v.dispose();
          }
          assert.deepEqual(readdirSync(work), [], 'the temp data file is gone');
          // (until the fed evaluation below, which needs them)
          if (layers.length === pm.layers.length) assert.equal((ev as unknown as { originals?: unknown }).originals, undefined, 'the evaluator did not read the original weights');
          const fed = await ev.evaluate(recs, { keepOutputs: true });
          sameResult(disk, fed);
          assert.ok(fed.loss > 0 || fed.agreement < 1, '3-bit weights change some predictions');
        }
        // No weight set: the original model.
        const v = ev.diskVariant(work);
        try {
          const r = await ev.evaluateOnDisk(v);
          assert.equal(r.agreement, 1);
          assert.equal(r.loss, 0);
        } finally {
          v.dispose();
        }
      } finally {
        await ev.dispose();
      }
      assert.deepEqual(readdirSync(work), []);
    });
  }

  it('a whole-graph evaluator (no split): the same numbers as fed, for every subset of the weights', async () => {
    const bytes = readFileSync(join(EVAL_DATA, 'tiny.onnx'));
    const spec: DatasetSpec = { format: 'npy', inputs: join(EVAL_DATA, 'tiny-x.npy'), labels: join(EVAL_DATA, 'tiny-y.npy') };
    const ds = await withSession(bytes, {}, async (s) => openDataset(spec, sessionInputs(s), { numClasses: classesOf(sessionOutputs(s)[0]) }));
    const ev = await VariantEvaluator.create(bytes, ['conv.w', 'fc.w', 'fc.b'], ds, { mode: 'inputs' });
    const work = tempDir();
    try {
      assert.equal(ev.mode, 'inputs');
      const rand = mulberry32(7);
      const noisy = (n: string) => Float32Array.from(ev.originalWeights().get(n)!.data, (x) => x + (rand() - 0.5) * 0.3);
      for (const names of [['conv.w'], ['fc.w', 'fc.b'], ['conv.w', 'fc.w', 'fc.b']]) {
        const variant = new Map(names.map((n) => [n, noisy(n)]));
        const v = ev.diskVariant(work);
        let disk: VariantResult;
        try {
          for (const [n, w] of variant) v.set(n, w);
          disk = await ev.evaluateOnDisk(v, { keepOutputs: true });
        } finally {
          v.dispose();
        }
        sameResult(disk, await ev.evaluate(variant, { keepOutputs: true }));
      }
    } finally {
      await ev.dispose();
    }
    assert.deepEqual(readdirSync(work), []);
  });

  it('a cancelled evaluation and refused weights leave no temp file', async () => {
    const file = await lenet(true);
    const { pm, ev } = await open(file);
    const work = join(file, '..', 'work');
    mkdirSync(work);
    try {
      const v = ev.diskVariant(work);
      const ac = new AbortController();
      ac.abort();
      try {
        assert.throws(() => v.set('no.such.weight', new Float32Array(4)), /not one of the evaluator's variable weights/);
        assert.throws(() => v.set(pm.layers[0]!.name, new Float32Array(3)), /has 3 values/);
        await assert.rejects(ev.evaluateOnDisk(v, { signal: ac.signal }), (e: unknown) => isCancellationError(e));
      } finally {
        v.dispose();
      }
      assert.deepEqual(readdirSync(work), []);
    } finally {
      await ev.dispose();
    }
  });
});
