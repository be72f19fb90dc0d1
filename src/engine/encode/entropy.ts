/**
 * Entropy coders for the code streams of an archive (`archive.ts`, format in `docs/archive.md`):
 * a canonical Huffman code and an adaptive binary range coder (LZMA's), both over symbols
 * 0…2^bits-1. Decoders never read past their input and report corruption as `undefined` results
 * or thrown {@link EntropyError}s, which the archive turns into E_MODEL_INVALID.
 */
import { huffmanCodeLengths } from '../compress/huffman';

/** Raised by the decoders on corrupt input; the archive adds the file name. */
export class EntropyError extends Error {
  override readonly name = 'EntropyError';
}

/** Longest Huffman code the format allows (the decoder uses a 2^16-entry lookup table). */
export const MAX_HUFFMAN_LENGTH = 16;

/** Growable byte buffer. */
class ByteSink {
  buf = new Uint8Array(1024);
  length = 0;
  push(b: number): void {
    if (this.length === this.buf.length) {
      const next = new Uint8Array(this.buf.length * 2);
      next.set(this.buf);
      this.buf = next;
    }
    this.buf[this.length++] = b;
  }
  finish(): Uint8Array<ArrayBuffer> {
    return this.buf.slice(0, this.length);
  }
}

/**
 * Empirical order-0 entropy of `symbols`: Σ_s -c_s · log2(c_s / n), in bits. The bound a static
 * order-0 coder cannot beat (tables excluded); context models can.
 */
export function entropyBits(symbols: ArrayLike<number>, alphabet: number): number {
  const counts = new Float64Array(alphabet);
  for (let i = 0; i < symbols.length; i++) counts[symbols[i]!]!++;
  let h = 0;
  for (const c of counts) if (c > 0) h -= c * Math.log2(c / symbols.length);
  return h;
}

/**
 * Canonical Huffman encoding of `symbols` (each < 2^bits). Layout, one MSB-first bit stream:
 * `w` in 3 bits (1…5, the width of a code length), then 2^bits code lengths of `w` bits each
 * (0 = symbol unused), then each symbol's code, zero-padded to a byte. Codes are canonical
 * (DEFLATE's rule: shorter codes first, ties by symbol value).
 * @returns `undefined` when the optimal code is longer than {@link MAX_HUFFMAN_LENGTH} bits or
 * there are no symbols.
 */
export function huffmanEncode(symbols: Uint8Array, bits: number): Uint8Array<ArrayBuffer> | undefined {
  const alphabet = 1 << bits;
  const counts = new Float64Array(alphabet);
  for (let i = 0; i < symbols.length; i++) counts[symbols[i]!]!++;
  const lengths = huffmanCodeLengths(counts);
  let maxLen = 0;
  for (const l of lengths) maxLen = Math.max(maxLen, l);
  if (maxLen === 0 || maxLen > MAX_HUFFMAN_LENGTH) return undefined;
  const w = Math.ceil(Math.log2(maxLen + 1));
  const codes = canonicalCodes(lengths);
  const out = new ByteSink();
  let acc = 0;
  let accBits = 0;
  const put = (value: number, n: number): void => {
    // n ≤ 16 and accBits < 8, so acc stays below 2^24.
    acc = (acc << n) | value;
    accBits += n;
    while (accBits >= 8) {
      accBits -= 8;
      out.push((acc >>> accBits) & 0xff);
    }
    acc &= (1 << accBits) - 1;
  };
  put(w, 3);
  for (let s = 0; s < alphabet; s++) put(lengths[s]!, w);
  for (let i = 0; i < symbols.length; i++) {
    const s = symbols[i]!;
    put(codes[s]!, lengths[s]!);
  }
  if (accBits > 0) put(0, 8 - accBits);
  return out.finish();
}

/** Canonical code values for code lengths (DEFLATE, RFC 1951 §3.2.2). */
function canonicalCodes(lengths: Uint8Array): Uint32Array {
  const blCount = new Uint32Array(MAX_HUFFMAN_LENGTH + 2);
  for (const l of lengths) if (l) blCount[l]!++;
  const next = new Uint32Array(MAX_HUFFMAN_LENGTH + 2);
  let code = 0;
  for (let len = 1; len <= MAX_HUFFMAN_LENGTH + 1; len++) {
    code = (code + blCount[len - 1]!) << 1;
    next[len] = code;
  }
  const codes = new Uint32Array(lengths.length);
  for (let s = 0; s < lengths.length; s++) if (lengths[s]) codes[s] = next[lengths[s]!]!++;
  return codes;
}

/**
 * Inverse of {@link huffmanEncode}: `count` symbols of `bits` bits.
 * @throws EntropyError on a bad table, an invalid code or a stream that ends early.
 */
export function huffmanDecode(data: Uint8Array, bits: number, count: number): Uint8Array {
  const alphabet = 1 << bits;
  let pos = 0; // bit position
  const totalBits = data.length * 8;
  const read = (n: number): number => {
    if (pos + n > totalBits) throw new EntropyError('the Huffman stream ends early');
    let v = 0;
    for (let i = 0; i < n; i++, pos++) v = (v << 1) | ((data[pos >>> 3]! >>> (7 - (pos & 7))) & 1);
    return v;
  };
  const w = read(3);
  if (w < 1 || w > 5) throw new EntropyError(`bad Huffman length width ${w}`);
  const lengths = new Uint8Array(alphabet);
  let kraft = 0;
  for (let s = 0; s < alphabet; s++) {
    const l = read(w);
    if (l > MAX_HUFFMAN_LENGTH) throw new EntropyError(`Huffman code length ${l} > ${MAX_HUFFMAN_LENGTH}`);
    lengths[s] = l;
    if (l) kraft += 2 ** (MAX_HUFFMAN_LENGTH - l);
  }
  if (kraft === 0 || kraft > 2 ** MAX_HUFFMAN_LENGTH) throw new EntropyError('the Huffman code table is not a prefix code');
  const codes = canonicalCodes(lengths);
  // Lookup table on the next 16 bits: symbol and length (0 = no code, a corrupt stream).
  const sym = new Uint8Array(1 << MAX_HUFFMAN_LENGTH);
  const len = new Uint8Array(1 << MAX_HUFFMAN_LENGTH);
  for (let s = 0; s < alphabet; s++) {
    const l = lengths[s]!;
    if (!l) continue;
    const start = codes[s]! << (MAX_HUFFMAN_LENGTH - l);
    const end = start + (1 << (MAX_HUFFMAN_LENGTH - l));
    sym.fill(s, start, end);
    len.fill(l, start, end);
  }
  const out = new Uint8Array(count);
  for (let i = 0; i < count; i++) {
    // Peek 16 bits (zeros past the end; the length check below catches a real overrun).
    const byte = pos >>> 3;
    const peek24 = ((data[byte] ?? 0) << 16) | ((data[byte + 1] ?? 0) << 8) | (data[byte + 2] ?? 0);
    const key = (peek24 >>> (8 - (pos & 7))) & 0xffff;
    const l = len[key]!;
    if (l === 0) throw new EntropyError(`invalid Huffman code at bit ${pos}`);
    pos += l;
    if (pos > totalBits) throw new EntropyError('the Huffman stream ends early');
    out[i] = sym[key]!;
  }
  return out;
}

const PROB_BITS = 16;
const PROB_ONE = 1 << PROB_BITS;
/**
 * Adaptation shifts (fast, slow) of the two probability estimates that are averaged, by rate set:
 * set 0 moves by 1/16 and 1/128 of the error (non-stationary streams), set 1 by 1/128 and 1/1024
 * (near-static skewed streams such as masks or a dominant zero code).
 */
export const RATE_SETS: ReadonlyArray<readonly [number, number]> = [
  [4, 7],
  [6, 10],
];

/** Most bits a probability slot counts before its rates stop slowing down. */
const MAX_SEEN = 1023;

/**
 * Update factors (×2^16) by the number of bits a slot has seen: `65536 / (n + 1.5)` (a running
 * frequency estimate while the slot is young) but never below `65536 >> shift`.
 */
function rateTable(shift: number): Uint32Array {
  return Uint32Array.from({ length: MAX_SEEN + 1 }, (_, n) => Math.max(65536 >>> shift, Math.round(65536 / (n + 1.5))));
}
const TOP = 2 ** 24;

/** Probability slots the range coder uses for `bits`-bit symbols with `order` context symbols. */
function modelSize(bits: number, order: number): number {
  return 2 ** (bits * order + bits);
}

/** Largest context the range coder accepts: bits · order ≤ this. */
export const MAX_CONTEXT_BITS = 16;

/**
 * Adaptive binary range coding (LZMA's range coder, with 16-bit probabilities). The probability of
 * a 0 bit is the mean of two estimates that start at 1/2 and move by a fraction `a_n` of the error
 * after the n-th bit the slot sees (n from 0, counted up to 1023): `p ← p + ⌊(65536 - p)·a_n / 65536⌋`
 * after a 0, `p ← p - ⌊p·a_n / 65536⌋` after a 1, with `a_n = max(65536 >> r, round(65536 / (n + 1.5)))`
 * and r the fast or slow shift of {@link RATE_SETS}`[rates]`;
 * the coder uses `bound = (range >>> 16) · ((fast + slow) >>> 1)`. Each symbol is coded MSB first through a bit tree (node 1, then
 * 2·node + bit); the tree is chosen by the previous `order` symbols (context
 * `Σ_j prev_j · 2^(bits·j)`, zeros before the start). Output is the LZMA range coder's byte stream
 * (its first byte is always 0), ending with the 5 flush bytes.
 */
export function rangeEncode(symbols: Uint8Array, bits: number, order: number, rates = 0): Uint8Array<ArrayBuffer> {
  const [FAST, SLOW] = RATE_SETS[rates]!;
  const rf = rateTable(FAST);
  const rs = rateTable(SLOW);
  if (bits * order > MAX_CONTEXT_BITS) throw new RangeError(`context of ${bits * order} bits is too large`);
  const fast = new Uint16Array(modelSize(bits, order)).fill(PROB_ONE >>> 1);
  const slow = new Uint16Array(modelSize(bits, order)).fill(PROB_ONE >>> 1);
  const seen = new Uint16Array(modelSize(bits, order));
  const ctxMask = 2 ** (bits * order) - 1;
  const out = new ByteSink();
  let low = 0; // < 2^33, exact in a double
  let range = 0xffffffff;
  let cache = 0;
  let cacheSize = 1;
  const shiftLow = (): void => {
    const hi = low >= 2 ** 32 ? 1 : 0;
    const lo32 = low - hi * 2 ** 32;
    if (lo32 < 0xff000000 || hi) {
      let temp = cache;
      do {
        out.push((temp + hi) & 0xff);
        temp = 0xff;
      } while (--cacheSize !== 0);
      cache = lo32 >>> 24;
    }
    cacheSize++;
    low = (lo32 & 0x00ffffff) * 256;
  };
  let ctx = 0;
  const top = 1 << bits;
  for (let i = 0; i < symbols.length; i++) {
    const s = symbols[i]!;
    const base = ctx * top;
    let node = 1;
    for (let b = bits - 1; b >= 0; b--) {
      const bit = (s >>> b) & 1;
      const j = base + node;
      const f = fast[j]!;
      const w = slow[j]!;
      const bound = (range >>> PROB_BITS) * ((f + w) >>> 1);
      const n = seen[j]!;
      if (n < MAX_SEEN) seen[j] = n + 1;
      if (bit === 0) {
        range = bound;
        fast[j] = f + Math.floor(((PROB_ONE - f) * rf[n]!) / PROB_ONE);
        slow[j] = w + Math.floor(((PROB_ONE - w) * rs[n]!) / PROB_ONE);
      } else {
        low += bound;
        range -= bound;
        fast[j] = f - Math.floor((f * rf[n]!) / PROB_ONE);
        slow[j] = w - Math.floor((w * rs[n]!) / PROB_ONE);
      }
      while (range < TOP) {
        range = (range * 256) >>> 0;
        shiftLow();
      }
      node = (node << 1) | bit;
    }
    ctx = order ? ((ctx * top + s) & ctxMask) : 0;
  }
  for (let i = 0; i < 5; i++) shiftLow();
  return out.finish();
}

/**
 * Inverse of {@link rangeEncode}: `count` symbols.
 * @throws EntropyError when the stream ends early.
 */
export function rangeDecode(data: Uint8Array, bits: number, order: number, count: number, rates = 0): Uint8Array {
  const rateSet = RATE_SETS[rates];
  if (!rateSet) throw new EntropyError(`unknown rate set ${rates}`);
  const [FAST, SLOW] = rateSet;
  const rf = rateTable(FAST);
  const rs = rateTable(SLOW);
  if (bits * order > MAX_CONTEXT_BITS) throw new EntropyError(`context of ${bits * order} bits is too large`);
  if (data.length < 5) throw new EntropyError('the range-coded stream is shorter than 5 bytes');
  const fast = new Uint16Array(modelSize(bits, order)).fill(PROB_ONE >>> 1);
  const slow = new Uint16Array(modelSize(bits, order)).fill(PROB_ONE >>> 1);
  const seen = new Uint16Array(modelSize(bits, order));
  const ctxMask = 2 ** (bits * order) - 1;
  let pos = 0;
  let code = 0;
  for (let i = 0; i < 5; i++) code = ((code * 256) + data[pos++]!) % 2 ** 32;
  let range = 0xffffffff;
  const out = new Uint8Array(count);
  let ctx = 0;
  const top = 1 << bits;
  for (let i = 0; i < count; i++) {
    const base = ctx * top;
    let node = 1;
    for (let b = 0; b < bits; b++) {
      const j = base + node;
      const f = fast[j]!;
      const w = slow[j]!;
      const bound = (range >>> PROB_BITS) * ((f + w) >>> 1);
      const n = seen[j]!;
      if (n < MAX_SEEN) seen[j] = n + 1;
      let bit: number;
      if (code < bound) {
        range = bound;
        fast[j] = f + Math.floor(((PROB_ONE - f) * rf[n]!) / PROB_ONE);
        slow[j] = w + Math.floor(((PROB_ONE - w) * rs[n]!) / PROB_ONE);
        bit = 0;
      } else {
        code -= bound;
        range -= bound;
        fast[j] = f - Math.floor((f * rf[n]!) / PROB_ONE);
        slow[j] = w - Math.floor((w * rs[n]!) / PROB_ONE);
        bit = 1;
      }
      while (range < TOP) {
        if (pos >= data.length) throw new EntropyError('the range-coded stream ends early');
        range = (range * 256) >>> 0;
        code = ((code * 256) >>> 0) + data[pos++]!;
      }
      node = (node << 1) | bit;
    }
    const s = node - top;
    out[i] = s;
    ctx = order ? ((ctx * top + s) & ctxMask) : 0;
  }
  return out;
}
