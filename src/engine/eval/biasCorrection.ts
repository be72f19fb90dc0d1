/**
 * Bias correction (empirical and sequential; Nagel et al. 2019, "Data-Free Quantization Through
 * Weight Equalization and Bias Correction", §4.2). Compressing a layer's weights shifts the mean of
 * its outputs: the rounding errors do not average out over real inputs, and the shifts of earlier
 * layers pass through the nonlinearities. A layer's bias can take that shift back for free (a
 * tensor of the same size), so a compressed model with corrected biases costs no more bytes and
 * loses less. Corrected biases are rounded to what the exported model stores, so it computes
 * exactly what was measured (`encode/narrow.ts`):
 *
 * - to a per-bias affine uint8 grid (`util/grid.ts`: a code per value, a float16 scale and offset;
 *   a byte per value instead of two), when the model's corrected biases are enough values for the
 *   grid's decoder to pay (`gridPays`) and no channel moves by more than {@link GRID_TOLERANCE} of
 *   the standard deviation of its original output on the calibration samples (a bias with an
 *   outlier, whose grid is coarse next to most of its channels, stays float16);
 * - else to float16 values (the rounding is far below the shifts): half the bytes.
 *
 * The grid's values are float16 values too, so a bias the encoder does not pack stays float16.
 *
 * For the compressed layers that have a bias, in graph order: run the model with the compressed
 * weights (and the corrections made so far) on the calibration samples, fetching only this layer's
 * output (onnxruntime runs only the part of the graph that output needs), and set
 * `b' = b − (mean_compressed − mean_original)` per output channel. Sequential, because correcting
 * every layer from one pass over-corrects the deeper ones: the shifts a correction removes upstream
 * are corrected again downstream (on the MobileNet fixture that diverged, 60 points lost, where the
 * sequential pass brought share k=8 everywhere from 3.7 to 1.7 points).
 *
 * Cost per variant: one pass over the calibration samples per corrected layer, each only through
 * the layer's prefix. One session serves every variant: the corrected layers' weights and biases
 * are graph inputs. A variant that changes one layer only (a sensitivity cell) needs no pass: the
 * layer is linear in its weights, so its mean output shift is exactly (Ŵ − W) applied to the mean of
 * its input patches, which one pass over the original model gives for every layer at once (the
 * mean input feature map, summed over each kernel offset's window, zero padding included).
 */
import * as ort from 'onnxruntime-node';
import { fail, throwIfAborted } from '../errors';
import type { NodeProto, OnnxModel, WeightInfo } from '../onnx';
import { openDataset } from './dataset';
import type { DatasetSpec } from './datasetSpec';
import { createSession, sessionInputs, toOrtFeeds, type SessionOptions } from './session';
import type { FeedTensor } from './types';
import { gridPays } from '../encode/narrow';
import { decodeModel } from '../onnx';
import { roundedToGrid } from '../util/grid';
import { roundedToHalf } from '../util/half';
import { modelIo } from './variantEvaluator';
import { weightsAsInputs, withExtraOutputs, type WeightTensor } from './weightsAsInputs';

const FLOAT = 1;

/**
 * Rounding a corrected bias to its uint8 grid may move each channel by at most this fraction of the
 * standard deviation of the channel's original output (over the calibration samples and positions);
 * beyond it, the bias is rounded to float16 values instead. On the MobileNet fixture the grid
 * changed neither top-1 nor the output divergence measurably.
 */
export const GRID_TOLERANCE = 0.01;

/** A layer whose bias can be corrected: its weight, bias and output (channels on axis 1). */
export interface BiasTarget {
  readonly weight: string;
  readonly bias: string;
  readonly output: string;
  /** The layer's data input (for the analytic single-layer correction). */
  readonly input: string;
  /** How the weight meets its input, when the analytic correction supports it. */
  readonly geometry: Geometry | undefined;
}

/** 2-D Conv with explicit pads, or Gemm (transA 0, alpha = beta = 1). */
type Geometry =
  | { kind: 'conv'; group: number; strides: number[]; pads: number[]; dilations: number[] }
  | { kind: 'gemm'; transB: boolean };

function ints(n: NodeProto, name: string, fallback: number[]): number[] {
  const a = n.attribute.find((x) => x.name === name);
  return a && a.ints.length ? a.ints.map(Number) : fallback;
}
function num(n: NodeProto, name: string, fallback: number): number {
  const a = n.attribute.find((x) => x.name === name);
  return a === undefined ? fallback : a.type === 1 ? a.f : Number(a.i);
}

function geometryOf(n: NodeProto, weightDims: readonly number[]): Geometry | undefined {
  if (n.opType === 'Gemm') {
    if (num(n, 'alpha', 1) !== 1 || num(n, 'beta', 1) !== 1 || weightDims.length !== 2) return undefined;
    return { kind: 'gemm', transB: num(n, 'transB', 0) !== 0 };
  }
  const autoPad = n.attribute.find((x) => x.name === 'auto_pad');
  const ap = autoPad?.s ? new TextDecoder().decode(autoPad.s) : 'NOTSET';
  if ((ap !== 'NOTSET' && ap !== 'VALID') || weightDims.length !== 4) return undefined;
  return { kind: 'conv', group: num(n, 'group', 1), strides: ints(n, 'strides', [1, 1]), pads: ap === 'VALID' ? [0, 0, 0, 0] : ints(n, 'pads', [0, 0, 0, 0]), dilations: ints(n, 'dilations', [1, 1]) };
}

/**
 * The layers of `weights` whose bias can absorb a shift: a Conv or Gemm (channels on axis 1 of
 * the output) reading the weight as its second input and a 1-D float32 initializer bias as its
 * third that no other node reads. In graph order.
 */
export function biasTargets(model: OnnxModel, weights: readonly WeightInfo[]): BiasTarget[] {
  const g = model.graph;
  const readers = new Map<string, number>();
  for (const n of g.node) for (const i of n.input) readers.set(i, (readers.get(i) ?? 0) + 1);
  const inits = new Map(g.initializer.map((t) => [t.name, t]));
  const wanted = new Set(weights.map((w) => w.name));
  const out: BiasTarget[] = [];
  for (const n of g.node) {
    if ((n.opType !== 'Conv' && n.opType !== 'Gemm') || (n.domain !== '' && n.domain !== 'ai.onnx')) continue;
    const [, w, b] = n.input;
    if (!w || !b || !wanted.has(w) || readers.get(w) !== 1 || readers.get(b) !== 1) continue;
    if (n.opType === 'Gemm' && n.attribute.some((a) => a.name === 'transA' && Number(a.i) !== 0)) continue;
    const bt = inits.get(b);
    if (!bt || bt.dataType !== FLOAT || bt.dims.length !== 1) continue;
    const wt = inits.get(w);
    out.push({ weight: w, bias: b, output: n.output[0]!, input: n.input[0]!, geometry: wt ? geometryOf(n, wt.dims.map(Number)) : undefined });
  }
  return out;
}

/** Options of {@link BiasCorrector.create}. */
export interface BiasCorrectorOptions {
  /** Calibration samples (from the start of the data). Default 256. */
  samples: number;
  batchSize: number;
  session: Partial<SessionOptions>;
  /** Folder of the model's external data, when it has some. */
  externalDataFolder: string | undefined;
  signal: AbortSignal | undefined;
  /** Round corrected biases to uint8 grids where that is safe and pays (default true; false: float16 values). */
  grid: boolean;
}

/**
 * Per-channel means over axis 1 of a [N, C, ...] output, added into `acc` (sums over samples), and
 * the means of their squares into `squares` when given.
 */
function addChannelMeans(t: ort.Tensor, acc: Float64Array, squares?: Float64Array): void {
  const d = t.data as Float32Array;
  const dims = t.dims;
  const n = dims[0]!;
  const c = dims[1] ?? 1;
  if (c !== acc.length) fail('E_INTERNAL', `bias correction: output has ${c} channels, the bias ${acc.length}.`);
  const per = d.length / (n * c);
  for (let i = 0; i < n; i++) {
    for (let ch = 0; ch < c; ch++) {
      let s = 0;
      let q = 0;
      const off = (i * c + ch) * per;
      for (let p = 0; p < per; p++) {
        const v = d[off + p]!;
        s += v;
        q += v * v;
      }
      acc[ch]! += s / per;
      if (squares) squares[ch]! += q / per;
    }
  }
}

/** Sums over samples of a [N, ...] tensor's values per position (the rest of its dims), into `acc`. */
function addSampleSums(data: Float32Array, n: number, acc: Float64Array): void {
  const per = data.length / n;
  if (per !== acc.length) fail('E_INTERNAL', `bias correction: input of ${per} values per sample, expected ${acc.length}.`);
  for (let i = 0; i < n; i++) for (let j = 0, off = i * per; j < per; j++) acc[j]! += data[off + j]!;
}

/**
 * Mean input patch of a 2-D convolution: for input channel c and kernel offset (kh, kw), the mean
 * over output positions of the mean feature map at (oh·s + kh·d − pad), zero outside (padding).
 */
function patchMeans(map: Float64Array, dims: readonly number[], kernel: readonly number[], g: Extract<Geometry, { kind: 'conv' }>): Float64Array {
  const [c, h, w] = dims as [number, number, number];
  const [kh, kw] = kernel as [number, number];
  const [sh, sw] = g.strides as [number, number];
  const [dh, dw] = g.dilations as [number, number];
  const [pt, pl, pb, pr] = g.pads as [number, number, number, number];
  const oh = Math.floor((h + pt + pb - dh * (kh - 1) - 1) / sh) + 1;
  const ow = Math.floor((w + pl + pr - dw * (kw - 1) - 1) / sw) + 1;
  const out = new Float64Array(c * kh * kw);
  for (let ch = 0; ch < c; ch++) {
    for (let a = 0; a < kh; a++) {
      for (let b = 0; b < kw; b++) {
        let sum = 0;
        for (let y = 0; y < oh; y++) {
          const iy = y * sh + a * dh - pt;
          if (iy < 0 || iy >= h) continue;
          for (let x = 0; x < ow; x++) {
            const ix = x * sw + b * dw - pl;
            if (ix >= 0 && ix < w) sum += map[(ch * h + iy) * w + ix]!;
          }
        }
        out[(ch * kh + a) * kw + b] = sum / (oh * ow);
      }
    }
  }
  return out;
}

/** Corrects the biases of compressed variants of one model (see the module comment). */
export class BiasCorrector {
  private constructor(
    private readonly session: ort.InferenceSession,
    private readonly batches: readonly Record<string, FeedTensor>[],
    private readonly samples: number,
    /** Targets in graph order. */
    readonly targets: readonly BiasTarget[],
    private readonly originals: ReadonlyMap<string, WeightTensor>,
    private readonly originalMeans: ReadonlyMap<string, Float64Array>,
    /** Per target weight with a supported geometry: the mean input patch (conv) or row (gemm). */
    private readonly inputMeans: ReadonlyMap<string, Float64Array>,
    /** Per target output: the standard deviation of each channel of the original output. */
    private readonly originalDeviations: ReadonlyMap<string, Float64Array>,
    /** Whether corrected biases may be rounded to uint8 grids (their decoder pays). */
    private readonly grid: boolean,
  ) {}

  /**
   * Reads the first `samples` samples of `spec` into memory, builds one session where the targets'
   * weights and biases are inputs and their outputs extra outputs, and measures the original output
   * means and standard deviations and the mean input patches.
   */
  static async create(modelBytes: Uint8Array, targets: readonly BiasTarget[], spec: DatasetSpec, options: Partial<BiasCorrectorOptions> = {}): Promise<BiasCorrector> {
    const o: BiasCorrectorOptions = { samples: 256, batchSize: 64, session: {}, externalDataFolder: undefined, signal: undefined, grid: true, ...options };
    const names = targets.flatMap((t) => [t.weight, t.bias]);
    const wi = weightsAsInputs(modelBytes, names, o.externalDataFolder);
    const proto = decodeModel(wi.bytes);
    const graphInputs = new Set(modelIo(proto).inputs.map((i) => i.name));
    const opset = Number(proto.opsetImport.find((x) => x.domain === '' || x.domain === 'ai.onnx')?.version ?? 0);
    const grid = o.grid && gridPays(targets.map((t) => wi.weights.get(t.bias)!.data.length), opset);
    const fetchedInputs = [...new Set(targets.filter((t) => t.geometry && !graphInputs.has(t.input)).map((t) => t.input))];
    // every target's input can be fetched (sequential calibration, `inputPairs`)
    const inputs = [...new Set(targets.filter((t) => !graphInputs.has(t.input)).map((t) => t.input))];
    const bytes = withExtraOutputs(wi.bytes, [...new Set([...targets.map((t) => t.output), ...inputs])]);
    const session = await createSession(bytes, { ...o.session, ...(o.externalDataFolder ? { externalDataFolder: o.externalDataFolder } : {}) }, 'model for bias correction');
    try {
      const inputs = sessionInputs(session).filter((i) => !wi.weights.has(i.name));
      const ds = await openDataset(spec, inputs, { limit: o.samples });
      const batches: Record<string, FeedTensor>[] = [];
      let count = 0;
      for await (const b of ds.batches(o.batchSize, o.signal ? { signal: o.signal } : {})) {
        batches.push(b.feeds);
        count += b.count;
      }
      if (count === 0) fail('E_DATASET', `${spec.format} data: no samples for bias correction.`);
      const bc = new BiasCorrector(session, batches, count, targets, wi.weights, new Map(), new Map(), new Map(), false);
      const maps = new Map<string, { sum: Float64Array; dims: number[] }>();
      const squares = new Map<string, Float64Array>();
      const onTensor = (name: string, t: { data: ort.Tensor['data']; dims: readonly number[] }): void => {
        const dims = t.dims.slice(1);
        let m = maps.get(name);
        if (!m) maps.set(name, (m = { sum: new Float64Array(dims.reduce((a, b) => a * b, 1)), dims }));
        addSampleSums(t.data as Float32Array, t.dims[0]!, m.sum);
      };
      const means = await bc.means(new Map(), targets.map((t) => t.output), o.signal, { also: fetchedInputs, onTensor, squares });
      const deviations = new Map([...squares].map(([name, sq]) => [name, sq.map((x, c) => Math.sqrt(Math.max(0, x - means.get(name)![c]! ** 2)))] as const));
      for (const m of maps.values()) for (let i = 0; i < m.sum.length; i++) m.sum[i]! /= count;
      const inputMeans = new Map<string, Float64Array>();
      for (const t of targets) {
        const m = maps.get(t.input);
        const g = t.geometry;
        if (!m || !g) continue;
        const wd = wi.weights.get(t.weight)!.dims;
        if (g.kind === 'gemm' && m.dims.length === 1) inputMeans.set(t.weight, m.sum);
        if (g.kind === 'conv' && m.dims.length === 3) inputMeans.set(t.weight, patchMeans(m.sum, m.dims, wd.slice(2), g));
      }
      return new BiasCorrector(session, batches, count, targets, wi.weights, means, inputMeans, deviations, grid);
    } catch (e) {
      await session.release();
      throw e;
    }
  }

  /**
   * Mean per channel of `outputs` over the calibration samples with `values` replacing originals,
   * and the mean of its square into `squares` when given; `also` are fetched too and handed to
   * `onTensor` per batch (graph inputs come from the feeds).
   */
  private async means(
    values: ReadonlyMap<string, Float32Array>,
    outputs: readonly string[],
    signal: AbortSignal | undefined,
    o: { also?: readonly string[]; onTensor?: (name: string, t: { data: ort.Tensor['data']; dims: readonly number[] }) => void; squares?: Map<string, Float64Array> } = {},
  ): Promise<Map<string, Float64Array>> {
    const { also = [], onTensor, squares } = o;
    const weights: Record<string, ort.Tensor> = {};
    for (const [n, w] of this.originals) weights[n] = new ort.Tensor('float32', values.get(n) ?? w.data, w.dims as number[]);
    const sums = new Map<string, Float64Array>();
    for (const t of this.targets) {
      if (!outputs.includes(t.output)) continue;
      sums.set(t.output, new Float64Array(this.originals.get(t.bias)!.data.length));
      squares?.set(t.output, new Float64Array(this.originals.get(t.bias)!.data.length));
    }
    const fromFeeds = onTensor ? [...new Set(this.targets.filter((t) => t.geometry).map((t) => t.input))] : [];
    for (const feeds of this.batches) {
      throwIfAborted(signal);
      const r = await this.session.run({ ...toOrtFeeds(feeds), ...weights }, [...outputs, ...also]);
      for (const name of outputs) addChannelMeans(r[name]!, sums.get(name)!, squares?.get(name));
      for (const name of also) onTensor!(name, r[name]!);
      for (const name of fromFeeds) if (feeds[name]) onTensor!(name, feeds[name]);
    }
    for (const s of [...sums.values(), ...(squares?.values() ?? [])]) for (let c = 0; c < s.length; c++) s[c]! /= this.samples;
    return sums;
  }

  /**
   * Runs the calibration samples twice per batch, with the original weights and with `values`
   * replacing them, and hands the input of target `t` from both runs to `visit` (original first).
   */
  async inputPairs(t: BiasTarget, values: ReadonlyMap<string, Float32Array>, visit: (original: Float32Array, changed: Float32Array, dims: readonly number[]) => void, signal?: AbortSignal): Promise<void> {
    const feedsOf = (vs: ReadonlyMap<string, Float32Array>): Record<string, ort.Tensor> => {
      const weights: Record<string, ort.Tensor> = {};
      for (const [n, w] of this.originals) weights[n] = new ort.Tensor('float32', vs.get(n) ?? w.data, w.dims as number[]);
      return weights;
    };
    const original = feedsOf(new Map());
    const changed = feedsOf(values);
    for (const feeds of this.batches) {
      throwIfAborted(signal);
      const direct = feeds[t.input];
      if (direct) {
        // a graph input: the same in both
        if (!(direct.data instanceof Float32Array)) fail('E_INTERNAL', `sequential calibration: input '${t.input}' is not float32.`);
        visit(direct.data, direct.data, direct.dims);
        continue;
      }
      const a = await this.session.run({ ...toOrtFeeds(feeds), ...original }, [t.input]);
      const b = await this.session.run({ ...toOrtFeeds(feeds), ...changed }, [t.input]);
      visit(a[t.input]!.data as Float32Array, b[t.input]!.data as Float32Array, a[t.input]!.dims);
    }
  }

  /** The output mean shift of target `t` alone changed to `w` (upstream original): (Ŵ − W)·mean input. */
  private shiftAlone(t: BiasTarget, w: Float32Array): Float64Array | undefined {
    const mu = this.inputMeans.get(t.weight);
    const g = t.geometry;
    if (!mu || !g) return undefined;
    const orig = this.originals.get(t.weight)!;
    const rows = this.originals.get(t.bias)!.data.length;
    const shift = new Float64Array(rows);
    if (g.kind === 'gemm') {
      const k = mu.length;
      for (let n = 0; n < rows; n++) {
        let s = 0;
        for (let j = 0; j < k; j++) {
          const at = g.transB ? n * k + j : j * rows + n;
          s += (w[at]! - orig.data[at]!) * mu[j]!;
        }
        shift[n] = s;
      }
      return shift;
    }
    const per = orig.data.length / rows; // Cg·kh·kw
    const groupRows = rows / g.group;
    for (let c = 0; c < rows; c++) {
      const base = Math.floor(c / groupRows) * per;
      let s = 0;
      for (let j = 0, at = c * per; j < per; j++, at++) s += (w[at]! - orig.data[at]!) * mu[base + j]!;
      shift[c] = s;
    }
    return shift;
  }

  /**
   * Corrected biases for a variant (weight name → compressed values): one entry per target whose
   * weight the variant changes, in graph order, each measured with the corrections before it. A
   * variant of one target weight alone is corrected without a pass (see the module comment).
   * Each corrected bias is rounded to what the encoder stores (`encode/narrow.ts`), bit for bit: its
   * uint8 grid or float16 values (see the module comment and {@link rounded}).
   * `recompress`, when given, is asked for each target's new weight first, with the weights and
   * corrected biases of the targets before it in `values` (sequential calibration); the returned
   * weight replaces the variant's before the target's bias is corrected.
   */
  async correct(
    variant: ReadonlyMap<string, Float32Array>,
    signal?: AbortSignal,
    o: { analytic?: boolean; recompress?: (t: BiasTarget, values: ReadonlyMap<string, Float32Array>) => Promise<Float32Array | undefined> } = {},
  ): Promise<Map<string, Float32Array>> {
    const values = new Map(variant);
    const out = new Map<string, Float32Array>();
    const alone = variant.size === 1 && o.analytic !== false && !o.recompress ? this.targets.find((t) => variant.has(t.weight)) : undefined;
    for (const t of this.targets) {
      if (!variant.has(t.weight)) continue;
      throwIfAborted(signal);
      const again = await o.recompress?.(t, values);
      if (again) values.set(t.weight, again);
      let shift: ArrayLike<number> | undefined = t === alone ? this.shiftAlone(t, variant.get(t.weight)!) : undefined;
      if (!shift) {
        const m = (await this.means(values, [t.output], signal)).get(t.output)!;
        const ref = this.originalMeans.get(t.output)!;
        shift = m.map((x, c) => x - ref[c]!);
      }
      const b = values.get(t.bias) ?? this.originals.get(t.bias)!.data;
      const exact = new Float32Array(b.length);
      for (let c = 0; c < b.length; c++) exact[c] = b[c]! - shift[c]!;
      // Rounded before the next layer's pass, so that pass measures (and corrects) what is stored.
      const nb = this.rounded(t, exact);
      values.set(t.bias, nb);
      out.set(t.bias, nb);
    }
    return out;
  }

  /**
   * `exact` rounded to its uint8 grid (`roundedToGrid`, the grid whose largest move relative to the
   * channels' tolerances is smallest) when the grid pays and moves no channel by more than
   * {@link GRID_TOLERANCE} of its output's standard deviation, else to float16 values
   * (`roundedToHalf`; near-zero values become subnormal halves, within 2^-25); as computed when a
   * value is beyond the half range.
   */
  private rounded(t: BiasTarget, exact: Float32Array): Float32Array {
    const half = roundedToHalf(exact);
    if (!half) return exact;
    if (!this.grid) return half;
    const tolerance = this.originalDeviations.get(t.output)!.map((sd) => GRID_TOLERANCE * sd);
    const g = roundedToGrid(exact, (c) => tolerance[c]!);
    return g && g.every((v, c) => Math.abs(v - exact[c]!) <= tolerance[c]!) ? g : half;
  }

  async dispose(): Promise<void> {
    await this.session.release();
  }
}
