import { strict as assert } from 'node:assert';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { CompressError } from '../../../src/engine/errors';

/** Folder of the committed test inputs (written by `make.py`). */
export const DATA = join(__dirname, 'data');

/** A fresh temporary folder. */
export function tempDir(): string {
  return mkdtempSync(join(tmpdir(), 'onnxc-eval-'));
}

/** Asserts that `p` rejects with a CompressError of `code` whose message contains every `parts`. */
export async function rejectsWith(p: Promise<unknown> | (() => unknown), code: string, ...parts: string[]): Promise<void> {
  try {
    await (typeof p === 'function' ? p() : p);
  } catch (e) {
    assert.ok(e instanceof CompressError, `expected CompressError, got ${String(e)}`);
    assert.equal(e.code, code, e.message);
    for (const s of parts) assert.ok(e.message.includes(s), `message ${JSON.stringify(e.message)} lacks ${JSON.stringify(s)}`);
    return;
  }
  assert.fail('expected an error');
}

/** Any typed array (bigint ones too) as plain numbers. */
export function list(a: ArrayLike<number | bigint>): number[] {
  return Array.from(a, (v) => Number(v));
}
