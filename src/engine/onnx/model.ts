/**
 * `OnnxModel`: a decoded model plus the external tensor bytes that were resolved when it was loaded,
 * with the accessors the rest of the engine uses to read and replace tensors.
 */
import { create } from '@bufbuild/protobuf';
import { CompressError, fail } from '../errors';
import { dataTypeName, isFloatType } from './dtype';
import { OperatorSetIdProtoSchema, type GraphProto, type ModelProto, type NodeProto, type TensorProto } from './proto';
import {
  checkTensorData,
  dimsOf,
  type ExternalBytes,
  isExternal,
  makeFloatTensor,
  storedByteLength,
  tensorToFloat32,
} from './tensor';
import { forEachGraph, forEachTensor, type GraphScope } from './walk';
import { DeferredExternalBytes, isDeferred } from './externalData';

/** A decoded ONNX model with its external data. */
export class OnnxModel {
  /**
   * @param proto the decoded model (owned by this object; edits go through it).
   * @param source path or name used in messages.
   * @param external bytes of tensors stored as external data.
   * @param externalFiles absolute paths of the external data files that were read.
   */
  constructor(
    readonly proto: ModelProto,
    readonly source: string,
    readonly external: ExternalBytes = new WeakMap(),
    readonly externalFiles: readonly string[] = [],
  ) {}

  /** The main graph. */
  get graph(): GraphProto {
    return this.proto.graph!;
  }

  /** Opset version per domain (`""` is the default ONNX domain, also reported as `ai.onnx`). */
  get opsets(): Record<string, number> {
    const out: Record<string, number> = {};
    for (const o of this.proto.opsetImport) out[o.domain || 'ai.onnx'] = Number(o.version);
    return out;
  }

  /** Version of the default ONNX opset (0 if absent). */
  get opsetVersion(): number {
    return this.opsets['ai.onnx'] ?? 0;
  }

  /**
   * Checks the graph structure ({@link checkGraph}) and every tensor's payload size against its shape.
   * @throws E_MODEL_INVALID for a broken graph or data type; E_TENSOR_DATA naming the first bad
   * tensor and the file.
   */
  validate(): void {
    checkGraph(this.graph, this.source);
    forEachTensor(this.proto, (t, where) => {
      // Deferred tensors had their size checked when loaded; reading them here would read the model.
      if (isExternal(t) && (!this.external.has(t) || isDeferred(this.external, t))) return;
      try {
        checkTensorData(t, this.external, where);
      } catch (e) {
        if (e instanceof CompressError) fail(e.code, `${this.source}: ${e.message}`, e);
        throw e;
      }
    });
  }

  /** Finds an initializer by name in the main graph, then in subgraphs. */
  findInitializer(name: string): { tensor: TensorProto; scope: GraphScope; index: number } | undefined {
    let found: { tensor: TensorProto; scope: GraphScope; index: number } | undefined;
    forEachGraph(this.proto, (scope) => {
      if (found) return;
      const index = scope.graph.initializer.findIndex((t) => t.name === name);
      if (index >= 0) found = { tensor: scope.graph.initializer[index]!, scope, index };
    });
    return found;
  }

  /** Like {@link findInitializer} but throws E_PLAN-style errors when absent. */
  initializer(name: string): TensorProto {
    const f = this.findInitializer(name);
    if (!f) fail('E_BAD_ARGUMENT', `${this.source}: no initializer named '${name}'.`);
    return f.tensor;
  }

  /** Decodes a float initializer to float32 (a view when stored as aligned float32). */
  float32(t: TensorProto): Float32Array {
    return tensorToFloat32(t, this.external);
  }

  /** Bytes the tensor's payload takes as stored (deferred external tensors are not read). */
  byteLength(t: TensorProto): number {
    const r = this.external instanceof DeferredExternalBytes ? this.external.range(t) : undefined;
    return r ? r.length : storedByteLength(t, this.external);
  }

  /** Shape of a tensor as numbers. */
  dims(t: TensorProto): number[] {
    return dimsOf(t);
  }

  /**
   * Replaces the initializer `name` (wherever it is) with `tensor`, keeping its position; the new
   * tensor takes the old name unless it has its own.
   */
  replaceInitializer(name: string, tensor: TensorProto): void {
    const f = this.findInitializer(name);
    if (!f) fail('E_BAD_ARGUMENT', `${this.source}: cannot replace '${name}': no such initializer.`);
    if (!tensor.name) tensor.name = name;
    f.scope.graph.initializer[f.index] = tensor;
  }

  /**
   * Replaces a float initializer's values, keeping its name, shape and (by default) its data type.
   * @throws E_BAD_ARGUMENT when the element count differs or the tensor is not float.
   */
  setFloat32(name: string, data: Float32Array, dataType?: number): void {
    const old = this.initializer(name);
    const dims = dimsOf(old);
    const count = dims.reduce((a, b) => a * b, 1);
    if (data.length !== count) {
      fail('E_BAD_ARGUMENT', `${this.source}: '${name}' has ${count} elements, ${data.length} given.`);
    }
    const dt = dataType ?? old.dataType;
    if (!isFloatType(dt)) fail('E_BAD_ARGUMENT', `${this.source}: '${name}' cannot be written as ${dataTypeName(dt)}.`);
    this.replaceInitializer(name, makeFloatTensor(name, data, dims, dt));
  }

  /** Adds an initializer to the main graph. @throws E_BAD_ARGUMENT when the name is taken. */
  addInitializer(tensor: TensorProto): void {
    if (this.findInitializer(tensor.name)) fail('E_BAD_ARGUMENT', `${this.source}: initializer '${tensor.name}' already exists.`);
    this.graph.initializer.push(tensor);
  }

  /** Removes an initializer from the graph that holds it. Returns whether it existed. */
  removeInitializer(name: string): boolean {
    const f = this.findInitializer(name);
    if (!f) return false;
    f.scope.graph.initializer.splice(f.index, 1);
    return true;
  }

  /**
   * Inserts nodes into the main graph before the first node that consumes any of their outputs
   * (so the graph stays topologically sorted), or at the start when none does.
   */
  insertNodes(nodes: NodeProto[]): void {
    const outs = new Set(nodes.flatMap((n) => n.output));
    const idx = this.graph.node.findIndex((n) => n.input.some((i) => outs.has(i)));
    this.graph.node.splice(idx < 0 ? 0 : idx, 0, ...nodes);
  }

  /** Sets the version of an opset domain (`""`/`ai.onnx` for the default domain), adding it if absent. */
  setOpset(domain: string, version: number): void {
    const d = domain === 'ai.onnx' ? '' : domain;
    const o = this.proto.opsetImport.find((x) => x.domain === d);
    if (o) o.version = BigInt(version);
    else this.proto.opsetImport.push(create(OperatorSetIdProtoSchema, { domain: d, version: BigInt(version) }));
  }

  /** A name not used by any value or initializer in the model, based on `base`. */
  uniqueName(base: string): string {
    const used = this.usedNames();
    if (!used.has(base)) return base;
    for (let i = 1; ; i++) if (!used.has(`${base}_${i}`)) return `${base}_${i}`;
  }

  private usedNames(): Set<string> {
    const used = new Set<string>();
    forEachGraph(this.proto, ({ graph }) => {
      for (const t of graph.initializer) used.add(t.name);
      for (const v of [...graph.input, ...graph.output, ...graph.valueInfo]) used.add(v.name);
      for (const n of graph.node) {
        for (const s of [...n.input, ...n.output]) used.add(s);
        if (n.name) used.add(n.name);
      }
    });
    return used;
  }
}

/**
 * Structural checks of the main graph that the engine relies on (onnx IR spec, "Graphs"): every node
 * has an op_type; every value is produced once (SSA); every node input is a graph input, an
 * initializer, another node's output or `''` (an omitted optional input); and the nodes form no
 * cycle. Subgraphs may read outer-scope values, so they are not checked here (onnxruntime does).
 * Node order is not checked: onnxruntime sorts a DAG itself.
 * @throws E_MODEL_INVALID naming the file, the node and the value.
 */
export function checkGraph(g: GraphProto, source: string): void {
  const bad = (why: string): never => fail('E_MODEL_INVALID', `${source}: ${why} The model is corrupt or was written by a broken exporter; re-export it (onnx.checker.check_model shows the same).`);
  const label = (n: NodeProto, i: number): string => `node ${i} '${n.name || n.opType || '?'}'`;
  const defined = new Set<string>();
  for (const v of g.input) defined.add(v.name);
  for (const t of g.initializer) defined.add(t.name);
  for (const s of g.sparseInitializer) if (s.values) defined.add(s.values.name);
  const producer = new Map<string, number>();
  g.node.forEach((n, i) => {
    if (!n.opType) bad(`${label(n, i)} has no op_type.`);
    for (const o of n.output) {
      if (o === '') continue;
      const prev = producer.get(o);
      if (prev !== undefined) bad(`value '${o}' is written by both ${label(g.node[prev]!, prev)} and ${label(n, i)}; every value must have one producer.`);
      producer.set(o, i);
    }
  });
  for (const [i, n] of g.node.entries()) {
    for (const name of n.input) {
      if (name !== '' && !defined.has(name) && !producer.has(name)) bad(`${label(n, i)} (${n.opType}) reads '${name}', which no node, graph input or initializer provides.`);
    }
  }
  // Kahn's algorithm on node -> node edges; nodes left over sit on (or behind) a cycle.
  const indegree = g.node.map((n) => n.input.filter((x) => x !== '' && producer.has(x) && !defined.has(x)).length);
  const consumers = new Map<number, number[]>();
  g.node.forEach((n, i) => {
    for (const x of n.input) {
      const p = x !== '' && !defined.has(x) ? producer.get(x) : undefined;
      if (p !== undefined) consumers.set(p, [...(consumers.get(p) ?? []), i]);
    }
  });
  const ready = indegree.flatMap((d, i) => (d === 0 ? [i] : []));
  let seen = 0;
  while (ready.length) {
    const i = ready.pop()!;
    seen++;
    for (const c of consumers.get(i) ?? []) if (--indegree[c]! === 0) ready.push(c);
  }
  if (seen < g.node.length) {
    const stuck = indegree.findIndex((d) => d > 0);
    bad(`the graph has a cycle: ${label(g.node[stuck]!, stuck)} (${g.node[stuck]!.opType}) and ${g.node.length - seen - 1} other node(s) wait on each other's outputs; ONNX graphs must be acyclic.`);
  }
}
