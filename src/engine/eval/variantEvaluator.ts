/**
 * Fast evaluation of many weight variants of one model (sensitivity analysis, search).
 *
 * Set-up (once per model + dataset, shared by every layer, {@link ActivationStore}): the dataset's
 * inputs are read once into memory in a seeded random sample order; one pass of the original model
 * over them, with the activations each layer's suffix needs added as outputs, keeps the reference
 * outputs in that order and each batch's activations as the arrays onnxruntime returned (no
 * per-sample copies). Per layer (a group of variable weights): the graph is split at
 * the first node that reads one of them ({@link planSplit}) and only the suffix runs per variant,
 * on zero-copy views of the cached activations, either in one session where the weights are inputs
 * (`'feed'`; by default in onnxruntime's own layout, `layoutFeed.ts`, so fed convolutions keep its
 * NCHWc kernels) or in a new session per variant on the suffix with the weights baked in
 * (`'rebuild'`; the weights are spliced into the encoded bytes, no re-encoding). When a graph cannot be split
 * (control flow, non-float or batch-shaped activations, activations above `maxCacheBytes`) the
 * whole graph runs. `'auto'` picks the cheaper of the two from running costs (see `decide`).
 * Classifier outputs are scored in one walk per row, against the reference kept in sample order.
 *
 * Optional early stopping against a budget: see `earlyStop.ts` (95 % confidence by default).
 */
import { availableParallelism } from 'node:os';
import type * as ort from 'onnxruntime-node';
import { Tensor } from 'onnxruntime-node';
import { fail, throwIfAborted } from '../errors.js';
import { decodeModel } from '../onnx/codec.js';
import type { ModelProto } from '../onnx/proto.js';
import { mulberry32 } from '../util/random.js';
import { DiskVariantLayout, type DiskVariant } from './diskVariant.js';
import { SequentialTest, type StopDecision } from './earlyStop.js';
import { layoutFeed, type LayoutFeed } from './layoutFeed.js';
import { ClassificationAccumulator, FidelityAccumulator, fidelityFromSums, logSumExpRow, topK, type Fidelity } from './metrics.js';
import type { ReferenceOutputs } from './referenceCache.js';
import { createSession, effectiveBatchSize, pickSessionOptions, type SessionOptions } from './session.js';
import type { Dataset, FeedData, FeedType, ModelInputSpec } from './types.js';
import { planSplit, weightsAsInputs, WeightSplicer, withExtraOutputs, type SplitPlan, type WeightTensor } from './weightsAsInputs.js';

/**
 * Options of {@link VariantEvaluator.create}. The session options default as in `session.ts`,
 * except `allowSpinning`: false (measured on the 2-core machine with 2 other busy processes, a
 * ResNet-8 sweep took 11.2 s instead of 17.6 s, LeNet-5 1.4 s instead of 2.4 s).
 */
export interface VariantEvaluatorOptions extends SessionOptions {
  /** Samples per run. Default 100 (forced to the model's batch size when fixed). */
  batchSize: number;
  /** `'auto'` splits when possible; `'inputs'` always runs the whole graph. Default `'auto'`. */
  mode: 'auto' | 'inputs';
  /**
   * How a variant reaches onnxruntime. `'feed'`: one session where the variable weights are inputs
   * (no session per variant; see `layoutFeed`). `'rebuild'`: a new session per variant on the
   * (suffix) model with the weights baked in. `'auto'` (default) starts with feeding (with
   * `layoutFeed` off: with rebuilding when a convolution reads the weights, whose fed kernel is
   * 1.1–20× slower), tries the other way on the second variant only when it can win — feed when the
   * rebuilt session took > 2 % of the variant, rebuild when the fed session's creation is < 20 % of
   * a fed variant and the weights are not all fed in onnxruntime's layout — and then keeps the
   * cheaper way (running means of session creation + time per sample, see `decide`). Models with
   * external data always feed. Rebuilt sessions run without onnxruntime's memory pattern (planned on
   * a first run, it pays off only over many).
   */
  strategy: 'auto' | 'feed' | 'rebuild';
  /**
   * Feed weights that a convolution reads in onnxruntime's own layout (`layoutFeed.ts`: the model
   * optimized once, the tensors onnxruntime derives from the weights — e.g. NCHWc-reordered
   * convolution weights — fed instead), so fed convolutions run onnxruntime's fastest kernels;
   * plain weight inputs when that is not possible. Default true.
   */
  layoutFeed: boolean;
  /** Largest in-memory cache of activations and inputs, in bytes. Default 1 GiB. */
  maxCacheBytes: number;
  /** Seed of the sample order (matters for early stopping only). Default 0. */
  seed: number;
  /** Error probability of early decisions. Default 0.05 (95 % confidence). */
  delta: number;
  /** No early decision before this many samples. Default 50. */
  minSamples: number;
  /** Model output scored (default: the first). */
  output: string | undefined;
  signal: AbortSignal | undefined;
}

/** Merges {@link VariantEvaluatorOptions} defaults. */
export function makeVariantEvaluatorOptions(partial: Partial<VariantEvaluatorOptions> = {}): VariantEvaluatorOptions {
  return {
    intraOpNumThreads: availableParallelism(),
    graphOptimizationLevel: 'all',
    enableMemPattern: true,
    allowSpinning: false,
    batchSize: 100,
    mode: 'auto',
    strategy: 'auto',
    layoutFeed: true,
    maxCacheBytes: 2 ** 30,
    seed: 0,
    delta: 0.05,
    minSamples: 50,
    output: undefined,
    signal: undefined,
    ...partial,
  };
}

/** Result of one variant evaluation. Rates are in [0, 1] over `samples`. */
export interface VariantResult {
  /** Top-1 accuracy (NaN without labels). */
  top1: number;
  /** Top-5 accuracy (NaN without labels). */
  top5: number;
  /** Top-1 agreement with the original model. */
  agreement: number;
  /** Original model's top-1 accuracy on the same samples (NaN without labels). */
  referenceTop1: number;
  /** Samples evaluated (all unless stopped early). */
  samples: number;
  stoppedEarly: boolean;
  /** Budget decision (`undefined` when no budget was given). */
  decision: StopDecision;
  /**
   * The loss the budget applies to — accuracy drop `referenceTop1 − top1` with labels, else
   * disagreement `1 − agreement` — and its confidence interval (exact when all samples ran; each
   * end holds with probability ≥ 1 − δ, see `earlyStop.ts`).
   */
  loss: number;
  ci: readonly [number, number];
  /** Fidelity of the scored output against the original model's. */
  fidelity: Fidelity;
  /** Scored output in dataset order when `keepOutputs` was set (all samples ran). */
  outputs?: Float32Array;
  /**
   * Wall time of the call and the part spent inside `session.run` (ms). With the `'rebuild'`
   * strategy the wall time includes the variant's session creation.
   */
  timing: { wallMs: number; inferenceMs: number };
}

/** Per-call options of {@link VariantEvaluator.evaluate}. */
export interface EvaluateOptions {
  /** Loss budget (accuracy drop, or disagreement without labels) for early stopping. */
  budget: number | undefined;
  /**
   * Early decisions allowed against `budget`: `'both'` (default) stops once the loss is decisively
   * above or below it; `'over'` stops only when decisively above, so every other variant gets its
   * exact loss (a screen that never needs a second run).
   */
  stopOn: 'both' | 'over';
  /** Keep the scored output (disables early stopping). */
  keepOutputs: boolean;
  signal: AbortSignal | undefined;
}

const ORT_TYPE: Record<number, string> = { 1: 'float32', 2: 'uint8', 3: 'int8', 6: 'int32', 7: 'int64', 9: 'bool', 10: 'float16', 11: 'float64' };

/** Graph inputs (initializers excluded), output names and node count, read from the model without a session. */
export function modelIo(modelBytes: Uint8Array | ModelProto): { inputs: ModelInputSpec[]; outputs: string[]; nodes: number } {
  const g = (modelBytes instanceof Uint8Array ? decodeModel(modelBytes) : modelBytes).graph;
  if (!g) fail('E_MODEL_INVALID', 'The model has no graph.');
  const inits = new Set(g.initializer.map((t) => t.name));
  const inputs = g.input
    .filter((i) => !inits.has(i.name))
    .map((i): ModelInputSpec => {
      const t = i.type?.value.case === 'tensorType' ? i.type.value.value : undefined;
      const dims = (t?.shape?.dim ?? []).map((d, k) =>
        d.value.case === 'dimValue' ? Number(d.value.value) : d.value.case === 'dimParam' ? d.value.value : `?${k}`,
      );
      return { name: i.name, dims, type: ORT_TYPE[t?.elemType ?? 0] ?? `onnx-type-${t?.elemType}` };
    });
  return { inputs, outputs: g.output.map((o) => o.name), nodes: g.node.length };
}

const TYPED: Record<FeedType, new (n: number) => FeedData> = {
  float32: Float32Array,
  float64: Float64Array,
  int64: BigInt64Array,
  int32: Int32Array,
  uint8: Uint8Array,
  int8: Int8Array,
  bool: Uint8Array,
};

/**
 * One tensor for all samples, stored in the shuffled order (row p = sample `order[p]`): in one
 * array (`data`), or as the pass produced it, one array per batch of `chunkRows` rows (`chunks`).
 */
interface Column {
  readonly type: FeedType;
  readonly sampleDims: readonly number[];
  readonly per: number;
  readonly data?: FeedData;
  readonly chunks?: FeedData[];
  readonly chunkRows?: number;
}

/** The reference side of one scored output, in the shuffled order (see {@link ActivationStore.scoring}). */
interface Scoring {
  readonly output: string;
  /** Reference output rows, shuffled order. */
  readonly ref: Float32Array;
  /** Elements per sample, classes (last dim) and rows per sample (`per / classes`). */
  readonly per: number;
  readonly classes: number;
  readonly rows: number;
  /** Reference top-1 class of each sample (its first row), shuffled order. */
  readonly refTop1: Int32Array;
  /** Labels and whether the reference got each sample right, shuffled order (labelled data). */
  readonly labels: Int32Array | undefined;
  readonly refCorrect: Uint8Array | undefined;
  /** Log-sum-exp of each reference softmax row (`rows` per sample), shuffled order. */
  readonly refLse: Float64Array;
  /**
   * The reference softmax, `exp(ref − refLse)` per element (what the KL of every variant weighs
   * by), for classifiers of up to {@link MAX_REF_PROB} elements; else computed per variant.
   */
  readonly refProb: Float64Array | undefined;
}

/** Largest reference output (elements) whose softmax is kept as doubles: 32 MiB. */
const MAX_REF_PROB = 2 ** 22;

const elements = (dims: readonly number[]) => dims.reduce((a, b) => a * b, 1);

/** A zero-copy tensor over rows `[s, e)` of a column. */
function rowsTensor(c: Column, s: number, e: number): ort.Tensor {
  const dims = [e - s, ...c.sampleDims];
  if (c.data) return new Tensor(c.type, (c.data as Float32Array).subarray(s * c.per, e * c.per), dims);
  const k = s / c.chunkRows!;
  if (!Number.isInteger(k) || e - s > c.chunkRows!) fail('E_INTERNAL', `Rows ${s}..${e} cross a cached batch of ${c.chunkRows} rows.`);
  return new Tensor(c.type, (c.chunks![k] as Float32Array).subarray(0, (e - s) * c.per), dims);
}

/**
 * The shared set-up of {@link VariantEvaluator}s of one model on one dataset: reference outputs,
 * the sample order, and cached inputs/activations in that order. Build with
 * {@link ActivationStore.collect}; memory ≈ samples × (inputs + requested activations).
 */
export class ActivationStore {
  private readonly scorings = new Map<string, Scoring>();

  private constructor(
    readonly count: number,
    /** Sample index (dataset order) at each shuffled position. */
    readonly order: Int32Array,
    readonly columns: ReadonlyMap<string, Column>,
    /** Reference outputs (and labels) in dataset order. */
    readonly reference: ReferenceOutputs,
    /** The same outputs and labels in the shuffled order. */
    private readonly shuffled: { outputs: Record<string, Float32Array>; labels: Int32Array | undefined },
    readonly inputs: readonly ModelInputSpec[],
    readonly outputs: readonly string[],
    /** Nodes of the model's graph. */
    readonly nodes: number,
    readonly batchSize: number,
    /** Wall time of the set-up (ms): reading the data and the pass. */
    readonly passMs: number,
  ) {}

  /**
   * Reads `dataset` into memory (inputs in a seeded random order, and labels), then runs the
   * original model over it once, keeping its outputs and the float32 tensors `activations` (those
   * that are batch-shaped; others are left out), written by onnxruntime straight into the cache.
   * Drops all activations when together with the inputs they would exceed `maxCacheBytes` (the
   * evaluators then run whole graphs); fails when the inputs alone exceed it.
   */
  static async collect(
    modelBytes: Uint8Array,
    dataset: Dataset,
    activations: readonly string[],
    options: Partial<VariantEvaluatorOptions> = {},
    decoded?: ModelProto,
  ): Promise<ActivationStore> {
    const o = makeVariantEvaluatorOptions(options);
    const t0 = performance.now();
    const io = modelIo(decoded ?? modelBytes);
    const N = dataset.meta.count;
    const rand = mulberry32(o.seed);
    let order = Int32Array.from({ length: N }, (_, i) => i);
    for (let i = N - 1; i > 0; i--) {
      const j = Math.floor(rand() * (i + 1));
      [order[i], order[j]] = [order[j]!, order[i]!];
    }
    const position = new Int32Array(N);
    order.forEach((k, p) => (position[k] = p));
    const bs = effectiveBatchSize(io.inputs, o.batchSize);
    const fixedBatch = io.inputs.some((i) => i.dims[0] === bs);

    // 1. Inputs and labels, scattered into the shuffled order as they arrive.
    const inCols = new Map<string, Column>();
    let labels = dataset.meta.hasLabels ? new Int32Array(N) : undefined;
    let done = 0;
    for await (const b of dataset.batches(bs, o.signal ? { signal: o.signal } : {})) {
      throwIfAborted(o.signal);
      if (fixedBatch && b.count < bs) fail('E_DATASET', `The model's batch size is fixed at ${bs}; use a sample count that is a multiple of it (--limit).`);
      for (const i of io.inputs) {
        const f = b.feeds[i.name]!;
        if (f.dims[0] !== b.count) fail('E_DATASET', `The dataset's batch of '${i.name}' has shape [${f.dims.join(',')}], expected ${b.count} samples first.`);
        let c = inCols.get(i.name);
        if (!c) {
          const per = elements(f.dims.slice(1));
          if (per * N * f.data.BYTES_PER_ELEMENT > o.maxCacheBytes) {
            fail('E_BAD_ARGUMENT', `The dataset's inputs (${((per * N * f.data.BYTES_PER_ELEMENT) / 2 ** 20).toFixed(0)} MiB) exceed the evaluator's cache (${(o.maxCacheBytes / 2 ** 20).toFixed(0)} MiB): use --limit or raise maxCacheBytes.`);
          }
          c = { type: f.type, sampleDims: f.dims.slice(1), per, data: new TYPED[f.type](per * N) };
          inCols.set(i.name, c);
        }
        const src = f.data as Float32Array;
        const dst = c.data as Float32Array;
        for (let k = 0; k < b.count; k++) dst.set(src.subarray(k * c.per, (k + 1) * c.per), position[b.start + k]! * c.per);
      }
      if (labels && b.labels) labels.set(b.labels, b.start);
      done += b.count;
    }
    if (done === 0) fail('E_DATASET', `${dataset.meta.description} has no samples.`);
    if (done < N) {
      // Skipped (undecodable) images leave holes at the end of the dataset indices: compact.
      const keep = Array.from(order, (k, p) => (k < done ? p : -1)).filter((p) => p >= 0);
      for (const [name, c] of inCols) {
        const d = c.data as Float32Array;
        keep.forEach((p, q) => d.copyWithin(q * c.per, p * c.per, (p + 1) * c.per));
        inCols.set(name, { ...c, data: d.slice(0, keep.length * c.per) });
      }
      order = Int32Array.from(keep, (p) => order[p]!);
      labels = labels?.slice(0, done);
    }
    const shuffledLabels = labels ? Int32Array.from(order, (k) => labels![k]!) : undefined;
    const inputBytes = [...inCols.values()].reduce((a, c) => a + c.data!.byteLength, 0);

    // 2. One pass in the shuffled order. Each batch's activations are kept as onnxruntime returned
    // them (one fresh array per batch and tensor): the evaluators' batches are these same rows.
    const extra = activations.filter((a) => !io.outputs.includes(a) && !io.inputs.some((i) => i.name === a));
    const cols = new Map<string, Column>(inCols);
    const acts = new Map<string, { sampleDims: readonly number[]; per: number; chunks: Float32Array[] }>();
    const outs = new Map<string, { sampleDims: readonly number[]; per: number; data: Float32Array }>();
    let fetch = [...io.outputs, ...extra];
    const s = await createSession(extra.length > 0 ? withExtraOutputs(modelBytes, extra) : modelBytes, pickSessionOptions(o));
    try {
      for (let st = 0; st < done; st += bs) {
        throwIfAborted(o.signal);
        const e = Math.min(done, st + bs);
        const n = e - st;
        const feeds: Record<string, ort.Tensor> = {};
        for (const i of io.inputs) feeds[i.name] = rowsTensor(inCols.get(i.name)!, st, e);
        const res = await s.run(feeds, fetch);
        for (const name of io.outputs) {
          const t = res[name] as ort.Tensor;
          if (st === 0) {
            const per = elements(t.dims.slice(1));
            outs.set(name, { sampleDims: t.dims.slice(1), per, data: new Float32Array(per * done) });
          }
          const out = outs.get(name)!;
          const raw = t.data as ArrayLike<number | bigint>;
          if (raw instanceof Float32Array) out.data.set(raw.subarray(0, n * out.per), st * out.per);
          else for (let k = 0; k < n * out.per; k++) out.data[st * out.per + k] = Number(raw[k]);
        }
        if (st === 0) {
          for (const name of extra) {
            const t = res[name] as ort.Tensor;
            // Only float32, batch-shaped activations can be cached and fed back per batch.
            if (t.type === 'float32' && t.dims[0] === n && !(fixedBatch && n !== bs)) acts.set(name, { sampleDims: t.dims.slice(1), per: elements(t.dims.slice(1)), chunks: [] });
          }
          const actBytes = [...acts.values()].reduce((a, c) => a + c.per * 4 * done, 0);
          if (inputBytes + actBytes > o.maxCacheBytes) acts.clear();
          fetch = [...io.outputs, ...acts.keys()];
        }
        for (const [name, a] of acts) a.chunks.push((res[name] as ort.Tensor).data as Float32Array);
      }
    } finally {
      await s.release();
    }
    for (const [name, a] of acts) cols.set(name, { type: 'float32', sampleDims: a.sampleDims, per: a.per, chunks: a.chunks, chunkRows: bs });

    const outputs: Record<string, { sampleDims: readonly number[]; data: Float32Array }> = {};
    const shuffledOut: Record<string, Float32Array> = {};
    for (const [name, e] of outs) {
      const data = new Float32Array(e.per * done);
      for (let p = 0; p < done; p++) data.set(e.data.subarray(p * e.per, (p + 1) * e.per), order[p]! * e.per);
      outputs[name] = { sampleDims: e.sampleDims, data };
      shuffledOut[name] = e.data;
    }
    const reference: ReferenceOutputs = labels ? { count: done, outputs, labels } : { count: done, outputs };
    return new ActivationStore(done, order, cols, reference, { outputs: shuffledOut, labels: shuffledLabels }, io.inputs, io.outputs, io.nodes, bs, performance.now() - t0);
  }

  /** Graph splits planned by {@link VariantEvaluator.prepare}, by group (names joined by NUL). */
  readonly splits = new Map<string, SplitPlan | undefined>();

  /** True when the store holds every tensor of `names`. */
  has(names: readonly string[]): boolean {
    return names.every((n) => this.columns.has(n));
  }

  /** The reference side of scoring `output` (computed once per output). */
  scoring(output: string): Scoring {
    let sc = this.scorings.get(output);
    if (sc) return sc;
    const ref = this.shuffled.outputs[output];
    const sampleDims = this.reference.outputs[output]?.sampleDims;
    if (!ref || !sampleDims) fail('E_BAD_ARGUMENT', `The model has no output '${output}' (outputs: ${this.outputs.join(', ')}).`);
    const N = this.count;
    const per = ref.length / N;
    const classes = sampleDims[sampleDims.length - 1] ?? 1;
    const rows = per / classes;
    const refTop1 = topK(ref, N * rows, classes, 1).filter((_, i) => i % rows === 0);
    const labels = this.shuffled.labels;
    const refCorrect = labels ? Uint8Array.from(refTop1, (c, i) => (c === labels[i] ? 1 : 0)) : undefined;
    // Each reference softmax row's log-sum-exp, once: fidelity's KL then needs only the variant's.
    const refLse = new Float64Array(N * rows);
    for (let r = 0; r < N * rows; r++) refLse[r] = logSumExpRow(ref, r * classes, classes);
    let refProb: Float64Array | undefined;
    if (rows === 1 && ref.length <= MAX_REF_PROB) {
      refProb = new Float64Array(ref.length);
      for (let k = 0; k < ref.length; k++) refProb[k] = Math.exp(ref[k]! - refLse[Math.floor(k / classes)]!);
    }
    sc = { output, ref, per, classes, rows, refTop1, labels, refCorrect, refLse, refProb };
    this.scorings.set(output, sc);
    return sc;
  }
}

/**
 * Every number of a classifier variant (one row of `classes` scores per sample) from one walk over
 * each output row: top-1 / top-5 counts without sorting (the numbers of `topK` +
 * `ClassificationAccumulator`: ties go to the lower index, NaN ranks last, the label is in the top 5
 * when fewer than 5 classes rank above it), agreement and flips against the reference, and the
 * fidelity sums of `FidelityAccumulator` in the same order of operations (so the same doubles),
 * with the reference's softmax read from {@link Scoring.refProb} instead of recomputed.
 */
class ClassifierScore {
  top1Correct = 0;
  top5Correct = 0;
  agree = 0;
  refRight = 0;
  /** Flips of the last batch: original right and variant wrong (U), and the reverse (D). */
  up = 0;
  down = 0;
  private signal = 0;
  private noise = 0;
  private cosSum = 0;
  private klSum = 0;
  private maxAbs = 0;
  private samples = 0;

  constructor(private readonly sc: Scoring) {}

  /** Scores rows `[start, start + n)` of the shuffled order (`out`: those rows' outputs). */
  add(out: Float32Array, start: number, n: number): void {
    const { classes: c, labels, ref, refLse, refProb, refTop1, refCorrect } = this.sc;
    const k5 = Math.min(5, c);
    // The running sums live in locals for the walk (V8 keeps them in registers): same operations
    // in the same order as with the fields, so the same doubles.
    let { noise, maxAbs, signal, cosSum, klSum, agree, top1Correct, top5Correct, refRight } = this;
    let up = 0;
    let down = 0;
    for (let i = 0; i < n; i++) {
      const o = i * c;
      const r = (start + i) * c;
      // The label's score (NaN ranks last), to count the classes ranked above it in the same walk.
      const y = labels ? labels[start + i]! : -1;
      const by = labels ? out[o + y]! : 0;
      const vy = by !== by ? -Infinity : by;
      let ahead = 0;
      let t = 0;
      let best = -Infinity;
      let m = -Infinity;
      let dot = 0;
      let rr = 0;
      let oo = 0;
      for (let j = 0; j < c; j++) {
        const b = out[o + j]!;
        const v = b !== b ? -Infinity : b;
        if (v > best) (best = v), (t = j);
        if (v > vy || (v === vy && j < y)) ahead++;
        const a = ref[r + j]!;
        const d = a - b;
        noise += d * d;
        rr += a * a;
        oo += b * b;
        dot += a * b;
        const ad = Math.abs(d);
        if (ad > maxAbs) maxAbs = ad;
        m = Math.max(m, b);
      }
      signal += rr;
      cosSum += dot / Math.max(Math.sqrt(rr) * Math.sqrt(oo), EPS);
      let sum = 0;
      for (let j = 0; j < c; j++) sum += Math.exp(out[o + j]! - m);
      const lq = m + Math.log(sum);
      const lp = refLse[start + i]!;
      let kl = 0;
      if (refProb) {
        for (let j = 0; j < c; j++) {
          const logP = ref[r + j]! - lp;
          kl += refProb[r + j]! * (logP - (out[o + j]! - lq));
        }
      } else {
        for (let j = 0; j < c; j++) {
          const logP = ref[r + j]! - lp;
          kl += Math.exp(logP) * (logP - (out[o + j]! - lq));
        }
      }
      klSum += Math.max(0, kl);
      const rt = refTop1[start + i]!;
      if (t === rt) agree++;
      if (labels) {
        const right = t === y ? 1 : 0;
        top1Correct += right;
        if (ahead < k5) top5Correct++;
        const rc = refCorrect![start + i]!;
        refRight += rc;
        if (rc > right) up++;
        else if (rc < right) down++;
      } else if (t !== rt) up++;
    }
    (this.noise = noise), (this.maxAbs = maxAbs), (this.signal = signal), (this.cosSum = cosSum), (this.klSum = klSum);
    (this.agree = agree), (this.top1Correct = top1Correct), (this.top5Correct = top5Correct), (this.refRight = refRight);
    this.samples += n;
    this.up = up;
    this.down = down;
  }

  fidelity(): Fidelity {
    return fidelityFromSums(this.signal, this.noise, this.cosSum, this.klSum, this.maxAbs, this.samples);
  }
}

/** `FidelityAccumulator`'s guard against division by zero. */
const EPS = 1e-30;

/** One batch: zero-copy views of the store's columns, rows `[start, start + count)` of the shuffled order. */
interface CachedBatch {
  readonly feeds: Record<string, ort.Tensor>;
  readonly start: number;
  readonly count: number;
}

/** Measured cost of the strategies (ms), see {@link VariantEvaluatorOptions.strategy}. */
export interface StrategyCosts {
  /** Feed: creation of the one session (set-up, not a variant's cost). */
  feedCreate?: number;
  /** Feed: time inside `run` per sample (mean over fed variants of the median batch). */
  feedPerSample?: number;
  /**
   * Rebuild: fixed cost per variant (mean over rebuilt variants): session creation + release, and
   * what the session's first batch took beyond the median batch (its allocations).
   */
  rebuildCreate?: number;
  /** Rebuild: time inside `run` per sample (mean over rebuilt variants of the median batch). */
  rebuildPerSample?: number;
}

/** Running sums behind {@link StrategyCosts} (per-sample costs: one median per variant). */
interface CostSums {
  feedPerSample: number;
  feedVariants: number;
  rebuildFixedMs: number;
  rebuildPerSample: number;
  rebuildVariants: number;
  variants: number;
  samples: number;
}

/** Time inside `run` per batch of one variant (see {@link VariantEvaluator.loop}). */
interface RunTimes {
  /** ms per sample of each batch. */
  readonly perSample: number[];
  /** The first batch: ms and samples. */
  firstMs: number;
  firstSamples: number;
}

/** Median time per sample of a variant's batches: a batch slowed by other work does not count. */
function medianPerSample(t: RunTimes): number {
  const xs = t.perSample.slice().sort((a, b) => a - b);
  const h = xs.length >> 1;
  return xs.length % 2 ? xs[h]! : (xs[h - 1]! + xs[h]!) / 2;
}

/** Evaluates weight variants of one model on one dataset; see the module comment. */
export class VariantEvaluator {
  private feedSession: ort.InferenceSession | undefined;
  private splicer: WeightSplicer | undefined;
  /** The fed session's model when the weights are fed in onnxruntime's layout. */
  private layout: LayoutFeed | undefined;
  /** A convolution reads a variable weight (only then can onnxruntime lay a weight out anew). */
  private readonly readByConv: boolean;
  private originals: Map<string, WeightTensor> | undefined;
  private diskLayout: DiskVariantLayout | undefined;
  /** The strategy decided on for good (forced, or `'auto'` once one way is clearly cheaper). */
  private chosen: 'feed' | 'rebuild' | undefined;
  /** With `'auto'` before the choice, the way of the next variant. */
  private next: 'feed' | 'rebuild';
  /** Measured costs of the strategies (running means). */
  readonly costs: StrategyCosts = {};
  private readonly sums: CostSums = { feedPerSample: 0, feedVariants: 0, rebuildFixedMs: 0, rebuildPerSample: 0, rebuildVariants: 0, variants: 0, samples: 0 };

  private constructor(
    private readonly makeFeedBytes: () => Uint8Array,
    private readonly makeBakedBytes: () => Uint8Array,
    private readonly makeDiskLayout: () => DiskVariantLayout,
    private readonly batches: readonly CachedBatch[],
    /** Names of the variable weights. */
    readonly variableWeightNames: readonly string[],
    private readonly readWeights: () => Map<string, WeightTensor>,
    private readonly store: ActivationStore,
    private readonly sc: Scoring,
    private readonly opts: VariantEvaluatorOptions,
    /** `'split'` when only the layers after the first variable weight run per variant. */
    readonly mode: 'split' | 'inputs',
    /** Nodes run per variant and in the whole model. */
    readonly nodes: { readonly perVariant: number; readonly total: number },
    /** Set-up time of this evaluator (ms), the store's shared pass excluded. */
    readonly setupMs: number,
    /** Op types of the nodes that read the variable weights. */
    consumerOps: readonly string[],
  ) {
    if (opts.strategy !== 'auto') this.chosen = opts.strategy;
    // A rebuilt session would re-read the suffix's external weights from disk per variant.
    else if (opts.externalDataFolder !== undefined) this.chosen = 'feed';
    this.readByConv = consumerOps.some((op) => op === 'Conv' || op === 'ConvTranspose');
    // A plainly fed convolution weight misses onnxruntime's NCHWc layout (1.1–20× slower kernels):
    // rebuild first there unless the weights are fed in onnxruntime's layout.
    this.next = !opts.layoutFeed && this.readByConv ? 'rebuild' : 'feed';
  }

  /**
   * `'feed'` or `'rebuild'` (see {@link VariantEvaluatorOptions.strategy}): the choice, or with
   * `'auto'` before it is made, the way the next variant will be evaluated.
   */
  get strategy(): 'feed' | 'rebuild' {
    return this.chosen ?? this.next;
  }

  /** Samples of a full evaluation. */
  get samples(): number {
    return this.batches.reduce((a, b) => a + b.count, 0);
  }

  /**
   * An evaluator for one group of variable weights (float32 initializers). Reads the dataset once
   * (an {@link ActivationStore}); use {@link VariantEvaluator.createMany} for several layers.
   */
  static async create(
    modelBytes: Uint8Array,
    variableWeightNames: readonly string[],
    dataset: Dataset,
    options: Partial<VariantEvaluatorOptions> = {},
  ): Promise<VariantEvaluator> {
    return (await VariantEvaluator.createMany(modelBytes, [variableWeightNames], dataset, options))[0]!;
  }

  /**
   * Evaluators for several groups of variable weights (e.g. one per layer) sharing one pass over the
   * data: the reference outputs and every group's frontier activations come from a single run.
   * Dispose each evaluator when done.
   */
  static async createMany(
    modelBytes: Uint8Array,
    groups: readonly (readonly string[])[],
    dataset: Dataset,
    options: Partial<VariantEvaluatorOptions> = {},
  ): Promise<VariantEvaluator[]> {
    const store = await VariantEvaluator.prepare(modelBytes, groups, dataset, options);
    const out: VariantEvaluator[] = [];
    try {
      for (const g of groups) out.push(await VariantEvaluator.fromStore(modelBytes, g, store, options));
    } catch (e) {
      for (const ev of out) await ev.dispose();
      throw e;
    }
    return out;
  }

  /**
   * The shared pass for evaluators of `groups` (e.g. every layer of a sensitivity analysis): build
   * it once, then {@link VariantEvaluator.fromStore} one evaluator at a time to keep one session
   * alive. The graph splits are planned here (a graph walk each); models are encoded per evaluator.
   */
  static async prepare(
    modelBytes: Uint8Array,
    groups: readonly (readonly string[])[],
    dataset: Dataset,
    options: Partial<VariantEvaluatorOptions> = {},
  ): Promise<ActivationStore> {
    const o = makeVariantEvaluatorOptions(options);
    const model = decodeModel(modelBytes);
    const sp = groups.map((g) => {
      if (g.length === 0) fail('E_BAD_ARGUMENT', 'A VariantEvaluator needs at least one variable weight name.');
      return o.mode === 'auto' ? planSplit(model, g, undefined, o.externalDataFolder) : undefined;
    });
    const wanted = [...new Set(sp.flatMap((s) => (s ? s.frontier.filter((f) => !s.frontierFromInputs.includes(f)) : [])))];
    const store = await ActivationStore.collect(modelBytes, dataset, wanted, o, model);
    sp.forEach((s, i) => store.splits.set(groups[i]!.join('\0'), s));
    return store;
  }

  /** An evaluator from an existing {@link ActivationStore} (see {@link VariantEvaluator.prepare}). */
  static async fromStore(
    modelBytes: Uint8Array,
    variableWeightNames: readonly string[],
    store: ActivationStore,
    options: Partial<VariantEvaluatorOptions> = {},
  ): Promise<VariantEvaluator> {
    const t0 = performance.now();
    const o = makeVariantEvaluatorOptions(options);
    if (variableWeightNames.length === 0) fail('E_BAD_ARGUMENT', 'A VariantEvaluator needs at least one variable weight name.');
    const outputName = o.output ?? store.outputs[0]!;
    const sc = store.scoring(outputName);
    const key = variableWeightNames.join('\0');
    let split =
      o.mode !== 'auto' ? undefined : store.splits.has(key) ? store.splits.get(key) : planSplit(decodeModel(modelBytes), variableWeightNames, undefined, o.externalDataFolder);
    if (split && (!store.has(split.frontier) || !split.outputs.includes(outputName))) split = undefined;

    let makeFeed: () => Uint8Array;
    let makeBaked: () => Uint8Array;
    let weights: () => Map<string, WeightTensor>;
    let feedNames: readonly string[];
    let consumerOps: readonly string[];
    if (split) {
      const sp = split;
      // The cached frontier's shapes (batch symbolic): onnxruntime then fuses what follows it.
      const shapes = new Map(sp.frontier.map((f) => [f, ['N', ...store.columns.get(f)!.sampleDims]] as const));
      makeFeed = () => sp.suffix(shapes);
      makeBaked = () => sp.suffixBaked(shapes);
      // Read when first needed: an evaluator of variants on disk never needs them.
      weights = () => sp.readWeights();
      feedNames = sp.frontier;
      consumerOps = sp.consumerOps;
    } else {
      const w = weightsAsInputs(modelBytes, variableWeightNames, o.externalDataFolder);
      makeFeed = () => w.bytes;
      makeBaked = () => modelBytes;
      weights = () => w.weights;
      feedNames = store.inputs.map((i) => i.name);
      consumerOps = w.consumerOps;
    }
    // Batches are zero-copy views of the shuffled columns; a fixed batch size drops the tail.
    const bs = store.batchSize;
    const N = store.count;
    const fixed = store.inputs.some((i) => typeof i.dims[0] === 'number');
    const batches: CachedBatch[] = [];
    for (let s = 0; s < N && (!fixed || s + bs <= N); s += bs) {
      const e = Math.min(N, s + bs);
      const feeds: Record<string, ort.Tensor> = {};
      for (const n of feedNames) feeds[n] = rowsTensor(store.columns.get(n)!, s, e);
      batches.push({ feeds, start: s, count: e - s });
    }
    if (batches.length === 0) fail('E_DATASET', `The dataset has ${N} samples, fewer than the model's fixed batch size ${bs}.`);
    const nodes = { perVariant: split ? split.suffixNodes : store.nodes, total: store.nodes };
    // Built from the weights-as-inputs graph: inline originals stay views of `modelBytes`.
    const makeDiskLayout = () => new DiskVariantLayout(makeFeed(), modelBytes, variableWeightNames, o.externalDataFolder);
    return new VariantEvaluator(makeFeed, makeBaked, makeDiskLayout, batches, variableWeightNames, weights, store, sc, o, split ? 'split' : 'inputs', nodes, performance.now() - t0, consumerOps);
  }

  /** Original values of the variable weights (read on first use). */
  originalWeights(): ReadonlyMap<string, WeightTensor> {
    return this.weights;
  }

  private get weights(): Map<string, WeightTensor> {
    return (this.originals ??= this.readWeights());
  }

  /**
   * Starts a variant written to disk as it is made, for models too large to hold a variant and
   * feed it (`diskVariant.ts`): {@link DiskVariant.set} each new weight, then
   * {@link VariantEvaluator.evaluateOnDisk}; dispose it in a `finally`. Its data file (as large as
   * the variable weights plus the graph's other external tensors) goes in `folder`. The original
   * weights are never read into memory.
   */
  diskVariant(folder: string): DiskVariant {
    this.diskLayout ??= this.makeDiskLayout();
    return this.diskLayout.open(folder);
  }

  /**
   * Evaluates a variant from {@link VariantEvaluator.diskVariant} (weights it did not set keep their
   * original values) in a session created on its files and released before returning: the same
   * results as {@link VariantEvaluator.evaluate} with the same weights, give or take onnxruntime's
   * kernels for baked instead of fed weights. Does not count towards the `'auto'` strategy's costs.
   */
  async evaluateOnDisk(variant: DiskVariant, options: Partial<EvaluateOptions> = {}): Promise<VariantResult> {
    const opts: EvaluateOptions = { budget: undefined, stopOn: 'both', keepOutputs: false, signal: undefined, ...options };
    const t0 = performance.now();
    const bytes = variant.finish(opts.signal ?? this.opts.signal);
    // Like a rebuilt variant's session: a few batches, no memory pattern.
    const s = await createSession(bytes, { ...pickSessionOptions(this.opts), externalDataFolder: variant.folder, enableMemPattern: false }, 'variant model (on disk)');
    let r: VariantResult;
    try {
      r = await this.loop(s, {}, opts, { perSample: [], firstMs: 0, firstSamples: 0 });
    } finally {
      await s.release();
    }
    r.timing.wallMs = performance.now() - t0;
    return r;
  }

  /**
   * Evaluates one variant: `variant` maps variable weight names to new values (absent names keep
   * their original values). With `budget`, stops as soon as the loss is decisively above or below it
   * (see {@link EvaluateOptions.stopOn}).
   */
  async evaluate(variant: ReadonlyMap<string, Float32Array>, options: Partial<EvaluateOptions> = {}): Promise<VariantResult> {
    const opts: EvaluateOptions = { budget: undefined, stopOn: 'both', keepOutputs: false, signal: undefined, ...options };
    const wfeeds: Record<string, ort.Tensor> = {};
    for (const n of variant.keys()) if (!this.weights.has(n)) fail('E_BAD_ARGUMENT', `'${n}' is not one of the evaluator's variable weights.`);
    for (const [n, w] of this.weights) {
      const v = variant.get(n) ?? w.data;
      if (v.length !== w.data.length) fail('E_BAD_ARGUMENT', `Variant of '${n}' has ${v.length} values, the weight [${w.dims.join(',')}] has ${w.data.length}.`);
      wfeeds[n] = new Tensor('float32', v, w.dims);
    }
    let t0 = performance.now();
    const strategy = this.strategy;
    const sums = this.sums;
    let r: VariantResult;
    if (strategy === 'feed') {
      if (!this.feedSession) {
        // The fed session is made once (on the first fed variant): set-up, not this variant's cost.
        const tc = performance.now();
        this.feedSession = await this.createFeedSession();
        if (this.costs.feedCreate === undefined) {
          this.costs.feedCreate = performance.now() - tc;
          t0 = performance.now();
        }
      }
      const times: RunTimes = { perSample: [], firstMs: 0, firstSamples: 0 };
      // Gathering a variant into onnxruntime's layout is part of the variant's wall time.
      r = await this.loop(this.feedSession, this.layout ? this.layout.feeds(variant, this.weights) : wfeeds, opts, times);
      r.timing.wallMs = performance.now() - t0;
      // The median batch: the session's first run (its allocations) is paid once, not per variant.
      sums.feedPerSample += medianPerSample(times);
      sums.feedVariants++;
      this.costs.feedPerSample = sums.feedPerSample / sums.feedVariants;
    } else {
      // Made once (the baked model encoded, the weights located); like the feed session, set-up.
      if (!this.splicer) {
        this.splicer = new WeightSplicer(this.makeBakedBytes(), this.weights);
        t0 = performance.now();
      }
      const tc = performance.now();
      // A variant's session runs a few batches: onnxruntime's memory pattern would be planned on
      // the first run and pay off only over many (measured: first run 33 → 18 ms, release 4.7 → 1.1 ms).
      const s = await createSession(this.splicer.bytesFor(variant), { ...pickSessionOptions(this.opts), enableMemPattern: false }, 'variant model');
      let fixedMs = performance.now() - tc;
      const times: RunTimes = { perSample: [], firstMs: 0, firstSamples: 0 };
      try {
        r = await this.loop(s, {}, opts, times);
      } finally {
        const tr = performance.now();
        await s.release();
        fixedMs += performance.now() - tr;
      }
      r.timing.wallMs = performance.now() - t0;
      // Every rebuilt session pays its first run's allocations: a fixed cost like its creation.
      const perSample = medianPerSample(times);
      sums.rebuildFixedMs += fixedMs + Math.max(0, times.firstMs - perSample * times.firstSamples);
      sums.rebuildPerSample += perSample;
      sums.rebuildVariants++;
      this.costs.rebuildCreate = sums.rebuildFixedMs / sums.rebuildVariants;
      this.costs.rebuildPerSample = sums.rebuildPerSample / sums.rebuildVariants;
    }
    sums.variants++;
    sums.samples += r.samples;
    if (!this.chosen) await this.decide();
    return r;
  }

  /** True once the fed session takes the weights in onnxruntime's layout (see `layoutFeed.ts`). */
  get layoutFed(): boolean {
    return this.layout !== undefined;
  }

  /**
   * The fed session: on onnxruntime's optimized model with the weights in its layout when
   * {@link VariantEvaluatorOptions.layoutFeed} allows, a convolution reads them and that works (then
   * {@link layout} is set), else on the model with the weights as plain inputs. Weights that no
   * convolution reads (Gemm, MatMul) are used by onnxruntime as they are — nothing to lay out: on
   * the fixtures their layout maps were the identity — and the two optimizations are not worth it.
   */
  private async createFeedSession(): Promise<ort.InferenceSession> {
    const so = pickSessionOptions(this.opts);
    if (this.opts.layoutFeed && this.readByConv) {
      this.layout = await layoutFeed(this.makeBakedBytes(), this.weights, so);
      if (this.layout) {
        try {
          return await createSession(this.layout.bytes, { ...so, graphOptimizationLevel: 'disabled' }, 'optimized model');
        } catch {
          this.layout = undefined;
        }
      }
    }
    return createSession(this.makeFeedBytes(), so, this.mode === 'split' ? 'suffix model' : 'model with weights as inputs');
  }

  /**
   * `'auto'`: the way of the next variant, from the running costs per variant of the mean length so
   * far. Rebuild pays a session per variant and feed runs the same graph with slower kernels
   * (weights not pre-packed or folded). The other way is tried only when it can win: feed when the
   * session is > 2 % of a rebuilt variant, rebuild when the fed session's creation is < 20 % of a
   * fed variant (without `layoutFeed` only weights no convolution reads are fed first: pre-packing a
   * Gemm / MatMul weight gains less than that). When every fed tensor is one onnxruntime laid out itself (`layoutFeed.ts`,
   * e.g. NCHWc-reordered convolution weights) feed is kept at once: its kernels are a rebuilt
   * session's, so a rebuild could only win by noise in one variant's timing (measured on ResNet-8's
   * first convolutions under load, it did). With both measured, feed is kept
   * once it is cheaper, rebuild once it is cheaper by 20 %; in between rebuilding goes on with the
   * fed session kept, and the choice is made again after every variant (a loaded machine can make
   * session creation several times slower).
   */
  private async decide(): Promise<void> {
    const c = this.costs;
    const n = this.sums.samples / this.sums.variants;
    const rebuild = c.rebuildPerSample === undefined ? undefined : c.rebuildCreate! + c.rebuildPerSample * n;
    const feed = c.feedPerSample === undefined ? undefined : c.feedPerSample * n;
    if (rebuild !== undefined && feed !== undefined) {
      if (feed <= rebuild) this.chosen = 'feed';
      else if (rebuild < 0.8 * feed) this.chosen = 'rebuild';
      else this.next = 'rebuild';
    } else if (rebuild !== undefined) {
      if (c.rebuildCreate! <= 0.02 * rebuild) this.chosen = 'rebuild';
      else this.next = 'feed';
    } else if (feed !== undefined) {
      if (c.feedCreate! >= 0.2 * feed || this.layout?.inputs.every((d) => d.map !== undefined)) this.chosen = 'feed';
      else this.next = 'rebuild';
    }
    if (this.chosen === 'rebuild') {
      await this.feedSession?.release();
      this.feedSession = undefined;
    }
  }

  /** Runs the batches until done or decided; `times` receives the time inside `run` of each. */
  private async loop(session: ort.InferenceSession, wfeeds: Record<string, ort.Tensor>, opts: EvaluateOptions, times: RunTimes): Promise<VariantResult> {
    const sc = this.sc;
    const { per, classes, rows, labels, refTop1, refCorrect } = sc;
    // Classifiers (one row of class scores per sample) are scored in one walk per row, unsorted.
    const cls = rows === 1 ? new ClassifierScore(sc) : undefined;
    const acc = new ClassificationAccumulator();
    const fid = cls ? undefined : new FidelityAccumulator(classes);
    const total = this.samples;
    const test =
      opts.budget === undefined || opts.keepOutputs
        ? undefined
        : new SequentialTest(opts.budget, {
            twoSided: labels !== undefined,
            population: total,
            maxLooks: this.batches.length,
            delta: this.opts.delta,
            minSamples: this.opts.minSamples,
            stopOn: opts.stopOn,
          });
    const order = this.store.order;
    const kept = opts.keepOutputs ? new Float32Array(this.store.count * per) : undefined;
    const fetch = [sc.output];
    const hasWeights = Object.keys(wfeeds).length > 0;
    let decision: StopDecision;
    let refRight = 0;
    let agree = 0;
    let done = 0;
    let inferenceMs = 0;
    for (const b of this.batches) {
      throwIfAborted(opts.signal ?? this.opts.signal);
      const feeds = hasWeights ? { ...b.feeds, ...wfeeds } : b.feeds;
      const tr = performance.now();
      const res = await session.run(feeds, fetch);
      const runMs = performance.now() - tr;
      if (done === 0) (times.firstMs = runMs), (times.firstSamples = b.count);
      times.perSample.push(runMs / b.count);
      inferenceMs += runMs;
      const out = (res[sc.output] as ort.Tensor).data as Float32Array;
      const { start: s, count: n } = b;
      let up = 0;
      let down = 0;
      if (cls) {
        cls.add(out, s, n);
        up = cls.up;
        down = cls.down;
      } else {
        const lab = labels?.subarray(s, s + n);
        const rt = refTop1.subarray(s, s + n);
        const top1 = acc.add(out, n * rows, classes);
        fid!.add(sc.ref.subarray(s * per, (s + n) * per), out, n, per, sc.refLse.subarray(s * rows, (s + n) * rows));
        for (let i = 0; i < n; i++) {
          const t = top1[i * rows]!;
          if (t === rt[i]) agree++;
          let x: number;
          if (lab) {
            const rc = refCorrect![s + i]!;
            refRight += rc;
            x = rc - (t === lab[i] ? 1 : 0);
          } else x = t === rt[i] ? 0 : 1;
          if (x > 0) up++;
          else if (x < 0) down++;
        }
      }
      if (kept) for (let i = 0; i < n; i++) kept.set(out.subarray(i * per, (i + 1) * per), order[s + i]! * per);
      done += n;
      if (test) {
        test.add(up, down, n);
        decision = test.decide();
        if (decision !== undefined && done < total) break;
      }
    }
    if (cls) (agree = cls.agree), (refRight = cls.refRight);
    const c = cls ?? acc.counts;
    const loss = labels ? (refRight - c.top1Correct) / done : 1 - agree / done;
    const ci = test ? test.interval() : { lo: loss, hi: loss };
    const result: VariantResult = {
      top1: labels ? c.top1Correct / done : NaN,
      top5: labels ? c.top5Correct / done : NaN,
      agreement: agree / done,
      referenceTop1: labels ? refRight / done : NaN,
      samples: done,
      stoppedEarly: done < total,
      decision,
      loss,
      ci: done < total ? [ci.lo, ci.hi] : [loss, loss],
      fidelity: cls ? cls.fidelity() : fid!.result(),
      timing: { wallMs: 0, inferenceMs },
    };
    if (kept) result.outputs = kept;
    return result;
  }

  /** Releases the session and lets go of the original weights (read again if used again). */
  async dispose(): Promise<void> {
    await this.feedSession?.release();
    this.feedSession = undefined;
    this.originals = undefined;
    this.splicer = undefined;
  }
}
