/**
 * Calibrated vs plain rounding (`compress/gptq.ts`): every compressible layer of each fixture at one
 * level (sharing k = 16, 8, 4; per-channel quantization 4 and 3 bits), top-1 of the plain and the
 * calibrated model on the evaluation data, and the time to collect the statistics and to round.
 * Data: `--data FILE` (default the fixture search data); statistics from `--calibration FILE`
 * (default the same file's first 256 samples). Both models have the same bytes (same grid).
 * Last column: the calibrated model with its biases corrected (`eval/biasCorrection.ts`, output
 * means from the first 128 samples of the statistics data; same bytes again).
 */
import { join } from 'node:path';
import type { TechniqueSpec } from '../src/engine/compress';
import { compressWeight } from '../src/engine/encode/apply';
import { BiasCorrector, biasTargets } from '../src/engine/eval/biasCorrection';
import { collectHessians } from '../src/engine/eval/calibration';
import { loadDatasetSpec } from '../src/engine/eval/datasetSpec';
import { evaluateModel } from '../src/engine/eval/evaluate';
import { readFileSync } from 'node:fs';
import { encodeModel, listWeights, loadModel } from '../src/engine/onnx';
import { substituteWeights } from '../src/engine/eval/weightsAsInputs';
import type { Bench } from './main';

const LEVELS: Array<[string, TechniqueSpec]> = [
  ['share k=16', { technique: 'share', k: 16, perChannel: false }],
  ['share k=8', { technique: 'share', k: 8, perChannel: false }],
  ['share k=4', { technique: 'share', k: 4, perChannel: false }],
  ['quant 4b', { technique: 'quant', bits: 4, symmetric: true, perChannel: true, clip: 'mse' }],
  ['quant 3b', { technique: 'quant', bits: 3, symmetric: true, perChannel: true, clip: 'mse' }],
];

async function run(args: string[]): Promise<void> {
  const opt = (name: string) => {
    const i = args.indexOf(name);
    return i >= 0 ? args[i + 1] : undefined;
  };
  const dataFile = opt('--data') ?? 'test/fixtures/data/fmnist-test-1000.dataset.json';
  const spec = await loadDatasetSpec(dataFile);
  const calSpec = await loadDatasetSpec(opt('--calibration') ?? dataFile);
  const models = args.filter((a) => a.endsWith('.onnx'));
  if (models.length === 0) models.push(...['lenet5', 'resnet8', 'mobilenet'].map((m) => join('test/fixtures', `${m}.onnx`)));
  console.log(`evaluation data ${dataFile}; statistics from the first 256 samples of ${opt('--calibration') ?? dataFile}`);
  console.log('| model | level | top-1 original | plain | calibrated | loss plain → calibrated → + bias correction (points) | statistics s | rounding s (plain / calibrated) | correction s |');
  console.log('|---|---|---:|---:|---:|---:|---:|---:|---:|');
  for (const file of models) {
    const m0 = await loadModel(file);
    const ws = listWeights(m0).filter((w) => w.compressible && w.dataType === 1);
    const base = (await evaluateModel(encodeModel(m0.proto), spec, file)).top1!;
    const t0 = performance.now();
    const hs = await collectHessians(m0, ws, calSpec, { samples: 256 });
    const statS = (performance.now() - t0) / 1000;
    const bytes = readFileSync(file);
    const corrector = await BiasCorrector.create(bytes, biasTargets(m0, ws), calSpec, { samples: 128 });
    for (const [label, s] of LEVELS) {
      const top1: number[] = [];
      const secs: number[] = [];
      let corrected = NaN;
      let correctS = 0;
      for (const calibrated of [false, true]) {
        const m = await loadModel(file);
        const t = performance.now();
        const recon = new Map(ws.map((w) => [w.name, compressWeight(m, w, { ...s, calibrated } as TechniqueSpec, calibrated ? { calibration: hs.get(w.name)! } : {}).weights]));
        secs.push((performance.now() - t) / 1000);
        for (const t of m.graph.initializer) {
          const r = recon.get(t.name);
          if (r) t.rawData = new Uint8Array(r.buffer as ArrayBuffer, r.byteOffset, r.byteLength);
        }
        top1.push((await evaluateModel(encodeModel(m.proto), spec, file)).top1!);
        if (calibrated) {
          const tc = performance.now();
          const biases = await corrector.correct(recon);
          correctS = (performance.now() - tc) / 1000;
          corrected = (await evaluateModel(substituteWeights(bytes, new Map([...recon, ...biases])), spec, file)).top1!;
        }
      }
      const pt = (x: number) => ((base - x) * 100).toFixed(2);
      console.log(`| ${file} | ${label} | ${base.toFixed(4)} | ${top1[0]!.toFixed(4)} | ${top1[1]!.toFixed(4)} | ${pt(top1[0]!)} → ${pt(top1[1]!)} → ${pt(corrected)} | ${statS.toFixed(1)} | ${secs[0]!.toFixed(2)} / ${secs[1]!.toFixed(2)} | ${correctS.toFixed(2)} |`);
    }
    await corrector.dispose();
  }
}

/** The registered benchmark. */
export const calibrationBench: Bench = {
  name: 'calibration',
  summary: 'calibrated vs plain rounding (and bias correction): top-1 of every layer at one level, same bytes',
  run,
};
