/**
 * Bit packing of small unsigned codes, in the layout the ONNX decoders of `decoders.ts` unpack.
 *
 * Layout for `b`-bit codes (1 ≤ b ≤ 16): codes are taken in groups of 8; a group is the integer
 * `Σ_j code[8g + j] · 2^(b·j)` stored as `b` little-endian bytes. The last group is padded with zero
 * codes. So `n` codes take `⌈n / 8⌉ · b` bytes, and byte `i` of the stream never depends on later
 * groups. For `b = 8` the stream is the codes themselves.
 */
import { fail } from '../errors';

/** Bytes that `n` codes of `bits` bits take when packed. */
export function packedLength(n: number, bits: number): number {
  return bits === 8 ? n : Math.ceil(n / 8) * bits;
}

/**
 * Packs codes (each `< 2^bits`) into bytes.
 * @throws E_BAD_ARGUMENT when a code does not fit in `bits`.
 */
export function packBits(codes: ArrayLike<number>, bits: number): Uint8Array<ArrayBuffer> {
  checkBits(bits);
  const n = codes.length;
  const max = 1 << bits;
  if (bits === 8) {
    const out = new Uint8Array(n);
    for (let i = 0; i < n; i++) {
      const c = codes[i]!;
      if (c < 0 || c >= max) badCode(c, i, bits);
      out[i] = c;
    }
    return out;
  }
  const out = new Uint8Array(packedLength(n, bits));
  let acc = 0; // bit accumulator, < 2^(bits + 8) ≤ 2^24
  let accBits = 0;
  let o = 0;
  const groups = Math.ceil(n / 8);
  for (let g = 0; g < groups; g++) {
    for (let j = 0; j < 8; j++) {
      const i = g * 8 + j;
      const c = i < n ? codes[i]! : 0;
      if (c < 0 || c >= max || !Number.isInteger(c)) badCode(c, i, bits);
      acc |= c << accBits;
      accBits += bits;
      while (accBits >= 8) {
        out[o++] = acc & 0xff;
        acc >>>= 8;
        accBits -= 8;
      }
    }
  }
  return out;
}

/** Inverse of {@link packBits} for codes of at most 8 bits: the first `n` codes. */
export function unpackBits(bytes: Uint8Array, bits: number, n: number): Uint8Array {
  if (bits > 8) fail('E_BAD_ARGUMENT', `unpackBits takes up to 8-bit codes (got ${bits}); use unpackWideBits.`);
  return unpackAny(bytes, bits, n) as Uint8Array;
}

/** Inverse of {@link packBits} for codes of up to 16 bits. */
export function unpackWideBits(bytes: Uint8Array, bits: number, n: number): Uint16Array {
  return Uint16Array.from(unpackAny(bytes, bits, n));
}

function unpackAny(bytes: Uint8Array, bits: number, n: number): Uint8Array | Uint16Array {
  checkBits(bits);
  if (bytes.length < packedLength(n, bits)) fail('E_BAD_ARGUMENT', `Packed stream of ${bytes.length} bytes is too short for ${n} codes of ${bits} bits.`);
  if (bits === 8) return bytes.slice(0, n);
  const out = bits > 8 ? new Uint16Array(n) : new Uint8Array(n);
  const mask = (1 << bits) - 1;
  let acc = 0;
  let accBits = 0;
  let p = 0;
  for (let i = 0; i < n; i++) {
    while (accBits < bits) {
      acc |= bytes[p++]! << accBits;
      accBits += 8;
    }
    out[i] = acc & mask;
    acc >>>= bits;
    accBits -= bits;
  }
  return out;
}

function checkBits(bits: number): void {
  if (!Number.isInteger(bits) || bits < 1 || bits > 16) fail('E_BAD_ARGUMENT', `Bit width ${bits} is outside 1…16.`);
}

function badCode(c: number, i: number, bits: number): never {
  return fail('E_BAD_ARGUMENT', `Code ${c} at position ${i} does not fit in ${bits} bits.`);
}

/** Bits needed for codes in 0…k-1: ⌈log2 k⌉, at least 1. */
export function bitsFor(k: number): number {
  return Math.max(1, Math.ceil(Math.log2(k)));
}

/**
 * Mixed-radix packing of codes 0…k-1: `digits` base-k digits per little-endian word of `wordBytes`
 * bytes, word g = Σ_j code[d·g + j] · k^j (so k^d ≤ 2^(8·wordBytes)), the last word padded with
 * zero codes. `n` codes take `⌈n / d⌉ · wordBytes` bytes: ~log2 k bits per code where bit packing
 * spends ⌈log2 k⌉ (k = 3: 5 per byte, 1.6 bits; k = 5: 13 per uint32, 2.46 bits; k = 6: 3 per
 * byte, 2.67 bits).
 */
export interface RadixLayout {
  /** The radix: codes are 0…k-1. */
  k: number;
  /** Bytes per word: 1, 2 or 4 (uint8, uint16, uint32 in the ONNX file). */
  wordBytes: 1 | 2 | 4;
  /** Digits per word. */
  digits: number;
}

/** The most base-k digits a word of `wordBytes` bytes holds: the largest d with k^d ≤ 2^(8·wordBytes). */
export function radixDigits(k: number, wordBytes: number): number {
  const limit = 2 ** (8 * wordBytes);
  let d = 0;
  for (let p = k; p <= limit; p *= k) d++;
  return d;
}

/**
 * The mixed-radix layout that stores codes 0…k-1 in the fewest bits per code (of uint8, uint16 and
 * uint32 words, the smaller word on ties: less padding), when that is fewer than ⌈log2 k⌉ bits;
 * `undefined` otherwise (k a power of two, k = 12, 24, 48, …, and k > 256: the archive codes symbols
 * of up to 8 bits).
 */
export function radixLayout(k: number): RadixLayout | undefined {
  if (!Number.isInteger(k) || k < 3 || k > 256) return undefined;
  let best: RadixLayout | undefined;
  for (const wordBytes of [1, 2, 4] as const) {
    const digits = radixDigits(k, wordBytes);
    if (digits >= 2 && (!best || wordBytes * best.digits < best.wordBytes * digits)) best = { k, wordBytes, digits };
  }
  return best && 8 * best.wordBytes < bitsFor(k) * best.digits ? best : undefined;
}

/** Bytes that `n` codes take in layout `r`. */
export function radixLength(n: number, r: RadixLayout): number {
  return Math.ceil(n / r.digits) * r.wordBytes;
}

/**
 * Packs codes (each `< r.k`) as {@link RadixLayout} words, little-endian bytes.
 * @throws E_BAD_ARGUMENT when a code is not an integer in 0…k-1 or k^digits does not fit the word.
 */
export function packRadix(codes: ArrayLike<number>, r: RadixLayout): Uint8Array<ArrayBuffer> {
  checkRadix(r);
  const n = codes.length;
  const out = new Uint8Array(radixLength(n, r));
  for (let g = 0, o = 0; o < out.length; g++) {
    // Horner from the top digit: word < k^d ≤ 2^32, exact in a double.
    let word = 0;
    for (let j = r.digits - 1; j >= 0; j--) {
      const i = g * r.digits + j;
      const c = i < n ? codes[i]! : 0;
      if (!(c >= 0 && c < r.k && Number.isInteger(c))) fail('E_BAD_ARGUMENT', `Code ${c} at position ${i} is not a base-${r.k} digit.`);
      word = word * r.k + c;
    }
    for (let b = 0; b < r.wordBytes; b++, o++) {
      out[o] = word % 256;
      word = Math.floor(word / 256);
    }
  }
  return out;
}

/** Inverse of {@link packRadix}: the first `n` codes. */
export function unpackRadix(bytes: Uint8Array, r: RadixLayout, n: number): Uint8Array {
  checkRadix(r);
  if (bytes.length < radixLength(n, r)) fail('E_BAD_ARGUMENT', `Radix-${r.k} stream of ${bytes.length} bytes is too short for ${n} codes.`);
  const out = new Uint8Array(n);
  for (let g = 0, i = 0, p = 0; i < n; g++) {
    let word = 0;
    for (let b = r.wordBytes - 1; b >= 0; b--) word = word * 256 + bytes[p + b]!;
    p += r.wordBytes;
    for (let j = 0; j < r.digits && i < n; j++, i++) {
      out[i] = word % r.k;
      word = Math.floor(word / r.k);
    }
  }
  return out;
}

function checkRadix(r: RadixLayout): void {
  if (!Number.isInteger(r.k) || r.k < 2 || r.k > 256 || ![1, 2, 4].includes(r.wordBytes) || !Number.isInteger(r.digits) || r.digits < 1 || r.digits > radixDigits(r.k, r.wordBytes)) {
    fail('E_BAD_ARGUMENT', `Radix layout k=${r.k}, ${r.digits} digits per ${r.wordBytes}-byte word is invalid (k in 2…256, k^digits ≤ 2^${8 * r.wordBytes}).`);
  }
}
