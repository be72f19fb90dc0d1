/**
 * ONNX I/O benchmark: load + save throughput and peak RSS on a generated ~200 MB model with many
 * tensors, as one file and with external data. Each measurement runs in a fresh child process so
 * its peak RSS (`process.resourceUsage().maxRSS`) is its own.
 */
import { execFileSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { encodeModel, loadModel, makeFloatTensor, saveModel } from '../src/engine/onnx';
import { graph, model, node, valueInfo } from '../test/unit/helpers/onnxBuilder';
import type { Bench } from './main';

const DIR = path.resolve('.tmp/bench-onnxio');
const TENSORS = 800;
const PER_TENSOR = 64 * 1024; // floats: 800 × 256 KiB ≈ 210 MB

function generate(file: string): void {
  const inits = [];
  const nodes = [];
  let prev = 'x';
  for (let i = 0; i < TENSORS; i++) {
    const data = new Float32Array(PER_TENSOR);
    for (let j = 0; j < data.length; j++) data[j] = Math.sin(i * 7919 + j) * 0.05;
    inits.push(makeFloatTensor(`layer${i}.weight`, data, [256, 256]));
    nodes.push(node('MatMul', [prev, `layer${i}.weight`], [`h${i}`], `mm${i}`));
    prev = `h${i}`;
  }
  const m = model(graph({ nodes, inputs: [valueInfo('x', [1, 256])], outputs: [valueInfo(prev, [1, 256])], initializers: inits }));
  fs.writeFileSync(file, encodeModel(m));
}

/** Child: load `src`, save to `dst` with `mode`, print JSON timings and peak RSS. */
export async function onnxIoChild([src, dst, mode]: string[]): Promise<void> {
  const t0 = performance.now();
  const m = await loadModel(src!);
  const t1 = performance.now();
  await saveModel(m, dst!, { externalData: mode === 'external' ? { threshold: 1024 } : 'none' });
  const t2 = performance.now();
  console.log(JSON.stringify({ loadMs: t1 - t0, saveMs: t2 - t1, maxRssBytes: process.resourceUsage().maxRSS * 1024 }));
}

function child(args: string[]): { loadMs: number; saveMs: number; maxRssBytes: number } {
  const out = execFileSync(process.execPath, [process.argv[1]!, '--child', 'onnxio', ...args], { encoding: 'utf8' });
  return JSON.parse(out.trim().split('\n').pop()!);
}

/** The registered benchmark. */
export const onnxIoBench: Bench = {
  name: 'onnxio',
  summary: 'ONNX load + save throughput and peak RSS (~210 MB model, 800 tensors)',
  run: async () => {
    fs.mkdirSync(DIR, { recursive: true });
    const single = path.join(DIR, 'big.onnx');
    if (!fs.existsSync(single)) generate(single);
    const ext = path.join(DIR, 'big-ext.onnx');
    child([single, ext, 'external']);
    const size = (f: string): number => fs.statSync(f).size + (fs.existsSync(`${f}.data`) ? fs.statSync(`${f}.data`).size : 0);
    const rows: string[] = [];
    for (const [label, src, mode] of [
      ['one file -> one file', single, 'none'],
      ['one file -> external data', single, 'external'],
      ['external -> external', ext, 'external'],
      ['external -> one file', ext, 'none'],
    ] as const) {
      const dst = path.join(DIR, `out-${mode}.onnx`);
      const r = [child([src, dst, mode]), child([src, dst, mode]), child([src, dst, mode])].sort((a, b) => a.loadMs + a.saveMs - b.loadMs - b.saveMs)[1]!;
      const mb = size(src) / 1e6;
      rows.push(
        `| ${label} | ${mb.toFixed(0)} MB | ${(mb / (r.loadMs / 1000)).toFixed(0)} MB/s | ${(mb / (r.saveMs / 1000)).toFixed(0)} MB/s | ${(mb / ((r.loadMs + r.saveMs) / 1000)).toFixed(0)} MB/s | ${(r.maxRssBytes / 1e6).toFixed(0)} MB | ${(r.maxRssBytes / size(src)).toFixed(2)}× |`,
      );
    }
    console.log('| case | model | load | save | round trip | peak RSS | RSS ÷ model |');
    console.log('|---|---|---|---|---|---|---|');
    for (const r of rows) console.log(r);
    console.log('\n(median of 3 runs, each in a fresh process; target: round trip ≥ 500 MB/s, peak RSS ≤ 2.5× model size)');
  },
};
