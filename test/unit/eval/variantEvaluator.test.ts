import { strict as assert } from 'node:assert';
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { openNpy } from '../../../src/engine/eval/arraySource';
import { openDataset } from '../../../src/engine/eval/dataset';
import { loadDatasetSpec } from '../../../src/engine/eval/datasetSpec';
import { ClassificationAccumulator, FidelityAccumulator } from '../../../src/engine/eval/metrics';
import { cachedReference, computeReference, datasetFingerprint } from '../../../src/engine/eval/referenceCache';
import { classesOf, createSession, sessionInputs, sessionOutputs, withSession } from '../../../src/engine/eval/session';
import { VariantEvaluator } from '../../../src/engine/eval/variantEvaluator';
import { splitAtWeights, substituteWeights, weightsAsInputs, WeightSplicer } from '../../../src/engine/eval/weightsAsInputs';
import { decodeModel } from '../../../src/engine/onnx/codec';
import { tensorToFloat32 } from '../../../src/engine/onnx/tensor';
import { mulberry32 } from '../../../src/engine/util/random';
import type { DatasetSpec } from '../../../src/engine/eval/datasetSpec';
import type { Dataset } from '../../../src/engine/eval/types';
import sharp from 'sharp';
import { DATA, rejectsWith, tempDir } from './helpers';

const MODEL = readFileSync(join(DATA, 'tiny.onnx'));
const SPEC: DatasetSpec = { format: 'npy', inputs: join(DATA, 'tiny-x.npy'), labels: join(DATA, 'tiny-y.npy') };

async function dataset(): Promise<Dataset> {
  return withSession(MODEL, {}, async (s) => openDataset(SPEC, sessionInputs(s), { numClasses: classesOf(sessionOutputs(s)[0]) }));
}

/** Logits of a fresh session on `bytes` over the whole dataset. */
async function fresh(bytes: Uint8Array, ds: Dataset): Promise<Float32Array> {
  return withSession(bytes, {}, async (s) => (await computeReference(s, ds, { batchSize: 64 })).outputs['logits']!.data);
}

function maxDiff(a: Float32Array, b: Float32Array): number {
  assert.equal(a.length, b.length);
  let m = 0;
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i]! - b[i]!));
  return m;
}

describe('eval/session + referenceCache', () => {
  it('ORT logits equal numpy closed-form logits; labels and metadata come through', async () => {
    const ds = await dataset();
    const logits = await fresh(MODEL, ds);
    const want = (await (await openNpy(join(DATA, 'tiny-logits.npy'))).readRows(0, 400)) as Float32Array;
    assert.ok(maxDiff(logits, want) < 1e-4);
    const s = await createSession(MODEL);
    try {
      assert.deepEqual(sessionInputs(s), [{ name: 'input', dims: ['N', 1, 4, 4], type: 'float32' }]);
      assert.equal(classesOf(sessionOutputs(s)[0]), 10);
    } finally {
      await s.release();
    }
  });

  it('caches reference outputs on disk, keyed by model and data content', async () => {
    const dir = tempDir();
    const ds = await dataset();
    const fp = await datasetFingerprint(SPEC);
    const first = await withSession(MODEL, {}, (s) => cachedReference(dir, MODEL, fp, s, ds));
    const second = await withSession(MODEL, {}, (s) => cachedReference(dir, MODEL, fp, s, ds));
    assert.equal(first.cached, false);
    assert.equal(second.cached, true);
    assert.equal(first.file, second.file);
    assert.deepEqual(second.ref.outputs['logits']!.data, first.ref.outputs['logits']!.data);
    assert.deepEqual(second.ref.labels, first.ref.labels);
    // a change of the data content gives another key
    const copy = join(dir, 'x.npy');
    const bytes = readFileSync(join(DATA, 'tiny-x.npy'));
    writeFileSync(copy, bytes);
    const fpCopy = await datasetFingerprint({ ...SPEC, inputs: copy });
    bytes[bytes.length - 1] ^= 1;
    writeFileSync(copy, bytes);
    assert.notEqual(await datasetFingerprint({ ...SPEC, inputs: copy }), fpCopy);
    assert.notEqual(await datasetFingerprint(SPEC, 10), fp);
  });
});

describe('eval/weightsAsInputs', () => {
  it('moves weights to inputs and splits the graph at the first use', () => {
    const w = weightsAsInputs(MODEL, ['fc.w']);
    assert.deepEqual(w.weights.get('fc.w')!.dims, [10, 48]);
    const split = splitAtWeights(MODEL, ['fc.w'])!;
    assert.deepEqual(split.frontier, ['f']);
    assert.deepEqual(split.outputs, ['logits']);
    assert.equal(split.suffixNodes, 1);
    const first = splitAtWeights(MODEL, ['conv.w'])!;
    assert.deepEqual(first.frontier, ['input']);
    assert.deepEqual(first.frontierFromInputs, ['input']);
    assert.equal(first.prefix.length, 0);
    assert.throws(() => weightsAsInputs(MODEL, ['nope']), /'nope' is not an initializer/);
  });

  it('splices variant weights into the encoded bytes (and falls back for tiny tensors)', () => {
    const { weights } = weightsAsInputs(MODEL, ['conv.w', 'conv.b']);
    const sp = new WeightSplicer(MODEL, weights);
    const v = new Map([['conv.w', new Float32Array(27).map((_, i) => i / 7)], ['conv.b', new Float32Array([1, 2, 3])]]);
    for (const bytes of [sp.bytesFor(v), substituteWeights(MODEL, v)]) {
      const g = decodeModel(bytes.slice()).graph!;
      const get = (n: string) => Array.from(tensorToFloat32(g.initializer.find((t) => t.name === n)!));
      assert.deepEqual(get('conv.w'), Array.from(v.get('conv.w')!));
      assert.deepEqual(get('conv.b'), [1, 2, 3]);
      assert.equal(get('fc.w').length, 480);
    }
    const only = new WeightSplicer(MODEL, weightsAsInputs(MODEL, ['fc.w']).weights);
    const back = decodeModel(only.bytesFor(new Map()).slice()).graph!;
    assert.deepEqual(Array.from(tensorToFloat32(back.initializer.find((t) => t.name === 'fc.w')!)), Array.from(weightsAsInputs(MODEL, ['fc.w']).weights.get('fc.w')!.data));
  });
});

describe('eval/VariantEvaluator', () => {
  const perturb = (d: Float32Array, seed: number, scale: number) => {
    const r = mulberry32(seed);
    return d.map((x) => x + (r() - 0.5) * scale);
  };

  for (const [weight, mode, strategy] of [
    ['fc.w', 'auto', 'feed'],
    ['conv.w', 'auto', 'rebuild'],
    ['fc.w', 'inputs', 'feed'],
    ['fc.w', 'auto', 'rebuild'],
    ['conv.w', 'inputs', 'auto'],
  ] as const) {
    it(`a variant of ${weight} (${mode}, ${strategy}) gives the logits of a fresh session with the same weights`, async () => {
      const ds = await dataset();
      const ev = await VariantEvaluator.create(MODEL, [weight], ds, { mode, strategy, batchSize: 64 });
      try {
        assert.equal(ev.mode, mode === 'inputs' ? 'inputs' : 'split');
        if (strategy !== 'auto') assert.equal(ev.strategy, strategy);
        const orig = ev.originalWeights().get(weight)!;
        const same = await ev.evaluate(new Map(), { keepOutputs: true });
        assert.equal(same.agreement, 1);
        assert.equal(same.top1, same.referenceTop1);
        assert.ok(same.fidelity.maxAbsDiff < 1e-5);
        const v = perturb(orig.data, 7, 0.8);
        const r = await ev.evaluate(new Map([[weight, v]]), { keepOutputs: true });
        const want = await fresh(substituteWeights(MODEL, new Map([[weight, v]])), ds);
        assert.ok(maxDiff(r.outputs!, want) < 1e-5, `max |Δ| ${maxDiff(r.outputs!, want)}`);
        assert.equal(r.samples, 400);
        assert.equal(r.stoppedEarly, false);
        assert.ok(r.agreement < 1);
        // accuracy against labels from the fresh logits
        const labels = (await (await openNpy(join(DATA, 'tiny-y.npy'))).readRows(0, 400)) as BigInt64Array;
        let correct = 0;
        for (let i = 0; i < 400; i++) {
          const row = Array.from(want.subarray(i * 10, i * 10 + 10));
          if (row.indexOf(Math.max(...row)) === Number(labels[i])) correct++;
        }
        assert.equal(r.top1, correct / 400);
        assert.ok(Math.abs(r.loss - (r.referenceTop1 - r.top1)) < 1e-12);
        // top-5 and fidelity equal the general accumulators' on the same outputs (dataset order)
        const acc = new ClassificationAccumulator();
        acc.add(r.outputs!, 400, 10, Int32Array.from(labels, Number));
        assert.equal(r.top5, acc.top5);
        const refLogits = await fresh(MODEL, ds);
        const fid = new FidelityAccumulator(10);
        fid.add(refLogits, r.outputs!, 400, 10);
        const f = fid.result();
        for (const k of ['sqnrDb', 'cosine', 'klSoftmax', 'maxAbsDiff'] as const) assert.ok(Math.abs(r.fidelity[k] - f[k]) <= 1e-9 * Math.max(1, Math.abs(f[k])), `${k}: ${r.fidelity[k]} vs ${f[k]}`);
        assert.equal(r.fidelity.samples, 400);
      } finally {
        await ev.dispose();
      }
    });
  }

  it('evaluators of several layers from one pass equal separately built ones', async () => {
    const ds = await dataset();
    const [a, b] = await VariantEvaluator.createMany(MODEL, [['fc.w'], ['conv.w']], ds, { batchSize: 50 });
    try {
      for (const [ev, name] of [[a!, 'fc.w'], [b!, 'conv.w']] as const) {
        const v = perturb(ev.originalWeights().get(name)!.data, 3, 0.5);
        const r = await ev.evaluate(new Map([[name, v]]), { keepOutputs: true });
        const want = await fresh(substituteWeights(MODEL, new Map([[name, v]])), ds);
        assert.ok(maxDiff(r.outputs!, want) < 1e-5);
      }
    } finally {
      await a!.dispose();
      await b!.dispose();
    }
  });

  it('works on image folders with skipped undecodable files (the sample set is compacted)', async () => {
    const dir = tempDir();
    const r = mulberry32(5);
    for (let i = 0; i < 7; i++) {
      const px = Buffer.from(Array.from({ length: 16 }, () => Math.floor(r() * 256)));
      await sharp(px, { raw: { width: 4, height: 4, channels: 1 } }).png().toFile(join(dir, `${i}.png`));
    }
    writeFileSync(join(dir, '3b.png'), 'broken');
    const ds = await withSession(MODEL, {}, async (s) => openDataset({ format: 'images', inputs: dir }, sessionInputs(s)));
    const [ev] = await VariantEvaluator.createMany(MODEL, [['fc.w']], ds, { batchSize: 3 });
    try {
      assert.equal(ev!.samples, 7);
      const v = perturb(ev!.originalWeights().get('fc.w')!.data, 9, 1);
      const res = await ev!.evaluate(new Map([['fc.w', v]]), { keepOutputs: true });
      const want = await fresh(substituteWeights(MODEL, new Map([['fc.w', v]])), ds);
      assert.equal(want.length, 70);
      assert.ok(maxDiff(res.outputs!.subarray(0, 70), want) < 1e-5);
      assert.ok(Number.isNaN(res.top1));
    } finally {
      await ev!.dispose();
    }
  });

  it('stops early on decisive variants and names the decision', async () => {
    const ds = await dataset();
    const ev = await VariantEvaluator.create(MODEL, ['fc.w'], ds, { batchSize: 25 });
    try {
      const zero = new Float32Array(480);
      const bad = await ev.evaluate(new Map([['fc.w', zero]]), { budget: 0.05 });
      assert.equal(bad.decision, 'over');
      assert.ok(bad.stoppedEarly && bad.samples < 400, `${bad.samples}`);
      assert.ok(bad.ci[0] > 0.05);
      const good = await ev.evaluate(new Map(), { budget: 0.3 });
      assert.equal(good.decision, 'within');
      assert.ok(good.stoppedEarly && good.samples < 400, `${good.samples}`);
      assert.ok(good.ci[1] <= 0.3);
      // stopOn 'over': the bad variant still stops early, the good one runs to its exact loss
      const badScreen = await ev.evaluate(new Map([['fc.w', zero]]), { budget: 0.05, stopOn: 'over' });
      assert.equal(badScreen.decision, 'over');
      assert.ok(badScreen.stoppedEarly);
      const goodScreen = await ev.evaluate(new Map(), { budget: 0.3, stopOn: 'over' });
      assert.deepEqual([goodScreen.decision, goodScreen.samples, goodScreen.stoppedEarly, goodScreen.loss], ['within', 400, false, 0]);
      await rejectsWith(ev.evaluate(new Map([['fc.w', new Float32Array(3)]])), 'E_BAD_ARGUMENT', 'fc.w', '3 values');
      await rejectsWith(ev.evaluate(new Map([['conv.w', new Float32Array(27)]])), 'E_BAD_ARGUMENT', 'conv.w');
    } finally {
      await ev.dispose();
    }
  });
});

describe('eval/VariantEvaluator on MobileNet (Clip bounds from Constant nodes)', () => {
  it('splits every conv layer (constants are recomputed in the suffix, not cached) and matches fresh sessions', async function () {
    const FIX = join(__dirname, '..', '..', 'fixtures');
    const model = join(FIX, 'mobilenet.onnx');
    if (!existsSync(model)) this.skip();
    const bytes = readFileSync(model);
    const spec = { ...(await loadDatasetSpec(join(FIX, 'data', 'fmnist-test-1000.dataset.json'))), limit: 200 };
    const ds = await withSession(bytes, {}, async (s) => openDataset(spec, sessionInputs(s), { numClasses: 10 }));
    const g = decodeModel(bytes).graph!;
    const names = g.initializer.filter((t) => t.dims.length === 4).map((t) => t.name);
    // the fixture's Clip nodes take their bounds from Constant nodes: the case this test is about
    assert.ok(g.node.some((n) => n.opType === 'Clip' && n.input.slice(1).some((i) => g.node.some((c) => c.opType === 'Constant' && c.output[0] === i))));
    const pick = [names[1]!, names[Math.floor(names.length / 2)]!, names[names.length - 1]!];
    const split = splitAtWeights(bytes, [pick[1]!])!;
    assert.equal(split.frontier.length, 1);
    const evs = await VariantEvaluator.createMany(bytes, pick.map((n) => [n]), ds, { batchSize: 100 });
    try {
      for (const [i, ev] of evs.entries()) {
        assert.equal(ev.mode, 'split', pick[i]);
        assert.ok(ev.nodes.perVariant < ev.nodes.total);
        const v = perturbAll(ev.originalWeights().get(pick[i]!)!.data);
        const r = await ev.evaluate(new Map([[pick[i]!, v]]), { keepOutputs: true });
        const want = await fresh(substituteWeights(bytes, new Map([[pick[i]!, v]])), ds);
        assert.ok(maxDiff(r.outputs!, want) < 1e-4, `${pick[i]}: max |Δ| ${maxDiff(r.outputs!, want)}`);
      }
    } finally {
      for (const ev of evs) await ev.dispose();
    }
  });
});

/** Every weight moved by up to 5 % of the tensor's range (seeded). */
function perturbAll(d: Float32Array): Float32Array {
  const r = mulberry32(11);
  let lo = Infinity;
  let hi = -Infinity;
  for (const x of d) (lo = Math.min(lo, x)), (hi = Math.max(hi, x));
  return d.map((x) => x + (r() - 0.5) * 0.1 * (hi - lo));
}

describe('eval/VariantEvaluator on LeNet-5 (strategy, scoring)', () => {
  const FIX = join(__dirname, '..', '..', 'fixtures');
  const load = async (limit: number) => {
    const bytes = readFileSync(join(FIX, 'lenet5.onnx'));
    const spec = { ...(await loadDatasetSpec(join(FIX, 'data', 'fmnist-test-1000.dataset.json'))), limit };
    const ds = await withSession(bytes, {}, async (s) => openDataset(spec, sessionInputs(s), { numClasses: 10 }));
    return { bytes, ds };
  };

  it("'auto' feeds first (weights in onnxruntime's layout); without layoutFeed it rebuilds first on a convolution; all equal fresh sessions", async function () {
    if (!existsSync(join(FIX, 'lenet5.onnx'))) this.skip();
    const { bytes, ds } = await load(300);
    const store = await VariantEvaluator.prepare(bytes, [['fc3.weight'], ['conv2.weight']], ds, { batchSize: 100 });
    const cases = [
      ['fc3.weight', true, 'feed'],
      ['conv2.weight', true, 'feed'],
      ['fc3.weight', false, 'feed'],
      ['conv2.weight', false, 'rebuild'],
    ] as const;
    for (const [name, layoutFeed, first] of cases) {
      const ev = await VariantEvaluator.fromStore(bytes, [name], store, { batchSize: 100, layoutFeed });
      try {
        assert.equal(ev.strategy, first, `${name}, layoutFeed ${layoutFeed}`);
        const v = perturbAll(ev.originalWeights().get(name)!.data);
        const r = await ev.evaluate(new Map([[name, v]]), { keepOutputs: true });
        const want = await fresh(substituteWeights(bytes, new Map([[name, v]])), ds);
        assert.ok(maxDiff(r.outputs!, want) < 1e-4, `${name}: max |Δ| ${maxDiff(r.outputs!, want)}`);
        assert.ok(r.timing.inferenceMs > 0 && r.timing.wallMs >= r.timing.inferenceMs);
        // the way measured first has its costs; for feed the session's creation is set-up
        if (first === 'feed') assert.ok(ev.costs.feedPerSample! > 0 && ev.costs.feedCreate! > 0 && ev.costs.rebuildPerSample === undefined);
        else assert.ok(ev.costs.rebuildPerSample! > 0 && ev.costs.rebuildCreate! > 0 && ev.costs.feedPerSample === undefined);
        // only convolution weights are laid out anew by onnxruntime (Gemm weights are fed as they are)
        assert.equal(ev.layoutFed, layoutFeed && name === 'conv2.weight', `${name}: fed in onnxruntime's layout`);
      } finally {
        await ev.dispose();
      }
    }
  });

  it('scores a classifier exactly as the general accumulators do on the same rows (same doubles)', async function () {
    if (!existsSync(join(FIX, 'lenet5.onnx'))) this.skip();
    const { bytes, ds } = await load(500);
    const store = await VariantEvaluator.prepare(bytes, [['fc1.weight']], ds, { batchSize: 100 });
    const ev = await VariantEvaluator.fromStore(bytes, ['fc1.weight'], store, { batchSize: 100, strategy: 'feed' });
    try {
      const v = perturbAll(ev.originalWeights().get('fc1.weight')!.data);
      const r = await ev.evaluate(new Map([['fc1.weight', v]]), { keepOutputs: true });
      // the evaluator walks the samples in its shuffled order: feed the accumulators the same order
      const N = store.count;
      const ref = store.reference.outputs['logits']!.data;
      const shuffle = (d: Float32Array) => {
        const o = new Float32Array(N * 10);
        store.order.forEach((k, p) => o.set(d.subarray(k * 10, k * 10 + 10), p * 10));
        return o;
      };
      const fid = new FidelityAccumulator(10);
      fid.add(shuffle(ref), shuffle(r.outputs!), N, 10);
      assert.deepEqual(r.fidelity, fid.result());
      const labels = store.reference.labels!;
      const refTop1 = Int32Array.from({ length: N }, (_, i) => topOf(ref, i));
      const acc = new ClassificationAccumulator();
      acc.add(r.outputs!, N, 10, labels, refTop1);
      assert.equal(r.top1, acc.top1);
      assert.equal(r.top5, acc.top5);
      assert.equal(r.agreement, acc.agreement);
      const refAcc = refTop1.reduce((a, t, i) => a + (t === labels[i] ? 1 : 0), 0) / N;
      assert.equal(r.referenceTop1, refAcc);
      assert.ok(Math.abs(r.loss - (refAcc - acc.top1)) < 1e-12);
    } finally {
      await ev.dispose();
    }
  });
});

function topOf(d: Float32Array, i: number): number {
  let b = 0;
  for (let c = 1; c < 10; c++) if (d[i * 10 + c]! > d[i * 10 + b]!) b = c;
  return b;
}

describe('eval/VariantEvaluator on ResNet-8 (residual suffixes)', () => {
  it('the suffix declares the cached frontier shapes (batch symbolic) and its variants equal fresh sessions', async function () {
    const FIX = join(__dirname, '..', '..', 'fixtures');
    const model = join(FIX, 'resnet8.onnx');
    if (!existsSync(model)) this.skip();
    const bytes = readFileSync(model);
    const spec = { ...(await loadDatasetSpec(join(FIX, 'data', 'fmnist-test-1000.dataset.json'))), limit: 200 };
    const ds = await withSession(bytes, {}, async (s) => openDataset(spec, sessionInputs(s), { numClasses: 10 }));
    const layer = 'onnx::Conv_98';
    const store = await VariantEvaluator.prepare(bytes, [[layer]], ds, { batchSize: 100 });
    const plan = store.splits.get(layer)!;
    // a residual block: the block input and the shortcut are both frontier tensors
    assert.equal(plan.frontier.length, 2);
    const shapes = new Map(plan.frontier.map((f) => [f, ['N', ...store.columns.get(f)!.sampleDims]] as const));
    const g = decodeModel(plan.suffixBaked(shapes)).graph!;
    for (const f of plan.frontier) {
      const t = g.input.find((i) => i.name === f)!.type!.value.value as { shape?: { dim: { value: { value: unknown } }[] } };
      assert.deepEqual(t.shape!.dim.map((d) => (typeof d.value.value === 'bigint' ? Number(d.value.value) : d.value.value)), shapes.get(f));
    }
    for (const strategy of ['feed', 'rebuild'] as const) {
      const ev = await VariantEvaluator.fromStore(bytes, [layer], store, { batchSize: 100, strategy });
      try {
        const v = perturbAll(ev.originalWeights().get(layer)!.data);
        const r = await ev.evaluate(new Map([[layer, v]]), { keepOutputs: true });
        const want = await fresh(substituteWeights(bytes, new Map([[layer, v]])), ds);
        assert.ok(maxDiff(r.outputs!, want) < 1e-4, `${strategy}: max |Δ| ${maxDiff(r.outputs!, want)}`);
      } finally {
        await ev.dispose();
      }
    }
  });
});
