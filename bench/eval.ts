/**
 * Evaluation benchmark (issue #5 part 3): session creation vs inference, and weight-variant
 * evaluations per second, naive (new session on the full model per variant, dataset re-read, all
 * samples) vs {@link VariantEvaluator} (one shared pass, split graph, cached activations, weights fed
 * or session rebuilt on the suffix). Overhead = wall time ÷ time inside `session.run`.
 *
 * The workload is a sensitivity sweep as `analyze` runs it: for every layer (at most 10, spread over
 * the model), the weight rounded to 8, 7, …, 1 bits (uniform per tensor), mildest first, one
 * evaluator per layer. The evaluator runs it three ways:
 * - all samples: every variant on all 1000 samples (exact losses);
 * - screen: `stopOn: 'over'` against 5 points (analyze's screen budget): decisively-bad variants stop
 *   early, every other variant gets its exact loss;
 * - early stop: stops both ways against a 1-point budget (95 %), for a search that only needs the
 *   decision.
 * Rates include all set-up (the shared pass and each layer's evaluator).
 *
 * Models: the fixtures (`test/fixtures/*.onnx`) and a ResNet-18-sized model (`.tmp/resnet18-fmnist.onnx`,
 * trained 300 steps, made by `scripts/make-resnet18.py` when missing and python is there). Data:
 * fmnist-test-1000. Arguments: `--quick` (LeNet only), model paths, `--threads N` (default: all cores).
 */
import { execFileSync } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { loadavg } from 'node:os';
import { join, resolve } from 'node:path';
import { openDataset } from '../src/engine/eval/dataset';
import { loadDatasetSpec, type DatasetSpec } from '../src/engine/eval/datasetSpec';
import { ClassificationAccumulator } from '../src/engine/eval/metrics';
import { classesOf, createSession, runDataset, sessionInputs, sessionOutputs, toOrtFeeds } from '../src/engine/eval/session';
import { VariantEvaluator, type EvaluateOptions } from '../src/engine/eval/variantEvaluator';
import { substituteWeights } from '../src/engine/eval/weightsAsInputs';
import { decodeModel } from '../src/engine/onnx/codec';
import type { Bench } from './main';

const BITS = [8, 7, 6, 5, 4, 3, 2, 1];
const MAX_LAYERS = 10;

/** The ways the evaluator is run (see the module comment). */
const MODES: { name: string; options: Partial<EvaluateOptions> }[] = [
  { name: 'all samples', options: {} },
  { name: "screen (stop only when over 5 pt, 95 %)", options: { budget: 0.05, stopOn: 'over' } },
  { name: 'early stop (both ways, budget 1 pt, 95 %)', options: { budget: 0.01 } },
];

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
const load = () => loadavg().map((x) => x.toFixed(1)).join(' ');

/** Times session creation (median of 3) and one pass over the data (time inside run, and wall). */
async function baseline(bytes: Uint8Array, spec: DatasetSpec, threads: object) {
  const creates: number[] = [];
  let inferMs = 0;
  let wallMs = 0;
  for (let i = 0; i < 3; i++) {
    const t0 = performance.now();
    const s = await createSession(bytes, threads);
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
async function naive(bytes: Uint8Array, spec: DatasetSpec, variants: { name: string; data: Float32Array }[], threads: object) {
  const t0 = performance.now();
  let infer = 0;
  for (const v of variants) {
    const s = await createSession(substituteWeights(bytes, new Map([[v.name, v.data]])), threads);
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

/** The evaluator: one shared pass, then one evaluator per layer and that layer's sweep. */
async function fast(bytes: Uint8Array, spec: DatasetSpec, layers: string[], options: Partial<EvaluateOptions>, threads: object) {
  const t0 = performance.now();
  let evalWall = 0;
  let evalInfer = 0;
  let samples = 0;
  let variants = 0;
  let layerSetup = 0;
  const perLayer: string[] = [];
  const s = await createSession(bytes, threads);
  let ds;
  try {
    ds = await openDataset(spec, sessionInputs(s), { numClasses: 10 });
  } finally {
    await s.release();
  }
  const tPrep = performance.now();
  const store = await VariantEvaluator.prepare(bytes, layers.map((l) => [l]), ds, { batchSize: 100, ...threads });
  const prepareMs = performance.now() - tPrep;
  for (const layer of layers) {
    const tl = performance.now();
    const ev = await VariantEvaluator.fromStore(bytes, [layer], store, { batchSize: 100, ...threads });
    layerSetup += performance.now() - tl;
    let lw = 0;
    let li = 0;
    let ls = 0;
    try {
      const w = ev.originalWeights().get(layer)!.data;
      for (const bits of BITS) {
        const r = await ev.evaluate(new Map([[layer, quantize(w, bits)]]), options);
        lw += r.timing.wallMs;
        li += r.timing.inferenceMs;
        ls += r.samples;
        variants++;
      }
      const c = ev.costs;
      perLayer.push(
        `${layer}: ${ev.mode}/${ev.strategy}, ${ev.nodes.perVariant}/${ev.nodes.total} nodes; ${(lw / BITS.length).toFixed(0)} ms per variant ` +
          `(${(li / BITS.length).toFixed(0)} in run, ${(ls / BITS.length).toFixed(0)} samples); measured ms/sample rebuild ${c.rebuildPerSample?.toFixed(3) ?? '-'} ` +
          `(+ ${c.rebuildCreate?.toFixed(0) ?? '-'} create), feed ${c.feedPerSample?.toFixed(3) ?? '-'}`,
      );
    } finally {
      await ev.dispose();
    }
    evalWall += lw;
    evalInfer += li;
    samples += ls;
  }
  const wall = performance.now() - t0;
  return { rate: (variants / wall) * 1000, wallMs: wall, prepareMs, passMs: store.passMs, layerSetup, evalWall, evalInfer, meanSamples: samples / variants, perLayer };
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

/** Runs the benchmark; see the module comment for `args`. */
export async function runEvalBench(args: string[]): Promise<void> {
  const spec = await loadDatasetSpec('test/fixtures/data/fmnist-test-1000.dataset.json');
  const ti = args.indexOf('--threads');
  const threads = ti >= 0 ? { intraOpNumThreads: Number(args[ti + 1]) } : {};
  const models = args.filter((a) => a.endsWith('.onnx'));
  if (models.length === 0) {
    for (const n of args.includes('--quick') ? ['lenet5'] : ['lenet5', 'resnet8', 'mobilenet']) {
      if (existsSync(join('test/fixtures', `${n}.onnx`))) models.push(join('test/fixtures', `${n}.onnx`));
    }
    if (!args.includes('--quick')) {
      const r = resnet18();
      if (r) models.push(r);
    }
  }
  for (const file of models) {
    const bytes = readFileSync(file);
    const m = decodeModel(bytes);
    const weights = m.graph!.initializer.filter((t) => t.dims.length >= 2 && t.dataType === 1).map((t) => t.name);
    const n = Math.min(MAX_LAYERS, weights.length);
    const pick = Array.from({ length: n }, (_, i) => weights[n === 1 ? 0 : Math.round((i * (weights.length - 1)) / (n - 1))]!);
    const variants = pick.flatMap((name) => {
      const t = m.graph!.initializer.find((x) => x.name === name)!;
      const data = new Float32Array(new Uint8Array(t.rawData).buffer.slice(0));
      return BITS.map((b) => ({ name, data: quantize(data, b) }));
    });
    console.log(
      `### ${file} (${(bytes.length / 1e6).toFixed(1)} MB, ${weights.length} weight tensors; ${pick.length} layers × ${BITS.length} levels = ${variants.length} variants; ` +
        `threads ${ti >= 0 ? threads.intraOpNumThreads : 'all'}; load average ${load()})`,
    );
    const b = await baseline(bytes, spec, threads);
    console.log(`session create ${ms(b.createMs)} (median of 3); one pass over 1000 images: ${ms(b.inferMs)} inside run, ${ms(b.passWallMs)} wall`);
    const nv = await naive(bytes, spec, variants, threads);
    console.log(`naive (new session per variant, all 1000): ${nv.rate.toFixed(2)} variants/s; overhead ${(nv.wallMs / nv.inferMs).toFixed(2)}`);
    for (const mode of MODES) {
      const f = await fast(bytes, spec, pick, mode.options, threads);
      console.log(
        `evaluator, ${mode.name}: ${f.rate.toFixed(2)} variants/s = ${(f.rate / nv.rate).toFixed(2)}× naive; ${f.meanSamples.toFixed(0)} samples per variant on average; ` +
          `overhead per variant ${(f.evalWall / f.evalInfer).toFixed(3)}, over everything ${(f.wallMs / f.evalInfer).toFixed(3)} ` +
          `(of ${ms(f.wallMs)}: shared pass ${ms(f.prepareMs)}, layer set-up ${ms(f.layerSetup)}, variants ${ms(f.evalWall)} of which ${ms(f.evalInfer)} in run)` +
          (mode === MODES[0] ? `\n  ${f.perLayer.join('\n  ')}` : ''),
      );
    }
    console.log(`(load average ${load()})`);
  }
}

/** The registered benchmark. */
export const evalBench: Bench = {
  name: 'eval',
  summary: 'session create vs inference; weight variants/s naive vs VariantEvaluator (sweep, screen, early stop); overhead',
  run: runEvalBench,
};
