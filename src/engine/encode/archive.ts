/**
 * A compact archive of a compressed ONNX file, for storage and transmission (format: `docs/archive.md`).
 * The packed code streams that `decoders.ts` writes (bit-packed uint8 initializers, radix-packed
 * uint8/16/32 words, found from the decoder calls) are cut out of the file and entropy-coded one by one,
 * each with the smallest of: stored, brotli, canonical Huffman, or an adaptive context-modelling
 * range coder. Everything else (graph, codebooks, small tensors) is kept losslessly with brotli.
 * Unpacking re-packs the codes and splices them back: the ONNX file comes back byte for byte
 * (checked with its SHA-256).
 */
import { createHash } from 'node:crypto';
import * as zlib from 'node:zlib';
import { CompressError, fail, throwIfAborted } from '../errors';
import { decodeModel, DataType, forEachTensor } from '../onnx';
import { bitsFor, packBits, packedLength, packRadix, radixDigits, radixLayout, unpackBits, unpackRadix, type RadixLayout } from './bits';
import { DECODE_DOMAIN, packedInputBits, packedInputRadix, parsePackedDocString, parseRadixTable } from './decoders';
import { EntropyError, entropyBits, huffmanDecode, huffmanEncode, MAX_CONTEXT_BITS, RATE_SETS, rangeDecode, rangeEncode } from './entropy';

/** The 8 bytes every archive starts with. */
export const ARCHIVE_MAGIC = new Uint8Array([0x4f, 0x4e, 0x4e, 0x58, 0x43, 0x41, 0x31, 0x00]); // "ONNXCA1\0"
/**
 * Format version written after the magic: 2 when a stream is radix-packed (a 20-byte stream entry
 * with the radix), else 1 (19-byte entries, readable by version-1 readers). Readers reject others.
 */
export const ARCHIVE_VERSION = 2;
/** Conventional file extension. */
export const ARCHIVE_EXTENSION = '.onnxc';

/** How a stream (or the rest of the file) is stored; the number is the format's coder id. */
export type ArchiveCoder =
  /** 0: the bytes as they are. */
  | 'raw'
  /** 1: brotli (RFC 7932) of the bytes. */
  | 'brotli'
  /** 2: canonical Huffman code over the unpacked codes (see `entropy.ts`). */
  | 'huffman'
  /** 3: adaptive binary range coder over the unpacked codes, context = previous `order` codes. */
  | 'range';

const CODER_IDS: Record<ArchiveCoder, number> = { raw: 0, brotli: 1, huffman: 2, range: 3 };
const CODERS: readonly ArchiveCoder[] = ['raw', 'brotli', 'huffman', 'range'];

/** Options of {@link packArchive}. */
export interface ArchiveOptions {
  /** Coders to try per stream (default all); `raw` is always allowed. Tests force one at a time. */
  coders: readonly ArchiveCoder[];
  /**
   * Also try brotli of the whole file as one part (no packed streams) for files up to 1 MiB, and keep
   * it when smaller (default true).
   */
  wholeFile: boolean;
  /** Name used in error messages (default `'model'`). */
  source: string;
  /** Checked once per stream. */
  signal: AbortSignal | undefined;
}

/** Merges {@link ArchiveOptions} with their defaults. */
export function makeArchiveOptions(o: Partial<ArchiveOptions> = {}): ArchiveOptions {
  return { coders: CODERS, wholeFile: true, source: 'model', signal: undefined, ...o };
}

/** What happened to one packed stream. */
export interface ArchiveStreamStats {
  /** Initializer name. */
  name: string;
  /** Byte offset of the payload in the ONNX file. */
  offset: number;
  /** Code width (for radix streams: ⌈log2 radix⌉, the width the coders use) and number of codes. */
  bits: number;
  count: number;
  /** The radix k of a stream of base-k digits (`bits.ts` `packRadix`), 0 for bit-packed codes. */
  radix: number;
  /** Packed bytes in the ONNX file. */
  rawBytes: number;
  /** Bytes in the archive. */
  codedBytes: number;
  coder: ArchiveCoder;
  /** Range coder parameter byte: context order (bits 0-4) and rate set (bits 5-7); 0 for other coders. */
  order: number;
  /** Order-0 entropy of the codes, Σ -log2 p(code) / 8, in bytes (a static coder's bound). */
  entropyBytes: number;
}

/** Sizes of an archive, part by part. */
export interface ArchiveStats {
  /** ONNX file bytes. */
  onnxBytes: number;
  /** Archive bytes (header + rest + streams). */
  archiveBytes: number;
  /** Header bytes (magic, fields, stream table). */
  headerBytes: number;
  /** ONNX bytes outside the streams, and how they are stored. */
  rest: { rawBytes: number; codedBytes: number; coder: ArchiveCoder };
  streams: ArchiveStreamStats[];
}

/** A packed archive and its statistics. */
export interface PackResult {
  archive: Uint8Array<ArrayBuffer>;
  stats: ArchiveStats;
}

/** A packed stream found in an ONNX file. */
interface Stream {
  name: string;
  offset: number;
  length: number;
  /** Code width; for radix streams the width of their symbols, ⌈log2 k⌉. */
  bits: number;
  /** Codes in the stream, padding codes included. */
  count: number;
  /** Base-k digits in words, or undefined for bit-packed codes. */
  radix: RadixLayout | undefined;
}

const FIXED_HEADER = 8 + 1 + 4 + 32 + 1 + 4 + 4 + 4;
/** Stream entry bytes by format version (version 2 adds the radix byte). */
const ENTRY_BYTES: Record<number, number> = { 1: 4 + 4 + 4 + 4 + 1 + 1 + 1, 2: 4 + 4 + 4 + 4 + 1 + 1 + 1 + 1 };
/** The element type of radix words of 1, 2, 4 bytes. */
const WORD_TYPES: Record<number, 1 | 2 | 4> = { [DataType.UINT8]: 1, [DataType.UINT16]: 2, [DataType.UINT32]: 4 };
/** Streams up to this size get brotli's best quality; larger ones a faster one (same format). */
const BROTLI_BEST_MAX = 1 << 20;
/** The same for the rest of the file (graph, small tensors, any float layers left uncompressed). */
const BROTLI_BEST_REST_MAX = 4 << 20;
/** Files up to this size are also tried as one brotli stream (no packed streams). */
const WHOLE_FILE_MAX = 1 << 20;

/**
 * Finds the packed code streams of an ONNX file: initializers that a decoding function call
 * (`onnx_compress` domain) reads as packed codes — uint8 bit-packed codes ({@link packedInputBits}:
 * the width comes from the function's name, or for the width-generic functions from their unpack
 * table; the count from the length) and uint8/16/32 words of base-k digits ({@link packedInputRadix}:
 * k from the name or the radix table, the word size from the element type, d digits per word) —
 * and uint8 tensors (any graph) with the older `parsePackedDocString` marker; each must be where the
 * file says and re-pack to the same bytes. Sorted by offset.
 */
export function findPackedStreams(onnx: Uint8Array, source = 'model'): Array<Stream> {
  const model = decodeModel(onnx, source);
  const widths = new Map<string, number>();
  const radixes = new Map<string, RadixLayout>();
  const tables = new Map((model.graph?.initializer ?? []).map((t) => [t.name, t] as const));
  for (const n of model.graph?.node ?? []) {
    if (n.domain !== DECODE_DOMAIN) continue;
    packedInputBits(n.opType)?.forEach((bits, i) => {
      const input = n.input[i];
      if (input) widths.set(input, bits);
    });
    // Width-generic decoders (`Codebook`, `Quant`, ...): the width is the first byte of the unpack
    // table, their last input.
    if (/^(?:Codebook|Quant)(?:PC|S)?$/.test(n.opType)) {
      const t = tables.get(n.input[n.input.length - 1]!);
      const bits = t?.dataType === DataType.UINT8 ? t.rawData[0] : undefined;
      if (bits !== undefined && n.input[0]) widths.set(n.input[0], bits);
    }
    const rx = packedInputRadix(n.opType);
    const input = rx && n.input[rx.input];
    const words = input ? WORD_TYPES[tables.get(input)?.dataType ?? -1] : undefined;
    if (!rx || !input || words === undefined) continue;
    const t = rx.k === 'table' ? tables.get(n.input[n.input.length - 1]!) : undefined;
    const r = rx.k === 'table' ? t && parseRadixTable(t.dataType, t.rawData) : radixLayout(rx.k);
    // The per-radix functions hold the most digits a word of the stream's type takes.
    if (r) radixes.set(input, rx.k === 'table' ? r : { k: r.k, wordBytes: words, digits: radixDigits(r.k, words) });
  }
  const main = new Set(model.graph?.initializer ?? []);
  const found: Stream[] = [];
  forEachTensor(model, (t) => {
    const raw = t.rawData;
    if (raw.buffer !== onnx.buffer) return;
    const offset = raw.byteOffset - onnx.byteOffset;
    if (offset < 0 || offset + raw.length > onnx.length) return;
    const r = main.has(t) ? radixes.get(t.name) : undefined;
    if (r) {
      if (WORD_TYPES[t.dataType] !== r.wordBytes || r.digits < 1 || r.k > 255 || raw.length === 0 || raw.length % r.wordBytes !== 0) return;
      const count = (raw.length / r.wordBytes) * r.digits;
      // Only streams of valid digits and zero padding come back identical from packRadix.
      if (!equalBytes(packRadix(unpackRadix(raw, r, count), r), raw)) return;
      found.push({ name: t.name, offset, length: raw.length, bits: bitsFor(r.k), count, radix: r });
      return;
    }
    const marked = parsePackedDocString(t.docString);
    const bits = marked?.bits ?? (main.has(t) ? widths.get(t.name) : undefined);
    if (bits === undefined || t.dataType !== DataType.UINT8 || bits < 1 || bits > 8) return;
    const count = marked?.count ?? (bits === 8 ? raw.length : ((raw.length / bits) | 0) * 8);
    if (count === 0 || raw.length !== packedLength(count, bits)) return;
    // Only streams whose padding is zero come back identical from packBits.
    if (!equalBytes(packBits(unpackBits(raw, bits, count), bits), raw)) return;
    found.push({ name: t.name, offset, length: raw.length, bits, count, radix: undefined });
  });
  found.sort((a, b) => a.offset - b.offset);
  return found.filter((s, i) => i === 0 || s.offset >= found[i - 1]!.offset + found[i - 1]!.length);
}

/**
 * Packs the bytes of a compressed ONNX file (one file, no external data) into an archive.
 * @throws E_MODEL_INVALID when `onnx` is not an ONNX model; E_MODEL_UNSUPPORTED past 4 GiB.
 */
export function packArchive(onnx: Uint8Array, options: Partial<ArchiveOptions> = {}): Uint8Array<ArrayBuffer> {
  return packArchiveWithStats(onnx, options).archive;
}

/** Per-stream sizes of the archive of `onnx` (packs it; see {@link packArchiveWithStats}). */
export function archiveStats(onnx: Uint8Array, options: Partial<ArchiveOptions> = {}): ArchiveStats {
  return packArchiveWithStats(onnx, options).stats;
}

/** {@link packArchive} with the statistics of every part. */
export function packArchiveWithStats(onnx: Uint8Array, options: Partial<ArchiveOptions> = {}): PackResult {
  const o = makeArchiveOptions(options);
  if (onnx.length >= 2 ** 32) fail('E_MODEL_UNSUPPORTED', `${o.source}: ${onnx.length} bytes is past the archive's 4 GiB limit.`);
  const streams = findPackedStreams(onnx, o.source);
  const best = assemble(onnx, streams, o);
  if (o.wholeFile && streams.length > 0 && onnx.length <= WHOLE_FILE_MAX && o.coders.includes('brotli')) {
    // Small files: brotli of the whole file sometimes wins (it models streams and graph jointly).
    const whole = assemble(onnx, [], o);
    if (whole.archive.length < best.archive.length) return whole;
  }
  return best;
}

function assemble(onnx: Uint8Array, streams: Stream[], o: ArchiveOptions): PackResult {
  const restParts: Uint8Array[] = [];
  let cursor = 0;
  for (const s of streams) {
    restParts.push(onnx.subarray(cursor, s.offset));
    cursor = s.offset + s.length;
  }
  restParts.push(onnx.subarray(cursor));
  const rest = Buffer.concat(restParts);
  const restCoded = bestOf(rest, o.coders.includes('brotli') ? [['raw', rest], ['brotli', brotli(rest, rest.length <= BROTLI_BEST_REST_MAX ? 11 : 9)]] : [['raw', rest]]);

  const coded: Array<{ coder: ArchiveCoder; order: number; data: Uint8Array }> = [];
  const stats: ArchiveStreamStats[] = [];
  for (const s of streams) {
    throwIfAborted(o.signal);
    const packed = onnx.subarray(s.offset, s.offset + s.length);
    // Radix streams: their base-k digits, coded as ⌈log2 k⌉-bit symbols.
    const codes = s.radix ? unpackRadix(packed, s.radix, s.count) : unpackBits(packed, s.bits, s.count);
    const c = codeStream(packed, codes, s.bits, o.coders);
    coded.push(c);
    const radix = s.radix?.k ?? 0;
    stats.push({ name: s.name, offset: s.offset, bits: s.bits, count: s.count, radix, rawBytes: s.length, codedBytes: c.data.length, coder: c.coder, order: c.order, entropyBytes: entropyBits(codes, radix || 1 << s.bits) / 8 });
  }

  const version = streams.some((s) => s.radix) ? 2 : 1;
  const headerBytes = FIXED_HEADER + streams.length * ENTRY_BYTES[version]!;
  const total = headerBytes + restCoded.data.length + coded.reduce((n, c) => n + c.data.length, 0);
  const out = new Uint8Array(total);
  const view = new DataView(out.buffer);
  out.set(ARCHIVE_MAGIC, 0);
  let p = 8;
  view.setUint8(p, version);
  view.setUint32(p + 1, onnx.length, true);
  out.set(createHash('sha256').update(onnx).digest(), p + 5);
  p += 37;
  view.setUint8(p, CODER_IDS[restCoded.coder]);
  view.setUint32(p + 1, rest.length, true);
  view.setUint32(p + 5, restCoded.data.length, true);
  view.setUint32(p + 9, streams.length, true);
  p += 13;
  for (const [i, s] of streams.entries()) {
    const c = coded[i]!;
    view.setUint32(p, s.offset, true);
    view.setUint32(p + 4, s.length, true);
    view.setUint32(p + 8, s.count, true);
    view.setUint32(p + 12, c.data.length, true);
    // Radix streams (version 2): the word size in bits, and the radix.
    view.setUint8(p + 16, s.radix ? 8 * s.radix.wordBytes : s.bits);
    view.setUint8(p + 17, CODER_IDS[c.coder]);
    view.setUint8(p + 18, c.order);
    if (version === 2) view.setUint8(p + 19, s.radix?.k ?? 0);
    p += ENTRY_BYTES[version]!;
  }
  out.set(restCoded.data, p);
  p += restCoded.data.length;
  for (const c of coded) {
    out.set(c.data, p);
    p += c.data.length;
  }
  return {
    archive: out,
    stats: { onnxBytes: onnx.length, archiveBytes: total, headerBytes, rest: { rawBytes: rest.length, codedBytes: restCoded.data.length, coder: restCoded.coder }, streams: stats },
  };
}

/** Range-coder context orders tried for a code width (context ≤ 16 bits; 1-bit masks get long histories). */
function ordersFor(bits: number): number[] {
  const orders = bits === 1 ? [0, 4, 8, 12, 16] : bits <= 4 ? [0, 1] : [0];
  return orders.filter((k) => bits * k <= MAX_CONTEXT_BITS);
}

function codeStream(packed: Uint8Array, codes: Uint8Array, bits: number, coders: readonly ArchiveCoder[]): { coder: ArchiveCoder; order: number; data: Uint8Array } {
  let best: { coder: ArchiveCoder; order: number; data: Uint8Array } = { coder: 'raw', order: 0, data: packed };
  const offer = (coder: ArchiveCoder, order: number, data: Uint8Array | undefined): void => {
    if (data && data.length < best.data.length) best = { coder, order, data };
  };
  if (coders.includes('huffman')) offer('huffman', 0, huffmanEncode(codes, bits));
  if (coders.includes('range')) {
    for (let rates = 0; rates < RATE_SETS.length; rates++) {
      for (const k of ordersFor(bits)) offer('range', k | (rates << 5), rangeEncode(codes, bits, k, rates));
    }
  }
  if (coders.includes('brotli')) offer('brotli', 0, brotli(packed, packed.length <= BROTLI_BEST_MAX ? 11 : 9));
  return best;
}

function bestOf(raw: Uint8Array, candidates: Array<[ArchiveCoder, Uint8Array]>): { coder: ArchiveCoder; data: Uint8Array } {
  let best = { coder: 'raw' as ArchiveCoder, data: raw };
  for (const [coder, data] of candidates) if (data.length < best.data.length) best = { coder, data };
  return best;
}

function brotli(data: Uint8Array, quality: number): Uint8Array {
  return zlib.brotliCompressSync(data, {
    params: {
      [zlib.constants.BROTLI_PARAM_QUALITY]: quality,
      [zlib.constants.BROTLI_PARAM_LGWIN]: 24,
      [zlib.constants.BROTLI_PARAM_SIZE_HINT]: data.length,
    },
  });
}

/** Options of {@link unpackArchive}. */
export interface UnpackOptions {
  /** Checked once per stream. */
  signal: AbortSignal | undefined;
}

/**
 * Restores the ONNX file from an archive, byte for byte.
 * @param source archive name for error messages.
 * @throws E_MODEL_INVALID (naming `source`) for anything but an intact archive of a supported
 * version: bad magic, truncation, inconsistent tables, corrupt coded data, SHA-256 mismatch.
 */
export function unpackArchive(archive: Uint8Array, source = 'archive', options: Partial<UnpackOptions> = {}): Uint8Array<ArrayBuffer> {
  try {
    return unpackUnchecked(archive, source, options.signal);
  } catch (e) {
    if (e instanceof CompressError) throw e;
    const why = e instanceof Error ? e.message : String(e);
    return fail('E_MODEL_INVALID', `${source}: the archive is corrupt (${why}). Re-create it with \`onnx-compress pack\` or download it again.`, e);
  }
}

function corrupt(source: string, why: string): never {
  return fail('E_MODEL_INVALID', `${source}: the archive is corrupt (${why}). Re-create it with \`onnx-compress pack\` or download it again.`);
}

function unpackUnchecked(archive: Uint8Array, source: string, signal: AbortSignal | undefined): Uint8Array<ArrayBuffer> {
  if (archive.length < 8 || !equalBytes(archive.subarray(0, 8), ARCHIVE_MAGIC)) {
    fail('E_MODEL_INVALID', `${source}: not an onnx-compress archive (it does not start with "ONNXCA1\\0"). Pass a file written by \`onnx-compress pack\`.`);
  }
  if (archive.length < FIXED_HEADER) corrupt(source, `${archive.length} bytes, shorter than the ${FIXED_HEADER}-byte header`);
  const view = new DataView(archive.buffer, archive.byteOffset, archive.byteLength);
  const version = view.getUint8(8);
  const entryBytes = ENTRY_BYTES[version];
  if (entryBytes === undefined) {
    fail('E_MODEL_UNSUPPORTED', `${source}: archive format version ${version}; this tool reads versions 1 to ${ARCHIVE_VERSION}. Use a matching onnx-compress release.`);
  }
  const onnxLength = view.getUint32(9, true);
  const sha = archive.subarray(13, 45);
  const restCoder = coderOf(view.getUint8(45), source);
  const restLength = view.getUint32(46, true);
  const restCodedLength = view.getUint32(50, true);
  const n = view.getUint32(54, true);
  const headerBytes = FIXED_HEADER + n * entryBytes;
  if (archive.length < headerBytes) corrupt(source, `the stream table of ${n} entries runs past the end of the ${archive.length}-byte file`);
  const entries: Array<Stream & { codedLength: number; coder: ArchiveCoder; order: number }> = [];
  let streamBytes = 0;
  let codedBytes = restCodedLength;
  let end = 0;
  for (let i = 0, p = FIXED_HEADER; i < n; i++, p += entryBytes) {
    const k = version === 2 ? view.getUint8(p + 19) : 0;
    const e = {
      name: `stream ${i}`,
      offset: view.getUint32(p, true),
      length: view.getUint32(p + 4, true),
      count: view.getUint32(p + 8, true),
      codedLength: view.getUint32(p + 12, true),
      bits: view.getUint8(p + 16),
      coder: coderOf(view.getUint8(p + 17), source),
      order: view.getUint8(p + 18),
      radix: k === 0 ? undefined : radixOfEntry(k, view.getUint8(p + 16), view.getUint32(p + 8, true), view.getUint32(p + 4, true), source, i),
    };
    if (e.radix) e.bits = bitsFor(k);
    else if (e.bits < 1 || e.bits > 8 || e.count === 0 || e.length !== packedLength(e.count, e.bits)) corrupt(source, `stream ${i}: ${e.count} codes of ${e.bits} bits cannot take ${e.length} bytes`);
    if (e.offset < end || e.offset + e.length > onnxLength) corrupt(source, `stream ${i} at offset ${e.offset} overlaps another or lies past the end of the ${onnxLength}-byte model`);
    if (e.coder === 'range' ? e.bits * (e.order & 31) > MAX_CONTEXT_BITS || (e.order >> 5) >= RATE_SETS.length : e.order !== 0) corrupt(source, `stream ${i}: bad coder parameter ${e.order}`);
    end = e.offset + e.length;
    streamBytes += e.length;
    codedBytes += e.codedLength;
    entries.push(e);
  }
  if (restLength + streamBytes !== onnxLength) corrupt(source, `the parts add up to ${restLength + streamBytes} bytes, not the model's ${onnxLength}`);
  if (headerBytes + codedBytes !== archive.length) {
    corrupt(source, archive.length < headerBytes + codedBytes ? `truncated: ${archive.length} bytes, expected ${headerBytes + codedBytes}` : `${archive.length - headerBytes - codedBytes} unexpected bytes at the end`);
  }
  let p = headerBytes;
  const rest = decodeBytes(archive.subarray(p, p + restCodedLength), restCoder, restLength, source, 'the model graph');
  p += restCodedLength;

  const out = new Uint8Array(onnxLength);
  let at = 0; // write position in out
  let restAt = 0; // read position in rest
  for (const [i, e] of entries.entries()) {
    throwIfAborted(signal);
    const gap = e.offset - at;
    out.set(rest.subarray(restAt, restAt + gap), at);
    restAt += gap;
    const data = archive.subarray(p, p + e.codedLength);
    p += e.codedLength;
    let packed: Uint8Array;
    try {
      const repack = (codes: Uint8Array): Uint8Array => {
        if (!e.radix) return packBits(codes, e.bits);
        // The coders' symbols have ⌈log2 k⌉ bits: corrupt data may decode to a digit ≥ k.
        if (codes.some((c) => c >= e.radix!.k)) throw new EntropyError(`a symbol is not a base-${e.radix.k} digit`);
        return packRadix(codes, e.radix);
      };
      packed =
        e.coder === 'huffman' ? repack(huffmanDecode(data, e.bits, e.count))
        : e.coder === 'range' ? repack(rangeDecode(data, e.bits, e.order & 31, e.count, e.order >> 5))
        : decodeBytes(data, e.coder, e.length, source, `stream ${i}`);
    } catch (err) {
      if (err instanceof EntropyError) corrupt(source, `stream ${i}: ${err.message}`);
      throw err;
    }
    out.set(packed, e.offset);
    at = e.offset + e.length;
  }
  out.set(rest.subarray(restAt), at);
  if (!equalBytes(createHash('sha256').update(out).digest(), sha)) corrupt(source, 'the restored model does not match its SHA-256');
  return out;
}

/**
 * The layout of a version-2 radix stream entry: `k` (3…255) base-k digits in words of `wordBits`
 * (8, 16, 32) bits, `count` digits in `length` bytes (d = count / words digits per word).
 */
function radixOfEntry(k: number, wordBits: number, count: number, length: number, source: string, i: number): RadixLayout {
  const wordBytes = wordBits / 8;
  const words = length / wordBytes;
  const digits = count / words;
  if ((wordBytes !== 1 && wordBytes !== 2 && wordBytes !== 4) || k < 2 || length === 0 || !Number.isInteger(words) || !Number.isInteger(digits) || digits < 1 || digits > radixDigits(k, wordBytes)) {
    corrupt(source, `stream ${i}: ${count} base-${k} digits cannot take ${length} bytes of ${wordBits}-bit words`);
  }
  return { k, wordBytes, digits };
}

function decodeBytes(data: Uint8Array, coder: ArchiveCoder, length: number, source: string, what: string): Uint8Array {
  let bytes: Uint8Array;
  if (coder === 'raw') bytes = data;
  else if (coder === 'brotli') {
    try {
      bytes = zlib.brotliDecompressSync(data, { maxOutputLength: Math.max(1, length) });
    } catch (e) {
      return corrupt(source, `${what}: brotli data does not decode to ${length} bytes (${(e as Error).message})`);
    }
  } else return corrupt(source, `${what}: coder '${coder}' cannot store raw bytes`);
  if (bytes.length !== length) corrupt(source, `${what}: ${bytes.length} bytes instead of ${length}`);
  return bytes;
}

function coderOf(id: number, source: string): ArchiveCoder {
  const c = CODERS[id];
  if (c === undefined) corrupt(source, `unknown coder id ${id}`);
  return c;
}

function equalBytes(a: Uint8Array, b: Uint8Array): boolean {
  if (a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false;
  return true;
}

/** True when `bytes` start with the archive magic. */
export function isArchive(bytes: Uint8Array): boolean {
  return bytes.length >= 8 && equalBytes(bytes.subarray(0, 8), ARCHIVE_MAGIC);
}
