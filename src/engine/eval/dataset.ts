/**
 * Opens a {@link DatasetSpec} against a model's inputs: maps arrays to input names, checks shapes,
 * dtypes, sample counts and labels, and returns a streaming {@link Dataset}.
 */
import { fail, throwIfAborted } from '../errors.js';
import { gaussian, mulberry32 } from '../util/random.js';
import { isFloatDType, openArrayFile, openNpz, type ArraySource, type NumArray } from './arraySource.js';
import type { DatasetSpec } from './datasetSpec.js';
import { decodeImage, listImageFolder } from './images.js';
import { makePreprocessOptions, normalizeToFloat32, type PreprocessOptions } from './preprocess.js';
import type {
  Batch,
  BatchOptions,
  Dataset,
  DatasetInputInfo,
  DatasetMeta,
  DatasetStats,
  FeedTensor,
  FeedType,
  ModelInputSpec,
} from './types.js';

/** Options of {@link openDataset}. */
export interface OpenDatasetOptions {
  /** Evaluate only the first N samples (overrides the spec's `limit` when smaller). */
  limit: number | undefined;
  /** Number of classes of the model's output; labels must lie in `[0, numClasses)`. */
  numClasses: number | undefined;
}

const fmtDims = (d: readonly (number | string)[]): string => `[${d.join(',')}]`;

/** The feed type a model input type takes, or an error naming the input. */
function feedTypeOf(input: ModelInputSpec): FeedType {
  const t = input.type.replace(/^tensor\(|\)$/g, '');
  const map: Record<string, FeedType> = {
    float32: 'float32',
    float: 'float32',
    float64: 'float64',
    double: 'float64',
    int64: 'int64',
    int32: 'int32',
    uint8: 'uint8',
    int8: 'int8',
    bool: 'bool',
  };
  const f = map[t];
  if (f === undefined) fail('E_DATASET', `Model input '${input.name}' has type '${input.type}', which datasets cannot feed (float32/64, int64/32, (u)int8, bool).`);
  return f;
}

/**
 * Checks that samples of `sampleDims` fit model input `input` and returns the per-sample dims to
 * feed. Size-1 dimensions may differ (IDX `[N,28,28]` feeds `[N,1,28,28]`); any other mismatch is an
 * error naming `source` and the dimension.
 */
export function fitSampleDims(sampleDims: readonly number[], input: ModelInputSpec, source: string): number[] {
  const want = input.dims.slice(1);
  const exact = want.length === sampleDims.length && want.every((w, i) => typeof w === 'string' || w === sampleDims[i]);
  if (exact) return [...sampleDims];
  const squeeze = (d: readonly (number | string)[]) => d.filter((x) => x !== 1);
  const a = squeeze(sampleDims);
  const b = squeeze(want);
  if (a.length === b.length && b.every((w, i) => typeof w === 'string' || w === a[i]) && want.every((w) => typeof w === 'number')) {
    return want as number[];
  }
  let detail: string;
  if (want.length !== sampleDims.length) {
    detail = `the model wants ${want.length + 1} dimensions (batch included), the data gives ${sampleDims.length + 1}`;
  } else {
    const i = want.findIndex((w, k) => typeof w === 'number' && w !== sampleDims[k]);
    detail = `dimension ${i + 1} is ${sampleDims[i]}, expected ${want[i]}`;
  }
  fail(
    'E_DATASET',
    `'${source}' samples have shape ${fmtDims(sampleDims)} but model input '${input.name}' expects ${fmtDims(input.dims)}: ${detail}.`,
  );
}

/** Maps the spec's `inputs` to model input names (ambiguity is an error). */
function mapInputs<T>(
  spec: DatasetSpec,
  modelInputs: readonly ModelInputSpec[],
  given: string | Readonly<Record<string, T>> | undefined,
  what: string,
): Map<string, T | string> {
  const names = modelInputs.map((i) => i.name);
  const where = spec.specFile ? `Dataset file '${spec.specFile}'` : 'The dataset';
  const out = new Map<string, T | string>();
  if (typeof given === 'string') {
    if (modelInputs.length !== 1) {
      fail('E_DATASET', `${where} gives one ${what} ('${given}') but the model has ${names.length} inputs (${names.join(', ')}): map each, e.g. "inputs": {"${names[0]}": ...}.`);
    }
    out.set(names[0]!, given);
    return out;
  }
  for (const [k, v] of Object.entries(given ?? {})) {
    if (!names.includes(k)) fail('E_DATASET', `${where} maps "${k}", which is not a model input (inputs: ${names.join(', ')}).`);
    out.set(k, v);
  }
  const missing = names.filter((n) => !out.has(n));
  if (missing.length > 0) fail('E_DATASET', `${where} gives no data for model input(s) ${missing.join(', ')}.`);
  return out;
}

/** Reads a labels array fully and checks it (integers, one per sample, in range). */
async function readLabels(src: ArraySource, count: number, numClasses: number | undefined): Promise<Int32Array> {
  if (isFloatDType(src.dtype) || src.dtype === 'bool') {
    fail('E_DATASET', `Labels '${src.file}' have dtype ${src.dtype}; expected integer class indices (e.g. int64).`);
  }
  if (!(src.shape.length === 1 || (src.shape.length === 2 && src.shape[1] === 1))) {
    fail('E_DATASET', `Labels '${src.file}' have shape ${fmtDims(src.shape)}; expected [${count}] class indices (one-hot labels: take argmax first).`);
  }
  if (src.shape[0] !== count) {
    fail('E_DATASET', `Labels '${src.file}' have ${src.shape[0]} entries but the inputs have ${count} samples.`);
  }
  const raw = await src.readRows(0, count);
  const out = new Int32Array(count);
  for (let i = 0; i < count; i++) {
    const v = Number(raw[i]);
    if (v < 0 || (numClasses !== undefined && v >= numClasses)) {
      fail('E_DATASET', `Labels '${src.file}' hold ${v} at index ${i}, outside the model's ${numClasses ?? '?'} classes [0, ${numClasses ?? '?'}).`);
    }
    out[i] = v;
  }
  return out;
}

function castInts(src: NumArray, type: FeedType): FeedTensor['data'] {
  const n = src.length;
  switch (type) {
    case 'int64': {
      const o = new BigInt64Array(n);
      for (let i = 0; i < n; i++) o[i] = BigInt(src[i]!);
      return o;
    }
    case 'int32':
      return Int32Array.from(src as ArrayLike<number>, Number);
    case 'int8':
      return Int8Array.from(src as ArrayLike<number>, Number);
    default:
      return Uint8Array.from(src as ArrayLike<number>, Number);
  }
}

const newStats = (): DatasetStats => ({ skipped: 0, skippedFiles: [] });

/** A dataset over on-disk arrays (npy, npz, idx). */
class ArrayDataset implements Dataset {
  readonly stats = newStats();
  constructor(
    readonly meta: DatasetMeta,
    private readonly sources: Map<string, ArraySource>,
    private readonly pre: PreprocessOptions,
    private readonly labels: Int32Array | undefined,
    /** Rows skipped at the start of every file (`offset`). */
    private readonly offset = 0,
  ) {}

  async *batches(batchSize: number, options: BatchOptions = {}): AsyncIterable<Batch> {
    for (let start = 0; start < this.meta.count; start += batchSize) {
      throwIfAborted(options.signal);
      const count = Math.min(batchSize, this.meta.count - start);
      const feeds: Record<string, FeedTensor> = {};
      for (const info of this.meta.inputs) {
        const src = this.sources.get(info.name)!;
        const raw = await src.readRows(this.offset + start, count);
        const dims = [count, ...info.sampleDims];
        if (info.type === 'float32') {
          feeds[info.name] = { type: 'float32', dims, data: normalizeToFloat32(raw, info.sampleDims, this.pre, src.file) };
        } else if (info.type === 'float64') {
          feeds[info.name] = { type: 'float64', dims, data: Float64Array.from(normalizeToFloat32(raw, info.sampleDims, this.pre, src.file)) };
        } else {
          feeds[info.name] = { type: info.type, dims, data: castInts(raw, info.type) };
        }
      }
      yield this.labels
        ? { feeds, start, count, labels: this.labels.subarray(this.offset + start, this.offset + start + count) }
        : { feeds, start, count };
    }
  }
}

async function openArrays(spec: DatasetSpec, modelInputs: readonly ModelInputSpec[], opts: OpenDatasetOptions): Promise<Dataset> {
  const sources = new Map<string, ArraySource>();
  let labelSrc: ArraySource | undefined;
  if (spec.format === 'npz') {
    const arrays = await openNpz(spec.file!);
    const keys = [...arrays.keys()];
    const labelKey = spec.labels ?? (arrays.has('labels') ? 'labels' : undefined);
    if (labelKey !== undefined) {
      labelSrc = arrays.get(labelKey);
      if (!labelSrc) fail('E_DATASET', `'${spec.file}' has no array '${labelKey}' for the labels (arrays: ${keys.join(', ')}).`);
    }
    let given = spec.inputs;
    if (given === undefined) {
      const named = modelInputs.filter((i) => arrays.has(i.name));
      const rest = keys.filter((k) => k !== labelKey);
      if (named.length === modelInputs.length) given = Object.fromEntries(named.map((i) => [i.name, i.name]));
      else if (rest.length === 1 && modelInputs.length === 1) given = rest[0]!;
      else {
        fail('E_DATASET', `'${spec.file}' holds arrays ${keys.join(', ')}; which feeds model input(s) ${modelInputs.map((i) => i.name).join(', ')} is ambiguous: write a dataset JSON with "inputs".`);
      }
    }
    for (const [name, key] of mapInputs(spec, modelInputs, given, 'array')) {
      const a = arrays.get(key as string);
      if (!a) fail('E_DATASET', `'${spec.file}' has no array '${key}' (arrays: ${keys.join(', ')}).`);
      sources.set(name, a);
    }
  } else {
    for (const [name, path] of mapInputs(spec, modelInputs, spec.inputs, 'data file')) sources.set(name, await openArrayFile(path as string));
    if (spec.labels) labelSrc = await openArrayFile(spec.labels);
  }
  let total = -1;
  let first = '';
  const infos: DatasetInputInfo[] = [];
  for (const input of modelInputs) {
    const src = sources.get(input.name)!;
    if (src.shape.length === 0) fail('E_DATASET', `'${src.file}' is a scalar; expected samples along the first axis.`);
    const n = src.shape[0]!;
    if (total < 0) (total = n), (first = src.file);
    else if (n !== total) fail('E_DATASET', `'${src.file}' has ${n} samples but '${first}' has ${total}; inputs must have the same count.`);
    const type = feedTypeOf(input);
    if (!type.startsWith('float') && isFloatDType(src.dtype)) {
      fail('E_DATASET', `'${src.file}' holds ${src.dtype} values but model input '${input.name}' is ${input.type}; save integer data.`);
    }
    infos.push({ name: input.name, type, sampleDims: fitSampleDims(src.shape.slice(1), input, src.file), source: src.file });
  }
  if (total === 0) fail('E_DATASET', `'${first}' holds no samples.`);
  const labels = labelSrc ? await readLabels(labelSrc, total, opts.numClasses) : undefined;
  const offset = spec.offset ?? 0;
  if (offset >= total) fail('E_DATASET', `${spec.specFile ? `'${spec.specFile}': ` : ''}"offset" ${offset} skips all ${total} samples of '${first}'; use a smaller offset.`);
  const count = Math.min(total - offset, spec.limit ?? Infinity, opts.limit ?? Infinity);
  const pre = makePreprocessOptions(spec.preprocess, false);
  const meta: DatasetMeta = {
    count,
    inputs: infos,
    hasLabels: labels !== undefined,
    description: `${spec.format} ${infos.map((i) => i.source).join(', ')} (${offset ? `samples ${offset}..${offset + count - 1}` : `${count} samples`})`,
  };
  return new ArrayDataset(meta, sources, pre, labels, offset);
}

/** A dataset over an image folder; decodes one batch at a time. */
class ImageDataset implements Dataset {
  readonly stats = newStats();
  constructor(
    readonly meta: DatasetMeta,
    private readonly files: readonly string[],
    private readonly labels: Int32Array | undefined,
    private readonly pre: PreprocessOptions & { crop: readonly [number, number] },
    private readonly onUndecodable: 'skip' | 'fail',
  ) {}

  async *batches(batchSize: number, options: BatchOptions = {}): AsyncIterable<Batch> {
    this.stats.skipped = 0;
    this.stats.skippedFiles.length = 0;
    const info = this.meta.inputs[0]!;
    const per = info.sampleDims.reduce((a, b) => a * b, 1);
    let produced = 0;
    let next = 0;
    while (next < this.files.length && produced < this.meta.count) {
      throwIfAborted(options.signal);
      const want = Math.min(batchSize, this.meta.count - produced);
      const data = new Float32Array(want * per);
      const labels = new Int32Array(want);
      let k = 0;
      while (k < want && next < this.files.length) {
        const take = this.files.slice(next, next + (want - k));
        const idx = next;
        next += take.length;
        const decoded = await Promise.allSettled(take.map((f) => decodeImage(f, this.pre)));
        for (let j = 0; j < decoded.length; j++) {
          const r = decoded[j]!;
          if (r.status === 'rejected') {
            if (this.onUndecodable === 'fail') {
              fail('E_DATASET', `Image '${take[j]}' cannot be decoded (${(r.reason as Error).message}). Remove it or set "onUndecodable": "skip".`, r.reason);
            }
            this.stats.skipped++;
            if (this.stats.skippedFiles.length < 10) this.stats.skippedFiles.push(take[j]!);
            continue;
          }
          data.set(r.value, k * per);
          if (this.labels) labels[k] = this.labels[idx + j]!;
          k++;
        }
      }
      if (k === 0) break;
      const feeds = { [info.name]: { type: 'float32' as const, dims: [k, ...info.sampleDims], data: k === want ? data : data.slice(0, k * per) } };
      yield this.labels ? { feeds, start: produced, count: k, labels: labels.slice(0, k) } : { feeds, start: produced, count: k };
      produced += k;
    }
  }
}

async function openImages(spec: DatasetSpec, modelInputs: readonly ModelInputSpec[], opts: OpenDatasetOptions): Promise<Dataset> {
  const [[name, root]] = [...mapInputs(spec, modelInputs, spec.inputs, 'image folder')] as [[string, string]];
  if (modelInputs.length !== 1) fail('E_DATASET', `Image folders feed one input; the model has ${modelInputs.length}.`);
  const input = modelInputs[0]!;
  if (feedTypeOf(input) !== 'float32') fail('E_DATASET', `Model input '${name}' is ${input.type}; image folders feed float32.`);
  if (input.dims.length !== 4) fail('E_DATASET', `Model input '${name}' has shape ${fmtDims(input.dims)}; image folders feed 4-D [N,C,H,W] or [N,H,W,C] inputs.`);
  const listing = await listImageFolder(root, spec.classes);
  const d = input.dims;
  const nhwcGuess = (d[3] === 1 || d[3] === 3) && !(d[1] === 1 || d[1] === 3);
  const layout = spec.preprocess?.layout ?? (nhwcGuess ? 'NHWC' : 'NCHW');
  const [cDim, hDim, wDim] = layout === 'NCHW' ? [d[1], d[2], d[3]] : [d[3], d[1], d[2]];
  const channels = spec.preprocess?.channels ?? (cDim === 1 ? 'gray' : 'rgb');
  const c = channels === 'gray' ? 1 : 3;
  if (typeof cDim === 'number' && cDim !== c) {
    fail('E_DATASET', `Model input '${name}' ${fmtDims(d)} (${layout}) has ${cDim} channels but preprocess.channels "${channels}" gives ${c}.`);
  }
  const crop = spec.preprocess?.crop ?? (typeof hDim === 'number' && typeof wDim === 'number' ? ([hDim, wDim] as const) : undefined);
  if (crop === undefined) fail('E_DATASET', `Model input '${name}' ${fmtDims(d)} has a symbolic height/width: set "preprocess": {"crop": [H, W]}.`);
  if ((typeof hDim === 'number' && hDim !== crop[0]) || (typeof wDim === 'number' && wDim !== crop[1])) {
    fail('E_DATASET', `preprocess.crop [${crop.join(',')}] does not match model input '${name}' ${fmtDims(d)} (${layout}).`);
  }
  const pre = { ...makePreprocessOptions({ ...spec.preprocess, layout, channels }, true), crop };
  if (pre.mean.length !== 1 && pre.mean.length !== c) fail('E_DATASET', `preprocess.mean has ${pre.mean.length} values for ${c} channels.`);
  if (pre.std.length !== 1 && pre.std.length !== c) fail('E_DATASET', `preprocess.std has ${pre.std.length} values for ${c} channels.`);
  if (listing.labels && opts.numClasses !== undefined && listing.classNames!.length > opts.numClasses) {
    fail('E_DATASET', `Image folder '${root}' has ${listing.classNames!.length} classes but the model outputs ${opts.numClasses}.`);
  }
  const offset = spec.offset ?? 0;
  if (offset >= listing.files.length) fail('E_DATASET', `${spec.specFile ? `'${spec.specFile}': ` : ''}"offset" ${offset} skips all ${listing.files.length} images of '${root}'; use a smaller offset.`);
  const files = listing.files.slice(offset);
  const fileLabels = listing.labels?.subarray(offset);
  const count = Math.min(files.length, spec.limit ?? Infinity, opts.limit ?? Infinity);
  const sampleDims = layout === 'NCHW' ? [c, crop[0], crop[1]] : [crop[0], crop[1], c];
  const meta: DatasetMeta = {
    count,
    inputs: [{ name, type: 'float32', sampleDims, source: root }],
    hasLabels: listing.labels !== undefined,
    ...(listing.classNames ? { classNames: listing.classNames } : {}),
    description: `images ${root} (${count} of ${listing.files.length} files${offset ? ` from #${offset}` : ''}${listing.classNames ? `, ${listing.classNames.length} classes` : ''})`,
  };
  return new ImageDataset(meta, files, fileLabels, pre, spec.onUndecodable ?? 'skip');
}

/**
 * Data-free inputs. Sample `i` of every input is generated by `mulberry32(hash(seed, i, input))`,
 * so it does not depend on the batch size. Float inputs: i.i.d. N(mean, std²) or U[low, high);
 * integer inputs: uniform integers in [intLow, intHigh). No labels: score against the original
 * model's outputs.
 */
class SyntheticDataset implements Dataset {
  readonly stats = newStats();
  constructor(
    readonly meta: DatasetMeta,
    private readonly s: NonNullable<DatasetSpec['synthetic']>,
  ) {}

  async *batches(batchSize: number, options: BatchOptions = {}): AsyncIterable<Batch> {
    const s = this.s;
    for (let start = 0; start < this.meta.count; start += batchSize) {
      throwIfAborted(options.signal);
      const count = Math.min(batchSize, this.meta.count - start);
      const feeds: Record<string, FeedTensor> = {};
      this.meta.inputs.forEach((info, k) => {
        const per = info.sampleDims.reduce((a, b) => a * b, 1);
        const vals = new Float64Array(count * per);
        for (let i = 0; i < count; i++) {
          const rand = mulberry32((s.seed ^ Math.imul(start + i + 1, 0x9e3779b1) ^ Math.imul(k + 1, 0x85ebca6b)) >>> 0);
          const g = gaussian(rand);
          for (let j = 0; j < per; j++) {
            vals[i * per + j] = info.type.startsWith('float')
              ? s.distribution === 'normal'
                ? s.mean + s.std * g()
                : s.low + (s.high - s.low) * rand()
              : s.intLow + Math.floor(rand() * (s.intHigh - s.intLow));
          }
        }
        const dims = [count, ...info.sampleDims];
        feeds[info.name] =
          info.type === 'float32'
            ? { type: 'float32', dims, data: Float32Array.from(vals) }
            : info.type === 'float64'
              ? { type: 'float64', dims, data: vals }
              : { type: info.type, dims, data: castInts(Int32Array.from(vals), info.type) };
      });
      yield { feeds, start, count };
    }
  }
}

function openSynthetic(spec: DatasetSpec, modelInputs: readonly ModelInputSpec[], opts: OpenDatasetOptions): Dataset {
  const s = spec.synthetic!;
  const infos = modelInputs.map((input): DatasetInputInfo => {
    const given = s.dims[input.name];
    const rest = input.dims.slice(1);
    const sampleDims =
      given ?? (rest.every((x) => typeof x === 'number') ? (rest as number[]) : fail('E_DATASET', `Model input '${input.name}' ${fmtDims(input.dims)} has symbolic dimensions: give "synthetic": {"dims": {"${input.name}": [...]}}.`));
    if (given) fitSampleDims(given, input, `synthetic.dims.${input.name}`);
    return { name: input.name, type: feedTypeOf(input), sampleDims, source: 'synthetic' };
  });
  const count = Math.min(s.count, spec.limit ?? Infinity, opts.limit ?? Infinity);
  const dist = s.distribution === 'normal' ? `N(${s.mean}, ${s.std}²)` : `U[${s.low}, ${s.high})`;
  return new SyntheticDataset({ count, inputs: infos, hasLabels: false, description: `synthetic ${dist}, seed ${s.seed} (${count} samples)` }, s);
}

/**
 * Opens `spec` for a model with inputs `modelInputs`: validates everything that can be validated
 * before reading the data (mapping, shapes, dtypes, counts, labels) and returns the dataset.
 */
export async function openDataset(
  spec: DatasetSpec,
  modelInputs: readonly ModelInputSpec[],
  options: Partial<OpenDatasetOptions> = {},
): Promise<Dataset> {
  const opts: OpenDatasetOptions = { limit: undefined, numClasses: undefined, ...options };
  if (opts.limit !== undefined && (!Number.isSafeInteger(opts.limit) || opts.limit < 1)) {
    fail('E_BAD_ARGUMENT', `--limit must be a positive integer, got ${opts.limit}.`);
  }
  if (modelInputs.length === 0) fail('E_DATASET', 'The model has no inputs to feed.');
  switch (spec.format) {
    case 'npy':
    case 'npz':
    case 'idx':
      return openArrays(spec, modelInputs, opts);
    case 'images':
      return openImages(spec, modelInputs, opts);
    case 'synthetic':
      return openSynthetic(spec, modelInputs, opts);
  }
}
