/**
 * onnxruntime-node sessions: creation with our defaults, model input description, and running a
 * dataset through a session batch by batch.
 */
import { availableParallelism } from 'node:os';
import * as ort from 'onnxruntime-node';
import { CompressError, fail, throwIfAborted } from '../errors.js';
import type { Batch, Dataset, FeedTensor, ModelInputSpec } from './types.js';

/** Session options (see onnxruntime's `InferenceSession.SessionOptions`). */
export interface SessionOptions {
  /** Threads inside one operator. Default `os.availableParallelism()`. */
  intraOpNumThreads: number;
  /** Graph optimisation level. Default `'all'`. */
  graphOptimizationLevel: 'disabled' | 'basic' | 'extended' | 'all';
  /** Reuse memory between runs of same-shaped inputs. Default true. */
  enableMemPattern: boolean;
  /**
   * Let onnxruntime's intra-op threads spin while they wait for work (its own default). Spinning
   * saves a thread wake-up per operator on an idle machine; on a machine whose cores are busy with
   * other work it burns the time the other thread needs (each operator waits for its slowest
   * thread). Default true.
   */
  allowSpinning: boolean;
  /**
   * Folder the model's external data `location`s are relative to (its .onnx file's folder). Needed
   * when the bytes refer to external data: onnxruntime then reads those tensors from their files
   * itself, so a model over 2 GiB never has to be one buffer. Default none (bytes must be
   * self-contained, or refer to files in the working directory).
   */
  externalDataFolder?: string;
}

/** The {@link SessionOptions} fields of a larger options object (e.g. an evaluator's). */
export function pickSessionOptions(o: Partial<SessionOptions>): Partial<SessionOptions> {
  const out: Partial<SessionOptions> = {};
  if (o.intraOpNumThreads !== undefined) out.intraOpNumThreads = o.intraOpNumThreads;
  if (o.graphOptimizationLevel !== undefined) out.graphOptimizationLevel = o.graphOptimizationLevel;
  if (o.enableMemPattern !== undefined) out.enableMemPattern = o.enableMemPattern;
  if (o.allowSpinning !== undefined) out.allowSpinning = o.allowSpinning;
  if (o.externalDataFolder !== undefined) out.externalDataFolder = o.externalDataFolder;
  return out;
}

/** Merges {@link SessionOptions} defaults. */
export function makeSessionOptions(partial: Partial<SessionOptions> = {}): SessionOptions {
  return { intraOpNumThreads: availableParallelism(), graphOptimizationLevel: 'all', enableMemPattern: true, allowSpinning: true, ...partial };
}

/**
 * Creates an onnxruntime session from model bytes. The caller owns it: call `release()` in a
 * `finally` (or use {@link withSession}). ORT load errors become `E_MODEL_INVALID` naming `source`.
 */
export async function createSession(
  modelBytes: Uint8Array,
  options: Partial<SessionOptions> = {},
  source = 'model',
): Promise<ort.InferenceSession> {
  const o = makeSessionOptions(options);
  // Session config keys (onnxruntime_session_options_config_keys.h); the binding joins nested keys with '.'.
  const config: Record<string, string> = {};
  if (!o.allowSpinning) config['intra_op.allow_spinning'] = '0';
  // onnxruntime ≥ 1.21 (onnxruntime PR #23557): resolve external data of a model given as bytes
  // against this folder (it refuses paths that leave it).
  if (o.externalDataFolder) config['model_external_initializers_file_folder_path'] = o.externalDataFolder;
  try {
    return await ort.InferenceSession.create(modelBytes, {
      intraOpNumThreads: o.intraOpNumThreads,
      interOpNumThreads: 1,
      graphOptimizationLevel: o.graphOptimizationLevel,
      enableMemPattern: o.enableMemPattern,
      executionMode: 'sequential',
      ...(Object.keys(config).length > 0 ? { extra: { session: config } } : {}),
    });
  } catch (e) {
    fail('E_MODEL_INVALID', `onnxruntime cannot load ${source}: ${(e as Error).message}`, e);
  }
}

/** Runs `fn` with a fresh session and always releases it. */
export async function withSession<T>(
  modelBytes: Uint8Array,
  options: Partial<SessionOptions>,
  fn: (s: ort.InferenceSession) => Promise<T>,
  source = 'model',
): Promise<T> {
  const s = await createSession(modelBytes, options, source);
  try {
    return await fn(s);
  } finally {
    await s.release();
  }
}

/** The session's inputs as {@link ModelInputSpec} (symbolic dims as strings). */
export function sessionInputs(s: ort.InferenceSession): ModelInputSpec[] {
  return s.inputMetadata.map((m) =>
    m.isTensor
      ? { name: m.name, dims: m.shape.map((d) => (typeof d === 'number' && d >= 0 ? d : String(d))), type: m.type }
      : { name: m.name, dims: [], type: 'non-tensor' },
  );
}

/** Output shapes from session metadata (symbolic dims as strings). */
export function sessionOutputs(s: ort.InferenceSession): ModelInputSpec[] {
  return s.outputMetadata.map((m) =>
    m.isTensor
      ? { name: m.name, dims: m.shape.map((d) => (typeof d === 'number' && d >= 0 ? d : String(d))), type: m.type }
      : { name: m.name, dims: [], type: 'non-tensor' },
  );
}

/** Number of classes of a `[N, C]` output (the last dim when fixed), else undefined. */
export function classesOf(output: ModelInputSpec | undefined): number | undefined {
  const last = output?.dims[output.dims.length - 1];
  return output && output.dims.length === 2 && typeof last === 'number' ? last : undefined;
}

/** Wraps feed tensors as ORT tensors (no copy of the data). */
export function toOrtFeeds(feeds: Record<string, FeedTensor>): Record<string, ort.Tensor> {
  const out: Record<string, ort.Tensor> = {};
  for (const [k, f] of Object.entries(feeds)) out[k] = new ort.Tensor(f.type, f.data, f.dims);
  return out;
}

/** One output of a batch: float data `[count, ...sampleDims]`. */
export interface OutputBlock {
  readonly data: Float32Array;
  readonly sampleDims: readonly number[];
}

/** Options of {@link runDataset}. */
export interface RunOptions {
  /** Samples per `run()`. Default 64; forced to the model's batch size when that is fixed. */
  batchSize: number;
  /** Output names to fetch. Default all outputs. */
  outputs: readonly string[] | undefined;
  signal: AbortSignal | undefined;
  /** Called after each batch with samples done and total. */
  onProgress: ((done: number, total: number) => void) | undefined;
}

/** The batch size to use for a requested size: a fixed batch dimension wins. */
export function effectiveBatchSize(inputs: readonly ModelInputSpec[], requested: number): number {
  const fixed = inputs.map((i) => i.dims[0]).find((d): d is number => typeof d === 'number');
  return fixed ?? requested;
}

function padFeeds(feeds: Record<string, FeedTensor>, count: number, to: number): Record<string, FeedTensor> {
  const out: Record<string, FeedTensor> = {};
  for (const [k, f] of Object.entries(feeds)) {
    const per = f.data.length / count;
    const Ctor = f.data.constructor as new (n: number) => FeedTensor['data'];
    const d = new Ctor(per * to);
    (d as Float32Array).set(f.data as Float32Array);
    out[k] = { type: f.type, data: d, dims: [to, ...f.dims.slice(1)] };
  }
  return out;
}

/**
 * Runs every batch of `dataset` through `session` and hands the outputs to `onBatch` (converted to
 * float32, trimmed to the batch's real sample count when the model's batch size is fixed and the
 * last batch had to be padded). ORT tensors are disposed after `onBatch` returns.
 */
export async function runDataset(
  session: ort.InferenceSession,
  dataset: Dataset,
  onBatch: (outputs: Record<string, OutputBlock>, batch: Batch) => void | Promise<void>,
  options: Partial<RunOptions> = {},
): Promise<number> {
  const o: RunOptions = { batchSize: 64, outputs: undefined, signal: undefined, onProgress: undefined, ...options };
  const inputs = sessionInputs(session);
  const bs = effectiveBatchSize(inputs, o.batchSize);
  const fixed = bs !== o.batchSize || inputs.some((i) => i.dims[0] === bs);
  const names = o.outputs ?? session.outputNames;
  let done = 0;
  for await (const batch of dataset.batches(bs, o.signal ? { signal: o.signal } : {})) {
    throwIfAborted(o.signal);
    const feeds = fixed && batch.count < bs ? padFeeds(batch.feeds, batch.count, bs) : batch.feeds;
    let result: ort.InferenceSession.OnnxValueMapType;
    try {
      result = await session.run(toOrtFeeds(feeds), names as string[]);
    } catch (e) {
      if (e instanceof CompressError) throw e;
      fail('E_DATASET', `onnxruntime failed on samples ${batch.start}..${batch.start + batch.count - 1} of ${dataset.meta.description}: ${(e as Error).message}`, e);
    }
    try {
      const blocks: Record<string, OutputBlock> = {};
      for (const n of names) {
        const t = result[n] as ort.Tensor;
        const per = t.dims.slice(1).reduce((a, b) => a * b, 1);
        const raw = t.data as ArrayLike<number>;
        const data = raw instanceof Float32Array ? raw.subarray(0, batch.count * per) : Float32Array.from({ length: batch.count * per }, (_, i) => Number(raw[i]));
        blocks[n] = { data, sampleDims: t.dims.slice(1) };
      }
      await onBatch(blocks, batch);
    } finally {
      for (const n of Object.keys(result)) (result[n] as ort.Tensor).dispose();
    }
    done += batch.count;
    o.onProgress?.(done, dataset.meta.count);
  }
  return done;
}
