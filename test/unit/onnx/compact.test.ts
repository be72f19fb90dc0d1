import * as assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import * as ort from 'onnxruntime-node';
import { applySpecs } from '../../../src/engine/encode/apply';
import { decodeModel, encodeModel, listWeights, loadModel, OnnxModel } from '../../../src/engine/onnx';
import { compactGraph } from '../../../src/engine/onnx/compact';
import { roundedToHalf } from '../../../src/engine/util/half';

const FIXTURES = path.join(__dirname, '../../fixtures');
const TESTDATA = '/usr/share/libonnx-testdata/data/node';

/** Runs `bytes` on a fixed pseudo-random Fashion-MNIST-shaped batch; returns the first output. */
async function run(bytes: Uint8Array): Promise<Float32Array> {
  const s = await ort.InferenceSession.create(bytes);
  try {
    const x = new Float32Array(4 * 28 * 28).map((_, i) => Math.sin(i * 0.37) * 2);
    const out = await s.run({ [s.inputNames[0]!]: new ort.Tensor('float32', x, [4, 1, 28, 28]) });
    return out[s.outputNames[0]!]!.data as Float32Array;
  } finally {
    await s.release();
  }
}

const tensorBytes = (m: OnnxModel) => new Map(m.graph.initializer.map((t) => [t.name, Buffer.from(t.rawData).toString('base64')]));

describe('onnx/compact', () => {
  for (const fixture of ['mobilenet', 'resnet8', 'lenet5']) {
    it(`${fixture}: shorter file, same outputs bit for bit, same inputs/outputs/initializers`, async () => {
      const file = path.join(FIXTURES, `${fixture}.onnx`);
      const before = await loadModel(file);
      const m = await loadModel(file);
      const r = compactGraph(m);
      const a = encodeModel(before.proto);
      const b = encodeModel(m.proto);
      assert.ok(b.length < a.length, `${b.length} < ${a.length}`);
      assert.ok(r.renamed > 0);
      assert.deepEqual(m.graph.input.map((v) => v.name), before.graph.input.map((v) => v.name));
      assert.deepEqual(m.graph.output.map((v) => v.name), before.graph.output.map((v) => v.name));
      // the initializers stay as they were; Constants of a tensor become new ones, same bytes
      const after = tensorBytes(m);
      for (const [name, bytes] of tensorBytes(before)) assert.equal(after.get(name), bytes, name);
      assert.equal(after.size, tensorBytes(before).size + r.constantInitializers);
      assert.ok(m.graph.node.every((n) => n.name === ''));
      // Default attributes are gone (strides/dilations of ones, group 1, Gemm alpha/beta 1, ...), and
      // so is kernel_shape, which the weights' shapes give; the rest of each node stays.
      assert.ok(r.defaultAttributes > 0);
      const convs = m.graph.node.filter((n) => n.opType === 'Conv');
      assert.ok(convs.length > 0 && convs.every((n) => !n.attribute.some((a) => a.name === 'kernel_shape' || a.name === 'dilations')));
      const attrs = (x: OnnxModel) => x.graph.node.flatMap((n) => n.attribute.map((a) => a.name));
      assert.equal(attrs(before).length - attrs(m).length, r.defaultAttributes + r.mergedConstants + r.constantInitializers, 'a merged Constant, or one made an initializer, takes its one attribute with it');
      const names = m.graph.node.flatMap((n) => n.output);
      assert.equal(new Set(names).size, names.length, 'node outputs stay unique');
      if (fixture === 'mobilenet') {
        // 15 ReLU6 = Clip(x, 0, 6): the 30 scalar constants become two, then two initializers.
        assert.equal(r.mergedConstants, 28);
        assert.equal(r.constantInitializers, 2);
        assert.equal(m.graph.node.filter((n) => n.opType === 'Constant').length, 0);
        const clip = m.graph.node.find((n) => n.opType === 'Clip')!;
        const scalar = (name: string) => m.float32(m.graph.initializer.find((t) => t.name === name)!);
        assert.deepEqual([...scalar(clip.input[1]!), ...scalar(clip.input[2]!)], [0, 6]);
      }
      assert.deepEqual(await run(b), await run(a));
    });
  }

  it('applySpecs compacts by default: payload and decoded weight names shrink, untouched tensors stay, compact:false keeps every name', async () => {
    const file = path.join(FIXTURES, 'resnet8.onnx');
    const weights = listWeights(await loadModel(file)).filter((w) => w.compressible);
    const specs = new Map(weights.slice(1).map((w) => [w.name, { technique: 'share' as const, k: 16, perChannel: false }]));
    const plain = await loadModel(file);
    applySpecs(plain, specs, { compact: false });
    const small = await loadModel(file);
    applySpecs(small, specs);
    const a = encodeModel(plain.proto);
    const b = encodeModel(small.proto);
    assert.ok(b.length < a.length - 1000, `${a.length} -> ${b.length}`);
    assert.ok(plain.graph.initializer.some((t) => t.name.includes('::')));
    assert.ok(!small.graph.initializer.some((t) => t.name.includes('::') && t.name.startsWith(weights[1]!.name)), 'payloads renamed');
    // decoded weights (the decoder nodes' outputs) get short names too, unless compact: false
    for (const name of specs.keys()) {
      assert.ok(plain.graph.node.some((n) => n.output.includes(name)), name);
      assert.ok(!small.graph.node.some((n) => n.output.includes(name) || n.input.includes(name)), name);
    }
    // the untouched first layer and the biases are byte-identical
    // kernel_shape is dropped for decoded weights too (their shapes are passed in)
    assert.ok(small.graph.node.filter((n) => n.opType === 'Conv').every((n) => !n.attribute.some((a) => a.name === 'kernel_shape')));
    assert.ok(plain.graph.node.filter((n) => n.opType === 'Conv').every((n) => n.attribute.some((a) => a.name === 'kernel_shape')));
    const untouched = tensorBytes(await loadModel(file));
    for (const [name, bytes] of tensorBytes(small)) if (untouched.has(name)) assert.equal(bytes, untouched.get(name), name);
    assert.ok(tensorBytes(small).has(weights[0]!.name));
    assert.deepEqual(await run(b), await run(a));
  });

  it('MobileNet, every layer shared and the biases narrowed: no long names left but the inputs, outputs and untouched initializers, the most read the shortest; same outputs as compact:false', async () => {
    const file = path.join(FIXTURES, 'mobilenet.onnx');
    const original = await loadModel(file);
    const ws = listWeights(original);
    const specs = new Map(ws.filter((w) => w.compressible).map((w) => [w.name, { technique: 'share' as const, k: 16, perChannel: false }]));
    const overrides = new Map(ws.filter((w) => w.role === 'bias').map((w) => [w.name, roundedToHalf(original.float32(w.tensor))!]));
    const plain = await loadModel(file);
    applySpecs(plain, specs, { overrides, compact: false });
    const small = await loadModel(file);
    applySpecs(small, specs, { overrides });
    assert.ok(small.graph.node.some((n) => n.opType === 'Split'), 'the biases are narrowed into one pack');
    const g = small.graph;
    const io = new Set([...g.input, ...g.output].map((v) => v.name));
    const before = tensorBytes(original);
    const untouched = new Set(g.initializer.map((t) => t.name).filter((name) => before.has(name)));
    const renamed = [...new Set([...g.node.flatMap((n) => [...n.input, ...n.output]), ...g.initializer.map((t) => t.name)])].filter((name) => !io.has(name) && !untouched.has(name));
    assert.ok(renamed.length > 53, `${renamed.length} values`);
    // one letter (a-z, A-Z, _) for the 53 most used values, two for the others
    assert.deepEqual(renamed.filter((name) => name.length > 2), []);
    assert.equal(renamed.filter((name) => name.length === 1).length, 53);
    const uses = (name: string): number => g.node.reduce((k, n) => k + n.input.filter((x) => x === name).length, 0);
    const least = Math.min(...renamed.filter((name) => name.length === 1).map(uses));
    assert.ok(renamed.every((name) => name.length === 1 || uses(name) <= least), 'the most read values have the shortest names');
    for (const [name, bytes] of tensorBytes(small)) if (untouched.has(name)) assert.ok(!specs.has(name) && !overrides.has(name) && bytes === before.get(name), name);
    // compact: false keeps every name (and leaves the biases float32)
    for (const name of specs.keys()) assert.ok(plain.graph.node.some((n) => n.output.includes(name)), name);
    for (const name of overrides.keys()) assert.ok(plain.graph.initializer.some((t) => t.name === name), name);
    assert.deepEqual(await run(encodeModel(small.proto)), await run(encodeModel(plain.proto)));
  });

  it('IR version 3 (initializers must be graph inputs): Constants stay nodes', async () => {
    const m = await loadModel(path.join(FIXTURES, 'mobilenet.onnx'));
    m.proto.irVersion = 3n;
    const r = compactGraph(m);
    assert.equal(r.constantInitializers, 0);
    assert.equal(m.graph.node.filter((n) => n.opType === 'Constant').length, 2);
  });

  it('leaves value names of a model with subgraphs alone (If bodies read outer values by name)', async () => {
    const file = path.join(TESTDATA, 'test_if', 'model.onnx');
    const m = decodeModel(fs.readFileSync(file), file);
    const outputs = m.graph!.node.flatMap((n) => n.output);
    const r = compactGraph(new OnnxModel(m, file));
    assert.equal(r.renamed, 0);
    assert.deepEqual(m.graph!.node.flatMap((n) => n.output), outputs);
    await (await ort.InferenceSession.create(encodeModel(m))).release();
  });
});
