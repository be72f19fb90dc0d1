/**
 * Loading models from disk (with external data) and saving them atomically, as one file or with
 * external data. The only module of `onnx/` that touches the file system.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { CompressError, fail, throwIfAborted } from '../errors';
import { ioError, sameFile, writeAll, writeAllv, writeFilesAtomic } from '../util/atomicWrite';
import { decodeModel, encodeModelChunks } from './codec';
import { rawByteLength } from './dtype';
import { OnnxModel } from './model';
import { StringStringEntryProtoSchema, TensorProto_DataLocation, type TensorProto } from './proto';
import { create } from '@bufbuild/protobuf';
import { dimsOf, elementCount, isExternal, rawBytes } from './tensor';
import { forEachTensor } from './walk';
import { copyRange, DeferredExternalBytes, readFully, readRange, type ExternalRange } from './externalData';

/** Options of {@link loadModel}. */
export interface LoadOptions {
  /** Read external data files (default true). When false, external tensors cannot be decoded. */
  externalData: boolean;
  /**
   * External tensors of at least this many bytes (whose stored length matches their shape) are not
   * read at load time but each time they are used ({@link DeferredExternalBytes}), so a model
   * larger than memory can be listed, compressed layer by layer and saved. Default 1 MiB;
   * `Infinity` reads everything at load time.
   */
  deferAbove: number;
  /** Validate every tensor's size against its shape after loading (default true). */
  validate: boolean;
  /** Cancels between tensors. */
  signal: AbortSignal | undefined;
}

function makeLoadOptions(o: Partial<LoadOptions> = {}): LoadOptions {
  return { externalData: true, deferAbove: DEFER_ABOVE, validate: true, signal: undefined, ...o };
}

/** Default of {@link LoadOptions.deferAbove}. */
export const DEFER_ABOVE = 2 ** 20;

/** Files at or past this size cannot be one protobuf message. */
const PROTOBUF_LIMIT = 2 ** 31;

/**
 * Reads an ONNX model and its external data (files named by `location`, relative to the model's
 * folder). The input files are only read, never modified.
 * @throws E_IO when the file cannot be read; E_MODEL_INVALID / E_MODEL_UNSUPPORTED for bad models;
 * E_EXTERNAL_DATA for missing, short or escaping external data; E_TENSOR_DATA for size mismatches.
 */
export async function loadModel(file: string, options: Partial<LoadOptions> = {}): Promise<OnnxModel> {
  const o = makeLoadOptions(options);
  let stat: fs.Stats;
  try {
    stat = await fs.promises.stat(file);
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') fail('E_IO', `${file}: no such file. Check the path.`, e);
    ioError(e, file, 'read');
  }
  if (stat.isDirectory()) fail('E_IO', `${file} is a folder, not an ONNX file.`);
  if (stat.size >= PROTOBUF_LIMIT) {
    fail('E_MODEL_INVALID', `${file} is ${stat.size} bytes; an ONNX protobuf file must be under 2 GiB (larger models keep their weights in external data files). The file is corrupt or not an ONNX model.`);
  }
  let bytes: Uint8Array;
  try {
    // One synchronous read: ~3× faster than fs.promises.readFile's chunked reads on large models
    // (bench onnxio); the engine runs off the UI thread, so blocking here is fine.
    bytes = fs.readFileSync(file);
  } catch (e) {
    ioError(e, file, 'read');
  }
  const proto = decodeModel(bytes, file);
  const external = new DeferredExternalBytes();
  const files = new Set<string>();
  if (o.externalData) {
    await readExternalData(proto, file, external, files, o.deferAbove, o.signal);
  }
  const model = new OnnxModel(proto, file, external, [...files]);
  if (o.validate) model.validate();
  return model;
}

/** Parsed `external_data` entries of a tensor (onnx.proto: location, offset, length, checksum). */
export interface ExternalInfo {
  location: string;
  offset: number;
  length: number | undefined;
}

/** Reads a tensor's `external_data` key/value entries. @throws E_EXTERNAL_DATA when malformed. */
export function externalInfo(t: TensorProto, source: string): ExternalInfo {
  const kv = new Map(t.externalData.map((e) => [e.key, e.value]));
  const location = kv.get('location');
  if (!location) fail('E_EXTERNAL_DATA', `${source}: tensor '${t.name}' is marked EXTERNAL but has no 'location'. The model is corrupt; re-export it.`);
  const num = (key: string): number | undefined => {
    const v = kv.get(key);
    if (v === undefined) return undefined;
    const n = Number(v);
    if (!Number.isSafeInteger(n) || n < 0) fail('E_EXTERNAL_DATA', `${source}: tensor '${t.name}' has an invalid external '${key}' '${v}'.`);
    return n;
  };
  return { location, offset: num('offset') ?? 0, length: num('length') };
}

/**
 * Resolves `location` against the model's folder. Absolute paths and paths that leave the folder
 * (`..`, or a symlink pointing outside) are refused: a model must not make us read arbitrary files
 * (onnx docs/ExternalDataSecurity.md).
 */
export function resolveExternalPath(modelFile: string, location: string, tensor: string): string {
  const dir = path.dirname(path.resolve(modelFile));
  const bad = (why: string): never =>
    fail('E_EXTERNAL_DATA', `${modelFile}: tensor '${tensor}' names external data '${location}', which ${why}. External data must be a relative path inside the model's folder; move the data file next to the model and fix the location.`);
  if (path.isAbsolute(location) || path.win32.isAbsolute(location)) bad('is an absolute path');
  const full = path.resolve(dir, location);
  const rel = path.relative(dir, full);
  if (rel === '' || rel.startsWith('..') || path.isAbsolute(rel)) bad('points outside the model folder');
  try {
    const real = fs.realpathSync(full);
    const realRel = path.relative(fs.realpathSync(dir), real);
    if (realRel.startsWith('..') || path.isAbsolute(realRel)) bad('is a link that points outside the model folder');
  } catch (e) {
    if (e instanceof CompressError) throw e;
    fail('E_EXTERNAL_DATA', `${modelFile}: external data file '${location}' of tensor '${tensor}' is missing. Put '${location}' next to the model (it is written along with the .onnx file).`, e);
  }
  return full;
}

/**
 * Reads the external data of one tensor of a model that was decoded from bytes, resolving its
 * `location` against `folder` (the model's folder) with the same checks as {@link loadModel}.
 * @throws E_EXTERNAL_DATA when the entry is malformed, escapes the folder, or the file is short.
 */
export function readExternalTensor(t: TensorProto, folder: string): Uint8Array {
  const source = path.join(folder, '(model)');
  const info = externalInfo(t, source);
  const file = resolveExternalPath(source, info.location, t.name);
  const length = info.length ?? rawByteLength(t.dataType, elementCount(dimsOf(t)));
  let size: number;
  try {
    size = fs.statSync(file).size;
  } catch (e) {
    fail('E_EXTERNAL_DATA', `${source}: cannot open external data '${info.location}' of tensor '${t.name}' (${(e as Error).message}).`, e);
  }
  return readRange({ file, offset: info.offset, length, fileSize: Math.min(size, info.offset + length), modelFile: folder, location: info.location }, t.name);
}

async function readExternalData(
  proto: import('./proto').ModelProto,
  modelFile: string,
  external: DeferredExternalBytes,
  files: Set<string>,
  deferAbove: number,
  signal: AbortSignal | undefined,
): Promise<void> {
  const pending: TensorProto[] = [];
  forEachTensor(proto, (t) => {
    if (isExternal(t)) pending.push(t);
  });
  if (pending.length === 0) return;
  // Synchronous reads: one syscall per tensor instead of a promise round trip each (models have
  // thousands of tensors; the engine runs off the UI thread).
  const fds = new Map<string, { fd: number; size: number }>();
  try {
    for (const t of pending) {
      throwIfAborted(signal);
      const info = externalInfo(t, modelFile);
      const full = resolveExternalPath(modelFile, info.location, t.name);
      let h = fds.get(full);
      if (!h) {
        let fd: number;
        try {
          fd = fs.openSync(full, 'r');
        } catch (e) {
          fail('E_EXTERNAL_DATA', `${modelFile}: cannot open external data '${info.location}' of tensor '${t.name}' (${(e as Error).message}).`, e);
        }
        const st = fs.fstatSync(fd);
        if (!st.isFile()) {
          fs.closeSync(fd);
          fail('E_EXTERNAL_DATA', `${modelFile}: external data '${info.location}' of tensor '${t.name}' is a folder, not a data file. Fix the location or put the data file there.`);
        }
        h = { fd, size: st.size };
        fds.set(full, h);
        files.add(full);
      }
      const expected = rawByteLength(t.dataType, elementCount(dimsOf(t)));
      const length = info.length ?? expected;
      if (info.offset + length > h.size) {
        fail('E_EXTERNAL_DATA', `${modelFile}: external data '${info.location}' is ${h.size} bytes, but tensor '${t.name}' needs bytes ${info.offset} to ${info.offset + length}. The data file is truncated or belongs to another model; copy it again.`);
      }
      // Deferred only when its size is already known to be right: a wrong one is read now, so
      // validation reports it exactly as for a small tensor.
      if (length >= deferAbove && length === expected && expected > 0) {
        external.defer(t, { file: full, offset: info.offset, length, fileSize: h.size, modelFile, location: info.location });
        continue;
      }
      const buf = new Uint8Array(length);
      readFully(h.fd, buf, 0, length, info.offset, () => `${modelFile}: external data '${info.location}' of tensor '${t.name}'`);
      external.set(t, buf);
    }
  } finally {
    for (const { fd } of fds.values()) fs.closeSync(fd);
  }
}

/** How {@link saveModel} stores tensor data. */
export type ExternalDataMode =
  /** External data when the input had it or when one file would pass 2 GiB (and some tensor reaches the threshold); else one file. */
  | 'auto'
  /** Everything in the .onnx file (fails past 2 GiB). */
  | 'none'
  /** Tensors of at least `threshold` bytes go to `<out>.data` (or `location`) next to the model. */
  | { location?: string; threshold?: number };

/** Options of {@link saveModel}. */
export interface SaveOptions {
  /** Default `'auto'`. */
  externalData: ExternalDataMode;
  /** Cancels before anything is renamed into place. */
  signal: AbortSignal | undefined;
}

/** Default threshold (bytes) above which tensors go to external data, as onnx's `save_model`. */
export const EXTERNAL_THRESHOLD = 1024;
/** Alignment of tensors in external data files, so readers can map them as typed arrays. */
const EXTERNAL_ALIGN = 64;
/** Keep one file below this estimated size in `'auto'` mode (protobuf's limit less headroom). */
const AUTO_EXTERNAL_LIMIT = 2 ** 31 - 64 * 2 ** 20;

/** What {@link saveModel} wrote. */
export interface SaveResult {
  /** The .onnx file. */
  modelFile: string;
  /** Its size in bytes. */
  modelBytes: number;
  /** The external data file, if one was written. */
  dataFile?: string;
  /** Its size in bytes. */
  dataBytes: number;
}

/**
 * Writes `model` to `file` atomically (temp files, then rename), as one file or with external data.
 * The model in memory is left as it was. Refuses to overwrite the model's own source files.
 * @throws E_BAD_ARGUMENT when `file` is the input model or one of its data files; E_IO on write
 * errors (temp files are removed); E_CANCELLED when `signal` fires.
 */
export async function saveModel(model: OnnxModel, file: string, options: Partial<SaveOptions> = {}): Promise<SaveResult> {
  const o: SaveOptions = { externalData: 'auto', signal: undefined, ...options };
  const out = path.resolve(file);
  const sources = [path.resolve(model.source), ...model.externalFiles];
  const layout = layOut(model, out, o.externalData);
  try {
    const { dataFile, chunks, dataSize } = layout;
    for (const target of [out, dataFile]) {
      if (target && sources.some((s) => sameFile(s, target))) {
        fail('E_BAD_ARGUMENT', `Refusing to write '${target}': it is the input model or its data. Choose another output path.`);
      }
    }
    throwIfAborted(o.signal);
    const encoded = encodeModelChunks(model.proto);
    throwIfAborted(o.signal);
    const parts: { path: string; write: (fd: number) => void }[] = [];
    if (dataFile) {
      parts.push({
        path: dataFile,
        write: (fd) => {
          let pos = 0;
          const pad = new Uint8Array(EXTERNAL_ALIGN);
          let block: Uint8Array | undefined;
          for (const c of chunks) {
            if (c.offset > pos) writeAll(fd, pad.subarray(0, c.offset - pos));
            throwIfAborted(o.signal);
            if (c.bytes) writeAll(fd, c.bytes);
            else copyRange(c.range!, c.tensor, fd, (block ??= new Uint8Array(COPY_BLOCK)));
            pos = c.offset + c.length;
          }
        },
      });
    }
    parts.push({
      path: out,
      write: (fd) => {
        writeAllv(fd, encoded.parts);
      },
    });
    await writeFilesAtomic(parts);
    const result: SaveResult = { modelFile: out, modelBytes: encoded.length, dataBytes: dataSize };
    if (dataFile) result.dataFile = dataFile;
    return result;
  } finally {
    layout.restore();
  }
}

/**
 * Bytes {@link saveModel} would write for `model` at `file` (the .onnx plus its external data)
 * without writing or reading anything: deferred external tensors count by their length.
 * @throws E_MODEL_UNSUPPORTED when the .onnx part would pass 2 GiB (mode `'none'`).
 */
export function savedSize(model: OnnxModel, file: string, mode: ExternalDataMode = 'auto'): number {
  const layout = layOut(model, path.resolve(file), mode);
  try {
    return encodeModelChunks(model.proto).length + layout.dataSize;
  } finally {
    layout.restore();
  }
}

/** Blocks in which deferred tensors are copied from the input's data file to the output's. */
const COPY_BLOCK = 16 * 2 ** 20;

/** A tensor's bytes in the output data file: in memory, or a range of the input's data file. */
interface DataChunk {
  tensor: string;
  offset: number;
  length: number;
  bytes?: Uint8Array;
  range?: ExternalRange;
}

/**
 * Decides where every tensor goes for a save at `out` and rewrites the tensors' storage fields in
 * place accordingly (`restore` puts them back): big ones to the data file at aligned offsets,
 * external ones below the threshold back into the .onnx.
 */
function layOut(model: OnnxModel, out: string, mode: ExternalDataMode): { dataFile: string | undefined; chunks: DataChunk[]; dataSize: number; restore: () => void } {
  let ext: { location: string; threshold: number } | undefined;
  if (mode === 'none') ext = undefined;
  else if (mode === 'auto') {
    const big = model.externalFiles.length > 0 || estimateSize(model) > AUTO_EXTERNAL_LIMIT;
    ext = big ? { location: `${path.basename(out)}.data`, threshold: EXTERNAL_THRESHOLD } : undefined;
  } else {
    ext = { location: mode.location ?? `${path.basename(out)}.data`, threshold: mode.threshold ?? EXTERNAL_THRESHOLD };
  }
  if (ext && (path.isAbsolute(ext.location) || ext.location.includes('..'))) {
    fail('E_BAD_ARGUMENT', `External data location '${ext.location}' must be a file name relative to the model's folder.`);
  }
  const undo: Array<() => void> = [];
  const restore = () => {
    for (const r of undo.reverse()) r();
    undo.length = 0;
  };
  const chunks: DataChunk[] = [];
  let dataSize = 0;
  try {
    forEachTensor(model.proto, (t) => {
      const range = model.external instanceof DeferredExternalBytes && isExternal(t) ? model.external.range(t) : undefined;
      const bytes = isExternal(t) && !range ? rawBytes(t, model.external) : undefined;
      const raw = range ? undefined : (bytes ?? (t.rawData.length > 0 ? t.rawData : undefined));
      const length = range ? range.length : (raw?.length ?? 0);
      const toExternal = ext !== undefined && (range !== undefined || raw !== undefined) && length >= ext.threshold;
      if (!toExternal && !isExternal(t)) return;
      undo.push(snapshot(t));
      if (toExternal) {
        const offset = Math.ceil(dataSize / EXTERNAL_ALIGN) * EXTERNAL_ALIGN;
        chunks.push(range ? { tensor: t.name, offset, length, range } : { tensor: t.name, offset, length, bytes: raw! });
        dataSize = offset + length;
        t.rawData = new Uint8Array(0);
        t.dataLocation = TensorProto_DataLocation.EXTERNAL;
        t.externalData = [
          create(StringStringEntryProtoSchema, { key: 'location', value: ext!.location }),
          create(StringStringEntryProtoSchema, { key: 'offset', value: String(offset) }),
          create(StringStringEntryProtoSchema, { key: 'length', value: String(length) }),
        ];
      } else {
        // An external tensor going back into the file (no external data, or below threshold).
        t.rawData = (raw ?? rawBytes(t, model.external)) as Uint8Array<ArrayBuffer>;
        delete (t as { dataLocation?: unknown }).dataLocation;
        t.externalData = [];
      }
    });
  } catch (e) {
    restore();
    throw e;
  }
  // 'auto' writes no empty data file when every tensor ended up small (e.g. all compressed).
  const dataFile = ext && (chunks.length > 0 || mode !== 'auto') ? path.resolve(path.dirname(out), ext.location) : undefined;
  return { dataFile, chunks, dataSize, restore };
}

/** Records a tensor's storage fields (with proto2 presence) and returns a function restoring them. */
function snapshot(t: TensorProto): () => void {
  const had = Object.hasOwn(t, 'dataLocation');
  const { rawData, dataLocation, externalData } = t;
  return () => {
    t.rawData = rawData;
    t.externalData = externalData;
    if (had) t.dataLocation = dataLocation;
    else delete (t as { dataLocation?: unknown }).dataLocation;
  };
}

function estimateSize(model: OnnxModel): number {
  let n = 0;
  forEachTensor(model.proto, (t) => {
    n += isExternal(t) ? (model.external instanceof DeferredExternalBytes ? model.external.range(t)?.length : undefined) ?? model.external.get(t)?.length ?? 0 : t.rawData.length + t.floatData.length * 4 + t.int64Data.length * 8;
  });
  return n + model.proto.graph!.node.length * 64;
}

/** Loads model bytes already in memory (no external data). */
export function modelFromBytes(bytes: Uint8Array, source = 'model'): OnnxModel {
  const m = new OnnxModel(decodeModel(bytes, source), source);
  m.validate();
  return m;
}
