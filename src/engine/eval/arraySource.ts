/**
 * N-dimensional arrays on disk, read a few samples (rows of the first axis) at a time: NumPy `.npy`,
 * arrays inside `.npz` archives, and IDX files (MNIST format). Uncompressed data is read with
 * positioned reads (`FileHandle.read` at an offset), so memory stays at one batch; compressed data
 * (`.npz` made by `savez_compressed`, gzipped IDX) is inflated into memory once per open.
 */
import { open, readFile, stat } from 'node:fs/promises';
import { gunzipSync, inflateRawSync } from 'node:zlib';
import { fail } from '../errors.js';

/** Element types of on-disk arrays (NumPy names). */
export type NumDType =
  | 'float16'
  | 'float32'
  | 'float64'
  | 'uint8'
  | 'int8'
  | 'int16'
  | 'uint16'
  | 'int32'
  | 'uint32'
  | 'int64'
  | 'uint64'
  | 'bool';

/** Typed arrays returned by {@link ArraySource.readRows} (float16 is widened to `Float32Array`). */
export type NumArray =
  | Float32Array
  | Float64Array
  | Uint8Array
  | Int8Array
  | Int16Array
  | Uint16Array
  | Int32Array
  | Uint32Array
  | BigInt64Array
  | BigUint64Array;

/** An array whose rows (first-axis slices) can be read on demand. */
export interface ArraySource {
  /** File name (and `:key` inside an archive) for messages. */
  readonly file: string;
  readonly dtype: NumDType;
  readonly shape: readonly number[];
  /** Reads rows `start .. start + count - 1` as a native (host-endian) typed array. */
  readRows(start: number, count: number): Promise<NumArray>;
}

/** True for floating-point dtypes. */
export function isFloatDType(d: NumDType): boolean {
  return d === 'float16' || d === 'float32' || d === 'float64';
}

const ITEM_SIZE: Record<NumDType, number> = {
  float16: 2,
  float32: 4,
  float64: 8,
  uint8: 1,
  int8: 1,
  int16: 2,
  uint16: 2,
  int32: 4,
  uint32: 4,
  int64: 8,
  uint64: 8,
  bool: 1,
};

const NPY_DESCR: Record<string, NumDType> = {
  f2: 'float16',
  f4: 'float32',
  f8: 'float64',
  u1: 'uint8',
  i1: 'int8',
  i2: 'int16',
  u2: 'uint16',
  i4: 'int32',
  u4: 'uint32',
  i8: 'int64',
  u8: 'uint64',
  b1: 'bool',
};

/** Where an array's bytes live: a file region read on demand, or bytes already in memory. */
type ByteStore =
  | { readonly kind: 'file'; readonly path: string; readonly offset: number }
  | { readonly kind: 'memory'; readonly bytes: Uint8Array; readonly offset: number };

function float16ToFloat32(h: Uint16Array): Float32Array {
  const out = new Float32Array(h.length);
  for (let i = 0; i < h.length; i++) {
    const x = h[i]!;
    const s = x & 0x8000 ? -1 : 1;
    const e = (x >> 10) & 0x1f;
    const m = x & 0x3ff;
    out[i] =
      e === 0 ? s * m * 2 ** -24 : e === 31 ? (m ? NaN : s * Infinity) : s * (1 + m / 1024) * 2 ** (e - 15);
  }
  return out;
}

/** Views `bytes` (a private, aligned copy) as a typed array of `dtype`. */
function viewAs(dtype: NumDType, buf: ArrayBuffer): NumArray {
  switch (dtype) {
    case 'float16':
      return float16ToFloat32(new Uint16Array(buf));
    case 'float32':
      return new Float32Array(buf);
    case 'float64':
      return new Float64Array(buf);
    case 'uint8':
    case 'bool':
      return new Uint8Array(buf);
    case 'int8':
      return new Int8Array(buf);
    case 'int16':
      return new Int16Array(buf);
    case 'uint16':
      return new Uint16Array(buf);
    case 'int32':
      return new Int32Array(buf);
    case 'uint32':
      return new Uint32Array(buf);
    case 'int64':
      return new BigInt64Array(buf);
    case 'uint64':
      return new BigUint64Array(buf);
  }
}

const HOST_LITTLE = new Uint8Array(new Uint16Array([1]).buffer)[0] === 1;

class StoredArray implements ArraySource {
  private readonly rowBytes: number;
  constructor(
    readonly file: string,
    readonly dtype: NumDType,
    readonly shape: readonly number[],
    private readonly littleEndian: boolean,
    private readonly store: ByteStore,
  ) {
    this.rowBytes = ITEM_SIZE[dtype] * shape.slice(1).reduce((a, b) => a * b, 1);
  }

  async readRows(start: number, count: number): Promise<NumArray> {
    const rows = this.shape.length === 0 ? 1 : this.shape[0]!;
    if (start < 0 || count < 0 || start + count > rows) {
      fail('E_INTERNAL', `Rows ${start}..${start + count - 1} are outside '${this.file}' (${rows} rows).`);
    }
    const length = count * this.rowBytes;
    const pos = this.store.offset + start * this.rowBytes;
    const copy = Buffer.alloc(length);
    if (this.store.kind === 'memory') {
      if (pos + length > this.store.bytes.length) this.truncated(pos + length, this.store.bytes.length);
      copy.set(this.store.bytes.subarray(pos, pos + length));
    } else {
      const fh = await open(this.store.path, 'r');
      try {
        const { bytesRead } = await fh.read(copy, 0, length, pos);
        if (bytesRead < length) this.truncated(pos + length, pos + bytesRead);
      } finally {
        await fh.close();
      }
    }
    const size = ITEM_SIZE[this.dtype];
    if (size > 1 && this.littleEndian !== HOST_LITTLE) {
      if (size === 2) copy.swap16();
      else if (size === 4) copy.swap32();
      else copy.swap64();
    }
    // Buffer.alloc of small sizes may share a pooled ArrayBuffer; copy into an exact, aligned one.
    const exact = copy.buffer.slice(copy.byteOffset, copy.byteOffset + copy.byteLength);
    return viewAs(this.dtype, exact);
  }

  private truncated(needed: number, have: number): never {
    fail(
      'E_DATASET',
      `'${this.file}' is truncated: its header promises ${needed} bytes but only ${have} are there. Re-export the file.`,
    );
  }
}

function parseNpyHeader(
  bytes: Uint8Array,
  file: string,
): { dtype: NumDType; shape: number[]; littleEndian: boolean; dataOffset: number } {
  const magic = [0x93, 0x4e, 0x55, 0x4d, 0x50, 0x59];
  if (bytes.length < 10 || magic.some((m, i) => bytes[i] !== m)) {
    fail('E_DATASET', `'${file}' is not a NumPy .npy file (no \\x93NUMPY magic). Save arrays with numpy.save().`);
  }
  const major = bytes[6]!;
  const dv = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  let headerLen: number;
  let start: number;
  if (major === 1) {
    headerLen = dv.getUint16(8, true);
    start = 10;
  } else if (major === 2 || major === 3) {
    if (bytes.length < 12) fail('E_DATASET', `'${file}' is truncated inside its .npy header.`);
    headerLen = dv.getUint32(8, true);
    start = 12;
  } else {
    fail('E_DATASET', `'${file}' has .npy format version ${major}, expected 1, 2 or 3.`);
  }
  if (bytes.length < start + headerLen) fail('E_DATASET', `'${file}' is truncated inside its .npy header.`);
  const header = new TextDecoder('latin1').decode(bytes.subarray(start, start + headerLen));
  const descr = /'descr'\s*:\s*'([^']*)'/.exec(header)?.[1];
  const fortran = /'fortran_order'\s*:\s*(True|False)/.exec(header)?.[1];
  const shapeText = /'shape'\s*:\s*\(([^)]*)\)/.exec(header)?.[1];
  if (descr === undefined || fortran === undefined || shapeText === undefined) {
    fail(
      'E_DATASET',
      `'${file}' has an .npy header we cannot read: ${JSON.stringify(header.trim())}. Structured dtypes are not supported; save a plain numeric array.`,
    );
  }
  if (fortran === 'True') {
    fail(
      'E_DATASET',
      `'${file}' is stored in Fortran (column-major) order. Save it C-ordered: numpy.save(f, numpy.ascontiguousarray(a)).`,
    );
  }
  const order = descr[0];
  const dtype = NPY_DESCR[descr.slice(1)];
  if (dtype === undefined || !(order === '<' || order === '>' || order === '|' || order === '=')) {
    fail(
      'E_DATASET',
      `'${file}' has dtype '${descr}'; supported: float16/32/64, (u)int8/16/32/64 and bool.`,
    );
  }
  const shape = shapeText
    .split(',')
    .map((s) => s.trim())
    .filter((s) => s.length > 0)
    .map((s) => Number(s.replace(/L$/, '')));
  if (shape.some((d) => !Number.isSafeInteger(d) || d < 0)) {
    fail('E_DATASET', `'${file}' has a bad shape (${shapeText}) in its .npy header.`);
  }
  return { dtype, shape, littleEndian: order !== '>', dataOffset: start + headerLen };
}

/**
 * Opens a `.npy` file without reading its data: parses the header (format versions 1–3, C order,
 * little- or big-endian numeric dtypes) and checks the file is long enough.
 */
export async function openNpy(path: string): Promise<ArraySource> {
  const fh = await openForRead(path);
  let head: Buffer;
  let size: number;
  try {
    size = (await fh.stat()).size;
    head = Buffer.alloc(Math.min(size, 65536 + 12));
    await fh.read(head, 0, head.length, 0);
  } finally {
    await fh.close();
  }
  const h = parseNpyHeader(head, path);
  const need = h.dataOffset + ITEM_SIZE[h.dtype] * h.shape.reduce((a, b) => a * b, 1);
  if (size < need) {
    fail('E_DATASET', `'${path}' is truncated: its header promises ${need} bytes but the file has ${size}.`);
  }
  return new StoredArray(path, h.dtype, h.shape, h.littleEndian, {
    kind: 'file',
    path,
    offset: h.dataOffset,
  });
}

async function openForRead(path: string) {
  try {
    return await open(path, 'r');
  } catch (e) {
    const code = (e as { code?: string }).code;
    fail(
      'E_DATASET',
      code === 'ENOENT' ? `Data file '${path}' does not exist.` : `Cannot read data file '${path}' (${code ?? String(e)}).`,
      e,
    );
  }
}

interface ZipEntry {
  readonly name: string;
  readonly method: number;
  readonly compressedSize: number;
  readonly size: number;
  readonly localOffset: number;
}

type Handle = Awaited<ReturnType<typeof open>>;

async function readAt(fh: Handle, pos: number, length: number): Promise<Buffer> {
  const b = Buffer.alloc(length);
  const { bytesRead } = await fh.read(b, 0, length, pos);
  return b.subarray(0, bytesRead);
}

/** Reads the central directory of a zip archive (zip64 aware) with positioned reads. */
async function readZipDirectory(fh: Handle, size: number, file: string): Promise<ZipEntry[]> {
  const bad = (what: string): never =>
    fail('E_DATASET', `'${file}' is not a readable .npz (zip) archive: ${what}. Save it with numpy.savez().`);
  const tailStart = Math.max(0, size - 22 - 65535 - 20);
  const tail = await readAt(fh, tailStart, size - tailStart);
  let eocd = -1;
  for (let i = tail.length - 22; i >= 0; i--) {
    if (tail.readUInt32LE(i) === 0x06054b50) {
      eocd = i;
      break;
    }
  }
  if (eocd < 0) bad('no end-of-central-directory record');
  let entries = tail.readUInt16LE(eocd + 10);
  let cdSize = tail.readUInt32LE(eocd + 12);
  let cdOffset = tail.readUInt32LE(eocd + 16);
  if (eocd >= 20 && tail.readUInt32LE(eocd - 20) === 0x07064b50) {
    const z64 = await readAt(fh, Number(tail.readBigUInt64LE(eocd - 20 + 8)), 56);
    if (z64.length < 56 || z64.readUInt32LE(0) !== 0x06064b50) bad('broken zip64 record');
    entries = Number(z64.readBigUInt64LE(32));
    cdSize = Number(z64.readBigUInt64LE(40));
    cdOffset = Number(z64.readBigUInt64LE(48));
  }
  const buf = await readAt(fh, cdOffset, cdSize);
  const out: ZipEntry[] = [];
  let p = 0;
  for (let k = 0; k < entries; k++) {
    if (p + 46 > buf.length || buf.readUInt32LE(p) !== 0x02014b50) bad('broken central directory');
    const method = buf.readUInt16LE(p + 10);
    let compressedSize = buf.readUInt32LE(p + 20);
    let size = buf.readUInt32LE(p + 24);
    const nameLen = buf.readUInt16LE(p + 28);
    const extraLen = buf.readUInt16LE(p + 30);
    const commentLen = buf.readUInt16LE(p + 32);
    let localOffset = buf.readUInt32LE(p + 42);
    const name = buf.toString('utf8', p + 46, p + 46 + nameLen);
    // zip64 extended information: only the fields saturated in the fixed record are present, in order.
    let e = p + 46 + nameLen;
    const end = e + extraLen;
    while (e + 4 <= end) {
      const id = buf.readUInt16LE(e);
      const len = buf.readUInt16LE(e + 2);
      if (id === 0x0001) {
        let q = e + 4;
        if (size === 0xffffffff) (size = Number(buf.readBigUInt64LE(q))), (q += 8);
        if (compressedSize === 0xffffffff) (compressedSize = Number(buf.readBigUInt64LE(q))), (q += 8);
        if (localOffset === 0xffffffff) localOffset = Number(buf.readBigUInt64LE(q));
      }
      e += 4 + len;
    }
    out.push({ name, method, compressedSize, size, localOffset });
    p = end + commentLen;
  }
  return out;
}

/**
 * Opens every array of a `.npz` archive. Stored (uncompressed, `numpy.savez`) members are read on
 * demand from the file; deflated members (`numpy.savez_compressed`) are inflated into memory here.
 * Keys are member names without the `.npy` suffix.
 */
export async function openNpz(path: string): Promise<Map<string, ArraySource>> {
  const fh = await openForRead(path);
  const out = new Map<string, ArraySource>();
  try {
    const size = (await fh.stat()).size;
    for (const entry of await readZipDirectory(fh, size, path)) {
      if (!entry.name.endsWith('.npy')) continue;
      const key = entry.name.slice(0, -4);
      const lo = entry.localOffset;
      const local = await readAt(fh, lo, 30);
      if (local.length < 30 || local.readUInt32LE(0) !== 0x04034b50) {
        fail('E_DATASET', `'${path}' member '${entry.name}' has a broken local header.`);
      }
      const dataStart = lo + 30 + local.readUInt16LE(26) + local.readUInt16LE(28);
      const label = `${path}:${key}`;
      if (entry.method === 0) {
        const h = parseNpyHeader(await readAt(fh, dataStart, Math.min(entry.size, 65536 + 12)), label);
        out.set(key, new StoredArray(label, h.dtype, h.shape, h.littleEndian, {
          kind: 'file',
          path,
          offset: dataStart + h.dataOffset,
        }));
      } else if (entry.method === 8) {
        const bytes = inflateRawSync(await readAt(fh, dataStart, entry.compressedSize));
        const h = parseNpyHeader(bytes, label);
        out.set(key, new StoredArray(label, h.dtype, h.shape, h.littleEndian, {
          kind: 'memory',
          bytes,
          offset: h.dataOffset,
        }));
      } else {
        fail('E_DATASET', `'${label}' uses zip compression method ${entry.method}; only stored and deflate are supported.`);
      }
    }
  } finally {
    await fh.close();
  }
  if (out.size === 0) fail('E_DATASET', `'${path}' contains no .npy arrays.`);
  return out;
}

const IDX_TYPES: Record<number, NumDType> = {
  0x08: 'uint8',
  0x09: 'int8',
  0x0b: 'int16',
  0x0c: 'int32',
  0x0d: 'float32',
  0x0e: 'float64',
};

/**
 * Opens an IDX file (the MNIST / Fashion-MNIST format: big-endian magic `0 0 type ndim`, then
 * `ndim` big-endian uint32 sizes, then big-endian data). Gzipped files (`.gz` or the gzip magic)
 * are inflated into memory; raw files are read by offset.
 */
export async function openIdx(path: string): Promise<ArraySource> {
  const fh = await openForRead(path);
  let head: Buffer;
  let size: number;
  try {
    size = (await fh.stat()).size;
    head = Buffer.alloc(Math.min(size, 4 + 4 * 255));
    await fh.read(head, 0, head.length, 0);
  } finally {
    await fh.close();
  }
  let store: ByteStore = { kind: 'file', path, offset: 0 };
  let bytes: Uint8Array = head;
  if (head.length >= 2 && head[0] === 0x1f && head[1] === 0x8b) {
    try {
      bytes = gunzipSync(await readFile(path));
    } catch (e) {
      fail('E_DATASET', `'${path}' looks gzipped but does not inflate (${(e as Error).message}).`, e);
    }
    size = bytes.length;
    store = { kind: 'memory', bytes, offset: 0 };
  }
  if (bytes.length < 4 || bytes[0] !== 0 || bytes[1] !== 0 || IDX_TYPES[bytes[2]!] === undefined) {
    fail(
      'E_DATASET',
      `'${path}' is not an IDX file (magic bytes ${Array.from(bytes.subarray(0, 4)).join(' ')}; expected 0 0 <type 8,9,11,12,13,14> <ndim>).`,
    );
  }
  const dtype = IDX_TYPES[bytes[2]!]!;
  const ndim = bytes[3]!;
  if (bytes.length < 4 + 4 * ndim) fail('E_DATASET', `'${path}' is truncated inside its IDX header.`);
  const dv = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const shape = Array.from({ length: ndim }, (_, i) => dv.getUint32(4 + 4 * i, false));
  const dataOffset = 4 + 4 * ndim;
  const need = dataOffset + ITEM_SIZE[dtype] * shape.reduce((a, b) => a * b, 1);
  if (size < need) {
    fail('E_DATASET', `'${path}' is truncated: its IDX header promises ${need} bytes but there are ${size}.`);
  }
  return new StoredArray(path, dtype, shape, false, { ...store, offset: dataOffset });
}

/** Opens `.npy` or IDX (`.idx`, `-ubyte`, `.gz`) by file name. */
export async function openArrayFile(path: string): Promise<ArraySource> {
  await statOrFail(path);
  return /\.npy$/i.test(path) ? openNpy(path) : openIdx(path);
}

async function statOrFail(path: string): Promise<void> {
  try {
    await stat(path);
  } catch (e) {
    fail('E_DATASET', `Data file '${path}' does not exist or cannot be read.`, e);
  }
}
