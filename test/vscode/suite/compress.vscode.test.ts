// In-host tests of the compression commands on the LeNet fixture: analyze -> sensitivity.json, compress with a
// budget -> candidates.json, export -> an ONNX file that onnxruntime-node loads and that meets the budget on the
// same samples, plus the dataset command and the panel protocol's validator. Settings keep the run short
// (`onnxCompress.samples` = 200).
import * as assert from 'node:assert/strict';
import * as fs from 'node:fs';
import { createRequire } from 'node:module';
import * as path from 'node:path';
import * as vscode from 'vscode';
import type { InferenceSession, Tensor } from 'onnxruntime-node';
import { listWeights, loadModel } from '../../../src/engine/onnx';
import type { CandidatesFile, SensitivityFile } from '../../../src/engine/explore/types';
import type { AnalyzeResult, CompressResult } from '../../../src/extension/controller';
import type { ExtensionApi } from '../../../src/extension/extension';
import { buildPanelView, readResults, ResultFileError, validateSensitivity } from '../../../src/extension/results';
import { MessageHandler, ProtocolError, validateFromWebviewMessage, type Envelope } from '../../../src/protocol';

const EXTENSION_ID = 'onnx-compress.onnx-compress';
const SAMPLES = 200;
const MAX_LOSS = 0.02;

function workspaceDir(): string {
  const folder = vscode.workspace.workspaceFolders?.[0];
  assert.ok(folder, 'the test run must open a workspace folder');
  return folder.uri.fsPath;
}

async function api(): Promise<ExtensionApi> {
  const ext = vscode.extensions.getExtension<ExtensionApi>(EXTENSION_ID);
  assert.ok(ext, `extension ${EXTENSION_ID} is not installed`);
  return ext.activate();
}

/** The LeNet fixture with its dataset JSON (the fixture's first 1000 Fashion-MNIST test images). */
function lenet(this: Mocha.Context): string {
  const model = path.join(workspaceDir(), 'lenet5.onnx');
  if (!fs.existsSync(model) || !fs.existsSync(path.join(workspaceDir(), 'data/fmnist-test-1000-images.npy'))) this.skip();
  fs.writeFileSync(
    path.join(workspaceDir(), 'lenet5.dataset.json'),
    JSON.stringify({ format: 'npy', inputs: { input: 'data/fmnist-test-1000-images.npy' }, labels: 'data/fmnist-test-1000-labels.npy', preprocess: { scale: 1 / 255, mean: [0.286], std: [0.353] } }, null, 2),
  );
  return model;
}

/** A little-endian .npy reader for the fixture's u1 images and i8 labels. */
function readNpy(file: string): { shape: number[]; data: Uint8Array | BigInt64Array } {
  const buf = fs.readFileSync(file);
  const headerLen = buf.readUInt16LE(8);
  const header = buf.subarray(10, 10 + headerLen).toString('latin1');
  const descr = /'descr':\s*'([^']+)'/.exec(header)![1];
  const shape = /'shape':\s*\(([^)]*)\)/.exec(header)![1]!.split(',').map((s) => s.trim()).filter(Boolean).map(Number);
  const body = buf.subarray(10 + headerLen);
  if (descr === '|u1') return { shape, data: new Uint8Array(body) };
  if (descr === '<i8') return { shape, data: new BigInt64Array(body.buffer.slice(body.byteOffset, body.byteOffset + body.byteLength)) };
  throw new Error(`unexpected dtype ${descr}`);
}

/** Top-1 accuracy of `modelFile` on the first `n` fixture samples, preprocessed as the dataset JSON says. */
async function top1(modelFile: string, n: number): Promise<number> {
  // The extension's own onnxruntime-node (the installed copy in the vsix run), so one binding stays loaded.
  const ext = vscode.extensions.getExtension(EXTENSION_ID)!;
  const ort = createRequire(path.join(ext.extensionPath, 'package.json'))('onnxruntime-node') as typeof import('onnxruntime-node');
  const images = readNpy(path.join(workspaceDir(), 'data/fmnist-test-1000-images.npy'));
  const labels = readNpy(path.join(workspaceDir(), 'data/fmnist-test-1000-labels.npy'));
  const per = 28 * 28;
  const x = new Float32Array(n * per);
  for (let i = 0; i < n * per; i++) x[i] = ((images.data[i] as number) / 255 - 0.286) / 0.353;
  const session: InferenceSession = await ort.InferenceSession.create(modelFile);
  try {
    const out = await session.run({ [session.inputNames[0]!]: new ort.Tensor('float32', x, [n, 1, 28, 28]) });
    const logits = out[session.outputNames[0]!] as Tensor;
    const classes = logits.dims[1]!;
    const v = logits.data as Float32Array;
    let correct = 0;
    for (let i = 0; i < n; i++) {
      let best = 0;
      for (let k = 1; k < classes; k++) if (v[i * classes + k]! > v[i * classes + best]!) best = k;
      if (BigInt(best) === (labels.data as BigInt64Array)[i]) correct++;
    }
    return correct / n;
  } finally {
    await session.release();
  }
}

suite('compress commands', () => {
  suiteSetup(async () => {
    await vscode.workspace.getConfiguration('onnxCompress').update('samples', SAMPLES, vscode.ConfigurationTarget.Workspace);
  });

  test('contributes every command', async () => {
    await api();
    const all = await vscode.commands.getCommands(true);
    for (const c of ['analyzeSensitivity', 'compress', 'openResults', 'exportCandidate', 'showModelSummary', 'configureDataset']) {
      assert.ok(all.includes(`onnxCompress.${c}`), `onnxCompress.${c} missing`);
    }
  });

  test('analyzeSensitivity writes sensitivity.json with one row per compressible layer', async function () {
    this.timeout(300_000);
    const model = lenet.call(this);
    const t0 = Date.now();
    const r = await vscode.commands.executeCommand<AnalyzeResult>('onnxCompress.analyzeSensitivity', vscode.Uri.file(model));
    console.log(`    analyzeSensitivity: ${((Date.now() - t0) / 1000).toFixed(1)} s, ${r.cells} cells`);
    assert.equal(r.cancelled, false);
    assert.equal(r.resultsDir, path.join(workspaceDir(), 'lenet5.compress'));
    const s = JSON.parse(fs.readFileSync(r.file, 'utf8')) as SensitivityFile;
    assert.equal(s.schema, 'onnx-compress/sensitivity@1');
    assert.equal(s.complete, true);
    assert.equal(s.dataset.samples, SAMPLES);
    const compressible = listWeights(await loadModel(model)).filter((w) => w.compressible).map((w) => w.name);
    assert.deepEqual(s.layers.map((l) => l.name), compressible);
    const levels = new Set(s.levels.map((l) => l.id));
    const expected = s.layers.length * s.levels.length - s.layers.reduce((n, l) => n + Object.keys(l.unsupported ?? {}).length, 0);
    assert.equal(s.cells.length, expected);
    for (const c of s.cells) {
      assert.ok(compressible.includes(c.layer) && levels.has(c.level), `${c.layer} @ ${c.level}`);
      assert.ok(c.ci[0] <= c.loss && c.loss <= c.ci[1], `${c.layer} @ ${c.level}: ${c.loss} outside ${c.ci}`);
      assert.ok(c.samples > 0 && c.samples <= SAMPLES);
    }
    // The panel opened for the model and shows the same rows.
    const panel = (await api()).panels().find((p) => p.model === model);
    assert.ok(panel?.view, 'no results panel for the model');
    assert.deepEqual(panel.view.layers.map((l) => l.name), compressible);
    assert.equal(panel.view.cells.length, s.cells.length);
  });

  test('compress with a loss budget; the exported model loads in onnxruntime and meets the budget', async function () {
    this.timeout(300_000);
    const model = lenet.call(this);
    const t0 = Date.now();
    const r = await vscode.commands.executeCommand<CompressResult>('onnxCompress.compress', vscode.Uri.file(model), { maxLoss: MAX_LOSS, techniques: ['share', 'prune', 'quant', 'float', 'lowrank'] });
    console.log(`    compress: ${((Date.now() - t0) / 1000).toFixed(1)} s, ${r.candidates} candidates, chosen ${r.chosen}`);
    assert.equal(r.cancelled, false);
    assert.ok(r.candidates > 0);
    assert.ok(r.chosen, 'no candidate meets the budget');
    const cf = JSON.parse(fs.readFileSync(r.file, 'utf8')) as CandidatesFile;
    assert.deepEqual(cf.budget, { maxLoss: MAX_LOSS });
    const chosen = cf.candidates.find((c) => c.id === r.chosen)!;
    assert.ok(chosen.feasible && chosen.loss <= MAX_LOSS);

    const out = path.join(workspaceDir(), 'exports', `lenet5.${chosen.id}.onnx`);
    const t1 = Date.now();
    const written = await vscode.commands.executeCommand<string>('onnxCompress.exportCandidate', vscode.Uri.file(model), chosen.id, { outPath: out, overwrite: true, noReveal: true });
    console.log(`    exportCandidate: ${((Date.now() - t1) / 1000).toFixed(1)} s -> ${fs.statSync(out).size} bytes`);
    assert.equal(written, out);
    assert.equal(fs.statSync(out).size, chosen.bytes);
    assert.ok(chosen.bytes < fs.statSync(model).size);
    // Measured independently here, on the same samples the budget was checked on.
    const base = await top1(model, SAMPLES);
    const compressed = await top1(out, SAMPLES);
    assert.equal(base, cf.baseline.top1);
    assert.ok(Math.abs(base - compressed - chosen.loss) < 1e-9, `measured loss ${base - compressed}, candidates.json says ${chosen.loss}`);
    assert.ok(base - compressed <= MAX_LOSS + 1e-9, `loss ${base - compressed} over the budget ${MAX_LOSS}`);

    const panel = (await api()).panels().find((p) => p.model === model);
    assert.equal(panel?.view?.candidates.length, cf.candidates.length);
    assert.equal(panel?.view?.chosen, chosen.id);
  });

  test('cancel keeps the finished cells and the next run resumes from them', async function () {
    this.timeout(300_000);
    const model = lenet.call(this);
    const config = vscode.workspace.getConfiguration('onnxCompress');
    await config.update('resultsFolder', 'cancel-test', vscode.ConfigurationTarget.Workspace);
    try {
      const dir = path.join(workspaceDir(), 'cancel-test', 'lenet5.compress');
      fs.rmSync(dir, { recursive: true, force: true });
      const file = path.join(dir, 'sensitivity.json');
      const run = vscode.commands.executeCommand<AnalyzeResult>('onnxCompress.analyzeSensitivity', vscode.Uri.file(model));
      const cells = (): number => {
        try {
          return (JSON.parse(fs.readFileSync(file, 'utf8')) as SensitivityFile).cells.length;
        } catch {
          return 0;
        }
      };
      for (let i = 0; i < 600 && cells() === 0; i++) await new Promise((r) => setTimeout(r, 100));
      (await api()).cancelRun(model);
      const r = await run;
      assert.equal(r.cancelled, true);
      const kept = JSON.parse(fs.readFileSync(file, 'utf8')) as SensitivityFile;
      assert.equal(kept.complete, false);
      assert.ok(kept.cells.length > 0, 'no cell kept');
      // Cells not yet reached can still turn out unsupported or pruned (analyze's skipReason), so
      // the total is what the finished study measured: every layer × level not marked unsupported.
      const measurable = (f: SensitivityFile): number => f.layers.length * f.levels.length - f.layers.reduce((n, l) => n + Object.keys(l.unsupported ?? {}).length, 0);
      assert.ok(kept.cells.length < measurable(kept), `cancel came too late: all ${measurable(kept)} cells done`);
      assert.ok(!fs.existsSync(path.join(dir, '.lock')), 'the results folder is still locked');

      const again = await vscode.commands.executeCommand<AnalyzeResult>('onnxCompress.analyzeSensitivity', vscode.Uri.file(model));
      assert.equal(again.cancelled, false);
      const full = JSON.parse(fs.readFileSync(file, 'utf8')) as SensitivityFile;
      assert.equal(full.complete, true);
      const total = measurable(full);
      assert.equal(full.cells.length, total);
      assert.ok(kept.cells.length < total, 'the first run stopped early');
      // The cells of the first run are reused as they were, not measured again.
      for (const c of kept.cells) assert.deepEqual(full.cells.find((x) => x.layer === c.layer && x.level === c.level), c);
      console.log(`    cancelled after ${kept.cells.length} of ${total} cells; resumed to ${full.cells.length}`);
    } finally {
      await config.update('resultsFolder', undefined, vscode.ConfigurationTarget.Workspace);
    }
  });

  test('configureDataset writes a data-free <model>.dataset.json', async () => {
    const model = path.join(workspaceDir(), 'tiny.onnx');
    const file = await vscode.commands.executeCommand<string>('onnxCompress.configureDataset', vscode.Uri.file(model), { kind: 'synthetic', count: 16 }, true);
    assert.equal(file, path.join(workspaceDir(), 'tiny.dataset.json'));
    assert.deepEqual(JSON.parse(fs.readFileSync(file, 'utf8')), { format: 'synthetic', synthetic: { count: 16 } });
  });
});

suite('result files', () => {
  test('refuses files that break the schema, keeps untrusted strings as data', () => {
    const dir = fs.mkdtempSync(path.join(workspaceDir(), 'results-'));
    try {
      assert.throws(() => validateSensitivity({ schema: 'onnx-compress/sensitivity@1', model: {} }, 'x.json'), ResultFileError);
      assert.throws(() => validateSensitivity({ schema: 'other' }, 'x.json'), /onnx-compress\/sensitivity@1/);
      const evil = '<script>alert("x")</script>\n"quoted"';
      const s = {
        schema: 'onnx-compress/sensitivity@1', tool: 't', model: { file: 'm.onnx', sha256: '', bytes: 1000, compressibleParams: 10 },
        dataset: { source: 'synthetic', samples: 8, labels: false }, confidence: 0.95, budget: null, baseline: { top1: null, samples: 8 },
        levels: [{ id: 'quant:4', technique: 'quant', label: '4 bit', spec: { technique: 'quant', bits: 4, symmetric: true, perChannel: true, clip: 'mse' } }],
        layers: [{ name: evil, op: 'Gemm', node: evil, kind: 'gemm', shape: [2, 5], params: 10, bytes: 40 }],
        cells: [{ layer: evil, level: 'quant:4', loss: 0.01, ci: [0, 0.02], top1: null, agreement: 0.99, samples: 8, stoppedEarly: false, bits: 40, entropyBits: 30, onnxBytes: 12, relError: 0.001, seconds: 0 }],
        complete: true, started: '', updated: '',
      };
      fs.writeFileSync(path.join(dir, 'sensitivity.json'), JSON.stringify(s));
      const first = readResults(dir);
      const view = buildPanelView(first, path.join(dir, 'm.onnx'), new Map([[evil, 'quant:4']]));
      assert.equal(view?.layers[0]?.name, evil);
      assert.equal(view?.layers[0]?.selectedBytes, 12);
      assert.equal(view?.selection.bytes, 1000 - 40 + 12);
      // A file caught mid-rewrite (truncated) keeps the last good copy.
      fs.writeFileSync(path.join(dir, 'sensitivity.json'), JSON.stringify(s).slice(0, 50));
      assert.equal(readResults(dir, first).sensitivity, first.sensitivity);
      assert.throws(() => readResults(dir), ResultFileError);
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });
});

suite('panel protocol', () => {
  test('accepts each well-formed message', () => {
    for (const m of [
      { type: 'ready' },
      { type: 'cancelRun' },
      { type: 'selectLevel', layer: 'fc1.weight', level: 'quant:4' },
      { type: 'selectLevel', layer: 'fc1.weight', level: null },
      { type: 'exportCandidate', candidateId: 'c1' },
      { type: 'showPlan', candidateId: 'c1' },
      { type: 'selectCandidate', candidateId: 'c2' },
      { type: 'startRun', op: 'compress' },
      { type: 'openReport', where: 'browser' },
    ]) assert.deepEqual(validateFromWebviewMessage(m), m);
  });

  test('rejects unknown types, extra keys and bad values', () => {
    const bad: unknown[] = [
      null,
      'ready',
      [],
      { type: 'runScript', code: 'x' },
      { type: 'ready', extra: 1 },
      { type: 'selectLevel', layer: '', level: 'quant:4' },
      { type: 'selectLevel', layer: 'a', level: 4 },
      { type: 'exportCandidate', candidateId: 'x'.repeat(5000) },
      { type: 'exportCandidate' },
      { type: 'startRun', op: 'rm -rf' },
      { type: 'openReport', where: 'file:///etc/passwd' },
      { type: 'ready', __proto__: { polluted: true }, constructor: 1 },
    ];
    for (const m of bad) assert.throws(() => validateFromWebviewMessage(m), ProtocolError, JSON.stringify(m));
  });

  test('request/reply: replies resolve, errors reject with the code, silence times out', async () => {
    // Two handlers wired back to back, as host and webview.
    let a!: MessageHandler<string, string>;
    const b = new MessageHandler<string, string>(
      (m: Envelope<string>) => void Promise.resolve().then(() => a.handleMessage(m)),
      (body) => {
        if (body === 'fail') throw Object.assign(new Error('no such candidate'), { code: 'E_BAD_ARGUMENT' });
        if (body === 'silent') return undefined;
        return `echo:${String(body)}`;
      },
    );
    a = new MessageHandler<string, string>((m) => void Promise.resolve().then(() => b.handleMessage(m)), () => undefined, { timeoutMs: 200 });
    assert.equal(await a.sendRequest('hi'), 'echo:hi');
    await assert.rejects(a.sendRequest('fail'), (e: Error & { code?: string }) => e.code === 'E_BAD_ARGUMENT' && /no such candidate/.test(e.message));
    await assert.rejects(a.sendRequest('silent'), (e: Error & { code?: string }) => e.code === 'E_TIMEOUT');
    const pending = a.sendRequest('silent', 10_000);
    a.dispose();
    await assert.rejects(pending, (e: Error & { code?: string }) => e.code === 'E_DISPOSED');
  });
});
