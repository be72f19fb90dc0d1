/**
 * Evaluation benchmark (issue #5 part 3): session creation vs inference, and weight-variant
 * evaluations per second, naive (new session on the full model per variant, dataset re-read) vs
 * {@link VariantEvaluator} (split graph, cached activations, weights fed or session rebuilt on the
 * suffix, with and without early stopping). Overhead = wall time ÷ time inside `session.run`.
 *
 * Models: the fixtures (`test/fixtures/*.onnx`) and a ResNet-18-sized model (`.tmp/resnet18-fmnist.onnx`,
 * trained 300 steps, made by `scripts/make-resnet18.py` when missing and python is there). Data: fmnist-test-1000.
 * Variants: per layer, the weight rounded to 1..8 bits (uniform, per tensor; a sensitivity sweep), budget 1 point.
 */
import { execFileSync } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { openDataset } from '../src/engine/eval/dataset';
import { loadDatasetSpec, type DatasetSpec } from '../src/engine/eval/datasetSpec';
import { ClassificationAccumulator } from '../src/engine/eval/metrics';
import { classesOf, createSession, runDataset, sessionInputs, sessionOutputs, toOrtFeeds } from '../src/engine/eval/session';
import { VariantEvaluator } from '../src/engine/eval/variantEvaluator';
import { substituteWeights } from '../src/engine/eval/weightsAsInputs';
import { decodeModel } from '../src/engine/onnx/codec';
import type { Bench } from './main';

const BITS = [1, 2, 3, 4, 5, 6, 7, 8];
const BUDGET = 0.01;

/** Uniform per-tensor rounding to 2^bits levels between min and max. */
function quantize(w: Float32Array, bits: number): Float32Array {
  let lo = Infinity;
  let hi = -Infinity;
  for (const x of w) (lo = Math.min(lo, x)), (hi = Math.max(hi, x));
  const step = (hi - lo) / (2 ** bits - 1) || 1;
  return w.map((x) => lo + Math.round((x - lo) / step) * step);
}

const median = (xs: number[]) => xs.slice().sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;
const ms = (x: number) => `${x.toFixed(0)} ms`;

/** Times session creation (median of 3) and one pass over the data (time inside run, and wall). */
async function baseline(bytes: Uint8Array, spec: DatasetSpec) {
  const creates: number[] = [];
  let inferMs = 0;
  let wallMs = 0;
  for (let i = 0; i < 3; i++) {
    const t0 = performance.now();
    const s = await createSession(bytes);
    creates.push(performance.now() - t0);
    try {
      if (i === 2) {
        const ds = await openDataset(spec, sessionInputs(s), { numClasses: classesOf(sessionOutputs(s)[0]) });
        // warm-up batch, then the timed pass
        for await (const b of ds.batches(100)) {
          await s.run(toOrtFeeds(b.feeds));
          break;
        }
        const t1 = performance.now();
        for await (const b of ds.batches(100)) {
          const t = performance.now();
          await s.run(toOrtFeeds(b.feeds));
          inferMs += performance.now() - t;
        }
        wallMs = performance.now() - t1;
      }
    } finally {
      await s.release();
    }
  }
  return { createMs: median(creates), inferMs, passWallMs: wallMs };
}

/** Naive: a new session on the full model per variant, the dataset re-read, all samples. */
async function naive(bytes: Uint8Array, spec: DatasetSpec, variants: { name: string; data: Float32Array }[]) {
  const t0 = performance.now();
  let infer = 0;
  for (const v of variants) {
    const s = await createSession(substituteWeights(bytes, new Map([[v.name, v.data]])));
    try {
      const ds = await openDataset(spec, sessionInputs(s), { numClasses: 10 });
      const acc = new ClassificationAccumulator();
      const t = performance.now();
      await runDataset(s, ds, (out, b) => void acc.add(out['logits']!.data, b.count, 10, b.labels), { batchSize: 100 });
      infer += performance.now() - t;
    } finally {
      await s.release();
    }
  }
  const wall = performance.now() - t0;
  return { rate: (variants.length / wall) * 1000, wallMs: wall, inferMs: infer };
}

/** Fast: one evaluator per layer (set-up included), all that layer's variants. */
async function fast(bytes: Uint8Array, spec: DatasetSpec, layers: string[], budget: number | undefined) {
  const t0 = performance.now();
  let setup = 0;
  let evalWall = 0;
  let evalInfer = 0;
  let samples = 0;
  let variants = 0;
  const strategies: string[] = [];
  // One pass gives the original outputs and every layer's cached activations (included in the wall time).
  const s = await createSession(bytes);
  let ds;
  try {
    ds = await openDataset(spec, sessionInputs(s), { numClasses: 10 });
  } finally {
    await s.release();
  }
  const t1 = performance.now();
  const store = await VariantEvaluator.prepare(bytes, layers.map((l) => [l]), ds, { batchSize: 100 });
  setup += performance.now() - t1;
  for (const layer of layers) {
    const t2 = performance.now();
    const ev = await VariantEvaluator.fromStore(bytes, [layer], store, { batchSize: 100 });
    setup += performance.now() - t2;
    strategies.push(`${ev.mode}/${ev.strategy}(${ev.nodes.perVariant}/${ev.nodes.total} nodes; set-up ${Object.entries(ev.timings).map(([k, v]) => `${k} ${v.toFixed(0)}`).join(', ')})`);
    try {
      const w = ev.originalWeights().get(layer)!.data;
      for (const bits of BITS) {
        const r = await ev.evaluate(new Map([[layer, quantize(w, bits)]]), budget === undefined ? {} : { budget });
        evalWall += r.timing.wallMs;
        evalInfer += r.timing.inferenceMs;
        samples += r.samples;
        variants++;
      }
    } finally {
      await ev.dispose();
    }
  }
  const wall = performance.now() - t0;
  return { rate: (variants / wall) * 1000, wallMs: wall, setupMs: setup, passMs: store.passMs, evalWall, evalInfer, meanSamples: samples / variants, strategies };
}

function resnet18(): string | undefined {
  const file = resolve('.tmp/resnet18-fmnist.onnx');
  if (existsSync(file)) return file;
  try {
    console.log('(making .tmp/resnet18-fmnist.onnx with scripts/make-resnet18.py: about 5 minutes ...)');
    execFileSync('/usr/bin/python3', ['scripts/make-resnet18.py', file], { stdio: 'inherit' });
    return file;
  } catch {
    return undefined;
  }
}

/** Runs the benchmark; `args` may contain `--quick` (LeNet only) or model paths. */
export async function runEvalBench(args: string[]): Promise<void> {
  const spec = await loadDatasetSpec('test/fixtures/data/fmnist-test-1000.dataset.json');
  const models = args.filter((a) => a.endsWith('.onnx'));
  if (models.length === 0) {
    for (const n of ['lenet5', 'resnet8', 'mobilenet']) if (existsSync(join('test/fixtures', `${n}.onnx`))) models.push(join('test/fixtures', `${n}.onnx`));
    if (!args.includes('--quick')) {
      const r = resnet18();
      if (r) models.push(r);
    }
  }
  for (const file of models) {
    const bytes = readFileSync(file);
    const m = decodeModel(bytes);
    const weights = m.graph!.initializer.filter((t) => t.dims.length >= 2 && t.dataType === 1).map((t) => t.name);
    // up to 6 layers spread from the first to the last
    const pick = weights.length <= 6 ? weights : Array.from({ length: 6 }, (_, i) => weights[Math.round((i * (weights.length - 1)) / 5)]!);
    const variants = pick.flatMap((name) => {
      const t = m.graph!.initializer.find((x) => x.name === name)!;
      const data = new Float32Array(new Uint8Array(t.rawData).buffer.slice(0));
      return BITS.map((b) => ({ name, data: quantize(data, b) }));
    });
    console.log(`### ${file} (${(bytes.length / 1e6).toFixed(1)} MB, ${weights.length} weight tensors; ${pick.length} layers × ${BITS.length} variants)`);
    const b = await baseline(bytes, spec);
    console.log(`session create ${ms(b.createMs)} (median of 3); one pass over 1000 images: ${ms(b.inferMs)} inside run, ${ms(b.passWallMs)} wall`);
    const nv = await naive(bytes, spec, variants);
    console.log(`naive (new session per variant, all 1000): ${nv.rate.toFixed(2)} variants/s; overhead ${(nv.wallMs / nv.inferMs).toFixed(2)}`);
    for (const budget of [undefined, BUDGET]) {
      const f = await fast(bytes, spec, pick, budget);
      console.log(
        `fast${budget === undefined ? ' (all samples)' : ` (early stop, budget ${budget * 100} pt, 95 %)`}: ${f.rate.toFixed(2)} variants/s = ${(f.rate / nv.rate).toFixed(2)}× naive ` +
          `(set-up ${ms(f.setupMs)} incl. shared pass ${ms(f.passMs)}, of ${ms(f.wallMs)}); per variant: overhead ${(f.evalWall / f.evalInfer).toFixed(3)}, ${f.meanSamples.toFixed(0)} samples on average; ${'\n  ' + f.strategies.join('\n  ')}`,
      );
    }
  }
}

/** The registered benchmark. */
export const evalBench: Bench = {
  name: 'eval',
  summary: 'session create vs inference; weight variants/s naive vs VariantEvaluator; overhead',
  run: runEvalBench,
};
