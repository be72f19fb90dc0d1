/**
 * Applies per-layer techniques to a model: compresses each weight, then writes it in the smallest
 * exact ONNX encoding (`choose.ts`) or, for low rank, as two layers (`lowRank.ts`). The model is
 * edited in place; load a fresh copy for each application.
 */
import { compressTensor, type BitBreakdown, type CompressedTensor, type CompressOptions, type TechniqueSpec } from '../compress';
import { fail, throwIfAborted } from '../errors';
import { DataType, listWeights, type OnnxModel, type TensorProto, type WeightInfo } from '../onnx';
import { specLabel } from '../explore/plan';
import { chooseEncoding } from './choose';
import { clone, create } from '@bufbuild/protobuf';
import { FunctionProtoSchema, OperatorSetIdProtoSchema, type FunctionProto } from '../onnx/proto';
import { DECODE_DOMAIN, denseDecoder, MIN_DECODE_OPSET, MIN_FUNCTION_IR, parseRadixTable, specializedDecoder, specializedRadixDecoder, type DecodeGraph } from './decoders';
import { radixLayout } from './bits';
import { applyLowRank, lowRankUnsupported } from './lowRank';
import { compactGraph } from '../onnx/compact';
import { narrowBiases, type NarrowOptions } from './narrow';
import type { LayerHessian } from '../compress/gptq';

/** What happened to one layer. */
export interface LayerApplyResult {
  /** Weight initializer name. */
  name: string;
  /** Technique and level. */
  spec: TechniqueSpec;
  /** Short label, e.g. `share k=16`. */
  label: string;
  /** Elements. */
  params: number;
  /** Bytes of the original tensor as stored. */
  originalBytes: number;
  /** Theoretical storage (exact bits, and with Huffman-coded indices). */
  bits: BitBreakdown;
  /** The ONNX encoding chosen (`codebook`, `quant8`, `mask`, `lowrank`, `dense`...). */
  encoding: string;
  /** Bytes of that encoding's initializers plus an estimate of its nodes. */
  onnxBytes: number;
  /** Σ(w - ŵ)². */
  sse: number;
}

/** Result of {@link applySpecs}. */
export interface ApplyResult {
  layers: LayerApplyResult[];
  /** Layers of the plan that were skipped, with the reason. */
  skipped: Array<{ name: string; reason: string }>;
  /**
   * The float32 reconstruction of every compressed weight (what the encoded model decodes to);
   * empty with `keepReconstructions: false`.
   */
  reconstructions: Map<string, Float32Array>;
  /** Every layer's compressed tensor, with `keepCompressed: true` (else empty): pass it back as `compressed` to encode without compressing again. */
  compressed: Map<string, CompressedTensor>;
}

/** Options of {@link applySpecs}. */
export interface ApplyOptions {
  /** Write encodings into the model (default true). False only computes results and reconstructions. */
  encode: boolean;
  /**
   * Keep every layer's reconstruction in {@link ApplyResult.reconstructions} (default true). Pass
   * false when only the encoded model is wanted (export, `apply`): on a large model they are as big
   * as all its compressed weights (2.25 GiB for the 9-layer benchmark model), held to the end.
   */
  keepReconstructions: boolean;
  /**
   * Called with each layer's reconstruction as soon as it is made, kept or not (e.g. to write it
   * to disk, `eval/diskVariant.ts`, and let it go). Default none.
   */
  onReconstruction: ((name: string, weights: Float32Array) => void) | undefined;
  /** Layers whose plan entry came from `default` (skipped, not failed, when the technique cannot apply). */
  fromDefault: ReadonlySet<string>;
  /** Keep every layer's compressed tensor in {@link ApplyResult.compressed} (default false). */
  keepCompressed: boolean;
  /**
   * Compressed tensors of earlier calls with the same specs on the same model (`keepCompressed`),
   * used instead of compressing again: e.g. a first call without `encode` gives the
   * reconstructions biases are corrected from, a second one encodes with the corrections
   * (`overrides`). Default none.
   */
  compressed: ReadonlyMap<string, CompressedTensor> | undefined;
  /** Progress after each layer: done / total. */
  onProgress: ((done: number, total: number, layer: string) => void) | undefined;
  signal: AbortSignal | undefined;
  /** Passed to the compressors. */
  compress: Partial<CompressOptions>;
  /** Per-layer calibration statistics for specs with `calibrated: true` (`eval/calibration.ts`). */
  calibration: ReadonlyMap<string, LayerHessian> | undefined;
  /**
   * Shorten activation names, drop node names and doc strings, merge equal constants
   * (`onnx/compact.ts`; graph inputs, outputs and the initializers left as they were keep their
   * names; decoded weights and biases get short ones), and when a layer was
   * compressed, store the biases that are float16 values as float16 ({@link narrowBiases}).
   * Default true; only with `encode`.
   */
  compact: boolean;
  /**
   * How `compact` stores the biases that are float16 values: as float16, bit for bit, in the
   * layout of `narrow.ts` (`auto`, the default, picks the smaller), or `off` (float32 as they were).
   */
  narrowBiases: NarrowOptions['layout'] | 'off';
  /**
   * New values for float32 initializers that are not compressed (corrected biases,
   * `eval/biasCorrection.ts`): set before the graph is compacted. Default none.
   */
  overrides: ReadonlyMap<string, Float32Array> | undefined;
}

/**
 * Fails when a weight holds NaN or ±Inf: no technique can approximate them, and the engine would
 * otherwise produce garbage or fail deep inside a compressor.
 * @throws E_TENSOR_DATA naming the file, the tensor, the count and the first bad index.
 */
export function checkFinite(source: string, name: string, data: Float32Array): void {
  let bad = 0;
  let first = -1;
  for (let i = 0; i < data.length; i++) {
    if (!Number.isFinite(data[i]!)) {
      if (first < 0) first = i;
      bad++;
    }
  }
  if (bad > 0) {
    fail('E_TENSOR_DATA', `${source}: weight '${name}' has ${bad} NaN/Inf values (the first at index ${first}, ${data[first]}); compression needs finite weights. Fix the model, or give this layer "technique": "none" in the plan.`);
  }
}

const attached = new WeakMap<OnnxModel, ReadonlyMap<string, LayerHessian>>();

/**
 * Makes per-layer calibration statistics (`eval/calibration.ts`) the default for every
 * {@link compressWeight} on `model`, so specs with `calibrated: true` find them.
 */
export function attachCalibration(model: OnnxModel, calibration: ReadonlyMap<string, LayerHessian>): void {
  attached.set(model, calibration);
}

/** Compresses one weight of a model with one spec (its values must be finite, see {@link checkFinite}). */
export function compressWeight(model: OnnxModel, w: WeightInfo, spec: TechniqueSpec, options: Partial<CompressOptions> = {}): CompressedTensor {
  const data = model.float32(w.tensor);
  checkFinite(model.source, w.name, data);
  const calibration = options.calibration ?? attached.get(model)?.get(w.name);
  return compressTensor({ data, shape: w.shape, role: w.kind, channelAxis: w.channelAxis, name: w.name }, spec, calibration ? { ...options, calibration } : options);
}

/**
 * Compresses and encodes every weight in `specs`.
 * @throws E_PLAN when a technique cannot be applied to a layer the plan names explicitly.
 */
export function applySpecs(model: OnnxModel, specs: ReadonlyMap<string, TechniqueSpec>, options: Partial<ApplyOptions> = {}): ApplyResult {
  const o: ApplyOptions = { encode: true, keepReconstructions: true, onReconstruction: undefined, fromDefault: new Set(), keepCompressed: false, compressed: undefined, onProgress: undefined, signal: undefined, compress: {}, compact: true, narrowBiases: 'auto', calibration: undefined, overrides: undefined, ...options };
  const weights = new Map(listWeights(model).map((w) => [w.name, w]));
  const result: ApplyResult = { layers: [], skipped: [], reconstructions: new Map(), compressed: new Map() };
  let done = 0;
  for (const [name, spec] of specs) {
    throwIfAborted(o.signal);
    const w = weights.get(name);
    if (!w) fail('E_PLAN', `${model.source}: no weight named '${name}'.`);
    if (spec.technique === 'lowrank') {
      const why = w.graph !== 'main' || w.source !== 'initializer' ? 'low rank applies to initializers of the main graph' : lowRankUnsupported(model, name, w.shape);
      if (why) {
        if (o.fromDefault.has(name)) {
          result.skipped.push({ name, reason: why });
          continue;
        }
        fail('E_PLAN', `${model.source}: layer '${name}': ${why}.`);
      }
    }
    const calibration = o.calibration?.get(name);
    const ct = o.compressed?.get(name) ?? compressWeight(model, w, spec, { ...o.compress, signal: o.signal, ...(calibration ? { calibration } : {}) });
    if (o.keepCompressed) result.compressed.set(name, ct);
    let encoding = 'lowrank';
    let onnxBytes = 0;
    if (ct.storage.kind === 'lowrank') {
      onnxBytes = (ct.storage.left.length + ct.storage.right.length) * 4;
      if (o.encode) applyLowRank(model, name, w.shape, ct.storage);
    } else {
      const c = w.graph === 'main' ? chooseEncoding(name, w.shape, ct) : { kind: 'dense', graph: denseDecoder(name, w.shape, ct.weights), bytes: ct.weights.length * 4 };
      encoding = c.kind;
      onnxBytes = c.bytes;
      if (o.encode) replaceWeight(model, w, c.graph);
    }
    if (o.keepReconstructions) result.reconstructions.set(name, ct.weights);
    o.onReconstruction?.(name, ct.weights);
    result.layers.push({ name, spec, label: specLabel(spec), params: w.params, originalBytes: w.bytes, bits: ct.bits, encoding, onnxBytes, sse: ct.sse });
    o.onProgress?.(++done, specs.size, name);
  }
  const isPayload = (name: string): boolean => {
    const cut = name.lastIndexOf('::');
    return cut > 0 && specs.has(name.slice(0, cut));
  };
  if (o.encode) specializeSingleWidth(model);
  if (o.encode) for (const [name, data] of o.overrides ?? []) model.setFloat32(name, data);
  if (o.encode) shareDecodeConstants(model, isPayload);
  if (o.encode && o.compact) {
    const layout = o.narrowBiases;
    const narrowed = layout !== 'off' && result.layers.length > 0 ? narrowBiases(model, isPayload, { layout }) : { names: [], payloads: [] };
    const payloads = new Set(narrowed.payloads);
    // Decoded weights and narrowed biases are node outputs now: nothing reads them by name, so
    // they get short names like any activation (graph inputs/outputs and plain initializers stay).
    compactGraph(model, [], (name) => isPayload(name) || payloads.has(name), new Map([...specs.keys()].map((n) => [n, weights.get(n)!.shape] as const)));
  }
  return result;
}

/**
 * When every width-generic decoder call of the model (`Codebook`, `Quant`, ...: unpack table last)
 * unpacks the same width, call the per-width functions instead and drop the tables
 * ({@link specializedDecoder}); with several widths the one generic function is smaller. The same
 * for the radix-generic calls (`CodebookR`, ...: {@link specializedRadixDecoder}) of one radix.
 */
function specializeSingleWidth(model: OnnxModel): void {
  specializeCalls(model, (op) => specializedDecoder(op, 1) !== undefined, (t) => t.rawData[0], specializedDecoder);
  specializeCalls(
    model,
    (op) => specializedRadixDecoder(op, 3) !== undefined,
    (t) => {
      // Only tables of the layout the per-radix function assumes (every table this build writes).
      const r = parseRadixTable(t.dataType, t.rawData);
      const best = r && radixLayout(r.k);
      return best && best.wordBytes === r.wordBytes && best.digits === r.digits ? r.k : undefined;
    },
    specializedRadixDecoder,
  );
}

/**
 * Replaces the calls of generic functions (`isGeneric(opType)`) by `specialize(opType, key)` when
 * the tables they take last all have the same `keyOf` (defined).
 */
function specializeCalls(model: OnnxModel, isGeneric: (opType: string) => boolean, keyOf: (table: TensorProto) => number | undefined, specialize: (opType: string, key: number) => FunctionProto | undefined): void {
  const g = model.graph;
  const calls = g.node.filter((n) => n.domain === DECODE_DOMAIN && isGeneric(n.opType));
  if (calls.length === 0) return;
  const tables = new Map(g.initializer.map((t) => [t.name, t] as const));
  const keys = new Set(calls.map((n) => {
    const t = tables.get(n.input[n.input.length - 1]!);
    return t && keyOf(t);
  }));
  if (keys.size !== 1) return;
  const key = [...keys][0];
  if (key === undefined) return;
  const dropped = new Set<string>();
  const generic = new Set(calls.map((n) => n.opType));
  for (const n of calls) {
    const f = specialize(n.opType, key)!;
    dropped.add(n.input.pop()!);
    n.opType = f.name;
    addFunction(model, f);
  }
  const stillRead = new Set(g.node.flatMap((n) => n.input));
  for (const name of dropped) if (!stillRead.has(name)) model.removeInitializer(name);
  model.proto.functions = model.proto.functions.filter((f) => f.domain !== DECODE_DOMAIN || !generic.has(f.name));
}

/** Integer payloads that decoders of different layers may share (shapes, offsets, shifts, radix tables). */
const SHARED_TYPES: ReadonlySet<number> = new Set([DataType.UINT8, DataType.UINT16, DataType.UINT32, DataType.INT32, DataType.INT64]);

/**
 * Decoders of different layers create equal small integer constants (shapes, offsets); keep
 * one of each and point every reader at it. Only constants we created (`<weight>::<n>`) are merged.
 */
function shareDecodeConstants(model: OnnxModel, isPayload: (name: string) => boolean): void {
  const g = model.graph;
  const first = new Map<string, string>();
  const rename = new Map<string, string>();
  g.initializer = g.initializer.filter((t) => {
    if (!SHARED_TYPES.has(t.dataType) || !isPayload(t.name) || t.rawData.length > 512) return true;
    const key = `${t.dataType}|${t.dims.join(',')}|${Buffer.from(t.rawData).toString('base64')}`;
    const keep = first.get(key);
    if (keep === undefined) {
      first.set(key, t.name);
      return true;
    }
    rename.set(t.name, keep);
    return false;
  });
  if (rename.size === 0) return;
  for (const n of g.node) n.input = n.input.map((i) => rename.get(i) ?? i);
}

/** Replaces a weight by a decode graph that outputs the same name. */
function replaceWeight(model: OnnxModel, w: WeightInfo, g: DecodeGraph): void {
  if (w.graph !== 'main' && w.source === 'initializer') {
    // Subgraph weights keep their place (only dense graphs reach here).
    model.replaceInitializer(w.name, g.initializers[0]!);
    return;
  }
  const graph = model.graph;
  if (w.source === 'constant') {
    const i = graph.node.findIndex((n) => n.opType === 'Constant' && n.output[0] === w.name);
    graph.node.splice(i, 1);
  } else {
    model.removeInitializer(w.name);
    const gi = graph.input.findIndex((v) => v.name === w.name);
    if (gi >= 0) graph.input.splice(gi, 1);
  }
  for (const t of g.initializers) graph.initializer.push(t);
  if (g.nodes.length) model.insertNodes(g.nodes);
  for (const f of g.functions) addFunction(model, f);
}

/**
 * Adds a decoding function to the model once, with the model's default opset version, the
 * `onnx_compress` opset import, and IR version ≥ 8 (model-local functions).
 */
export function addFunction(model: OnnxModel, f: FunctionProto): void {
  const p = model.proto;
  if (p.functions.some((x) => x.domain === f.domain && x.name === f.name)) return;
  const own = clone(FunctionProtoSchema, f);
  own.opsetImport = [create(OperatorSetIdProtoSchema, { domain: '', version: BigInt(Math.max(MIN_DECODE_OPSET, model.opsetVersion)) })];
  p.functions.push(own);
  if (!p.opsetImport.some((o) => o.domain === DECODE_DOMAIN)) model.setOpset(DECODE_DOMAIN, 1);
  if (Number(p.irVersion) < MIN_FUNCTION_IR) p.irVersion = BigInt(MIN_FUNCTION_IR);
}

/**
 * Writes reconstructions into the model as plain float32 initializers (the "simulated" model whose
 * outputs the encoded model must match).
 */
export function setReconstructions(model: OnnxModel, reconstructions: ReadonlyMap<string, Float32Array>): void {
  const weights = new Map(listWeights(model).map((w) => [w.name, w]));
  for (const [name, data] of reconstructions) {
    const w = weights.get(name);
    if (!w) fail('E_BAD_ARGUMENT', `${model.source}: no weight named '${name}'.`);
    replaceWeight(model, w, denseDecoder(name, w.shape, data));
  }
}
