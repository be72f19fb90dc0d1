/** `onnx-compress eval MODEL (--data ... | --data-free --reference ORIGINAL) [--json]`. */
import * as fs from 'node:fs';
import { fail } from '../engine/errors';
import { evaluateModel, type EvalReport } from '../engine/eval/evaluate';
import { resultsDirFor } from '../engine/explore';
import { dataFromArgs, intOption } from './analyze';
import { parse, UsageError } from './util';

/** Usage of the command. */
export const EVAL_USAGE = `usage: onnx-compress eval MODEL.onnx (--data FILE [--labels FILE] | --data-free) [options]
  --data FILE         dataset JSON, .npy/.npz/.idx inputs, or an image folder (see docs/datasets.md)
  --labels FILE       labels for --data x.npy
  --data-free         synthetic inputs (needs --reference: scored against the original's outputs)
  --reference FILE    the original model: adds top-1 agreement and output fidelity (SQNR, cosine, KL)
  --limit N           evaluate the first N samples
  --batch N           samples per inference call (default 64)
  --output NAME       model output to score (default the first)
  --threads N         onnxruntime threads (default all cores)
  --json              print the result as JSON (schema onnx-compress/eval@1)`;

function readModel(file: string): Uint8Array {
  try {
    return fs.readFileSync(file);
  } catch (e) {
    return fail('E_IO', `${file}: ${(e as NodeJS.ErrnoException).code === 'ENOENT' ? 'no such file. Check the path.' : (e as Error).message}`);
  }
}

/** Runs `eval`. */
export async function evalCommand(argv: string[], signal: AbortSignal): Promise<void> {
  const { values, positionals } = parse(argv, {
    data: { type: 'string' },
    labels: { type: 'string' },
    'data-free': { type: 'boolean' },
    reference: { type: 'string' },
    limit: { type: 'string' },
    batch: { type: 'string' },
    output: { type: 'string' },
    threads: { type: 'string' },
    json: { type: 'boolean' },
  });
  if (positionals.length !== 1) throw new UsageError(positionals.length ? `expected one model, got ${positionals.length}` : 'missing MODEL');
  const file = positionals[0]!;
  const data = await dataFromArgs(values);
  const model = readModel(file);
  const reference = values.reference ? readModel(values.reference) : undefined;
  const tty = !values.json && process.stderr.isTTY === true;
  let last = 0;
  const report = await evaluateModel(model, data.spec, file, {
    reference,
    cacheDir: values.reference ? resultsDirFor(values.reference) : undefined,
    limit: intOption(values.limit, '--limit'),
    batchSize: intOption(values.batch, '--batch') ?? 64,
    threads: intOption(values.threads, '--threads'),
    output: values.output,
    signal,
    onProgress: (done, total) => {
      if (tty) process.stderr.write(`\r\x1b[K[${'#'.repeat(Math.round((done / total) * 30)).padEnd(30)}] ${done}/${total}`);
      else if (!values.json && Date.now() - last > 5000) {
        last = Date.now();
        process.stderr.write(`  ${done}/${total} samples\n`);
      }
    },
  });
  if (tty) process.stderr.write('\r\x1b[K');
  process.stdout.write(values.json ? `${JSON.stringify(report, null, 2)}\n` : formatEval(file, data.source, report));
}

const pct = (x: number | null): string => (x === null ? '-' : `${(x * 100).toFixed(2)} %`);

/** Human-readable rendering of {@link EvalReport}. */
export function formatEval(file: string, source: string, r: EvalReport): string {
  const lines = [`${file} on ${source}: ${r.samples} samples, output '${r.output}'${r.classes ? ` (${r.classes} classes)` : ''}, ${r.seconds.toFixed(1)} s`];
  if (r.top1 !== null) lines.push(`  top-1 ${pct(r.top1)}   top-5 ${pct(r.top5)}`);
  if (r.agreement !== null) {
    lines.push(`  agreement with the reference ${pct(r.agreement)}${r.referenceTop1 !== null ? `   reference top-1 ${pct(r.referenceTop1)}  (loss ${((r.referenceTop1 - (r.top1 ?? 0)) * 100).toFixed(2)} points)` : ''}`);
    const f = r.fidelity!;
    lines.push(`  fidelity: SQNR ${Number.isFinite(f.sqnrDb) ? f.sqnrDb.toFixed(1) : '∞'} dB, cosine ${f.cosine.toFixed(5)}, KL(softmax) ${f.klSoftmax.toExponential(2)} nats, max |Δ| ${f.maxAbsDiff.toExponential(2)}`);
  }
  return `${lines.join('\n')}\n`;
}
