/**
 * Feeding variable weights in onnxruntime's own layout, so that one session evaluates any number of
 * variants at the speed of a session with the weights baked in.
 *
 * A weight that is a graph input cannot be prepared by onnxruntime's graph optimizer: its NCHWc
 * pass reorders constant convolution weights into blocked layouts (the NCHWc kernels are 1.1–20×
 * faster than plain convolutions), and constant folding can transpose or pad them. Here the model
 * with the weights baked in is optimized by onnxruntime once (`graphOptimizationLevel: 'all'`,
 * saved with `optimizedModelFilePath`), the initializers it derived from the variable weights
 * become graph inputs of that optimized model, and a variant is fed as those derived tensors,
 * gathered from the variant's values through an index map per derived tensor.
 *
 * The index map is found, not assumed: the model is optimized a second time with "probe" weights
 * whose element i holds the value i + 1 (exact in float32 up to 2^24), so a derived tensor's element
 * holds the (1-based) index of the weight element it came from, or 0 for padding. This is accepted
 * only when the two optimized graphs have the same nodes and the same initializer names, and every
 * derived tensor, rebuilt from the real weights through its map, equals onnxruntime's bit for bit;
 * a derivation that computes (e.g. a batch-norm folded into the convolution's weights) fails that
 * check and the caller falls back to plain fed weights. The optimized model is specific to this
 * machine's CPU (block sizes) and lives only in memory; a session on it needs no optimization
 * (`graphOptimizationLevel: 'disabled'`), and the caller falls back to plain fed weights when
 * onnxruntime cannot load it.
 */
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { equals } from '@bufbuild/protobuf';
import * as ort from 'onnxruntime-node';
import { decodeModel, encodeModel } from '../onnx/codec.js';
import { TensorProtoSchema, type ModelProto, type NodeProto } from '../onnx/proto.js';
import { dimsOf, isExternal, tensorToFloat32 } from '../onnx/tensor.js';
import type { SessionOptions } from './session.js';
import { tensorValueInfo, WeightSplicer, type WeightTensor } from './weightsAsInputs.js';

/** One input of a {@link LayoutFeed}: a tensor onnxruntime derived from one variable weight. */
export interface DerivedInput {
  readonly name: string;
  readonly dims: readonly number[];
  /** The variable weight it comes from. */
  readonly weight: string;
  /**
   * Element j is the weight's element `map[j] − 1`, or 0 where `map[j]` is 0 (padding); undefined
   * when the tensor is the weight itself (fed as is).
   */
  readonly map: Int32Array | undefined;
}

/** An optimized model whose inputs include the tensors derived from the variable weights. */
export class LayoutFeed {
  /** Per derived input: its buffer (reused) and the non-padding positions' sources (0-based). */
  private readonly gathers: { buffer: Float32Array; dst: Int32Array | undefined; src: Int32Array }[];

  constructor(
    /** The optimized model: create its session with `graphOptimizationLevel: 'disabled'`. */
    readonly bytes: Uint8Array,
    readonly inputs: readonly DerivedInput[],
  ) {
    this.gathers = inputs.map(({ map }) => {
      if (!map) return { buffer: new Float32Array(0), dst: undefined, src: new Int32Array(0) };
      let n = 0;
      for (let j = 0; j < map.length; j++) if (map[j] !== 0) n++;
      const dst = new Int32Array(n);
      const src = new Int32Array(n);
      for (let j = 0, k = 0; j < map.length; j++) if (map[j] !== 0) (dst[k] = j), (src[k++] = map[j]! - 1);
      // Padding positions stay 0 in the reused buffer; without padding the positions are 0..n-1.
      return { buffer: new Float32Array(map.length), dst: n === map.length ? undefined : dst, src };
    });
  }

  /**
   * The derived tensors of a variant (`variant` by weight name; absent names: `originals`). The
   * tensors' buffers are reused by the next call (gathered into, not allocated per variant: a
   * 512×512×3×3 weight took 8 ms allocated, 3–6 ms reused).
   */
  feeds(variant: ReadonlyMap<string, Float32Array>, originals: ReadonlyMap<string, WeightTensor>): Record<string, ort.Tensor> {
    const out: Record<string, ort.Tensor> = {};
    this.inputs.forEach((d, k) => {
      const v = variant.get(d.weight) ?? originals.get(d.weight)!.data;
      if (!d.map) {
        out[d.name] = new ort.Tensor('float32', v, d.dims);
        return;
      }
      const { buffer: x, dst, src } = this.gathers[k]!;
      if (dst) for (let i = 0; i < src.length; i++) x[dst[i]!] = v[src[i]!]!;
      else for (let i = 0; i < src.length; i++) x[i] = v[src[i]!]!;
      out[d.name] = new ort.Tensor('float32', x, d.dims);
    });
    return out;
  }
}

/** Largest number of variable weight elements a probe can index exactly in float32. */
const MAX_PROBE = 2 ** 24 - 1;

/**
 * Largest model (bytes) fed in layout: 256 MiB. Each optimization writes the model and reads it
 * back, and a {@link LayoutFeed} keeps the optimized model, a buffer per derived tensor and an
 * index per element (up to 3× the model's size); larger models feed their weights plainly.
 */
const MAX_MODEL_BYTES = 2 ** 28;

/** The model optimized by onnxruntime as it would run it, decoded. */
async function optimize(bytes: Uint8Array, options: Partial<SessionOptions>): Promise<ModelProto> {
  const dir = mkdtempSync(join(tmpdir(), 'onnxc-layout-'));
  try {
    const file = join(dir, 'optimized.onnx');
    // createSession does not pass optimizedModelFilePath; the other options as the evaluator's.
    const s = await ort.InferenceSession.create(bytes, {
      intraOpNumThreads: 1,
      interOpNumThreads: 1,
      graphOptimizationLevel: 'all',
      executionMode: 'sequential',
      optimizedModelFilePath: file,
      // onnxruntime warns that an NCHWc-optimized model is specific to this machine: it is.
      logSeverityLevel: 3,
    });
    await s.release();
    return decodeModel(readFileSync(file));
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

const nodeKey = (n: NodeProto) => `${n.domain}:${n.opType}(${n.input.join(',')})->(${n.output.join(',')})`;

/**
 * Optimizes `bakedBytes` (the model with the variable `weights` as initializers holding their
 * original values) for feeding, see the module comment. Undefined when the weights cannot be fed
 * in onnxruntime's layout (too many elements to probe, a model above {@link MAX_MODEL_BYTES} or
 * with external data, a derivation that is not a gather, an optimized graph that depends on the
 * values, or onnxruntime cannot save the optimized model); the caller then feeds the weights as
 * plain inputs.
 */
export async function layoutFeed(bakedBytes: Uint8Array, weights: ReadonlyMap<string, WeightTensor>, options: Partial<SessionOptions>): Promise<LayoutFeed | undefined> {
  const total = [...weights.values()].reduce((a, w) => a + w.data.length, 0);
  if (total > MAX_PROBE || bakedBytes.length > MAX_MODEL_BYTES || options.externalDataFolder !== undefined) return undefined;
  const probe = new Map<string, Float32Array>();
  const owner: { name: string; from: number; to: number }[] = [];
  let at = 0;
  for (const [n, w] of weights) {
    probe.set(n, Float32Array.from({ length: w.data.length }, (_, i) => at + i + 1));
    owner.push({ name: n, from: at + 1, to: at + w.data.length });
    at += w.data.length;
  }
  let real: ModelProto;
  let probed: ModelProto;
  try {
    real = await optimize(bakedBytes, options);
    probed = await optimize(new WeightSplicer(bakedBytes, weights).bytesFor(probe), options);
  } catch {
    return undefined;
  }
  const rg = real.graph!;
  const pg = probed.graph!;
  if (rg.node.length !== pg.node.length || rg.node.some((n, i) => nodeKey(n) !== nodeKey(pg.node[i]!))) return undefined;
  const probeInits = new Map(pg.initializer.map((t) => [t.name, t]));
  if (probeInits.size !== rg.initializer.length || rg.initializer.some((t) => !probeInits.has(t.name))) return undefined;
  // Everything is read from the decoded bytes: a tensor onnxruntime wrote as external data is gone.
  if ([...rg.initializer, ...pg.initializer].some(isExternal)) return undefined;
  const inputs: DerivedInput[] = [];
  for (const t of rg.initializer) {
    const p = probeInits.get(t.name)!;
    // Same stored bytes: not derived from the weights (a byte compare: most initializers are this).
    if (p.rawData.length > 0 && Buffer.from(p.rawData.buffer, p.rawData.byteOffset, p.rawData.length).equals(t.rawData)) continue;
    // Only float tensors can be gathered from the weights: another one that the values changed
    // (stored bytes that differ, or typed fields) means the graph depends on them in another way.
    if (t.dataType !== 1) {
      if (p.rawData.length > 0 || !equals(TensorProtoSchema, p, t)) return undefined;
      continue;
    }
    const a = tensorToFloat32(p);
    const b = tensorToFloat32(t);
    if (a.length === b.length && a.every((x, i) => Object.is(x, b[i]))) continue;
    // Derived from the variable weights: a gather from one of them, checked on the real values.
    let lo = Infinity;
    let hi = 0;
    for (const x of a) if (x > 0) (lo = Math.min(lo, x)), (hi = Math.max(hi, x));
    const w = owner.find((o) => lo >= o.from && hi <= o.to);
    if (!w || a.length !== b.length) return undefined;
    const src = weights.get(w.name)!.data;
    const map = new Int32Array(a.length);
    let identity = a.length === src.length;
    for (let j = 0; j < a.length; j++) {
      const m = a[j]!;
      const k = m === 0 ? 0 : m - w.from + 1;
      if (!Number.isInteger(m) || !Object.is(b[j], k === 0 ? 0 : src[k - 1]!)) return undefined;
      map[j] = k;
      if (k !== j + 1) identity = false;
    }
    inputs.push({ name: t.name, dims: dimsOf(t), weight: w.name, map: identity ? undefined : map });
  }
  if (inputs.length === 0) return undefined;
  const derived = new Set(inputs.map((d) => d.name));
  rg.initializer = rg.initializer.filter((t) => !derived.has(t.name));
  rg.input = rg.input.filter((i) => !derived.has(i.name));
  for (const d of inputs) rg.input.push(tensorValueInfo(d.name, 1, d.dims));
  return new LayoutFeed(encodeModel(real), inputs);
}
