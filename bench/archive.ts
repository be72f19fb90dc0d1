/**
 * Archive benchmark: on the fixture models (and a synthetic ~10 MB CNN for speed) with 16-cluster
 * sharing on every compressible conv/gemm weight, the original, compressed ONNX and archive sizes,
 * their ratios, and pack/unpack times. Run: `npm run bench archive` or `npx tsx bench/archive.ts`.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import * as zlib from 'node:zlib';
import { applySpecs } from '../src/engine/encode/apply';
import { packArchiveWithStats, unpackArchive } from '../src/engine/encode/archive';
import { encodeModel, listWeights, makeFloatTensor, makeNode, modelFromBytes, makeValueInfo } from '../src/engine/onnx';
import { gaussian, mulberry32 } from '../src/engine/util/random';
import { create } from '@bufbuild/protobuf';
import { GraphProtoSchema, ModelProtoSchema, OperatorSetIdProtoSchema } from '../src/engine/onnx/proto';

/** Same shape as `Bench` in `bench/main.ts`. */
export interface ArchiveBench {
  name: string;
  summary: string;
  run: (args: string[]) => Promise<void>;
}

/** A chain of 1×1 convs, 1600×1600 each (~10 MB of float32 for 1 layer of width 1600). */
function syntheticCnn(layers = 1, width = 1600): Uint8Array {
  const g = gaussian(mulberry32(7));
  const inits = [];
  const nodes = [];
  let x = 'x';
  for (let l = 0; l < layers; l++) {
    const scale = Float32Array.from({ length: width }, () => 0.02 * Math.exp(0.3 * g()));
    const w = Float32Array.from({ length: width * width }, (_, i) => scale[Math.floor(i / width)]! * g());
    inits.push(makeFloatTensor(`conv${l}.weight`, w, [width, width, 1, 1]));
    nodes.push(makeNode('Conv', [x, `conv${l}.weight`], [`y${l}`], `conv${l}`));
    x = `y${l}`;
  }
  const graph = create(GraphProtoSchema, { name: 'g', node: nodes, initializer: inits, input: [makeValueInfo('x', ['N', width, 4, 4])], output: [makeValueInfo(x, ['N', width, 4, 4])] });
  return encodeModel(create(ModelProtoSchema, { irVersion: 8n, opsetImport: [create(OperatorSetIdProtoSchema, { domain: '', version: 13n })], graph }));
}

function brotliBytes(b: Uint8Array): number {
  return zlib.brotliCompressSync(b, { params: { [zlib.constants.BROTLI_PARAM_QUALITY]: 11, [zlib.constants.BROTLI_PARAM_LGWIN]: 24 } }).length;
}

async function run(): Promise<void> {
  const dir = path.join(__dirname, '../test/fixtures');
  const inputs: Array<[string, Uint8Array]> = fs.readdirSync(dir).filter((f) => f.endsWith('.onnx')).map((f) => [f, fs.readFileSync(path.join(dir, f))]);
  inputs.push(['synthetic 1600×1600 conv', syntheticCnn()]);
  console.log('| model | original | ONNX (k=16) | ratio | brotli(ONNX) | archive | ratio | pack ms | unpack ms | streams |');
  console.log('|---|---:|---:|---:|---:|---:|---:|---:|---:|---|');
  for (const [name, bytes] of inputs) {
    const m = modelFromBytes(bytes, name);
    const specs = new Map(listWeights(m).filter((w) => w.compressible && (w.kind === 'conv' || w.kind === 'gemm')).map((w) => [w.name, { technique: 'share', k: 16, perChannel: false } as const]));
    applySpecs(m, specs);
    const onnx = encodeModel(m.proto);
    let t = performance.now();
    const { archive, stats } = packArchiveWithStats(onnx);
    const packMs = performance.now() - t;
    t = performance.now();
    const back = unpackArchive(archive, name);
    const unpackMs = performance.now() - t;
    if (Buffer.compare(Buffer.from(back), Buffer.from(onnx)) !== 0) throw new Error(`${name}: round trip differs`);
    const br = onnx.length <= 4 << 20 ? String(brotliBytes(onnx)) : '-';
    const coders = stats.streams.length ? stats.streams.map((s) => `${s.coder}${s.coder === 'range' ? `/o${s.order & 31}r${s.order >> 5}` : ''}`).join(',') : 'whole-file brotli';
    console.log(`| ${name} | ${bytes.length} | ${onnx.length} | ${(onnx.length / bytes.length).toFixed(4)} | ${br} | ${archive.length} | ${(archive.length / bytes.length).toFixed(4)} | ${packMs.toFixed(0)} | ${unpackMs.toFixed(0)} | ${coders} |`);
  }
}

/** The benchmark entry for `bench/main.ts`. */
export const archiveBench: ArchiveBench = { name: 'archive', summary: 'archive sizes and pack/unpack times with 16-cluster sharing', run };

if (require.main === module && /archive\.ts$/.test(process.argv[1] ?? '')) void run();
