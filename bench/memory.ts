/**
 * Large-model benchmark (issue #8, item 4): a generated model over 2 GiB with external data (a stack
 * of 9 MatMul layers of 8192×8192 float32 = 2.25 GiB) through the real CLI — `info`, `apply` (8-bit
 * quantization of every layer), `analyze` and `compress` — with each run's peak RSS
 * (`/usr/bin/time -f %M`) against the largest working set: the model's tensor data, which
 * `loadModel` holds in memory whole (external data included). Target: peak RSS ≤ 2× that.
 * Needs ~7 GB of disk under `.tmp/bench-memory` (removed afterwards) and minutes; never run by tests.
 */
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { create } from '@bufbuild/protobuf';
import { encodeModel } from '../src/engine/onnx';
import { StringStringEntryProtoSchema, TensorProto_DataLocation, TensorProtoSchema } from '../src/engine/onnx/proto';
import { mulberry32 } from '../src/engine/util/random';
import { graph, model, node, valueInfo } from '../test/unit/helpers/onnxBuilder';
import type { Bench } from './main';

const DIR = path.resolve('.tmp/bench-memory');
const LAYERS = 9;
const SIDE = 8192;
const LAYER_BYTES = SIDE * SIDE * 4;

/** Writes model.onnx + weights.bin (seeded, streamed one layer at a time). */
function generate(dir: string): { model: string; dataBytes: number } {
  fs.mkdirSync(dir, { recursive: true });
  const data = path.join(dir, 'weights.bin');
  const fd = fs.openSync(data, 'w');
  const rand = mulberry32(42);
  const layer = new Float32Array(SIDE * SIDE);
  const inits = [];
  const nodes = [];
  let prev = 'x';
  for (let i = 0; i < LAYERS; i++) {
    for (let j = 0; j < layer.length; j++) layer[j] = (rand() - 0.5) * 0.02;
    fs.writeSync(fd, new Uint8Array(layer.buffer));
    inits.push(
      create(TensorProtoSchema, {
        name: `layer${i}.weight`,
        dataType: 1,
        dims: [BigInt(SIDE), BigInt(SIDE)],
        dataLocation: TensorProto_DataLocation.EXTERNAL,
        externalData: [
          create(StringStringEntryProtoSchema, { key: 'location', value: 'weights.bin' }),
          create(StringStringEntryProtoSchema, { key: 'offset', value: String(i * LAYER_BYTES) }),
          create(StringStringEntryProtoSchema, { key: 'length', value: String(LAYER_BYTES) }),
        ],
      }),
    );
    nodes.push(node('MatMul', [prev, `layer${i}.weight`], [`h${i}`], `mm${i}`));
    prev = `h${i}`;
  }
  fs.closeSync(fd);
  const file = path.join(dir, 'model.onnx');
  fs.writeFileSync(file, encodeModel(model(graph({ nodes, inputs: [valueInfo('x', ['N', SIDE])], outputs: [valueInfo(prev, ['N', SIDE])], initializers: inits }))));
  return { model: file, dataBytes: LAYERS * LAYER_BYTES };
}

interface Run {
  name: string;
  code: number | null;
  seconds: number;
  maxRssBytes: number;
  note: string;
}

function run(name: string, args: string[]): Run {
  const t0 = performance.now();
  const r = spawnSync('/usr/bin/time', ['-f', 'MAXRSS_KB %M', process.execPath, path.resolve('dist/cli.js'), ...args], { encoding: 'utf8', maxBuffer: 1 << 26 });
  const kb = Number(/MAXRSS_KB (\d+)/.exec(r.stderr)?.[1] ?? NaN);
  const err = r.stderr.split('\n').find((l) => l.startsWith('onnx-compress:')) ?? '';
  return { name, code: r.status, seconds: (performance.now() - t0) / 1000, maxRssBytes: kb * 1024, note: err.slice(0, 200) };
}

/** The benchmark. */
export const memoryBench: Bench = {
  name: 'memory',
  summary: 'peak RSS of info/apply/analyze/compress on a generated 2.25 GiB model with external data',
  run: async () => {
    const gib = (b: number): string => `${(b / 2 ** 30).toFixed(2)} GiB`;
    fs.rmSync(DIR, { recursive: true, force: true });
    try {
      const t0 = performance.now();
      const { model: file, dataBytes } = generate(DIR);
      console.log(`generated ${file} + weights.bin (${gib(dataBytes)}) in ${((performance.now() - t0) / 1000).toFixed(1)} s`);
      const plan = path.join(DIR, 'plan.json');
      fs.writeFileSync(plan, JSON.stringify({ default: { technique: 'quant', bits: 8 } }));
      const runs = [
        run('info', ['info', file]),
        run('apply quant 8b', ['apply', file, '--plan', plan, '--out', path.join(DIR, 'out.onnx')]),
        run('analyze (data-free, share)', ['analyze', file, '--data-free', '--limit', '20', '--techniques', 'share', '--out', path.join(DIR, 'res')]),
        run('compress (data-free, share)', ['compress', file, '--data-free', '--limit', '20', '--sensitivity-limit', '20', '--techniques', 'share', '--max-loss', '5', '--out', path.join(DIR, 'res')]),
      ];
      const outBytes = ['out.onnx', 'out.onnx.data'].reduce((s, f) => s + (fs.existsSync(path.join(DIR, f)) ? fs.statSync(path.join(DIR, f)).size : 0), 0);
      console.log(`working set: the tensor data, ${gib(dataBytes)} (loadModel holds all of it; the largest layer is ${gib(LAYER_BYTES)})\n`);
      console.log('| command | exit | seconds | peak RSS | × working set | note |\n|---|---|---|---|---|---|');
      for (const r of runs) console.log(`| ${r.name} | ${r.code} | ${r.seconds.toFixed(1)} | ${gib(r.maxRssBytes)} | ${(r.maxRssBytes / dataBytes).toFixed(2)} | ${r.note.replace(/\|/g, '/')} |`);
      if (outBytes) console.log(`\napply wrote ${gib(outBytes)} (out.onnx + out.onnx.data)`);
    } finally {
      fs.rmSync(DIR, { recursive: true, force: true });
    }
  },
};
