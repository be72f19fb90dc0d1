/**
 * Writes the bad-input corpus of issue #8 into `test/bad-inputs/` (or the folder given as the first
 * argument): broken models, broken external data, datasets and plans that do not fit, broken
 * archives, plus `manifest.json` listing, per file, the CLI commands to run and the exit code and
 * error (a regex) each must give (netron `test/models.json` style).
 *
 *   npx tsx scripts/make-bad-inputs.ts [DIR]
 *
 * Deterministic (seeded): running it again writes the same bytes, so the committed corpus can be
 * checked against it (test/unit/robustness/badInputs.test.ts).
 *
 * Placeholders in `args`: `{in}` the corpus folder (a copy of it in tests), `{out}` an empty output
 * folder, `{file}` the case's file.
 */
import { create } from '@bufbuild/protobuf';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { packArchive } from '../src/engine/encode/archive';
import { attr, DataType, decodeModel, encodeModel, makeFloatTensor, makeNode, makeTensor, makeValueInfo } from '../src/engine/onnx';
import { GraphProtoSchema, ModelProtoSchema, OperatorSetIdProtoSchema, StringStringEntryProtoSchema, TensorProto_DataLocation, type ModelProto, type NodeProto, type TensorProto } from '../src/engine/onnx/proto';
import { gaussian, mulberry32 } from '../src/engine/util/random';

/** One expected outcome: `exit` code and, for failures, a regex the stderr must match. */
export interface Expect {
  command: string;
  args: string[];
  exit: number;
  error?: string;
}

/** A manifest entry. */
export interface ManifestEntry {
  file: string;
  what: string;
  checks: Expect[];
}

const DATA = '{in}/data/tiny.dataset.json';
const PLAN = '{in}/plans/share4.json';

/** Commands run on a model file; every one gets the same expectation unless overridden. */
const MODEL_COMMANDS: Record<string, string[]> = {
  info: ['info', '{file}'],
  apply: ['apply', '{file}', '--plan', PLAN, '--out', '{out}/out.onnx'],
  analyze: ['analyze', '{file}', '--data', DATA, '--limit', '16', '--techniques', 'share', '--out', '{out}/res'],
  compress: ['compress', '{file}', '--data', DATA, '--max-loss', '50', '--techniques', 'share', '--limit', '16', '--sensitivity-limit', '16', '--out', '{out}/res'],
  pack: ['pack', '{file}', '--out', '{out}/out.onnxc'],
};

function seededWeights(n: number, seed: number, scale = 0.3): Float32Array {
  const g = gaussian(mulberry32(seed));
  const out = new Float32Array(n);
  for (let i = 0; i < n; i++) out[i] = g() * scale;
  return out;
}

/** x[N,16] -> Gemm(32) -> Relu -> Gemm(10) -> y[N,10]; fc1.weight 512 and fc2.weight 320 params. */
function tiny(edit?: (init: TensorProto[], nodes: NodeProto[]) => void, names = { x: 'x', w1: 'fc1.weight', b1: 'fc1.bias', h: 'h', r: 'r', w2: 'fc2.weight', b2: 'fc2.bias', y: 'y', n1: 'fc1', n2: 'relu', n3: 'fc2' }): ModelProto {
  const init = [
    makeFloatTensor(names.w1, seededWeights(32 * 16, 1), [32, 16]),
    makeFloatTensor(names.b1, seededWeights(32, 2, 0.05), [32]),
    makeFloatTensor(names.w2, seededWeights(10 * 32, 3), [10, 32]),
    makeFloatTensor(names.b2, seededWeights(10, 4, 0.05), [10]),
  ];
  const nodes = [
    makeNode('Gemm', [names.x, names.w1, names.b1], [names.h], names.n1, [attr.int('transB', 1)]),
    makeNode('Relu', [names.h], [names.r], names.n2),
    makeNode('Gemm', [names.r, names.w2, names.b2], [names.y], names.n3, [attr.int('transB', 1)]),
  ];
  edit?.(init, nodes);
  return create(ModelProtoSchema, {
    irVersion: 8n,
    producerName: 'make-bad-inputs',
    opsetImport: [create(OperatorSetIdProtoSchema, { domain: '', version: 13n })],
    graph: create(GraphProtoSchema, {
      name: 'tiny',
      node: nodes,
      input: [makeValueInfo(names.x, ['N', 16])],
      output: [makeValueInfo(names.y, ['N', 10])],
      initializer: init,
    }),
  });
}

function npy(descr: string, shape: number[], body: Uint8Array): Uint8Array {
  let header = `{'descr': '${descr}', 'fortran_order': False, 'shape': (${shape.join(', ')}${shape.length === 1 ? ',' : ''}), }`;
  const total = 10 + header.length + 1;
  header += ' '.repeat((64 - (total % 64)) % 64) + '\n';
  const out = new Uint8Array(10 + header.length + body.length);
  out.set([0x93, 0x4e, 0x55, 0x4d, 0x50, 0x59, 1, 0]);
  new DataView(out.buffer).setUint16(8, header.length, true);
  out.set(new TextEncoder().encode(header), 10);
  out.set(body, 10 + header.length);
  return out;
}

const f32bytes = (a: Float32Array): Uint8Array => new Uint8Array(a.buffer, a.byteOffset, a.byteLength);
const i64bytes = (a: number[]): Uint8Array<ArrayBuffer> => new Uint8Array(BigInt64Array.from(a.map(BigInt)).buffer);

/** Writes the corpus into `dir` (created; existing corpus files are replaced). Returns the manifest. */
export function makeBadInputs(dir: string): ManifestEntry[] {
  fs.rmSync(dir, { recursive: true, force: true });
  fs.mkdirSync(dir, { recursive: true });
  const entries: ManifestEntry[] = [];
  const write = (rel: string, bytes: Uint8Array | string): void => {
    const full = path.join(dir, rel);
    fs.mkdirSync(path.dirname(full), { recursive: true });
    fs.writeFileSync(full, bytes);
  };
  const re = (s: string): string => s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
  /** A model case: `exits` per command (default: every command exits 2 with `error`). */
  const modelCase = (rel: string, bytes: Uint8Array | undefined, what: string, error: string, over: Record<string, { exit: number; error?: string } | null> = {}): void => {
    // pack works on the protobuf bytes: it refuses what does not decode, and keeps any decodable
    // model byte for byte (graph and tensor checks are the other commands' business).
    if (decodable(rel, bytes) && !('pack' in over)) over = { ...over, pack: { exit: 0 } };
    if (bytes) write(rel, bytes);
    const checks: Expect[] = [];
    for (const [command, args] of Object.entries(MODEL_COMMANDS)) {
      const o = over[command];
      if (o === null) continue;
      const exp: Expect = { command, args, exit: o?.exit ?? 2 };
      const err = o ? o.error : error;
      if (exp.exit !== 0 && err !== undefined) exp.error = err;
      checks.push(exp);
    }
    entries.push({ file: rel, what, checks });
  };
  const enc = (m: ModelProto): Uint8Array => encodeModel(m);
  const decodable = (rel: string, bytes: Uint8Array | undefined): boolean => {
    try {
      decodeModel(bytes ?? fs.readFileSync(path.join(dir, rel)), rel);
      return true;
    } catch {
      return false;
    }
  };

  // --- the reference model, data and plans (all fine) ---
  const good = enc(tiny());
  write('tiny.onnx', good);
  const rand = mulberry32(8);
  const x = seededWeights(24 * 16, 5, 1);
  const labels = Array.from({ length: 24 }, () => Math.floor(rand() * 10));
  write('data/x.npy', npy('<f4', [24, 16], f32bytes(x)));
  write('data/labels.npy', npy('<i8', [24], i64bytes(labels)));
  const ds = (o: Record<string, unknown>): string => JSON.stringify({ format: 'npy', inputs: { x: 'x.npy' }, labels: 'labels.npy', ...o }, null, 1);
  write('data/tiny.dataset.json', ds({}));
  write('plans/share4.json', JSON.stringify({ default: { technique: 'share', k: 4 } }));
  modelCase('tiny.onnx', undefined, 'the reference model: every command succeeds', '', { info: { exit: 0 }, apply: { exit: 0 }, analyze: { exit: 0 }, compress: { exit: 0 }, pack: { exit: 0 } });

  // --- not a model at all ---
  const decodeErr = (f: string): string => `${re(f)}.*(cannot decode the ONNX protobuf|not an ONNX model|is empty)`;
  modelCase('empty.onnx', new Uint8Array(0), 'empty file', `${re('empty.onnx')}: the file is empty`);
  const noise = new Uint8Array(4096);
  const r2 = mulberry32(2);
  for (let i = 0; i < noise.length; i++) noise[i] = Math.floor(r2() * 256);
  modelCase('random-4k.onnx', noise, 'random bytes', decodeErr('random-4k.onnx'));
  modelCase('text.onnx', new TextEncoder().encode('this is not a model\n'), 'a text file', decodeErr('text.onnx'));
  modelCase('json.onnx', new TextEncoder().encode('{"graph": {"node": []}, "ir_version": 8}\n'), 'a JSON file', decodeErr('json.onnx'));
  modelCase('zeros.onnx', new Uint8Array(1000), 'a file of zero bytes', decodeErr('zeros.onnx'));

  // --- truncated at many offsets (all inside the graph or before it: every one is undecodable) ---
  const graphEnd = enc(create(ModelProtoSchema, { ...tiny(), opsetImport: [] })).length;
  const offsets = new Set<number>();
  for (let i = 0; i < 28; i++) offsets.add(1 + Math.floor((i / 28) * (graphEnd - 2)));
  for (const o of [1, 2, 3, graphEnd - 1, graphEnd - 2, graphEnd - 100]) offsets.add(o);
  for (const o of [...offsets].sort((a, b) => a - b)) {
    const f = `truncated/tiny-at-${String(o).padStart(4, '0')}.onnx`;
    modelCase(f, good.subarray(0, o), `the reference model cut at byte ${o} of ${good.length}`, decodeErr(path.basename(f)), o % 8 === 0 ? {} : { apply: null, analyze: null, compress: null });
  }

  // --- corrupted fields ---
  const graphTag = good.indexOf(0x3a, 2); // field 7 (graph), wire type 2 — after ir_version and producer
  {
    const b = Uint8Array.from(good);
    b[graphTag] = 0x3f; // wire type 7 does not exist
    modelCase('corrupt/bad-wire-type.onnx', b, 'graph tag with an invalid wire type', decodeErr('bad-wire-type.onnx'));
    const c = Uint8Array.from(good);
    c[graphTag + 1] = (c[graphTag + 1]! | 0x7f) & 0xff; // graph length varint: bigger, same byte count
    c[graphTag + 2] = 0x7f;
    modelCase('corrupt/graph-length-too-big.onnx', c, 'graph length field larger than the file', decodeErr('graph-length-too-big.onnx'));
  }
  modelCase('corrupt/ir-version-99.onnx', enc({ ...tiny(), irVersion: 99n } as ModelProto), 'ir_version 99', `${re('ir-version-99.onnx')}: unsupported ONNX IR version 99`);
  modelCase('corrupt/ir-version-missing.onnx', enc({ ...tiny(), irVersion: 0n } as ModelProto), 'no ir_version', `${re('ir-version-missing.onnx')}.*ir_version is missing`);
  modelCase('corrupt/no-opset.onnx', enc({ ...tiny(), opsetImport: [] } as ModelProto), 'no opset_import', `${re('no-opset.onnx')}.*opset`);
  modelCase('corrupt/negative-dim.onnx', enc(tiny((init) => (init[0]!.dims = [-32n, 16n]))), 'a weight with dims [-32, 16]', `${re('negative-dim.onnx')}.*fc1\\.weight.*invalid dimension -32`);
  modelCase('corrupt/huge-dims.onnx', enc(tiny((init) => (init[0]!.dims = [1n << 40n, 1n << 40n]))), 'a weight with dims [2^40, 2^40] and 2 kB of data', `${re('huge-dims.onnx')}.*fc1\\.weight`);
  modelCase('corrupt/no-op-type.onnx', enc(tiny((_, nodes) => (nodes[1]!.opType = ''))), 'a node without op_type', `${re('no-op-type.onnx')}.*op_type`);
  modelCase('corrupt/undefined-input.onnx', enc(tiny((_, nodes) => (nodes[1]!.input = ['ghost']))), 'a node reads a value nothing produces', `${re('undefined-input.onnx')}.*'ghost'`);
  modelCase('corrupt/duplicate-output.onnx', enc(tiny((_, nodes) => (nodes[1]!.output = ['h']))), 'two nodes write the same value', `${re('duplicate-output.onnx')}.*'h'`);
  modelCase('corrupt/cyclic.onnx', enc(tiny((_, nodes) => {
    nodes[0]!.input[0] = 'r'; // fc1 reads relu's output, relu reads fc1's: a cycle
    nodes.push(makeNode('Identity', ['x'], ['unused'], 'keep_x'));
  })), 'a cyclic graph (fc1 -> relu -> fc1)', `${re('cyclic.onnx')}.*cycle`);
  modelCase('corrupt/attribute-type.onnx', enc(tiny((_, nodes) => (nodes[0]!.attribute = [attr.float('transB', 1)]))), 'Gemm transB given as a float', `${re('attribute-type.onnx')}.*transB`);

  // --- wrong data types ---
  modelCase('dtype/unknown-999.onnx', enc(tiny((init) => (init[0]!.dataType = 999))), 'data_type 999', `${re('unknown-999.onnx')}.*fc1\\.weight.*data type 999`);
  modelCase('dtype/undefined.onnx', enc(tiny((init) => (init[0]!.dataType = 0))), 'data_type UNDEFINED on an initializer', `${re('undefined.onnx')}.*fc1\\.weight.*data type 0`);
  modelCase('dtype/int64-with-float-bytes.onnx', enc(tiny((init) => (init[0]!.dataType = DataType.INT64))), 'float32 bytes declared int64', `${re('int64-with-float-bytes.onnx')}.*fc1\\.weight.*2048 bytes of int64`);
  modelCase('dtype/float16-with-float-bytes.onnx', enc(tiny((init) => (init[0]!.dataType = DataType.FLOAT16))), 'float32 bytes declared float16', `${re('float16-with-float-bytes.onnx')}.*fc1\\.weight.*2048 bytes of float16`);

  // --- data that does not match dims ---
  modelCase('data/raw-short.onnx', enc(tiny((init) => (init[0]!.rawData = init[0]!.rawData.slice(0, 2044)))), 'raw_data 4 bytes short', `${re('raw-short.onnx')}.*fc1\\.weight.*2044 bytes.*needs 2048`);
  modelCase('data/raw-long.onnx', enc(tiny((init) => (init[2]!.rawData = new Uint8Array(4000)))), 'raw_data too long', `${re('raw-long.onnx')}.*fc2\\.weight.*4000 bytes.*needs 1280`);
  modelCase('data/float-data-count.onnx', enc(tiny((init) => {
    init[0]!.rawData = new Uint8Array(0);
    init[0]!.floatData = Array.from(seededWeights(100, 9));
  })), 'float_data with 100 values for 512', `${re('float-data-count.onnx')}.*fc1\\.weight.*100 values.*needs 512`);

  // --- external data ---
  const extModel = (location: Record<string, string>, dataBytes: Uint8Array | undefined, sub: string, extra?: (d: string) => void): Uint8Array => {
    const m = tiny();
    const w = m.graph!.initializer[0]!;
    const raw = w.rawData;
    w.rawData = new Uint8Array(0);
    w.dataLocation = TensorProto_DataLocation.EXTERNAL;
    w.externalData = Object.entries(location).map(([key, value]) => create(StringStringEntryProtoSchema, { key, value }));
    if (dataBytes) write(`ext/${sub}/weights.bin`, dataBytes.length ? dataBytes : raw);
    extra?.(path.join(dir, 'ext', sub));
    return enc(m);
  };
  const w1 = f32bytes(seededWeights(32 * 16, 1));
  modelCase('ext/ok/model.onnx', extModel({ location: 'weights.bin', offset: '0', length: '2048' }, w1, 'ok'), 'valid external data (fc1.weight in weights.bin)', '', {
    info: { exit: 0 },
    apply: { exit: 0 },
    analyze: { exit: 0 },
    compress: { exit: 0 },
    pack: { exit: 0 },
  });
  const extErr = (why: string): string => `${re('model.onnx')}.*${why}`;
  modelCase('ext/missing/model.onnx', extModel({ location: 'weights.bin' }, undefined, 'missing'), 'external data file missing', extErr("external data file 'weights\\.bin' of tensor 'fc1\\.weight' is missing"), { pack: { exit: 0 } });
  modelCase('ext/short/model.onnx', extModel({ location: 'weights.bin' }, w1.slice(0, 1000), 'short'), 'external data file too short', extErr("'weights\\.bin' is 1000 bytes, but tensor 'fc1\\.weight' needs bytes 0 to 2048"), { pack: { exit: 0 } });
  modelCase('ext/outside/model.onnx', extModel({ location: '../outside.bin' }, undefined, 'outside', () => write('ext/outside.bin', w1)), 'location ../outside.bin (leaves the folder)', extErr("'\\.\\./outside\\.bin'.*points outside the model folder"), { pack: { exit: 0 } });
  modelCase('ext/absolute/model.onnx', extModel({ location: '/etc/passwd' }, undefined, 'absolute'), 'absolute location /etc/passwd', extErr("'/etc/passwd'.*absolute path"), { pack: { exit: 0 } });
  modelCase('ext/no-location/model.onnx', extModel({ offset: '0' }, undefined, 'no-location'), "external data without 'location'", extErr("'fc1\\.weight' is marked EXTERNAL but has no 'location'"), { pack: { exit: 0 } });
  modelCase('ext/bad-offset/model.onnx', extModel({ location: 'weights.bin', offset: '-4' }, w1, 'bad-offset'), 'offset -4', extErr("invalid external 'offset' '-4'"), { pack: { exit: 0 } });
  modelCase('ext/huge-length/model.onnx', extModel({ location: 'weights.bin', length: String(2 ** 52) }, w1, 'huge-length'), 'length 2^52 on a 2 kB file', extErr('needs bytes 0 to'), { pack: { exit: 0 } });
  modelCase('ext/wrong-length/model.onnx', extModel({ location: 'weights.bin', length: '1024' }, w1, 'wrong-length'), 'length 1024 for a tensor of 2048 bytes', extErr("fc1\\.weight.*1024 bytes.*needs 2048"), { pack: { exit: 0 } });
  modelCase('ext/folder/model.onnx', extModel({ location: 'sub' }, undefined, 'folder', () => write('ext/folder/sub/keep', 'a folder, not a data file\n')), 'location names a folder', extErr("'sub'.*fc1\\.weight.*(folder|directory)"), { pack: { exit: 0 } });

  // --- legitimate but special models ---
  {
    const nan = tiny((init) => {
      const w = seededWeights(32 * 16, 1);
      w[7] = Number.NaN;
      w[100] = Number.POSITIVE_INFINITY;
      init[0] = makeFloatTensor('fc1.weight', w, [32, 16]);
    });
    const nanErr = `${re('nan-weights.onnx')}.*'fc1\\.weight' has 2 NaN/Inf values`;
    modelCase('special/nan-weights.onnx', enc(nan), 'NaN and Inf in fc1.weight', nanErr, { info: { exit: 0 }, pack: { exit: 0 } });
  }
  {
    // int8 QDQ: both weights are int8 + DequantizeLinear; nothing is left to compress.
    const q = tiny((init, nodes) => {
      for (const [i, name, dims] of [[0, 'fc1.weight', [32, 16]], [2, 'fc2.weight', [10, 32]]] as const) {
        const n = dims[0] * dims[1];
        const raw = new Uint8Array(n);
        const r = mulberry32(20 + i);
        for (let k = 0; k < n; k++) raw[k] = (Math.floor(r() * 256) - 128) & 0xff;
        init[i] = makeTensor({ name: `${name}_q`, dataType: DataType.INT8, dims: [...dims], raw });
        init.push(makeFloatTensor(`${name}_scale`, new Float32Array([0.01]), []));
        init.push(makeTensor({ name: `${name}_zp`, dataType: DataType.INT8, dims: [], raw: new Uint8Array(1) }));
        nodes.unshift(makeNode('DequantizeLinear', [`${name}_q`, `${name}_scale`, `${name}_zp`], [name], `${name}_dq`));
      }
    });
    const nothing = `${re('qdq-int8.onnx')}.*(nothing to compress|no compressible).*already quantized`;
    modelCase('special/qdq-int8.onnx', enc(q), 'int8 QDQ weights (already quantized)', nothing, { info: { exit: 0 }, pack: { exit: 0 } });
  }
  {
    const m = create(ModelProtoSchema, {
      irVersion: 8n,
      producerName: 'make-bad-inputs',
      opsetImport: [create(OperatorSetIdProtoSchema, { domain: '', version: 13n })],
      graph: create(GraphProtoSchema, {
        name: 'nofloat',
        node: [makeNode('Reshape', ['x', 'shape'], ['y'], 'reshape')],
        input: [makeValueInfo('x', ['N', 16])],
        output: [makeValueInfo('y', ['N', 4, 4])],
        initializer: [makeTensor({ name: 'shape', dataType: DataType.INT64, dims: [3], raw: i64bytes([-1, 4, 4]) })],
      }),
    });
    modelCase('special/no-float-weights.onnx', enc(m), 'no float weights (an int64 shape only)', `${re('no-float-weights.onnx')}.*(nothing to compress|no compressible)`, { info: { exit: 0 }, pack: { exit: 0 } });
  }
  {
    const evil = '<script>alert(1)</script>';
    const long = 'L'.repeat(10_000);
    const m = tiny(undefined, { x: `x"'${evil}`, w1: `${evil}.weight`, b1: 'b\n1"quoted"', h: `h\n<img src=x onerror=alert(2)>`, r: `${long}`, w2: `w2 & "q" '${long.slice(0, 300)}`, b2: 'b2', y: 'y\r\n', n1: `node ${evil}`, n2: `relu\nline2`, n3: `</td></tr><script>x</script>` });
    modelCase('special/hostile-names.onnx', enc(m), 'node and tensor names with <script>, quotes, newlines and 10 000 characters', '', { info: { exit: 0 }, apply: { exit: 0 }, analyze: null, compress: null, pack: { exit: 0 } });
  }

  // --- datasets that do not fit the reference model (analyze) ---
  const dataCase = (rel: string, what: string, error: string, files: Record<string, Uint8Array | string>): void => {
    for (const [f, b] of Object.entries(files)) write(f, b);
    entries.push({ file: rel, what, checks: [{ command: 'analyze', args: ['analyze', '{in}/tiny.onnx', '--data', '{file}', '--limit', '16', '--techniques', 'share', '--out', '{out}/res'], exit: 2, error }] });
  };
  dataCase('data/shape.dataset.json', 'samples of 15 values for an input of 16', "x15\\.npy.*15.*16", { 'data/x15.npy': npy('<f4', [24, 15], f32bytes(seededWeights(24 * 15, 6))), 'data/shape.dataset.json': ds({ inputs: { x: 'x15.npy' } }) });
  dataCase('data/labels-range.dataset.json', 'label 99 for a 10-class model', "labels-99\\.npy.*99", { 'data/labels-99.npy': npy('<i8', [24], i64bytes(labels.map((l, i) => (i === 5 ? 99 : l)))), 'data/labels-range.dataset.json': ds({ labels: 'labels-99.npy' }) });
  dataCase('data/labels-negative.dataset.json', 'label -1', "labels-neg\\.npy.*-1", { 'data/labels-neg.npy': npy('<i8', [24], i64bytes(labels.map((l, i) => (i === 3 ? -1 : l)))), 'data/labels-negative.dataset.json': ds({ labels: 'labels-neg.npy' }) });
  dataCase('data/labels-count.dataset.json', '10 labels for 24 samples', "labels-10\\.npy.*10", { 'data/labels-10.npy': npy('<i8', [10], i64bytes(labels.slice(0, 10))), 'data/labels-count.dataset.json': ds({ labels: 'labels-10.npy' }) });
  dataCase('data/labels-float.dataset.json', 'float labels', "labels-f4\\.npy", { 'data/labels-f4.npy': npy('<f4', [24], f32bytes(Float32Array.from(labels))), 'data/labels-float.dataset.json': ds({ labels: 'labels-f4.npy' }) });
  dataCase('data/not-json.dataset.json', 'not JSON', "not-json\\.dataset\\.json", { 'data/not-json.dataset.json': '{ "format": "npy", ' });
  dataCase('data/unknown-key.dataset.json', 'unknown key "lables"', "unknown-key\\.dataset\\.json.*lables", { 'data/unknown-key.dataset.json': JSON.stringify({ format: 'npy', inputs: { x: 'x.npy' }, lables: 'labels.npy' }) });
  dataCase('data/missing-file.dataset.json', 'names a file that does not exist', "nope\\.npy", { 'data/missing-file.dataset.json': ds({ inputs: { x: 'nope.npy' } }) });
  dataCase('data/wrong-input.dataset.json', 'names an input the model does not have', '"image"', { 'data/wrong-input.dataset.json': ds({ inputs: { image: 'x.npy' } }) });
  dataCase('data/npy-short.dataset.json', '.npy whose header promises more rows than it holds', "x-short\\.npy", { 'data/x-short.npy': npy('<f4', [24, 16], f32bytes(seededWeights(10 * 16, 7))), 'data/npy-short.dataset.json': ds({ inputs: { x: 'x-short.npy' } }) });
  dataCase('data/npy-garbage.dataset.json', '.npy that is random bytes', "x-garbage\\.npy", { 'data/x-garbage.npy': noise.subarray(0, 300), 'data/npy-garbage.dataset.json': ds({ inputs: { x: 'x-garbage.npy' } }) });
  dataCase('data/npy-empty.dataset.json', '.npy with 0 samples', "x-empty\\.npy", { 'data/x-empty.npy': npy('<f4', [0, 16], new Uint8Array(0)), 'data/labels-empty.npy': npy('<i8', [0], new Uint8Array(0)), 'data/npy-empty.dataset.json': ds({ inputs: { x: 'x-empty.npy' }, labels: 'labels-empty.npy' }) });
  dataCase('data/format.dataset.json', 'unknown format', 'format\\.dataset\\.json.*"csv"', { 'data/format.dataset.json': JSON.stringify({ format: 'csv', inputs: 'x.csv' }) });

  // --- plans (apply on the reference model) ---
  const planCase = (name: string, what: string, text: string, error: string): void => {
    write(`plans/${name}`, text);
    entries.push({ file: `plans/${name}`, what, checks: [{ command: 'apply', args: ['apply', '{in}/tiny.onnx', '--plan', '{file}', '--out', '{out}/out.onnx'], exit: 2, error }] });
  };
  planCase('unknown-layer.json', 'names a layer the model does not have', JSON.stringify({ layers: { 'conv9.weight': { technique: 'share', k: 4 } } }), "unknown-layer\\.json: layer 'conv9\\.weight' is not a weight of this model. Compressible layers: fc1\\.weight, fc2\\.weight");
  planCase('bias-layer.json', 'names a bias', JSON.stringify({ layers: { 'fc1.bias': { technique: 'quant', bits: 4 } } }), "bias-layer\\.json: layer 'fc1\\.bias' cannot be compressed");
  planCase('unknown-technique.json', 'unknown technique', JSON.stringify({ default: { technique: 'magic' } }), "unknown-technique\\.json: default: unknown technique 'magic'");
  planCase('k-out-of-range.json', 'k = 999', JSON.stringify({ layers: { 'fc1.weight': { technique: 'share', k: 999 } } }), "k-out-of-range\\.json: layer 'fc1\\.weight'.*999");
  planCase('k-string.json', 'k is a string', JSON.stringify({ layers: { 'fc1.weight': { technique: 'share', k: '16' } } }), "k-string\\.json: layer 'fc1\\.weight'.*k");
  planCase('bits-fraction.json', 'bits = 4.5', JSON.stringify({ layers: { 'fc1.weight': { technique: 'quant', bits: 4.5 } } }), "bits-fraction\\.json: layer 'fc1\\.weight'.*4\\.5");
  planCase('sparsity-nan.json', 'sparsity null', JSON.stringify({ layers: { 'fc1.weight': { technique: 'prune', sparsity: null } } }), "sparsity-nan\\.json: layer 'fc1\\.weight'.*sparsity");
  planCase('not-json.json', 'not JSON', '{ "default": ', 'not-json\\.json is not valid JSON');
  planCase('null.json', 'null', 'null', 'null\\.json: a plan is a JSON object');
  planCase('array.json', 'an array', '[{"technique": "share"}]', 'array\\.json: a plan is a JSON object');
  planCase('layers-string.json', '"layers" is a string', JSON.stringify({ layers: 'fc1.weight' }), 'layers-string\\.json.*"layers"');
  planCase('layer-entry-null.json', 'a layer entry is null', JSON.stringify({ layers: { 'fc1.weight': null } }), "layer-entry-null\\.json: layer 'fc1\\.weight': expected an object");
  planCase('unknown-key.json', 'unknown top-level key', JSON.stringify({ defaults: { technique: 'share' } }), "unknown-key\\.json: unknown key 'defaults'");
  planCase('lowrank-on-nothing.json', 'lowrank without rank or energy', JSON.stringify({ layers: { 'fc1.weight': { technique: 'lowrank' } } }), 'lowrank-on-nothing\\.json.*lowrank needs "rank" or "energy"');

  // --- archives (unpack) ---
  const arc = packArchive(good, { source: 'tiny.onnx' });
  const arcCase = (name: string, what: string, bytes: Uint8Array, error: string): void => {
    write(`archives/${name}`, bytes);
    entries.push({ file: `archives/${name}`, what, checks: [{ command: 'unpack', args: ['unpack', '{file}', '--out', '{out}/out.onnx'], exit: 2, error }] });
  };
  write('archives/tiny.onnxc', arc);
  entries.push({ file: 'archives/tiny.onnxc', what: 'a valid archive of the reference model', checks: [{ command: 'unpack', args: ['unpack', '{file}', '--out', '{out}/out.onnx'], exit: 0 }] });
  arcCase('empty.onnxc', 'empty archive', new Uint8Array(0), 'empty\\.onnxc');
  arcCase('random.onnxc', 'random bytes', noise.subarray(0, 512), 'random\\.onnxc');
  for (const cut of [8, 20, Math.floor(arc.length / 2), arc.length - 1]) arcCase(`truncated-${cut}.onnxc`, `archive cut at byte ${cut} of ${arc.length}`, arc.subarray(0, cut), `truncated-${cut}\\.onnxc`);
  {
    const b = Uint8Array.from(arc);
    b[b.length - 10]! ^= 0x10;
    arcCase('bitflip.onnxc', 'one bit flipped near the end', b, 'bitflip\\.onnxc');
  }
  entries.push({ file: 'archives/nope.onnxc', what: 'the archive does not exist', checks: [{ command: 'unpack', args: ['unpack', '{file}', '--out', '{out}/out.onnx'], exit: 2, error: 'nope\\.onnxc.*no such file' }] });

  write('manifest.json', `${JSON.stringify({ schema: 'onnx-compress/bad-inputs@1', generator: 'scripts/make-bad-inputs.ts', entries }, null, 1)}\n`);
  return entries;
}

if (require.main === module) {
  const dir = path.resolve(process.argv[2] ?? path.join(__dirname, '..', 'test', 'bad-inputs'));
  const entries = makeBadInputs(dir);
  const checks = entries.reduce((s, e) => s + e.checks.length, 0);
  let bytes = 0;
  const walk = (d: string): void => {
    for (const e of fs.readdirSync(d, { withFileTypes: true })) {
      if (e.isDirectory()) walk(path.join(d, e.name));
      else bytes += fs.statSync(path.join(d, e.name)).size;
    }
  };
  walk(dir);
  console.log(`${dir}: ${entries.length} inputs, ${checks} checks, ${bytes} bytes`);
}
