import { create, toBinary } from '@bufbuild/protobuf';
import * as assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import * as ort from 'onnxruntime-node';
import { CompressError } from '../../../src/engine/errors';
import {
  DataType,
  decodeModel,
  encodeModel,
  halfToFloat,
  loadModel,
  makeFloatTensor,
  makeTensor,
  saveModel,
} from '../../../src/engine/onnx';
import {
  FunctionProtoSchema,
  ModelProtoSchema,
  StringStringEntryProtoSchema,
  TensorProto_DataLocation,
} from '../../../src/engine/onnx/proto';
import { writeFilesAtomic } from '../../../src/engine/util/atomicWrite';
import { attr, graph, model, node, randomWeights, tinyCnn, valueInfo } from '../helpers/onnxBuilder';

function tmpdir(): string {
  return fs.mkdtempSync(path.join(os.tmpdir(), 'onnxc-io-'));
}

async function run(modelPathOrBytes: string | Uint8Array, x: Float32Array): Promise<Float32Array> {
  const s = typeof modelPathOrBytes === 'string' ? await ort.InferenceSession.create(modelPathOrBytes) : await ort.InferenceSession.create(modelPathOrBytes);
  try {
    const out = await s.run({ x: new ort.Tensor('float32', x, [2, 3, 8, 8]) });
    return out.y!.data as Float32Array;
  } finally {
    await s.release();
  }
}

async function expectError(p: Promise<unknown>, code: string, re: RegExp): Promise<CompressError> {
  try {
    await p;
  } catch (e) {
    assert.ok(e instanceof CompressError, `expected CompressError, got ${String(e)}`);
    assert.equal(e.code, code, e.message);
    assert.match(e.message, re);
    return e;
  }
  assert.fail('expected an error');
}

describe('onnx io', () => {
  const x = randomWeights(2 * 3 * 8 * 8, 99, 1);
  let dir: string;
  let src: string;
  beforeEach(() => {
    dir = tmpdir();
    src = path.join(dir, 'cnn.onnx');
    fs.writeFileSync(src, encodeModel(tinyCnn()));
  });
  afterEach(() => fs.rmSync(dir, { recursive: true, force: true }));

  it('saves and loads external data that onnxruntime reads, with identical outputs', async () => {
    const m = await loadModel(src);
    const out = path.join(dir, 'ext.onnx');
    const r = await saveModel(m, out, { externalData: { threshold: 64 } });
    assert.equal(r.dataFile, `${out}.data`);
    assert.ok(fs.statSync(out).size < 1000, 'weights moved out of the .onnx');
    assert.deepEqual(await run(out, x), await run(src, x));
    const back = await loadModel(out);
    assert.deepEqual(back.externalFiles, [`${out}.data`]);
    const w = back.initializer('conv2.weight');
    assert.equal(w.dataLocation, TensorProto_DataLocation.EXTERNAL);
    assert.deepEqual(back.float32(w), m.float32(m.initializer('conv2.weight')));
    // and back into one file
    const inline = path.join(dir, 'inline.onnx');
    await saveModel(back, inline, { externalData: 'none' });
    assert.deepEqual(fs.readFileSync(inline), fs.readFileSync(src));
    // the in-memory model was left as it was
    assert.equal(back.initializer('conv2.weight').dataLocation, TensorProto_DataLocation.EXTERNAL);
  });

  it("'auto' keeps external data when the input had it", async () => {
    const ext = path.join(dir, 'ext.onnx');
    await saveModel(await loadModel(src), ext, { externalData: { threshold: 64 } });
    const again = path.join(dir, 'again.onnx');
    const r = await saveModel(await loadModel(ext), again);
    assert.equal(r.dataFile, `${again}.data`);
    assert.deepEqual(await run(again, x), await run(src, x));
  });

  it('refuses to overwrite the input model or its data', async () => {
    const m = await loadModel(src);
    const before = fs.readFileSync(src);
    await expectError(saveModel(m, src), 'E_BAD_ARGUMENT', /input model/);
    assert.deepEqual(fs.readFileSync(src), before);
    const ext = path.join(dir, 'ext.onnx');
    await saveModel(m, ext, { externalData: { threshold: 64 } });
    const e = await loadModel(ext);
    await expectError(saveModel(e, path.join(dir, 'other.onnx'), { externalData: { location: 'ext.onnx.data' } }), 'E_BAD_ARGUMENT', /input model or its data/);
  });

  it('reports missing, short and escaping external data, naming the files', async () => {
    const ext = path.join(dir, 'ext.onnx');
    await saveModel(await loadModel(src), ext, { externalData: { threshold: 64 } });
    const data = `${ext}.data`;
    const full = fs.readFileSync(data);
    fs.writeFileSync(data, full.subarray(0, full.length - 10));
    await expectError(loadModel(ext), 'E_EXTERNAL_DATA', /ext\.onnx\.data.*truncated/);
    fs.rmSync(data);
    await expectError(loadModel(ext), 'E_EXTERNAL_DATA', /missing.*ext\.onnx\.data/);
    // location that leaves the folder
    for (const [location, why] of [['../secret.bin', /outside the model folder/], ['/etc/passwd', /absolute path/]] as const) {
      const m = decodeModel(fs.readFileSync(ext));
      for (const t of m.graph!.initializer) {
        for (const e of t.externalData) if (e.key === 'location') e.value = location;
      }
      const bad = path.join(dir, 'bad.onnx');
      fs.writeFileSync(bad, encodeModel(m));
      await expectError(loadModel(bad), 'E_EXTERNAL_DATA', why);
    }
    // a symlink inside the folder pointing outside
    const outside = tmpdir();
    fs.writeFileSync(path.join(outside, 'w.bin'), full);
    fs.symlinkSync(path.join(outside, 'w.bin'), path.join(dir, 'link.bin'));
    const m = decodeModel(fs.readFileSync(ext));
    for (const t of m.graph!.initializer) for (const e of t.externalData) if (e.key === 'location') e.value = 'link.bin';
    fs.writeFileSync(path.join(dir, 'link.onnx'), encodeModel(m));
    await expectError(loadModel(path.join(dir, 'link.onnx')), 'E_EXTERNAL_DATA', /link that points outside/);
    fs.rmSync(outside, { recursive: true });
  });

  it('rejects empty, truncated and non-ONNX files with a message naming the file', async () => {
    const bytes = fs.readFileSync(src);
    const empty = path.join(dir, 'empty.onnx');
    fs.writeFileSync(empty, '');
    await expectError(loadModel(empty), 'E_MODEL_INVALID', /empty\.onnx: the file is empty/);
    const cut = path.join(dir, 'cut.onnx');
    let checked = 0;
    for (let n = 1; n < bytes.length; n += 7) {
      fs.writeFileSync(cut, bytes.subarray(0, n));
      try {
        await loadModel(cut);
        // a prefix can be a valid smaller model only if it cut exactly between fields; then it loads
      } catch (e) {
        assert.ok(e instanceof CompressError, String(e));
        assert.ok(['E_MODEL_INVALID', 'E_TENSOR_DATA', 'E_MODEL_UNSUPPORTED'].includes(e.code), e.message);
        assert.ok(e.message.includes('cut.onnx'), e.message);
        checked++;
      }
    }
    assert.ok(checked > bytes.length / 14, `most truncations are errors (${checked})`);
    const text = path.join(dir, 'text.onnx');
    fs.writeFileSync(text, 'hello, this is not a model\n');
    await expectError(loadModel(text), 'E_MODEL_INVALID', /text\.onnx/);
    await expectError(loadModel(path.join(dir, 'nope.onnx')), 'E_IO', /nope\.onnx: no such file/);
  });

  it('rejects unsupported IR versions and tensors whose data does not fit their shape', async () => {
    const m = tinyCnn();
    m.irVersion = 99n;
    const f = path.join(dir, 'ir.onnx');
    fs.writeFileSync(f, encodeModel(m));
    await expectError(loadModel(f), 'E_MODEL_UNSUPPORTED', /IR version 99/);
    const m2 = tinyCnn();
    m2.graph!.initializer[0]!.rawData = m2.graph!.initializer[0]!.rawData.subarray(0, 40);
    fs.writeFileSync(f, encodeModel(m2));
    await expectError(loadModel(f), 'E_TENSOR_DATA', /'conv1\.weight'.*40 bytes.*needs 864/);
  });

  it('removes temp files and keeps the target when a write fails (injected ENOSPC)', async () => {
    const target = path.join(dir, 'out.onnx');
    fs.writeFileSync(target, 'old');
    const enospc = Object.assign(new Error('no space left on device'), { code: 'ENOSPC' });
    await expectError(
      writeFilesAtomic([
        { path: path.join(dir, 'out.onnx.data'), write: (fd) => void fs.writeSync(fd, 'partial') },
        { path: target, write: () => { throw enospc; } },
      ]),
      'E_IO',
      /out\.onnx': the disk is full/,
    );
    assert.equal(fs.readFileSync(target, 'utf8'), 'old');
    assert.deepEqual(fs.readdirSync(dir).sort(), ['cnn.onnx', 'out.onnx']);
    await expectError(saveModel(await loadModel(src), path.join(dir, 'no', 'such', 'x.onnx')), 'E_IO', /folder does not exist/);
  });

  it('keeps unknown fields, metadata, doc strings, value_info and functions byte for byte', async () => {
    const m = tinyCnn();
    m.docString = 'a model';
    m.metadataProps.push(create(StringStringEntryProtoSchema, { key: 'author', value: 'tests' }));
    m.graph!.valueInfo.push(valueInfo('r1', ['N', 8, 8, 8]));
    m.graph!.node[1]!.docString = 'relu';
    m.functions.push(create(FunctionProtoSchema, { name: 'f', domain: 'custom', input: ['a'], output: ['b'], node: [node('Relu', ['a'], ['b'])] }));
    const known = toBinary(ModelProtoSchema, m);
    // field 99, varint 42: unknown to every ONNX version
    const bytes = new Uint8Array([...known, 0x98, 0x06, 42]);
    const f = path.join(dir, 'meta.onnx');
    fs.writeFileSync(f, bytes);
    const out = path.join(dir, 'meta2.onnx');
    await saveModel(await loadModel(f), out);
    assert.deepEqual(new Uint8Array(fs.readFileSync(out)), bytes);
  });

  it('reads float16 and bfloat16 weights as float32 and writes them back unchanged', async () => {
    const halves = new Uint16Array([0x0000, 0x3c00, 0xc000, 0x0001, 0x7bff, 0x3555, 0x8400, 0x7c00]);
    const t16 = makeTensor({ name: 'h', dataType: DataType.FLOAT16, dims: [8], raw: new Uint8Array(halves.buffer) });
    const bf = new Uint16Array([0x3f80, 0xc0a0, 0x0001, 0x7f7f]);
    const tbf = makeTensor({ name: 'b', dataType: DataType.BFLOAT16, dims: [4], raw: new Uint8Array(bf.buffer) });
    const m = model(graph({ nodes: [node('Identity', ['x'], ['y'])], inputs: [valueInfo('x', [1])], outputs: [valueInfo('y', [1])], initializers: [t16, tbf] }));
    const f = path.join(dir, 'half.onnx');
    fs.writeFileSync(f, encodeModel(m));
    const lm = await loadModel(f);
    assert.deepEqual([...lm.float32(lm.initializer('h'))], [...halves].map(halfToFloat));
    assert.deepEqual([...lm.float32(lm.initializer('b'))], [1, -5, 9.183549615799121e-41, 3.3895313892515355e38]);
    lm.setFloat32('h', lm.float32(lm.initializer('h')));
    lm.setFloat32('b', lm.float32(lm.initializer('b')));
    assert.deepEqual(lm.initializer('h').rawData, new Uint8Array(halves.buffer));
    assert.deepEqual(lm.initializer('b').rawData, new Uint8Array(bf.buffer));
  });

  it('edits: replaces weights, inserts nodes and raises the opset, and onnxruntime runs the result', async () => {
    const m = await loadModel(src);
    const w = m.float32(m.initializer('fc.weight')).slice();
    // Store fc.weight as float16 and Cast it back to float in the graph.
    m.removeInitializer('fc.weight');
    m.addInitializer(makeFloatTensor('fc.weight.f16', w, [4, 8], DataType.FLOAT16));
    m.insertNodes([node('Cast', ['fc.weight.f16'], ['fc.weight'], 'fc.weight.decode', [attr.int('to', DataType.FLOAT)])]);
    m.setOpset('', 17);
    const out = path.join(dir, 'edited.onnx');
    await saveModel(m, out);
    const a = await run(src, x);
    const b = await run(out, x);
    for (let i = 0; i < a.length; i++) assert.ok(Math.abs(a[i]! - b[i]!) < 1e-2 * (1 + Math.abs(a[i]!)), `${a[i]} vs ${b[i]}`);
    assert.equal((await loadModel(out)).opsetVersion, 17);
  });
});
