/**
 * Picks, for one compressed tensor, the smallest ONNX encoding that decodes to exactly its
 * reconstruction. Candidates: the technique's native form (codebook + packed indices, integer codes
 * + DequantizeLinear, fp16/bf16 + Cast, float codes + lookup table, pruning mask + kept values), and
 * generic ones that apply to any reconstruction: a codebook of its distinct values, float16 /
 * bfloat16 when every value is exactly representable, and plain float32.
 *
 * The size of every candidate is computed from the storage alone (element counts, packed lengths:
 * one pass over the codes at most), and only the chosen one is built: building all of them (packed
 * streams, fp16 copies, a float32 copy for `dense`) cost about 5× a large layer in memory and most
 * of the time of a sensitivity cell. {@link encodingChoices} builds every candidate and checks that
 * its graph has exactly the computed size.
 */
import { decodeFormat, type CompressedTensor } from '../compress';
import { fail } from '../errors';
import { bfloat16ToFloat, DataType, floatToBfloat16, floatToHalf, halfToFloat } from '../onnx';
import { bitsFor, packedLength, radixLayout, radixLength } from './bits';
import {
  castDecoder,
  codebookDecoder,
  denseDecoder,
  maskDecoder,
  maskedCodebookDecoder,
  maskedQuantDecoder,
  payloadBytes,
  quantDecoder,
  scaledCodebookDecoder,
  type DecodeGraph,
} from './decoders';

/** One way to store a weight. */
export interface EncodingChoice {
  /** Short name: `codebook`, `quant8`, `fp16`, `table`, `mask`, `distinct`, `dense`... */
  kind: string;
  /** Initializers + nodes producing the weight (from {@link chooseEncoding}: built on first access). */
  graph: DecodeGraph;
  /** Payload bytes plus an estimate of the graph's own bytes. */
  bytes: number;
}

/** A candidate encoding: its exact size and how to build it. */
interface Candidate {
  kind: string;
  bytes: number;
  /** What candidates are ordered by; `bytes` unless set (radix candidates, see {@link withPackings}). */
  rank?: number;
  build: () => DecodeGraph;
}

/** Rough bytes a decode node costs in the file (names, attributes). */
const NODE_BYTES = 60;
/** Rough bytes of an initializer's framing (name, dims, type). */
const INIT_BYTES = 40;

/**
 * Payload plus framing. The decoding functions are shared by all layers of a model (a few hundred
 * bytes each, once), so they are not charged to any one layer.
 */
function framedBytes(g: DecodeGraph, streamBytes = 0): number {
  return payloadBytes(g) + streamBytes + g.nodes.length * NODE_BYTES + g.initializers.length * INIT_BYTES;
}

/**
 * A candidate sized from its `skeleton` (the same decoder called with empty per-weight streams:
 * codebooks, scales, shapes as they will be written) plus `streamBytes`, the bytes of the streams
 * left out (packed codes, kept values), which follow from their lengths alone.
 */
function sized(kind: string, skeleton: DecodeGraph, streamBytes: number, build: () => DecodeGraph): Candidate {
  return { kind, bytes: framedBytes(skeleton, streamBytes), build };
}

/**
 * Adds the candidate `kind` whose `n` indices into `k` entries are bit-packed and, when
 * {@link radixLayout} has a layout for k, `radix-<kind>` with base-k digits. `skeleton(radix)` is
 * the decoder with no indices, `build(radix)` the real one; `otherStreams` the bytes of its other
 * streams (a mask).
 *
 * The radix candidate always ranks ahead of its bit-packed sibling (at its own size when smaller,
 * else one byte below the sibling's): it can only be larger on a small layer, by less than one word
 * of padding (⌈n/d⌉·w < n·b/8 + w) plus the difference of their unpack tables, which are per-model
 * constants anyway (one per width or radix, or none when the model calls the per-width function);
 * while one layer packed unlike its neighbours costs the model a second decoding function (~600 to
 * 800 bytes: ResNet-8 with k = 7 had `Codebook3` for its 144-weight first conv beside `CodebookR7`).
 */
function withPackings(out: Candidate[], kind: string, k: number, n: number, skeleton: (radix: boolean) => DecodeGraph, build: (radix: boolean) => DecodeGraph, otherStreams = 0): void {
  const bits = sized(kind, skeleton(false), otherStreams + packedLength(n, bitsFor(k)), () => build(false));
  out.push(bits);
  const r = radixLayout(k);
  if (!r) return;
  const c = sized(`radix-${kind}`, skeleton(true), otherStreams + radixLength(n, r), () => build(true));
  out.push({ ...c, rank: Math.min(c.bytes, bits.bytes - 1) });
}

/** Largest float-code width for which a full lookup table (2^bits float32) is used. */
const MAX_TABLE_BITS = 10;

const NO_CODES = new Uint8Array(0);

/**
 * Every candidate encoding of `ct` with its exact size, smallest first (ties keep the order below:
 * native forms, distinct values, fp16 / bf16, dense).
 */
function candidates(name: string, dims: readonly number[], ct: CompressedTensor): Candidate[] {
  const w = ct.weights;
  const n = w.length;
  const out: Candidate[] = [];
  const s = ct.storage;
  switch (s.kind) {
    case 'codebook': {
      const bits = bitsFor(s.k);
      if (s.scale) {
        const o = { dims, codebook: s.codebook, k: s.k, indices: s.indices, bits, scale: s.scale.values, scaleAxis: s.scale.axis };
        withPackings(out, 'scaled-codebook', s.k, n, (radix) => scaledCodebookDecoder(name, { ...o, indices: NO_CODES, radix }), (radix) => scaledCodebookDecoder(name, { ...o, radix }));
        break;
      }
      const o = { dims, codebook: s.codebook, k: s.k, axis: s.axis, indices: s.indices, bits };
      withPackings(out, 'codebook', s.k, n, (radix) => codebookDecoder(name, { ...o, indices: NO_CODES, radix }), (radix) => codebookDecoder(name, { ...o, radix }));
      if (s.zeroIndex === 0) {
        const m = { dims, codebook: s.codebook, k: s.k, axis: s.axis, indices: s.indices, zeroIndex: 0 as const };
        // The decoder's layout: a 1-bit mask, then kept indices minus one in ⌈log2(k-1)⌉ bits or base-(k-1) digits.
        const mask = packedLength(n, 1);
        withPackings(out, 'masked-codebook', Math.max(2, s.k - 1), countNonZero(s.indices), (radix) => maskedCodebookDecoder(name, { ...m, indices: NO_CODES, radix }), (radix) => maskedCodebookDecoder(name, { ...m, radix }), mask);
      }
      break;
    }
    case 'quant': {
      const q = { dims, bits: s.bits, symmetric: s.symmetric, axis: s.axis, scale: s.scale, zeroPoint: s.zeroPoint, codes: s.codes };
      const none = s.codes instanceof Int8Array ? new Int8Array(0) : NO_CODES;
      // 8 bits: one int8/uint8 initializer of the weight's shape; fewer: a packed stream.
      const skeleton = quantDecoder(name, { ...q, codes: none, dims: s.bits === 8 ? [0] : dims });
      out.push(sized(`quant${s.bits}`, skeleton, s.bits === 8 ? n : packedLength(n, s.bits), () => quantDecoder(name, q)));
      if (ct.spec.technique === 'prune+quant') {
        const streams = packedLength(n, 1) + packedLength(countOffZeroPoint(dims, s.axis, s.codes, s.zeroPoint), s.bits);
        out.push(sized(`masked-quant${s.bits}`, maskedQuantDecoder(name, { ...q, codes: none }), streams, () => maskedQuantDecoder(name, q)));
      }
      break;
    }
    case 'float': {
      const bits = 1 + s.spec.exponentBits + s.spec.mantissaBits;
      if (s.format === 'fp16' || s.format === 'bf16') {
        const dt = s.format === 'fp16' ? DataType.FLOAT16 : DataType.BFLOAT16;
        const codes = s.codes;
        out.push(sized(s.format, castDecoder(name, [0], dt, new Uint16Array(0)), 2 * n, () => castDecoder(name, dims, dt, codes instanceof Uint16Array ? codes : Uint16Array.from(codes))));
      } else if (bits <= MAX_TABLE_BITS) {
        const table = Float32Array.from({ length: 2 ** bits }, (_, c) => {
          const v = decodeFormat(c, s.spec);
          return Number.isFinite(v) ? v : 0;
        });
        const o = { dims, codebook: table, k: table.length, axis: null, indices: s.codes, bits };
        out.push(sized('table', codebookDecoder(name, { ...o, indices: NO_CODES }), packedLength(n, bits), () => codebookDecoder(name, o)));
      }
      break;
    }
    case 'sparse':
      // Kept values are float32 (4 bytes each) after a leading 0.
      out.push(sized('mask', maskDecoder(name, dims, NO_CODES, new Float32Array(0)), packedLength(n, 1) + 4 * s.values.length, () => maskDecoder(name, dims, s.mask, s.values)));
      break;
    case 'lowrank':
      // Low rank is a graph rewrite (two layers), see lowRank.ts; here only the generic forms.
      break;
  }
  const distinct = distinctValues(w, 256);
  if (distinct) {
    const k = Math.max(2, distinct.length);
    const codebook = new Float32Array(k);
    codebook.set(distinct);
    const o = { dims, codebook, k, axis: null, bits: bitsFor(k) };
    withPackings(out, 'distinct', k, n, (radix) => codebookDecoder(name, { ...o, indices: NO_CODES, radix }), (radix) => codebookDecoder(name, { ...o, radix, indices: distinctIndices(w, distinct) }));
  }
  if (halfExact(w)) out.push(sized('fp16', castDecoder(name, [0], DataType.FLOAT16, new Uint16Array(0)), 2 * n, () => castDecoder(name, dims, DataType.FLOAT16, toUint16(w, floatToHalf))));
  else if (bfloat16Exact(w)) out.push(sized('bf16', castDecoder(name, [0], DataType.BFLOAT16, new Uint16Array(0)), 2 * n, () => castDecoder(name, dims, DataType.BFLOAT16, toUint16(w, floatToBfloat16))));
  out.push(sized('dense', denseDecoder(name, [0], new Float32Array(0)), 4 * n, () => denseDecoder(name, dims, w)));
  return out.sort((a, b) => (a.rank ?? a.bytes) - (b.rank ?? b.bytes));
}

/**
 * Every encoding of `ct` (for weight `name` of shape `dims`) that reproduces `ct.weights` exactly,
 * smallest first, each one built.
 * @throws E_INTERNAL when a built graph's size differs from the size computed without building it.
 */
export function encodingChoices(name: string, dims: readonly number[], ct: CompressedTensor): EncodingChoice[] {
  return candidates(name, dims, ct).map((c) => {
    const graph = c.build();
    const bytes = framedBytes(graph);
    if (bytes !== c.bytes) fail('E_INTERNAL', `Encoding '${c.kind}' of '${name}': computed ${c.bytes} bytes, built ${bytes}.`);
    return { kind: c.kind, graph, bytes };
  });
}

/**
 * The smallest encoding of `ct`. Its `graph` is built when first read, so a caller that needs only
 * `kind` and `bytes` (the sensitivity study) builds nothing.
 */
export function chooseEncoding(name: string, dims: readonly number[], ct: CompressedTensor): EncodingChoice {
  const best = candidates(name, dims, ct)[0]!;
  let graph: DecodeGraph | undefined;
  return {
    kind: best.kind,
    bytes: best.bytes,
    get graph(): DecodeGraph {
      return (graph ??= best.build());
    },
  };
}

/**
 * `Uint16Array.from(w, f)` as a plain loop: `from` with a map function goes through an iterator
 * and boxed numbers (a 38 M-weight layer: 12 s and 1.3 GiB more memory, instead of 0.3 s).
 */
function toUint16(w: Float32Array, f: (v: number) => number): Uint16Array {
  const out = new Uint16Array(w.length);
  for (let i = 0; i < w.length; i++) out[i] = f(w[i]!);
  return out;
}

/** Index of each value of `w` in `distinct` (its sorted distinct values), by bit pattern. */
function distinctIndices(w: Float32Array, distinct: Float32Array): Uint8Array {
  const index = new Map<number, number>();
  new Uint32Array(distinct.buffer, distinct.byteOffset, distinct.length).forEach((bitsOf, i) => index.set(bitsOf, i));
  const wBits = new Uint32Array(w.buffer, w.byteOffset, w.length);
  const indices = new Uint8Array(w.length);
  for (let i = 0; i < indices.length; i++) indices[i] = index.get(wBits[i]!)!;
  return indices;
}

/**
 * Sorted distinct values (by bit pattern, so -0 and 0 differ) if there are at most `max` (≤ 1024).
 * An open-addressing set of 2048 slots (this runs on every weight of every cell; a `Set` call per
 * weight costs seconds on a 67 M-weight layer).
 */
function distinctValues(w: Float32Array, max: number): Float32Array | undefined {
  const SLOTS = 2048;
  const keys = new Uint32Array(SLOTS);
  const used = new Uint8Array(SLOTS);
  const seen = new Uint32Array(max);
  const bits = new Uint32Array(w.buffer, w.byteOffset, w.length);
  let count = 0;
  let last = -1;
  for (let i = 0; i < bits.length; i++) {
    const b = bits[i]!;
    if (b === last) continue;
    last = b;
    let h = Math.imul(b, 0x9e3779b1) >>> 21;
    while (used[h] && keys[h] !== b) h = (h + 1) & (SLOTS - 1);
    if (!used[h]) {
      if (count === max) return undefined;
      used[h] = 1;
      keys[h] = b;
      seen[count++] = b;
    }
  }
  return new Float32Array(seen.buffer, 0, count).sort();
}

function countNonZero(a: Uint8Array | Uint16Array): number {
  let kept = 0;
  for (let i = 0; i < a.length; i++) if (a[i] !== 0) kept++;
  return kept;
}

/** Codes that differ from their channel's zero point (what `maskedQuantDecoder` keeps). */
function countOffZeroPoint(dims: readonly number[], axis: number | null, codes: Int8Array | Uint8Array, zeroPoint: Int32Array): number {
  let inner = codes.length;
  let channels = 1;
  if (axis !== null) {
    channels = dims[axis]!;
    inner = 1;
    for (let a = axis + 1; a < dims.length; a++) inner *= dims[a]!;
  }
  let kept = 0;
  for (let p = 0; p < codes.length; ) {
    for (let c = 0; c < channels; c++) {
      const z = zeroPoint[c]!;
      for (let i = 0; i < inner; i++, p++) if (codes[p] !== z) kept++;
    }
  }
  return kept;
}

/**
 * Whether every value is exactly a float16 value (`halfToFloat(floatToHalf(v))` is `v`, -0
 * included), from the bit pattern: zero, ±Inf, or a float32 normal whose significand fits the
 * float16 grid at its exponent (10 fraction bits from 2^-14 up, a multiple of 2^-24 below).
 */
function halfExact(w: Float32Array): boolean {
  const bits = new Uint32Array(w.buffer, w.byteOffset, w.length);
  for (let i = 0; i < bits.length; i++) {
    const mag = bits[i]! & 0x7fffffff;
    // Zero, ±Inf and NaN round-trip (NaN stays NaN, which Object.is counts as equal).
    if (mag === 0 || mag >= 0x7f800000) continue;
    const e = (mag >>> 23) - 127;
    if (e > 15 || e < -24) return false;
    // Fraction bits below the float16 grid must be zero: 13 for normals, 13 + (-14 - e) below 2^-14.
    const drop = e >= -14 ? 13 : -1 - e;
    if (((mag & 0x7fffff) | 0x800000) & ((1 << drop) - 1)) return false;
  }
  return true;
}

/** Whether every value is exactly a bfloat16 value: the low 16 bits of each pattern are 0 (NaN aside). */
function bfloat16Exact(w: Float32Array): boolean {
  const bits = new Uint32Array(w.buffer, w.byteOffset, w.length);
  for (let i = 0; i < bits.length; i++) {
    const b = bits[i]!;
    if (b & 0xffff && (b & 0x7fffffff) <= 0x7f800000) return false;
  }
  return true;
}

/** The reference definitions of {@link halfExact} and {@link bfloat16Exact}, for tests. */
export const exactnessReference = {
  half: (w: Float32Array): boolean => exactIn(w, floatToHalf, halfToFloat),
  bfloat16: (w: Float32Array): boolean => exactIn(w, floatToBfloat16, bfloat16ToFloat),
  fastHalf: halfExact,
  fastBfloat16: bfloat16Exact,
};

function exactIn(w: Float32Array, enc: (x: number) => number, dec: (c: number) => number): boolean {
  for (let i = 0; i < w.length; i++) {
    if (!Object.is(dec(enc(w[i]!)), w[i]!)) return false;
  }
  return true;
}
