/**
 * Atomic file writes: data goes to a temporary file in the target's folder, is flushed, then renamed
 * over the target, so a reader sees either the old file or the whole new one, never half of it.
 */
import { randomBytes } from 'node:crypto';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { fail } from '../errors';

/** True when `a` and `b` name the same file (same path, or same inode through links). */
export function sameFile(a: string, b: string): boolean {
  if (path.resolve(a) === path.resolve(b)) return true;
  try {
    const sa = fs.statSync(a);
    const sb = fs.statSync(b);
    return sa.ino === sb.ino && sa.dev === sb.dev;
  } catch {
    return false;
  }
}

/** A temp path next to `target` (same folder, so the rename cannot cross file systems). */
export function tempPathFor(target: string): string {
  return path.join(path.dirname(target), `.${path.basename(target)}.${process.pid}.${randomBytes(4).toString('hex')}.tmp`);
}

/**
 * Removes temp files of `target` ({@link tempPathFor}) left by processes that no longer exist: a
 * writer killed with SIGKILL (or a power cut) cannot clean up after itself, so the next writer of the
 * same file does. Temp files of live processes are left alone. Best effort: errors are ignored.
 */
export function removeStaleTemps(target: string): void {
  const dir = path.dirname(target);
  const prefix = `.${path.basename(target)}.`;
  let names: string[];
  try {
    names = fs.readdirSync(dir);
  } catch {
    return;
  }
  for (const name of names) {
    if (!name.startsWith(prefix) || !name.endsWith('.tmp')) continue;
    const m = /^(\d+)\.[0-9a-f]{8}\.tmp$/.exec(name.slice(prefix.length));
    if (!m || processAlive(Number(m[1]))) continue;
    try {
      fs.rmSync(path.join(dir, name), { force: true });
    } catch {
      // another writer got there first, or we may not delete it: harmless
    }
  }
}

function processAlive(pid: number): boolean {
  if (pid === process.pid) return true;
  try {
    process.kill(pid, 0);
    return true;
  } catch (e) {
    return (e as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/** Turns a Node file-system error into an E_IO error that names the file and what to do. */
export function ioError(e: unknown, file: string, doing: string): never {
  const code = (e as NodeJS.ErrnoException | undefined)?.code;
  const what =
    code === 'ENOSPC' ? 'the disk is full; free some space and retry'
    : code === 'EDQUOT' ? 'the disk quota is exhausted; free some space and retry'
    : code === 'EACCES' || code === 'EPERM' ? 'permission denied; choose a folder you can write to'
    : code === 'ENOENT' ? 'the folder does not exist'
    : code === 'EROFS' ? 'the file system is read-only'
    : (e as Error | undefined)?.message ?? String(e);
  return fail('E_IO', `Cannot ${doing} '${file}': ${what}.`, e);
}

/**
 * Writes several files so that each appears complete or not at all. Parts are written to temp files
 * first; only when all are written are they renamed into place, in order. On any error every temp
 * file is removed and nothing at the targets changes (a target renamed before a later rename failed
 * is the only exception, and that needs a rename to fail on a folder we just wrote to).
 */
export async function writeFilesAtomic(
  parts: ReadonlyArray<{ path: string; write: (fd: number) => void | Promise<void> }>,
): Promise<void> {
  const temps: string[] = [];
  try {
    for (const part of parts) {
      removeStaleTemps(part.path);
      const tmp = tempPathFor(part.path);
      temps.push(tmp);
      let fd: number;
      try {
        fd = fs.openSync(tmp, 'wx', 0o644);
      } catch (e) {
        ioError(e, part.path, 'create');
      }
      try {
        await part.write(fd);
        fs.fsyncSync(fd);
      } catch (e) {
        if ((e as NodeJS.ErrnoException).code) ioError(e, part.path, 'write');
        throw e;
      } finally {
        fs.closeSync(fd);
      }
    }
    for (const [i, part] of parts.entries()) {
      try {
        fs.renameSync(temps[i]!, part.path);
      } catch (e) {
        ioError(e, part.path, 'rename into place');
      }
      temps[i] = '';
    }
  } finally {
    for (const t of temps) if (t) fs.rmSync(t, { force: true });
  }
}

/** Writes all of `data` to `fd` at the current position. */
export function writeAll(fd: number, data: Uint8Array): void {
  let off = 0;
  while (off < data.length) off += fs.writeSync(fd, data, off, Math.min(data.length - off, 1 << 30));
}

/** Writes many buffers to `fd` with few system calls (`writev` in batches). */
export function writeAllv(fd: number, parts: readonly Uint8Array[]): void {
  const BATCH = 512;
  for (let i = 0; i < parts.length; i += BATCH) {
    const batch = parts.slice(i, i + BATCH).filter((p) => p.length > 0);
    const total = batch.reduce((s, p) => s + p.length, 0);
    const written = fs.writevSync(fd, batch);
    // Short writes (rare, e.g. signals or huge batches): finish the rest part by part.
    if (written < total) {
      let skip = written;
      for (const p of batch) {
        if (skip >= p.length) {
          skip -= p.length;
          continue;
        }
        writeAll(fd, p.subarray(skip));
        skip = 0;
      }
    }
  }
}

/** Writes one file atomically. */
export async function writeFileAtomic(file: string, data: Uint8Array | string): Promise<void> {
  const bytes = typeof data === 'string' ? Buffer.from(data, 'utf8') : data;
  await writeFilesAtomic([{ path: file, write: (fd) => writeAll(fd, bytes) }]);
}
