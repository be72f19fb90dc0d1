/**
 * The original model's outputs on a dataset, computed once and cached on disk under the results
 * folder. The key is `sha256(model bytes)` + a dataset fingerprint (see {@link datasetFingerprint}).
 * Files are written atomically (temp file in the same folder, then rename).
 */
import { createHash } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { mkdir, readFile, readdir, stat } from 'node:fs/promises';
import { writeFileAtomic } from '../util/atomicWrite';
import { join, relative } from 'node:path';
import type * as ort from 'onnxruntime-node';
import { fail } from '../errors.js';
import type { DatasetSpec } from './datasetSpec.js';
import { runDataset, type RunOptions } from './session.js';
import type { Dataset } from './types.js';

/** The reference outputs: per output, float32 `[count, ...sampleDims]`, plus labels if any. */
export interface ReferenceOutputs {
  readonly count: number;
  readonly outputs: Record<string, { readonly sampleDims: readonly number[]; readonly data: Float32Array }>;
  readonly labels?: Int32Array;
}

/** sha256 hex of bytes. */
export function sha256(bytes: Uint8Array | string): string {
  return createHash('sha256').update(bytes).digest('hex');
}

async function hashFile(path: string, h: ReturnType<typeof createHash>): Promise<void> {
  await new Promise<void>((res, rej) => {
    createReadStream(path)
      .on('data', (c) => h.update(c))
      .on('end', () => res())
      .on('error', rej);
  });
}

/**
 * A fingerprint of a dataset: sha256 over the canonical spec JSON plus, for array files (npy, npz,
 * idx, labels), their full contents; for image folders, each image's relative path, size and
 * modification time (hashing gigabytes of images would cost more than the inference it saves), so
 * an image edited in place within the same millisecond and size would go unnoticed. `limit` is
 * part of the spec, so different limits get different entries.
 */
export async function datasetFingerprint(spec: DatasetSpec, limit?: number): Promise<string> {
  const h = createHash('sha256');
  h.update(JSON.stringify({ ...spec, specFile: undefined, limit: Math.min(spec.limit ?? Infinity, limit ?? Infinity) }));
  const files: string[] = [];
  if (spec.format === 'npz' && spec.file) files.push(spec.file);
  if (spec.format === 'npy' || spec.format === 'idx') {
    if (typeof spec.inputs === 'string') files.push(spec.inputs);
    else if (spec.inputs) files.push(...Object.values(spec.inputs).sort());
    if (spec.labels) files.push(spec.labels);
  }
  for (const f of files) {
    h.update(`\0file:${f}\0`);
    await hashFile(f, h);
  }
  if (spec.format === 'images') {
    const roots = typeof spec.inputs === 'string' ? [spec.inputs] : Object.values(spec.inputs ?? {});
    for (const root of roots) {
      const entries = (await readdir(root, { recursive: true, withFileTypes: true }))
        .filter((e) => e.isFile())
        .map((e) => join(e.parentPath, e.name))
        .sort();
      for (const f of entries) {
        const s = await stat(f);
        h.update(`\0img:${relative(root, f)}:${s.size}:${s.mtimeMs}`);
      }
    }
    if (typeof spec.classes === 'string') await hashFile(spec.classes, h);
  }
  return h.digest('hex');
}

const MAGIC = 'ONNXCOMPRESS-REF1\n';

/** Serialises reference outputs: magic, header length (u32 LE), JSON header, then raw float32 / int32. */
function encode(ref: ReferenceOutputs): Buffer {
  const names = Object.keys(ref.outputs);
  const header = JSON.stringify({
    count: ref.count,
    outputs: names.map((n) => ({ name: n, sampleDims: ref.outputs[n]!.sampleDims, length: ref.outputs[n]!.data.length })),
    labels: ref.labels ? ref.labels.length : -1,
  });
  const parts: Buffer[] = [Buffer.from(MAGIC), Buffer.alloc(4), Buffer.from(header)];
  parts[1]!.writeUInt32LE(Buffer.byteLength(header));
  for (const n of names) {
    const d = ref.outputs[n]!.data;
    parts.push(Buffer.from(d.buffer, d.byteOffset, d.byteLength));
  }
  if (ref.labels) parts.push(Buffer.from(ref.labels.buffer, ref.labels.byteOffset, ref.labels.byteLength));
  return Buffer.concat(parts);
}

function decode(buf: Buffer, file: string): ReferenceOutputs {
  if (buf.toString('latin1', 0, MAGIC.length) !== MAGIC) fail('E_IO', `Cache file '${file}' is not a reference-output cache; delete it.`);
  const hl = buf.readUInt32LE(MAGIC.length);
  let p = MAGIC.length + 4;
  const header = JSON.parse(buf.toString('utf8', p, p + hl)) as {
    count: number;
    outputs: { name: string; sampleDims: number[]; length: number }[];
    labels: number;
  };
  p += hl;
  const copyF32 = (n: number): Float32Array => {
    const out = new Float32Array(n);
    new Uint8Array(out.buffer).set(buf.subarray(p, p + 4 * n));
    p += 4 * n;
    return out;
  };
  const outputs: Record<string, { sampleDims: number[]; data: Float32Array }> = {};
  for (const o of header.outputs) outputs[o.name] = { sampleDims: o.sampleDims, data: copyF32(o.length) };
  if (header.labels >= 0) {
    const l = new Int32Array(copyF32(header.labels).buffer);
    return { count: header.count, outputs, labels: l };
  }
  return { count: header.count, outputs };
}

/** Re-exported: the engine's one atomic writer (temp file + fsync + rename). */
export { writeFileAtomic };

/**
 * Runs the whole dataset through `session` and keeps every output as float32 in memory
 * (memory = samples × output size; `[N, C]` logits are small).
 */
export async function computeReference(
  session: ort.InferenceSession,
  dataset: Dataset,
  options: Partial<RunOptions> = {},
): Promise<ReferenceOutputs> {
  const chunks = new Map<string, { sampleDims: readonly number[]; parts: Float32Array[] }>();
  const labels: Int32Array[] = [];
  const count = await runDataset(
    session,
    dataset,
    (outs, batch) => {
      for (const [n, b] of Object.entries(outs)) {
        const c = chunks.get(n) ?? { sampleDims: b.sampleDims, parts: [] };
        c.parts.push(b.data.slice());
        chunks.set(n, c);
      }
      if (batch.labels) labels.push(batch.labels.slice());
    },
    options,
  );
  const outputs: Record<string, { sampleDims: readonly number[]; data: Float32Array }> = {};
  for (const [n, c] of chunks) {
    const data = new Float32Array(c.parts.reduce((a, p) => a + p.length, 0));
    let o = 0;
    for (const p of c.parts) data.set(p, (o += p.length) - p.length);
    outputs[n] = { sampleDims: c.sampleDims, data };
  }
  if (labels.length === 0) return { count, outputs };
  const all = new Int32Array(count);
  let o = 0;
  for (const l of labels) all.set(l, (o += l.length) - l.length);
  return { count, outputs, labels: all };
}

/**
 * Returns the reference outputs of the model (`modelBytes`, already loaded in `session`) on the
 * dataset, from `<resultsDir>/cache/ref-<modelHash16>-<dataHash16>.bin` when present, else computes
 * and stores them. `fingerprint` comes from {@link datasetFingerprint}.
 */
export async function cachedReference(
  resultsDir: string,
  modelBytes: Uint8Array,
  fingerprint: string,
  session: ort.InferenceSession,
  dataset: Dataset,
  options: Partial<RunOptions> = {},
): Promise<{ ref: ReferenceOutputs; cached: boolean; file: string }> {
  const dir = join(resultsDir, 'cache');
  const file = join(dir, `ref-${sha256(modelBytes).slice(0, 16)}-${fingerprint.slice(0, 16)}.bin`);
  const existing = await readFile(file).catch(() => undefined);
  if (existing) return { ref: decode(existing, file), cached: true, file };
  const ref = await computeReference(session, dataset, options);
  try {
    await mkdir(dir, { recursive: true });
    await writeFileAtomic(file, encode(ref));
  } catch (e) {
    fail('E_IO', `Cannot write the reference cache '${file}': ${(e as Error).message}`, e);
  }
  return { ref, cached: false, file };
}
