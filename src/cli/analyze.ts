/** `onnx-compress analyze MODEL --data ...`: the per-layer sensitivity study. */
import * as path from 'node:path';
import { datasetSpecFromArgs, makeSyntheticSpec, type DatasetSpec } from '../engine/eval/datasetSpec';
import { analyzeModel, FILES, parseTechniques, resultsDirFor, type DataInput, type ExploreEvent } from '../engine/explore';
import { parse, UsageError } from './util';

/** Usage of the command. */
export const ANALYZE_USAGE = `usage: onnx-compress analyze MODEL.onnx (--data FILE [--labels FILE] | --data-free) [options]
  --data FILE         dataset JSON, .npy/.npz/.idx inputs, or an image folder (see docs/datasets.md)
  --labels FILE       labels for --data x.npy
  --data-free         no data: synthetic inputs, loss = disagreement with the original
  --limit N           samples for the sensitivity cells (default 1000; 500 above 1 M compressible parameters)
  --techniques LIST   share,prune,quant,float,lowrank (default all)
  --out DIR           results folder (default MODEL.compress/ next to the model)
  --fresh             discard earlier results in the folder instead of resuming
  --threads N         onnxruntime threads (default all cores)
  --no-calibration    plain rounding for share/quant levels (default: calibrated on the first 256
                      samples of the data; see docs/explore.md)
  --json              print a JSON summary on stdout`;

/** Options shared by `analyze` and `compress`. */
export const COMMON_OPTIONS = {
  data: { type: 'string' as const },
  labels: { type: 'string' as const },
  'data-free': { type: 'boolean' as const },
  limit: { type: 'string' as const },
  techniques: { type: 'string' as const },
  out: { type: 'string' as const },
  fresh: { type: 'boolean' as const },
  threads: { type: 'string' as const },
  'no-calibration': { type: 'boolean' as const },
  json: { type: 'boolean' as const },
};

/** Parsed values of {@link COMMON_OPTIONS}. */
export interface CommonValues {
  data?: string;
  labels?: string;
  'data-free'?: boolean;
  limit?: string;
  techniques?: string;
  out?: string;
  fresh?: boolean;
  threads?: string;
  'no-calibration'?: boolean;
  json?: boolean;
}

/** A positive integer option, or undefined. */
export function intOption(v: string | undefined, name: string): number | undefined {
  if (v === undefined) return undefined;
  const n = Number(v);
  if (!Number.isSafeInteger(n) || n < 1) throw new UsageError(`${name} must be a positive whole number, got '${v}'`);
  return n;
}

/** The dataset from `--data/--labels/--data-free`. */
export async function dataFromArgs(v: { data?: string | undefined; labels?: string | undefined; 'data-free'?: boolean | undefined }): Promise<DataInput> {
  if (v['data-free']) {
    if (v.data !== undefined) throw new UsageError('--data-free cannot be combined with --data');
    const spec: DatasetSpec = { format: 'synthetic', synthetic: makeSyntheticSpec() };
    return { spec, source: 'synthetic' };
  }
  if (v.data === undefined) throw new UsageError('missing --data FILE (or --data-free)');
  const spec = await datasetSpecFromArgs(v.data, v.labels);
  return { spec, source: v.labels ? `${v.data} + ${v.labels}` : v.data };
}

/**
 * Progress on stderr: a redrawn bar when stderr is a terminal, else a line every `everyMs`.
 * Phases and logs are printed as lines.
 */
export function progressPrinter(everyMs = 5000): { onEvent: (e: ExploreEvent) => void; done: () => void } {
  const tty = process.stderr.isTTY === true;
  let last = 0;
  let drawn = false;
  const clear = () => {
    if (drawn) process.stderr.write('\r\x1b[K');
    drawn = false;
  };
  return {
    onEvent: (e) => {
      if (e.type === 'phase' || e.type === 'log') {
        clear();
        process.stderr.write(`${e.type === 'phase' ? '== ' : '   '}${e.message}\n`);
      } else if (e.type === 'progress') {
        const frac = e.total ? e.done / e.total : 1;
        if (tty) {
          const w = 30;
          const fill = Math.round(frac * w);
          process.stderr.write(`\r\x1b[K[${'#'.repeat(fill)}${' '.repeat(w - fill)}] ${e.done}/${e.total} ${e.message.slice(0, 50)}`);
          drawn = true;
        } else if (Date.now() - last >= everyMs || e.done === e.total) {
          last = Date.now();
          process.stderr.write(`   ${e.done}/${e.total} (${Math.round(frac * 100)} %) ${e.message}\n`);
        }
      }
    },
    done: clear,
  };
}

/** Runs `analyze`. */
export async function analyzeCommand(argv: string[], signal: AbortSignal): Promise<void> {
  const parsed = parse(argv, { ...COMMON_OPTIONS });
  const positionals = parsed.positionals;
  const values = parsed.values as CommonValues;
  if (positionals.length !== 1) throw new UsageError(positionals.length ? `expected one model, got ${positionals.length}` : 'missing MODEL');
  const model = positionals[0]!;
  const data = await dataFromArgs(values);
  const limit = intOption(values.limit, '--limit');
  const threads = intOption(values.threads, '--threads');
  const progress = progressPrinter();
  const t0 = performance.now();
  try {
    const sf = await analyzeModel({
      model,
      data,
      out: values.out,
      techniques: parseTechniques(values.techniques),
      ...(limit !== undefined ? { limit } : {}),
      threads,
      fresh: values.fresh === true,
      calibrate: values['no-calibration'] !== true,
      signal,
      onEvent: progress.onEvent,
    });
    progress.done();
    const dir = resultsDirFor(model, values.out);
    const seconds = (performance.now() - t0) / 1000;
    if (values.json) {
      process.stdout.write(`${JSON.stringify({ baseline: sf.baseline, layers: sf.layers.length, levels: sf.levels.length, cells: sf.cells.length, complete: sf.complete, seconds, file: path.join(dir, FILES.sensitivity) }, null, 2)}\n`);
    } else {
      process.stdout.write(`${sf.cells.length} cells (${sf.layers.length} layers × ${sf.levels.length} levels) on ${sf.dataset.samples} samples in ${seconds.toFixed(1)} s.\n${path.join(dir, FILES.sensitivity)}\n${path.join(dir, FILES.sensitivityCsv)}\n`);
    }
  } finally {
    progress.done();
  }
}
