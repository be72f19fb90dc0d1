/**
 * `compress`: chooses per-layer techniques and levels that minimise the stored size under a top-1
 * loss budget (or the loss under a size budget), from the sensitivity study plus a few real
 * evaluations of combined candidates.
 *
 * Fast search (default): each layer's options are its measured levels (cost: the cell's output
 * divergence, smoothed along each technique's ladder by {@link isotonic} and scaled to loss units,
 * see {@link searchLayers}) plus a few prune+share / prune+quant combinations (cost predicted as
 * the sum of the two single-technique costs). An exact multiple-choice knapsack
 * ({@link minBytesUnderLoss}) picks the smallest combination whose predicted loss
 * `α · Σ costᵢ` fits the budget; the best few are built with the encoder, measured for real on the
 * whole search data, α is refitted from every measurement ({@link LossPredictor}), and this repeats
 * until a measured candidate meets the budget and the next round gains less than `tolerance` in size.
 *
 * Greedy baseline (`method: 'greedy'`): from the original model, every step measures for real each
 * layer's next level on a fixed ladder (its levels by decreasing bytes) and takes the one with the
 * best bytes saved per loss added that keeps the budget; a layer whose next level breaks the budget
 * stops there.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { isCalibrated, type TechniqueSpec } from '../compress';
import { fail, throwIfAborted } from '../errors';
import { applySpecs, compressWeight, type ApplyResult } from '../encode/apply';
import { packArchive } from '../encode/archive';
import { chooseEncoding } from '../encode/choose';
import { encodeModel, listWeights, loadModel, saveModel, savedSize, type OnnxModel, type WeightInfo } from '../onnx';
import { writeFileAtomic } from '../util/atomicWrite';
import { writeCompressReports } from '../report';
import { FILES, makeAnalyzeOptions, runSensitivity } from './analyze';
import { ladderOf, parseTechniques, type TechniqueFamily } from './levels';
import { CALIBRATION_SAMPLES, calibrationApplies, correctCompressed, ensureCalibration, makeBiasCorrector, planCorrections, type PlanCorrection } from './calibrate';
import type { BiasCorrector } from '../eval/biasCorrection';
import { collectHessians } from '../eval/calibration';
import type { LayerHessian } from '../compress/gptq';
import type { VariantEvaluator, VariantResult } from '../eval/variantEvaluator';
import { resolvePlan, specToLayerPlan, type PlanFile } from './plan';
import { isotonic, LossPredictor, minBytesUnderLoss, pairedLossBounds, minLossUnderBytes, paretoFront, SAFE_LADDER, safeChoice, totals, type LayerOption, type SearchLayer } from './search';
import { acquireLock, fileSha256, openEvaluator, prepareModel, resultsDirFor, TOOL, type DataInput, type PreparedModel, RUN_DEFAULTS, type RunOptions } from './workspace';
import type { Candidate, CandidatesFile, Selection, SensitivityCell, SensitivityFile } from './types';

/** Options of {@link compressModel}. Give exactly one of `maxLoss` and `maxSize`. */
export interface CompressModelOptions extends RunOptions {
  /** Path of the .onnx model. Required. */
  model: string;
  /** Search data (the budget holds on it). Required. */
  data: DataInput;
  /** Held-out data for the confirmation of the chosen candidate. Default none. */
  holdout: DataInput | undefined;
  /** Results folder. Default `<model>.compress/` next to the model. */
  out: string | undefined;
  /** Technique families the plan may use. Default all. */
  techniques: readonly TechniqueFamily[];
  /** Budget: largest top-1 loss, as a fraction (0.005 = 0.5 points). */
  maxLoss: number | undefined;
  /** Budget: largest compressed ONNX file (or archive, with `target: 'archive'`), bytes. */
  maxSize: number | undefined;
  /**
   * What to make small: `onnx` (default), the compressed ONNX file, or `archive`, its `.onnxc`
   * archive (entropy-coded codes: options are sized from their entropy-coded bits, and every
   * candidate's archive is packed and measured). Models evaluated from disk have no archive target.
   */
  target: CompressTarget;
  /** Samples of the search data used for the real evaluations. Default all. */
  limit: number | undefined;
  /** Samples of the search data used for the sensitivity cells. Default `'auto'` (1000, or 500 above 1 M compressible parameters; see `AnalyzeOptions.limit`). */
  sensitivityLimit: number | 'auto' | undefined;
  /** Early-stopping threshold of the sensitivity study (see `AnalyzeOptions.screenAbove`). Default 0.05. */
  screenAbove: number;
  /**
   * With calibration and bias correction (real data, candidates in memory): calibrate each
   * candidate's layers sequentially (`calibrateSequentially`; plans say `"sequentialCalibration":
   * true`). Default true.
   */
  sequential: boolean;
  /** Offer prune+share and prune+quant on one layer. Default true. */
  combine: boolean;
  /** Combinations per layer (those with the least predicted loss). Default 6. */
  maxCombos: number;
  /** `fast` (default) or `greedy` (the baseline, for comparisons; max-loss budgets only). */
  method: 'fast' | 'greedy';
  /** Real evaluations per round of the fast search. Default 2. */
  perIteration: number;
  /** Rounds of the fast search at most. Default 8. */
  maxIterations: number;
  /** Stop when a round improves the best feasible size by less than this fraction. Default 0.01. */
  tolerance: number;
  /**
   * One-sided confidence of the upper bound on a candidate's loss that must be within a loss
   * budget (`Candidate.lossUpper`, `pairedLossBounds` on the paired flips). 0.5 = the point estimate.
   * Default 0.8.
   */
  confidence: number;
  /**
   * Held-out confirmations at most: when the chosen candidate's held-out loss exceeds a loss budget,
   * the next feasible candidates by size are confirmed (walk-back) until one passes. 1 = confirm
   * only (the held-out set never influences the choice). Default 4.
   */
  holdoutTries: number;
  /** Export the chosen candidate (ONNX + archive) and write the reports. Default true. */
  export: boolean;
  /**
   * Evaluate candidates from disk (`eval/diskVariant.ts`): each reconstructed weight is written to a
   * temporary data file in the results folder as soon as it is made, and onnxruntime loads the
   * candidate from there, so memory holds its weights once instead of three times (originals,
   * reconstructions, onnxruntime's copy of the fed weights). Slower per candidate (a session each).
   * `'auto'` (default): when the compressible weights take at least {@link DISK_VARIANTS_ABOVE} bytes.
   */
  variantsOnDisk: boolean | 'auto';
}

/** What {@link CompressModelOptions.target} makes small. */
export type CompressTarget = 'onnx' | 'archive';

/** The size a candidate is judged by under `target`: its ONNX file, or its archive. */
export function targetSize(c: Pick<Candidate, 'bytes' | 'archiveBytes'>, target: CompressTarget): number {
  return target === 'archive' ? (c.archiveBytes ?? c.bytes) : c.bytes;
}

/** Compressible weights (bytes) from which `variantsOnDisk: 'auto'` evaluates candidates from disk: 256 MiB. */
export const DISK_VARIANTS_ABOVE = 256 * 2 ** 20;

/** Merges {@link CompressModelOptions} defaults. */
export function makeCompressModelOptions(o: Partial<CompressModelOptions> & Pick<CompressModelOptions, 'model' | 'data'>): CompressModelOptions {
  return {
    holdout: undefined,
    out: undefined,
    techniques: parseTechniques(undefined),
    maxLoss: undefined,
    maxSize: undefined,
    target: 'onnx',
    limit: undefined,
    sensitivityLimit: 'auto',
    screenAbove: 0.05,
    sequential: true,
    combine: true,
    maxCombos: 6,
    method: 'fast',
    perIteration: 2,
    maxIterations: 8,
    tolerance: 0.01,
    confidence: 0.8,
    holdoutTries: 4,
    export: true,
    variantsOnDisk: 'auto',
    ...RUN_DEFAULTS,
    ...o,
  };
}

/**
 * Weight of a cell's top-1 disagreement (1 − agreement) added to its smoothed loss in the
 * search's per-layer cost when the study has no output divergences (files of older versions):
 * flips that cancel out on the search data still make the loss uncertain (they widen
 * {@link pairedLossBounds}) and tend to show up as loss on new data.
 */
export const DISAGREEMENT_WEIGHT = 0.1;

/** Loss per nat of output divergence ({@link klScale}) when too few cells lose measurably. */
export const DEFAULT_KL_SCALE = 0.25;

/**
 * Loss (fraction) per nat of mean output KL divergence, from the cells whose loss is clearly
 * measured (0.5–5 points, all samples run): the median of loss / KL. It puts the divergence-based
 * costs of {@link searchLayers} in loss units, so the loss predictor's α starts near 1.
 */
export function klScale(cells: readonly SensitivityCell[]): number {
  const r = cells.filter((c) => c.kl !== undefined && c.kl > 0 && !c.stoppedEarly && c.loss >= 0.005 && c.loss <= 0.05).map((c) => c.loss / c.kl!).sort((a, b) => a - b);
  return r.length >= 3 ? r[Math.floor(r.length / 2)]! : DEFAULT_KL_SCALE;
}

/**
 * The per-layer options of the search, from a sensitivity study (see the module comment).
 *
 * A measured option's cost is its cell's mean output KL divergence from the original model,
 * smoothed along the technique's ladder and scaled to loss units ({@link klScale}). Divergences add
 * up over layers (on the MobileNet fixture the divergence of share plans was 1.0–1.25 × the sum of
 * their cells'), and every sample contributes to them, where a cell's top-1 loss counts a handful
 * of flips: on 1000 samples nearly every mild cell measures a loss of 0 ± 0.5 points, so summed
 * losses cannot tell a plan at 6× from one at 8×. Studies written before cells carried `kl` use the
 * smoothed loss plus {@link DISAGREEMENT_WEIGHT} × the disagreement.
 */
export function searchLayers(pm: PreparedModel, sf: SensitivityFile, o: { combine: boolean; maxCombos: number; comboLossLimit: number; target?: CompressTarget; signal?: AbortSignal | undefined }): SearchLayer[] {
  const archive = o.target === 'archive';
  const cells = new Map(sf.cells.map((c) => [`${c.layer}\u0000${c.level}`, c]));
  const byKl = sf.cells.length > 0 && sf.cells.every((c) => c.kl !== undefined && Number.isFinite(c.kl));
  const kappa = byKl ? klScale(sf.cells) : 0;
  return pm.layers.map((w) => {
    const options: LayerOption[] = [{ key: 'none', spec: null, bytes: w.bytes, bits: w.bytes * 8, loss: 0 }];
    const byFamily = new Map<string, LayerOption[]>();
    for (const family of new Set(sf.levels.map(ladderOf))) {
      const measured = sf.levels.filter((l) => ladderOf(l) === family).flatMap((l) => {
        const c = cells.get(`${w.name}\u0000${l.id}`);
        return c ? [{ l, c }] : [];
      });
      let cost: number[];
      if (byKl) cost = isotonic(measured.map((m) => m.c.kl!)).map((k) => kappa * Math.max(0, k));
      else {
        const smooth = isotonic(measured.map((m) => m.c.loss));
        // A cell's net loss is noise for mild levels (often ≤ 0); its disagreement grows reliably.
        const dis = isotonic(measured.map((m) => 1 - m.c.agreement));
        cost = smooth.map((x, i) => Math.max(0, x) + DISAGREEMENT_WEIGHT * Math.max(0, dis[i]!));
      }
      const opts = measured.map((m, i): LayerOption => ({ key: m.l.id, spec: m.l.spec, bytes: archive ? archiveEstimate(m.c.onnxBytes, m.c.bits, m.c.entropyBits) : m.c.onnxBytes, bits: m.c.bits, loss: cost[i]!, relError: m.c.relError }));
      byFamily.set(family, opts);
      options.push(...opts);
    }
    if (o.combine) options.push(...combos(pm, w, byFamily, o));
    return { name: w.name, options: options.filter((x, i) => i === 0 || x.bytes < w.bytes) };
  });
}

/**
 * A layer's bytes in the archive, estimated from its ONNX bytes: the packed codes (`bits` in all)
 * are range-coded there at about their entropy (`entropyBits`); the rest (codebooks, scales,
 * framing) stays as it is (brotli takes a little more off the whole file).
 */
export function archiveEstimate(onnxBytes: number, bits: number, entropyBits: number): number {
  return Math.max(1, Math.round(onnxBytes - Math.max(0, bits - entropyBits) / 8));
}

/** prune + share / prune + quant options of one layer (bytes from the encoder, loss predicted additive). */
function combos(pm: PreparedModel, w: WeightInfo, byFamily: Map<string, LayerOption[]>, o: { maxCombos: number; comboLossLimit: number; target?: CompressTarget; signal?: AbortSignal | undefined }): LayerOption[] {
  const prunes = (byFamily.get('prune') ?? []).filter((p) => p.loss <= o.comboLossLimit && p.spec?.technique === 'prune');
  const pairs: Array<{ p: LayerOption; s: LayerOption; loss: number }> = [];
  for (const p of prunes) {
    for (const s of [...(byFamily.get('share') ?? []), ...(byFamily.get('quant') ?? [])]) {
      if (p.loss + s.loss <= o.comboLossLimit) pairs.push({ p, s, loss: p.loss + s.loss });
    }
  }
  pairs.sort((a, b) => a.s.bytes - b.s.bytes || a.loss - b.loss || a.p.bytes - b.p.bytes);
  const out: LayerOption[] = [];
  for (const { p, s, loss } of pairs.slice(0, o.maxCombos)) {
    throwIfAborted(o.signal);
    const prune = p.spec as Extract<TechniqueSpec, { technique: 'prune' }>;
    const spec: TechniqueSpec = s.spec!.technique === 'share' ? { technique: 'prune+share', prune, share: s.spec as Extract<TechniqueSpec, { technique: 'share' }> } : { technique: 'prune+quant', prune, quant: s.spec as Extract<TechniqueSpec, { technique: 'quant' }> };
    try {
      const ct = compressWeight(pm.model, w, spec);
      const onnx = chooseEncoding(w.name, w.shape, ct).bytes;
      out.push({ key: `${p.key}+${s.key}`, spec, bytes: o.target === 'archive' ? archiveEstimate(onnx, ct.bits.total, ct.bits.entropyTotal) : onnx, bits: ct.bits.total, loss });
    } catch {
      // a combination the compressor or encoder refuses is simply not offered
    }
  }
  return out;
}

/** The plan of a choice: every compressible layer listed. */
function planOf(layers: readonly SearchLayer[], choice: readonly number[]): PlanFile {
  const out: Record<string, ReturnType<typeof specToLayerPlan>> = {};
  layers.forEach((l, i) => (out[l.name] = specToLayerPlan(l.options[choice[i]!]!.spec)));
  return { layers: out };
}

function specsOf(layers: readonly SearchLayer[], choice: readonly number[]): Map<string, TechniqueSpec> {
  const m = new Map<string, TechniqueSpec>();
  layers.forEach((l, i) => {
    const s = l.options[choice[i]!]!.spec;
    if (s) m.set(l.name, s);
  });
  return m;
}

/**
 * Runs the sensitivity study (resuming it), the search, the held-out confirmation of the chosen
 * candidate, and (unless `export: false`) exports it and writes `candidates.json/.csv`,
 * `report.md` and `report.html` into the results folder.
 * @throws E_BAD_ARGUMENT for a missing or double budget; see {@link analyzeModel} for the rest.
 */
export async function compressModel(options: Partial<CompressModelOptions> & Pick<CompressModelOptions, 'model' | 'data'>): Promise<CandidatesFile> {
  const o = makeCompressModelOptions(options);
  if ((o.maxLoss === undefined) === (o.maxSize === undefined)) fail('E_BAD_ARGUMENT', 'Give exactly one budget: a maximum loss (--max-loss, percentage points) or a maximum size (--max-size, bytes).');
  if (o.maxLoss !== undefined && !(o.maxLoss >= 0 && o.maxLoss < 1)) fail('E_BAD_ARGUMENT', `The maximum loss must be a fraction in [0, 1), got ${o.maxLoss}.`);
  if (o.maxSize !== undefined && !(o.maxSize > 0)) fail('E_BAD_ARGUMENT', `The maximum size must be a positive number of bytes, got ${o.maxSize}.`);
  if (!(o.confidence >= 0.5 && o.confidence < 1)) fail('E_BAD_ARGUMENT', `The confidence must be in [0.5, 1), got ${o.confidence}.`);
  if (!(Number.isInteger(o.holdoutTries) && o.holdoutTries >= 1)) fail('E_BAD_ARGUMENT', `holdoutTries must be an integer ≥ 1, got ${o.holdoutTries}.`);
  if (o.method === 'greedy' && o.maxLoss === undefined) fail('E_BAD_ARGUMENT', 'The greedy search supports a maximum loss budget only.');
  if (o.target !== 'onnx' && o.target !== 'archive') fail('E_BAD_ARGUMENT', `The target must be 'onnx' or 'archive', got '${String(o.target)}'.`);
  const t0 = performance.now();
  const emit = o.onEvent ?? (() => {});
  const dir = resultsDirFor(o.model, o.out);
  const release = acquireLock(dir);
  try {
    const pm = await prepareModel(o.model, dir, o.signal);
    let cellsMeasured = 0;
    const sf = await runSensitivity(
      pm,
      dir,
      makeAnalyzeOptions({
        model: o.model,
        data: o.data,
        techniques: o.techniques,
        limit: o.sensitivityLimit,
        screenAbove: o.screenAbove,
        fresh: o.fresh,
        threads: o.threads,
        batchSize: o.batchSize,
        progressIntervalMs: o.progressIntervalMs,
        calibrate: o.calibrate,
        signal: o.signal,
        onEvent: (e) => {
          if (e.type === 'cell') cellsMeasured++;
          emit(e);
        },
      }),
    );
    emit({ type: 'phase', phase: 'search', message: `Searching (${o.method}) under ${o.maxLoss !== undefined ? `a loss of ${(o.maxLoss * 100).toFixed(2)} points` : `${o.maxSize} bytes`}` });
    const calibration = calibrationApplies(o.calibrate, o.data) ? await ensureCalibration(pm, o.data, { signal: o.signal, threads: o.threads }) : undefined;
    const layers = searchLayers(pm, sf, { combine: o.combine && o.method === 'fast', maxCombos: o.maxCombos, comboLossLimit: o.maxLoss ?? 0.02, target: o.target, signal: o.signal });
    const onDisk = o.variantsOnDisk === 'auto' ? pm.layers.reduce((s, w) => s + w.bytes, 0) >= DISK_VARIANTS_ABOVE : o.variantsOnDisk;
    if (onDisk && o.target === 'archive') fail('E_BAD_ARGUMENT', `The archive target needs the candidates in memory, and '${o.model}' has ${pm.layers.reduce((s, w) => s + w.bytes, 0)} bytes of compressible weights (evaluated from disk from ${DISK_VARIANTS_ABOVE}); use the ONNX target (an archive holds one file below 2 GiB anyway).`);
    const sizeOf = (c: Candidate): number => targetSize(c, o.target);
    // Bias correction goes with calibration, in memory only (it feeds the reconstructions).
    const externalDataFolder = pm.model.externalFiles.length ? path.dirname(pm.file) : undefined;
    const corrector = calibration && !onDisk ? await makeBiasCorrector(pm.bytes, pm.model, pm.layers, o.data, { threads: o.threads, signal: o.signal, externalDataFolder }) : undefined;
    const group = [...pm.layers.map((w) => w.name), ...(corrector?.targets.map((t) => t.bias) ?? [])];
    const data = await openEvaluator(pm, o.data, [group], { limit: o.limit, threads: o.threads, batchSize: o.batchSize, signal: o.signal });
    const evaluator = await data.evaluatorFor(group);
    /** The search choice of each measured candidate (by id). */
    const choiceOf = new Map<string, readonly number[]>();
    /** Corrected biases (and sequentially calibrated layers) of each measured candidate (by id), for the held-out check and the export. */
    const corrections = new Map<string, PlanCorrection>();
    const candidates: Candidate[] = [];
    const byKey = new Map<string, Candidate>();
    const predictor = new LossPredictor(Math.max(o.maxLoss ?? 0.01, 1e-3) ** 2 * 2);
    let searchEvals = 0;
    const feasible = (c: Candidate): boolean => (o.maxLoss !== undefined ? (c.lossUpper ?? c.loss) <= o.maxLoss + 1e-12 : sizeOf(c) <= o.maxSize!);
    const measure = async (choice: number[]): Promise<Candidate> => {
      const key = choice.join(',');
      const known = byKey.get(key);
      if (known) return known;
      throwIfAborted(o.signal);
      const { res, bytes, archiveBytes, r, correction } = await buildAndEvaluate(pm.file, specsOf(layers, choice), evaluator, { onDisk, dir, sizeAt: exportPath(pm.file, dir), archive: o.target === 'archive', calibration, corrector, sequential: o.sequential, signal: o.signal });
      const flips = data.flips(r.outputs!);
      searchEvals++;
      let theory = pm.ref.bytes;
      for (const l of res.layers) theory += Math.ceil(l.bits.total / 8) - l.originalBytes;
      const sum = totals(layers, choice).loss;
      const c: Candidate = {
        id: `c${candidates.length + 1}`,
        plan: corrector ? { ...planOf(layers, choice), biasCorrection: true, ...(o.sequential ? { sequentialCalibration: true } : {}) } : planOf(layers, choice),
        bytes,
        ratio: pm.ref.bytes / bytes,
        theoreticalBytes: theory,
        top1: data.ref.labels ? r.top1 : null,
        loss: r.loss,
        flips,
        kl: r.fidelity.klSoftmax,
        lossUpper: pairedLossBounds(flips, o.confidence).upper,
        predictedLoss: predictor.predict(sum),
        holdout: null,
        evaluations: cellsMeasured + searchEvals,
        pareto: false,
        feasible: false,
        ...(archiveBytes !== undefined ? { archiveBytes } : {}),
      };
      c.feasible = feasible(c);
      if (correction) corrections.set(c.id, correction);
      choiceOf.set(c.id, choice);
      predictor.add(sum, r.loss);
      candidates.push(c);
      byKey.set(key, c);
      emit({ type: 'candidate', candidate: c });
      emit({ type: 'log', message: `${c.id}: ${bytes} bytes (${c.ratio.toFixed(2)}×${archiveBytes !== undefined ? `; archive ${archiveBytes}, ${(pm.ref.bytes / archiveBytes).toFixed(2)}×` : ''}), loss ${(r.loss * 100).toFixed(2)} points, upper bound ${(c.lossUpper! * 100).toFixed(2)} (predicted ${(c.predictedLoss * 100).toFixed(2)}), α=${predictor.alpha.toFixed(2)}` });
      return c;
    };
    let chosen: Candidate | undefined;
    let holdoutEvals = 0;
    let holdoutRef = null;
    const checked: string[] = [];
    let movedByHoldout = false;
    // The search's evaluator stays open through the held-out check: a failed check may search on.
    try {
      if (o.method === 'greedy') chosen = await greedy(layers, o.maxLoss!, measure, sizeOf, o.signal);
      else if (o.maxLoss !== undefined) chosen = await fastUnderLoss(layers, o.maxLoss, predictor, measure, o, (message) => emit({ type: 'log', message }));
      else chosen = await fastUnderSize(layers, o.maxSize!, pm.ref.bytes - pm.layers.reduce((s, w) => s + w.bytes, 0), measure, o);
      if (chosen && o.holdout) {
        emit({ type: 'phase', phase: 'holdout', message: `Confirming ${chosen.id} on held-out data (${o.holdout.source})` });
        const hd = await openEvaluator(pm, o.holdout, [group], { limit: undefined, threads: o.threads, batchSize: o.batchSize, signal: o.signal });
        const hev = await hd.evaluatorFor(group);
        try {
          const confirm = async (c: Candidate): Promise<boolean> => {
            const { r } = await buildAndEvaluate(pm.file, (model) => resolvePlan(c.plan, listWeights(model)), hev, { onDisk, dir, sizeAt: undefined, calibration, correction: corrections.get(c.id), signal: o.signal });
            const flips = hd.flips(r.outputs!);
            const b = pairedLossBounds(flips, 0.975);
            c.holdout = { top1: hd.ref.labels ? r.top1 : null, loss: r.loss, samples: r.samples, ci: [b.lower, b.upper], flips };
            if (o.maxLoss !== undefined) c.holdout.passed = r.loss <= o.maxLoss + 1e-12;
            holdoutEvals++;
            checked.push(c.id);
            emit({ type: 'log', message: `${c.id} on held-out data: loss ${(r.loss * 100).toFixed(2)} points (95 % CI ${(b.lower * 100).toFixed(2)}…${(b.upper * 100).toFixed(2)})` });
            return c.holdout.passed !== false;
          };
          if (o.maxLoss === undefined) await confirm(chosen);
          else {
            const first = chosen;
            const r = await confirmWithin(chosen, candidates, {
              maxLoss: o.maxLoss,
              tries: o.holdoutTries,
              sizeOf,
              confirm,
              checked: () => checked.length,
              // Search on with the knapsack's budget cut below the first failure's.
              searchOn: o.method === 'fast' ? (f) => measure(minBytesUnderLoss(layers, totals(layers, choiceOf.get(first.id)!).loss * f)) : undefined,
            });
            chosen = r.chosen;
            movedByHoldout = r.moved;
            if (!r.passed) emit({ type: 'log', message: `No confirmed candidate is within the budget on the held-out data; keeping ${chosen.id}.` });
          }
        } finally {
          await hev.dispose();
        }
        holdoutRef = hd.ref;
      }
    } finally {
      await evaluator.dispose();
      await corrector?.dispose();
    }
    const front = paretoFront(candidates.map((c) => ({ bytes: sizeOf(c), loss: c.loss })));
    candidates.forEach((c, i) => (c.pareto = front.has(i)));
    const selection: Selection = {
      rule: o.maxLoss !== undefined ? 'upper-bound' : 'size',
      confidence: o.confidence,
      holdout: !o.holdout ? 'none' : o.holdoutTries > 1 && o.maxLoss !== undefined ? 'walk-back' : 'confirm',
      holdoutChecked: checked,
      holdoutUsedForChoice: movedByHoldout,
      holdoutTries: o.holdoutTries,
      note: selectionNote(o, checked, movedByHoldout, chosen),
    };
    const cf: CandidatesFile = {
      schema: 'onnx-compress/candidates@1',
      tool: TOOL,
      model: pm.ref,
      dataset: data.ref,
      holdoutDataset: holdoutRef,
      budget: o.maxLoss !== undefined ? { maxLoss: o.maxLoss } : { maxSize: o.maxSize! },
      target: o.target,
      techniques: [...o.techniques],
      baseline: { top1: data.top1, samples: data.ref.samples },
      candidates,
      chosen: chosen?.id ?? null,
      evaluations: cellsMeasured + searchEvals + holdoutEvals,
      seconds: 0,
      breakdown: { cells: cellsMeasured, search: searchEvals, holdout: holdoutEvals, method: o.method },
      outputs: {},
      selection,
    };
    if (o.export && chosen) {
      emit({ type: 'phase', phase: 'export', message: `Exporting ${chosen.id}` });
      const r = await exportCandidateFrom(pm.file, chosen, exportPath(pm.file, dir), true, calibration, o.data, corrections.get(chosen.id));
      cf.outputs.model = path.basename(r.model);
      if (r.archive) {
        cf.outputs.archive = path.basename(r.archive);
        chosen.archiveBytes = r.archiveBytes!;
      }
      const planFile = path.join(dir, 'plan.json');
      await writeFileAtomic(planFile, JSON.stringify(chosen.plan, null, 2) + '\n');
      cf.outputs.plan = 'plan.json';
    }
    cf.seconds = (performance.now() - t0) / 1000;
    if (o.export) {
      cf.outputs.report = FILES.report;
      cf.outputs.html = FILES.html;
      await writeFileAtomic(path.join(dir, FILES.candidates), JSON.stringify(cf, null, 1));
      await writeCompressReports(dir, sf, cf);
    }
    emit({ type: 'phase', phase: 'done', message: chosen ? `Chosen ${chosen.id}: ${chosen.bytes} bytes (${chosen.ratio.toFixed(2)}×), loss ${(chosen.loss * 100).toFixed(2)} points` : 'No candidate meets the budget.' });
    return cf;
  } finally {
    release();
  }
}

/** The sentence of {@link Selection.note}. */
function selectionNote(o: CompressModelOptions, checked: readonly string[], moved: boolean, chosen: Candidate | undefined): string {
  const conf = `${Math.round(o.confidence * 100)} %`;
  const rule = o.maxLoss !== undefined ? `the smallest candidate whose ${conf} upper confidence bound on the search-data loss is within ${(o.maxLoss * 100).toFixed(2)} points` : `the least search-data loss within ${o.maxSize} bytes`;
  if (!chosen) return `No candidate met the budget (rule: ${rule}).`;
  if (!o.holdout) return `Chosen: ${rule}; no held-out data was given, so the loss was not confirmed on unseen samples.`;
  if (!moved && checked.length === 1) return `Chosen: ${rule}; the held-out data was used only to confirm it (${chosen.holdout?.passed === false ? 'it FAILED the budget there' : 'it passed'}).`;
  if (moved) return `Chosen: ${rule}, then the held-out data was used for the final check: ${checked.length - 1} smaller candidate(s) failed there and ${chosen.id} passed, so its held-out loss is not an untouched estimate.`;
  return `Chosen: ${rule}; ${checked.length} candidates failed the budget on the held-out data (final check), ${chosen.id} is kept and does not meet the budget there.`;
}

export type Measure = (choice: number[]) => Promise<Candidate>;

/** The knapsack budgets around the edge: the largest whose plan is within the budget by `within` (0: none) and the smallest above it that is not (Infinity: none). */
function bracket(measured: ReadonlyArray<{ s: number; c: Candidate }>, within: (c: Candidate) => boolean): { lo: number; hi: number } {
  const lo = Math.max(0, ...measured.filter((m) => within(m.c)).map((m) => m.s));
  return { lo, hi: Math.min(Infinity, ...measured.filter((m) => !within(m.c) && m.s > lo).map((m) => m.s)) };
}

/** Whether a candidate carries a usable (positive, finite) output divergence. */
function hasKl(c: Candidate): boolean {
  return c.kl !== undefined && Number.isFinite(c.kl) && c.kl > 0;
}

/** Least-squares slope through the origin of `y(c)` on the candidates' divergences (all with {@link hasKl}). */
function perKl(cs: readonly Candidate[], y: (c: Candidate) => number): number {
  let xy = 0;
  let xx = 0;
  for (const c of cs) {
    xy += c.kl! * y(c);
    xx += c.kl! * c.kl!;
  }
  return xy / xx;
}

/** Candidates with divergences measured before {@link edgeWithin} trusts their fit. */
export const EDGE_FIT_MIN = 3;

/**
 * How the fast search tells, while it brackets the edge, whether a measured plan is within the
 * loss budget: by the loss its output divergence predicts, β·KL with β fitted (least squares
 * through the origin) over every measured candidate, plus the margin of the choice rule (upper
 * bound − point estimate), once {@link EDGE_FIT_MIN} candidates carry a divergence; before that,
 * and for candidates without one, by its measured feasibility. The choice itself still needs a
 * plan measured within the budget. Why: one plan's top-1 loss on 5000 samples moves by about ±0.2
 * points around what its divergence says (MobileNet, all techniques: KL 17.6 × 10⁻³ lost −0.04
 * points, 16.4 × 10⁻³ lost 0.82), so a lucky or unlucky plan misplaced the bracket and the search
 * stopped at 9.0× where plans of 10× were within the budget; the divergence is a mean over every
 * sample and every class.
 */
export function edgeWithin(measured: readonly Candidate[], maxLoss: number): (c: Candidate) => boolean {
  const fit = measured.filter(hasKl);
  if (fit.length < EDGE_FIT_MIN) return (c) => c.feasible;
  const beta = perKl(fit, (c) => c.loss);
  return (c) => (c.kl === undefined || !Number.isFinite(c.kl) ? c.feasible : beta * c.kl + ((c.lossUpper ?? c.loss) - c.loss) <= maxLoss + 1e-12);
}

/** The fast search keeps bisecting while the knapsack budgets of the best plan within the budget and the first over it differ by more than this factor. */
export const BRACKET_RATIO = 1.3;

/** Fractions of the first failure's knapsack budget that {@link confirmWithin} searches on at. */
export const SEARCH_ON_FRACTIONS: readonly number[] = [0.6, 0.35, 0.2];

/**
 * The held-out check under a loss budget (`maxLoss`). `confirm` measures a candidate on the
 * held-out data (true = within the budget there, and it sets `holdout.loss`). When `chosen` fails:
 * - walk back: the next feasible candidates by size (`sizeOf`), each only when one of two models
 *   of the held-out loss says it can pass: its search loss below every failure's and that loss
 *   plus the failures' mean excess (held-out − search loss) within the budget; or, with output
 *   divergences, its divergence below every failure's and βh·KL (βh fitted on the failures) within
 *   the budget. The held-out data can be harder for a whole family of plans (ResNet-8 share: every
 *   candidate 0.3–0.5 points more, at KL 6.6 × 10⁻³ as at 22 × 10⁻³, an offset βh·KL misses),
 *   and a lucky search measurement inflates the excess (ResNet-8 all: 0.16 on the search data,
 *   0.90 held-out at KL 27 × 10⁻³), so one model alone skipped plans that could pass or spent
 *   the tries on plans a few bytes apart;
 * - search on: none of them passed, so the search data is optimistic for this model; `searchOn(f)`
 *   measures the knapsack's plan at `f` ({@link SEARCH_ON_FRACTIONS}) of the first failure's
 *   budget, and each new feasible plan that passes the same test is confirmed.
 * At most `tries` confirmations in all (`checked()` counts them). Returns the final choice (the
 * first failure when nothing passed), whether the held-out data moved it, and whether it passed.
 */
export async function confirmWithin(
  chosen: Candidate,
  candidates: readonly Candidate[],
  o: {
    maxLoss: number;
    tries: number;
    sizeOf: (c: Candidate) => number;
    confirm: (c: Candidate) => Promise<boolean>;
    checked: () => number;
    searchOn: ((fraction: number) => Promise<Candidate>) | undefined;
  },
): Promise<{ chosen: Candidate; moved: boolean; passed: boolean }> {
  if (await o.confirm(chosen)) return { chosen, moved: false, passed: true };
  const failed = [chosen];
  const better = (c: Candidate): boolean => {
    const excess = failed.reduce((sum, f) => sum + Math.max(0, (f.holdout?.loss ?? f.loss) - f.loss), 0) / failed.length;
    if (failed.every((f) => c.loss < f.loss) && c.loss + excess <= o.maxLoss + 1e-12) return true;
    if (!hasKl(c) || !failed.every(hasKl)) return false;
    // or the held-out loss βh·KL, βh fitted (through the origin) on the failures
    const beta = perKl(failed, (f) => f.holdout?.loss ?? f.loss);
    return failed.every((f) => c.kl! < f.kl!) && beta * c.kl! <= o.maxLoss + 1e-12;
  };
  const next = candidates.filter((c) => c.feasible && o.sizeOf(c) >= o.sizeOf(chosen) && c !== chosen).sort((a, b) => o.sizeOf(a) - o.sizeOf(b) || a.loss - b.loss);
  for (const c of next) {
    if (o.checked() >= o.tries) break;
    if (!better(c)) continue;
    if (await o.confirm(c)) return { chosen: c, moved: true, passed: true };
    failed.push(c);
  }
  const tried = new Set(failed);
  for (const f of SEARCH_ON_FRACTIONS) {
    if (!o.searchOn || o.checked() >= o.tries) break;
    const c = await o.searchOn(f);
    if (!c.feasible || tried.has(c) || c.holdout || !better(c)) continue;
    tried.add(c);
    if (await o.confirm(c)) return { chosen: c, moved: true, passed: true };
    failed.push(c);
  }
  return { chosen, moved: false, passed: false };
}

function bestFeasible(cs: readonly Candidate[], by: 'bytes' | 'loss', target: CompressTarget): Candidate | undefined {
  let best: Candidate | undefined;
  for (const c of cs) {
    if (!c.feasible) continue;
    const b = targetSize(c, target);
    if (!best) best = c;
    else {
      const bb = targetSize(best, target);
      if (by === 'bytes' ? b < bb || (b === bb && c.loss < best.loss) : c.loss < best.loss || (c.loss === best.loss && b < bb)) best = c;
    }
  }
  return best;
}

/**
 * Fast search under a loss budget. The knapsack's budget `s` (in units of Σ single-layer losses)
 * starts at `maxLoss / α` with a bracket around it; then every round bisects (geometrically)
 * between the largest `s` whose candidate is within the budget and the smallest that is not (as
 * their divergences predict, {@link edgeWithin}), measuring only plans not seen before. α (refitted after every measurement) places the first guesses; the
 * bisection makes the search robust to a predictor that is off.
 */
export async function fastUnderLoss(
  layers: SearchLayer[],
  maxLoss: number,
  pred: LossPredictor,
  measure: Measure,
  o: Pick<CompressModelOptions, 'perIteration' | 'maxIterations' | 'tolerance' | 'signal'> & { target?: CompressTarget },
  log: (message: string) => void = () => {},
): Promise<Candidate | undefined> {
  const measured: Array<{ s: number; c: Candidate }> = [];
  const tried = new Set<string>();
  let best: Candidate | undefined;
  const fresh = (ss: number[]): Array<{ s: number; choice: number[] }> => {
    const out: Array<{ s: number; choice: number[] }> = [];
    for (const x of ss) {
      const choice = minBytesUnderLoss(layers, x);
      const key = choice.join(',');
      if (tried.has(key)) continue;
      tried.add(key);
      out.push({ s: x, choice });
      if (out.length >= o.perIteration) break;
    }
    return out;
  };
  for (let it = 0; it < o.maxIterations; it++) {
    throwIfAborted(o.signal);
    let round: Array<{ s: number; choice: number[] }>;
    if (it === 0) {
      // The choice needs the upper confidence bound within the budget, so aim below it first.
      const s0 = maxLoss / pred.alpha;
      round = fresh([s0 * 0.6, s0 * 0.3, s0 * 1.2]);
    } else {
      const { lo, hi } = bracket(measured, edgeWithin(measured.map((m) => m.c), maxLoss));
      let grid: number[];
      if (!Number.isFinite(hi)) grid = [2, 4, 8].map((f) => lo * f);
      else if (lo === 0) grid = [0.5, 0.25, 0.125, 0.06].map((f) => hi * f);
      else {
        // Points between lo and hi, the geometric middle first, then the quartiles, then finer.
        const r = Math.log(hi / lo);
        grid = [0.5, 0.25, 0.75, 0.125, 0.375, 0.625, 0.875].map((f) => lo * Math.exp(r * f));
      }
      round = fresh(grid);
    }
    if (round.length === 0) break;
    for (const p of round) measured.push({ s: p.s, c: await measure(p.choice) });
    const target = o.target ?? 'onnx';
    const now = bestFeasible(measured.map((m) => m.c), 'bytes', target);
    const gain = best && now ? (targetSize(best, target) - targetSize(now, target)) / targetSize(best, target) : Infinity;
    best = now;
    // Stop when a round gains little, unless the bracket between the last plan that met the
    // budget and the first that did not is still wide (a round that only found plans over the
    // budget gains nothing, yet the best plan may lie between).
    const { lo, hi } = bracket(measured, edgeWithin(measured.map((m) => m.c), maxLoss));
    if (best && it > 1 && gain < o.tolerance && !(lo > 0 && hi / lo > BRACKET_RATIO)) break;
  }
  if (best) return best;
  // Nothing the knapsack proposed met the budget: its summed single-layer losses missed what the
  // layers do together. Fall back on plans that bound every layer's weight error instead, from
  // the harshest down, and keep the first that meets the budget (the smallest of the ladder).
  log('No knapsack candidate met the budget: trying plans that bound every layer\'s relative weight error instead.');
  for (const r of SAFE_LADDER) {
    throwIfAborted(o.signal);
    const choice = safeChoice(layers, r);
    const key = choice.join(',');
    if (tried.has(key)) continue;
    tried.add(key);
    const c = await measure(choice);
    if (c.feasible) return c;
  }
  return undefined;
}

/** Fast search under a size budget: least predicted loss that fits, corrected by real file sizes. */
async function fastUnderSize(layers: SearchLayer[], maxSize: number, fixedBytes: number, measure: Measure, o: CompressModelOptions): Promise<Candidate | undefined> {
  const measured: Candidate[] = [];
  let overhead = fixedBytes;
  let best: Candidate | undefined;
  for (let it = 0; it < Math.min(o.maxIterations, 4); it++) {
    throwIfAborted(o.signal);
    const caps = [1, 0.9, 0.8].map((s) => (maxSize - overhead) * s);
    for (const cap of caps.slice(0, o.perIteration)) {
      const choice = minLossUnderBytes(layers, cap);
      if (choice) {
        const c = await measure(choice);
        if (!measured.includes(c)) measured.push(c);
        // the real file has its own overhead (graph, decoders): learn it from the measurement
        overhead = Math.max(overhead, targetSize(c, o.target) - totals(layers, choice).bytes);
      }
    }
    const now = bestFeasible(measured, 'loss', o.target);
    if (now && best === now) break;
    best = now;
  }
  return best;
}

/** The greedy baseline (module comment); every step's measurements count as evaluations. */
async function greedy(layers: SearchLayer[], maxLoss: number, measure: Measure, sizeOf: (c: Candidate) => number, signal: AbortSignal | undefined): Promise<Candidate | undefined> {
  // Ladder per layer: none, then single-technique options by decreasing bytes.
  const ladders = layers.map((l) => {
    const idx = l.options.map((_, i) => i).filter((i) => i === 0 || !l.options[i]!.key.includes('+'));
    idx.sort((a, b) => l.options[b]!.bytes - l.options[a]!.bytes || a - b);
    const out: number[] = [];
    for (const i of idx) if (out.length === 0 || l.options[i]!.bytes < l.options[out[out.length - 1]!]!.bytes) out.push(i);
    return out;
  });
  const pos = layers.map(() => 0);
  const frozen = new Set<number>();
  let current = await measure(pos.map((p, i) => ladders[i]![p]!));
  let best = current.feasible ? current : undefined;
  for (;;) {
    throwIfAborted(signal);
    let pick: { i: number; c: Candidate; score: number } | undefined;
    for (let i = 0; i < layers.length; i++) {
      if (frozen.has(i) || pos[i]! + 1 >= ladders[i]!.length) continue;
      const next = pos.map((p, j) => ladders[j]![j === i ? p + 1 : p]!);
      const c = await measure(next);
      if (!c.feasible) {
        frozen.add(i);
        continue;
      }
      const score = (sizeOf(current) - sizeOf(c)) / Math.max(c.loss - current.loss, 1e-4);
      if (!pick || score > pick.score) pick = { i, c, score };
    }
    if (!pick) break;
    pos[pick.i]!++;
    current = pick.c;
    best = current;
  }
  return best;
}

/**
 * Builds a candidate (compresses every layer of `specs`, given or resolved on the loaded model) and
 * evaluates it with `evaluator` on all its samples, outputs kept. `sizeAt`: also encode it and
 * return the bytes a save there would write (`savedSize`), else 0 and nothing is encoded; with
 * `archive`, also the bytes of its archive (`packArchive`). In memory, the reconstructions are fed
 * to the evaluator, and the model is encoded after the biases are corrected (with the compressed
 * tensors of the first pass, so nothing is compressed twice): the sizes are those of the export.
 * `onDisk`, for large models: each reconstruction goes to a temp file in `dir` as soon as it is
 * made, and the encoded model is let go before onnxruntime loads the candidate from that file (the
 * temp file is removed in any case).
 */
async function buildAndEvaluate(
  modelFile: string,
  specs: ReadonlyMap<string, TechniqueSpec> | ((model: OnnxModel) => ReadonlyMap<string, TechniqueSpec>),
  evaluator: VariantEvaluator,
  o: {
    onDisk: boolean;
    dir: string;
    sizeAt: string | undefined;
    archive?: boolean;
    calibration: ReadonlyMap<string, LayerHessian> | undefined;
    /**
     * Corrects the biases of the compressed layers (in memory only), and with `sequential`
     * calibrates them sequentially, unless `correction` gives the result of that.
     */
    corrector?: BiasCorrector | undefined;
    sequential?: boolean;
    correction?: PlanCorrection | undefined;
    signal: AbortSignal | undefined;
  },
): Promise<{ res: ApplyResult; bytes: number; archiveBytes?: number; r: VariantResult; correction: PlanCorrection | undefined }> {
  const specsFor = (model: OnnxModel) => (typeof specs === 'function' ? specs(model) : specs);
  if (!o.onDisk) {
    const model = await loadModel(modelFile);
    const layerSpecs = specsFor(model);
    const sequential = !o.correction && o.corrector !== undefined && o.sequential === true;
    const res = applySpecs(model, layerSpecs, { encode: false, keepCompressed: o.sizeAt !== undefined || sequential, compressed: o.correction?.compressed, signal: o.signal, calibration: o.calibration });
    const correction = o.correction ?? (o.corrector ? await correctCompressed(o.corrector, model, layerSpecs, res, sequential, o.signal) : undefined);
    const biases = correction?.biases;
    const variant = biases ? new Map([...res.reconstructions, ...biases]) : res.reconstructions;
    let bytes = 0;
    let archiveBytes: number | undefined;
    if (o.sizeAt !== undefined) {
      // The first pass left the model as loaded: encode it in place.
      applySpecs(model, layerSpecs, { keepReconstructions: false, compressed: res.compressed, overrides: biases, signal: o.signal });
      res.compressed.clear();
      bytes = savedSize(model, o.sizeAt);
      if (o.archive) archiveBytes = packArchive(encodeModel(model.proto)).length;
    }
    return { res, bytes, ...(archiveBytes !== undefined ? { archiveBytes } : {}), r: await evaluator.evaluate(variant, { keepOutputs: true, signal: o.signal }), correction };
  }
  const v = evaluator.diskVariant(o.dir);
  try {
    // The model is let go before the session loads: its payloads can be collected.
    const { res, bytes } = await (async () => {
      const model = await loadModel(modelFile);
      const r = applySpecs(model, specsFor(model), { encode: o.sizeAt !== undefined, signal: o.signal, calibration: o.calibration, compressed: o.correction?.compressed, overrides: o.correction?.biases, keepReconstructions: false, onReconstruction: (name, w) => v.set(name, w) });
      return { res: r, bytes: o.sizeAt === undefined ? 0 : savedSize(model, o.sizeAt) };
    })();
    for (const [name, b] of o.correction?.biases ?? []) v.set(name, b);
    return { res, bytes, r: await evaluator.evaluateOnDisk(v, { keepOutputs: true, signal: o.signal }), correction: o.correction };
  } finally {
    v.dispose();
  }
}

/** What {@link exportCandidate} wrote. */
export interface ExportResult {
  /** The compressed ONNX file and its size. */
  model: string;
  bytes: number;
  /** The archive (`.onnxc`) and its size, when written. */
  archive?: string;
  archiveBytes?: number;
}

/** Where `compress` exports the chosen candidate: `<results>/<stem>.compressed.onnx`. */
function exportPath(modelFile: string, dir: string): string {
  return path.join(dir, `${path.basename(modelFile).replace(/\.onnx$/i, '')}.compressed.onnx`);
}

async function exportCandidateFrom(
  modelFile: string,
  c: Candidate,
  outPath: string,
  archive: boolean,
  calibration?: ReadonlyMap<string, LayerHessian>,
  data?: DataInput,
  correction?: PlanCorrection,
): Promise<ExportResult> {
  const model = await loadModel(modelFile);
  const weights = listWeights(model);
  const specs = resolvePlan(c.plan, weights, `candidate ${c.id}`);
  const calibrated = [...specs].filter(([, s]) => isCalibrated(s)).map(([n]) => n);
  if (calibrated.length > 0 && !calibration) {
    if (!data) fail('E_BAD_ARGUMENT', `Candidate ${c.id} uses calibrated rounding on ${calibrated.length} layer(s): exporting it needs the search data it was made with (give the dataset).`);
    const wanted = new Set(calibrated);
    calibration = await collectHessians(model, weights.filter((w) => wanted.has(w.name)), data.spec, { samples: CALIBRATION_SAMPLES });
  }
  if (c.plan.biasCorrection && !correction) {
    if (!data) fail('E_BAD_ARGUMENT', `Candidate ${c.id} corrects biases: exporting it needs the search data it was made with (give the dataset).`);
    correction = await planCorrections(fs.readFileSync(modelFile), () => loadModel(modelFile), specs, calibration, data, { sequential: c.plan.sequentialCalibration, ...(model.externalFiles.length ? { externalDataFolder: path.dirname(modelFile) } : {}) });
  }
  applySpecs(model, specs, { calibration, keepReconstructions: false, overrides: correction?.biases, compressed: correction?.compressed });
  // External data when the input had it (or past 2 GiB); the archive holds one .onnx file only.
  const saved = await saveModel(model, outPath);
  const out: ExportResult = { model: saved.modelFile, bytes: saved.modelBytes + saved.dataBytes };
  if (archive && !saved.dataFile) {
    const packed = packArchive(fs.readFileSync(saved.modelFile));
    const file = saved.modelFile.replace(/\.onnx$/i, '') + '.onnxc';
    await writeFileAtomic(file, packed);
    out.archive = file;
    out.archiveBytes = packed.length;
  }
  return out;
}

/**
 * Exports candidate `candidateId` of the results folder `resultsDir` (its `candidates.json`) as a
 * compressed ONNX file at `outPath`, plus its archive next to it (`.onnxc`) when `archive`.
 * `root` (default: the results folder's parent) is the workspace the recorded model path must stay in.
 * `data`: the search data, needed when the candidate uses calibrated rounding (its statistics are
 * collected again from the same first samples).
 * @throws E_BAD_ARGUMENT when the folder has no such candidate, the model changed since, or the
 * recorded model path leaves `root`, is absolute or is not an `.onnx` file.
 */
export async function exportCandidate(resultsDir: string, candidateId: string, outPath: string, archive = false, root?: string, data?: DataInput): Promise<ExportResult> {
  const file = path.join(resultsDir, FILES.candidates);
  let cf: CandidatesFile;
  try {
    cf = JSON.parse(fs.readFileSync(file, 'utf8')) as CandidatesFile;
  } catch (e) {
    fail('E_BAD_ARGUMENT', `No readable '${file}': run \`onnx-compress compress\` first.`, e);
  }
  if (typeof cf !== 'object' || cf === null || !Array.isArray(cf.candidates) || typeof cf.model?.file !== 'string' || typeof cf.model.sha256 !== 'string') {
    fail('E_BAD_ARGUMENT', `'${file}' is not a candidates file (schema onnx-compress/candidates@1); run \`onnx-compress compress\` again.`);
  }
  const c = cf.candidates.find((x) => x?.id === candidateId);
  if (!c) fail('E_BAD_ARGUMENT', `'${file}' has no candidate '${candidateId}' (it has ${cf.candidates.map((x) => x?.id).join(', ') || 'none'}).`);
  const modelFile = path.resolve(path.dirname(path.resolve(resultsDir)), cf.model.file);
  // The path comes from a file anyone could have edited: never follow it outside `root`, to an
  // absolute path, or to anything but an .onnx file (we would hash and then parse it).
  const base = path.resolve(root ?? path.dirname(path.resolve(resultsDir)));
  const rel = path.relative(base, modelFile);
  if (path.isAbsolute(cf.model.file) || rel.startsWith('..') || path.isAbsolute(rel) || !/\.onnx$/i.test(modelFile) || (fs.existsSync(modelFile) && !fs.statSync(modelFile).isFile())) {
    fail('E_BAD_ARGUMENT', `'${file}' names the model '${cf.model.file}', which is not an .onnx file inside '${base}'; results files may only name models in their workspace. Run compress again.`);
  }
  if (!fs.existsSync(modelFile) || fileSha256(modelFile, (await loadModel(modelFile)).externalFiles) !== cf.model.sha256) fail('E_BAD_ARGUMENT', `The model '${modelFile}' is missing or changed since '${file}' was written; run compress again.`);
  return exportCandidateFrom(modelFile, c, outPath, archive, undefined, data);
}

