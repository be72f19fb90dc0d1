/**
 * Calibrated rounding in analyze and compress: share and quant levels get `calibrated: true` (same
 * grid and bytes, GPTQ-style error feedback, `compress/gptq.ts`) when the search data is real
 * (not data-free), and the model's layer statistics are collected once from the first
 * {@link CALIBRATION_SAMPLES} samples of the search data and attached to the prepared model, so
 * every `compressWeight` on it finds them.
 */
import * as path from 'node:path';
import type { LayerHessian } from '../compress/gptq';
import { attachCalibration } from '../encode/apply';
import { collectHessians } from '../eval/calibration';
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
