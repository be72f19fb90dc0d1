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
  type ValueInfoProto,
} from '../onnx/proto.js';
import { dimsOf, tensorToFloat32 } from '../onnx/tensor.js';

const FLOAT = 1;

/** An original weight: its dims and float32 values. */
export interface WeightTensor {
  readonly dims: readonly number[];
  readonly data: Float32Array;
}

function tensorValueInfo(name: string, elemType: number, dims?: readonly (number | string)[]): ValueInfoProto {
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

function takeWeights(model: ModelProto, names: readonly string[]): Map<string, WeightTensor> {
  const g = model.graph;
  if (!g) fail('E_MODEL_INVALID', 'The model has no graph.');
  const byName = new Map(g.initializer.map((t) => [t.name, t]));
  const out = new Map<string, WeightTensor>();
  for (const n of names) {
    const t = byName.get(n);
    if (!t) fail('E_BAD_ARGUMENT', `'${n}' is not an initializer of the model (variable weights must be initializers).`);
    if (t.dataType !== FLOAT) fail('E_BAD_ARGUMENT', `Weight '${n}' is not float32 (data type ${t.dataType}); only float32 weights can be varied.`);
    out.set(n, { dims: dimsOf(t), data: tensorToFloat32(t).slice() });
  }
  return out;
}

function makeWeightInputs(g: GraphProto, weights: Map<string, WeightTensor>): void {
  g.initializer = g.initializer.filter((t) => !weights.has(t.name));
  // IR < 4 models also list initializers as graph inputs; keep one declaration.
  g.input = g.input.filter((i) => !weights.has(i.name));
  for (const [n, w] of weights) g.input.push(tensorValueInfo(n, FLOAT, w.dims));
}

/**
 * Returns a model where the initializers `names` are graph inputs (float32, their own shapes), plus
 * their original values. Other initializers stay constant, so ORT still folds and pre-packs them.
 * @throws E_BAD_ARGUMENT when a name is not a float32 initializer.
 */
export function weightsAsInputs(
  modelBytes: Uint8Array,
  names: readonly string[],
): { bytes: Uint8Array; weights: Map<string, WeightTensor> } {
  const model = decodeModel(modelBytes);
  const weights = takeWeights(model, names);
  makeWeightInputs(model.graph!, weights);
  return { bytes: encodeModel(model), weights };
}

/** Result of {@link splitAtWeights}. */
export interface SplitModels {
  /** Original inputs → frontier tensors (those of them not already graph inputs). */
  readonly prefix: Uint8Array;
  /** Frontier tensors + variable weights → the graph outputs that depend on the weights. */
  readonly suffix: Uint8Array;
  /** The same suffix with the variable weights kept as initializers (for {@link substituteWeights}). */
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
  readonly weights: Map<string, WeightTensor>;
}

/**
 * Splits the graph at the first use of the variable weights (see the module comment). Returns
 * undefined when it cannot split safely: control-flow nodes (subgraphs may read outer-scope values)
 * or no node uses the weights. `elemTypes` gives the element type of frontier tensors missing
 * from `value_info` (ORT type names → ONNX codes are resolved by the caller; default float32).
 */
export function splitAtWeights(
  modelBytes: Uint8Array,
  names: readonly string[],
  elemTypes: ReadonlyMap<string, number> = new Map(),
): SplitModels | undefined {
  const model = decodeModel(modelBytes);
  const g = model.graph!;
  const weights = takeWeights(model, names);
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
  const frontier: string[] = [];
  for (const n of affected) {
    for (const i of n.input) {
      if (i && !tainted.has(i) && !initNames.has(i) && !frontier.includes(i)) frontier.push(i);
    }
  }
  const outputs = g.output.filter((o) => tainted.has(o.name));
  if (outputs.length === 0) return undefined;
  const typeOf = new Map<string, ValueInfoProto>();
  for (const v of [...g.valueInfo, ...g.input, ...g.output]) typeOf.set(v.name, v);
  const vi = (name: string): ValueInfoProto =>
    typeOf.get(name) ?? tensorValueInfo(name, elemTypes.get(name) ?? FLOAT);

  // Prefix: the unaffected nodes the frontier needs (walk back from the frontier).
  const producer = new Map<string, NodeProto>();
  for (const n of unaffected) for (const o of n.output) producer.set(o, n);
  const needed = new Set<NodeProto>();
  const stack = frontier.filter((f) => !graphInputs.has(f));
  while (stack.length > 0) {
    const t = stack.pop()!;
    const p = producer.get(t);
    if (!p || needed.has(p)) continue;
    needed.add(p);
    for (const i of p.input) if (i) stack.push(i);
  }
  const prefixNodes = unaffected.filter((n) => needed.has(n));
  const used = (nodes: NodeProto[]) => new Set(nodes.flatMap((n) => n.input));
  const prefixUsed = used(prefixNodes);
  const prefixOut = frontier.filter((f) => !graphInputs.has(f));
  const prefix = create(ModelProtoSchema, {
    ...model,
    graph: create(GraphProtoSchema, {
      name: `${g.name}_prefix`,
      node: prefixNodes,
      initializer: g.initializer.filter((t) => prefixUsed.has(t.name)),
      input: g.input.filter((i) => !initNames.has(i.name)),
      output: prefixOut.map(vi),
      valueInfo: g.valueInfo,
    }),
  });
  const suffixUsed = used(affected);
  const suffixGraph = create(GraphProtoSchema, {
    name: `${g.name}_suffix`,
    node: affected,
    initializer: g.initializer.filter((t) => suffixUsed.has(t.name) && !weights.has(t.name)),
    input: frontier.map(vi),
    output: outputs,
    valueInfo: g.valueInfo.filter((v) => tainted.has(v.name)),
  });
  const baked = create(ModelProtoSchema, {
    ...model,
    graph: create(GraphProtoSchema, { ...suffixGraph, initializer: g.initializer.filter((t) => suffixUsed.has(t.name)) }),
  });
  const suffixBaked = encodeModel(baked);
  for (const [n, w] of weights) suffixGraph.input.push(tensorValueInfo(n, FLOAT, w.dims));
  const suffix = create(ModelProtoSchema, { ...model, graph: suffixGraph });
  return {
    prefix: prefixOut.length > 0 ? encodeModel(prefix) : new Uint8Array(0),
    suffix: encodeModel(suffix),
    suffixBaked,
    frontier,
    frontierFromInputs: frontier.filter((f) => graphInputs.has(f)),
    outputs: outputs.map((o) => o.name),
    suffixNodes: affected.length,
    totalNodes: g.node.length,
    weights,
  };
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
