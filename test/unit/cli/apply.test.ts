import * as assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import * as ort from 'onnxruntime-node';
import { unpackArchive } from '../../../src/engine/encode/archive';
import { listWeights, loadModel, saveModel } from '../../../src/engine/onnx';
import { cli } from './cliHarness';

const LENET = path.resolve('test/fixtures/lenet5.onnx');

describe('cli: apply, info, pack/unpack end to end', function () {
  this.timeout(180_000);
  let dir: string;
  beforeEach(() => (dir = fs.mkdtempSync(path.join(os.tmpdir(), 'onnxc-cli-'))));
  afterEach(() => fs.rmSync(dir, { recursive: true, force: true }));

  it('apply --data: calibrated sharing (k=8 on every ResNet-8 layer) loses far less top-1 than plain sharing, same bytes; no --data is a user error', async () => {
    const RESNET8 = path.resolve('test/fixtures/resnet8.onnx');
    const data = path.resolve('test/fixtures/data/fmnist-test-1000.dataset.json');
    const holdout = path.resolve('test/fixtures/data/fmnist-holdout-1000.dataset.json');
    const top1 = (model: string) => {
      const r = cli(['eval', model, '--data', holdout, '--json']);
      assert.equal(r.code, 0, r.stderr);
      return JSON.parse(r.stdout).top1 as number;
    };
    const result: Record<string, { bytes: number; top1: number }> = {};
    for (const calibrated of [false, true]) {
      const plan = path.join(dir, `plan-${calibrated}.json`);
      fs.writeFileSync(plan, JSON.stringify({ default: { technique: 'share', k: 8, calibrated } }));
      const out = path.join(dir, `r8-${calibrated}.onnx`);
      const r = cli(['apply', RESNET8, '--plan', plan, '--out', out, '--json', ...(calibrated ? ['--data', data, '--calibration-samples', '128'] : [])]);
      assert.equal(r.code, 0, r.stderr);
      result[String(calibrated)] = { bytes: JSON.parse(r.stdout).total.onnxBytes, top1: top1(out) };
      if (calibrated) {
        const missing = cli(['apply', RESNET8, '--plan', plan, '--out', path.join(dir, 'x.onnx')]);
        assert.equal(missing.code, 2);
        assert.match(missing.stderr, /calibrated rounding .*--data/);
        assert.ok(!fs.existsSync(path.join(dir, 'x.onnx')));
      }
    }
    const base = top1(RESNET8);
    // measured on these 1000 held-out samples (every layer, the 144-weight first conv included):
    // plain k=8 loses 15 points, calibrated 2.5
    const lossPlain = base - result['false']!.top1;
    const lossCal = base - result['true']!.top1;
    assert.ok(lossCal < 0.04 && lossPlain - lossCal > 0.08, `loss plain ${lossPlain * 100} pt, calibrated ${lossCal * 100} pt`);
    assert.ok(Math.abs(result['true']!.bytes - result['false']!.bytes) < 64, JSON.stringify(result));
  });

  it('apply --data with "biasCorrection": true: MobileNet shared at k=8 plainly loses far less with corrected biases, stored as uint8 codes (3 bytes less per value, less the decoder); no --data is a user error', async () => {
    const MOBILENET = path.resolve('test/fixtures/mobilenet.onnx');
    const data = path.resolve('test/fixtures/data/fmnist-test-1000.dataset.json');
    const holdout = path.resolve('test/fixtures/data/fmnist-holdout-1000.dataset.json');
    const result: Record<string, { bytes: number; top1: number }> = {};
    for (const corrected of [false, true]) {
      const plan = path.join(dir, `bc-${corrected}.json`);
      fs.writeFileSync(plan, JSON.stringify({ default: { technique: 'share', k: 8 }, ...(corrected ? { biasCorrection: true } : {}) }));
      const out = path.join(dir, `mb-${corrected}.onnx`);
      const r = cli(['apply', MOBILENET, '--plan', plan, '--out', out, '--json', ...(corrected ? ['--data', data] : [])]);
      assert.equal(r.code, 0, r.stderr);
      const e = cli(['eval', out, '--data', holdout, '--json']);
      assert.equal(e.code, 0, e.stderr);
      result[String(corrected)] = { bytes: JSON.parse(r.stdout).total.onnxBytes, top1: JSON.parse(e.stdout).top1 };
      if (corrected) {
        const missing = cli(['apply', MOBILENET, '--plan', plan, '--out', path.join(dir, 'y.onnx')]);
        assert.equal(missing.code, 2);
        assert.match(missing.stderr, /biasCorrection.*--data/);
        assert.ok(!fs.existsSync(path.join(dir, 'y.onnx')));
      }
    }
    // measured: 67.2 % plain, 89.2 % corrected (original 92.5 %)
    assert.ok(result['true']!.top1 - result['false']!.top1 > 0.1, JSON.stringify(result));
    // corrected biases are on uint8 grids, stored as a byte each: 1,258 values, 3,847 bytes less (3
    // a value, less the ~300-byte decoder with a float16 scale and offset per bias, and the biases'
    // names, an initializer's and a Conv input's, become short ones)
    const biases = listWeights(await loadModel(MOBILENET)).filter((w) => w.role === 'bias');
    const values = biases.reduce((s, w) => s + w.params, 0);
    const names = biases.reduce((s, w) => s + 2 * (w.name.length - 2), 0);
    const saved = result['false']!.bytes - result['true']!.bytes;
    assert.ok(Math.abs(saved - (3 * values - 300) - names) < 0.05 * 3 * values, `${saved} bytes saved for ${values} bias values and ${names} bytes of names: ${JSON.stringify(result)}`);
  });

  it('apply --archive on a model with external data is a user error naming the data file; --out alone works', async () => {
    const ext = path.join(dir, 'lenet-ext.onnx');
    await saveModel(await loadModel(LENET), ext, { externalData: { location: 'lenet-ext.bin', threshold: 1024 } });
    const plan = path.join(dir, 'plan.json');
    fs.writeFileSync(plan, JSON.stringify({ default: { technique: 'share', k: 16 } }));
    const out = path.join(dir, 'out.onnx');
    const arc = path.join(dir, 'out.onnxc');
    const r = cli(['apply', ext, '--plan', plan, '--out', out, '--archive', arc]);
    assert.equal(r.code, 2, r.stderr);
    assert.match(r.stderr, /--archive: .*lenet-ext\.onnx keeps weights in external data \(lenet-ext\.bin\)/);
    assert.ok(!fs.existsSync(out) && !fs.existsSync(arc), 'nothing written');
    const ok = cli(['apply', ext, '--plan', plan, '--out', out, '--json']);
    assert.equal(ok.code, 0, ok.stderr);
    assert.ok(fs.existsSync(out));
  });

  it('apply writes a smaller model that runs, an archive that unpacks to it byte for byte, and consistent --json totals', async () => {
    const plan = path.join(dir, 'plan.json');
    fs.writeFileSync(plan, JSON.stringify({ default: { technique: 'share', k: 16 }, layers: { 'fc1.weight': { technique: 'prune+share', sparsity: 0.7, k: 16 }, 'conv2.weight': { technique: 'none' } } }));
    const out = path.join(dir, 'out.onnx');
    const arc = path.join(dir, 'out.onnxc');
    const r = cli(['apply', LENET, '--plan', plan, '--out', out, '--archive', arc, '--json']);
    assert.equal(r.code, 0, r.stderr);
    const rep = JSON.parse(r.stdout);
    assert.equal(rep.total.onnxBytes, fs.statSync(out).size);
    assert.equal(rep.total.archiveBytes, fs.statSync(arc).size);
    assert.equal(rep.total.originalBytes, fs.statSync(LENET).size);
    assert.deepEqual(rep.layers.map((l: { name: string }) => l.name), ['fc1.weight', 'conv1.weight', 'fc2.weight', 'fc3.weight']);
    assert.equal(rep.layers[0].technique, 'prune 70% + share k=16');
    assert.ok(rep.total.ratio > 6, `ratio ${rep.total.ratio}`);
    assert.ok(rep.total.archiveBytes < rep.total.onnxBytes);
    assert.deepEqual(Buffer.from(unpackArchive(fs.readFileSync(arc))), fs.readFileSync(out));
    const s = await ort.InferenceSession.create(out);
    const y = await s.run({ [s.inputNames[0]!]: new ort.Tensor('float32', new Float32Array(784), [1, 1, 28, 28]) });
    assert.equal((y[s.outputNames[0]!]!.data as Float32Array).length, 10);
    await s.release();
    // The human table names every layer and the total.
    const human = cli(['apply', LENET, '--plan', plan, '--out', path.join(dir, 'h.onnx')]);
    assert.equal(human.code, 0, human.stderr);
    assert.match(human.stdout, /fc1\.weight\s+prune 70% \+ share k=16/);
    assert.match(human.stdout, /original 248 kB -> ONNX [\d.]+ kB \([\d.]+×\)/);
  });

  it('bad plans exit 2 with the reason and write nothing', () => {
    const out = path.join(dir, 'out.onnx');
    const cases: Array<[string, RegExp]> = [
      [JSON.stringify({ layers: { 'nope.weight': { technique: 'share', k: 4 } } }), /layer 'nope\.weight' is not a weight of this model/],
      [JSON.stringify({ default: { technique: 'magic' } }), /unknown technique 'magic'/],
      [JSON.stringify({ layers: { 'fc1.weight': { technique: 'share', k: 999 } } }), /fc1\.weight.*999/],
      [JSON.stringify({ layers: { 'fc1.bias': { technique: 'quant', bits: 4 } } }), /'fc1\.bias' cannot be compressed/],
      ['{ not json', /plan\.json is not valid JSON/],
    ];
    for (const [text, re] of cases) {
      const plan = path.join(dir, 'plan.json');
      fs.writeFileSync(plan, text);
      const r = cli(['apply', LENET, '--plan', plan, '--out', out]);
      assert.equal(r.code, 2, `${text}: ${r.stderr}`);
      assert.match(r.stderr, re);
      assert.deepEqual(fs.readdirSync(dir), ['plan.json'], 'no output, no temp files');
    }
    const usage = cli(['apply', LENET, '--out', out]);
    assert.equal(usage.code, 2);
    assert.match(usage.stderr, /missing --plan/);
    const same = cli(['apply', LENET, '--plan', path.join(dir, 'plan.json'), '--out', LENET]);
    assert.equal(same.code, 2);
    assert.match(same.stderr, /is the input model/);
  });

  it('info prints the layer table and a stable --json schema; bad files exit 2 naming the file', () => {
    const r = cli(['info', LENET, '--json']);
    assert.equal(r.code, 0, r.stderr);
    const info = JSON.parse(r.stdout);
    assert.equal(info.schema, 'onnx-compress/info@1');
    for (const key of ['inputs', 'outputs', 'opsets', 'nodes', 'ops', 'weights', 'totalParams', 'totalWeightBytes']) assert.ok(key in info, key);
    assert.deepEqual(Object.keys(info.weights[0]).sort(), ['bytes', 'compressible', 'dtype', 'graph', 'name', 'node', 'op', 'params', 'reason', 'role', 'shape'].filter((k) => k !== 'reason' || 'reason' in info.weights[0]).sort());
    assert.equal(info.totalParams, info.weights.reduce((s: number, w: { params: number }) => s + w.params, 0));
    const human = cli(['info', LENET]);
    assert.match(human.stdout, /fc1\.weight\s+Gemm\s+weight\s+float32\s+\[120×400\]\s+48,000/);
    const bad = path.join(dir, 'bad.onnx');
    fs.writeFileSync(bad, fs.readFileSync(LENET).subarray(0, 5000));
    const e = cli(['info', bad]);
    assert.equal(e.code, 2);
    assert.match(e.stderr, /bad\.onnx/);
    assert.equal(e.stderr.trim().split('\n').length, 1, 'one line');
  });
});
