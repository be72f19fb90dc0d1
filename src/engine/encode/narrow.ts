/**
 * Lossless narrowing of biases. Once the weights are compressed, float32 biases are most of what is
 * left (MobileNet fixture, share k=8: 16 biases, 5.4 kB of a 36 kB file). A bias whose values are
 * all float16 values (corrected biases are rounded to them, `eval/biasCorrection.ts`; any bias may
 * happen to be) is stored as FLOAT16 and cast back to float32 at load time, bit for bit, so the
 * model computes exactly what it computed before (onnxruntime folds the decode when it creates the
 * session). Its consumers are untouched: the decoded value keeps the initializer's name (until
 * compaction gives it a short one, as to every node output).
 *
 * Two layouts, sized with the payload names compaction gives them (`onnx/compact.ts`):
 * - `split`: every narrowed bias in ONE float16 initializer, one Cast and one Split whose outputs
 *   are the biases (the sizes an int64 initializer of varints at opset ≥ 13, else Split's `split`
 *   attribute). About 70 bytes once; each bias then saves 2 bytes per element and a few of its
 *   header. The MobileNet fixture (16 biases, 1,258 values): 35,406 → 32,453 bytes.
 * - `cast`: one float16 initializer and one Cast per bias, about 30 bytes more per bias than its
 *   float32 initializer: it pays from ~16 elements on, alone (MobileNet: 32,996 bytes).
 * `auto` keeps the smaller of the two, and leaves the biases alone when neither saves a byte.
 */
import { create, toBinary } from '@bufbuild/protobuf';
import { attr, DataType, isHalfExact, listWeights, makeFloatTensor, makeNode, type NodeProto, type OnnxModel, type TensorProto } from '../onnx';
import { NodeProtoSchema, TensorProtoSchema } from '../onnx/proto';
import { attrGraphs } from '../onnx/walk';

/** Options of {@link narrowBiases}. */
export interface NarrowOptions {
  /**
   * `auto` (default): the smaller of `split` and `cast` (the latter for the biases where it pays),
   * or nothing when neither is smaller than float32. `split` / `cast`: that layout for every bias.
   */
  layout: 'auto' | 'split' | 'cast';
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

/**
 * The main-graph float32 initializers that can be stored as float16 bit for bit: 1-D, at least
 * `minElements` values, read only as biases (Conv/Gemm/ConvTranspose input 2, a 1-D Add operand:
 * `inputRole`), not a graph input or output, not `excluded` (e.g. compressed weights' payloads),
 * every value a float16 value.
 */
export function narrowableBiases(model: OnnxModel, excluded: (name: string) => boolean = () => false, minElements = 4): string[] {
  const g = model.graph;
  const io = new Set([...g.input, ...g.output].map((v) => v.name));
  return listWeights(model)
    .filter((w) => w.graph === 'main' && w.source === 'initializer' && w.dataType === DataType.FLOAT && w.shape.length === 1 && w.params >= minElements)
    .filter((w) => w.consumers.length > 0 && w.consumers.every((c) => c.role === 'bias') && !io.has(w.name) && !excluded(w.name))
    .filter((w) => isHalfExact(model.float32(w.tensor)))
    .map((w) => w.name);
}

interface Bias {
  name: string;
  values: Float32Array;
  /** How many node inputs read it. */
  readers: number;
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

function splitLayout(biases: readonly Bias[], fresh: (i: number) => string, opset: number): Pieces {
  const all = new Float32Array(biases.reduce((s, b) => s + b.values.length, 0));
  let at = 0;
  for (const b of biases) {
    all.set(b.values, at);
    at += b.values.length;
  }
  const sizes = biases.map((b) => b.values.length);
  const names = biases.map((b) => b.name);
  const nodes = [makeNode('Cast', [fresh(0)], [fresh(1)], '', [attr.int('to', DataType.FLOAT)])];
  const initializers = [makeFloatTensor(fresh(0), all, [all.length], DataType.FLOAT16)];
  if (opset >= SPLIT_INPUT_OPSET) {
    initializers.push(int64Tensor(fresh(2), sizes, [sizes.length]));
    nodes.push(makeNode('Split', [fresh(1), fresh(2)], names));
  } else {
    nodes.push(makeNode('Split', [fresh(1)], names, '', [attr.ints('split', sizes)]));
  }
  return { initializers, nodes };
}

/** An int64 tensor with its values as varints (`int64_data`: small values take a byte or two, not 8). */
function int64Tensor(name: string, values: readonly number[], dims: readonly number[]): TensorProto {
  return create(TensorProtoSchema, { name, dataType: DataType.INT64, dims: dims.map(BigInt), int64Data: values.map(BigInt) });
}

/** Serialized bytes of `p` in a graph (each message plus its ~3-byte field header). */
function bytesOf(p: Pieces): number {
  const tensors = p.initializers.reduce((s, t) => s + toBinary(TensorProtoSchema, t).length + 3, 0);
  return tensors + p.nodes.reduce((s, n) => s + toBinary(NodeProtoSchema, n).length + 3, 0);
}

/**
 * Stores the {@link narrowableBiases} of `model` as float16 decoded at load time (see the module
 * comment). Models with subgraphs, training info or a default opset below 6 are left alone (a
 * subgraph may read a bias by name in a way the listing does not see).
 */
export function narrowBiases(model: OnnxModel, excluded: (name: string) => boolean = () => false, options: Partial<NarrowOptions> = {}): NarrowResult {
  const o: NarrowOptions = { layout: 'auto', minElements: 4, ...options };
  const none: NarrowResult = { names: [], payloads: [] };
  const opset = model.opsetVersion;
  if (opset < MIN_CAST_OPSET || model.proto.trainingInfo.length > 0) return none;
  if (model.graph.node.some((n) => n.attribute.some((a) => attrGraphs(a).length > 0))) return none;
  const readers = (name: string): number => model.graph.node.reduce((s, n) => s + n.input.filter((x) => x === name).length, 0);
  let biases: Bias[] = narrowableBiases(model, excluded, o.minElements).map((name) => ({ name, values: model.float32(model.initializer(name)), readers: readers(name) }));
  let layout = o.layout;
  if (layout === 'auto') {
    // Sized with the short names compaction will give the new values and the decoded biases
    // (one or two letters: `ab`); a bias left as float32 keeps its name, in its readers too.
    const short = (): string => 'ab';
    const renamed = (of: readonly Bias[]): Bias[] => of.map((b) => ({ ...b, name: short() }));
    const asFloat = (b: Bias): number => bytesOf({ initializers: [makeFloatTensor(b.name, b.values, [b.values.length])], nodes: [] }) + (b.name.length - short().length) * b.readers;
    const paying = biases.filter((b) => bytesOf(castLayout(renamed([b]), short)) < asFloat(b));
    const saved = (l: Pieces, of: readonly Bias[]): number => of.reduce((s, b) => s + asFloat(b), 0) - bytesOf(l);
    const bySplit = biases.length > 0 ? saved(splitLayout(renamed(biases), short, opset), biases) : 0;
    const byCast = saved(castLayout(renamed(paying), short), paying);
    if (Math.max(bySplit, byCast) <= 0) return none;
    [layout, biases] = bySplit >= byCast ? ['split', biases] : ['cast', paying];
  }
  if (biases.length === 0) return none;
  const fresh = new Map<number, string>();
  const base = layout === 'cast' ? (i: number): string => `${biases[i]!.name}::fp16` : (i: number): string => `biases::${['fp16', 'float', 'sizes'][i]}`;
  const nameOf = (i: number): string => {
    let n = fresh.get(i);
    if (n === undefined) fresh.set(i, (n = model.uniqueName(base(i))));
    return n;
  };
  const p = layout === 'cast' ? castLayout(biases, nameOf) : splitLayout(biases, nameOf, opset);
  for (const b of biases) model.removeInitializer(b.name);
  for (const t of p.initializers) model.graph.initializer.push(t);
  model.insertNodes(p.nodes);
  return { names: biases.map((b) => b.name), payloads: [...fresh.values()] };
}
