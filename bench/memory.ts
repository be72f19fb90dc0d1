/**
 * Large-model benchmark (issue #8): a generated model over 2 GiB with external data
 * (`scripts/make-large-model.ts`: 9 MatMul layers of 8192×8192 float32 = 2.25 GiB in weights.bin)
 * through the real CLI — `info`, `apply` (8-bit quantization of every layer), `analyze` and
 * `compress` (data-free) — each in its own process, peak RSS from `/usr/bin/time -f %M`.
 *
 * The working set we compare to: the peak RSS of a process that does nothing but create one
 * onnxruntime session for the model (from its path, default options) and run one batch of the same
 * size as the commands' (`--limit`). That is the least any command that evaluates the model needs;
 * it is about 1.07× the tensor data (onnxruntime reads the weights and pre-packs them for MatMul).
 * Target: every command ≤ 2× that.
 *
 *   node dist/bench.js memory [--techniques float] [--limit 20] [--max-size 900MiB] [--keep]
 *                             [--layers 9] [--side 8192] [--skip info,apply,analyze]
 *
 * `--layers` / `--side` make a smaller model to iterate on (e.g. `--layers 6 --side 6144`, 0.84 GiB;
 * `--max-size` then needs scaling too); `--skip` leaves out some of the commands (compress runs the
 * sensitivity study itself when analyze did not).
 *
 * Needs ~6.5 GB of disk under `.tmp/bench-memory` (compress's candidates go through a temp data
 * file as large as the weights; all removed afterwards unless `--keep`) and time:
 * compressing one 67 M-weight layer at one level takes 10–60 s here, and analyze measures
 * layers × levels cells (9 × 6 with `float`). Never run by tests.
 */
import { spawn, spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { makeLargeModel } from '../scripts/make-large-model';
import type { Bench } from './main';

const DIR = path.resolve('.tmp/bench-memory');

interface Run {
  name: string;
  code: number | null;
  seconds: number;
  maxRssBytes: number;
  note: string;
}

/** Runs `node args...` under /usr/bin/time; peak RSS of the node process (kB → bytes). */
function timed(name: string, args: string[]): Promise<Run> {
  const t0 = performance.now();
  return new Promise((resolve) => {
    const child = spawn('/usr/bin/time', ['-f', 'MAXRSS_KB %M', process.execPath, ...args], { stdio: ['ignore', 'ignore', 'pipe'] });
    let err = '';
    child.stderr.setEncoding('utf8').on('data', (d: string) => {
      err += d;
      if (err.length > 1 << 20) err = err.slice(-(1 << 16));
    });
    child.on('close', (code) => {
      const kb = Number(/MAXRSS_KB (\d+)/.exec(err)?.[1] ?? NaN);
      const line = err.split('\n').find((l) => l.startsWith('onnx-compress:')) ?? '';
      resolve({ name, code, seconds: (performance.now() - t0) / 1000, maxRssBytes: kb * 1024, note: line.slice(0, 200) });
    });
  });
}

/** The baseline process: one onnxruntime session from the model's path, one batch of `batch` rows. */
const BASELINE = `
const ort = require(${JSON.stringify(require.resolve('onnxruntime-node'))});
(async () => {
  const [file, batch, side] = process.argv.slice(1).map((v, i) => (i ? Number(v) : v));
  const s = await ort.InferenceSession.create(file);
  const x = new Float32Array(batch * side);
  for (let i = 0; i < x.length; i++) x[i] = Math.sin(i);
  const r = await s.run({ x: new ort.Tensor('float32', x, [batch, side]) });
  if (!Number.isFinite(r[s.outputNames[0]].data[0])) process.exit(1);
  await s.release();
})();`;

function flag(args: string[], name: string, fallback: string): string {
  const i = args.indexOf(name);
  return i >= 0 && args[i + 1] ? args[i + 1]! : fallback;
}

/** The benchmark. */
export const memoryBench: Bench = {
  name: 'memory',
  summary: 'peak RSS of info/apply/analyze/compress on a generated 2.25 GiB model with external data vs one onnxruntime session',
  run: async (argv) => {
    const gib = (b: number): string => `${(b / 2 ** 30).toFixed(2)} GiB`;
    const techniques = flag(argv, '--techniques', 'float');
    const limit = flag(argv, '--limit', '20');
    const maxSize = flag(argv, '--max-size', '900MiB');
    const layers = Number(flag(argv, '--layers', '9'));
    const side = Number(flag(argv, '--side', '8192'));
    const skip = new Set(flag(argv, '--skip', '').split(','));
    const cli = path.resolve('dist/cli.js');
    if (spawnSync('/usr/bin/time', ['true']).status !== 0) throw new Error('bench memory needs /usr/bin/time (apt-get install time).');
    fs.rmSync(DIR, { recursive: true, force: true });
    try {
      const t0 = performance.now();
      const m = makeLargeModel(DIR, { layers, side });
      console.log(`generated ${m.model} + weights.bin (${gib(m.dataBytes)}) in ${((performance.now() - t0) / 1000).toFixed(1)} s`);
      const plan = path.join(DIR, 'plan.json');
      fs.writeFileSync(plan, JSON.stringify({ default: { technique: 'quant', bits: 8, clip: 'minmax' } }));
      const res = path.join(DIR, 'res');
      const row = (r: Run, base: Run): string => `| ${r.name} | ${r.code} | ${r.seconds.toFixed(1)} | ${gib(r.maxRssBytes)} | ${(r.maxRssBytes / base.maxRssBytes).toFixed(2)} | ${r.note.replace(/\|/g, '/')} |`;
      const base = await timed('baseline: one onnxruntime session + one batch', ['-e', BASELINE, m.model, limit, String(side)]);
      console.log(`working set: peak RSS of the baseline process, ${gib(base.maxRssBytes)} (tensor data ${gib(m.dataBytes)}, largest layer ${gib(m.layerBytes)})\n`);
      console.log('| command | exit | seconds | peak RSS | × working set | note |\n|---|---|---|---|---|---|');
      console.log(row(base, base));
      const runs = [base];
      const run = async (name: string, args: string[]): Promise<void> => {
        if (skip.has(args[1]!)) return;
        const r = await timed(name, args);
        runs.push(r);
        // Each row as soon as it is measured: a long run shows where it is.
        console.log(row(r, base));
      };
      await run('info', [cli, 'info', m.model]);
      await run('apply (quant 8 bit minmax, every layer)', [cli, 'apply', m.model, '--plan', plan, '--out', path.join(DIR, 'out.onnx')]);
      await run(`analyze --data-free --limit ${limit} --techniques ${techniques}`, [cli, 'analyze', m.model, '--data-free', '--limit', limit, '--techniques', techniques, '--out', res]);
      // A size budget always has a candidate to export (a loss budget on 20 samples may have none:
      // its upper confidence bound stays above a few points even with no flip).
      await run(`compress (same folder: search + export) --max-size ${maxSize}`, [cli, 'compress', m.model, '--data-free', '--limit', limit, '--sensitivity-limit', limit, '--techniques', techniques, '--max-size', maxSize, '--out', res]);
      const size = (f: string): number => (fs.existsSync(f) ? fs.statSync(f).size : 0);
      const worst = runs.slice(1).reduce((a, r) => Math.max(a, r.maxRssBytes / base.maxRssBytes), 0);
      console.log(`\nlargest: ${worst.toFixed(2)} × the working set (target ≤ 2); total ${((performance.now() - t0) / 60000).toFixed(1)} min`);
      const applied = size(path.join(DIR, 'out.onnx')) + size(path.join(DIR, 'out.onnx.data'));
      if (applied) console.log(`\napply wrote ${gib(applied)} (out.onnx + out.onnx.data)`);
      const exported = path.join(res, 'model.compressed.onnx');
      if (fs.existsSync(exported)) console.log(`compress exported ${gib(size(exported) + size(`${exported}.data`))} (model.compressed.onnx + .data)`);
    } finally {
      if (!argv.includes('--keep')) fs.rmSync(DIR, { recursive: true, force: true });
    }
  },
};
