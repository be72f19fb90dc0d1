/**
 * Picks, for one compressed tensor, the smallest ONNX encoding that decodes to exactly its
 * reconstruction. Candidates: the technique's native form (codebook + packed indices, integer codes
 * + DequantizeLinear, fp16/bf16 + Cast, float codes + lookup table, pruning mask + kept values), and
 * generic ones that apply to any reconstruction: a codebook of its distinct values, float16 /
 * bfloat16 when every value is exactly representable, and plain float32.
 */
import { decodeFormat, type CompressedTensor } from '../compress';
import { bfloat16ToFloat, DataType, floatToBfloat16, floatToHalf, halfToFloat } from '../onnx';
import { bitsFor } from './bits';
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
  /** Initializers + nodes producing the weight. */
  graph: DecodeGraph;
  /** Payload bytes plus an estimate of the graph's own bytes. */
  bytes: number;
}

/** Rough bytes a decode node costs in the file (names, attributes). */
const NODE_BYTES = 60;
/** Rough bytes of an initializer's framing (name, dims, type). */
const INIT_BYTES = 40;

/**
 * Payload plus framing. The decoding functions are shared by all layers of a model (a few hundred
 * bytes each, once), so they are not charged to any one layer.
 */
function choice(kind: string, graph: DecodeGraph): EncodingChoice {
  return { kind, graph, bytes: payloadBytes(graph) + graph.nodes.length * NODE_BYTES + graph.initializers.length * INIT_BYTES };
}

/** Largest float-code width for which a full lookup table (2^bits float32) is used. */
const MAX_TABLE_BITS = 10;

/**
 * Every encoding of `ct` (for weight `name` of shape `dims`) that reproduces `ct.weights` exactly,
 * smallest first.
 */
export function encodingChoices(name: string, dims: readonly number[], ct: CompressedTensor): EncodingChoice[] {
  const w = ct.weights;
  const out: EncodingChoice[] = [];
  const s = ct.storage;
  switch (s.kind) {
    case 'codebook':
      if (s.scale) {
        out.push(choice('scaled-codebook', scaledCodebookDecoder(name, { dims, codebook: s.codebook, k: s.k, indices: s.indices, bits: bitsFor(s.k), scale: s.scale.values, scaleAxis: s.scale.axis })));
        break;
      }
      out.push(choice('codebook', codebookDecoder(name, { dims, codebook: s.codebook, k: s.k, axis: s.axis, indices: s.indices, bits: bitsFor(s.k) })));
      if (s.zeroIndex === 0) out.push(choice('masked-codebook', maskedCodebookDecoder(name, { dims, codebook: s.codebook, k: s.k, axis: s.axis, indices: s.indices, zeroIndex: 0 })));
      break;
    case 'quant': {
      const q = { dims, bits: s.bits, symmetric: s.symmetric, axis: s.axis, scale: s.scale, zeroPoint: s.zeroPoint, codes: s.codes };
      out.push(choice(`quant${s.bits}`, quantDecoder(name, q)));
      if (ct.spec.technique === 'prune+quant') out.push(choice(`masked-quant${s.bits}`, maskedQuantDecoder(name, q)));
      break;
    }
    case 'float': {
      const bits = 1 + s.spec.exponentBits + s.spec.mantissaBits;
      if (s.format === 'fp16' || s.format === 'bf16') {
        out.push(choice(s.format, castDecoder(name, dims, s.format === 'fp16' ? DataType.FLOAT16 : DataType.BFLOAT16, Uint16Array.from(s.codes))));
      } else if (bits <= MAX_TABLE_BITS) {
        const table = Float32Array.from({ length: 2 ** bits }, (_, c) => {
          const v = decodeFormat(c, s.spec);
          return Number.isFinite(v) ? v : 0;
        });
        out.push(choice('table', codebookDecoder(name, { dims, codebook: table, k: table.length, axis: null, indices: s.codes, bits })));
      }
      break;
    }
    case 'sparse':
      out.push(choice('mask', maskDecoder(name, dims, s.mask, s.values)));
      break;
    case 'lowrank':
      // Low rank is a graph rewrite (two layers), see lowRank.ts; here only the generic forms.
      break;
  }
  const distinct = distinctValues(w, 256);
  if (distinct) {
    const index = new Map<number, number>();
    const u32 = new Uint32Array(distinct.buffer);
    u32.forEach((bitsOf, i) => index.set(bitsOf, i));
    const wBits = new Uint32Array(w.buffer, w.byteOffset, w.length);
    const indices = Uint8Array.from(wBits, (b) => index.get(b)!);
    const k = Math.max(2, distinct.length);
    const codebook = new Float32Array(k);
    codebook.set(distinct);
    out.push(choice('distinct', codebookDecoder(name, { dims, codebook, k, axis: null, indices, bits: bitsFor(k) })));
  }
  if (exactIn(w, floatToHalf, halfToFloat)) out.push(choice('fp16', castDecoder(name, dims, DataType.FLOAT16, Uint16Array.from(w, floatToHalf))));
  else if (exactIn(w, floatToBfloat16, bfloat16ToFloat)) out.push(choice('bf16', castDecoder(name, dims, DataType.BFLOAT16, Uint16Array.from(w, floatToBfloat16))));
  out.push(choice('dense', denseDecoder(name, dims, w)));
  return out.sort((a, b) => a.bytes - b.bytes);
}

/** The smallest encoding of `ct`. */
export function chooseEncoding(name: string, dims: readonly number[], ct: CompressedTensor): EncodingChoice {
  return encodingChoices(name, dims, ct)[0]!;
}

/** Sorted distinct values (by bit pattern, so -0 and 0 differ) if there are at most `max`. */
function distinctValues(w: Float32Array, max: number): Float32Array | undefined {
  const seen = new Set<number>();
  const bits = new Uint32Array(w.buffer, w.byteOffset, w.length);
  for (let i = 0; i < bits.length; i++) {
    seen.add(bits[i]!);
    if (seen.size > max) return undefined;
  }
  const out = new Float32Array(seen.size);
  new Uint32Array(out.buffer).set([...seen]);
  return out.sort();
}

function exactIn(w: Float32Array, enc: (x: number) => number, dec: (c: number) => number): boolean {
  for (let i = 0; i < w.length; i++) {
    if (!Object.is(dec(enc(w[i]!)), w[i]!)) return false;
  }
  return true;
}
