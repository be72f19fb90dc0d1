/**
 * Messages between the VS Code extension host and the engine worker (`dist/worker.js`, a
 * `worker_threads` worker). They travel in the envelopes of `MessageHandler` (`src/protocol.ts`):
 * the host sends one {@link WorkerRequest} per run and gets one {@link WorkerReply}; in between the
 * worker streams {@link WorkerEventMessage}s. {@link WorkerCancelCommand} aborts the run's
 * `AbortController` inside the worker (the host maps its `CancellationToken` to it).
 *
 * Everything is structured-clone safe: plain objects, no functions, no class instances.
 */
import type { PlanFile } from '../explore/plan';
import type { CandidatesFile, ExploreEvent, SensitivityFile } from '../explore/types';

/** Options of an analysis or a search, as the host sends them (the engine's options minus `signal` and `onEvent`). */
export interface WorkerRunOptions {
  /** Absolute path of the `.onnx` file. */
  model: string;
  /** Absolute path of a dataset JSON file, or `{ format: 'synthetic', ... }`. */
  data: string | Record<string, unknown>;
  /** Results folder (`<model>.compress/`). */
  outDir: string;
  /** Technique families (`share`, `prune`, `quant`, `float`, `lowrank`); empty = the engine's default. */
  techniques?: string[];
  /** Evaluate at most this many samples. */
  limit?: number;
  /** Budget of `compress`: max loss (fraction) or max size (bytes). */
  maxLoss?: number;
  maxSize?: number;
  /** onnxruntime intra-op threads (0 = onnxruntime's default). */
  threads?: number;
  /**
   * Levels per technique family (`share: [64, 16, 4]`, ...) replacing the engine's default ladder
   * of that family; families not listed keep their defaults. Used by `analyze` only: the engine's
   * `compressModel` takes no explicit levels.
   */
  levels?: Record<string, number[]>;
}

/** Run `analyzeModel`. Reply: {@link WorkerAnalyzeResult}. */
export interface WorkerAnalyzeRequest {
  type: 'analyze';
  options: WorkerRunOptions;
}
/** Run `compressModel`. Reply: {@link WorkerCompressResult}. */
export interface WorkerCompressRequest {
  type: 'compress';
  options: WorkerRunOptions;
}
/** Run `exportCandidate`. Reply: {@link WorkerExportResult}. */
export interface WorkerExportRequest {
  type: 'export';
  resultsDir: string;
  candidateId: string;
  outPath: string;
  /** Also write the `.onnxc` archive next to `outPath`. Default false. */
  archive?: boolean;
  /** The search data (as in {@link WorkerRunOptions.data}): needed for calibrated layers. */
  data?: string | Record<string, unknown>;
}
/** Apply a plan (the heatmap selection) to a model and save it. Reply: {@link WorkerExportResult}. */
export interface WorkerExportPlanRequest {
  type: 'exportPlan';
  /** Absolute path of the `.onnx` file. */
  model: string;
  plan: PlanFile;
  outPath: string;
  /** Also write the `.onnxc` archive next to `outPath`. Default false. */
  archive?: boolean;
  /** The search data (as in {@link WorkerRunOptions.data}): needed for calibrated layers. */
  data?: string | Record<string, unknown>;
}
/** Abort the current run (its promise rejects with `E_CANCELLED`; finished results stay on disk). */
export interface WorkerCancelCommand {
  type: 'cancel';
}

/** Host -> worker. */
export type ToWorkerMessage = WorkerAnalyzeRequest | WorkerCompressRequest | WorkerExportRequest | WorkerExportPlanRequest | WorkerCancelCommand;

/** A progress event of the current run. */
export interface WorkerEventMessage {
  type: 'event';
  event: ExploreEvent;
}
export interface WorkerAnalyzeResult {
  type: 'analyzed';
  result: SensitivityFile;
}
export interface WorkerCompressResult {
  type: 'compressed';
  result: CandidatesFile;
}
export interface WorkerExportResult {
  type: 'exported';
  outPath: string;
  /** Bytes of the ONNX file. */
  bytes: number;
  /** The `.onnxc` archive, when asked for. */
  archive?: string;
}
/** A reply of the worker. */
export type WorkerReply = WorkerAnalyzeResult | WorkerCompressResult | WorkerExportResult;

/** Worker -> host. */
export type FromWorkerMessage = WorkerEventMessage | WorkerReply;
