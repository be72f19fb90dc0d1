/**
 * Sensitivity analysis: every compressible layer compressed alone at every level, evaluated
 * against the original model. Results stream into `sensitivity.json` (atomic rewrites) so that a
 * cancelled or killed run keeps what finished and a re-run measures only the missing cells.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { CompressError, fail, throwIfAborted } from '../errors';
import { chooseEncoding } from '../encode/choose';
import { checkFinite, compressWeight } from '../encode/apply';
import { lowRankDecomposition, lowRankRank } from '../compress/lowRank';
import type { WeightInfo } from '../onnx';
import type { VariantEvaluator } from '../eval/variantEvaluator';
import { writeFileAtomic } from '../util/atomicWrite';
import { sensitivityCsv } from '../report/csv';
import { defaultLevels, levelUnsupported, parseTechniques, type TechniqueFamily } from './levels';
import { calibratedLevels, calibrationApplies, ensureCalibration, makeBiasCorrector } from './calibrate';
import { biasTargets, type BiasCorrector } from '../eval/biasCorrection';
import { acquireLock, openEvaluator, prepareModel, resultsDirFor, TOOL, type DataInput, type OpenedEvaluator, type PreparedModel, RUN_DEFAULTS, type RunOptions } from './workspace';
import type { LayerRow, LevelDef, SensitivityCell, SensitivityFile } from './types';

/** Options of {@link analyzeModel}. */
export interface AnalyzeOptions extends RunOptions {
  /** Path of the .onnx model. Required. */
  model: string;
  /** Search data. Required. */
  data: DataInput;
  /** Results folder. Default `<model>.compress/` next to the model. */
  out: string | undefined;
  /** Technique families (columns). Default all: share, prune, quant, float, lowrank. */
  techniques: readonly TechniqueFamily[];
  /** Explicit columns instead of the defaults of `techniques`. Default none. */
  levels: readonly LevelDef[] | undefined;
  /**
   * Samples used for the sensitivity cells (the first N of the data; undefined = all). Default
   * `'auto'`: 1000, or 500 for models with more than {@link LARGE_MODEL_PARAMS} compressible
   * parameters, where cells cost seconds each (a cell ranks a layer's levels; the search measures
   * whole candidates on all the data, and the held-out data confirms the choice).
   */
  limit: number | 'auto' | undefined;
  /**
   * Screening (fraction of top-1, 0.05 = 5 points): every cell stops early once its loss is
   * decisively above this (95 % confidence, `stopOn: 'over'`); every other cell runs on all `limit`
   * samples in that one evaluation. Default 0.05.
   */
  screenAbove: number;
}

/** Merges {@link AnalyzeOptions} defaults. */
export function makeAnalyzeOptions(o: Partial<AnalyzeOptions> & Pick<AnalyzeOptions, 'model' | 'data'>): AnalyzeOptions {
  return {
    out: undefined,
    techniques: parseTechniques(undefined),
    levels: undefined,
    limit: 'auto',
    screenAbove: 0.05,
    ...RUN_DEFAULTS,
    ...o,
  };
}

/** Above this many compressible parameters the `'auto'` sensitivity limit is 500 samples instead of 1000. */
export const LARGE_MODEL_PARAMS = 1_000_000;

/** The sample limit of the sensitivity cells (see {@link AnalyzeOptions.limit}). */
export function sensitivityLimit(limit: number | 'auto' | undefined, compressibleParams: number): number | undefined {
  return limit === 'auto' ? (compressibleParams > LARGE_MODEL_PARAMS ? 500 : 1000) : limit;
}

/** File names inside the results folder. */
export const FILES = {
  sensitivity: 'sensitivity.json',
  sensitivityCsv: 'sensitivity.csv',
  candidates: 'candidates.json',
  candidatesCsv: 'candidates.csv',
  report: 'report.md',
  html: 'report.html',
} as const;

/**
 * Runs (or resumes) the sensitivity analysis and returns the complete `sensitivity.json`.
 * Writes `sensitivity.json` as cells arrive and `sensitivity.csv` at the end (also when cancelled).
 * @throws E_BAD_ARGUMENT when the folder holds results of another model or dataset (use `fresh`);
 * E_IO when another run holds the folder; E_CANCELLED when `signal` fires (finished cells are kept).
 */
export async function analyzeModel(options: Partial<AnalyzeOptions> & Pick<AnalyzeOptions, 'model' | 'data'>): Promise<SensitivityFile> {
  const o = makeAnalyzeOptions(options);
  const dir = resultsDirFor(o.model, o.out);
  const release = acquireLock(dir);
  try {
    const pm = await prepareModel(o.model, dir, o.signal);
    return await runSensitivity(pm, dir, o);
  } finally {
    release();
  }
}

/** Layer rows of the matrix. */
function layerRows(pm: PreparedModel, levels: readonly LevelDef[]): LayerRow[] {
  return pm.layers.map((w) => {
    const row: LayerRow = { name: w.name, op: w.op, node: w.node, kind: w.kind, shape: w.shape, params: w.params, bytes: w.bytes };
    const un: Record<string, string> = {};
    for (const l of levels) {
      const why = levelUnsupported(pm.model, w, l);
      if (why) un[l.id] = why;
    }
    if (Object.keys(un).length) row.unsupported = un;
    return row;
  });
}

/** Reads an earlier sensitivity file of the folder, if any (undefined when absent or unreadable JSON). */
export function readSensitivity(dir: string): SensitivityFile | undefined {
  const file = path.join(dir, FILES.sensitivity);
  if (!fs.existsSync(file)) return undefined;
  try {
    const s = JSON.parse(fs.readFileSync(file, 'utf8')) as SensitivityFile;
    return s.schema === 'onnx-compress/sensitivity@1' ? s : undefined;
  } catch {
    return undefined;
  }
}

/**
 * The sensitivity study on an already prepared model (the caller holds the folder's lock). Opens
 * its own evaluator on the first `limit` samples unless every cell is already measured.
 */
export async function runSensitivity(pm: PreparedModel, dir: string, o: AnalyzeOptions): Promise<SensitivityFile> {
  const emit = o.onEvent ?? (() => {});
  const calibrate = calibrationApplies(o.calibrate, o.data);
  const levels = calibrate ? calibratedLevels(o.levels ?? defaultLevels(o.techniques)) : o.levels ? [...o.levels] : defaultLevels(o.techniques);
  if (levels.length === 0) fail('E_BAD_ARGUMENT', 'No levels to measure.');
  const layers = layerRows(pm, levels);
  const file = path.join(dir, FILES.sensitivity);
  const old = o.fresh ? undefined : readSensitivity(dir);
  // Levels the encoder refused in an earlier run stay refused (same model, same spec).
  for (const r of layers) {
    const before = old?.model.sha256 === pm.ref.sha256 ? old.layers.find((x) => x.name === r.name)?.unsupported : undefined;
    for (const [id, why] of Object.entries(before ?? {})) {
      const l = levels.find((x) => x.id === id);
      if (l && old!.levels.some((x) => x.id === id && JSON.stringify(x.spec) === JSON.stringify(l.spec))) (r.unsupported ??= {})[id] = why;
    }
  }
  if (old && old.model.sha256 !== pm.ref.sha256) {
    fail('E_BAD_ARGUMENT', `The results folder '${dir}' holds results of another model (sha256 ${old.model.sha256.slice(0, 12)}…, now ${pm.ref.sha256.slice(0, 12)}…): the model changed. Use another --out, or --fresh to discard them.`);
  }
  const total = layers.reduce((s, r) => s + levels.filter((l) => !r.unsupported?.[l.id]).length, 0);
  const levelKey = new Map(levels.map((l) => [l.id, JSON.stringify(l.spec)]));
  const oldLevels = new Map((old?.levels ?? []).map((l) => [l.id, JSON.stringify(l.spec)]));
  const layerNames = new Set(layers.map((r) => r.name));
  // Cells measured with (or without) bias correction do not resume a study without (or with) it.
  const sameCorrection = (old?.biasCorrection ?? false) === calibrate;
  const kept = (old?.cells ?? []).filter((c) => sameCorrection && layerNames.has(c.layer) && levelKey.has(c.level) && levelKey.get(c.level) === oldLevels.get(c.level));
  const have = new Set(kept.map((c) => `${c.layer}\u0000${c.level}`));
  const needed = total - layers.reduce((s, r) => s + levels.filter((l) => !r.unsupported?.[l.id] && have.has(`${r.name}\u0000${l.id}`)).length, 0);

  emit({ type: 'phase', phase: 'setup', message: `Preparing the evaluator (${o.data.source})` });
  let opened: OpenedEvaluator | undefined;
  // With bias correction a layer's variant is its weight and its bias.
  const biasOf = new Map(calibrate ? biasTargets(pm.model, pm.layers).map((t) => [t.weight, t.bias]) : []);
  const groupOf = (w: WeightInfo): string[] => [w.name, ...(biasOf.has(w.name) ? [biasOf.get(w.name)!] : [])];
  const openIt = async (): Promise<OpenedEvaluator> =>
    (opened ??= await openEvaluator(pm, o.data, pm.layers.map(groupOf), { limit: sensitivityLimit(o.limit, pm.layers.reduce((s, w) => s + w.params, 0)), threads: o.threads, batchSize: o.batchSize, signal: o.signal }));
  // The dataset reference must match to resume; opening the evaluator tells us what it is.
  const ev = needed > 0 || !old ? await openIt() : undefined;
  const datasetRef = ev?.ref ?? old!.dataset;
  if (old && ev && (old.dataset.source !== ev.ref.source || old.dataset.samples !== ev.ref.samples || old.dataset.labels !== ev.ref.labels)) {
    fail('E_BAD_ARGUMENT', `The results folder '${dir}' holds sensitivity results measured on other data (${old.dataset.source}, ${old.dataset.samples} samples; now ${ev.ref.source}, ${ev.ref.samples}). Use another --out, or --fresh to discard them.`);
  }
  const now = new Date().toISOString();
  const sf: SensitivityFile = {
    schema: 'onnx-compress/sensitivity@1',
    tool: TOOL,
    model: pm.ref,
    dataset: datasetRef,
    confidence: 0.95,
    budget: o.screenAbove,
    baseline: ev ? { top1: ev.top1, samples: ev.ref.samples } : old!.baseline,
    levels,
    layers,
    biasCorrection: calibrate,
    cells: kept,
    complete: needed === 0,
    started: old?.started ?? now,
    updated: now,
  };
  let lastWrite = 0;
  const save = async (force: boolean): Promise<void> => {
    if (!force && performance.now() - lastWrite < o.progressIntervalMs) return;
    sf.updated = new Date().toISOString();
    await writeFileAtomic(file, JSON.stringify(sf, null, 1));
    lastWrite = performance.now();
  };
  const writeCsv = () => writeFileAtomic(path.join(dir, FILES.sensitivityCsv), sensitivityCsv(sf));
  if (!ev) {
    await save(true);
    await writeCsv();
    return sf;
  }
  if (kept.length) emit({ type: 'log', message: `Resuming: ${kept.length} of ${total} cells already measured.` });
  emit({ type: 'phase', phase: 'sensitivity', message: `Measuring ${needed} cells (${layers.length} layers × ${levels.length} levels) on ${ev.ref.samples} samples` });
  let done = total - needed;
  let lastProgress = 0;
  let corrector: BiasCorrector | undefined;
  try {
    await save(true);
    if (calibrate) {
      // after the first write: a run killed while collecting still leaves a resumable folder
      emit({ type: 'log', message: 'Collecting layer input statistics for calibrated rounding' });
      await ensureCalibration(pm, o.data, { signal: o.signal, threads: o.threads });
      corrector = await makeBiasCorrector(pm.bytes, pm.model, pm.layers, o.data, { threads: o.threads, signal: o.signal, ...(pm.model.externalFiles.length ? { externalDataFolder: path.dirname(pm.file) } : {}) });
    }
    for (const w of pm.layers) {
      const row = layers.find((r) => r.name === w.name)!;
      if (levels.every((l) => row.unsupported?.[l.id] || have.has(`${w.name}\u0000${l.id}`))) continue;
      // One evaluator (one session) alive at a time: only the layers after this one run per variant.
      const layerEval = await ev.evaluatorFor(groupOf(w));
      try {
      for (const level of levels) {
        if (row.unsupported?.[level.id]) continue;
        if (have.has(`${w.name}\u0000${level.id}`)) continue;
        throwIfAborted(o.signal);
        const layerCells = sf.cells.filter((c) => c.layer === w.name);
        const cell = await measureCell(pm, w, level, layerEval, corrector, ev.ref.labels, o.screenAbove, o.signal, (bytes) => skipReason(w, level, bytes, layerCells, sf.levels));
        if (typeof cell === 'string') {
          // The encoder cannot write this level for this layer, or it is pruned (skipReason): it
          // becomes an unsupported column of this row.
          (row.unsupported ??= {})[level.id] = cell;
          done++;
          continue;
        }
        sf.cells.push(cell);
        done++;
        emit({ type: 'cell', cell });
        if (performance.now() - lastProgress >= o.progressIntervalMs || done === total) {
          lastProgress = performance.now();
          emit({ type: 'progress', done, total, message: `${w.name} ${level.label}` });
        }
        await save(false);
      }
      } finally {
        await layerEval.dispose();
      }
    }
    sf.complete = true;
    emit({ type: 'progress', done: total, total, message: 'sensitivity complete' });
  } finally {
    await corrector?.dispose();
    await save(true);
    await writeCsv();
  }
  return sf;
}

/**
 * Level pruning: why a cell need not be evaluated, from its exact bytes alone (undefined = measure
 * it). A level whose encoding is not smaller than the original layer is never offered by the
 * search; a level that is larger than an already measured level of another family that lost
 * nothing (loss ≤ 0, every prediction kept: agreement 1) can never be the better choice for this layer.
 * Pruning levels are always measured: the prune+share / prune+quant combinations take their loss.
 */
export function skipReason(w: { bytes: number }, level: LevelDef, bytes: number, measured: readonly SensitivityCell[], levels: readonly LevelDef[]): string | undefined {
  if (bytes >= w.bytes) return `not smaller than the original (${bytes} ≥ ${w.bytes} bytes)`;
  if (level.technique === 'prune') return undefined;
  const family = new Map(levels.map((l) => [l.id, l.technique]));
  const free = measured.find((c) => family.get(c.level) !== level.technique && c.onnxBytes <= bytes && c.loss <= 0 && c.agreement >= 1 && !c.stoppedEarly);
  return free ? `dominated: ${bytes} bytes, while ${free.level} takes ${free.onnxBytes} bytes and changes no prediction` : undefined;
}

/** Compresses layer `w` alone at `level` (its bias corrected with `corrector`) and evaluates it (screened: stops once decisively above `screen`); a string = not measured (why). */
async function measureCell(pm: PreparedModel, w: WeightInfo, level: LevelDef, evaluator: VariantEvaluator, corrector: BiasCorrector | undefined, labels: boolean, screen: number, signal: AbortSignal | undefined, skip: (bytes: number) => string | undefined): Promise<SensitivityCell | string> {
  const t0 = performance.now();
  if (level.spec.technique === 'lowrank') {
    // A low-rank level's exact bytes follow from the layer's decomposition (shared by its levels):
    // a pruned level costs no factors.
    const data = pm.model.float32(w.tensor);
    checkFinite(pm.model.source, w.name, data);
    const dec = lowRankDecomposition({ data, shape: w.shape, role: w.kind, channelAxis: w.channelAxis, name: w.name }, signal);
    const why = skip(4 * lowRankRank(dec, level.spec) * (dec.rows + dec.cols));
    if (why) return why;
  }
  const ct = compressWeight(pm.model, w, level.spec, signal ? { signal } : {});
  let onnxBytes: number;
  try {
    onnxBytes = ct.storage.kind === 'lowrank' ? (ct.storage.left.length + ct.storage.right.length) * 4 : chooseEncoding(w.name, w.shape, ct).bytes;
  } catch (e) {
    if (e instanceof CompressError && e.code !== 'E_CANCELLED') return `no ONNX encoding: ${e.message}`;
    throw e;
  }
  const why = skip(onnxBytes);
  if (why) return why;
  const orig = pm.model.float32(w.tensor);
  let norm = 0;
  for (let i = 0; i < orig.length; i++) norm += orig[i]! * orig[i]!;
  const variant = new Map([[w.name, ct.weights]]);
  if (corrector) for (const [b, v] of await corrector.correct(variant, signal)) variant.set(b, v);
  const r = await evaluator.evaluate(variant, { budget: screen, stopOn: 'over', signal });
  return {
    layer: w.name,
    level: level.id,
    loss: r.loss,
    ci: [r.ci[0], r.ci[1]],
    top1: labels ? r.top1 : null,
    agreement: r.agreement,
    samples: r.samples,
    stoppedEarly: r.stoppedEarly,
    bits: ct.bits.total,
    entropyBits: ct.bits.entropyTotal,
    onnxBytes,
    relError: ct.sse / Math.max(norm, 1e-30),
    kl: r.fidelity.klSoftmax,
    seconds: (performance.now() - t0) / 1000,
  };
}
