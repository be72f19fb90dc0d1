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
