/**
 * Graph rewrites for fast re-evaluation of weight variants (isolated here until the ONNX module
 * offers them):
 * - {@link weightsAsInputs}: the chosen float32 initializers become graph inputs, so one session
 *   evaluates any number of variants by feeding different tensors (no session creation).
 * - {@link splitAtWeights}: a prefix model computing every activation the variable weights' layers
 *   and their successors need ("frontier"), and a suffix model that recomputes only those layers
 *   from the frontier. The prefix runs once per dataset; each variant runs the suffix only.
 */
import { create } from '@bufbuild/protobuf';
import { fail } from '../errors.js';
import { decodeModel, encodeModel } from '../onnx/codec.js';
import {
  GraphProtoSchema,
  ModelProtoSchema,
  TensorShapeProto_DimensionSchema,
  TensorShapeProtoSchema,
  TypeProto_TensorSchema,
  TypeProtoSchema,
  ValueInfoProtoSchema,
  type GraphProto,
  type ModelProto,
  type NodeProto,
  type TensorProto,
  type ValueInfoProto,
} from '../onnx/proto.js';
import { dimsOf, isExternal, tensorToFloat32 } from '../onnx/tensor.js';
import { readExternalTensor } from '../onnx/io.js';

const FLOAT = 1;

/** An original weight: its dims and float32 values. */
export interface WeightTensor {
  readonly dims: readonly number[];
  readonly data: Float32Array;
}

/** A float or other tensor's `ValueInfoProto` (`dims` may be symbolic; absent: no shape). */
export function tensorValueInfo(name: string, elemType: number, dims?: readonly (number | string)[]): ValueInfoProto {
  const tensorType = create(TypeProto_TensorSchema, { elemType });
  if (dims) {
    tensorType.shape = create(TensorShapeProtoSchema, {
      dim: dims.map((d) =>
        create(TensorShapeProto_DimensionSchema, {
          value: typeof d === 'number' ? { case: 'dimValue', value: BigInt(d) } : { case: 'dimParam', value: d },
        }),
      ),
    });
  }
  return create(ValueInfoProtoSchema, { name, type: create(TypeProtoSchema, { value: { case: 'tensorType', value: tensorType } }) });
}

/** The initializers `names`, checked to be float32 (and readable when external). */
function weightProtos(model: ModelProto, names: readonly string[], externalDataFolder?: string): TensorProto[] {
  const g = model.graph;
  if (!g) fail('E_MODEL_INVALID', 'The model has no graph.');
  const byName = new Map(g.initializer.map((t) => [t.name, t]));
  return names.map((n) => {
    const t = byName.get(n);
    if (!t) fail('E_BAD_ARGUMENT', `'${n}' is not an initializer of the model (variable weights must be initializers).`);
    if (t.dataType !== FLOAT) fail('E_BAD_ARGUMENT', `Weight '${n}' is not float32 (data type ${t.dataType}); only float32 weights can be varied.`);
    if (isExternal(t) && externalDataFolder === undefined) fail('E_BAD_ARGUMENT', `Weight '${n}' is stored as external data; give the model's folder (externalDataFolder).`);
    return t;
  });
}

/** Fresh copies of the weights' values (external ones read from their file). */
function readWeights(tensors: readonly TensorProto[], externalDataFolder?: string): Map<string, WeightTensor> {
  const out = new Map<string, WeightTensor>();
  for (const t of tensors) {
    // Read from the data file (a fresh array); the tensor stays an external reference.
    if (isExternal(t)) out.set(t.name, { dims: dimsOf(t), data: tensorToFloat32(t, new WeakMap([[t, readExternalTensor(t, externalDataFolder!)]])) });
    else out.set(t.name, { dims: dimsOf(t), data: tensorToFloat32(t).slice() });
  }
  return out;
}

function takeWeights(model: ModelProto, names: readonly string[], externalDataFolder?: string): Map<string, WeightTensor> {
  return readWeights(weightProtos(model, names, externalDataFolder), externalDataFolder);
}

/** Op types of the nodes that read any of `names` directly (e.g. `Conv`, `Gemm`), sorted. */
function consumerOps(g: GraphProto, names: readonly string[]): string[] {
  const w = new Set(names);
  return [...new Set(g.node.filter((n) => n.input.some((i) => w.has(i))).map((n) => n.opType))].sort();
}

function makeWeightInputs(g: GraphProto, weights: Map<string, WeightTensor>): void {
  g.initializer = g.initializer.filter((t) => !weights.has(t.name));
  // IR < 4 models also list initializers as graph inputs; keep one declaration.
  g.input = g.input.filter((i) => !weights.has(i.name));
  for (const [n, w] of weights) g.input.push(tensorValueInfo(n, FLOAT, w.dims));
}

/**
 * Returns a model where the initializers `names` are graph inputs (float32, their own shapes), plus
 * their original values (external ones read from `externalDataFolder`, the model's folder). Other initializers stay constant, so ORT still folds and pre-packs them.
 * @throws E_BAD_ARGUMENT when a name is not a float32 initializer.
 */
export function weightsAsInputs(
  modelBytes: Uint8Array,
  names: readonly string[],
  externalDataFolder?: string,
): { bytes: Uint8Array; weights: Map<string, WeightTensor>; consumerOps: string[] } {
  const model = decodeModel(modelBytes);
  const weights = takeWeights(model, names, externalDataFolder);
  const ops = consumerOps(model.graph!, names);
  makeWeightInputs(model.graph!, weights);
  return { bytes: encodeModel(model), weights, consumerOps: ops };
}

/** Result of {@link splitAtWeights}. */
export interface SplitModels {
  /** Original inputs → frontier tensors (those of them not already graph inputs). */
  readonly prefix: Uint8Array;
  /** Frontier tensors + variable weights → the graph outputs that depend on the weights. */
  readonly suffix: Uint8Array;
  /** The same suffix with the variable weights kept as initializers (for {@link WeightSplicer}). */
  readonly suffixBaked: Uint8Array;
  /** Suffix inputs other than weights: names of cached activations (or original graph inputs). */
  readonly frontier: readonly string[];
  /** Frontier names that are original graph inputs (fed from the dataset, not from the prefix). */
  readonly frontierFromInputs: readonly string[];
  /** Graph outputs the suffix computes (the others do not depend on the weights). */
  readonly outputs: readonly string[];
  /** Number of nodes in the suffix and in the whole graph. */
  readonly suffixNodes: number;
  readonly totalNodes: number;
  /** Op types of the nodes that read the variable weights (sorted). */
  readonly consumerOps: readonly string[];
  readonly weights: Map<string, WeightTensor>;
}

/** Shapes of frontier tensors (batch dimension first, symbolic or fixed), by name. */
export type FrontierShapes = ReadonlyMap<string, readonly (number | string)[]>;

/**
 * A split found by {@link planSplit}: the frontier and counts at once (a graph walk), the models
 * encoded only when asked for (each call encodes anew; keep the result).
 */
export interface SplitPlan extends Omit<SplitModels, 'prefix' | 'suffix' | 'suffixBaked' | 'weights'> {
  /** Fresh copies of the variable weights' original values (read on each call). */
  readWeights(): Map<string, WeightTensor>;
  prefix(): Uint8Array;
  /**
   * The suffix models. `shapes` gives frontier tensors the shape their `value_info` lacks (e.g.
   * `['N', 16, 28, 28]`): onnxruntime's shape inference starts from the graph inputs, and without
   * it the NCHWc layout pass cannot fuse a residual Add into its convolution (it broadcasts through
   * Reshapes instead).
   */
  suffix(shapes?: FrontierShapes): Uint8Array;
  suffixBaked(shapes?: FrontierShapes): Uint8Array;
}

/**
 * Plans the split of {@link splitAtWeights} on a decoded model, which it does not modify (so one
 * decoded model serves every layer). Returns undefined when the graph cannot be split safely.
 */
export function planSplit(
  model: ModelProto,
  names: readonly string[],
  elemTypes: ReadonlyMap<string, number> = new Map(),
  externalDataFolder?: string,
): SplitPlan | undefined {
  const g = model.graph!;
  const protos = weightProtos(model, names, externalDataFolder);
  const weights = new Set(names);
  if (g.node.some((n) => n.attribute.some((a) => a.g !== undefined || a.graphs.length > 0))) return undefined;
  const tainted = new Set<string>(names);
  const affected: NodeProto[] = [];
  const unaffected: NodeProto[] = [];
  for (const n of g.node) {
    if (n.input.some((i) => tainted.has(i))) {
      affected.push(n);
      for (const o of n.output) if (o) tainted.add(o);
    } else unaffected.push(n);
  }
  if (affected.length === 0) return undefined;
  const initNames = new Set(g.initializer.map((t) => t.name));
  const graphInputs = new Set(g.input.map((i) => i.name));
  // Tensors that depend on the data; the others (Constant nodes and what is computed from them and
  // initializers, e.g. a Clip's bounds) are recomputed in the suffix instead of cached.
  const dynamic = new Set(g.input.filter((i) => !initNames.has(i.name)).map((i) => i.name));
  for (const n of g.node) if (n.input.some((i) => dynamic.has(i))) for (const o of n.output) if (o) dynamic.add(o);
  const producer = new Map<string, NodeProto>();
  for (const n of unaffected) for (const o of n.output) producer.set(o, n);
  const frontier: string[] = [];
  const constNodes = new Set<NodeProto>();
  const constStack: string[] = [];
  for (const n of affected) {
    for (const i of n.input) {
      if (!i || tainted.has(i) || initNames.has(i)) continue;
      if (dynamic.has(i)) {
        if (!frontier.includes(i)) frontier.push(i);
      } else constStack.push(i);
    }
  }
  while (constStack.length > 0) {
    const p = producer.get(constStack.pop()!);
    if (!p || constNodes.has(p)) continue;
    constNodes.add(p);
    for (const i of p.input) if (i) constStack.push(i);
  }
  // The suffix's nodes in graph order (a topological order).
  const inSuffix = new Set([...affected, ...constNodes]);
  const suffixNodes = g.node.filter((n) => inSuffix.has(n));
  const outputs = g.output.filter((o) => tainted.has(o.name));
  if (outputs.length === 0) return undefined;
  const typeOf = new Map<string, ValueInfoProto>();
  for (const v of [...g.valueInfo, ...g.input, ...g.output]) typeOf.set(v.name, v);
  const vi = (name: string): ValueInfoProto => typeOf.get(name) ?? tensorValueInfo(name, elemTypes.get(name) ?? FLOAT);
  const used = (nodes: NodeProto[]) => new Set(nodes.flatMap((n) => n.input));
  const prefixOut = frontier.filter((f) => !graphInputs.has(f));

  const prefix = (): Uint8Array => {
    if (prefixOut.length === 0) return new Uint8Array(0);
    // The unaffected nodes the frontier needs (walk back from the frontier).
    const needed = new Set<NodeProto>();
    const stack = [...prefixOut];
    while (stack.length > 0) {
      const t = stack.pop()!;
      const p = producer.get(t);
      if (!p || needed.has(p)) continue;
      needed.add(p);
      for (const i of p.input) if (i) stack.push(i);
    }
    const prefixNodes = unaffected.filter((n) => needed.has(n));
    const prefixUsed = used(prefixNodes);
    return encodeModel(
      create(ModelProtoSchema, {
        ...model,
        graph: create(GraphProtoSchema, {
          name: `${g.name}_prefix`,
          node: prefixNodes,
          initializer: g.initializer.filter((t) => prefixUsed.has(t.name)),
          input: g.input.filter((i) => !initNames.has(i.name)),
          output: prefixOut.map(vi),
          valueInfo: g.valueInfo,
        }),
      }),
    );
  };
  const suffixUsed = used(suffixNodes);
  const hasShape = (v: ValueInfoProto) => v.type?.value.case === 'tensorType' && v.type.value.value.shape !== undefined;
  const frontierVi = (name: string, shapes?: FrontierShapes): ValueInfoProto => {
    const v = vi(name);
    const dims = shapes?.get(name);
    if (!dims || hasShape(v)) return v;
    return tensorValueInfo(name, v.type?.value.case === 'tensorType' ? v.type.value.value.elemType : FLOAT, dims);
  };
  const suffixGraph = (baked: boolean, shapes?: FrontierShapes) =>
    create(GraphProtoSchema, {
      name: `${g.name}_suffix`,
      node: suffixNodes,
      initializer: g.initializer.filter((t) => suffixUsed.has(t.name) && (baked || !weights.has(t.name))),
      input: [...frontier.map((f) => frontierVi(f, shapes)), ...(baked ? [] : protos.map((t) => tensorValueInfo(t.name, FLOAT, dimsOf(t))))],
      output: outputs,
      valueInfo: g.valueInfo.filter((v) => tainted.has(v.name)),
    });
  return {
    prefix,
    suffix: (shapes) => encodeModel(create(ModelProtoSchema, { ...model, graph: suffixGraph(false, shapes) })),
    suffixBaked: (shapes) => encodeModel(create(ModelProtoSchema, { ...model, graph: suffixGraph(true, shapes) })),
    frontier,
    frontierFromInputs: frontier.filter((f) => graphInputs.has(f)),
    outputs: outputs.map((o) => o.name),
    suffixNodes: suffixNodes.length,
    totalNodes: g.node.length,
    consumerOps: consumerOps(g, names),
    readWeights: () => readWeights(protos, externalDataFolder),
  };
}

/**
 * Splits the graph at the first use of the variable weights (see the module comment). Returns
 * undefined when it cannot split safely: control-flow nodes (subgraphs may read outer-scope values)
 * or no node uses the weights. `elemTypes` gives the element type of frontier tensors missing
 * from `value_info` (ORT type names → ONNX codes are resolved by the caller; default float32).
 * External weights are read from `externalDataFolder` (the model's folder).
 */
export function splitAtWeights(
  modelBytes: Uint8Array,
  names: readonly string[],
  elemTypes: ReadonlyMap<string, number> = new Map(),
  externalDataFolder?: string,
): SplitModels | undefined {
  const p = planSplit(decodeModel(modelBytes), names, elemTypes, externalDataFolder);
  if (!p) return undefined;
  const { prefix, suffix, suffixBaked, readWeights: read, ...rest } = p;
  return { ...rest, prefix: prefix(), suffix: suffix(), suffixBaked: suffixBaked(), weights: read() };
}

/**
 * Returns model bytes with the named float32 initializers replaced by `values` (same element
 * count). The naive way to evaluate a variant: a new session on these bytes.
 */
export function substituteWeights(modelBytes: Uint8Array, values: ReadonlyMap<string, Float32Array>): Uint8Array {
  const model = decodeModel(modelBytes);
  const g = model.graph!;
  const byName = new Map(g.initializer.map((t) => [t.name, t]));
  for (const [n, v] of values) {
    const t = byName.get(n);
    if (!t || t.dataType !== FLOAT) fail('E_BAD_ARGUMENT', `'${n}' is not a float32 initializer of the model.`);
    const count = dimsOf(t).reduce((a, b) => a * b, 1);
    if (v.length !== count) fail('E_BAD_ARGUMENT', `Variant of '${n}' has ${v.length} values, the weight has ${count}.`);
    t.floatData = [];
    const raw = new Uint8Array(v.byteLength);
    raw.set(new Uint8Array(v.buffer, v.byteOffset, v.byteLength));
    t.rawData = raw;
    t.dataLocation = 0;
    t.externalData = [];
  }
  return encodeModel(model);
}

/**
 * Returns the model with the tensors `names` added as graph outputs (element type from
 * `value_info` when present, else float32), so one run yields them along with the real outputs.
 */
export function withExtraOutputs(modelBytes: Uint8Array, names: readonly string[]): Uint8Array {
  const model = decodeModel(modelBytes);
  const g = model.graph!;
  const have = new Set(g.output.map((o) => o.name));
  const typeOf = new Map([...g.valueInfo, ...g.input].map((v) => [v.name, v] as const));
  for (const n of names) if (!have.has(n)) g.output.push(typeOf.get(n) ?? tensorValueInfo(n, FLOAT));
  return encodeModel(model);
}

/**
 * Rewrites float32 weights inside encoded model bytes without re-encoding: the weights' stored bytes
 * (raw_data, or packed float_data — both little-endian IEEE-754) are located once, and a variant
 * is written over them in a private copy of the bytes (same length, so the protobuf stays valid).
 * Falls back to {@link substituteWeights} when a weight's bytes are not found exactly once.
 */
export class WeightSplicer {
  private readonly buf: Buffer;
  private readonly offsets = new Map<string, number>();
  private readonly fallback: boolean;

  constructor(
    private readonly modelBytes: Uint8Array,
    private readonly weights: ReadonlyMap<string, WeightTensor>,
  ) {
    this.buf = Buffer.from(modelBytes);
    let ok = true;
    for (const [n, w] of weights) {
      const needle = Buffer.from(w.data.buffer, w.data.byteOffset, w.data.byteLength);
      const at = needle.length >= 16 ? this.buf.indexOf(needle) : -1;
      if (at < 0 || this.buf.indexOf(needle, at + 1) >= 0) ok = false;
      else this.offsets.set(n, at);
    }
    this.fallback = !ok;
  }

  /** Model bytes with `variant` values (others original). The buffer is reused by the next call. */
  bytesFor(variant: ReadonlyMap<string, Float32Array>): Uint8Array {
    if (this.fallback) return substituteWeights(this.modelBytes, variant);
    for (const [n, w] of this.weights) {
      const v = variant.get(n) ?? w.data;
      if (v.length !== w.data.length) fail('E_BAD_ARGUMENT', `Variant of '${n}' has ${v.length} values, the weight has ${w.data.length}.`);
      this.buf.set(new Uint8Array(v.buffer, v.byteOffset, v.byteLength), this.offsets.get(n)!);
    }
    return this.buf;
  }
}
