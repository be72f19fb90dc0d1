/**
 * Lossless narrowing of biases. Once the weights are compressed, float32 biases are most of what is
 * left (MobileNet fixture, share k=8: 16 biases, 5.4 kB of a 36 kB file). A bias whose values are
 * all float16 values (corrected biases are rounded to them, `eval/biasCorrection.ts`; any bias may
 * happen to be) is stored as FLOAT16 and cast back to float32 at load time, bit for bit; a bias on
 * a uint8 grid (`util/grid.ts`: corrected biases are rounded to one where that is safe) as a byte
 * per value. The model computes exactly what it computed before (onnxruntime folds the decode when
 * it creates the session). Its consumers are untouched: the decoded value keeps the initializer's
 * name (until compaction gives it a short one, as to every node output).
 *
 * Layouts, sized with the payload names compaction gives them (`onnx/compact.ts`):
 * - `split`: every float16 bias in ONE float16 initializer, one Cast and one Split whose outputs
 *   are the biases (the sizes an int64 initializer of varints at opset ≥ 13, else Split's `split`
 *   attribute). About 70 bytes once; each bias then saves 2 bytes per element and a few of its
 *   header. The MobileNet fixture (16 biases, 1,258 values): 35,406 → 32,453 bytes.
 * - `cast`: one float16 initializer and one Cast per bias, about 30 bytes more per bias than its
 *   float32 initializer: it pays from ~16 elements on, alone.
 * - `grid` ({@link gridLayout}): every bias on a grid as codes in ONE uint8 initializer, a float16
 *   scale and offset per bias, a decoder of 11 nodes (about 300 bytes) computing
 *   `codes · scale + offset` with each value's bias's scale and offset, then the Split; the float16
 *   layouts for the others. Opset ≥ 11 (Range). MobileNet, its corrected biases: 32,453 → 31,559.
 * `auto` keeps the smallest, and leaves the biases alone when none saves a byte.
 */
import { create, toBinary } from '@bufbuild/protobuf';
import { attr, DataType, isHalfExact, listWeights, makeFloatTensor, makeNode, makeTensor, type NodeProto, type OnnxModel, type TensorProto } from '../onnx';
import { NodeProtoSchema, TensorProtoSchema } from '../onnx/proto';
import { attrGraphs } from '../onnx/walk';
import { gridOf, type Grid } from '../util/grid';

/** Options of {@link narrowBiases}. */
export interface NarrowOptions {
  /**
   * `auto` (default): the smallest of `split`, `cast` (the latter for the biases where it pays) and
   * `grid`, or nothing when none is smaller than float32. `split` / `cast`: that layout for every
   * float16 bias. `grid`: the biases on a grid as uint8 codes, the other float16 ones as `split`.
   */
  layout: 'auto' | 'split' | 'cast' | 'grid';
  /** Biases with fewer elements stay float32 (default 4). */
  minElements: number;
}

/** What {@link narrowBiases} did. */
export interface NarrowResult {
  /** The biases now decoded by a node (outputs named like the initializers they replace). */
  names: string[];
  /** The float16 initializers and intermediate values it added (free to rename). */
  payloads: string[];
}

/** The lowest default-domain opset with Cast's integer `to` attribute. */
const MIN_CAST_OPSET = 6;
/**
 * From this opset on, Split takes its sizes as an input instead of the `split` attribute (and
 * Constant has `value_ints`, since opset 12).
 */
const SPLIT_INPUT_OPSET = 13;
/** From this opset on, a Split without sizes needs its `num_outputs` attribute. */
const SPLIT_OUTPUTS_OPSET = 18;
/** The lowest default-domain opset with Range (the grid decoder). */
const MIN_GRID_OPSET = 11;

interface Bias {
  name: string;
  values: Float32Array;
  /** How many node inputs read it. */
  readers: number;
  /** Every value a float16 value. */
  half: boolean;
  /** The uint8 grid its values are on ({@link gridOf}), if any. */
  grid: Grid | undefined;
}

/**
 * The main-graph float32 initializers that can be stored losslessly in fewer bytes: 1-D, at least
 * `minElements` values, read only as biases (Conv/Gemm/ConvTranspose input 2, a 1-D Add operand:
 * `inputRole`), not a graph input or output, not `excluded` (e.g. compressed weights' payloads),
 * every value a float16 value or every value on a uint8 grid.
 */
function narrowable(model: OnnxModel, excluded: (name: string) => boolean, minElements: number): Bias[] {
  const g = model.graph;
  const io = new Set([...g.input, ...g.output].map((v) => v.name));
  const readers = (name: string): number => g.node.reduce((s, n) => s + n.input.filter((x) => x === name).length, 0);
  return listWeights(model)
    .filter((w) => w.graph === 'main' && w.source === 'initializer' && w.dataType === DataType.FLOAT && w.shape.length === 1 && w.params >= minElements)
    .filter((w) => w.consumers.length > 0 && w.consumers.every((c) => c.role === 'bias') && !io.has(w.name) && !excluded(w.name))
    .map((w) => {
      const values = model.float32(w.tensor);
      return { name: w.name, values, readers: readers(w.name), half: isHalfExact(values), grid: gridOf(values) };
    })
    .filter((b) => b.half || b.grid);
}

/** The names of the biases {@link narrowBiases} can store as float16 bit for bit. */
export function narrowableBiases(model: OnnxModel, excluded: (name: string) => boolean = () => false, minElements = 4): string[] {
  return narrowable(model, excluded, minElements).filter((b) => b.half).map((b) => b.name);
}

/** Initializers and nodes of a layout; `fresh(i)` names its i-th new value. */
interface Pieces {
  initializers: TensorProto[];
  nodes: NodeProto[];
}

function castLayout(biases: readonly Bias[], fresh: (i: number) => string): Pieces {
  const out: Pieces = { initializers: [], nodes: [] };
  biases.forEach((b, i) => {
    out.initializers.push(makeFloatTensor(fresh(i), b.values, [b.values.length], DataType.FLOAT16));
    out.nodes.push(makeNode('Cast', [fresh(i)], [b.name], '', [attr.int('to', DataType.FLOAT)]));
  });
  return out;
}

/**
 * Nodes (and, from opset 13, the int64 tensor of sizes, named `sizes`) cutting the 1-D `input` into
 * `biases`: Split's outputs are named as the biases.
 */
function splitInto(input: string, biases: readonly Bias[], sizes: string, opset: number): Pieces {
  const lengths = biases.map((b) => b.values.length);
  const names = biases.map((b) => b.name);
  if (opset < SPLIT_INPUT_OPSET) return { initializers: [], nodes: [makeNode('Split', [input], names, '', [attr.ints('split', lengths)])] };
  return { initializers: [int64Tensor(sizes, lengths, [lengths.length])], nodes: [makeNode('Split', [input, sizes], names)] };
}

/** `parts` one after the other, in a new `all` (of their total length). */
function concatenated<T extends { set(a: ArrayLike<number>, at: number): void }>(parts: readonly ArrayLike<number>[], all: T): T {
  let at = 0;
  for (const p of parts) {
    all.set(p, at);
    at += p.length;
  }
  return all;
}
/** Total length of `parts`. */
const total = (parts: readonly ArrayLike<number>[]): number => parts.reduce((s, p) => s + p.length, 0);

function splitLayout(biases: readonly Bias[], fresh: (i: number) => string, opset: number): Pieces {
  const parts = biases.map((b) => b.values);
  const all = concatenated(parts, new Float32Array(total(parts)));
  const split = splitInto(fresh(1), biases, fresh(2), opset);
  return { initializers: [makeFloatTensor(fresh(0), all, [all.length], DataType.FLOAT16), ...split.initializers], nodes: [makeNode('Cast', [fresh(0)], [fresh(1)], '', [attr.int('to', DataType.FLOAT)]), ...split.nodes] };
}

/** An int64 tensor with its values as varints (`int64_data`: small values take a byte or two, not 8). */
function int64Tensor(name: string, values: readonly number[], dims: readonly number[]): TensorProto {
  return create(TensorProtoSchema, { name, dataType: DataType.INT64, dims: dims.map(BigInt), int64Data: values.map(BigInt) });
}

/** The names {@link gridLayout} gives its values, in `fresh` order. */
const GRID_VALUES = ['codes', 'affine', 'ends', 'one', 'limit', 'positions', 'gaps', 'signs', 'layer', 'affine_f', 'scales', 'offsets', 'scale', 'offset', 'codes_f', 'scaled', 'values', 'sizes'] as const;

/**
 * The biases on a grid as one uint8 tensor of codes and one float16 tensor of their scales then
 * offsets, decoded by {@link gridValue}: value i of the pack belongs to bias `layer[i]`, the first
 * whose end (+1) is above position i + 1 (ArgMax of the signs of `ends − positions`: the first
 * maximum); its scale and offset are gathered by it, the codes cast to float, multiplied, added,
 * and split into the biases.
 */
function gridLayout(biases: readonly Bias[], fresh: (i: number) => string, opset: number): Pieces {
  const id = (v: (typeof GRID_VALUES)[number]): string => fresh(GRID_VALUES.indexOf(v));
  const grids = biases.map((b) => b.grid!);
  const parts = grids.map((g) => g.codes);
  const codes = concatenated(parts, new Uint8Array(total(parts)));
  const ends: number[] = [];
  for (const g of grids) ends.push((ends[ends.length - 1] ?? 0) + g.codes.length);
  const affine = Float32Array.from([...grids.map((g) => g.scale), ...grids.map((g) => g.offset)]);
  const toFloat = (from: string, to: string): NodeProto => makeNode('Cast', [from], [to], '', [attr.int('to', DataType.FLOAT)]);
  const split = splitInto(id('values'), biases, id('sizes'), opset);
  const initializers = [
    makeTensor({ name: id('codes'), dataType: DataType.UINT8, dims: [codes.length], raw: codes }),
    makeFloatTensor(id('affine'), affine, [affine.length], DataType.FLOAT16),
    int64Tensor(id('ends'), ends.map((e) => e + 1), [ends.length, 1]),
    int64Tensor(id('one'), [1], []),
    int64Tensor(id('limit'), [codes.length + 1], []),
    ...split.initializers,
  ];
  const nodes = [
    makeNode('Range', [id('one'), id('limit'), id('one')], [id('positions')]),
    makeNode('Sub', [id('ends'), id('positions')], [id('gaps')]),
    makeNode('Sign', [id('gaps')], [id('signs')]),
    makeNode('ArgMax', [id('signs')], [id('layer')], '', [attr.int('keepdims', 0)]),
    toFloat(id('affine'), id('affine_f')),
    // two equal halves (from opset 18, Split says how many)
    makeNode('Split', [id('affine_f')], [id('scales'), id('offsets')], '', opset >= SPLIT_OUTPUTS_OPSET ? [attr.int('num_outputs', 2)] : []),
    makeNode('Gather', [id('scales'), id('layer')], [id('scale')]),
    makeNode('Gather', [id('offsets'), id('layer')], [id('offset')]),
    toFloat(id('codes'), id('codes_f')),
    makeNode('Mul', [id('codes_f'), id('scale')], [id('scaled')]),
    makeNode('Add', [id('scaled'), id('offset')], [id('values')]),
    ...split.nodes,
  ];
  return { initializers, nodes };
}

/** Serialized bytes of `p` in a graph (each message plus its ~3-byte field header). */
function bytesOf(p: Pieces): number {
  const tensors = p.initializers.reduce((s, t) => s + toBinary(TensorProtoSchema, t).length + 3, 0);
  return tensors + p.nodes.reduce((s, n) => s + toBinary(NodeProtoSchema, n).length + 3, 0);
}

/**
 * Whether biases of these lengths, all on uint8 grids, take fewer bytes packed as uint8 codes than
 * as one float16 pack (the grid decoder is about 300 bytes; the MobileNet fixture's 1,258 values
 * save ~900 bytes, LeNet-5's 236 lose ~40). Short names, as compaction gives them.
 */
export function gridPays(lengths: readonly number[], opset: number): boolean {
  if (opset < MIN_GRID_OPSET || lengths.length === 0) return false;
  const short = (): string => 'ab';
  const biases = lengths.map((n): Bias => ({ name: short(), values: new Float32Array(n), readers: 1, half: true, grid: { scale: 0, offset: 0, codes: new Uint8Array(n) } }));
  return bytesOf(gridLayout(biases, short, opset)) < bytesOf(splitLayout(biases, short, opset));
}

/** The smaller float16 layout of `biases` (`cast` only for those where it pays) and the bytes it saves. */
interface HalfPlan {
  layout: 'split' | 'cast';
  biases: Bias[];
  saved: number;
}

/**
 * Stores the biases of `model` that are float16 values ({@link narrowableBiases}) or on a uint8
 * grid in fewer bytes, decoded at load time (see the module comment). Models with subgraphs,
 * training info or a default opset below 6 are left alone (a subgraph may read a bias by name in a
 * way the listing does not see).
 */
export function narrowBiases(model: OnnxModel, excluded: (name: string) => boolean = () => false, options: Partial<NarrowOptions> = {}): NarrowResult {
  const o: NarrowOptions = { layout: 'auto', minElements: 4, ...options };
  const none: NarrowResult = { names: [], payloads: [] };
  const opset = model.opsetVersion;
  if (opset < MIN_CAST_OPSET || model.proto.trainingInfo.length > 0) return none;
  if (model.graph.node.some((n) => n.attribute.some((a) => attrGraphs(a).length > 0))) return none;
  const all = narrowable(model, excluded, o.minElements);
  const half = all.filter((b) => b.half);
  const onGrid = opset >= MIN_GRID_OPSET ? all.filter((b) => b.grid) : [];
  const offGrid = half.filter((b) => !b.grid || opset < MIN_GRID_OPSET);
  // Sized with the short names compaction will give the new values and the decoded biases (one
  // or two letters: `ab`); a bias left as float32 keeps its name, in its readers too.
  const short = (): string => 'ab';
  const renamed = (of: readonly Bias[]): Bias[] => of.map((b) => ({ ...b, name: short() }));
  const asFloat = (b: Bias): number => bytesOf({ initializers: [makeFloatTensor(b.name, b.values, [b.values.length])], nodes: [] }) + (b.name.length - short().length) * b.readers;
  const saved = (l: Pieces, of: readonly Bias[]): number => of.reduce((s, b) => s + asFloat(b), 0) - bytesOf(l);
  const bestHalf = (of: readonly Bias[]): HalfPlan => {
    const paying = of.filter((b) => bytesOf(castLayout(renamed([b]), short)) < asFloat(b));
    const bySplit = of.length > 0 ? saved(splitLayout(renamed(of), short, opset), of) : 0;
    const byCast = saved(castLayout(renamed(paying), short), paying);
    const best: HalfPlan = bySplit >= byCast ? { layout: 'split', biases: [...of], saved: bySplit } : { layout: 'cast', biases: paying, saved: byCast };
    return best.saved > 0 ? best : { layout: 'split', biases: [], saved: 0 };
  };
  let grid: Bias[] = [];
  let rest: HalfPlan;
  if (o.layout === 'split' || o.layout === 'cast') {
    rest = { layout: o.layout, biases: half, saved: 0 };
  } else if (o.layout === 'grid') {
    [grid, rest] = [onGrid, { layout: 'split', biases: offGrid, saved: 0 }];
  } else {
    const halfOnly = bestHalf(half);
    const withGrid = bestHalf(offGrid);
    const byGrid = onGrid.length > 0 ? saved(gridLayout(renamed(onGrid), short, opset), onGrid) + withGrid.saved : 0;
    [grid, rest] = byGrid > halfOnly.saved ? [onGrid, withGrid] : [[], halfOnly];
  }
  if (grid.length + rest.biases.length === 0) return none;
  const payloads: string[] = [];
  const namer = (base: (i: number) => string): ((i: number) => string) => {
    const fresh = new Map<number, string>();
    return (i) => {
      let n = fresh.get(i);
      if (n === undefined) {
        fresh.set(i, (n = model.uniqueName(base(i))));
        payloads.push(n);
      }
      return n;
    };
  };
  const pieces: Pieces[] = [];
  if (grid.length > 0) pieces.push(gridLayout(grid, namer((i) => `biases::u8::${GRID_VALUES[i]}`), opset));
  const hb = rest.biases;
  if (hb.length > 0) {
    pieces.push(rest.layout === 'cast' ? castLayout(hb, namer((i) => `${hb[i]!.name}::fp16`)) : splitLayout(hb, namer((i) => `biases::${['fp16', 'float', 'sizes'][i]}`), opset));
  }
  const names = [...grid, ...hb].map((b) => b.name);
  for (const n of names) model.removeInitializer(n);
  for (const p of pieces) {
    for (const t of p.initializers) model.graph.initializer.push(t);
    model.insertNodes(p.nodes);
  }
  return { names, payloads };
}
