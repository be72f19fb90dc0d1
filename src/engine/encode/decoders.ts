/**
 * ONNX subgraphs that rebuild a float32 weight at load time from compact initializers. Each builder
 * returns the new initializers and nodes whose last node outputs the weight under its original
 * name, so the layers that use it are untouched. onnxruntime folds these constant subgraphs when the
 * session is created, so inference costs nothing extra.
 *
 * Every decoder uses only ops available at opset 13 (the lowest opset we encode into), so a model's
 * opset never has to be raised, which could change the meaning of its other nodes.
 */
import { fail } from '../errors';
import { attr, DataType, makeFloatTensor, makeNode, makeTensor, type NodeProto, type TensorProto } from '../onnx';
import { packBits } from './bits';

/** Initializers and nodes that produce one weight. */
export interface DecodeGraph {
  initializers: TensorProto[];
  nodes: NodeProto[];
}

/** The lowest default-domain opset the decoders need. */
export const MIN_DECODE_OPSET = 13;

/** Names generated for one weight: `<weight>::<suffix>`, so they cannot clash with exporter names. */
export class DecodeBuilder {
  readonly initializers: TensorProto[] = [];
  readonly nodes: NodeProto[] = [];
  private counter = 0;

  /** @param weight the weight's name, which the final node outputs. */
  constructor(readonly weight: string) {}

  /**
   * A fresh value name, `<weight>::<n>`. Short on purpose: names are stored in the file for every
   * node input and output. `suffix` is kept in the payload tensors' names for readability.
   */
  name(suffix = ''): string {
    return `${this.weight}::${suffix === 'packed' || suffix === 'codebook' ? suffix : ''}${this.counter++}`;
  }

  /** Adds an initializer and returns its name. */
  init(t: TensorProto): string {
    this.initializers.push(t);
    return t.name;
  }

  /** int64 constant tensor. */
  int64(suffix: string, values: readonly number[], dims: readonly number[] = [values.length]): string {
    return this.init(makeTensor({ name: this.name(suffix), dataType: DataType.INT64, dims, raw: new Uint8Array(BigInt64Array.from(values.map(BigInt)).buffer) }));
  }

  /** float32 constant tensor. */
  float(suffix: string, values: Float32Array, dims: readonly number[]): string {
    return this.init(makeFloatTensor(this.name(suffix), values, dims));
  }

  /** Adds a node with one output and returns the output's name (`out` or a fresh one). */
  op(opType: string, inputs: string[], attributes: ReturnType<typeof attr.int>[] = [], out?: string): string {
    const o = out ?? this.name();
    // Node names are optional in ONNX; unnamed decode nodes keep the file small.
    this.nodes.push(makeNode(opType, inputs, [o], '', attributes));
    return o;
  }

  /** The finished graph. */
  build(): DecodeGraph {
    return { initializers: this.initializers, nodes: this.nodes };
  }
}

/**
 * Packed `bits`-bit codes (see `bits.ts`) to an int64 tensor of `n` codes.
 * bits = 8: a Cast. Otherwise the bytes are viewed as [G, b] (a group of 8 codes per row); code j
 * of a group starts at bit p = b·j, in byte q = ⌊p/8⌋ at offset r = p mod 8, so
 * code_j = ((byte_q + 256·byte_{q+1} [+ 65536·byte_{q+2} when b > 8]) / 2^r) mod 2^b. Every
 * intermediate stays below 2^24, so the arithmetic is exact however onnxruntime computes it (its
 * int64 ReduceSum is not exact past 2^53, which rules out summing a whole group). Byte indices past
 * the row are clamped into it; the bits they add lie above the code and the mod removes them.
 */
export function unpackCodes(b: DecodeBuilder, codes: ArrayLike<number>, bits: number): string {
  const n = codes.length;
  const packed = makeTensor({
    name: b.name('packed'),
    dataType: DataType.UINT8,
    dims: [bits === 8 ? n : Math.ceil(n / 8) * bits],
    raw: packBits(codes, bits),
    docString: packedDocString(bits, n),
  });
  b.init(packed);
  if (bits === 8) return b.op('Cast', [packed.name], [attr.int('to', DataType.INT64)]);
  const groups = Math.ceil(n / 8);
  if (8 % bits === 0) {
    // Codes never straddle bytes: byte i holds codes j = 0…8/b-1 at bit b·j.
    const per = 8 / bits;
    const col = b.op('Unsqueeze', [b.op('Cast', [packed.name], [attr.int('to', DataType.INT64)]), b.int64('axes', [1])]);
    const shifted = b.op('Div', [col, b.int64('divisors', Array.from({ length: per }, (_, j) => 2 ** (bits * j)))]);
    const flat = b.op('Reshape', [b.op('Mod', [shifted, b.int64('modulus', [2 ** bits], [])]), b.int64('flat', [-1])]);
    return groups * 8 === n ? flat : b.op('Slice', [flat, b.int64('starts', [0]), b.int64('ends', [n]), b.int64('axes', [0])]);
  }
  const bytes = b.op('Reshape', [packed.name, b.int64('shape', [groups, bits])]);
  const wide = b.op('Cast', [bytes], [attr.int('to', DataType.INT64)]);
  const q = Array.from({ length: 8 }, (_, j) => Math.floor((bits * j) / 8));
  const spans = bits > 8 ? 3 : 2;
  let pair = '';
  for (let t = 0; t < spans; t++) {
    const byte = b.op('Gather', [wide, b.int64(`byte${t}_index`, q.map((x) => Math.min(x + t, bits - 1)))], [attr.int('axis', 1)]);
    const term = t === 0 ? byte : b.op('Mul', [byte, b.int64('weight', [256 ** t], [])]);
    pair = t === 0 ? term : b.op('Add', [pair, term]);
  }
  const shifted = b.op('Div', [pair, b.int64('divisors', Array.from({ length: 8 }, (_, j) => 2 ** ((bits * j) % 8)))]);
  const masked = b.op('Mod', [shifted, b.int64('modulus', [2 ** bits], [])]);
  const flat = b.op('Reshape', [masked, b.int64('flat', [groups * 8])]);
  return groups * 8 === n ? flat : b.op('Slice', [flat, b.int64('starts', [0]), b.int64('ends', [n]), b.int64('axes', [0])]);
}

/**
 * The doc string that marks a packed code stream, so tools (the archive) can find streams and
 * their layout from the ONNX file alone: `onnx-compress:packed bits=<b> count=<n>`.
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
  /** Index bits (⌈log2 k⌉ unless a wider packing is smaller for some reason). */
  bits: number;
}

/** Weight = codebook[c·k + index] via Gather (per-channel: index + k·channel, broadcast). */
export function codebookDecoder(weight: string, o: CodebookDecode): DecodeGraph {
  const b = new DecodeBuilder(weight);
  codebookFromIndex(b, unpackCodes(b, o.indices, o.bits), o);
  return b.build();
}

/** Gathers codebook entries for an int64 index tensor (one per weight, tensor order). */
function codebookFromIndex(b: DecodeBuilder, idx: string, o: Omit<CodebookDecode, 'indices' | 'bits'>): void {
  const shaped = b.op('Reshape', [idx, b.int64('shape', o.dims)]);
  let global = shaped;
  if (o.axis !== null) {
    const channels = o.dims[o.axis]!;
    const offsets = Array.from({ length: channels }, (_, c) => c * o.k);
    global = b.op('Add', [shaped, b.int64('offsets', offsets, axisShape(o.dims.length, o.axis, channels))]);
  }
  const table = b.float('codebook', o.codebook, [o.codebook.length]);
  b.op('Gather', [table, global], [attr.int('axis', 0)], b.weight);
}

/**
 * Codes of kept weights only, expanded to one code per weight: a 1-bit mask (1 = kept) and the kept
 * weights' codes in tensor order. Pruned positions get code `fill`.
 * position = CumSum(mask)·mask → Gather([fill, codes...], position). Returns the int64 codes and
 * the int64 mask.
 */
function expandKept(b: DecodeBuilder, mask: Uint8Array, kept: ArrayLike<number>, bits: number, fill: number): { codes: string; mask: string } {
  const m = unpackCodes(b, mask, 1);
  const pos = b.op('Mul', [b.op('CumSum', [m, b.int64('axis', [0], [])]), m]);
  const codes = kept.length > 0 ? unpackCodes(b, kept, bits) : b.int64('nokept', [], [0]);
  const padded = b.op('Concat', [b.int64('fill', [fill]), codes], [attr.int('axis', 0)]);
  return { codes: b.op('Gather', [padded, pos], [attr.int('axis', 0)]), mask: m };
}

/**
 * Pruned + shared: the mask, and for kept weights their index minus one in ⌈log2(k-1)⌉ bits (index
 * 0 is the exact zero entry that every pruned weight uses, so kept weights never need it).
 */
export function maskedCodebookDecoder(weight: string, o: Omit<CodebookDecode, 'bits'> & { zeroIndex: 0 }): DecodeGraph {
  const b = new DecodeBuilder(weight);
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
  const { codes } = expandKept(b, mask, kept, bits, -1);
  codebookFromIndex(b, b.op('Add', [codes, b.int64('one', [1], [])]), o);
  return b.build();
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
  const b = new DecodeBuilder(weight);
  const perChannel = o.axis !== null;
  const pShape = perChannel ? [o.scale.length] : [];
  if (o.bits === 8) {
    const signed = o.codes instanceof Int8Array;
    const dt = signed ? DataType.INT8 : DataType.UINT8;
    const x = b.init(makeTensor({ name: b.name('codes'), dataType: dt, dims: o.dims, raw: copyBytes(o.codes) }));
    const zpBytes = signed ? new Uint8Array(Int8Array.from(o.zeroPoint).buffer) : Uint8Array.from(o.zeroPoint);
    const scale = b.float('scale', o.scale, pShape);
    const zp = b.init(makeTensor({ name: b.name('zero_point'), dataType: dt, dims: pShape, raw: zpBytes }));
    b.op('DequantizeLinear', [x, scale, zp], perChannel ? [attr.int('axis', o.axis!)] : [], weight);
    return b.build();
  }
  const minCode = o.codes instanceof Int8Array ? -(2 ** (o.bits - 1) - 1) : 0;
  const unsigned = new Uint8Array(o.codes.length);
  for (let i = 0; i < o.codes.length; i++) unsigned[i] = o.codes[i]! - minCode;
  const u = unpackCodes(b, unsigned, o.bits);
  const shaped = b.op('Reshape', [u, b.int64('shape', o.dims)]);
  const bShape = perChannel ? axisShape(o.dims.length, o.axis!, o.scale.length) : [];
  const shift = b.int64('zp_shift', Array.from(o.zeroPoint, (z) => z - minCode), bShape);
  const q = b.op('Sub', [shaped, shift]);
  const qf = b.op('Cast', [q], [attr.int('to', DataType.FLOAT)]);
  b.op('Mul', [qf, b.float('scale', o.scale, bShape)], [], weight);
  return b.build();
}

/**
 * Pruned + quantized: the mask (1 = code differs from the zero point, so the value is non-zero) and
 * the kept codes; decoded like {@link quantDecoder}, then `Where(mask, value, 0)` so pruned weights
 * are exactly +0 as in the reconstruction.
 */
export function maskedQuantDecoder(weight: string, o: QuantDecode): DecodeGraph {
  const b = new DecodeBuilder(weight);
  const n = o.codes.length;
  const minCode = o.codes instanceof Int8Array ? -(2 ** (o.bits - 1) - 1) : 0;
  const perChannel = o.axis !== null;
  const strides = o.dims.map((_, i) => o.dims.slice(i + 1).reduce((a, x) => a * x, 1));
  const mask = new Uint8Array(n);
  const kept: number[] = [];
  for (let i = 0; i < n; i++) {
    const c = perChannel ? Math.floor(i / strides[o.axis!]!) % o.dims[o.axis!]! : 0;
    if (o.codes[i] !== o.zeroPoint[c]) {
      mask[i] = 1;
      kept.push(o.codes[i]! - minCode);
    }
  }
  const { codes, mask: m } = expandKept(b, mask, kept, o.bits, 0);
  const shaped = b.op('Reshape', [codes, b.int64('shape', o.dims)]);
  const bShape = perChannel ? axisShape(o.dims.length, o.axis!, o.scale.length) : [];
  const q = b.op('Sub', [shaped, b.int64('zp_shift', Array.from(o.zeroPoint, (z) => z - minCode), bShape)]);
  const value = b.op('Mul', [b.op('Cast', [q], [attr.int('to', DataType.FLOAT)]), b.float('scale', o.scale, bShape)]);
  const keep = b.op('Cast', [b.op('Reshape', [m, b.int64('shape', o.dims)])], [attr.int('to', DataType.BOOL)]);
  b.op('Where', [keep, value, b.float('zero', new Float32Array([0]), [])], [], weight);
  return b.build();
}

/** float16 / bfloat16 payload + Cast to float32 (exact: every such value is a float32). */
export function castDecoder(weight: string, dims: readonly number[], dataType: number, codes: Uint16Array): DecodeGraph {
  if (dataType !== DataType.FLOAT16 && dataType !== DataType.BFLOAT16) fail('E_INTERNAL', `castDecoder: unsupported type ${dataType}`);
  const b = new DecodeBuilder(weight);
  const x = b.init(makeTensor({ name: b.name('half'), dataType, dims, raw: copyBytes(codes) }));
  b.op('Cast', [x], [attr.int('to', DataType.FLOAT)], weight);
  return b.build();
}

/**
 * Pruned weights: a 1-bit mask (1 = kept) + the kept values in tensor order.
 * position = CumSum(mask) · mask (1-based rank among kept, 0 when pruned) → Gather([0, values...]).
 */
export function maskDecoder(weight: string, dims: readonly number[], mask: Uint8Array, values: Float32Array): DecodeGraph {
  const b = new DecodeBuilder(weight);
  const m = unpackCodes(b, mask, 1);
  const cum = b.op('CumSum', [m, b.int64('axis', [0], [])]);
  const pos = b.op('Mul', [cum, m]);
  const withZero = new Float32Array(values.length + 1);
  withZero.set(values, 1);
  const g = b.op('Gather', [b.float('values', withZero, [withZero.length]), pos], [attr.int('axis', 0)]);
  b.op('Reshape', [g, b.int64('shape', dims)], [], weight);
  return b.build();
}

/** The weight as a plain float32 initializer (the reference and the fallback). */
export function denseDecoder(weight: string, dims: readonly number[], values: Float32Array): DecodeGraph {
  return { initializers: [makeFloatTensor(weight, values, dims)], nodes: [] };
}

/** Bytes of all initializer payloads of a decode graph (what it adds to the file, give or take ~100 B of graph). */
export function payloadBytes(g: DecodeGraph): number {
  return g.initializers.reduce((s, t) => s + t.rawData.length, 0);
}

/** A copy of a typed array's bytes in a fresh ArrayBuffer. */
function copyBytes(a: ArrayBufferView): Uint8Array<ArrayBuffer> {
  return Uint8Array.from(new Uint8Array(a.buffer, a.byteOffset, a.byteLength));
}
