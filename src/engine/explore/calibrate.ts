/**
 * Calibrated rounding in analyze and compress: share and quant levels get `calibrated: true` (same
 * grid and bytes, GPTQ-style error feedback, `compress/gptq.ts`) when the search data is real
 * (not data-free), and the model's layer statistics are collected once from the first
 * {@link CALIBRATION_SAMPLES} samples of the search data and attached to the prepared model, so
 * every `compressWeight` on it finds them.
 *
 * Bias correction (`eval/biasCorrection.ts`) goes with it: the compressed Conv / Gemm layers'
 * biases are corrected for the shift of their output means, measured on the first
 * {@link BIAS_CORRECTION_SAMPLES} samples of the same data; plans record it (`"biasCorrection": true`).
 */
import * as path from 'node:path';
import { compressTensor, isCalibrated, type CompressedTensor, type TechniqueSpec } from '../compress';
import { compensatedWeights, type LayerHessian } from '../compress/gptq';
import { applySpecs, attachCalibration } from '../encode/apply';
import { BiasCorrector, biasTargets } from '../eval/biasCorrection';
import { accumulatePaired, calibrationGeometry, collectHessians, pairedHessian, pairedStatistics } from '../eval/calibration';
import { listWeights, type OnnxModel, type WeightInfo } from '../onnx';
import type { LevelDef } from './types';
import type { DataInput, PreparedModel } from './workspace';

/** Samples of the search data the statistics come from. */
export const CALIBRATION_SAMPLES = 256;

/** Whether calibrated rounding applies: asked for, and real data (synthetic inputs say little about real activations). */
export function calibrationApplies(calibrate: boolean, data: DataInput): boolean {
  return calibrate && data.spec.format !== 'synthetic';
}

/** `levels` with every share / quant spec calibrated. */
export function calibratedLevels(levels: readonly LevelDef[]): LevelDef[] {
  return levels.map((l) => (l.spec.technique === 'share' || l.spec.technique === 'quant' ? { ...l, spec: { ...l.spec, calibrated: true } } : l));
}

const cache = new WeakMap<PreparedModel, ReadonlyMap<string, LayerHessian>>();

/** The statistics of `pm`'s layers (collected once per prepared model) and attaches them to `pm.model`. */
export async function ensureCalibration(pm: PreparedModel, data: DataInput, options: { signal?: AbortSignal | undefined; threads?: number | undefined } = {}): Promise<ReadonlyMap<string, LayerHessian>> {
  let hs = cache.get(pm);
  if (!hs) {
    hs = await collectHessians(pm.model, pm.layers, data.spec, {
      samples: CALIBRATION_SAMPLES,
      signal: options.signal,
      session: { ...(options.threads === undefined ? {} : { intraOpNumThreads: options.threads }), ...(pm.model.externalFiles.length ? { externalDataFolder: path.dirname(pm.file) } : {}) },
    });
    cache.set(pm, hs);
    attachCalibration(pm.model, hs);
  }
  return hs;
}

/** Samples of the search data the bias correction measures output means on. */
export const BIAS_CORRECTION_SAMPLES = 128;

/**
 * A bias corrector for `layers` of the model (`bytes`, parsed as `model`; external data in
 * `externalDataFolder`), or undefined when none of them has a bias it can correct.
 */
export async function makeBiasCorrector(
  bytes: Uint8Array,
  model: OnnxModel,
  layers: readonly WeightInfo[],
  data: DataInput,
  o: { threads?: number | undefined; externalDataFolder?: string | undefined; signal?: AbortSignal | undefined } = {},
): Promise<BiasCorrector | undefined> {
  const targets = biasTargets(model, layers);
  if (targets.length === 0) return undefined;
  return BiasCorrector.create(bytes, targets, data.spec, {
    samples: BIAS_CORRECTION_SAMPLES,
    externalDataFolder: o.externalDataFolder,
    signal: o.signal,
    session: o.threads === undefined ? {} : { intraOpNumThreads: o.threads },
  });
}

/** What a plan's data-dependent pass gives: corrected biases, and the layers sequential calibration compressed again. */
export interface PlanCorrection {
  readonly biases: ReadonlyMap<string, Float32Array>;
  /** Compressed again by {@link calibrateSequentially} (empty without it): encode these instead of compressing afresh. */
  readonly compressed: ReadonlyMap<string, CompressedTensor>;
}

/**
 * The corrected biases of a plan (`specs` on the model loaded by `load`), and with `sequential`
 * its sequentially calibrated layers: compresses it without encoding, then corrects (see
 * {@link makeBiasCorrector}, {@link calibrateSequentially}); for `apply` and export, which then
 * encode the plan with these (`overrides`, `compressed`).
 */
export async function planCorrections(
  bytes: Uint8Array,
  load: () => Promise<OnnxModel>,
  specs: ReadonlyMap<string, TechniqueSpec>,
  calibration: ReadonlyMap<string, LayerHessian> | undefined,
  data: DataInput,
  o: { threads?: number | undefined; externalDataFolder?: string | undefined; signal?: AbortSignal | undefined; sequential?: boolean | undefined } = {},
): Promise<PlanCorrection> {
  const model = await load();
  const layers = listWeights(model).filter((w) => specs.has(w.name));
  const corrector = await makeBiasCorrector(bytes, model, layers, data, o);
  if (!corrector) return { biases: new Map(), compressed: new Map() };
  try {
    const res = applySpecs(model, specs, { encode: false, calibration, keepCompressed: o.sequential === true, signal: o.signal });
    return await correctCompressed(corrector, model, specs, res, o.sequential === true, o.signal);
  } finally {
    await corrector.dispose();
  }
}

/**
 * The {@link PlanCorrection} of a plan compressed without encoding (`res` from `applySpecs` with
 * `encode: false`, and `keepCompressed` when `sequential`; both of its maps are updated in place).
 */
export async function correctCompressed(
  corrector: BiasCorrector,
  model: OnnxModel,
  specs: ReadonlyMap<string, TechniqueSpec>,
  res: { compressed: Map<string, CompressedTensor>; reconstructions: Map<string, Float32Array> },
  sequential: boolean,
  signal?: AbortSignal,
): Promise<PlanCorrection> {
  if (!sequential) return { biases: await corrector.correct(res.reconstructions, signal), compressed: new Map() };
  const first = new Map(res.compressed);
  const biases = await calibrateSequentially(corrector, model, specs, res.compressed, res.reconstructions, signal);
  return { biases, compressed: new Map([...res.compressed].filter(([n, ct]) => first.get(n) !== ct)) };
}

/** Paired input vectors per input dimension a layer needs for the asymmetric target (fewer: its plain calibrated rounding stands). */
export const SEQUENTIAL_MIN_VECTORS_PER_DIM = 4;

/**
 * Inputs per output channel (d) up to which a layer is calibrated sequentially; wider layers keep
 * their first calibrated rounding. The cost grows with d² (paired statistics) and d³ (rounding):
 * on the ResNet-18-sized model one candidate's four 3×3×128 layers (d = 1152) took 82 of its 129
 * seconds of sequential calibration.
 */
export const SEQUENTIAL_MAX_DIM = 576;

/**
 * Sequential calibration with bias correction, in graph order: each calibrated layer that has a
 * correctable bias is compressed again from the inputs it gets in the compressed model so far
 * (its earlier layers compressed and their biases corrected), towards the weights that best
 * reproduce its original outputs from those inputs (`compensatedWeights`, GPTAQ's asymmetric
 * target; rounding with the compressed inputs' second moments), and then its bias is corrected.
 * Single-layer cells do not need it (nothing upstream changes); combined plans do, because errors
 * of consecutive layers add up (on the MobileNet fixture the divergence of a plan was 1.4–2.7 × the
 * sum of its layers' alone).
 *
 * Updates `compressed` and `reconstructions` (both from a first, plain pass over `specs`) in place
 * and returns the corrected biases.
 */
export async function calibrateSequentially(
  corrector: BiasCorrector,
  model: OnnxModel,
  specs: ReadonlyMap<string, TechniqueSpec>,
  compressed: Map<string, CompressedTensor>,
  reconstructions: Map<string, Float32Array>,
  signal?: AbortSignal,
): Promise<Map<string, Float32Array>> {
  const weights = new Map(listWeights(model).map((w) => [w.name, w]));
  return corrector.correct(reconstructions, signal, {
    recompress: async (t, values) => {
      const spec = specs.get(t.weight);
      const w = weights.get(t.weight);
      if (!spec || !w || !isCalibrated(spec)) return undefined;
      const g = calibrationGeometry(model, w);
      if (typeof g === 'string') return undefined;
      // Gemm / MatMul rows: one input vector per sample
      if (g.kind === 'dense' && BIAS_CORRECTION_SAMPLES < SEQUENTIAL_MIN_VECTORS_PER_DIM * g.dim) return undefined;
      const st = pairedStatistics(g, SEQUENTIAL_MAX_DIM);
      if (!st) return undefined;
      let changed = false;
      await corrector.inputPairs(t, values, (x, q, dims) => {
        changed ||= x !== q && x.some((v, i) => v !== q[i]);
        accumulatePaired(st, q, x, dims);
      }, signal);
      // Nothing upstream changed (the first compressed layer): the first pass stands.
      if (!changed || st.count < SEQUENTIAL_MIN_VECTORS_PER_DIM * st.d) return undefined;
      const hq = pairedHessian(st);
      const tensor = { data: model.float32(w.tensor), shape: w.shape, role: w.kind, channelAxis: w.channelAxis, name: w.name };
      const ct = compressTensor({ ...tensor, data: compensatedWeights(tensor, hq, st.cross) }, spec, { calibration: hq, ...(signal ? { signal } : {}) });
      compressed.set(t.weight, ct);
      reconstructions.set(t.weight, ct.weights);
      return ct.weights;
    },
  });
}
