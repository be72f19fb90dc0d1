import * as assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import * as ort from 'onnxruntime-node';
import type { TechniqueSpec } from '../../../src/engine/compress';
import { applySpecs, compressWeight, type ApplyOptions } from '../../../src/engine/encode/apply';
import { packArchive, unpackArchive } from '../../../src/engine/encode/archive';
import { BiasCorrector, biasTargets } from '../../../src/engine/eval/biasCorrection';
import { loadDatasetSpec } from '../../../src/engine/eval/datasetSpec';
import { substituteWeights } from '../../../src/engine/eval/weightsAsInputs';
import { DataType, decodeModel, encodeModel, isHalfExact, listWeights, modelFromBytes, modelInfo, type OnnxModel } from '../../../src/engine/onnx';
import { roundedToHalf } from '../../../src/engine/util/half';
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

describe('encode/narrow: biases that are float16 values are stored as float16', function () {
  this.timeout(120_000);

  it('MobileNet with corrected biases: one FLOAT16 pack, ~2 bytes less per element, logits identical to float32 biases and to the evaluator candidate; the archive round-trips', async () => {
    const bytes = fs.readFileSync(MOBILENET);
    const m = modelFromBytes(bytes, MOBILENET);
    const specs = everyLayer(m);
    const variant = new Map(listWeights(m).filter((w) => specs.has(w.name)).map((w) => [w.name, compressWeight(m, w, K8).weights]));
    const bc = await BiasCorrector.create(bytes, biasTargets(m, listWeights(m).filter((w) => specs.has(w.name))), await loadDatasetSpec(path.join(FIX, 'data/fmnist-test-1000.dataset.json')), { samples: 64 });
    let corr: Map<string, Float32Array>;
    try {
      corr = await bc.correct(variant);
    } finally {
      await bc.dispose();
    }
    assert.equal(corr.size, 16);
    for (const [name, v] of corr) assert.ok(isHalfExact(v), `${name}: corrected values are float16 values`);
    const elements = [...corr.values()].reduce((s, v) => s + v.length, 0);

    const narrow = encoded(MOBILENET, () => specs, { overrides: corr });
    const wide = encoded(MOBILENET, () => specs, { overrides: corr, narrowBiases: 'off' });
    assert.equal(floatBiases(wide).length, 16);
    assert.deepEqual(floatBiases(narrow), []);
    // 2 bytes per value, and the biases' names (an initializer's and a Conv input's) become short ones
    const saved = wide.length - narrow.length;
    const names = [...corr.keys()].reduce((s, n) => s + 2 * (n.length - 2), 0);
    assert.ok(Math.abs(saved - 2 * elements - names) <= 0.05 * 2 * elements, `${wide.length} → ${narrow.length} bytes: ${saved} saved for ${elements} values and ${names} bytes of names`);
    // the pack is listed as the layers' bias (`info`, the evaluator's layer list), float16
    const packs = listWeights(modelFromBytes(narrow)).filter((w) => w.role === 'bias');
    assert.deepEqual(packs.map((w) => [w.dtype, w.params, w.consumers.length]), [['float16', elements, 16]]);
    assert.equal(modelInfo(modelFromBytes(narrow), narrow.length).weights.filter((w) => w.role === 'bias').length, 1);

    const out = await logits(narrow);
    assert.deepEqual(out, await logits(wide));
    assert.deepEqual(out, await logits(substituteWeights(bytes, new Map([...variant, ...corr]))), 'the exported model computes what the evaluator measured');
    const unpacked = unpackArchive(packArchive(narrow));
    assert.ok(Buffer.from(unpacked).equals(Buffer.from(narrow)));
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
