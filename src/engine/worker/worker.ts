/**
 * Entry of `dist/worker.js`: runs `analyzeModel` / `compressModel` / `exportCandidate` on a
 * `worker_threads` thread so the VS Code extension host stays responsive (onnxruntime adds its own
 * threads). Speaks the {@link MessageHandler} protocol of `src/protocol.ts` with the messages of
 * `./protocol.ts`: one request per run, `event` messages in between, `cancel` aborts.
 *
 * Progress events are throttled to about 4 per second; `cell`, `candidate`, `phase` and `log`
 * events always pass (the panel shows each result as it arrives).
 */
import * as fs from 'node:fs';
import { dirname } from 'node:path';
import { parentPort } from 'node:worker_threads';
import { MessageHandler, type Envelope } from '../../protocol';
import { packArchive } from '../encode/archive';
import { applySpecs } from '../encode/apply';
import { isCalibrated } from '../compress';
import { fail } from '../errors';
import { loadDatasetSpec, parseDatasetSpec } from '../eval/datasetSpec';
import { analyzeModel, compressModel, exportCandidate, familyLevels, parseTechniques, resolvePlan, type DataInput, type PlanFile } from '../explore';
import { listWeights, loadModel, saveModel } from '../onnx';
import { writeFileAtomic } from '../util/atomicWrite';
import type { ExploreEvent } from '../explore/types';
import { collectHessians } from '../eval/calibration';
import { CALIBRATION_SAMPLES, planCorrections, type PlanCorrection } from '../explore/calibrate';
import type { FromWorkerMessage, ToWorkerMessage, WorkerRunOptions } from './protocol';

const port = parentPort;
if (!port) throw new Error('dist/worker.js must run as a worker thread.');

let controller: AbortController | undefined;
let lastProgress = 0;

function emit(event: ExploreEvent): void {
  if (event.type === 'progress' && event.done < event.total) {
    const now = Date.now();
    if (now - lastProgress < 250) return;
    lastProgress = now;
  }
  handler.sendEvent({ type: 'event', event });
}

/** The dataset: a dataset JSON file (checked, files must exist) or an inline spec such as `{ format: 'synthetic' }`. */
async function dataInput(o: WorkerRunOptions): Promise<DataInput> {
  if (typeof o.data === 'string') return { spec: await loadDatasetSpec(o.data), source: o.data };
  const spec = parseDatasetSpec(o.data, dirname(o.model), '<dataset setting>');
  return { spec, source: spec.format === 'synthetic' ? 'synthetic' : JSON.stringify(o.data) };
}

/** The engine's options (`AnalyzeOptions` / `CompressModelOptions`); `limit` also caps the sensitivity cells of `compress`. */
async function engineOptions(o: WorkerRunOptions, signal: AbortSignal, forCompress: boolean): Promise<Record<string, unknown>> {
  const out: Record<string, unknown> = { model: o.model, data: await dataInput(o), out: o.outDir, signal, onEvent: emit };
  for (const k of ['techniques', 'limit', 'maxLoss', 'maxSize', 'threads'] as const) if (o[k] !== undefined) out[k] = o[k];
  if (forCompress && o.limit !== undefined) out['sensitivityLimit'] = o.limit;
  if (!forCompress && o.levels && Object.keys(o.levels).length > 0) {
    // Explicit columns: the families' ladders, each replaced by the setting's values when given.
    const levels = o.levels;
    out['levels'] = parseTechniques(o.techniques ?? undefined).flatMap((f) => familyLevels(f, levels[f]));
  }
  return out;
}

/**
 * Applies `plan` to `model` and saves the result at `outPath` (one file, no external data), plus
 * its `.onnxc` archive next to it when `archive`. The input is never written.
 */
async function exportPlan(model: string, plan: PlanFile, outPath: string, archive: boolean, data?: DataInput): Promise<FromWorkerMessage> {
  if (fs.existsSync(outPath) && fs.realpathSync(outPath) === fs.realpathSync(model)) fail('E_BAD_ARGUMENT', `Refusing to overwrite the model '${model}' with its own export.`);
  const m = await loadModel(model);
  const weights = listWeights(m);
  const specs = resolvePlan(plan, weights, 'selection');
  const calibrated = new Set([...specs].filter(([, s]) => isCalibrated(s)).map(([n]) => n));
  let calibration;
  if (calibrated.size > 0) {
    if (!data || data.spec.format === 'synthetic') fail('E_BAD_ARGUMENT', `The plan uses calibrated rounding on ${calibrated.size} layer(s): exporting it needs the model's dataset (run "Configure Dataset").`);
    calibration = await collectHessians(m, weights.filter((w) => calibrated.has(w.name)), data.spec, { samples: CALIBRATION_SAMPLES });
  }
  let corrections: PlanCorrection | undefined;
  if (plan.biasCorrection) {
    if (!data || data.spec.format === 'synthetic') fail('E_BAD_ARGUMENT', 'The plan corrects biases ("biasCorrection": true): exporting it needs the model\'s dataset (run "Configure Dataset").');
    corrections = await planCorrections(fs.readFileSync(model), () => loadModel(model), specs, calibration, data, { sequential: plan.sequentialCalibration, ...(m.externalFiles.length ? { externalDataFolder: dirname(model) } : {}) });
  }
  applySpecs(m, specs, { calibration, overrides: corrections?.biases, compressed: corrections?.compressed });
  const saved = await saveModel(m, outPath, { externalData: 'none' });
  const reply: FromWorkerMessage = { type: 'exported', outPath: saved.modelFile, bytes: saved.modelBytes };
  if (archive) {
    const file = `${saved.modelFile.replace(/\.onnx$/i, '')}.onnxc`;
    await writeFileAtomic(file, packArchive(fs.readFileSync(saved.modelFile)));
    reply.archive = file;
  }
  return reply;
}

async function onMessage(body: unknown): Promise<FromWorkerMessage | undefined> {
  const msg = body as ToWorkerMessage;
  switch (msg.type) {
    case 'cancel':
      controller?.abort();
      return undefined;
    case 'analyze':
    case 'compress': {
      controller = new AbortController();
      try {
        const options = await engineOptions(msg.options, controller.signal, msg.type === 'compress');
        if (msg.type === 'analyze') return { type: 'analyzed', result: await analyzeModel(options as never) };
        return { type: 'compressed', result: await compressModel(options as never) };
      } finally {
        controller = undefined;
      }
    }
    case 'export': {
      const data = msg.data === undefined ? undefined : await dataInput({ model: msg.outPath, data: msg.data, outDir: msg.resultsDir });
      const r = await exportCandidate(msg.resultsDir, msg.candidateId, msg.outPath, msg.archive === true, undefined, data);
      return { type: 'exported', outPath: r.model, bytes: r.bytes, ...(r.archive ? { archive: r.archive } : {}) };
    }
    case 'exportPlan':
      return exportPlan(msg.model, msg.plan, msg.outPath, msg.archive === true, msg.data === undefined ? undefined : await dataInput({ model: msg.model, data: msg.data, outDir: '' }));
    default: {
      const never: never = msg;
      throw new Error(`unknown worker message ${JSON.stringify(never)}`);
    }
  }
}

const handler = new MessageHandler<FromWorkerMessage, ToWorkerMessage>(
  (m: Envelope<FromWorkerMessage>) => port.postMessage(m),
  onMessage,
);
port.on('message', (m: unknown) => void handler.handleMessage(m));
