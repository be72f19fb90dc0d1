/**
 * Fast evaluation of many weight variants of one model (sensitivity analysis, search).
 *
 * Set-up (once): the original model gives the reference outputs; the graph is split at the first
 * node that reads a variable weight ({@link splitAtWeights}); the prefix runs once over the data and
 * its outputs ("frontier" activations) are kept in memory in a seeded random sample order, batched.
 * Per variant: only the suffix runs, in one session created at set-up, with the variable weights fed
 * as inputs. When the graph cannot be split (control flow, non-float or batch-shaped frontier
 * tensors, activations above `maxCacheBytes`) the whole graph runs with the weights as inputs.
 *
 * Optional early stopping against a budget: see `earlyStop.ts` (95 % confidence by default).
 */
import type * as ort from 'onnxruntime-node';
import { Tensor } from 'onnxruntime-node';
import { fail, throwIfAborted } from '../errors.js';
import { mulberry32 } from '../util/random.js';
import { SequentialTest, type StopDecision } from './earlyStop.js';
import { ClassificationAccumulator, FidelityAccumulator, topK, type Fidelity } from './metrics.js';
import { computeReference, type ReferenceOutputs } from './referenceCache.js';
import { createSession, effectiveBatchSize, sessionInputs, sessionOutputs, toOrtFeeds, type SessionOptions } from './session.js';
import type { Dataset, FeedData, FeedTensor, FeedType } from './types.js';
import { splitAtWeights, weightsAsInputs, type WeightTensor } from './weightsAsInputs.js';

/** Options of {@link VariantEvaluator.create}. */
export interface VariantEvaluatorOptions extends SessionOptions {
  /** Samples per run. Default 100 (forced to the model's batch size when fixed). */
  batchSize: number;
  /** `'auto'` splits when possible; `'inputs'` always runs the whole graph. Default `'auto'`. */
  mode: 'auto' | 'inputs';
  /** Largest in-memory cache of activations/feeds, in bytes. Default 1 GiB. */
  maxCacheBytes: number;
  /** Seed of the sample order (matters for early stopping only). Default 0. */
  seed: number;
  /** Error probability of early decisions. Default 0.05 (95 % confidence). */
  delta: number;
  /** No early decision before this many samples. Default 50. */
  minSamples: number;
  /** Model output scored (default: the first). */
  output: string | undefined;
  /** Reference outputs of the original model, e.g. from the disk cache; computed when absent. */
  reference: ReferenceOutputs | undefined;
  signal: AbortSignal | undefined;
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
   * The loss the budget applies to — accuracy drop `refTop1 − top1` with labels, else
   * disagreement `1 − agreement` — and its confidence interval (exact when all samples ran).
   */
  loss: number;
  ci: readonly [number, number];
  /** Fidelity of the scored output against the original model's. */
  fidelity: Fidelity;
  /** Scored output in dataset order when `keepOutputs` was set (all samples ran). */
  outputs?: Float32Array;
}

/** Per-call options of {@link VariantEvaluator.evaluate}. */
export interface EvaluateOptions {
  /** Loss budget (accuracy drop, or disagreement without labels) for early stopping. */
  budget: number | undefined;
  /** Keep the scored output (disables early stopping). */
  keepOutputs: boolean;
  signal: AbortSignal | undefined;
}

interface CachedBatch {
  readonly feeds: Record<string, ort.Tensor>;
  /** Dataset indices of the batch's samples. */
  readonly index: Int32Array;
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

/** Per-sample column store of one tensor, filled batch by batch. */
class Column {
  data: FeedData | undefined;
  per = 0;
  constructor(
    readonly type: FeedType,
    readonly total: number,
  ) {}
  put(start: number, count: number, src: FeedData, sampleDims: readonly number[], dimsOut: { dims?: readonly number[] }): void {
    if (!this.data) {
      this.per = src.length / count;
      this.data = new TYPED[this.type](this.per * this.total);
      dimsOut.dims = sampleDims;
    }
    (this.data as Float32Array).set(src as Float32Array, start * this.per);
  }
  gather(idx: Int32Array): FeedData {
    const out = new TYPED[this.type](idx.length * this.per);
    const d = this.data as Float32Array;
    for (let i = 0; i < idx.length; i++) {
      const s = idx[i]! * this.per;
      (out as Float32Array).set(d.subarray(s, s + this.per), i * this.per);
    }
    return out;
  }
}

/** Evaluates weight variants of one model on one dataset; see the module comment. */
export class VariantEvaluator {
  private constructor(
    private readonly session: ort.InferenceSession,
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
    /** Set-up time split (ms). */
    readonly timings: { readonly reference: number; readonly prefix: number; readonly session: number },
  ) {}

  /** Samples per evaluation (the dataset's count). */
  get samples(): number {
    return this.ref.count;
  }

  /**
   * Builds the evaluator: reference outputs, split models, in-memory activations, one session.
   * `variableWeightNames` must be float32 initializers. The dataset is read once (twice when the
   * reference is not given).
   */
  static async create(
    modelBytes: Uint8Array,
    variableWeightNames: readonly string[],
    dataset: Dataset,
    options: Partial<VariantEvaluatorOptions> = {},
  ): Promise<VariantEvaluator> {
    const o: VariantEvaluatorOptions = {
      intraOpNumThreads: options.intraOpNumThreads ?? (await import('node:os')).availableParallelism(),
      graphOptimizationLevel: 'all',
      enableMemPattern: true,
      batchSize: 100,
      mode: 'auto',
      maxCacheBytes: 2 ** 30,
      seed: 0,
      delta: 0.05,
      minSamples: 50,
      output: undefined,
      reference: undefined,
      signal: undefined,
      ...options,
    };
    if (variableWeightNames.length === 0) fail('E_BAD_ARGUMENT', 'VariantEvaluator needs at least one variable weight name.');
    const so = { intraOpNumThreads: o.intraOpNumThreads, graphOptimizationLevel: o.graphOptimizationLevel, enableMemPattern: o.enableMemPattern };
    let t0 = performance.now();
    let ref = o.reference;
    let inputs;
    let outputName: string;
    let classes: number;
    {
      const s = await createSession(modelBytes, so);
      try {
        inputs = sessionInputs(s);
        outputName = o.output ?? s.outputNames[0]!;
        const meta = sessionOutputs(s).find((m) => m.name === outputName);
        if (!meta) fail('E_BAD_ARGUMENT', `The model has no output '${outputName}' (outputs: ${s.outputNames.join(', ')}).`);
        ref ??= await computeReference(s, dataset, { batchSize: o.batchSize, outputs: [outputName], signal: o.signal });
      } finally {
        await s.release();
      }
    }
    const refOut = ref.outputs[outputName];
    if (!refOut) fail('E_BAD_ARGUMENT', `The reference outputs lack '${outputName}'.`);
    classes = refOut.sampleDims[refOut.sampleDims.length - 1] ?? 1;
    const tRef = performance.now() - t0;
    const N = ref.count;
    const bs = effectiveBatchSize(inputs, o.batchSize);
    const fixedBatch = inputs.some((i) => typeof i.dims[0] === 'number');
    const refTop1 = topK(refOut.data, N * (refOut.data.length / N / classes), classes, 1).filter((_, i) => i % (refOut.data.length / N / classes) === 0);
    const refCorrect = ref.labels ? Uint8Array.from(refTop1, (c, i) => (c === ref.labels![i] ? 1 : 0)) : undefined;

    // Seeded sample order, cut into batches (a fixed batch dimension needs full batches: drop the tail).
    const rand = mulberry32(o.seed);
    const perm = Int32Array.from({ length: N }, (_, i) => i);
    for (let i = N - 1; i > 0; i--) {
      const j = Math.floor(rand() * (i + 1));
      [perm[i], perm[j]] = [perm[j]!, perm[i]!];
    }
    const order: Int32Array[] = [];
    for (let s = 0; s + (fixedBatch ? bs : 1) <= N; s += bs) order.push(perm.subarray(s, Math.min(N, s + bs)));

    t0 = performance.now();
    let split = o.mode === 'auto' ? splitAtWeights(modelBytes, variableWeightNames) : undefined;
    let columns: Map<string, Column> | undefined;
    const sampleDims = new Map<string, readonly number[]>();
    const fill = async (bytes: Uint8Array | undefined, fetch: readonly string[], fromFeeds: readonly string[]): Promise<Map<string, Column> | undefined> => {
      const cols = new Map<string, Column>();
      const s = bytes && bytes.length > 0 && fetch.length > 0 ? await createSession(bytes, so, 'prefix model') : undefined;
      try {
        for await (const b of dataset.batches(bs, o.signal ? { signal: o.signal } : {})) {
          throwIfAborted(o.signal);
          const put = (name: string, type: FeedType, data: FeedData, dims: readonly number[]): boolean => {
            if (dims[0] !== b.count) return false;
            const c = cols.get(name) ?? new Column(type, N);
            cols.set(name, c);
            const d: { dims?: readonly number[] } = {};
            c.put(b.start, b.count, data, dims.slice(1), d);
            if (d.dims) sampleDims.set(name, d.dims);
            return true;
          };
          for (const f of fromFeeds) {
            const t: FeedTensor = b.feeds[f]!;
            put(f, t.type, t.data, t.dims);
          }
          if (s) {
            const feeds = toOrtFeeds(b.feeds);
            const res = await s.run(feeds, fetch as string[]);
            for (const f of fetch) {
              const t = res[f] as ort.Tensor;
              if (t.type !== 'float32' || !put(f, 'float32', t.data as Float32Array, t.dims)) return undefined;
            }
          }
          const perSample = [...cols.values()].reduce((a, c) => a + c.per * (c.data as Float32Array).BYTES_PER_ELEMENT, 0);
          if (perSample * N > o.maxCacheBytes) return undefined;
        }
      } finally {
        await s?.release();
      }
      return cols;
    };
    if (split) {
      const fetch = split.frontier.filter((f) => !split!.frontierFromInputs.includes(f));
      columns = await fill(split.prefix, fetch, split.frontierFromInputs);
      if (!columns || !split.outputs.includes(outputName)) split = undefined;
    }
    let bytes: Uint8Array;
    let weights: Map<string, WeightTensor>;
    if (split) {
      bytes = split.suffix;
      weights = split.weights;
    } else {
      const w = weightsAsInputs(modelBytes, variableWeightNames);
      bytes = w.bytes;
      weights = w.weights;
      columns = await fill(undefined, [], inputs.map((i) => i.name));
      if (!columns) {
        fail('E_BAD_ARGUMENT', `The dataset does not fit in the evaluator's memory cache (${o.maxCacheBytes} bytes): use --limit or a larger maxCacheBytes.`);
      }
    }
    const tPrefix = performance.now() - t0;
    const batches: CachedBatch[] = order.map((idx) => {
      const feeds: Record<string, ort.Tensor> = {};
      for (const [name, c] of columns!) feeds[name] = new Tensor(c.type, c.gather(idx), [idx.length, ...sampleDims.get(name)!]);
      return { feeds, index: idx };
    });
    t0 = performance.now();
    const session = await createSession(bytes, so, split ? 'suffix model' : 'model with weights as inputs');
    const tSession = performance.now() - t0;
    const nodesTotal = split ? split.totalNodes : 0;
    return new VariantEvaluator(
      session,
      batches,
      weights,
      outputName,
      ref,
      refTop1,
      refCorrect,
      classes,
      o,
      split ? 'split' : 'inputs',
      { perVariant: split ? split.suffixNodes : nodesTotal, total: nodesTotal },
      { reference: tRef, prefix: tPrefix, session: tSession },
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
    for (const [n, w] of this.weights) {
      const v = variant.get(n) ?? w.data;
      if (v.length !== w.data.length) fail('E_BAD_ARGUMENT', `Variant of '${n}' has ${v.length} values, the weight [${w.dims.join(',')}] has ${w.data.length}.`);
      wfeeds[n] = new Tensor('float32', v, w.dims);
    }
    for (const n of variant.keys()) if (!this.weights.has(n)) fail('E_BAD_ARGUMENT', `'${n}' is not one of the evaluator's variable weights.`);
    const labels = this.ref.labels;
    const acc = new ClassificationAccumulator();
    const fid = new FidelityAccumulator(this.classes);
    const refData = this.ref.outputs[this.output]!.data;
    const per = refData.length / this.ref.count;
    const total = this.batches.reduce((a, b) => a + b.index.length, 0);
    const test =
      opts.budget === undefined || opts.keepOutputs
        ? undefined
        : new SequentialTest(opts.budget, { range: labels ? 2 : 1, population: total, maxLooks: this.batches.length, delta: this.opts.delta, minSamples: this.opts.minSamples });
    const kept = opts.keepOutputs ? new Float32Array(this.ref.count * per) : undefined;
    let decision: StopDecision;
    let refCorrect = 0;
    let done = 0;
    for (const b of this.batches) {
      throwIfAborted(opts.signal ?? this.opts.signal);
      const res = await this.session.run({ ...b.feeds, ...wfeeds }, [this.output]);
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
      const top1 = acc.add(out, n * (per / this.classes), this.classes, per === this.classes ? lab : undefined, per === this.classes ? rt : undefined);
      fid.add(refB, out, n, per);
      let sum = 0;
      let sumSq = 0;
      for (let i = 0; i < n; i++) {
        const k = b.index[i]!;
        const rc = this.refCorrect ? this.refCorrect[k]! : 0;
        refCorrect += rc;
        const x = lab ? rc - (top1[i] === lab[i] ? 1 : 0) : top1[i] === rt[i] ? 0 : 1;
        sum += x;
        sumSq += x * x;
      }
      done += n;
      if (test) {
        test.add(sum, sumSq, n);
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
    };
    if (kept) result.outputs = kept;
    return result;
  }

  /** Releases the session. */
  async dispose(): Promise<void> {
    await this.session.release();
  }
}
