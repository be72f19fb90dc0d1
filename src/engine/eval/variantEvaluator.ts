/**
 * Fast evaluation of many weight variants of one model (sensitivity analysis, search).
 *
 * Set-up (once per model + dataset, shared by every layer): one pass of the original model, with
 * the activations each layer's suffix needs added as outputs, gives the reference outputs and those
 * activations, stored in memory in a seeded random sample order. Per layer (a group of variable
 * weights): the graph is split at the first node that reads one of them ({@link splitAtWeights}) and
 * only the suffix runs per variant, either in one session where the weights are inputs (`'feed'`) or
 * in a new session per variant on the suffix with the weights baked in (`'rebuild'`; the weights
 * are spliced into the encoded bytes, no re-encoding). When a graph cannot be split (control flow,
 * non-float or batch-shaped activations, activations above `maxCacheBytes`) the whole graph runs.
 *
 * Optional early stopping against a budget: see `earlyStop.ts` (95 % confidence by default).
 */
import { availableParallelism } from 'node:os';
import type * as ort from 'onnxruntime-node';
import { Tensor } from 'onnxruntime-node';
import { fail, throwIfAborted } from '../errors.js';
import { decodeModel } from '../onnx/codec.js';
import { mulberry32 } from '../util/random.js';
import { SequentialTest, type StopDecision } from './earlyStop.js';
import { ClassificationAccumulator, FidelityAccumulator, topK, type Fidelity } from './metrics.js';
import type { ReferenceOutputs } from './referenceCache.js';
import { createSession, effectiveBatchSize, toOrtFeeds, type SessionOptions } from './session.js';
import type { Dataset, FeedData, FeedType, ModelInputSpec } from './types.js';
import { splitAtWeights, weightsAsInputs, WeightSplicer, withExtraOutputs, type SplitModels, type WeightTensor } from './weightsAsInputs.js';

/** Options of {@link VariantEvaluator.create}. */
export interface VariantEvaluatorOptions extends SessionOptions {
  /** Samples per run. Default 100 (forced to the model's batch size when fixed). */
  batchSize: number;
  /** `'auto'` splits when possible; `'inputs'` always runs the whole graph. Default `'auto'`. */
  mode: 'auto' | 'inputs';
  /**
   * How a variant reaches onnxruntime. `'feed'`: one session where the variable weights are inputs
   * (no session per variant, but ORT cannot pre-pack those weights, e.g. NCHWc convolutions).
   * `'rebuild'`: a new session per variant on the (suffix) model with the weights baked in.
   * `'auto'` (default) times one batch both ways at set-up and picks the cheaper per variant.
   */
  strategy: 'auto' | 'feed' | 'rebuild';
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
    batchSize: 100,
    mode: 'auto',
    strategy: 'auto',
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
   * disagreement `1 − agreement` — and its confidence interval (exact when all samples ran).
   */
  loss: number;
  ci: readonly [number, number];
  /** Fidelity of the scored output against the original model's. */
  fidelity: Fidelity;
  /** Scored output in dataset order when `keepOutputs` was set (all samples ran). */
  outputs?: Float32Array;
  /** Wall time of the call and the part spent inside `session.run` (ms). */
  timing: { wallMs: number; inferenceMs: number };
}

/** Per-call options of {@link VariantEvaluator.evaluate}. */
export interface EvaluateOptions {
  /** Loss budget (accuracy drop, or disagreement without labels) for early stopping. */
  budget: number | undefined;
  /** Keep the scored output (disables early stopping). */
  keepOutputs: boolean;
  signal: AbortSignal | undefined;
}

const ORT_TYPE: Record<number, string> = { 1: 'float32', 2: 'uint8', 3: 'int8', 6: 'int32', 7: 'int64', 9: 'bool', 10: 'float16', 11: 'float64' };

/** Graph inputs (initializers excluded) and output names, read from the model without a session. */
export function modelIo(modelBytes: Uint8Array): { inputs: ModelInputSpec[]; outputs: string[] } {
  const g = decodeModel(modelBytes).graph;
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
  return { inputs, outputs: g.output.map((o) => o.name) };
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

/** One tensor for all samples, stored in the shuffled order (sample at `position[i]`). */
interface Column {
  readonly type: FeedType;
  readonly sampleDims: readonly number[];
  readonly per: number;
  readonly data: FeedData;
}

/**
 * The shared set-up of {@link VariantEvaluator}s of one model on one dataset: reference outputs,
 * the sample order, and cached inputs/activations in that order. Build with
 * {@link ActivationStore.collect}; memory ≈ samples × (inputs + requested activations).
 */
export class ActivationStore {
  private constructor(
    readonly count: number,
    /** Sample index (dataset order) at each shuffled position. */
    readonly order: Int32Array,
    readonly columns: ReadonlyMap<string, Column>,
    readonly reference: ReferenceOutputs,
    readonly inputs: readonly ModelInputSpec[],
    readonly batchSize: number,
    /** Wall time of the pass (ms). */
    readonly passMs: number,
  ) {}

  /**
   * One pass of the original model over `dataset`, keeping its outputs, the model inputs and the
   * float32 tensors `activations` (those that are batch-shaped; others are left out). Drops all
   * activations when together with the inputs they would exceed `maxCacheBytes` (the evaluators
   * then run whole graphs); fails when the inputs alone exceed it.
   */
  static async collect(
    modelBytes: Uint8Array,
    dataset: Dataset,
    activations: readonly string[],
    options: Partial<VariantEvaluatorOptions> = {},
  ): Promise<ActivationStore> {
    const o = makeVariantEvaluatorOptions(options);
    const t0 = performance.now();
    const io = modelIo(modelBytes);
    const N = dataset.meta.count;
    const rand = mulberry32(o.seed);
    const order = Int32Array.from({ length: N }, (_, i) => i);
    for (let i = N - 1; i > 0; i--) {
      const j = Math.floor(rand() * (i + 1));
      [order[i], order[j]] = [order[j]!, order[i]!];
    }
    const position = new Int32Array(N);
    order.forEach((k, p) => (position[k] = p));
    const extra = activations.filter((a) => !io.outputs.includes(a) && !io.inputs.some((i) => i.name === a));
    let keepActs = extra.length > 0;
    const bytes = keepActs ? withExtraOutputs(modelBytes, extra) : modelBytes;
    const so = { intraOpNumThreads: o.intraOpNumThreads, graphOptimizationLevel: o.graphOptimizationLevel, enableMemPattern: o.enableMemPattern };
    const s = await createSession(bytes, so);
    const cols = new Map<string, { type: FeedType; sampleDims: readonly number[]; per: number; data: FeedData }>();
    const bad = new Set<string>();
    const outs = new Map<string, { sampleDims: readonly number[]; parts: { start: number; data: Float32Array }[] }>();
    const labels = dataset.meta.hasLabels ? new Int32Array(N) : undefined;
    const bs = effectiveBatchSize(io.inputs, o.batchSize);
    let done = 0;
    const put = (name: string, type: FeedType, data: FeedData, dims: readonly number[], start: number, count: number) => {
      if (bad.has(name)) return;
      if (dims[0] !== count && !(count < bs && dims[0] === bs)) {
        bad.add(name);
        cols.delete(name);
        return;
      }
      let c = cols.get(name);
      if (!c) {
        const per = dims.slice(1).reduce((a, b) => a * b, 1);
        c = { type, sampleDims: dims.slice(1), per, data: new TYPED[type](per * N) };
        cols.set(name, c);
      }
      for (let i = 0; i < count; i++) {
        (c.data as Float32Array).set((data as Float32Array).subarray(i * c.per, (i + 1) * c.per), position[start + i]! * c.per);
      }
    };
    try {
      for await (const b of dataset.batches(bs, o.signal ? { signal: o.signal } : {})) {
        throwIfAborted(o.signal);
        for (const i of io.inputs) {
          const f = b.feeds[i.name]!;
          put(i.name, f.type, f.data, f.dims, b.start, b.count);
        }
        const feeds = b.count < bs && io.inputs.some((i) => i.dims[0] === bs) ? undefined : toOrtFeeds(b.feeds);
        if (!feeds) fail('E_DATASET', `The model's batch size is fixed at ${bs}; use a sample count that is a multiple of it (--limit).`);
        const res = await s.run(feeds, keepActs ? [...io.outputs, ...extra] : io.outputs);
        for (const n of io.outputs) {
          const t = res[n] as ort.Tensor;
          const per = t.dims.slice(1).reduce((a, c) => a * c, 1);
          const raw = t.data as ArrayLike<number>;
          const data = raw instanceof Float32Array ? raw.slice(0, b.count * per) : Float32Array.from({ length: b.count * per }, (_, i) => Number(raw[i]));
          const e = outs.get(n) ?? { sampleDims: t.dims.slice(1), parts: [] };
          e.parts.push({ start: b.start, data });
          outs.set(n, e);
        }
        if (keepActs) {
          for (const n of extra) {
            const t = res[n] as ort.Tensor;
            if (t.type !== 'float32') bad.add(n);
            else put(n, 'float32', t.data as Float32Array, t.dims, b.start, b.count);
          }
          const bytesNow = [...cols.values()].reduce((a, c) => a + c.data.byteLength, 0);
          if (bytesNow > o.maxCacheBytes) {
            keepActs = false;
            for (const n of extra) cols.delete(n), bad.add(n);
          }
        }
        if (labels && b.labels) labels.set(b.labels, b.start);
        done += b.count;
      }
    } finally {
      await s.release();
    }
    const inputBytes = io.inputs.reduce((a, i) => a + (cols.get(i.name)?.data.byteLength ?? 0), 0);
    if (inputBytes > o.maxCacheBytes) {
      fail('E_BAD_ARGUMENT', `The dataset's inputs (${(inputBytes / 2 ** 20).toFixed(0)} MiB) exceed the evaluator's cache (${(o.maxCacheBytes / 2 ** 20).toFixed(0)} MiB): use --limit or raise maxCacheBytes.`);
    }
    let finalOrder = order;
    if (done < N) {
      // Skipped (undecodable) images leave holes at the end of the dataset indices: compact.
      const keep = Array.from(order, (k, p) => (k < done ? p : -1)).filter((p) => p >= 0);
      finalOrder = Int32Array.from(keep, (p) => order[p]!);
      for (const c of cols.values()) {
        keep.forEach((p, q) => (c.data as Float32Array).copyWithin(q * c.per, p * c.per, (p + 1) * c.per));
        c.data = (c.data as Float32Array).slice(0, keep.length * c.per);
      }
    }
    const outputs: Record<string, { sampleDims: readonly number[]; data: Float32Array }> = {};
    for (const [n, e] of outs) {
      const per = e.sampleDims.reduce((a, b) => a * b, 1);
      const data = new Float32Array(per * done);
      for (const p of e.parts) data.set(p.data, p.start * per);
      outputs[n] = { sampleDims: e.sampleDims, data };
    }
    const reference: ReferenceOutputs = labels ? { count: done, outputs, labels: labels.slice(0, done) } : { count: done, outputs };
    return new ActivationStore(done, finalOrder, cols, reference, io.inputs, bs, performance.now() - t0);
  }

  /** Graph splits computed by {@link VariantEvaluator.prepare}, by group (names joined by NUL). */
  readonly splits = new Map<string, SplitModels | undefined>();

  /** True when the store holds every tensor of `names`. */
  has(names: readonly string[]): boolean {
    return names.every((n) => this.columns.has(n));
  }
}

interface CachedBatch {
  readonly feeds: Record<string, ort.Tensor>;
  /** Dataset indices of the batch's samples. */
  readonly index: Int32Array;
}

/** Evaluates weight variants of one model on one dataset; see the module comment. */
export class VariantEvaluator {
  private constructor(
    private readonly session: ort.InferenceSession | undefined,
    private readonly splicer: WeightSplicer,
    /** `'feed'` or `'rebuild'`, see {@link VariantEvaluatorOptions.strategy}. */
    readonly strategy: 'feed' | 'rebuild',
    private readonly batches: readonly CachedBatch[],
    private readonly weights: Map<string, WeightTensor>,
    private readonly output: string,
    private readonly ref: ReferenceOutputs,
    private readonly refTop1: Int32Array,
    private readonly refCorrect: Uint8Array | undefined,
    private readonly classes: number,
    private readonly opts: VariantEvaluatorOptions,
    /** `'split'` when only the layers after the first variable weight run per variant. */
    readonly mode: 'split' | 'inputs',
    /** Nodes run per variant and in the whole model. */
    readonly nodes: { readonly perVariant: number; readonly total: number },
    /** Set-up time (ms): session creation and the one-batch calibration that chose the strategy. */
    readonly timings: { readonly session: number; readonly feedBatch?: number; readonly rebuildCreate?: number; readonly rebuildBatch?: number },
  ) {}

  /** Samples of a full evaluation. */
  get samples(): number {
    return this.batches.reduce((a, b) => a + b.index.length, 0);
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
    const o = makeVariantEvaluatorOptions(options);
    const splits = groups.map((g) => {
      if (g.length === 0) fail('E_BAD_ARGUMENT', 'A VariantEvaluator needs at least one variable weight name.');
      return o.mode === 'auto' ? splitAtWeights(modelBytes, g) : undefined;
    });
    const store = await VariantEvaluator.prepare(modelBytes, groups, dataset, o, splits);
    const out: VariantEvaluator[] = [];
    try {
      for (let i = 0; i < groups.length; i++) out.push(await VariantEvaluator.fromStore(modelBytes, groups[i]!, store, o, splits[i]));
    } catch (e) {
      for (const ev of out) await ev.dispose();
      throw e;
    }
    return out;
  }

  /**
   * The shared pass for evaluators of `groups` (e.g. every layer of a sensitivity analysis): build
   * it once, then {@link VariantEvaluator.fromStore} one evaluator at a time to keep one session alive.
   */
  static async prepare(
    modelBytes: Uint8Array,
    groups: readonly (readonly string[])[],
    dataset: Dataset,
    options: Partial<VariantEvaluatorOptions> = {},
    splits?: readonly (SplitModels | undefined)[],
  ): Promise<ActivationStore> {
    const o = makeVariantEvaluatorOptions(options);
    const sp = splits ?? (o.mode === 'auto' ? groups.map((g) => splitAtWeights(modelBytes, g)) : []);
    const wanted = [...new Set(sp.flatMap((s) => (s ? s.frontier.filter((f) => !s.frontierFromInputs.includes(f)) : [])))];
    const store = await ActivationStore.collect(modelBytes, dataset, wanted, o);
    sp.forEach((s, i) => store.splits.set(groups[i]!.join('\0'), s));
    return store;
  }

  /** An evaluator from an existing {@link ActivationStore} (see {@link VariantEvaluator.prepare}). */
  static async fromStore(
    modelBytes: Uint8Array,
    variableWeightNames: readonly string[],
    store: ActivationStore,
    options: Partial<VariantEvaluatorOptions> = {},
    precomputedSplit?: SplitModels,
  ): Promise<VariantEvaluator> {
    const o = makeVariantEvaluatorOptions(options);
    const so = { intraOpNumThreads: o.intraOpNumThreads, graphOptimizationLevel: o.graphOptimizationLevel, enableMemPattern: o.enableMemPattern };
    const io = modelIo(modelBytes);
    const outputName = o.output ?? io.outputs[0]!;
    const refOut = store.reference.outputs[outputName];
    if (!refOut) fail('E_BAD_ARGUMENT', `The model has no output '${outputName}' (outputs: ${io.outputs.join(', ')}).`);
    const key = variableWeightNames.join('\0');
    let split = precomputedSplit ?? (o.mode !== 'auto' ? undefined : store.splits.has(key) ? store.splits.get(key) : splitAtWeights(modelBytes, variableWeightNames));
    if (split && (!store.has(split.frontier) || !split.outputs.includes(outputName))) split = undefined;
    const N = store.count;
    const classes = refOut.sampleDims[refOut.sampleDims.length - 1] ?? 1;
    const rows = refOut.data.length / N / classes;
    const refTop1 = topK(refOut.data, N * rows, classes, 1).filter((_, i) => i % rows === 0);
    const labels = store.reference.labels;
    const refCorrect = labels ? Uint8Array.from(refTop1, (c, i) => (c === labels[i] ? 1 : 0)) : undefined;

    let feedBytes: Uint8Array;
    let bakedBytes: Uint8Array;
    let weights: Map<string, WeightTensor>;
    let feedNames: readonly string[];
    if (split) {
      feedBytes = split.suffix;
      bakedBytes = split.suffixBaked;
      weights = split.weights;
      feedNames = split.frontier;
    } else {
      const w = weightsAsInputs(modelBytes, variableWeightNames);
      feedBytes = w.bytes;
      bakedBytes = modelBytes;
      weights = w.weights;
      feedNames = store.inputs.map((i) => i.name);
    }
    // Batches are zero-copy views of the shuffled columns; a fixed batch size drops the tail.
    const bs = store.batchSize;
    const fixed = store.inputs.some((i) => typeof i.dims[0] === 'number');
    const batches: CachedBatch[] = [];
    for (let s = 0; s < N && (!fixed || s + bs <= N); s += bs) {
      const e = Math.min(N, s + bs);
      const feeds: Record<string, ort.Tensor> = {};
      for (const n of feedNames) {
        const c = store.columns.get(n)!;
        feeds[n] = new Tensor(c.type, (c.data as Float32Array).subarray(s * c.per, e * c.per), [e - s, ...c.sampleDims]);
      }
      batches.push({ feeds, index: store.order.subarray(s, e) });
    }
    if (batches.length === 0) fail('E_DATASET', `The dataset has ${N} samples, fewer than the model's fixed batch size ${bs}.`);

    const t0 = performance.now();
    const splicer = new WeightSplicer(bakedBytes, weights);
    let session: ort.InferenceSession | undefined;
    let strategy: 'feed' | 'rebuild' = o.strategy === 'rebuild' ? 'rebuild' : 'feed';
    const calib: { feedBatch?: number; rebuildCreate?: number; rebuildBatch?: number } = {};
    if (o.strategy !== 'rebuild') session = await createSession(feedBytes, so, split ? 'suffix model' : 'model with weights as inputs');
    const tSession = performance.now() - t0;
    if (o.strategy === 'auto') {
      // One warm batch each way; per-variant cost ≈ batches × batch time (+ session creation).
      const b0 = batches[0]!;
      const wOrig: Record<string, ort.Tensor> = {};
      for (const [n, w] of weights) wOrig[n] = new Tensor('float32', w.data, w.dims);
      const time = async (s: ort.InferenceSession, f: Record<string, ort.Tensor>): Promise<number> => {
        await s.run(f, [outputName]);
        const t = performance.now();
        await s.run(f, [outputName]);
        return performance.now() - t;
      };
      calib.feedBatch = await time(session!, { ...b0.feeds, ...wOrig });
      const t1 = performance.now();
      const rebuilt = await createSession(splicer.bytesFor(new Map()), so, 'model');
      calib.rebuildCreate = performance.now() - t1;
      try {
        calib.rebuildBatch = await time(rebuilt, b0.feeds);
      } finally {
        await rebuilt.release();
      }
      const nb = batches.length;
      if (calib.rebuildCreate + calib.rebuildBatch * nb < calib.feedBatch * nb) {
        strategy = 'rebuild';
        await session!.release();
        session = undefined;
      }
    }
    const total = decodeModel(modelBytes).graph!.node.length;
    return new VariantEvaluator(
      session,
      splicer,
      strategy,
      batches,
      weights,
      outputName,
      store.reference,
      refTop1,
      refCorrect,
      classes,
      o,
      split ? 'split' : 'inputs',
      { perVariant: split ? split.suffixNodes : total, total },
      { session: tSession, ...calib },
    );
  }

  /** Original values of the variable weights. */
  originalWeights(): ReadonlyMap<string, WeightTensor> {
    return this.weights;
  }

  /**
   * Evaluates one variant: `variant` maps variable weight names to new values (absent names keep
   * their original values). With `budget`, stops as soon as the loss is decisively above or below it.
   */
  async evaluate(variant: ReadonlyMap<string, Float32Array>, options: Partial<EvaluateOptions> = {}): Promise<VariantResult> {
    const opts: EvaluateOptions = { budget: undefined, keepOutputs: false, signal: undefined, ...options };
    const wfeeds: Record<string, ort.Tensor> = {};
    for (const n of variant.keys()) if (!this.weights.has(n)) fail('E_BAD_ARGUMENT', `'${n}' is not one of the evaluator's variable weights.`);
    for (const [n, w] of this.weights) {
      const v = variant.get(n) ?? w.data;
      if (v.length !== w.data.length) fail('E_BAD_ARGUMENT', `Variant of '${n}' has ${v.length} values, the weight [${w.dims.join(',')}] has ${w.data.length}.`);
      wfeeds[n] = new Tensor('float32', v, w.dims);
    }
    const t0 = performance.now();
    let r: VariantResult;
    if (this.strategy === 'feed') r = await this.loop(this.session!, wfeeds, opts);
    else {
      const s = await createSession(this.splicer.bytesFor(variant), this.opts, 'variant model');
      try {
        r = await this.loop(s, {}, opts);
      } finally {
        await s.release();
      }
    }
    r.timing.wallMs = performance.now() - t0;
    return r;
  }

  private async loop(session: ort.InferenceSession, wfeeds: Record<string, ort.Tensor>, opts: EvaluateOptions): Promise<VariantResult> {
    const labels = this.ref.labels;
    const acc = new ClassificationAccumulator();
    const fid = new FidelityAccumulator(this.classes);
    const refData = this.ref.outputs[this.output]!.data;
    const per = refData.length / this.ref.count;
    const isClassifier = per === this.classes;
    const total = this.samples;
    const test =
      opts.budget === undefined || opts.keepOutputs
        ? undefined
        : new SequentialTest(opts.budget, { twoSided: labels !== undefined, population: total, maxLooks: this.batches.length, delta: this.opts.delta, minSamples: this.opts.minSamples });
    const kept = opts.keepOutputs ? new Float32Array(this.ref.count * per) : undefined;
    let decision: StopDecision;
    let refCorrect = 0;
    let done = 0;
    let inferenceMs = 0;
    for (const b of this.batches) {
      throwIfAborted(opts.signal ?? this.opts.signal);
      const tr = performance.now();
      const res = await session.run({ ...b.feeds, ...wfeeds }, [this.output]);
      inferenceMs += performance.now() - tr;
      const out = (res[this.output] as ort.Tensor).data as Float32Array;
      const n = b.index.length;
      const refB = new Float32Array(n * per);
      const lab = labels ? new Int32Array(n) : undefined;
      const rt = new Int32Array(n);
      for (let i = 0; i < n; i++) {
        const k = b.index[i]!;
        refB.set(refData.subarray(k * per, (k + 1) * per), i * per);
        rt[i] = this.refTop1[k]!;
        if (lab) lab[i] = labels![k]!;
        if (kept) kept.set(out.subarray(i * per, (i + 1) * per), k * per);
      }
      const top1 = acc.add(out, n * (per / this.classes), this.classes, isClassifier ? lab : undefined, isClassifier ? rt : undefined);
      fid.add(refB, out, n, per);
      let up = 0;
      let down = 0;
      for (let i = 0; i < n; i++) {
        const rc = this.refCorrect ? this.refCorrect[b.index[i]!]! : 0;
        refCorrect += rc;
        const x = lab ? rc - (top1[i] === lab[i] ? 1 : 0) : top1[i] === rt[i] ? 0 : 1;
        if (x > 0) up++;
        else if (x < 0) down++;
      }
      done += n;
      if (test) {
        test.add(up, down, n);
        decision = test.decide();
        if (decision !== undefined && done < total) break;
      }
    }
    const c = acc.counts;
    const loss = labels ? (refCorrect - c.top1Correct) / done : 1 - c.agree / done;
    const ci = test ? test.interval() : { lo: loss, hi: loss };
    const result: VariantResult = {
      top1: labels ? c.top1Correct / done : NaN,
      top5: labels ? c.top5Correct / done : NaN,
      agreement: c.agree / done,
      referenceTop1: labels ? refCorrect / done : NaN,
      samples: done,
      stoppedEarly: done < total,
      decision,
      loss,
      ci: done < total ? [ci.lo, ci.hi] : [loss, loss],
      fidelity: fid.result(),
      timing: { wallMs: 0, inferenceMs },
    };
    if (kept) result.outputs = kept;
    return result;
  }

  /** Releases the session. */
  async dispose(): Promise<void> {
    await this.session?.release();
  }
}
