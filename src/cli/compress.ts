/** `onnx-compress compress MODEL --data ... (--max-loss PP | --max-size BYTES)`: search and export. */
import * as path from 'node:path';
import { compressModel, parseTechniques, resultsDirFor, type CandidatesFile } from '../engine/explore';
import { datasetSpecFromArgs } from '../engine/eval/datasetSpec';
import { COMMON_OPTIONS, dataFromArgs, intOption, progressPrinter, type CommonValues } from './analyze';
import { formatBytes, parse, table, UsageError } from './util';

/** Usage of the command. */
export const COMPRESS_USAGE = `usage: onnx-compress compress MODEL.onnx (--data FILE [--labels FILE] | --data-free) (--max-loss PP | --max-size SIZE) [options]
  --max-loss PP       largest top-1 loss in percentage points on the search data (e.g. 0.5)
  --max-size SIZE     largest compressed ONNX file (or archive): bytes, or 200kB, 5MB, 1.5MiB
  --target onnx|archive  what to make small: the ONNX file (default) or its .onnxc archive
  --holdout FILE      held-out dataset to confirm the chosen candidate on (default none)
  --data, --labels, --data-free, --techniques, --out, --fresh, --threads, --no-calibration, --json: as for analyze
  --limit N           samples of the search data for the real evaluations (default all)
  --sensitivity-limit N  samples for the sensitivity cells (default 1000; 500 above 1 M compressible parameters)
  --method fast|greedy   search (default fast; greedy is the slow baseline)
  --confidence C      a candidate meets --max-loss when the one-sided C upper confidence bound of its
                      search-data loss does (paired flips; default 0.8; 0.5 = the point estimate)
  --holdout-tries N   held-out confirmations at most: when the chosen candidate fails the budget on
                      --holdout, confirm the next larger ones (walk-back; default 4; 1 = confirm only)
  --no-sequential     calibrate each candidate's layers on the original model's inputs only (faster;
                      default: again in graph order on the compressed model's, docs/explore.md)`;

/** Parses `5MB`, `200kB`, `1.5MiB`, `123456` into bytes. */
export function parseSize(s: string): number {
  const m = /^\s*(\d+(?:\.\d+)?)\s*(B|kB|KB|k|MB|M|GB|G|KiB|MiB|GiB)?\s*$/i.exec(s);
  if (!m) throw new UsageError(`--max-size must be a size such as 250000, 200kB or 5MB, got '${s}'`);
  const unit = (m[2] ?? 'B').toLowerCase();
  const mult: Record<string, number> = { b: 1, k: 1e3, kb: 1e3, m: 1e6, mb: 1e6, g: 1e9, gb: 1e9, kib: 1024, mib: 1024 ** 2, gib: 1024 ** 3 };
  const v = Math.round(Number(m[1]) * mult[unit]!);
  if (!(v > 0)) throw new UsageError(`--max-size must be positive, got '${s}'`);
  return v;
}

/** The `--json` summary. */
export function compressSummary(cf: CandidatesFile, dir: string): Record<string, unknown> {
  const c = cf.candidates.find((x) => x.id === cf.chosen);
  return {
    baseline: { top1: cf.baseline.top1 },
    selection: cf.selection ?? null,
    chosen: c ? { id: c.id, top1: c.top1, loss: c.loss, lossUpper: c.lossUpper ?? null, bytes: c.bytes, ratio: c.ratio, archiveBytes: c.archiveBytes ?? null, holdout: c.holdout, plan: c.plan } : null,
    evaluations: cf.evaluations,
    breakdown: cf.breakdown,
    seconds: cf.seconds,
    out: dir,
    outputs: cf.outputs,
  };
}

/** Runs `compress`. */
export async function compressCommand(argv: string[], signal: AbortSignal): Promise<void> {
  const parsed = parse(argv, {
    ...COMMON_OPTIONS,
    'max-loss': { type: 'string' as const },
    'max-size': { type: 'string' as const },
    holdout: { type: 'string' as const },
    'sensitivity-limit': { type: 'string' as const },
    method: { type: 'string' as const },
    confidence: { type: 'string' as const },
    'holdout-tries': { type: 'string' as const },
    target: { type: 'string' as const },
    'no-sequential': { type: 'boolean' as const },
  });
  const positionals = parsed.positionals;
  const values = parsed.values as CommonValues & { 'max-loss'?: string; 'max-size'?: string; holdout?: string; 'sensitivity-limit'?: string; method?: string; confidence?: string; 'holdout-tries'?: string; target?: string; 'no-sequential'?: boolean };
  if (positionals.length !== 1) throw new UsageError(positionals.length ? `expected one model, got ${positionals.length}` : 'missing MODEL');
  const model = positionals[0]!;
  if ((values['max-loss'] === undefined) === (values['max-size'] === undefined)) throw new UsageError('give exactly one of --max-loss PP and --max-size SIZE');
  let maxLoss: number | undefined;
  if (values['max-loss'] !== undefined) {
    const pp = Number(values['max-loss']);
    if (!(Number.isFinite(pp) && pp >= 0 && pp < 100)) throw new UsageError(`--max-loss is in percentage points (e.g. 0.5), got '${values['max-loss']}'`);
    maxLoss = pp / 100;
  }
  const maxSize = values['max-size'] === undefined ? undefined : parseSize(values['max-size']);
  const method = values.method ?? 'fast';
  if (method !== 'fast' && method !== 'greedy') throw new UsageError(`--method must be fast or greedy, got '${method}'`);
  const target = values.target ?? 'onnx';
  if (target !== 'onnx' && target !== 'archive') throw new UsageError(`--target must be onnx or archive, got '${target}'`);
  const data = await dataFromArgs(values);
  const holdout = values.holdout === undefined ? undefined : { spec: await datasetSpecFromArgs(values.holdout), source: values.holdout };
  const limit = intOption(values.limit, '--limit');
  const sensitivityLimit = intOption(values['sensitivity-limit'], '--sensitivity-limit');
  let confidence: number | undefined;
  if (values.confidence !== undefined) {
    confidence = Number(values.confidence);
    if (!(confidence >= 0.5 && confidence < 1)) throw new UsageError(`--confidence must be in [0.5, 1), e.g. 0.8, got '${values.confidence}'`);
  }
  const holdoutTries = intOption(values['holdout-tries'], '--holdout-tries');
  if (holdoutTries !== undefined && holdoutTries < 1) throw new UsageError(`--holdout-tries must be at least 1, got '${values['holdout-tries']}'`);
  const progress = progressPrinter();
  let cf: CandidatesFile;
  try {
    cf = await compressModel({
      model,
      data,
      holdout,
      out: values.out,
      techniques: parseTechniques(values.techniques),
      maxLoss,
      maxSize,
      limit,
      ...(sensitivityLimit !== undefined ? { sensitivityLimit } : {}),
      method,
      target,
      ...(confidence !== undefined ? { confidence } : {}),
      ...(holdoutTries !== undefined ? { holdoutTries } : {}),
      threads: intOption(values.threads, '--threads'),
      fresh: values.fresh === true,
      calibrate: values['no-calibration'] !== true,
      sequential: values['no-sequential'] !== true,
      signal,
      onEvent: progress.onEvent,
    });
  } finally {
    progress.done();
  }
  const dir = resultsDirFor(model, values.out);
  if (values.json) {
    process.stdout.write(`${JSON.stringify(compressSummary(cf, dir), null, 2)}\n`);
    return;
  }
  const pct = (x: number | null | undefined) => (x === null || x === undefined ? '—' : (x * 100).toFixed(2));
  const archive = cf.target === 'archive';
  const rows = [...cf.candidates].filter((c) => c.pareto || c.id === cf.chosen).sort((a, b) => (archive ? (a.archiveBytes ?? 0) - (b.archiveBytes ?? 0) : 0) || a.bytes - b.bytes);
  process.stdout.write(`Baseline top-1 ${pct(cf.baseline.top1)} %, ${formatBytes(cf.model.bytes)}.\n\n`);
  const conf = `${Math.round((cf.selection?.confidence ?? 0.5) * 100)} % bound pt`;
  process.stdout.write(`${table(['candidate', 'bytes', 'ratio', ...(archive ? ['archive'] : []), 'top-1 %', 'loss pt', conf, 'held-out loss pt', 'budget'], rows.map((c) => [`${c.id}${c.id === cf.chosen ? ' *' : ''}`, formatBytes(c.bytes), `${c.ratio.toFixed(2)}×`, ...(archive ? [c.archiveBytes ? formatBytes(c.archiveBytes) : '—'] : []), pct(c.top1), pct(c.loss), pct(c.lossUpper), c.holdout ? `${pct(c.holdout.loss)}${c.holdout.ci ? ` [${pct(c.holdout.ci[0])}, ${pct(c.holdout.ci[1])}]` : ''}` : '—', c.feasible ? 'ok' : 'over']))}\n\n`);
  if (cf.selection) process.stdout.write(`${cf.selection.note}\n`);
  const c = cf.candidates.find((x) => x.id === cf.chosen);
  if (!c) {
    process.stdout.write('No candidate meets the budget; loosen it or add techniques.\n');
    return;
  }
  process.stdout.write(`Chosen ${c.id}: ${formatBytes(c.bytes)} (${c.ratio.toFixed(2)}×)${c.archiveBytes ? `, archive ${formatBytes(c.archiveBytes)} (${(cf.model.bytes / c.archiveBytes).toFixed(2)}×)` : ''}; ${cf.evaluations} evaluations, ${cf.seconds.toFixed(1)} s.\n`);
  for (const k of ['model', 'archive', 'plan', 'report', 'html'] as const) if (cf.outputs[k]) process.stdout.write(`  ${path.join(dir, cf.outputs[k]!)}\n`);
}
