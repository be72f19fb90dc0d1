/**
 * Models with external data through analyze and compress (the code path of models over 2 GiB,
 * whose benchmark is `bench/memory.ts`): the same model stored inline and with external data gives
 * the same sensitivity cells and the same chosen plan, onnxruntime reads the external weights from
 * the model's folder, large external tensors are read on use (deferred) and copied file to file
 * when saved, and the compressed model runs.
 */
import * as assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import * as ort from 'onnxruntime-node';
import { makeLargeModel } from '../../../scripts/make-large-model';
import { DeferredExternalBytes } from '../../../src/engine/onnx/externalData';
import { listWeights, loadModel, saveModel, savedSize } from '../../../src/engine/onnx';
import { createSession } from '../../../src/engine/eval/session';
import { mulberry32 } from '../../../src/engine/util/random';
import { buildCli, ROOT, runCli } from './harness';

const LENET = path.join(ROOT, 'test/fixtures/lenet5.onnx');
const LENET_DATA = path.join(ROOT, 'test/fixtures/data/fmnist-test-1000.dataset.json');

/** The measured part of the cells (timings differ run to run). */
/** Cells without their timing and output divergence (compared apart: {@link klOf}). */
function cells(dir: string): unknown[] {
  const sf = JSON.parse(fs.readFileSync(path.join(dir, 'sensitivity.json'), 'utf8'));
  return sf.cells.map(({ kl: _, ...c }: Record<string, unknown>) => ({ ...c, seconds: 0 }));
}

/**
 * The cells' output divergences. Inline weights are fed to onnxruntime in its own layout, external
 * ones as plain inputs: other kernels, the same predictions, logits equal to float rounding, so
 * divergences equal to a relative 1e-4.
 */
function klOf(dir: string): number[] {
  return JSON.parse(fs.readFileSync(path.join(dir, 'sensitivity.json'), 'utf8')).cells.map((c: { kl: number }) => c.kl);
}

/** Candidates without the fields that depend on how the file is stored (bytes, ratio). */
function candidates(dir: string): { chosen: string; list: unknown[]; chosenPlan: unknown } {
  const cf = JSON.parse(fs.readFileSync(path.join(dir, 'candidates.json'), 'utf8'));
  const list = cf.candidates.map((c: Record<string, unknown>) => ({ id: c.id, plan: c.plan, loss: c.loss, top1: c.top1, flips: c.flips, feasible: c.feasible }));
  return { chosen: cf.chosen, list, chosenPlan: cf.candidates.find((c: { id: string }) => c.id === cf.chosen)?.plan };
}

async function outputs(file: string, input: string, dims: number[], folder?: string): Promise<Float32Array> {
  const s = await createSession(fs.readFileSync(file), folder ? { externalDataFolder: folder, intraOpNumThreads: 1 } : { intraOpNumThreads: 1 });
  try {
    const rand = mulberry32(7);
    const x = Float32Array.from({ length: dims.reduce((a, b) => a * b, 1) }, () => rand());
    const r = await s.run({ [input]: new ort.Tensor('float32', x, dims) });
    return (r[s.outputNames[0]!] as ort.Tensor).data as Float32Array;
  } finally {
    await s.release();
  }
}

describe('robustness: external data in analyze and compress', function () {
  this.timeout(300_000);
  let work: string;
  before(() => {
    buildCli();
    work = fs.mkdtempSync(path.join(os.tmpdir(), 'onnxc-ext-'));
  });
  after(() => fs.rmSync(work, { recursive: true, force: true }));

  it('LeNet-5 with every weight over 1 kB in weights.bin: same cells, candidates and plan as inline; the export runs', async () => {
    fs.mkdirSync(path.join(work, 'inline'));
    fs.mkdirSync(path.join(work, 'ext'));
    const inline = path.join(work, 'inline', 'lenet5.onnx');
    const ext = path.join(work, 'ext', 'lenet5.onnx');
    fs.copyFileSync(LENET, inline);
    const saved = await saveModel(await loadModel(LENET), ext, { externalData: { location: 'weights.bin', threshold: 1024 } });
    assert.ok(saved.dataFile && saved.dataBytes > 200_000, 'the weights went to weights.bin');
    assert.ok(saved.modelBytes < 20_000);
    const args = (model: string, out: string): string[] => ['compress', model, '--data', LENET_DATA, '--limit', '300', '--sensitivity-limit', '300', '--techniques', 'share,quant', '--max-loss', '1', '--threads', '1', '--out', out];
    for (const [model, out] of [[inline, 'res-inline'], [ext, 'res-ext']] as const) {
      const r = await runCli(args(model, path.join(work, out)), { timeoutMs: 240_000 });
      assert.equal(r.code, 0, r.stderr);
    }
    const a = path.join(work, 'res-inline');
    const b = path.join(work, 'res-ext');
    assert.deepEqual(cells(b), cells(a));
    const [ka, kb] = [klOf(a), klOf(b)];
    assert.equal(kb.length, ka.length);
    ka.forEach((x, i) => assert.ok(Math.abs(kb[i]! - x) <= 1e-4 * Math.max(x, 1e-9), `cell ${i}: divergence ${kb[i]} vs ${x}`));
    assert.ok((cells(a) as unknown[]).length >= 20);
    assert.deepEqual(candidates(b), candidates(a));
    assert.notEqual(candidates(a).chosen, null);
    // The export of the external model keeps external data when a tensor still reaches 1 kB.
    const outA = path.join(a, 'lenet5.compressed.onnx');
    const outB = path.join(b, 'lenet5.compressed.onnx');
    const cfB = JSON.parse(fs.readFileSync(path.join(b, 'candidates.json'), 'utf8'));
    const dataB = fs.existsSync(`${outB}.data`) ? fs.statSync(`${outB}.data`).size : 0;
    assert.equal(cfB.candidates.find((c: { id: string }) => c.id === cfB.chosen).bytes, fs.statSync(outB).size + dataB, 'candidate bytes = .onnx + data file');
    const ya = await outputs(outA, 'input', [2, 1, 28, 28]);
    const yb = await outputs(outB, 'input', [2, 1, 28, 28], b);
    assert.deepEqual(yb, ya);
  });

  it('an MLP of three 4 MiB layers: weights deferred (read on use), analyze gives the cells of the inline copy', async () => {
    const dir = path.join(work, 'mlp');
    const m = makeLargeModel(dir, { layers: 3, side: 1024, seed: 5 });
    const model = await loadModel(m.model);
    assert.ok(model.external instanceof DeferredExternalBytes);
    const weights = listWeights(model).filter((w) => w.compressible);
    assert.equal(weights.length, 3);
    for (const w of weights) {
      assert.ok(model.external.range(w.tensor), `${w.name} is deferred`);
      assert.equal(w.bytes, m.layerBytes);
    }
    // Read on use: the bytes are the ones in weights.bin.
    const onDisk = fs.readFileSync(m.data);
    const l1 = model.float32(weights[1]!.tensor);
    assert.deepEqual(new Uint8Array(l1.buffer, l1.byteOffset, l1.byteLength), new Uint8Array(onDisk.buffer, onDisk.byteOffset + m.layerBytes, m.layerBytes));
    // Saved inline and with external data: copied file to file, and savedSize says what is written.
    const inline = path.join(work, 'mlp-inline', 'model.onnx');
    fs.mkdirSync(path.dirname(inline));
    const predicted = savedSize(model, inline, 'none');
    const si = await saveModel(model, inline, { externalData: 'none' });
    assert.equal(si.modelBytes, predicted);
    assert.equal(fs.statSync(inline).size, predicted);
    const copy = path.join(work, 'mlp-copy', 'model.onnx');
    fs.mkdirSync(path.dirname(copy));
    const sc = await saveModel(model, copy);
    assert.equal(sc.modelBytes + sc.dataBytes, savedSize(model, copy));
    const again = await loadModel(copy, { deferAbove: Infinity });
    for (const [i, w] of listWeights(again).filter((x) => x.compressible).entries()) {
      assert.deepEqual(again.float32(w.tensor), model.float32(weights[i]!.tensor));
    }
    const args = (file: string, out: string): string[] => ['analyze', file, '--data-free', '--limit', '64', '--techniques', 'float,prune', '--threads', '1', '--out', out];
    for (const [file, out] of [[m.model, 'mlp-res-ext'], [inline, 'mlp-res-inline']] as const) {
      const r = await runCli(args(file, path.join(work, out)), { timeoutMs: 240_000 });
      assert.equal(r.code, 0, r.stderr);
    }
    const cb = cells(path.join(work, 'mlp-res-ext'));
    assert.deepEqual(cb, cells(path.join(work, 'mlp-res-inline')));
    assert.ok(cb.length >= 12);
  });

  it('a deferred tensor whose data file shrank after loading fails with E_EXTERNAL_DATA naming the file', async () => {
    const dir = path.join(work, 'shrink');
    const m = makeLargeModel(dir, { layers: 2, side: 512, seed: 1 });
    const model = await loadModel(m.model);
    fs.truncateSync(m.data, m.layerBytes + 100);
    const w = listWeights(model).filter((x) => x.compressible)[0]!;
    assert.throws(() => model.float32(w.tensor), (e: Error & { code?: string }) => e.code === 'E_EXTERNAL_DATA' && /weights\.bin.*shrank from \d+ to \d+ bytes/.test(e.message));
  });
});
