/**
 * Graph compaction: the bytes of a small model's graph that are not weights. Exporters name every
 * activation and node by its module path (`/features/features.1/features.1.0/Conv_output_0`), and
 * on a 300 kB model whose weights compress 8× those names and duplicated scalar constants are a
 * third of the file. Compaction keeps what a user or a runtime addresses — graph inputs, outputs,
 * initializers (and the values the caller names in `keep`) — and
 *
 * - renames the other values (activations, and initializers the caller picks, e.g. the payloads
 *   of compressed weights) to short unique names, one letter for the 53 most used,
 * - drops node names and doc strings (both optional in ONNX),
 * - merges `Constant` nodes with equal attributes into the first one, and makes those of a tensor
 *   initializers when that is smaller,
 * - drops attributes that equal their default in every opset (`strides` of ones, `group` 1, Gemm's
 *   `alpha` 1, …; {@link DEFAULTS}) and a Conv's `kernel_shape` when its weight's shape is known and
 *   says the same (the spec: "If not present, should be inferred from input W").
 *
 * Models with subgraphs (If/Loop/Scan) only lose node names and doc strings: their bodies may read
 * outer values by name. Functions are left as they are.
 */
import { clearField, clone, toBinary } from '@bufbuild/protobuf';
import { AttributeProto_AttributeType as AT, AttributeProtoSchema, NodeProtoSchema, TensorProtoSchema, type AttributeProto, type GraphProto, type NodeProto } from './proto';
import type { OnnxModel } from './model';

/** What {@link compactGraph} did. */
export interface CompactResult {
  renamed: number;
  mergedConstants: number;
  /** `Constant` nodes (of a tensor `value`) made initializers. */
  constantInitializers: number;
  /** Bytes of names and doc strings removed (approximate: UTF-16 lengths). */
  namesRemoved: number;
  /** Attributes dropped because they equal their default. */
  defaultAttributes: number;
}

/** An attribute value that means the same as leaving the attribute out. */
type Default = { int: number } | { float: number } | { every: number } | { str: string };

const NOTSET: Default = { str: 'NOTSET' };
const ONES: Default = { every: 1 };
const ZEROS: Default = { every: 0 };
const ZERO: Default = { int: 0 };
const ONE: Default = { int: 1 };

/**
 * Default-domain attributes whose default is the same in every opset that has them (checked
 * against the operator specs; `Softmax.axis`, whose default changed in opset 13, is not here).
 */
const DEFAULTS: Readonly<Record<string, Readonly<Record<string, Default>>>> = {
  Conv: { auto_pad: NOTSET, dilations: ONES, group: ONE, pads: ZEROS, strides: ONES },
  ConvTranspose: { auto_pad: NOTSET, dilations: ONES, group: ONE, pads: ZEROS, strides: ONES, output_padding: ZEROS },
  MaxPool: { auto_pad: NOTSET, ceil_mode: ZERO, dilations: ONES, pads: ZEROS, storage_order: ZERO, strides: ONES },
  AveragePool: { auto_pad: NOTSET, ceil_mode: ZERO, count_include_pad: ZERO, dilations: ONES, pads: ZEROS, strides: ONES },
  Gemm: { alpha: { float: 1 }, beta: { float: 1 }, transA: ZERO, transB: ZERO },
  Flatten: { axis: ONE },
  Gather: { axis: ZERO },
  BatchNormalization: { epsilon: { float: Math.fround(1e-5) }, momentum: { float: Math.fround(0.9) }, training_mode: ZERO },
  LeakyRelu: { alpha: { float: Math.fround(0.01) } },
};

function isDefault(a: AttributeProto, d: Default): boolean {
  if ('int' in d) return a.type === AT.INT && a.i === BigInt(d.int);
  if ('float' in d) return a.type === AT.FLOAT && a.f === d.float;
  if ('every' in d) return a.type === AT.INTS && a.ints.every((v) => v === BigInt(d.every));
  return a.type === AT.STRING && Buffer.from(a.s).toString('latin1') === d.str;
}

/** Drops `n`'s attributes that equal their defaults; returns how many. */
function dropDefaults(n: NodeProto, dimsOf: (name: string) => readonly number[] | undefined): number {
  if (n.domain !== '' && n.domain !== 'ai.onnx') return 0;
  const table = DEFAULTS[n.opType];
  if (!table) return 0;
  const before = n.attribute.length;
  n.attribute = n.attribute.filter((a) => {
    if (a.refAttrName !== '') return true;
    const d = table[a.name];
    if (d !== undefined && isDefault(a, d)) return false;
    if (n.opType === 'Conv' && a.name === 'kernel_shape' && a.type === AT.INTS) {
      const w = n.input[1] === undefined ? undefined : dimsOf(n.input[1]);
      if (w !== undefined && w.length === a.ints.length + 2 && a.ints.every((v, i) => Number(v) === w[i + 2])) return false;
    }
    return true;
  });
  return before - n.attribute.length;
}

const FIRST = 'abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ_';
const NEXT = `${FIRST}0123456789`;

/**
 * Short names that are not in `taken`, shortest first: `a`…`Z`, `_`, then `aa`, `ab`, … (C
 * identifiers: a letter or `_`, then letters, digits or `_`).
 */
function* shortNames(taken: ReadonlySet<string>): Generator<string> {
  for (let length = 1; ; length++) {
    const count = FIRST.length * NEXT.length ** (length - 1);
    for (let i = 0; i < count; i++) {
      let n = '';
      let x = i;
      for (let d = 1; d < length; d++, x = Math.floor(x / NEXT.length)) n = NEXT[x % NEXT.length]! + n;
      n = FIRST[x]! + n;
      if (!taken.has(n)) yield n;
    }
  }
}

function hasSubgraphs(g: GraphProto): boolean {
  return g.node.some((n) => n.attribute.some((a) => a.g !== undefined || a.graphs.length > 0));
}

/**
 * Compacts the main graph of `model` in place (see the module comment). `keep` names values that
 * must keep their names besides graph inputs, outputs and initializers (`applySpecs` keeps none:
 * decoded weights are node outputs like any other); `dims` gives the shapes of values that are not initializers (decoded weights), for `kernel_shape`.
 */
export function compactGraph(
  model: OnnxModel,
  keep: Iterable<string> = [],
  renameInitializer: (name: string) => boolean = () => false,
  dims: ReadonlyMap<string, readonly number[]> = new Map(),
): CompactResult {
  const g = model.graph;
  const result: CompactResult = { renamed: 0, mergedConstants: 0, constantInitializers: 0, namesRemoved: 0, defaultAttributes: 0 };
  const initDims = new Map(g.initializer.map((t) => [t.name, t.dims.map(Number)] as const));
  const dimsOf = (name: string): readonly number[] | undefined => initDims.get(name) ?? dims.get(name);
  for (const n of g.node) {
    result.namesRemoved += n.name.length + n.docString.length;
    // Cleared, not set to '': ONNX fields have explicit presence, so an empty string still costs
    // 2 bytes each (4 per node).
    clearField(n, NodeProtoSchema.field.name);
    clearField(n, NodeProtoSchema.field.docString);
    result.defaultAttributes += dropDefaults(n, dimsOf);
  }
  if (hasSubgraphs(g)) return result;

  const io = new Set<string>([...g.input.map((v) => v.name), ...g.output.map((v) => v.name)]);
  const movable = g.initializer.filter((t) => !io.has(t.name) && renameInitializer(t.name));
  const fixed = new Set<string>([...keep, ...io, ...g.initializer.map((t) => t.name)]);
  for (const t of movable) fixed.delete(t.name);
  for (const s of g.sparseInitializer) if (s.values) fixed.add(s.values.name);

  // Merge equal Constant nodes (same attributes, byte for byte) into the first.
  const alias = new Map<string, string>();
  const firstOf = new Map<string, string>();
  g.node = g.node.filter((n) => {
    if (n.opType !== 'Constant' || n.domain !== '' || n.output.length !== 1 || fixed.has(n.output[0]!)) return true;
    const key = Buffer.concat(n.attribute.map((a) => toBinary(AttributeProtoSchema, a))).toString('base64');
    const first = firstOf.get(key);
    if (first === undefined) {
      firstOf.set(key, n.output[0]!);
      return true;
    }
    alias.set(n.output[0]!, first);
    result.mergedConstants++;
    return false;
  });

  // A Constant of a tensor is smaller as an initializer, which has no op type, attribute name or
  // type (a float scalar: 37 → 13 bytes). Initializers that are not graph inputs need IR ≥ 4.
  if (model.proto.irVersion >= 4n) {
    g.node = g.node.filter((n) => {
      const t = n.attribute[0]?.t;
      if (n.opType !== 'Constant' || n.domain !== '' || n.output.length !== 1 || n.attribute.length !== 1 || n.attribute[0]!.name !== 'value' || !t || t.externalData.length > 0 || fixed.has(n.output[0]!)) return true;
      const init = clone(TensorProtoSchema, t);
      init.name = n.output[0]!;
      if (toBinary(TensorProtoSchema, init).length >= toBinary(NodeProtoSchema, n).length) return true;
      g.initializer.push(init);
      movable.push(init);
      result.constantInitializers++;
      return false;
    });
  }

  // Short names for every other node output (and the initializers `renameInitializer` picked),
  // the shortest to the most read values (each is also written once; ties: in graph order).
  const taken = new Set<string>(fixed);
  for (const n of g.node) for (const o of n.output) taken.add(o);
  for (const t of movable) taken.add(t.name);
  const names = shortNames(taken);
  const uses = new Map<string, number>();
  for (const n of g.node) {
    for (const v of n.input) {
      const a = alias.get(v) ?? v; // a merged constant's readers read the first
      uses.set(a, (uses.get(a) ?? 0) + 1);
    }
  }
  const values = [...movable.map((t) => t.name), ...g.node.flatMap((n) => n.output)];
  values.sort((a, b) => (uses.get(b) ?? 0) - (uses.get(a) ?? 0));
  for (const o of values) {
    if (o === '' || fixed.has(o) || alias.has(o)) continue;
    const s = names.next().value as string;
    if (s.length >= o.length) continue;
    alias.set(o, s);
    result.namesRemoved += o.length - s.length;
    result.renamed++;
  }
  if (alias.size === 0) return result;
  // Merged constants may point at a renamed first constant.
  const resolve = (x: string): string => {
    const a = alias.get(x);
    return a === undefined ? x : (alias.get(a) ?? a);
  };
  for (const n of g.node) {
    n.input = n.input.map(resolve);
    n.output = n.output.map(resolve);
  }
  for (const t of movable) t.name = resolve(t.name);
  for (const v of g.valueInfo) v.name = resolve(v.name);
  // A value_info of a merged constant now duplicates its first's: keep one.
  const seen = new Set<string>();
  g.valueInfo = g.valueInfo.filter((v) => (seen.has(v.name) ? false : (seen.add(v.name), true)));
  return result;
}
