/**
 * Shared types of the evaluation module: model input descriptions, feed tensors, batches and the
 * {@link Dataset} interface every reader implements.
 */

/** Element types a dataset can feed (the onnxruntime tensor type names). */
export type FeedType = 'float32' | 'float64' | 'int64' | 'int32' | 'uint8' | 'int8' | 'bool';

/** Typed array backing a feed tensor (`BigInt64Array` for `int64`, `Uint8Array` for `bool`). */
export type FeedData = Float32Array | Float64Array | BigInt64Array | Int32Array | Uint8Array | Int8Array;

/**
 * One model input as the dataset layer needs to know it. `dims[0]` is the batch dimension; a string
 * is a symbolic dimension (any size), a number a fixed one. `type` is the onnxruntime type name
 * (`'float32'`, `'int64'`...). The ONNX module and `InferenceSession.inputMetadata` both map onto it.
 */
export interface ModelInputSpec {
  readonly name: string;
  readonly dims: readonly (number | string)[];
  readonly type: string;
}

/** A tensor ready to feed: row-major `data` of `dims` (the first dimension is the batch). */
export interface FeedTensor {
  readonly type: FeedType;
  readonly data: FeedData;
  readonly dims: readonly number[];
}

/** One batch of samples `start .. start + count - 1` of a dataset. */
export interface Batch {
  /** Feeds by model input name. */
  readonly feeds: Record<string, FeedTensor>;
  /** Class index per sample, when the dataset has labels. */
  readonly labels?: Int32Array;
  /** Index of the first sample of the batch in the dataset (after skipped undecodable images). */
  readonly start: number;
  /** Number of samples in the batch (≤ the batch size; the last batch may be short). */
  readonly count: number;
}

/** What a dataset feeds, per model input: the per-sample shape (batch dimension excluded). */
export interface DatasetInputInfo {
  readonly name: string;
  readonly type: FeedType;
  readonly sampleDims: readonly number[];
  /** The file (or folder) the input is read from, for messages. */
  readonly source: string;
}

/** Facts about a dataset known before reading it. */
export interface DatasetMeta {
  /**
   * Number of samples that will be produced (after `limit`). For image folders with
   * `onUndecodable: 'skip'` this is an upper bound: skipped files are counted in `stats.skipped`.
   */
  readonly count: number;
  readonly inputs: readonly DatasetInputInfo[];
  readonly hasLabels: boolean;
  /** Class names by index (image folders), when known. */
  readonly classNames?: readonly string[];
  /** Short human description, e.g. `npy fmnist-test-1000-images.npy (1000 samples)`. */
  readonly description: string;
}

/** Options of {@link Dataset.batches}. */
export interface BatchOptions {
  readonly signal?: AbortSignal;
}

/** Running counters of a dataset read. */
export interface DatasetStats {
  /** Images that could not be decoded and were skipped (`onUndecodable: 'skip'`). */
  skipped: number;
  /** Paths of the first few skipped files, for messages. */
  readonly skippedFiles: string[];
}

/**
 * A dataset bound to a model: it yields batches whose feeds match the model's inputs (names, dtypes,
 * per-sample shapes). Readers hold at most about one batch of decoded data in memory.
 */
export interface Dataset {
  readonly meta: DatasetMeta;
  readonly stats: DatasetStats;
  /** Yields the samples in order, `batchSize` at a time. Can be iterated several times. */
  batches(batchSize: number, options?: BatchOptions): AsyncIterable<Batch>;
}
