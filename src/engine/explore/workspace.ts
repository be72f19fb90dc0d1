/**
 * What `analyze` and `compress` share: the results folder and its lock, the model (bytes, sha256,
 * compressible layers) and an evaluator of weight variants on a dataset with a disk-cached reference.
 */
import type { ExploreEvent } from './types';
import { createHash } from 'node:crypto';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { fail } from '../errors';
import { checkFinite } from '../encode/apply';
import { incompressibleSummary, listWeights, loadModel, type OnnxModel, type WeightInfo } from '../onnx';
import { openDataset } from '../eval/dataset';
import type { DatasetSpec } from '../eval/datasetSpec';
import { classesOf, createSession, sessionOutputs } from '../eval/session';
import type { Dataset } from '../eval/types';
import { modelIo, VariantEvaluator, type ActivationStore } from '../eval/variantEvaluator';
import type { Flips } from './search';
import type { DatasetRef, ModelRef } from './types';

/** Tool name written into result files. */
export const TOOL = 'onnx-compress';

/** `<model>.compress/` next to the model unless `out` is given. */
export function resultsDirFor(modelFile: string, out?: string): string {
  return path.resolve(out ?? `${modelFile.replace(/\.onnx$/i, '')}.compress`);
}

/**
 * Takes `<dir>/.lock` (holding our pid) so two runs never write the same results folder. A lock
 * left by a process that no longer exists is taken over. Returns the release function, which also
 * removes the folder when this call created it and the run left nothing in it (a run that failed on
 * its inputs leaves no trace).
 * @throws E_IO when another live process holds the lock (its pid is quoted).
 */
export function acquireLock(dir: string): () => void {
  const created = fs.mkdirSync(dir, { recursive: true }) !== undefined;
  const file = path.join(dir, '.lock');
  for (let attempt = 0; attempt < 3; attempt++) {
    try {
      fs.writeFileSync(file, `${process.pid}\n`, { flag: 'wx' });
      return () => {
        try {
          if (fs.readFileSync(file, 'utf8').trim() === String(process.pid)) fs.unlinkSync(file);
        } catch {
          // already gone
        }
        if (created) {
          try {
            fs.rmdirSync(dir); // only succeeds when empty
          } catch {
            // results were written: keep them
          }
        }
      };
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== 'EEXIST') fail('E_IO', `Cannot create the lock file '${file}': ${(e as Error).message}.`, e);
    }
    const pid = Number.parseInt(fs.readFileSync(file, 'utf8').trim(), 10);
    if (Number.isSafeInteger(pid) && pid > 0 && pid !== process.pid && alive(pid)) {
      fail('E_IO', `The results folder '${dir}' is in use by another run (pid ${pid}). Wait for it to finish, stop it, or use another --out.`);
    }
    if (pid === process.pid) fail('E_IO', `The results folder '${dir}' is already in use by this process; one run per folder at a time.`);
    fs.rmSync(file, { force: true }); // stale: its process is gone
  }
  fail('E_IO', `Cannot take the lock '${path.join(dir, '.lock')}'; delete it if no run is active.`);
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (e) {
    return (e as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/** A loaded model with what the explorers need. */
export interface PreparedModel {
  /** Absolute path. */
  file: string;
  model: OnnxModel;
  /** The serialized model (what the evaluator runs). */
  bytes: Uint8Array;
  ref: ModelRef;
  /** Compressible layers in graph order. */
  layers: WeightInfo[];
}

/**
 * sha256 (hex) of a file followed by `dataFiles` (a model's external data files, so that a changed
 * weight file counts as a changed model), read in 8 MiB blocks.
 */
export function fileSha256(file: string, dataFiles: readonly string[] = []): string {
  const h = createHash('sha256');
  const buf = Buffer.allocUnsafe(8 * 2 ** 20);
  for (const f of [file, ...dataFiles]) {
    const fd = fs.openSync(f, 'r');
    try {
      for (let n; (n = fs.readSync(fd, buf, 0, buf.length, null)) > 0; ) h.update(buf.subarray(0, n));
    } finally {
      fs.closeSync(fd);
    }
  }
  return h.digest('hex');
}

/**
 * Loads `file` and lists its compressible layers; `ref.file` is written relative to the results
 * folder's parent (`resultsDir/..`).
 * @throws E_MODEL_INVALID when it has no compressible layer.
 */
export async function prepareModel(file: string, resultsDir: string, signal?: AbortSignal): Promise<PreparedModel> {
  const abs = path.resolve(file);
  const model = await loadModel(abs, signal ? { signal } : {});
  const all = listWeights(model);
  const layers = all.filter((w) => w.compressible && w.dataType === 1);
  if (layers.length === 0) fail('E_MODEL_INVALID', `${file}: nothing to compress: no compressible float32 weight (${incompressibleSummary(all.filter((w) => !(w.compressible && w.dataType === 1)))}; see \`onnx-compress info ${file}\`).`);
  // Before any measurement: a NaN/Inf layer would fail (or poison the search) much later.
  for (const w of layers) checkFinite(file, w.name, model.float32(w.tensor));
  const fileBytes = fs.statSync(abs).size + model.externalFiles.reduce((s, f) => s + fs.statSync(f).size, 0);
  const bytes = fs.readFileSync(abs);
  return {
    file: abs,
    model,
    bytes,
    layers,
    ref: {
      file: path.relative(path.dirname(resultsDir), abs) || path.basename(abs),
      sha256: fileSha256(abs, model.externalFiles),
      bytes: fileBytes,
      compressibleParams: layers.reduce((s, w) => s + w.params, 0),
    },
  };
}

/** A dataset with its description. */
export interface DataInput {
  /** The validated dataset description (`loadDatasetSpec`, `datasetSpecFromArgs` or synthetic). */
  spec: DatasetSpec;
  /** How to name it in result files, e.g. the JSON path or `x.npy + y.npy`. */
  source: string;
}

/** Evaluators of one model on one dataset, sharing one pass over the data. */
export interface OpenedEvaluator {
  /** The shared pass: reference outputs and cached activations. */
  store: ActivationStore;
  dataset: Dataset;
  ref: DatasetRef;
  /** Original top-1 on these samples (null without labels). */
  top1: number | null;
  /** An evaluator whose variable weights are `names` (dispose it when done). */
  evaluatorFor(names: readonly string[]): Promise<VariantEvaluator>;
  /**
   * Paired flip counts of a variant's scored outputs (dataset order, as returned with
   * `keepOutputs`) against the original model: with labels, right→wrong (`up`) and wrong→right
   * (`down`); without labels, top-1 changes (`up`) and `down = 0`.
   */
  flips(outputs: Float32Array): Flips;
}

/**
 * Opens `data` for the model (at most `limit` samples) and runs the shared pass that evaluators of
 * the weight groups `groups` need (each layer alone for the sensitivity study, all layers together
 * for the search).
 */
export async function openEvaluator(
  pm: PreparedModel,
  data: DataInput,
  groups: readonly (readonly string[])[],
  o: { limit: number | undefined; threads: number | undefined; batchSize: number; signal: AbortSignal | undefined },
): Promise<OpenedEvaluator> {
  const io = modelIo(pm.bytes);
  // External data stays in its files; onnxruntime reads it from the model's folder.
  const folder = pm.model.externalFiles.length ? { externalDataFolder: path.dirname(pm.file) } : {};
  const classes = await (async () => {
    const s = await createSession(pm.bytes, { ...(o.threads ? { intraOpNumThreads: o.threads } : {}), ...folder });
    try {
      return classesOf(sessionOutputs(s)[0]);
    } finally {
      await s.release();
    }
  })();
  const dataset = await openDataset(data.spec, io.inputs, { limit: o.limit, numClasses: classes });
  const eo = { ...(o.threads ? { intraOpNumThreads: o.threads } : {}), ...folder, batchSize: o.batchSize, signal: o.signal };
  const store = await VariantEvaluator.prepare(pm.bytes, groups, dataset, eo);
  const refOut = store.reference.outputs[io.outputs[0]!]!;
  const labels = store.reference.labels;
  let top1: number | null = null;
  const count = store.reference.count;
  const per = refOut.data.length / count;
  const argmax = (d: Float32Array, i: number): number => {
    let best = 0;
    for (let c = 1; c < per; c++) if (d[i * per + c]! > d[i * per + best]!) best = c;
    return best;
  };
  const refTop1 = Int32Array.from({ length: count }, (_, i) => argmax(refOut.data, i));
  if (labels) top1 = refTop1.reduce((s, t, i) => s + (t === labels[i] ? 1 : 0), 0) / count;
  const flips = (outputs: Float32Array): Flips => {
    if (outputs.length !== refOut.data.length) fail('E_INTERNAL', `Variant outputs have ${outputs.length} values, the reference ${refOut.data.length}.`);
    let up = 0;
    let down = 0;
    for (let i = 0; i < count; i++) {
      const t = argmax(outputs, i);
      if (!labels) up += t === refTop1[i] ? 0 : 1;
      else if (refTop1[i] === labels[i] && t !== labels[i]) up++;
      else if (refTop1[i] !== labels[i] && t === labels[i]) down++;
    }
    return { up, down, samples: count };
  };
  return {
    store,
    dataset,
    ref: { source: data.source, samples: store.reference.count, labels: labels !== undefined },
    top1,
    evaluatorFor: (names) => VariantEvaluator.fromStore(pm.bytes, names, store, eo),
    flips,
  };
}

/** Options shared by `analyzeModel` and `compressModel` (defaults in {@link RUN_DEFAULTS}). */
export interface RunOptions {
  /** Discard earlier (sensitivity) results in the folder instead of resuming. Default false. */
  fresh: boolean;
  /** onnxruntime intra-op threads. Default: all cores. */
  threads: number | undefined;
  /** Samples per inference batch. Default 100. */
  batchSize: number;
  /** Minimum interval between `progress` events and between file rewrites, ms. Default 1000. */
  progressIntervalMs: number;
  signal: AbortSignal | undefined;
  /** Streamed events: phases, throttled progress, every measured cell and candidate. */
  onEvent: ((e: ExploreEvent) => void) | undefined;
  /**
   * Calibrated rounding for share and quant levels (`explore/calibrate.ts`; ignored with data-free
   * inputs). Default true.
   */
  calibrate: boolean;
}

/** Defaults of {@link RunOptions}. */
export const RUN_DEFAULTS: RunOptions = { fresh: false, threads: undefined, batchSize: 100, progressIntervalMs: 1000, signal: undefined, onEvent: undefined, calibrate: true };
