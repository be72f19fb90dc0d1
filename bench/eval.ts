/**
 * Evaluation benchmark (issue #5 part 3): session creation vs inference, and weight-variant
 * evaluations per second, naive (new session on the full model per variant, dataset re-read, all
 * samples) vs {@link VariantEvaluator} (one shared pass, split graph, cached activations, weights fed
 * or session rebuilt on the suffix). Overhead = wall time ÷ time inside `session.run`.
 *
 * The workload is a sensitivity sweep as `analyze` runs it with its default techniques: for every
 * layer (at most 10 of the compressible layers `analyze` lists, spread over the model), the layer
 * compressed at every default level of every technique family that applies to it (`levels.ts`:
 * 6 share, 4 prune, 7 quant, 6 bf16 and, where the low-rank rewrite applies, 5 low-rank levels, in
 * analyze's column order, without its calibrated rounding), minus the levels analyze skips as not
 * smaller than the original layer (it also skips levels dominated by a measured level that changed
 * nothing; not modelled), one evaluator per layer: so the per-layer set-up amortizes over as many
 * variants as in `analyze`. `--uniform` runs the earlier workload instead (the weight rounded to 8,
 * 7, …, 1 bits, uniform per tensor; 8 variants per layer). The evaluator runs it three ways:
 * - all samples: every variant on all 1000 samples (exact losses);
 * - screen: `stopOn: 'over'` against 5 points (analyze's screen budget): decisively-bad variants stop
 *   early, every other variant gets its exact loss;
 * - early stop: stops both ways against a 1-point budget (95 %), for a search that only needs the
 *   decision.
 * Rates include all set-up (the shared pass and each layer's evaluator). The ways are interleaved
 * variant by variant, so that the load of a shared machine drifts alike for all of them.
 *
 * Models: the fixtures (`test/fixtures/*.onnx`) and a ResNet-18-sized model (`.tmp/resnet18-fmnist.onnx`,
 * trained 300 steps, made by `scripts/make-resnet18.py` when missing and python is there). Data:
 * fmnist-test-1000. Arguments: `--quick` (LeNet only), model paths, `--threads N` (default: all cores),
 * `--spin` (onnxruntime's threads spin while waiting, its own default; off by default here as in the
 * evaluator). Naive and the evaluator always run with the same session options.
 */
import { execFileSync } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { loadavg } from 'node:os';
import { join, resolve } from 'node:path';
import { openDataset } from '../src/engine/eval/dataset';
import { loadDatasetSpec, type DatasetSpec } from '../src/engine/eval/datasetSpec';
import { chooseEncoding } from '../src/engine/encode/choose';
import { compressWeight } from '../src/engine/encode/apply';
import { ClassificationAccumulator } from '../src/engine/eval/metrics';
import { classesOf, createSession, runDataset, sessionInputs, sessionOutputs, toOrtFeeds, type SessionOptions } from '../src/engine/eval/session';
import { VariantEvaluator, type ActivationStore, type EvaluateOptions } from '../src/engine/eval/variantEvaluator';
import { substituteWeights } from '../src/engine/eval/weightsAsInputs';
import { TECHNIQUE_FAMILIES, defaultLevels, levelUnsupported } from '../src/engine/explore/levels';
import { listWeights, loadModel, type OnnxModel, type WeightInfo } from '../src/engine/onnx';
import type { Bench } from './main';

const BITS = [8, 7, 6, 5, 4, 3, 2, 1];

/** One variant of the workload: `data` replaces weight `name`; `level` names it. */
interface Variant {
  name: string;
  level: string;
  data: Float32Array;
}

/**
 * The variants of layer `w` (see the module comment): analyze's default levels that apply to it and
 * make it smaller, compressed as analyze compresses them (uncalibrated); `uniform`: 8..1-bit rounding.
 */
function variantsOf(model: OnnxModel, w: WeightInfo, uniform: boolean): Variant[] {
  if (uniform) return BITS.map((b) => ({ name: w.name, level: `uniform ${b} bit`, data: quantize(model.float32(w.tensor), b) }));
  const out: Variant[] = [];
  for (const level of defaultLevels(TECHNIQUE_FAMILIES)) {
    if (levelUnsupported(model, w, level)) continue;
    const ct = compressWeight(model, w, level.spec);
    let bytes: number;
    try {
      bytes = ct.storage.kind === 'lowrank' ? (ct.storage.left.length + ct.storage.right.length) * 4 : chooseEncoding(w.name, w.shape, ct).bytes;
    } catch {
      continue; // no ONNX encoding for this level: analyze marks the cell unsupported
    }
    if (bytes < w.bytes) out.push({ name: w.name, level: level.id, data: ct.weights });
  }
  return out;
}
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
async function baseline(bytes: Uint8Array, spec: DatasetSpec, session: Partial<SessionOptions>) {
  const creates: number[] = [];
  let inferMs = 0;
  let wallMs = 0;
  for (let i = 0; i < 3; i++) {
    const t0 = performance.now();
    const s = await createSession(bytes, session);
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

/** Per-layer timings of one way of evaluating (see {@link sweep}). */
interface Tally {
  wallMs: number;
  inferMs: number;
  evalWallMs: number;
  samples: number;
  variants: number;
  perLayer: string[];
}

const tally = (): Tally => ({ wallMs: 0, inferMs: 0, evalWallMs: 0, samples: 0, variants: 0, perLayer: [] });

/** Naive: a new session on the full model for one variant, the dataset re-read, all samples. */
async function naive(bytes: Uint8Array, spec: DatasetSpec, v: Variant, session: Partial<SessionOptions>, t: Tally) {
  const t0 = performance.now();
  const s = await createSession(substituteWeights(bytes, new Map([[v.name, v.data]])), session);
  try {
    const ds = await openDataset(spec, sessionInputs(s), { numClasses: 10 });
    const acc = new ClassificationAccumulator();
    const ti = performance.now();
    await runDataset(s, ds, (out, b) => void acc.add(out['logits']!.data, b.count, 10, b.labels), { batchSize: 100 });
    t.inferMs += performance.now() - ti;
  } finally {
    await s.release();
  }
  t.samples += 1000;
  t.variants++;
  t.wallMs += performance.now() - t0;
}

/**
 * One layer: naive and one evaluator per mode (set-up and disposal counted to its mode), the
 * variants interleaved one by one — naive, then each mode on the same variant — so that a
 * machine whose load drifts disturbs every way alike.
 */
async function layerSweep(bytes: Uint8Array, spec: DatasetSpec, store: ActivationStore, layer: string, variants: Variant[], session: Partial<SessionOptions>, nv: Tally, modes: Tally[]) {
  const evs: VariantEvaluator[] = [];
  const per = MODES.map(() => ({ wall: 0, infer: 0, samples: 0 }));
  try {
    for (const t of modes) {
      const t0 = performance.now();
      evs.push(await VariantEvaluator.fromStore(bytes, [layer], store, { batchSize: 100, ...session }));
      t.wallMs += performance.now() - t0;
    }
    for (const v of variants) {
      await naive(bytes, spec, v, session, nv);
      for (const [i, m] of MODES.entries()) {
        const t0 = performance.now();
        const r = await evs[i]!.evaluate(new Map([[layer, v.data]]), m.options);
        modes[i]!.wallMs += performance.now() - t0;
        per[i]!.wall += r.timing.wallMs;
        per[i]!.infer += r.timing.inferenceMs;
        per[i]!.samples += r.samples;
      }
    }
    for (const [i, t] of modes.entries()) {
      const ev = evs[i]!;
      const c = ev.costs;
      const n = variants.length;
      t.perLayer.push(
        `${layer}: ${ev.mode}/${ev.strategy}, ${ev.nodes.perVariant}/${ev.nodes.total} nodes; ${(per[i]!.wall / n).toFixed(0)} ms per variant ` +
          `(${(per[i]!.infer / n).toFixed(0)} in run, ${(per[i]!.samples / n).toFixed(0)} samples); measured ms/sample rebuild ${c.rebuildPerSample?.toFixed(3) ?? '-'} ` +
          `(+ ${c.rebuildCreate?.toFixed(0) ?? '-'} create), feed ${c.feedPerSample?.toFixed(3) ?? '-'}${ev.layoutFed ? " in onnxruntime's layout" : ''} ` +
          `(session ${c.feedCreate?.toFixed(0) ?? '-'} ms once); ${n} variants`,
      );
      t.evalWallMs += per[i]!.wall;
      t.inferMs += per[i]!.infer;
      t.samples += per[i]!.samples;
      t.variants += n;
    }
  } finally {
    for (const [i, ev] of evs.entries()) {
      const t0 = performance.now();
      await ev.dispose();
      modes[i]!.wallMs += performance.now() - t0;
    }
  }
}

/**
 * The whole comparison, interleaved variant by variant (see {@link layerSweep}). The evaluator's
 * shared pass runs once; its time is added to every mode. A layer's variants are made (untimed)
 * just before its sweep, so that only one layer's are held.
 */
async function sweep(bytes: Uint8Array, spec: DatasetSpec, layers: string[], variantsFor: (layer: string) => Variant[], session: Partial<SessionOptions>) {
  const nv = tally();
  const modes = MODES.map(() => tally());
  const s = await createSession(bytes, session);
  let ds;
  try {
    ds = await openDataset(spec, sessionInputs(s), { numClasses: 10 });
  } finally {
    await s.release();
  }
  const t0 = performance.now();
  const store = await VariantEvaluator.prepare(bytes, layers.map((l) => [l]), ds, { batchSize: 100, ...session });
  const prepareMs = performance.now() - t0;
  for (const layer of layers) await layerSweep(bytes, spec, store, layer, variantsFor(layer), session, nv, modes);
  for (const m of modes) m.wallMs += prepareMs;
  return { nv, modes, prepareMs, passMs: store.passMs };
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
  // naive and the evaluator get the same session options: the evaluator's defaults (no spinning).
  const session: Partial<SessionOptions> = { allowSpinning: args.includes('--spin'), ...(ti >= 0 ? { intraOpNumThreads: Number(args[ti + 1]) } : {}) };
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
  const uniform = args.includes('--uniform');
  for (const file of models) {
    const bytes = readFileSync(file);
    const model = await loadModel(resolve(file));
    // The layers analyze measures (compressible float32 weights), at most MAX_LAYERS spread over them.
    const layers = listWeights(model).filter((w) => w.compressible && w.dataType === 1);
    const n = Math.min(MAX_LAYERS, layers.length);
    const pick = Array.from({ length: n }, (_, i) => layers[n === 1 ? 0 : Math.round((i * (layers.length - 1)) / (n - 1))]!);
    const counts: number[] = [];
    const variantsFor = (name: string) => {
      const v = variantsOf(model, pick.find((w) => w.name === name)!, uniform);
      counts.push(v.length);
      return v;
    };
    console.log(
      `### ${file} (${(bytes.length / 1e6).toFixed(1)} MB, ${layers.length} compressible layers; ${pick.length} layers × ` +
        (uniform ? `${BITS.length} uniform rounding levels` : `analyze's default levels that apply (of ${defaultLevels(TECHNIQUE_FAMILIES).length})`) +
        `; threads ${session.intraOpNumThreads ?? 'all'}, ${session.allowSpinning ? '' : 'no '}spinning; load average ${load()})`,
    );
    const b = await baseline(bytes, spec, session);
    console.log(`session create ${ms(b.createMs)} (median of 3); one pass over 1000 images: ${ms(b.inferMs)} inside run, ${ms(b.passWallMs)} wall`);
    const r = await sweep(bytes, spec, pick.map((w) => w.name), variantsFor, session);
    console.log(`${counts.reduce((a, c) => a + c, 0)} variants (per layer: ${counts.join(', ')})`);
    const rate = (t: Tally) => (t.variants / t.wallMs) * 1000;
    console.log(`naive (new session per variant, all 1000): ${rate(r.nv).toFixed(2)} variants/s; overhead ${(r.nv.wallMs / r.nv.inferMs).toFixed(2)}`);
    console.log(`evaluator shared pass (once, counted in every mode below): ${ms(r.prepareMs)}, ${(r.prepareMs / b.passWallMs).toFixed(2)}× one plain pass`);
    for (const [i, mode] of MODES.entries()) {
      const f = r.modes[i]!;
      console.log(
        `evaluator, ${mode.name}: ${rate(f).toFixed(2)} variants/s = ${(rate(f) / rate(r.nv)).toFixed(2)}× naive; ${(f.samples / f.variants).toFixed(0)} samples per variant on average; ` +
          `overhead per variant ${(f.evalWallMs / f.inferMs).toFixed(3)}, over everything ${(f.wallMs / f.inferMs).toFixed(3)} (of ${ms(f.wallMs)}: variants ${ms(f.evalWallMs)} of which ${ms(f.inferMs)} in run)` +
          (i === 0 ? `\n  ${f.perLayer.join('\n  ')}` : ''),
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
