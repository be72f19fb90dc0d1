/**
 * Entry of `dist/worker.js`: runs `analyzeModel` / `compressModel` / `exportCandidate` on a
 * `worker_threads` thread so the VS Code extension host stays responsive (onnxruntime adds its own
 * threads). Speaks the {@link MessageHandler} protocol of `src/protocol.ts` with the messages of
 * `./protocol.ts`: one request per run, `event` messages in between, `cancel` aborts.
 *
 * Progress events are throttled to about 4 per second; `cell`, `candidate`, `phase` and `log`
 * events always pass (the panel shows each result as it arrives).
 */
import { parentPort } from 'node:worker_threads';
import { MessageHandler, type Envelope } from '../../protocol';
import { dirname } from 'node:path';
import { loadDatasetSpec, parseDatasetSpec } from '../eval/datasetSpec';
import { analyzeModel, compressModel, exportCandidate, type DataInput } from '../explore';
import type { ExploreEvent } from '../explore/types';
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
  return out;
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
    case 'export':
      await exportCandidate(msg.resultsDir, msg.candidateId, msg.outPath);
      return { type: 'exported', outPath: msg.outPath };
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
