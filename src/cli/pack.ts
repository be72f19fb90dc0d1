/** `onnx-compress pack MODEL.onnx --out MODEL.onnxc [--json]` and `onnx-compress unpack ARCHIVE --out MODEL.onnx`. */
import * as fs from 'node:fs';
import { fail, throwIfAborted } from '../engine/errors';
import { isArchive, packArchiveWithStats, unpackArchive, type ArchiveStats } from '../engine/encode/archive';
import { sameFile, writeFileAtomic } from '../engine/util/atomicWrite';
import { formatBytes, parse, table, UsageError } from './util';

/** Usage of `pack`. */
export const PACK_USAGE = 'usage: onnx-compress pack MODEL.onnx --out MODEL.onnxc [--json]';
/** Usage of `unpack`. */
export const UNPACK_USAGE = 'usage: onnx-compress unpack ARCHIVE.onnxc --out MODEL.onnx';

function inOut(argv: string[]) {
  const { values, positionals } = parse(argv, { out: { type: 'string', short: 'o' }, json: { type: 'boolean' } });
  if (positionals.length !== 1) throw new UsageError(positionals.length ? `expected one input file, got ${positionals.length}` : 'missing the input file');
  const input = positionals[0]!;
  const out = values.out;
  if (typeof out !== 'string' || out === '') throw new UsageError('missing --out');
  if (sameFile(input, out)) throw new UsageError(`--out '${out}' is the input file; choose another output path`);
  return { input, out, values };
}

function readInput(file: string): Buffer {
  try {
    return fs.readFileSync(file);
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    return fail(code === 'ENOENT' ? 'E_BAD_ARGUMENT' : 'E_IO', `Cannot read '${file}': ${code === 'ENOENT' ? 'no such file' : (e as Error).message}.`, e);
  }
}

/** Runs `pack`. */
export async function packCommand(argv: string[], signal: AbortSignal): Promise<void> {
  const { input, out, values } = inOut(argv);
  const onnx = readInput(input);
  if (isArchive(onnx)) fail('E_BAD_ARGUMENT', `'${input}' is already an onnx-compress archive; restore it with \`onnx-compress unpack\`.`);
  const t0 = performance.now();
  const { archive, stats } = packArchiveWithStats(onnx, { source: input, signal });
  const ms = performance.now() - t0;
  throwIfAborted(signal);
  await writeFileAtomic(out, archive);
  process.stdout.write(values.json ? `${JSON.stringify({ input, out, ms: Math.round(ms), ...stats }, null, 2)}\n` : formatPack(input, out, stats, ms));
}

/** Human-readable rendering of {@link ArchiveStats}. */
export function formatPack(input: string, out: string, s: ArchiveStats, ms: number): string {
  const pct = (a: number, b: number): string => (b ? `${((100 * a) / b).toFixed(1)}%` : '-');
  const rows = s.streams.map((x) => [x.name, `${x.bits}`, x.count.toLocaleString('en-US'), formatBytes(x.rawBytes), formatBytes(x.codedBytes), pct(x.codedBytes, x.rawBytes), x.coder === 'range' ? `range o${x.order & 31} r${x.order >> 5}` : x.coder, formatBytes(Math.ceil(x.entropyBytes))]);
  rows.push(['(graph and other tensors)', '', '', formatBytes(s.rest.rawBytes), formatBytes(s.rest.codedBytes), pct(s.rest.codedBytes, s.rest.rawBytes), s.rest.coder, '']);
  rows.push(['(header)', '', '', '', formatBytes(s.headerBytes), '', '', '']);
  return [
    table(['stream', 'bits', 'codes', 'onnx', 'archive', 'ratio', 'coder', 'H0'], rows),
    '',
    `${input} (${formatBytes(s.onnxBytes)}) -> ${out} (${formatBytes(s.archiveBytes)}, ${pct(s.archiveBytes, s.onnxBytes)} of the ONNX file, ${s.streams.length} packed streams) in ${(ms / 1000).toFixed(2)} s`,
    '',
  ].join('\n');
}

/** Runs `unpack`. */
export async function unpackCommand(argv: string[], signal: AbortSignal): Promise<void> {
  const { input, out } = inOut(argv);
  const archive = readInput(input);
  const onnx = unpackArchive(archive, input, { signal });
  throwIfAborted(signal);
  await writeFileAtomic(out, onnx);
  process.stdout.write(`${input} (${formatBytes(archive.length)}) -> ${out} (${formatBytes(onnx.length)}, SHA-256 verified)\n`);
}
