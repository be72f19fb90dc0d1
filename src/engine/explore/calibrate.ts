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
import type { TechniqueSpec } from '../compress';
import type { LayerHessian } from '../compress/gptq';
import { applySpecs, attachCalibration } from '../encode/apply';
import { BiasCorrector, biasTargets } from '../eval/biasCorrection';
import { collectHessians } from '../eval/calibration';
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

/**
 * The corrected biases of a plan (`specs` on the model loaded by `load`): compresses it without
 * encoding, then corrects (see {@link makeBiasCorrector}); for `apply` and export, which then
 * encode the plan with these as `overrides`.
 */
export async function planBiasCorrections(
  bytes: Uint8Array,
  load: () => Promise<OnnxModel>,
  specs: ReadonlyMap<string, TechniqueSpec>,
  calibration: ReadonlyMap<string, LayerHessian> | undefined,
  data: DataInput,
  o: { threads?: number | undefined; externalDataFolder?: string | undefined; signal?: AbortSignal | undefined } = {},
): Promise<Map<string, Float32Array>> {
  const model = await load();
  const layers = listWeights(model).filter((w) => specs.has(w.name));
  const corrector = await makeBiasCorrector(bytes, model, layers, data, o);
  if (!corrector) return new Map();
  try {
    const res = applySpecs(model, specs, { encode: false, calibration, signal: o.signal });
    return await corrector.correct(res.reconstructions, o.signal);
  } finally {
    await corrector.dispose();
  }
}
