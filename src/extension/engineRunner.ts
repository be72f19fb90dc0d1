/**
 * Runs the engine in a `worker_threads` worker (`dist/worker.js`), one worker per run, so
 * evaluation never blocks the extension host. Cancellation: the caller's `AbortSignal` becomes a
 * `cancel` message that aborts the worker's own `AbortController`; if the worker does not finish
 * within {@link CANCEL_GRACE_MS} it is terminated (results already written stay on disk).
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { Worker } from 'node:worker_threads';
import { MessageHandler, ReplyError, type Envelope } from '../protocol';
import type { CandidatesFile, ExploreEvent, SensitivityFile } from '../engine/explore/types';
import type { PlanFile } from '../engine/explore/plan';
import type { FromWorkerMessage, ToWorkerMessage, WorkerExportResult, WorkerRunOptions } from '../engine/worker/protocol';

/** Milliseconds a cancelled worker gets to stop by itself before it is terminated. */
export const CANCEL_GRACE_MS = 5_000;

/** A run's hooks. */
export interface RunHooks {
  signal?: AbortSignal;
  onEvent?: (event: ExploreEvent) => void;
}

/** Error of a run that the engine reported (its stable `code`, e.g. `E_DATASET`, `E_CANCELLED`). */
export class EngineError extends Error {
  override readonly name = 'EngineError';
  constructor(readonly code: string, message: string) {
    super(message);
  }
}

/** Starts workers from `<extensionPath>/dist/worker.js`. */
export class EngineRunner {
  private readonly workerFile: string;
  private readonly active = new Set<Worker>();

  constructor(extensionPath: string) {
    this.workerFile = path.join(extensionPath, 'dist', 'worker.js');
  }

  /** `analyzeModel` in a worker. */
  analyze(options: WorkerRunOptions, hooks: RunHooks = {}): Promise<SensitivityFile> {
    return this.run({ type: 'analyze', options }, hooks).then((r) => {
      if (r.type !== 'analyzed') throw new EngineError('E_INTERNAL', `worker replied ${r.type} to analyze`);
      return r.result;
    });
  }

  /** `compressModel` in a worker. */
  compress(options: WorkerRunOptions, hooks: RunHooks = {}): Promise<CandidatesFile> {
    return this.run({ type: 'compress', options }, hooks).then((r) => {
      if (r.type !== 'compressed') throw new EngineError('E_INTERNAL', `worker replied ${r.type} to compress`);
      return r.result;
    });
  }

  /** `exportCandidate` in a worker (plus the `.onnxc` archive when `archive`). */
  exportCandidate(resultsDir: string, candidateId: string, outPath: string, archive: boolean, data?: WorkerRunOptions['data']): Promise<WorkerExportResult> {
    return this.run({ type: 'export', resultsDir, candidateId, outPath, archive, ...(data !== undefined ? { data } : {}) }, {}).then(exported);
  }

  /** Applies `plan` to `model` in a worker and saves it at `outPath` (plus the `.onnxc` archive when `archive`). */
  exportPlan(model: string, plan: PlanFile, outPath: string, archive: boolean, data?: WorkerRunOptions['data']): Promise<WorkerExportResult> {
    return this.run({ type: 'exportPlan', model, plan, outPath, archive, ...(data !== undefined ? { data } : {}) }, {}).then(exported);
  }

  /** Terminates every running worker. */
  dispose(): void {
    for (const w of this.active) void w.terminate();
    this.active.clear();
  }

  private async run(request: ToWorkerMessage, hooks: RunHooks): Promise<FromWorkerMessage> {
    hooks.signal?.throwIfAborted();
    const worker = new Worker(this.workerFile, { stdout: false, stderr: false });
    this.active.add(worker);
    let failed: ((e: Error) => void) | undefined;
    const died = new Promise<never>((_, reject) => (failed = reject));
    const handler = new MessageHandler<ToWorkerMessage, FromWorkerMessage>(
      (m: Envelope<ToWorkerMessage>) => worker.postMessage(m),
      (body) => {
        const msg = body as FromWorkerMessage;
        if (msg?.type === 'event') hooks.onEvent?.(msg.event);
        return undefined;
      },
      // Runs take minutes to hours; the worker always answers (result or error) or dies.
      { timeoutMs: 2 ** 31 - 1 },
    );
    worker.on('message', (m: unknown) => void handler.handleMessage(m));
    worker.on('error', (e) => failed?.(new EngineError('E_INTERNAL', `engine worker crashed: ${e.message}`)));
    worker.on('exit', (code) => failed?.(new EngineError(hooks.signal?.aborted ? 'E_CANCELLED' : 'E_INTERNAL', `engine worker exited (code ${code}).`)));
    let killTimer: ReturnType<typeof setTimeout> | undefined;
    const onAbort = (): void => {
      handler.sendEvent({ type: 'cancel' });
      killTimer = setTimeout(() => void worker.terminate(), CANCEL_GRACE_MS);
    };
    hooks.signal?.addEventListener('abort', onAbort, { once: true });
    let answered = false;
    try {
      const reply = await Promise.race([handler.sendRequest(request), died]);
      answered = true;
      return reply;
    } catch (e) {
      if (e instanceof ReplyError) answered = true;
      if (e instanceof ReplyError) throw new EngineError(e.code, e.message);
      throw e;
    } finally {
      hooks.signal?.removeEventListener('abort', onAbort);
      if (killTimer) clearTimeout(killTimer);
      failed = undefined;
      handler.dispose();
      this.active.delete(worker);
      await worker.terminate();
      if (!answered && 'options' in request) releaseStaleLock(request.options.outDir);
    }
  }
}

function exported(r: FromWorkerMessage): WorkerExportResult {
  if (r.type !== 'exported') throw new EngineError('E_INTERNAL', `worker replied ${r.type} to an export`);
  return r;
}

/**
 * A worker terminated mid-run cannot release the results folder's lock, and the lock holds this
 * process's pid (workers share it), which the engine would refuse forever. Removes it then.
 */
function releaseStaleLock(dir: string): void {
  const file = path.join(dir, '.lock');
  try {
    if (fs.readFileSync(file, 'utf8').trim() === String(process.pid)) fs.rmSync(file, { force: true });
  } catch {
    // no lock left: nothing to do
  }
}
