/**
 * ONNX graph pieces that rebuild a float32 weight at load time from compact initializers. Each
 * weight becomes its payload initializers plus ONE node that outputs the weight under its original
 * name, so the layers that use it are untouched. The node calls a model-local function of the
 * `onnx_compress` domain (`Codebook4`, `MaskedQuant3`, ...) that holds the decoding ops once for
 * the whole model; onnxruntime inlines the functions and folds these constant subgraphs when the
 * session is created, so inference costs nothing extra. 8-bit quantization and float16/bfloat16
 * need no function (one DequantizeLinear or Cast node).
 *
 * Every decoder uses only ops available at opset 13 (the lowest opset we encode into), so a model's
 * opset never has to be raised, which could change the meaning of its other nodes. Functions need
 * IR version 8; `apply.ts` raises the IR version when it is lower (IR versions only add features).
 */
import { create, toBinary } from '@bufbuild/protobuf';
import { fail } from '../errors';
import { attr, DataType, floatToHalf, isHalfExact, makeFloatTensor, makeNode, makeTensor, type NodeProto, type TensorProto } from '../onnx';
import { AttributeProtoSchema, FunctionProtoSchema, OperatorSetIdProtoSchema, type FunctionProto } from '../onnx/proto';
import { packBits, packRadix, radixDigits, radixLayout, radixLength, type RadixLayout } from './bits';

/** Initializers, nodes and the functions they call, producing one weight. */
export interface DecodeGraph {
  initializers: TensorProto[];
  nodes: NodeProto[];
  /** Model-local functions the nodes call (shared between weights: add each name once). */
  functions: FunctionProto[];
}

/** The lowest default-domain opset the decoders need. */
export const MIN_DECODE_OPSET = 13;
/** Domain of the decoding functions. */
export const DECODE_DOMAIN = 'onnx_compress';
/** The lowest IR version with model-local functions. */
export const MIN_FUNCTION_IR = 8;

type Attr = ReturnType<typeof attr.int>;

const LETTERS = 'abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ';
/**
 * The functions' input names: one letter each (each is written at least twice in a body). Inputs
 * are positional; the doc comments name them in full.
 */
const IN = { mask: 'm', packed: 'p', codebook: 'c', shape: 's', offsets: 'o', scale: 'k', shift: 'z', values: 'v', table: 't' } as const;

/** Builds a function body: constants become Constant nodes, names are local. */
class FunctionBuilder {
  readonly nodes: NodeProto[] = [];
  private counter = 0;
  /** Constants made so far, by value: each is made once (a Constant node is ~30-45 bytes). */
  private readonly constants = new Map<string, string>();

  /** A fresh local name (`#0`, `#1`, …: {@link build} gives them their short names). */
  name(): string {
    return `#${this.counter++}`;
  }

  /**
   * An int64 constant. Scalars and 1-D values use Constant's `value_int` / `value_ints` (opset ≥ 12:
   * varints, a few bytes, where a `value` tensor spends 8 bytes per element plus its header).
   */
  int64(values: readonly number[], dims: readonly number[] = [values.length]): string {
    if (dims.length === 0) return this.constant(attr.int('value_int', values[0]!));
    if (dims.length === 1) return this.constant(attr.ints('value_ints', values));
    const t = makeTensor({ name: '', dataType: DataType.INT64, dims, raw: new Uint8Array(BigInt64Array.from(values.map(BigInt)).buffer) });
    return this.constant(attr.tensor('value', t));
  }

  float(value: number): string {
    return this.constant(attr.tensor('value', makeFloatTensor('', new Float32Array([value]), [])));
  }

  /** A Constant node with attribute `a`, or the one made earlier with an equal attribute. */
  private constant(a: Attr): string {
    const key = Buffer.from(toBinary(AttributeProtoSchema, a)).toString('base64');
    let out = this.constants.get(key);
    if (out === undefined) this.constants.set(key, (out = this.op('Constant', [], [a])));
    return out;
  }

  /** A node with several outputs (fresh local names). */
  ops(opType: string, inputs: string[], outputs: number, attributes: Attr[] = []): string[] {
    const outs = Array.from({ length: outputs }, () => this.name());
    this.nodes.push(makeNode(opType, inputs, outs, '', attributes));
    return outs;
  }

  op(opType: string, inputs: string[], attributes: Attr[] = [], out?: string): string {
    const o = out ?? this.name();
    this.nodes.push(makeNode(opType, inputs, [o], '', attributes));
    return o;
  }

  /**
   * The function, its local values renamed to the shortest names its inputs and output leave free
   * (`a`…`z`, `A`…`Z`, then two letters), the most used values first.
   */
  build(name: string, inputs: string[], output: string): FunctionProto {
    const uses = new Map<string, number>();
    for (const x of this.nodes) for (const v of [...x.input, ...x.output]) if (v.startsWith('#')) uses.set(v, (uses.get(v) ?? 0) + 1);
    const formal = new Set([...inputs, output]);
    const free = (function* () {
      for (let i = 0; ; i++) {
        const n = i < LETTERS.length ? LETTERS[i]! : LETTERS[Math.floor(i / LETTERS.length) - 1]! + LETTERS[i % LETTERS.length]!;
        if (!formal.has(n)) yield n;
      }
    })();
    const short = new Map([...uses].sort((a, b) => b[1] - a[1]).map(([v]) => [v, free.next().value!] as const));
    const local = (v: string): string => short.get(v) ?? v;
    for (const x of this.nodes) {
      x.input = x.input.map(local);
      x.output = x.output.map(local);
    }
    return create(FunctionProtoSchema, {
      name,
      domain: DECODE_DOMAIN,
      input: inputs,
      output: [output],
      node: this.nodes,
      opsetImport: [create(OperatorSetIdProtoSchema, { domain: '', version: BigInt(MIN_DECODE_OPSET) })],
    });
  }
}

/**
 * Unpacks `bits`-bit codes (see `bits.ts`) from the uint8 value `packed` into the first `n` codes
 * (int64, 1-D); `n` is an int64 [1] value.
 * bits = 8: a Cast. bits dividing 8: byte i holds codes j = 0…8/b-1 at bit b·j. Otherwise the
 * bytes are viewed as [G, b] (a group of 8 codes per row); code j of a group starts at bit p = b·j,
 * in byte q = ⌊p/8⌋ at offset r = p mod 8, so
 * code_j = ((byte_q + 256·byte_{q+1} [+ 65536·byte_{q+2} when b > 8]) / 2^r) mod 2^b. Every
 * intermediate stays below 2^24, so the arithmetic is exact however onnxruntime computes it (its
 * int64 ReduceSum is not exact past 2^53, which rules out summing a whole group). Byte indices past
 * the row are clamped into it; the bits they add lie above the code and the mod removes them.
 */
function unpack(f: FunctionBuilder, packed: string, bits: number, n: string): string {
  const wide = f.op('Cast', [packed], [attr.int('to', DataType.INT64)]);
  if (bits === 8) return f.op('Slice', [wide, f.int64([0]), n]);
  let codes: string;
  if (8 % bits === 0) {
    const col = f.op('Unsqueeze', [wide, f.int64([1])]);
    const shifted = f.op('Div', [col, f.int64(Array.from({ length: 8 / bits }, (_, j) => 2 ** (bits * j)))]);
    codes = f.op('Mod', [shifted, f.int64([2 ** bits], [])]);
  } else {
    const rows = f.op('Reshape', [wide, f.int64([-1, bits])]);
    const q = Array.from({ length: 8 }, (_, j) => Math.floor((bits * j) / 8));
    let sum = '';
    for (let t = 0; t < (bits > 8 ? 3 : 2); t++) {
      const byte = f.op('Gather', [rows, f.int64(q.map((x) => Math.min(x + t, bits - 1)))], [attr.int('axis', 1)]);
      const term = t === 0 ? byte : f.op('Mul', [byte, f.int64([256 ** t], [])]);
      sum = t === 0 ? term : f.op('Add', [sum, term]);
    }
    const shifted = f.op('Div', [sum, f.int64(Array.from({ length: 8 }, (_, j) => 2 ** ((bits * j) % 8)))]);
    codes = f.op('Mod', [shifted, f.int64([2 ** bits], [])]);
  }
  return f.op('Slice', [f.op('Reshape', [codes, f.int64([-1])]), f.int64([0]), n]);
}

/**
 * The per-width constants of {@link unpackWithTable}, as the uint8 payload every layer with codes of
 * `bits` bits (1…7) passes: [b, q_0…q_7, q'_0…q'_7, 2^r_0…2^r_7, 2^b − 1] with code j of a group
 * in byte q_j = ⌊b·j/8⌋ at bit r_j = b·j mod 8, and q'_j = min(q_j + 1, b − 1). Layers of one width
 * share one such tensor (`apply.ts` merges equal small payloads), so a model needs one decoding
 * function for every width instead of one per width.
 */
export function unpackTable(bits: number): Uint8Array<ArrayBuffer> {
  const q = Array.from({ length: 8 }, (_, j) => Math.floor((bits * j) / 8));
  return Uint8Array.from([bits, ...q, ...q.map((x) => Math.min(x + 1, bits - 1)), ...q.map((_, j) => 2 ** ((bits * j) % 8)), 2 ** bits - 1]);
}

/**
 * {@link unpack} for any width 1…7, with the width's constants from the input `table`
 * ({@link unpackTable}): the bytes viewed as [G, b], then the two-byte formula of `unpack`. The same
 * ops for every width, so one function body serves them all.
 */
function unpackWithTable(f: FunctionBuilder, packed: string, table: string, n: string): string {
  const t = f.op('Cast', [table], [attr.int('to', DataType.INT64)]);
  const [b, q, q1, div, mask] = f.ops('Split', [t, f.int64([1, 8, 8, 8, 1])], 5) as [string, string, string, string, string];
  const rows = f.op('Reshape', [f.op('Cast', [packed], [attr.int('to', DataType.INT64)]), f.op('Concat', [f.int64([-1]), b], [attr.int('axis', 0)])]);
  const lo = f.op('Gather', [rows, q], [attr.int('axis', 1)]);
  const hi = f.op('Gather', [rows, q1], [attr.int('axis', 1)]);
  const sum = f.op('Add', [lo, f.op('Mul', [hi, f.int64([256], [])])]);
  const codes = f.op('Mod', [f.op('Div', [sum, div]), f.op('Add', [mask, f.int64([1], [])])]);
  return f.op('Slice', [f.op('Reshape', [codes, f.int64([-1])]), f.int64([0]), n]);
}

/**
 * The per-radix constants of a width-generic radix decoder (`CodebookR`, …): the powers
 * [1, k, k², …, k^(d-1)] of layout `r` in the type of its words (uint8 / uint16 / uint32, as the
 * packed stream). Layers of one radix share one such tensor, like {@link unpackTable}.
 */
export function radixTable(r: RadixLayout): { dataType: number; raw: Uint8Array<ArrayBuffer> } {
  return { dataType: WORD_TYPES[r.wordBytes], raw: wordBytes(Array.from({ length: r.digits }, (_, j) => r.k ** j), r.wordBytes) };
}

/**
 * The layout of a {@link radixTable} (k = its second value, d = its length), or `undefined` when
 * `dataType` / `raw` are not the table of a valid layout.
 */
export function parseRadixTable(dataType: number, raw: Uint8Array): RadixLayout | undefined {
  const w = ([1, 2, 4] as const).find((b) => WORD_TYPES[b] === dataType);
  if (w === undefined || raw.length < 2 * w || raw.length % w !== 0) return undefined;
  const k = raw[w]! + (w > 1 ? raw[w + 1]! * 256 : 0);
  const r: RadixLayout = { k, wordBytes: w, digits: raw.length / w };
  if (k < 2 || k > 256 || r.digits > radixDigits(k, w)) return undefined;
  const t = radixTable(r).raw;
  return t.every((b, i) => b === raw[i]) ? r : undefined;
}

/** The ONNX element type of radix words of 1, 2 and 4 bytes. */
const WORD_TYPES = { 1: DataType.UINT8, 2: DataType.UINT16, 4: DataType.UINT32 } as const;

/** Values < 2^(8·bytes) as little-endian words. */
function wordBytes(values: readonly number[], bytes: 1 | 2 | 4): Uint8Array<ArrayBuffer> {
  const out = new Uint8Array(values.length * bytes);
  values.forEach((v, i) => {
    for (let b = 0; b < bytes; b++, v = Math.floor(v / 256)) out[i * bytes + b] = v % 256;
  });
  return out;
}

/**
 * Base-k digits (`bits.ts` {@link packRadix}) from the words `packed` (uint8/16/32) into the first
 * `n` codes (int64, 1-D): words as a column, Div by the powers k^j (a row), Mod k; the shape of
 * graph {@link unpack} uses for widths dividing 8. Words are below 2^32, so int64 is exact.
 */
function unpackDigits(f: FunctionBuilder, packed: string, powers: string, k: string, n: string): string {
  const words = f.op('Unsqueeze', [f.op('Cast', [packed], [attr.int('to', DataType.INT64)]), f.int64([1])]);
  const digits = f.op('Mod', [f.op('Div', [words, powers]), k]);
  return f.op('Slice', [f.op('Reshape', [digits, f.int64([-1])]), f.int64([0]), n]);
}

/**
 * How a decoding function reads its packed codes: `b` bits (`{ bits }`), a width given by an
 * unpack table (`'table'`, the last input, {@link unpackTable}), base-k digits in the layout
 * {@link radixLayout}(k) (`{ radix: k }`), or base-k digits with the powers as the last input
 * (`'radix'`, {@link radixTable}). It names the function: `Codebook4`, `Codebook`, `CodebookR6`,
 * `CodebookR`.
 */
type Unpacking = { bits: number } | { radix: number } | 'table' | 'radix';

function unpackingName(u: Unpacking): string {
  return u === 'table' ? '' : u === 'radix' ? 'R' : 'bits' in u ? `${u.bits}` : `R${u.radix}`;
}

/** The first `n` codes of `packed`, read as `u` says (`table`: the function's last input). */
function unpackCodes(f: FunctionBuilder, packed: string, u: Unpacking, n: string): string {
  if (u === 'table') return unpackWithTable(f, packed, IN.table, n);
  if (u === 'radix') {
    const powers = f.op('Cast', [IN.table], [attr.int('to', DataType.INT64)]);
    // k as a [1] (Mod broadcasts it): the index is the [1] constant unpackDigits makes anyway.
    return unpackDigits(f, packed, powers, f.op('Gather', [powers, f.int64([1])]), n);
  }
  if ('bits' in u) return unpack(f, packed, u.bits, n);
  const r = radixLayout(u.radix);
  if (!r) return fail('E_INTERNAL', `no radix layout for k=${u.radix}`);
  return unpackDigits(f, packed, f.int64(Array.from({ length: r.digits }, (_, j) => r.k ** j)), f.int64([r.k], []), n);
}

/**
 * The function input `shape` as int64. Shapes are stored in the narrowest integer type that holds
 * every dimension (uint8 for most conv kernels: 4 bytes instead of 32), see `Payload.shape`.
 */
function int64Shape(f: FunctionBuilder): string {
  return f.op('Cast', [IN.shape], [attr.int('to', DataType.INT64)]);
}

/** Element count of `shape` as int64 [1]. */
function countOf(f: FunctionBuilder, shape: string): string {
  return f.op('ReduceProd', [shape]);
}

/**
 * Kept weights' codes expanded to one per weight: `m` is the 0/1 mask (int64, n), `kept` the
 * packed codes of the kept weights; pruned positions get `fill`.
 * position = CumSum(m)·m → Gather([fill, codes...], position).
 */
function expandKept(f: FunctionBuilder, m: string, kept: string, u: Unpacking, fill: number): string {
  const count = f.op('ReduceSum', [m]);
  const codes = unpackCodes(f, kept, u, count);
  const pos = f.op('Mul', [f.op('CumSum', [m, f.int64([0], [])]), m]);
  const padded = f.op('Concat', [f.int64([fill]), codes], [attr.int('axis', 0)]);
  return f.op('Gather', [padded, pos]);
}

const FUNCTIONS = new Map<string, FunctionProto>();

/** A decoding function by name, built once per process (callers must not mutate it). */
function fn(name: string, build: () => FunctionProto): FunctionProto {
  let f = FUNCTIONS.get(name);
  if (!f) {
    f = build();
    FUNCTIONS.set(name, f);
  }
  return f;
}

/**
 * `[Masked]Codebook<b>[PC|S](packed, codebook, shape[, offsets | scale])`: codebook[index (+ offset
 * of the channel)], or with `S` (scaled sharing) codebook[index] · scale, broadcast per channel.
 * `<b>` names how the indices are packed ({@link Unpacking}): `4`, `R6`, or nothing / `R` for the
 * generic functions whose unpack table is the last input.
 */
function codebookFunction(u: Unpacking, perChannel: boolean, masked: boolean, scaled = false): FunctionProto {
  const generic = u === 'table' || u === 'radix';
  const name = `${masked ? 'Masked' : ''}Codebook${unpackingName(u)}${perChannel ? 'PC' : scaled ? 'S' : ''}`;
  return fn(name, () => {
    const f = new FunctionBuilder();
    const shape = int64Shape(f);
    const n = countOf(f, shape);
    let idx: string;
    if (masked) {
      if (generic) fail('E_INTERNAL', 'masked codebooks have one function per width');
      const m = unpack(f, IN.mask, 1, n);
      idx = f.op('Add', [expandKept(f, m, IN.packed, u, -1), f.int64([1], [])]);
    } else {
      idx = unpackCodes(f, IN.packed, u, n);
    }
    let shaped = f.op('Reshape', [idx, shape]);
    if (perChannel) shaped = f.op('Add', [shaped, IN.offsets]);
    // Codebooks are float16 when every entry is a float16 value (exact), else float32 (no-op Cast).
    const book = f.op('Cast', [IN.codebook], [attr.int('to', DataType.FLOAT)]);
    // scale: float16 or float32 (a no-op Cast), as the codebook
    if (scaled) f.op('Mul', [f.op('Gather', [book, shaped]), f.op('Cast', [IN.scale], [attr.int('to', DataType.FLOAT)])], [], 'w');
    else f.op('Gather', [book, shaped], [], 'w');
    const inputs = [...(masked ? [IN.mask] : []), IN.packed, IN.codebook, IN.shape, ...(perChannel ? [IN.offsets] : scaled ? [IN.scale] : []), ...(generic ? [IN.table] : [])];
    return f.build(name, inputs, 'w');
  });
}

/** `Quant<b>(packed, shift, scale, shape)`: (code - shift) · scale, broadcast per channel. */
function quantFunction(u: Unpacking, masked: boolean): FunctionProto {
  const generic = u === 'table' || u === 'radix';
  const name = `${masked ? 'Masked' : ''}Quant${unpackingName(u)}`;
  return fn(name, () => {
    const f = new FunctionBuilder();
    const shape = int64Shape(f);
    const n = countOf(f, shape);
    let codes: string;
    let m = '';
    if (masked) {
      if (generic) fail('E_INTERNAL', 'masked quantization has one function per width');
      m = unpack(f, IN.mask, 1, n);
      codes = expandKept(f, m, IN.packed, u, 0);
    } else {
      codes = unpackCodes(f, IN.packed, u, n);
    }
    // shift: int64 in files of earlier versions, narrower now; scale: float16 or float32 (no-op Casts).
    const q = f.op('Sub', [f.op('Reshape', [codes, shape]), f.op('Cast', [IN.shift], [attr.int('to', DataType.INT64)])]);
    const value = f.op('Mul', [f.op('Cast', [q], [attr.int('to', DataType.FLOAT)]), f.op('Cast', [IN.scale], [attr.int('to', DataType.FLOAT)])], [], masked ? undefined : 'w');
    if (masked) {
      const keep = f.op('Cast', [f.op('Reshape', [m, shape])], [attr.int('to', DataType.BOOL)]);
      f.op('Where', [keep, value, f.float(0)], [], 'w');
    }
    return f.build(name, [...(masked ? [IN.mask] : []), IN.packed, IN.shift, IN.scale, IN.shape, ...(generic ? [IN.table] : [])], 'w');
  });
}

/** `Sparse(mask, values, shape)`: values (with a leading 0) gathered at CumSum(mask)·mask. */
function sparseFunction(): FunctionProto {
  return fn('Sparse', () => {
    const f = new FunctionBuilder();
    const shape = int64Shape(f);
    const m = unpack(f, IN.mask, 1, countOf(f, shape));
    const pos = f.op('Mul', [f.op('CumSum', [m, f.int64([0], [])]), m]);
    f.op('Reshape', [f.op('Gather', [IN.values, pos]), shape], [], 'w');
    return f.build('Sparse', [IN.mask, IN.values, IN.shape], 'w');
  });
}

/**
 * Width-generic decoding functions (their unpack table is the last input) and the per-width
 * function to call instead when a model uses only one width: `Codebook` + 3 → `Codebook3`, etc.
 * One width needs one function either way, and the per-width body is smaller than the generic one
 * plus its table (MobileNet with k=16 everywhere: 0.1507 → 0.150 of the original).
 */
export function specializedDecoder(opType: string, bits: number): FunctionProto | undefined {
  return specialized(opType, '', { bits });
}

/**
 * {@link specializedDecoder} for the radix-generic functions: `CodebookR` + 6 → `CodebookR6` (the
 * powers of {@link radixLayout}(6) as constants instead of the `radix` table input).
 */
export function specializedRadixDecoder(opType: string, k: number): FunctionProto | undefined {
  return radixLayout(k) ? specialized(opType, 'R', { radix: k }) : undefined;
}

function specialized(opType: string, prefix: string, u: Unpacking): FunctionProto | undefined {
  switch (opType) {
    case `Codebook${prefix}`:
      return codebookFunction(u, false, false);
    case `Codebook${prefix}PC`:
      return codebookFunction(u, true, false);
    case `Codebook${prefix}S`:
      return codebookFunction(u, false, false, true);
    case 'Quant':
      return prefix === '' ? quantFunction(u, false) : undefined;
    default:
      return undefined;
  }
}

/** Per-weight initializers and the one calling node. Names: `<weight>::<role>`. */
class Payload {
  readonly initializers: TensorProto[] = [];
  constructor(readonly weight: string) {}

  add(role: string, t: Omit<Parameters<typeof makeTensor>[0], 'name'>): string {
    const name = `${this.weight}::${role}`;
    this.initializers.push(makeTensor({ ...t, name }));
    return name;
  }

  packed(role: string, codes: ArrayLike<number>, bits: number): string {
    return this.add(role, { dataType: DataType.UINT8, dims: [bits === 8 ? codes.length : Math.ceil(codes.length / 8) * bits], raw: packBits(codes, bits) });
  }

  /** Codes 0…r.k-1 as {@link packRadix} words: uint8 / uint16 / uint32 [⌈n/d⌉]. */
  radix(role: string, codes: ArrayLike<number>, r: RadixLayout): string {
    return this.add(role, { dataType: WORD_TYPES[r.wordBytes], dims: [radixLength(codes.length, r) / r.wordBytes], raw: packRadix(codes, r) });
  }

  /** The powers of layout `r` ({@link radixTable}) as `radix`. */
  radixTable(r: RadixLayout): string {
    const t = radixTable(r);
    return this.add('radix', { dataType: t.dataType, dims: [r.digits], raw: t.raw });
  }

  /**
   * Indices 0…k-1 packed in `bits` bits or, with `radix`, as {@link radixLayout}(k) words; `tables`
   * adds the unpack table a width-generic function takes last ({@link unpackTable} below 8 bits,
   * {@link radixTable}) and returns its name (none for the per-width functions of 8 bits and more).
   */
  indices(codes: ArrayLike<number>, k: number, bits: number, radix: boolean): { packed: string; u: Unpacking; tables: () => string[] } {
    if (radix) {
      const r = radixLayout(k) ?? fail('E_INTERNAL', `no radix layout for k=${k}`);
      return { packed: this.radix('indices', codes, r), u: 'radix', tables: () => [this.radixTable(r)] };
    }
    const packed = this.packed('indices', codes, bits);
    return bits >= 8 ? { packed, u: { bits }, tables: () => [] } : { packed, u: 'table', tables: () => [this.table(bits)] };
  }

  /** The unpacking constants of `bits`-bit codes ({@link unpackTable}) as `unpack`. */
  table(bits: number): string {
    return this.add('unpack', { dataType: DataType.UINT8, dims: [26], raw: unpackTable(bits) });
  }

  /** A weight's shape as `shape`, in the narrowest of uint8 / int32 / int64 that holds it. */
  shape(dims: readonly number[]): string {
    const max = Math.max(0, ...dims);
    if (max <= 0xff) return this.add('shape', { dataType: DataType.UINT8, dims: [dims.length], raw: Uint8Array.from(dims) });
    if (max <= 0x7fffffff) return this.add('shape', { dataType: DataType.INT32, dims: [dims.length], raw: new Uint8Array(Int32Array.from(dims).buffer) });
    return this.int64('shape', dims);
  }

  int64(role: string, values: readonly number[], dims: readonly number[] = [values.length]): string {
    return this.add(role, { dataType: DataType.INT64, dims, raw: new Uint8Array(BigInt64Array.from(values.map(BigInt)).buffer) });
  }

  float(role: string, values: Float32Array, dims: readonly number[]): string {
    this.initializers.push(makeFloatTensor(`${this.weight}::${role}`, values, dims));
    return `${this.weight}::${role}`;
  }

  /** Float values as float16 when that is exact (half the bytes), else float32. */
  halfOrFloat(role: string, values: Float32Array, dims: readonly number[]): string {
    if (!isHalfExact(values)) return this.float(role, values, dims);
    const raw = new Uint8Array(Uint16Array.from(values, floatToHalf).buffer);
    return this.add(role, { dataType: DataType.FLOAT16, dims, raw });
  }

  /** A codebook: float16 when that is exact, else float32. */
  codebook(values: Float32Array): string {
    return this.halfOrFloat('codebook', values, [values.length]);
  }

  call(f: FunctionProto, inputs: string[]): DecodeGraph {
    return { initializers: this.initializers, nodes: [makeNode(f.name, inputs, [this.weight], '', [], DECODE_DOMAIN)], functions: [f] };
  }
}

/**
 * The bit widths of the packed code streams a decoding function reads, in input order from input 0,
 * from its name alone: `Codebook4…` → [4], `MaskedCodebook3…` / `MaskedQuant3` → [1, 3] (mask,
 * codes), `Quant5` → [5], `Sparse` → [1]. So tools (the archive) find every stream and its layout
 * from the ONNX file, with no per-tensor marker; `undefined` for other ops.
 */
export function packedInputBits(opType: string): number[] | undefined {
  if (opType === 'Sparse') return [1];
  // Masked radix decoders: a bit-packed mask, then radix words (packedInputRadix).
  if (/^MaskedCodebookR\d+(?:PC)?$/.test(opType)) return [1];
  const m = /^(Masked)?(?:Codebook|Quant)(\d)(?:PC|S)?$/.exec(opType);
  if (!m) return undefined;
  const bits = Number(m[2]);
  return m[1] ? [1, bits] : [bits];
}

/**
 * The radix-packed input of a decoding function, from its name: `CodebookR6[PC|S]` → input 0 in
 * layout {@link radixLayout}(6); `MaskedCodebookR5[PC]` → input 1 (the kept indices minus one) in
 * radixLayout(5); `CodebookR[PC|S]` → input 0 in the layout of its last input ({@link radixTable},
 * `k: 'table'`). `undefined` for other ops.
 */
export function packedInputRadix(opType: string): { input: number; k: number | 'table' } | undefined {
  const m = /^(Masked)?CodebookR(\d*)(?:PC|S)?$/.exec(opType);
  if (!m || (m[1] && !m[2])) return undefined;
  return { input: m[1] ? 1 : 0, k: m[2] ? Number(m[2]) : 'table' };
}

/**
 * The doc string that marked a packed code stream in files written before {@link packedInputBits}
 * by earlier builds: `onnx-compress:packed bits=<b> count=<n>`. Still recognised by the archive.
 */
export function packedDocString(bits: number, count: number): string {
  return `onnx-compress:packed bits=${bits} count=${count}`;
}

/** Parses {@link packedDocString}; `undefined` for other doc strings. */
export function parsePackedDocString(doc: string): { bits: number; count: number } | undefined {
  const m = /^onnx-compress:packed bits=(\d+) count=(\d+)$/.exec(doc);
  return m ? { bits: Number(m[1]), count: Number(m[2]) } : undefined;
}

/** Shape that puts `values` along `axis` of a rank-`rank` tensor, 1 elsewhere (for broadcasting). */
export function axisShape(rank: number, axis: number, size: number): number[] {
  return Array.from({ length: rank }, (_, i) => (i === axis ? size : 1));
}

/** Options of {@link codebookDecoder}. */
export interface CodebookDecode {
  /** Output shape. */
  dims: readonly number[];
  /** `codebooks · k` values, codebook c at [c·k, (c+1)·k). */
  codebook: Float32Array;
  /** Entries per codebook. */
  k: number;
  /** Codebook per index along this axis, or null for one codebook. */
  axis: number | null;
  /** One index per weight, tensor order. */
  indices: ArrayLike<number>;
  /** Index bits (⌈log2 k⌉). */
  bits: number;
  /** Store the indices as base-k digits ({@link radixLayout}(k), which must exist) instead of `bits`-bit codes. Default false. */
  radix?: boolean;
}

function channelOffsets(p: Payload, dims: readonly number[], axis: number, k: number): string {
  const channels = dims[axis]!;
  return p.int64('offsets', Array.from({ length: channels }, (_, c) => c * k), axisShape(dims.length, axis, channels));
}

/** Weight = codebook[c·k + index] via Gather (per-channel: index + k·channel, broadcast). */
export function codebookDecoder(weight: string, o: CodebookDecode): DecodeGraph {
  const p = new Payload(weight);
  const idx = p.indices(o.indices, o.k, o.bits, o.radix === true);
  const inputs = [idx.packed, p.codebook(o.codebook), p.shape(o.dims)];
  if (o.axis !== null) inputs.push(channelOffsets(p, o.dims, o.axis, o.k));
  return p.call(codebookFunction(idx.u, o.axis !== null, false), [...inputs, ...idx.tables()]);
}

/** Scaled sharing: weight = fround(codebook[index] · scale[c]) (see `compress/scaledShare.ts`). */
export function scaledCodebookDecoder(weight: string, o: Omit<CodebookDecode, 'axis'> & { scale: Float32Array; scaleAxis: number }): DecodeGraph {
  const p = new Payload(weight);
  const idx = p.indices(o.indices, o.k, o.bits, o.radix === true);
  const inputs = [idx.packed, p.codebook(o.codebook), p.shape(o.dims), p.halfOrFloat('scale', o.scale, axisShape(o.dims.length, o.scaleAxis, o.scale.length))];
  return p.call(codebookFunction(idx.u, false, false, true), [...inputs, ...idx.tables()]);
}

/**
 * Pruned + shared: a 1-bit mask (1 = kept) and, for kept weights, their index minus one in
 * ⌈log2(k-1)⌉ bits (index 0 is the exact zero entry every pruned weight uses, so kept weights never
 * need it), or with `radix` as base-(k-1) digits ({@link radixLayout}(k - 1) must exist).
 */
export function maskedCodebookDecoder(weight: string, o: Omit<CodebookDecode, 'bits'> & { zeroIndex: 0 }): DecodeGraph {
  const n = o.indices.length;
  const mask = new Uint8Array(n);
  const kept: number[] = [];
  for (let i = 0; i < n; i++) {
    const v = o.indices[i]!;
    if (v !== 0) {
      mask[i] = 1;
      kept.push(v - 1);
    }
  }
  const bits = Math.max(1, Math.ceil(Math.log2(Math.max(2, o.k - 1))));
  const p = new Payload(weight);
  const r = o.radix ? (radixLayout(o.k - 1) ?? fail('E_INTERNAL', `no radix layout for k-1=${o.k - 1}`)) : undefined;
  const inputs = [p.packed('mask', mask, 1), r ? p.radix('indices', kept, r) : p.packed('indices', kept, bits), p.codebook(o.codebook), p.shape(o.dims)];
  if (o.axis !== null) inputs.push(channelOffsets(p, o.dims, o.axis, o.k));
  return p.call(codebookFunction(r ? { radix: r.k } : { bits }, o.axis !== null, true), inputs);
}

/** Options of {@link quantDecoder}. */
export interface QuantDecode {
  dims: readonly number[];
  bits: number;
  symmetric: boolean;
  axis: number | null;
  scale: Float32Array;
  zeroPoint: Int32Array;
  codes: Int8Array | Uint8Array;
}

/**
 * Weight = fround(scale · (code - zeroPoint)), exactly as DequantizeLinear computes it.
 * 8 bits: int8/uint8 initializer + DequantizeLinear (per-axis at opset 13). Fewer bits: packed
 * unsigned codes → int64 → minus (zeroPoint - minCode) → float → × scale, broadcast per channel.
 */
export function quantDecoder(weight: string, o: QuantDecode): DecodeGraph {
  const p = new Payload(weight);
  const perChannel = o.axis !== null;
  const pShape = perChannel ? [o.scale.length] : [];
  if (o.bits === 8) {
    const signed = o.codes instanceof Int8Array;
    const dt = signed ? DataType.INT8 : DataType.UINT8;
    const x = p.add('codes', { dataType: dt, dims: o.dims, raw: copyBytes(o.codes) });
    const scale = p.float('scale', o.scale, pShape);
    const zp = p.add('zero_point', { dataType: dt, dims: pShape, raw: signed ? new Uint8Array(Int8Array.from(o.zeroPoint).buffer) : Uint8Array.from(o.zeroPoint) });
    return { initializers: p.initializers, nodes: [makeNode('DequantizeLinear', [x, scale, zp], [weight], '', perChannel ? [attr.int('axis', o.axis!)] : [])], functions: [] };
  }
  const { minCode, bShape } = quantLayout(o);
  // A loop, not `Uint8Array.from(codes, fn)` (an iterator and boxed numbers: ~40× slower, 1 GiB more on a large layer).
  const unsigned = new Uint8Array(o.codes.length);
  for (let i = 0; i < unsigned.length; i++) unsigned[i] = o.codes[i]! - minCode;
  const inputs = [p.packed('codes', unsigned, o.bits), ...quantParams(p, o, minCode, bShape)];
  return p.call(quantFunction('table', false), [...inputs, p.table(o.bits)]);
}

function quantLayout(o: QuantDecode): { minCode: number; bShape: number[] } {
  return { minCode: o.codes instanceof Int8Array ? -(2 ** (o.bits - 1) - 1) : 0, bShape: o.axis !== null ? axisShape(o.dims.length, o.axis, o.scale.length) : [] };
}

/**
 * shift (code offset of 0 per channel): one uint8 scalar when every channel has the same (always
 * with symmetric codes), else uint8 per channel; scale: float16 when exact (`compress/quantize.ts`
 * rounds scales below 8 bits to float16), else float32.
 */
function quantParams(p: Payload, o: QuantDecode, minCode: number, bShape: number[]): string[] {
  const shift = Uint8Array.from(o.zeroPoint, (z) => z - minCode);
  const uniform = shift.every((v) => v === shift[0]);
  return [
    p.add('shift', { dataType: DataType.UINT8, dims: uniform ? [] : bShape, raw: uniform ? shift.subarray(0, 1) : shift }),
    p.halfOrFloat('scale', o.scale, bShape),
    p.shape(o.dims),
  ];
}

/**
 * Pruned + quantized: the mask (1 = code differs from the zero point, so the value is non-zero) and
 * the kept codes; decoded like {@link quantDecoder}, then `Where(mask, value, 0)` so pruned weights
 * are exactly +0 as in the reconstruction.
 */
export function maskedQuantDecoder(weight: string, o: QuantDecode): DecodeGraph {
  const n = o.codes.length;
  const { minCode, bShape } = quantLayout(o);
  const strides = o.dims.map((_, i) => o.dims.slice(i + 1).reduce((a, x) => a * x, 1));
  const mask = new Uint8Array(n);
  const kept: number[] = [];
  for (let i = 0; i < n; i++) {
    const c = o.axis !== null ? Math.floor(i / strides[o.axis]!) % o.dims[o.axis]! : 0;
    if (o.codes[i] !== o.zeroPoint[c]) {
      mask[i] = 1;
      kept.push(o.codes[i]! - minCode);
    }
  }
  const p = new Payload(weight);
  const inputs = [p.packed('mask', mask, 1), p.packed('codes', kept, o.bits), ...quantParams(p, o, minCode, bShape)];
  return p.call(quantFunction({ bits: o.bits }, true), inputs);
}

/** float16 / bfloat16 payload + Cast to float32 (exact: every such value is a float32). */
export function castDecoder(weight: string, dims: readonly number[], dataType: number, codes: Uint16Array): DecodeGraph {
  if (dataType !== DataType.FLOAT16 && dataType !== DataType.BFLOAT16) fail('E_INTERNAL', `castDecoder: unsupported type ${dataType}`);
  const p = new Payload(weight);
  const x = p.add(dataType === DataType.FLOAT16 ? 'fp16' : 'bf16', { dataType, dims, raw: copyBytes(codes) });
  return { initializers: p.initializers, nodes: [makeNode('Cast', [x], [weight], '', [attr.int('to', DataType.FLOAT)])], functions: [] };
}

/** Pruned weights: a 1-bit mask (1 = kept) + the kept values in tensor order. */
export function maskDecoder(weight: string, dims: readonly number[], mask: Uint8Array, values: Float32Array): DecodeGraph {
  const withZero = new Float32Array(values.length + 1);
  withZero.set(values, 1);
  const p = new Payload(weight);
  return p.call(sparseFunction(), [p.packed('mask', mask, 1), p.float('values', withZero, [withZero.length]), p.shape(dims)]);
}

/** The weight as a plain float32 initializer (the reference and the fallback). */
export function denseDecoder(weight: string, dims: readonly number[], values: Float32Array): DecodeGraph {
  return { initializers: [makeFloatTensor(weight, values, dims)], nodes: [], functions: [] };
}

/** Bytes of all initializer payloads of a decode graph (what it adds to the file, give or take ~100 B of graph). */
export function payloadBytes(g: DecodeGraph): number {
  return g.initializers.reduce((s, t) => s + t.rawData.length, 0);
}

/** A copy of a typed array's bytes in a fresh ArrayBuffer. */
function copyBytes(a: ArrayBufferView): Uint8Array<ArrayBuffer> {
  return Uint8Array.from(new Uint8Array(a.buffer, a.byteOffset, a.byteLength));
}
