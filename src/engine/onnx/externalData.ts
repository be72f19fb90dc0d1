/**
 * External tensor data read on demand: a model's large external tensors stay in their data file
 * until used, so a model larger than memory can be listed, compressed layer by layer and saved.
 */
import * as fs from 'node:fs';
import { fail } from '../errors';
import { writeAll } from '../util/atomicWrite';
import type { TensorProto } from './proto';
import type { ExternalBytes } from './tensor';

/** Where a deferred external tensor's bytes are: `length` bytes at `offset` of `file`. */
export interface ExternalRange {
  /** Absolute path of the data file. */
  file: string;
  offset: number;
  length: number;
  /** The data file's size when the model was loaded (a smaller file now means it changed). */
  fileSize: number;
  /** For messages: the model file and the location as written in it. */
  modelFile: string;
  location: string;
}

/**
 * {@link ExternalBytes} that also knows tensors whose bytes stay in their data file until used:
 * `get` reads a deferred tensor from disk when called (only the last one read is kept, so memory
 * holds one such tensor plus what callers keep; like a held tensor, the same array is returned to
 * every caller until another tensor is read), `has` is true for them, and {@link DeferredExternalBytes.range} says
 * where they are without reading them. Tensors given with `set` are held in memory as before.
 */
export class DeferredExternalBytes extends WeakMap<TensorProto, Uint8Array> {
  readonly #ranges = new WeakMap<TensorProto, ExternalRange>();
  /** The last deferred tensor read: layer-by-layer work reads one tensor many times in a row. */
  #last: { t: TensorProto; bytes: Uint8Array } | undefined;

  /** Registers `t` as read on demand from `range`. */
  defer(t: TensorProto, range: ExternalRange): void {
    this.#ranges.set(t, range);
  }

  /** Where a deferred tensor's bytes are, or undefined when it is held in memory (or unknown). */
  range(t: TensorProto): ExternalRange | undefined {
    return super.has(t) ? undefined : this.#ranges.get(t);
  }

  override has(t: TensorProto): boolean {
    return super.has(t) || this.#ranges.has(t);
  }

  /**
   * The tensor's bytes: held ones as they are, deferred ones read from disk (or the last one read).
   * @throws E_EXTERNAL_DATA when the data file is gone, shorter than at load time, or unreadable.
   */
  override get(t: TensorProto): Uint8Array | undefined {
    const held = super.get(t);
    if (held) return held;
    if (this.#last?.t === t) return this.#last.bytes;
    const r = this.#ranges.get(t);
    if (!r) return undefined;
    this.#last = undefined; // let the previous one be collected before reading the next
    const bytes = readRange(r, t.name);
    this.#last = { t, bytes };
    return bytes;
  }
}

/** True when `t`'s bytes are read from disk on use (see {@link DeferredExternalBytes}). */
export function isDeferred(external: ExternalBytes, t: TensorProto): boolean {
  return external instanceof DeferredExternalBytes && external.range(t) !== undefined;
}

/** Reads `length` bytes at `offset` of an open file into `buf` (from `at`), failing on a short read. */
export function readFully(fd: number, buf: Uint8Array, at: number, length: number, offset: number, what: () => string): void {
  let off = 0;
  while (off < length) {
    let n: number;
    try {
      n = fs.readSync(fd, buf, at + off, Math.min(length - off, 1 << 30), offset + off);
    } catch (e) {
      fail('E_EXTERNAL_DATA', `${what()}: cannot read (${(e as Error).message}).`, e);
    }
    if (n === 0) fail('E_EXTERNAL_DATA', `${what()}: the file ended early.`);
    off += n;
  }
}

/**
 * Opens a deferred tensor's data file and runs `fn` on it (closed afterwards).
 * @throws E_EXTERNAL_DATA when the file is gone or shorter than when the model was loaded.
 */
function withRange<T>(r: ExternalRange, tensor: string, fn: (fd: number, what: () => string) => T): T {
  const what = () => `${r.modelFile}: external data '${r.location}' of tensor '${tensor}'`;
  let fd: number;
  try {
    fd = fs.openSync(r.file, 'r');
  } catch (e) {
    fail('E_EXTERNAL_DATA', `${what()} cannot be opened any more (${(e as Error).message}); it was there when the model was loaded. Put it back next to the model.`, e);
  }
  try {
    const size = fs.fstatSync(fd).size;
    if (size < r.fileSize) fail('E_EXTERNAL_DATA', `${what()} shrank from ${r.fileSize} to ${size} bytes since the model was loaded; the data file changed. Run again on a complete model.`);
    return fn(fd, what);
  } finally {
    fs.closeSync(fd);
  }
}

/** Reads a range into a new array. @throws E_EXTERNAL_DATA when the file is gone, shrank or is unreadable. */
export function readRange(r: ExternalRange, tensor: string): Uint8Array {
  return withRange(r, tensor, (fd, what) => {
    const buf = new Uint8Array(r.length);
    readFully(fd, buf, 0, r.length, r.offset, what);
    return buf;
  });
}

/**
 * Copies a deferred tensor's bytes into an open file in blocks of `block.length` bytes (memory: one
 * block, whatever the tensor's size).
 */
export function copyRange(r: ExternalRange, tensor: string, outFd: number, block: Uint8Array): void {
  withRange(r, tensor, (fd, what) => {
    for (let done = 0; done < r.length; ) {
      const n = Math.min(block.length, r.length - done);
      readFully(fd, block, 0, n, r.offset + done, what);
      writeAll(outFd, block.subarray(0, n));
      done += n;
    }
  });
}
