import { strict as assert } from 'node:assert';
import { copyFileSync, existsSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { isCancellationError } from '../../../src/engine/errors';
import { openDataset } from '../../../src/engine/eval/dataset';
import { loadDatasetSpec } from '../../../src/engine/eval/datasetSpec';
import { computeReference } from '../../../src/engine/eval/referenceCache';
import { createSession } from '../../../src/engine/eval/session';
import { modelIo } from '../../../src/engine/eval/variantEvaluator';
import { analyzeModel, compressModel, exportCandidate, type DataInput, type ExploreEvent, type SensitivityFile } from '../../../src/engine/explore';
import { acquireLock } from '../../../src/engine/explore/workspace';

const FIX = join(__dirname, '../../fixtures');
const DATA = join(FIX, 'data/fmnist-test-1000.dataset.json');
const HOLD = join(FIX, 'data/fmnist-holdout-1000.dataset.json');

async function data(file: string): Promise<DataInput> {
  return { spec: await loadDatasetSpec(file), source: file };
}

/** A copy of LeNet in a fresh temp folder (results go to `<copy>.compress/`). */
function lenet(): string {
  const dir = mkdtempSync(join(tmpdir(), 'explore-'));
  const f = join(dir, 'lenet5.onnx');
  copyFileSync(join(FIX, 'lenet5.onnx'), f);
  return f;
}

describe('explore (LeNet-5, Fashion-MNIST)', function () {
  this.timeout(300_000);
  const limit = 400;

  it('analyze: complete sane matrix; an aborted run keeps its cells and a re-run measures only the rest', async () => {
    const model = lenet();
    const d = await data(DATA);
    const ac = new AbortController();
    let seen = 0;
    await assert.rejects(
      analyzeModel({ model, data: d, techniques: ['share'], limit, signal: ac.signal, onEvent: (e) => e.type === 'cell' && ++seen === 7 && ac.abort() }),
      (e: unknown) => isCancellationError(e),
    );
    const partial = JSON.parse(readFileSync(join(`${model.slice(0, -5)}.compress`, 'sensitivity.json'), 'utf8')) as SensitivityFile;
    assert.equal(partial.complete, false);
    assert.equal(partial.cells.length, 7);
    const events: ExploreEvent[] = [];
    const sf = await analyzeModel({ model, data: d, techniques: ['share'], limit, onEvent: (e) => events.push(e) });
    assert.equal(events.filter((e) => e.type === 'cell').length, 60 - 7, 'only the missing cells are measured');
    assert.equal(sf.complete, true);
    assert.equal(sf.schema, 'onnx-compress/sensitivity@1');
    assert.deepEqual(sf.layers.map((l) => l.name), ['conv1.weight', 'conv2.weight', 'fc1.weight', 'fc2.weight', 'fc3.weight']);
    assert.deepEqual(sf.levels.map((l) => l.id), ['share:k=64', 'share:k=32', 'share:k=16', 'share:k=8', 'share:k=6', 'share:k=4', 'share:k=3', 'share:k=2', 'share:k=16s', 'share:k=8s', 'share:k=6s', 'share:k=4s']);
    assert.equal(sf.cells.length, 60);
    assert.equal(sf.dataset.samples, limit);
    assert.ok(sf.baseline.top1! > 0.85);
    // the first 7 cells are the ones of the interrupted run, unchanged
    assert.deepEqual(sf.cells.slice(0, 7), partial.cells);
    for (const c of sf.cells) {
      assert.ok(c.loss >= -0.05 && c.loss <= 1 && c.ci[0] <= c.loss && c.loss <= c.ci[1]);
      assert.ok(c.onnxBytes > 0 && c.bits > 0 && c.relError >= 0);
    }
    const cell = (l: string, k: number) => sf.cells.find((c) => c.layer === l && c.level === `share:k=${k}`)!;
    // fewer clusters: more weight error on every layer and more loss on most
    for (const l of sf.layers) assert.ok(cell(l.name, 2).relError > cell(l.name, 64).relError);
    // the output divergence (the search's cost) is measured for every cell and grows with the error
    for (const l of sf.layers) assert.ok(cell(l.name, 64).kl! >= 0 && cell(l.name, 2).kl! > 10 * cell(l.name, 64).kl!, l.name);
    assert.ok(sf.layers.filter((l) => cell(l.name, 2).loss > cell(l.name, 64).loss).length >= 4);
    assert.ok(sf.layers.every((l) => cell(l.name, 2).onnxBytes < cell(l.name, 64).onnxBytes));
    // per-channel scales: a few bytes more, far less error at the same k
    const scaled = (l: string, k: number) => sf.cells.find((c) => c.layer === l && c.level === `share:k=${k}s`)!;
    assert.ok(sf.layers.filter((l) => scaled(l.name, 4).relError < cell(l.name, 4).relError).length >= 4);
    // k = 6 and 3 as base-k digits: 2.67 and 1.6 bits per weight, between 8, 4 and 2
    for (const l of sf.layers.filter((x) => x.params >= 1000)) {
      assert.ok(cell(l.name, 6).onnxBytes < cell(l.name, 8).onnxBytes && cell(l.name, 6).onnxBytes > cell(l.name, 4).onnxBytes, l.name);
      assert.ok(cell(l.name, 3).onnxBytes < cell(l.name, 4).onnxBytes && cell(l.name, 3).onnxBytes > cell(l.name, 2).onnxBytes, l.name);
    }
    for (const l of sf.layers) {
      // float16 scales: 2 bytes per output channel (plus the scale tensor's framing)
      const extra = scaled(l.name, 4).onnxBytes - cell(l.name, 4).onnxBytes;
      assert.ok(extra >= 2 * l.shape[0]! && extra <= 2 * l.shape[0]! + 64, `${l.name}: ${extra} bytes more for ${l.shape[0]} scales`);
    }
    const csv = readFileSync(join(`${model.slice(0, -5)}.compress`, 'sensitivity.csv'), 'utf8').trim().split('\n');
    assert.equal(csv.length, 61);
    // a third run has nothing left to measure; a changed model is refused
    const again: ExploreEvent[] = [];
    await analyzeModel({ model, data: d, techniques: ['share'], limit, onEvent: (e) => again.push(e) });
    assert.equal(again.filter((e) => e.type === 'cell').length, 0);
    const bytes = readFileSync(model);
    bytes[bytes.length - 1] ^= 1;
    writeFileSync(model, bytes);
    await assert.rejects(analyzeModel({ model, data: d, techniques: ['share'], limit }), /model changed/);
  });

  it('fast search needs ≥ 5× fewer evaluations than greedy and lands within 10 % of its size', async () => {
    const model = lenet();
    const d = await data(DATA);
    const common = { model, data: d, techniques: ['share'] as const, maxLoss: 0.005, sensitivityLimit: limit, export: false };
    const fast = await compressModel({ ...common, method: 'fast' });
    const greedy = await compressModel({ ...common, method: 'greedy' });
    const size = (cf: typeof fast) => cf.candidates.find((c) => c.id === cf.chosen)!.bytes;
    assert.ok(fast.chosen && greedy.chosen);
    assert.equal(greedy.breakdown!.cells, 0, 'the second run reuses the sensitivity matrix');
    assert.ok(fast.breakdown!.search * 5 <= greedy.breakdown!.search, `fast ${fast.breakdown!.search} vs greedy ${greedy.breakdown!.search} evaluations`);
    assert.ok(size(fast) <= 1.1 * size(greedy), `fast ${size(fast)} vs greedy ${size(greedy)} bytes`);
    // Divergences add up over layers: a candidate's output divergence is near the sum of its
    // cells' (the search's cost), where its summed cell losses are mostly noise.
    const sf = JSON.parse(readFileSync(join(`${model.slice(0, -5)}.compress`, 'sensitivity.json'), 'utf8')) as SensitivityFile;
    for (const c of fast.candidates) {
      let sum = 0;
      for (const [name, p] of Object.entries(c.plan.layers ?? {})) if (p.technique === 'share') sum += sf.cells.find((x) => x.layer === name && x.level === `share:k=${p.k}${p.scaled ? 's' : ''}`)!.kl!;
      assert.ok(c.kl! >= 0.5 * sum && c.kl! <= 2 * sum, `${c.id}: divergence ${c.kl} vs Σ cells ${sum}`);
    }
  });

  it('compress meets the budget on the search data; the exported ONNX runs in onnxruntime with the measured accuracy', async () => {
    const model = lenet();
    const dir = `${model.slice(0, -5)}.compress`;
    const cf = await compressModel({ model, data: await data(DATA), holdout: await data(HOLD), maxLoss: 0.005, sensitivityLimit: limit, techniques: ['share', 'prune', 'quant'] });
    assert.equal(cf.schema, 'onnx-compress/candidates@1');
    for (const k of ['model', 'dataset', 'holdoutDataset', 'budget', 'techniques', 'baseline', 'candidates', 'chosen', 'evaluations', 'seconds', 'outputs'] as const) assert.ok(k in cf, k);
    const c = cf.candidates.find((x) => x.id === cf.chosen)!;
    assert.ok(c.feasible && c.loss <= 0.005);
    // the choice uses the 80 % upper bound of the paired loss, not the point estimate
    assert.equal(cf.selection?.rule, 'upper-bound');
    assert.equal(cf.selection?.confidence, 0.8);
    assert.ok(c.lossUpper! <= 0.005 && c.lossUpper! > c.loss);
    for (const x of cf.candidates) {
      assert.equal(x.feasible, x.lossUpper! <= 0.005 + 1e-12, x.id);
      assert.ok(Math.abs((x.flips!.up - x.flips!.down) / x.flips!.samples - x.loss) < 1e-9, `${x.id}: flips match the loss`);
    }
    assert.ok(cf.selection!.holdoutChecked.includes(c.id) && c.holdout!.ci![0] <= c.holdout!.loss && c.holdout!.loss <= c.holdout!.ci![1]);
    assert.equal(c.holdout!.passed, c.holdout!.loss <= 0.005);
    assert.equal(cf.selection!.holdoutUsedForChoice, cf.selection!.holdoutChecked.length > 1 && c.holdout!.passed === true);
    assert.ok(c.ratio > 4, `ratio ${c.ratio}`);
    // real data: calibrated rounding and bias correction; the export below must apply both to match
    assert.equal(c.plan.biasCorrection, true);
    assert.ok(c.holdout && c.holdout.samples === 1000);
    assert.ok(cf.candidates.some((x) => x.pareto));
    for (const f of [cf.outputs.model!, cf.outputs.archive!, 'candidates.json', 'candidates.csv', 'report.md', 'report.html', 'plan.json']) assert.ok(existsSync(join(dir, f)), f);
    const onnx = readFileSync(join(dir, cf.outputs.model!));
    assert.equal(onnx.length, c.bytes, 'candidate bytes = exported file size');
    // run the exported model for real on the search data
    const ds = await openDataset((await data(DATA)).spec, modelIo(onnx).inputs, { numClasses: 10 });
    const s = await createSession(onnx);
    try {
      const ref = await computeReference(s, ds, { batchSize: 100 });
      const out = Object.values(ref.outputs)[0]!.data;
      let right = 0;
      for (let i = 0; i < ref.count; i++) {
        let best = 0;
        for (let k = 1; k < 10; k++) if (out[i * 10 + k]! > out[i * 10 + best]!) best = k;
        if (best === ref.labels![i]) right++;
      }
      assert.ok(Math.abs(right / ref.count - c.top1!) <= 0.001, `onnxruntime ${right / ref.count} vs measured ${c.top1}`);
    } finally {
      await s.release();
    }
    // export of another candidate through the public API
    const other = cf.candidates[0]!;
    // calibrated layers are rebuilt from the same first samples of the search data, so the data is needed
    if (JSON.stringify(other.plan).includes('"calibrated":true')) {
      await assert.rejects(exportCandidate(dir, other.id, join(dir, 'other.onnx')), /calibrated rounding .*needs the search data/);
    }
    const r = await exportCandidate(dir, other.id, join(dir, 'other.onnx'), false, undefined, await data(DATA));
    assert.equal(r.bytes, other.bytes);
  });

  it("target 'archive': options sized by their entropy-coded bits, every candidate's archive measured, the smallest feasible archive chosen and exported at that size", async () => {
    const model = lenet();
    const dir = `${model.slice(0, -5)}.compress`;
    const cf = await compressModel({ model, data: await data(DATA), maxLoss: 0.005, sensitivityLimit: limit, techniques: ['share', 'prune'], target: 'archive' });
    assert.equal(cf.target, 'archive');
    const feasible = cf.candidates.filter((c) => c.feasible);
    assert.ok(feasible.length > 0 && cf.candidates.every((c) => c.archiveBytes! > 0 && c.archiveBytes! < c.bytes), 'every candidate has an archive smaller than its ONNX file');
    const c = cf.candidates.find((x) => x.id === cf.chosen)!;
    assert.equal(c.archiveBytes, Math.min(...feasible.map((x) => x.archiveBytes!)), 'the smallest feasible archive');
    assert.equal(readFileSync(join(dir, cf.outputs.archive!)).length, c.archiveBytes, 'measured archive = exported archive');
    assert.equal(readFileSync(join(dir, cf.outputs.model!)).length, c.bytes, 'measured ONNX = exported ONNX');
    // the Pareto front is on archive bytes: no front point has a smaller-archive, lower-loss rival
    for (const p of cf.candidates.filter((x) => x.pareto)) assert.ok(!cf.candidates.some((q) => q !== p && q.archiveBytes! < p.archiveBytes! && q.loss < p.loss), p.id);
    await assert.rejects(compressModel({ model, data: await data(DATA), maxLoss: 0.005, target: 'zip' as never }), /target must be 'onnx' or 'archive'/);
  });

  it('a results folder has one run at a time; a stale lock is taken over', () => {
    const dir = mkdtempSync(join(tmpdir(), 'lock-'));
    const release = acquireLock(dir);
    assert.throws(() => acquireLock(dir), /already in use/);
    release();
    writeFileSync(join(dir, '.lock'), '999999999\n');
    acquireLock(dir)();
  });
});
