import * as assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import * as ort from 'onnxruntime-node';
import type { TechniqueSpec } from '../../../src/engine/compress';
import { applySpecs, compressWeight, type ApplyOptions } from '../../../src/engine/encode/apply';
import { packArchive, unpackArchive } from '../../../src/engine/encode/archive';
import { BiasCorrector, biasTargets } from '../../../src/engine/eval/biasCorrection';
import { loadDatasetSpec } from '../../../src/engine/eval/datasetSpec';
import { substituteWeights } from '../../../src/engine/eval/weightsAsInputs';
import { DataType, decodeModel, encodeModel, isHalfExact, listWeights, modelFromBytes, modelInfo, type OnnxModel } from '../../../src/engine/onnx';
import { gridOf, gridValue, roundedToGrid } from '../../../src/engine/util/grid';
import { roundedToHalf, roundToHalf } from '../../../src/engine/util/half';
import { mulberry32 } from '../../../src/engine/util/random';

const FIX = path.join(__dirname, '../../fixtures');
const LENET = path.join(FIX, 'lenet5.onnx');
const MOBILENET = path.join(FIX, 'mobilenet.onnx');
const K8: TechniqueSpec = { technique: 'share', k: 8, perChannel: false };

/** The fixture's logits for 16 seeded random images. */
async function logits(bytes: Uint8Array): Promise<Float32Array> {
  const s = await ort.InferenceSession.create(bytes, { logSeverityLevel: 3 });
  try {
    const r = mulberry32(7);
    const x = new ort.Tensor('float32', Float32Array.from({ length: 16 * 28 * 28 }, () => r()), [16, 1, 28, 28]);
    return (await s.run({ [s.inputNames[0]!]: x }))[s.outputNames[0]!]!.data as Float32Array;
  } finally {
    await s.release();
  }
}

/** `file` with `specs` applied and encoded (a fresh copy each time). */
function encoded(file: string, specs: (m: OnnxModel) => Map<string, TechniqueSpec>, o: Partial<ApplyOptions> = {}): Uint8Array {
  const m = modelFromBytes(fs.readFileSync(file), file);
  applySpecs(m, specs(m), o);
  return encodeModel(m.proto);
}

const everyLayer = (m: OnnxModel): Map<string, TechniqueSpec> => new Map(listWeights(m).filter((w) => w.compressible).map((w) => [w.name, K8]));

/** The original float32 biases of `file` by name, rounded to float16 values. */
function roundedBiases(file: string, names?: readonly string[]): Map<string, Float32Array> {
  const m = modelFromBytes(fs.readFileSync(file), file);
  const ws = listWeights(m).filter((w) => w.role === 'bias' && (names === undefined || names.includes(w.name)));
  return new Map(ws.map((w) => [w.name, roundedToHalf(m.float32(w.tensor))!]));
}

/** `variant`'s biases corrected on the first 64 test samples (rounded as `compress` rounds them). */
async function corrected(bytes: Uint8Array, m: OnnxModel, specs: ReadonlyMap<string, TechniqueSpec>, variant: ReadonlyMap<string, Float32Array>): Promise<Map<string, Float32Array>> {
  const bc = await BiasCorrector.create(bytes, biasTargets(m, listWeights(m).filter((w) => specs.has(w.name))), await loadDatasetSpec(path.join(FIX, 'data/fmnist-test-1000.dataset.json')), { samples: 64 });
  try {
    return await bc.correct(variant);
  } finally {
    await bc.dispose();
  }
}

/** The ONNX checker (full check) accepts `bytes`, when a Python with `onnx` is installed. */
function checkOnnx(bytes: Uint8Array): void {
  for (const python of ['python3', '/usr/bin/python3']) {
    const py = spawnSync(python, ['-c', 'import sys, onnx; onnx.checker.check_model(onnx.load_from_string(sys.stdin.buffer.read()), full_check=True)'], { input: bytes });
    if (py.error || /No module named .?onnx/.test(String(py.stderr))) continue;
    assert.equal(py.status, 0, String(py.stderr));
    return;
  }
}

function floatBiases(bytes: Uint8Array): string[] {
  return decodeModel(bytes).graph!.initializer.filter((t) => t.dataType === DataType.FLOAT && t.dims.length === 1).map((t) => t.name);
}

describe('util/half: roundedToHalf', () => {
  it('rounds to the nearest float16 values, subnormals within 2^-25; undefined beyond the range and for NaN/Inf', () => {
    const values = new Float32Array([0.1, -3.14159, 65504, -0, 2 ** -14, 1 + 2 ** -11, 3e-6, -4.75e-5, 1e-9]);
    const r = roundedToHalf(values)!;
    assert.deepEqual(Array.from(r.slice(0, 6)), [0.0999755859375, -3.140625, 65504, -0, 2 ** -14, 1]);
    assert.ok(isHalfExact(r));
    assert.ok(Object.is(r[3], -0));
    for (let i = 6; i < values.length; i++) assert.ok(Math.abs(r[i]! - values[i]!) <= 2 ** -25, `${values[i]} → ${r[i]}`);
    assert.equal(roundedToHalf([1, 65505]), undefined);
    assert.equal(roundedToHalf([1, NaN]), undefined);
    assert.equal(roundedToHalf([1, -Infinity]), undefined);
  });
});

describe('util/grid: uint8 grids with float16 scale and offset', () => {
  it('roundedToGrid: float16 values on a grid gridOf finds back, within a step of the finest grid; constant tensors; undefined beyond the half range', () => {
    const r = mulberry32(3);
    for (let t = 0; t < 300; t++) {
      const spread = 10 ** (r() * 6 - 4);
      const x = Float32Array.from({ length: 4 + Math.floor(r() * 200) }, () => Math.fround((r() - 0.3) * spread));
      const g = roundedToGrid(x)!;
      const grid = gridOf(g)!;
      assert.ok(isHalfExact(g) && isHalfExact([grid.scale, grid.offset]), 'float16 values, scale and offset');
      g.forEach((v, i) => assert.ok(Object.is(gridValue(grid.codes[i]!, grid.scale, grid.offset), v)));
      const lo = Math.min(...x);
      const hi = Math.max(...x);
      // the step is a multiple of the float16 ulp of the largest magnitude: at most twice range / 255
      for (let i = 0; i < x.length; i++) assert.ok(Math.abs(g[i]! - x[i]!) <= (hi - lo) / 255 + 2 ** -24, `${x[i]} → ${g[i]} (range ${hi - lo})`);
    }
    const c = roundedToGrid([0.1, 0.1, 0.1])!;
    assert.deepEqual(Array.from(c), [roundToHalf(0.1), roundToHalf(0.1), roundToHalf(0.1)]);
    assert.equal(gridOf(c)!.scale, 0);
    assert.equal(roundedToGrid([1, 70000]), undefined);
    assert.equal(roundedToGrid([1, NaN]), undefined);
    // the tolerance weighs the error: a tight value is rounded closer
    const x = Float32Array.from({ length: 64 }, (_, i) => Math.fround(Math.sin(i) * 3));
    const tight = roundedToGrid(x, (i) => (i === 5 ? 1e-4 : 1))!;
    // measured: 0.00018 vs 0.0021 (a step is 0.0234)
    const err = Math.abs(tight[5]! - x[5]!);
    assert.ok(err <= Math.abs(roundedToGrid(x)![5]! - x[5]!) && err < 0.001, `${err}`);
  });

  it('gridOf: offset the smallest value, any float16 scale that re-derives every value bit for bit (also grids of values that are not float16); undefined off a grid', () => {
    const scale = roundToHalf(0.0123);
    const values = Float32Array.from({ length: 50 }, (_, i) => gridValue(i === 3 ? 255 : (i * 37) % 256, scale, -1.5));
    assert.ok(!isHalfExact(values));
    const g = gridOf(values)!;
    assert.equal(g.offset, -1.5);
    values.forEach((v, i) => assert.equal(gridValue(g.codes[i]!, g.scale, g.offset), v));
    const off = values.slice();
    off[7] = Math.fround(off[7]! + 1e-6);
    assert.equal(gridOf(off), undefined);
    assert.equal(gridOf(Float32Array.from({ length: 300 }, (_, i) => i)), undefined, '300 levels');
    assert.equal(gridOf([0.1, 0.2]), undefined, 'not a float16 offset');
  });
});

describe('encode/narrow: biases that are float16 values or on uint8 grids are stored in fewer bytes', function () {
  this.timeout(120_000);

  it('MobileNet with corrected biases: on uint8 grids, one uint8 pack, ~1 byte less per value than the FLOAT16 pack less the decoder, logits identical to float32 biases and to the evaluator candidate; valid ONNX; the archive round-trips', async () => {
    const bytes = fs.readFileSync(MOBILENET);
    const m = modelFromBytes(bytes, MOBILENET);
    const specs = everyLayer(m);
    const variant = new Map(listWeights(m).filter((w) => specs.has(w.name)).map((w) => [w.name, compressWeight(m, w, K8).weights]));
    const corr = await corrected(bytes, m, specs, variant);
    assert.equal(corr.size, 16);
    for (const [name, v] of corr) assert.ok(isHalfExact(v), `${name}: corrected values are float16 values`);
    // measured: all 16 (the 1 % rule may keep one as float16)
    const onGrid = [...corr.values()].filter((v) => gridOf(v));
    assert.ok(onGrid.length >= 14, `${onGrid.length} of 16 biases on a grid`);
    const elements = [...corr.values()].reduce((s, v) => s + v.length, 0);
    const gridElements = onGrid.reduce((s, v) => s + v.length, 0);

    const narrow = encoded(MOBILENET, () => specs, { overrides: corr });
    const half = encoded(MOBILENET, () => specs, { overrides: corr, narrowBiases: 'split' });
    const wide = encoded(MOBILENET, () => specs, { overrides: corr, narrowBiases: 'off' });
    assert.equal(floatBiases(wide).length, 16);
    assert.deepEqual(floatBiases(narrow), []);
    assert.deepEqual(floatBiases(half), []);
    // a byte per value less than float16, less the decoder (~300 bytes) and a float16 scale and
    // offset per bias (measured: 32,453 → 31,559 bytes, 894 for 1,258 values)
    const saved = half.length - narrow.length;
    assert.ok(saved > gridElements - 400 && saved < gridElements - 200, `${half.length} → ${narrow.length} bytes: ${saved} saved for ${gridElements} values`);
    // the uint8 pack is listed as the layers' bias (\`info\`, the evaluator's layer list)
    const packs = listWeights(modelFromBytes(narrow)).filter((w) => w.role === 'bias');
    assert.deepEqual(packs.map((w) => [w.dtype, w.params, w.consumers.length]), [['uint8', gridElements, onGrid.length], ...(gridElements < elements ? [['float16', elements - gridElements, 16 - onGrid.length]] : [])]);
    assert.equal(modelInfo(modelFromBytes(narrow), narrow.length).weights.filter((w) => w.role === 'bias').length, packs.length);

    const out = await logits(narrow);
    assert.deepEqual(out, await logits(wide));
    assert.deepEqual(out, await logits(half));
    assert.deepEqual(out, await logits(substituteWeights(bytes, new Map([...variant, ...corr]))), 'the exported model computes what the evaluator measured');
    checkOnnx(narrow);
    const unpacked = unpackArchive(packArchive(narrow));
    assert.ok(Buffer.from(unpacked).equals(Buffer.from(narrow)));
  });

  it('a corrected bias with an outlier stays float16 (its grid would move channels by more than 1 % of their output deviation), packed next to the uint8 one; the model computes what was measured', async () => {
    // MobileNet with one bias value 64 above the others (a channel its Clip saturates)
    const m0 = modelFromBytes(fs.readFileSync(MOBILENET), MOBILENET);
    const specs = everyLayer(m0);
    const outlier = biasTargets(m0, listWeights(m0).filter((w) => specs.has(w.name)))[4]!.bias;
    const b = m0.float32(m0.initializer(outlier));
    b[3] = b[3]! + 64;
    m0.setFloat32(outlier, b);
    const bytes = encodeModel(m0.proto);
    const m = modelFromBytes(bytes, 'outlier');
    const variant = new Map(listWeights(m).filter((w) => specs.has(w.name)).map((w) => [w.name, compressWeight(m, w, K8).weights]));
    const corr = await corrected(bytes, m, specs, variant);
    assert.ok(isHalfExact(corr.get(outlier)!) && !gridOf(corr.get(outlier)!), 'the outlier bias: float16 values, not a grid');
    assert.ok([...corr].filter(([n, v]) => n !== outlier && gridOf(v)).length >= 13, 'the others on grids');
    const file = path.join(os.tmpdir(), `narrow-outlier-${process.pid}.onnx`);
    fs.writeFileSync(file, bytes);
    try {
      const narrow = encoded(file, () => specs, { overrides: corr });
      const packs = listWeights(modelFromBytes(narrow)).filter((w) => w.role === 'bias');
      assert.deepEqual(packs.map((w) => w.dtype).sort(), ['float16', 'uint8']);
      assert.deepEqual(floatBiases(narrow), []);
      assert.deepEqual(await logits(narrow), await logits(substituteWeights(bytes, new Map([...variant, ...corr]))));
      checkOnnx(narrow);
    } finally {
      fs.rmSync(file, { force: true });
    }
  });

  it('a bias that is not float16-exact stays float32; uncorrected biases are never rounded; one narrowed bias gets one Cast', async () => {
    const plain = encoded(LENET, everyLayer);
    assert.ok(Buffer.from(plain).equals(Buffer.from(encoded(LENET, everyLayer, { narrowBiases: 'off' }))), 'no override: the same file');
    assert.equal(floatBiases(plain).length, 5);

    const overrides = roundedBiases(LENET, ['fc1.bias', 'fc2.bias']);
    const nudged = overrides.get('fc2.bias')!;
    nudged[3] = nudged[3]! + 2 ** -20; // no longer a float16 value
    const narrow = encoded(LENET, everyLayer, { overrides });
    const wide = encoded(LENET, everyLayer, { overrides, narrowBiases: 'off' });
    assert.deepEqual(floatBiases(narrow).sort(), ['conv1.bias', 'conv2.bias', 'fc2.bias', 'fc3.bias']);
    const g = decodeModel(narrow).graph!;
    // fc1 (the first Gemm) reads its bias from a Cast (its output short-named, as every decoded value)
    const fc1 = g.node.find((n) => n.opType === 'Gemm')!;
    const cast = g.node.filter((n) => n.output.includes(fc1.input[2]!));
    assert.deepEqual(cast.map((n) => n.opType), ['Cast']);
    const half = g.initializer.find((t) => t.name === cast[0]!.input[0])!;
    assert.equal(half.dataType, DataType.FLOAT16);
    assert.deepEqual(Array.from(modelFromBytes(narrow).float32(half)), Array.from(overrides.get('fc1.bias')!));
    assert.ok(!g.node.some((n) => n.opType === 'Split'));
    assert.deepEqual(Array.from(modelFromBytes(narrow).float32(g.initializer.find((t) => t.name === 'fc2.bias')!)), Array.from(nudged));
    assert.ok(narrow.length < wide.length, `${narrow.length} < ${wide.length}`);
    assert.deepEqual(await logits(narrow), await logits(wide));
  });

  it('opset 11: Split takes the sizes as its attribute, and the model computes the same', async () => {
    const at11 = (o: Partial<ApplyOptions>): Uint8Array => {
      const m = modelFromBytes(fs.readFileSync(LENET), LENET);
      m.setOpset('', 11);
      applySpecs(m, everyLayer(m), o);
      return encodeModel(m.proto);
    };
    const overrides = roundedBiases(LENET);
    const narrow = at11({ overrides });
    const split = decodeModel(narrow).graph!.node.filter((n) => n.opType === 'Split');
    assert.equal(split.length, 1);
    assert.equal(split[0]!.input.length, 1);
    assert.deepEqual(split[0]!.attribute.find((a) => a.name === 'split')!.ints.map(Number), [6, 16, 120, 84, 10]);
    assert.deepEqual(await logits(narrow), await logits(at11({ overrides, narrowBiases: 'off' })));
  });

  it('auto keeps the smaller layout: the Split pack for many biases, nothing for one small bias (measured sizes)', () => {
    const size = (file: string, overrides: Map<string, Float32Array>, narrowBiases: ApplyOptions['narrowBiases']): number => encoded(file, everyLayer, { overrides, narrowBiases }).length;
    for (const file of [LENET, MOBILENET]) {
      const all = roundedBiases(file);
      const [auto, split, cast, off] = (['auto', 'split', 'cast', 'off'] as const).map((l) => size(file, all, l));
      // MobileNet: 32,538 (split) < 32,996 (cast) < 35,454; LeNet: 25,300 < 25,373 < 25,798
      assert.ok(auto === split && split < cast && cast < off, `${path.basename(file)}: auto ${auto}, split ${split}, cast ${cast}, off ${off}`);
    }
    // 6 values: a Cast costs about the 12 bytes it saves (25,793 vs 25,798 with one-letter names;
    // sized with two-letter names, it does not pay)
    const one = roundedBiases(LENET, ['conv1.bias']);
    assert.equal(size(LENET, one, 'auto'), size(LENET, one, 'off'));
    assert.ok(Math.abs(size(LENET, one, 'cast') - size(LENET, one, 'off')) <= 8);
  });

  it('applies again to a model whose biases are narrowed, and the result computes like the float32 one', async () => {
    const twice = (narrowBiases: ApplyOptions['narrowBiases']): Uint8Array => {
      const first = encoded(LENET, (m) => new Map(listWeights(m).filter((w) => w.compressible && w.name.startsWith('fc')).map((w) => [w.name, K8])), { overrides: roundedBiases(LENET, ['fc1.bias', 'fc2.bias']), narrowBiases });
      const m = modelFromBytes(first, 'first');
      const ws = listWeights(m);
      assert.deepEqual(ws.filter((w) => w.compressible).map((w) => w.name), ['conv1.weight', 'conv2.weight'], 'fc layers are compressed');
      applySpecs(m, everyLayer(m), { overrides: roundedBiases(LENET, ['conv2.bias', 'fc3.bias']), narrowBiases });
      return encodeModel(m.proto);
    };
    const narrow = twice('auto');
    const packs = listWeights(modelFromBytes(narrow)).filter((w) => w.dtype === 'float16' && w.role === 'bias');
    // two biases, then two: a Split pack each (its sizes a varint tensor: cheaper than a Cast each),
    // fc3.bias (10 values) too
    assert.deepEqual(packs.map((w) => w.params).sort((a, b) => a - b), [16 + 10, 120 + 84]);
    assert.deepEqual(floatBiases(narrow).sort(), ['conv1.bias']);
    assert.ok(narrow.length < twice('off').length);
    assert.deepEqual(await logits(narrow), await logits(twice('off')));
  });
});
