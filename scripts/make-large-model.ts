/**
 * Writes a large MLP with its weights in one external data file (issue #8, models over 2 GiB):
 * `model.onnx` (a few hundred bytes) + `weights.bin`, in DIR (default `.tmp/large-model`).
 *
 *   npx tsx scripts/make-large-model.ts [DIR] [--layers 9] [--side 8192]
 *
 * The graph is `x [N, side]` → (MatMul `layer<i>.weight` [side, side] → Relu) × layers, the last
 * layer without Relu; weights He-uniform (seeded mulberry32, so every run writes the same bytes),
 * written one layer at a time (memory: one layer). The defaults make 9 × 8192² float32 = 2.25 GiB,
 * past protobuf's 2 GiB: the model cannot be one .onnx file. Used by `bench/memory.ts`; its output
 * is never committed.
 */
import { create } from '@bufbuild/protobuf';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { encodeModel, makeNode, makeValueInfo } from '../src/engine/onnx';
import { GraphProtoSchema, ModelProtoSchema, OperatorSetIdProtoSchema, StringStringEntryProtoSchema, TensorProto_DataLocation, TensorProtoSchema } from '../src/engine/onnx/proto';
import { mulberry32 } from '../src/engine/util/random';

/** Options of {@link makeLargeModel}. */
export interface LargeModelOptions {
  /** MatMul layers. Default 9. */
  layers: number;
  /** Rows and columns of every weight. Default 8192. */
  side: number;
  /** PRNG seed. Default 42. */
  seed: number;
}

/** What {@link makeLargeModel} wrote. */
export interface LargeModel {
  /** The .onnx file. */
  model: string;
  /** The external data file and its size in bytes. */
  data: string;
  dataBytes: number;
  /** Bytes of one layer's weight. */
  layerBytes: number;
}

/** Writes `model.onnx` + `weights.bin` into `dir` (created when missing); see the module comment. */
export function makeLargeModel(dir: string, options: Partial<LargeModelOptions> = {}): LargeModel {
  const o: LargeModelOptions = { layers: 9, side: 8192, seed: 42, ...options };
  fs.mkdirSync(dir, { recursive: true });
  const data = path.join(dir, 'weights.bin');
  const layerBytes = o.side * o.side * 4;
  const rand = mulberry32(o.seed);
  const bound = Math.sqrt(6 / o.side);
  const w = new Float32Array(o.side * o.side);
  const initializer = [];
  const node = [];
  let prev = 'x';
  const fd = fs.openSync(data, 'w');
  try {
    for (let i = 0; i < o.layers; i++) {
      for (let j = 0; j < w.length; j++) w[j] = (rand() * 2 - 1) * bound;
      let off = 0;
      const bytes = new Uint8Array(w.buffer);
      while (off < bytes.length) off += fs.writeSync(fd, bytes, off, bytes.length - off);
      const name = `layer${i}.weight`;
      initializer.push(
        create(TensorProtoSchema, {
          name,
          dataType: 1,
          dims: [BigInt(o.side), BigInt(o.side)],
          dataLocation: TensorProto_DataLocation.EXTERNAL,
          externalData: [
            create(StringStringEntryProtoSchema, { key: 'location', value: 'weights.bin' }),
            create(StringStringEntryProtoSchema, { key: 'offset', value: String(i * layerBytes) }),
            create(StringStringEntryProtoSchema, { key: 'length', value: String(layerBytes) }),
          ],
        }),
      );
      const mm = i === o.layers - 1 ? 'y' : `mm${i}`;
      node.push(makeNode('MatMul', [prev, name], [mm], `matmul${i}`));
      prev = mm;
      if (i < o.layers - 1) {
        node.push(makeNode('Relu', [mm], [`h${i}`], `relu${i}`));
        prev = `h${i}`;
      }
    }
  } finally {
    fs.closeSync(fd);
  }
  const graph = create(GraphProtoSchema, {
    name: 'large_mlp',
    node,
    initializer,
    input: [makeValueInfo('x', ['N', o.side])],
    output: [makeValueInfo('y', ['N', o.side])],
  });
  const proto = create(ModelProtoSchema, {
    irVersion: 8n,
    producerName: 'make-large-model',
    opsetImport: [create(OperatorSetIdProtoSchema, { domain: '', version: 13n })],
    graph,
  });
  const model = path.join(dir, 'model.onnx');
  fs.writeFileSync(model, encodeModel(proto));
  return { model, data, dataBytes: o.layers * layerBytes, layerBytes };
}

function main(argv: string[]): void {
  const num = (flag: string): number | undefined => {
    const i = argv.indexOf(flag);
    if (i < 0) return undefined;
    const v = Number(argv[i + 1]);
    if (!Number.isInteger(v) || v < 1) throw new Error(`${flag} needs a positive integer, got '${argv[i + 1]}'.`);
    return v;
  };
  const dir = argv.find((a, i) => !a.startsWith('--') && !argv[i - 1]?.startsWith('--')) ?? '.tmp/large-model';
  const opts: Partial<LargeModelOptions> = {};
  const layers = num('--layers');
  const side = num('--side');
  if (layers) opts.layers = layers;
  if (side) opts.side = side;
  const t0 = performance.now();
  const r = makeLargeModel(path.resolve(dir), opts);
  console.log(`${r.model} + ${r.data} (${(r.dataBytes / 2 ** 30).toFixed(2)} GiB) in ${((performance.now() - t0) / 1000).toFixed(1)} s`);
}

if (process.argv[1] && path.resolve(process.argv[1]).endsWith(path.join('scripts', 'make-large-model.ts'))) main(process.argv.slice(2));
