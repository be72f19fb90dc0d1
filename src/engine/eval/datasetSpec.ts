/**
 * The dataset description file (`--data FILE.json`): parsing and validation. The schema is
 * documented in `docs/datasets.md`; every problem is a `CompressError('E_DATASET')` naming the file
 * and the key.
 */
import { readFile, stat } from 'node:fs/promises';
import { dirname, isAbsolute, resolve } from 'node:path';
import { fail } from '../errors.js';
import type { PreprocessOptions } from './preprocess.js';

/** Dataset kinds. */
export type DatasetFormat =
  /** One `.npy` file per model input (+ optional labels `.npy`). */
  | 'npy'
  /** One `.npz` archive; `inputs` / `labels` name arrays inside it. */
  | 'npz'
  /** IDX files (MNIST format, optionally gzipped), one per input (+ optional labels). */
  | 'idx'
  /** An image folder (`root/<class>/*.jpg` or flat `root/*.jpg`). */
  | 'images'
  /** No data: seeded synthetic inputs scored against the original model's outputs. */
  | 'synthetic';

/** Synthetic (data-free) input options. */
export interface SyntheticSpec {
  /** Number of samples. Default 256. */
  readonly count: number;
  /** Seed of the generator (sample `i` depends only on `seed` and `i`). Default 0. */
  readonly seed: number;
  /** Float inputs: `'normal'` N(mean, std²) (default N(0, 1)) or `'uniform'` U[low, high) (default U[0, 1)). */
  readonly distribution: 'normal' | 'uniform';
  readonly mean: number;
  readonly std: number;
  readonly low: number;
  readonly high: number;
  /** Integer inputs: uniform integers in [intLow, intHigh). Default [0, 2). */
  readonly intLow: number;
  readonly intHigh: number;
  /** Per-sample shapes for inputs whose non-batch dimensions are symbolic. */
  readonly dims: Readonly<Record<string, readonly number[]>>;
}

/** A validated dataset description with absolute paths. */
export interface DatasetSpec {
  readonly format: DatasetFormat;
  /** The JSON file this came from, when there is one (for messages). */
  readonly specFile?: string;
  /**
   * Data per input: one path (or npz key) for a single-input model, or a map from model input name
   * to path (or npz key). Absent for `synthetic`, and for `npz` when array names equal input names.
   */
  readonly inputs?: string | Readonly<Record<string, string>>;
  /** `npz` only: the archive. */
  readonly file?: string;
  /** Labels: a path (`npy`, `idx`) or an array name (`npz`). */
  readonly labels?: string;
  /** `images` only: class order (a `.txt`/`.json` path or the names). */
  readonly classes?: string | readonly string[];
  readonly preprocess?: Partial<PreprocessOptions>;
  /** `images` only: skip undecodable files (counted) or fail on the first. Default `'skip'`. */
  readonly onUndecodable?: 'skip' | 'fail';
  /** Evaluate only the first N samples (after `offset`). */
  readonly limit?: number;
  /** Skip the first N samples (array and image formats), e.g. to split one file into search and held-out parts. */
  readonly offset?: number;
  readonly synthetic?: SyntheticSpec;
}

const TOP_KEYS = ['format', 'inputs', 'file', 'labels', 'classes', 'preprocess', 'onUndecodable', 'limit', 'offset', 'synthetic', '$schema', 'description'];
const PRE_KEYS = ['scale', 'mean', 'std', 'layout', 'channels', 'resize', 'crop'];
const SYN_KEYS = ['count', 'seed', 'distribution', 'mean', 'std', 'low', 'high', 'intLow', 'intHigh', 'dims'];

/** Default {@link SyntheticSpec}. */
export function makeSyntheticSpec(partial?: Partial<SyntheticSpec>): SyntheticSpec {
  return {
    count: 256,
    seed: 0,
    distribution: 'normal',
    mean: 0,
    std: 1,
    low: 0,
    high: 1,
    intLow: 0,
    intHigh: 2,
    dims: {},
    ...partial,
  };
}

function closest(word: string, options: readonly string[]): string {
  const near = options.find((o) => o.toLowerCase() === word.toLowerCase() || o.startsWith(word.slice(0, 3)));
  return near === undefined ? `known keys: ${options.filter((o) => o[0] !== '$').join(', ')}` : `did you mean '${near}'?`;
}

/**
 * Validates a parsed dataset JSON object. Relative paths resolve against `baseDir` (the JSON
 * file's folder). `file` names the JSON file in messages. Does not touch the disk.
 */
export function parseDatasetSpec(json: unknown, baseDir: string, file = '<dataset>'): DatasetSpec {
  const bad = (msg: string): never => fail('E_DATASET', `Dataset file '${file}': ${msg}`);
  if (typeof json !== 'object' || json === null || Array.isArray(json)) bad('expected a JSON object.');
  const o = json as Record<string, unknown>;
  for (const k of Object.keys(o)) if (!TOP_KEYS.includes(k)) bad(`unknown key '${k}' (${closest(k, TOP_KEYS)}).`);
  const formats: DatasetFormat[] = ['npy', 'npz', 'idx', 'images', 'synthetic'];
  const format = o['format'];
  if (typeof format !== 'string' || !formats.includes(format as DatasetFormat)) {
    bad(`"format" is ${JSON.stringify(format)}; expected one of ${formats.map((f) => `"${f}"`).join(', ')}.`);
  }
  const fmt = format as DatasetFormat;
  const path = (p: string): string => (isAbsolute(p) ? p : resolve(baseDir, p));
  const inNpz = fmt === 'npz';
  const str = (key: string, v: unknown): string =>
    typeof v === 'string' && v.length > 0 ? v : bad(`"${key}" must be a non-empty string, got ${JSON.stringify(v)}.`);
  const spec: { -readonly [K in keyof DatasetSpec]: DatasetSpec[K] } = { format: fmt, specFile: file };

  if (o['inputs'] !== undefined) {
    const v = o['inputs'];
    if (typeof v === 'string') spec.inputs = inNpz ? v : path(str('inputs', v));
    else if (typeof v === 'object' && v !== null && !Array.isArray(v)) {
      const m: Record<string, string> = {};
      for (const [k, p] of Object.entries(v)) m[k] = inNpz ? str(`inputs.${k}`, p) : path(str(`inputs.${k}`, p));
      if (Object.keys(m).length === 0) bad('"inputs" is an empty object.');
      spec.inputs = m;
    } else bad(`"inputs" must be a path or an object {inputName: path}, got ${JSON.stringify(v)}.`);
  } else if (fmt !== 'synthetic' && fmt !== 'npz') {
    bad(`"inputs" is missing: give the ${fmt === 'images' ? 'image folder' : 'data file'} (path relative to this file).`);
  }
  if (fmt === 'synthetic' && o['inputs'] !== undefined) bad('"inputs" makes no sense with format "synthetic".');
  if (o['file'] !== undefined) {
    if (!inNpz) bad('"file" is only used with format "npz" (use "inputs" for the data files).');
    spec.file = path(str('file', o['file']));
  } else if (inNpz) bad('"file" is missing: give the .npz archive.');
  if (o['labels'] !== undefined) {
    if (fmt === 'images' || fmt === 'synthetic') bad(`"labels" is not used with format "${fmt}"${fmt === 'images' ? ' (class folders are the labels; see "classes")' : ''}.`);
    spec.labels = inNpz ? str('labels', o['labels']) : path(str('labels', o['labels']));
  }
  if (o['classes'] !== undefined) {
    if (fmt !== 'images') bad('"classes" is only used with format "images".');
    const c = o['classes'];
    if (typeof c === 'string') spec.classes = path(c);
    else if (Array.isArray(c) && c.every((x) => typeof x === 'string')) spec.classes = c as string[];
    else bad('"classes" must be a file (.txt, one name per line, or .json array) or an array of folder names.');
  }
  if (o['onUndecodable'] !== undefined) {
    const v = o['onUndecodable'];
    if (v !== 'skip' && v !== 'fail') bad(`"onUndecodable" is ${JSON.stringify(v)}; expected "skip" or "fail".`);
    spec.onUndecodable = v as 'skip' | 'fail';
  }
  if (o['limit'] !== undefined) {
    const v = o['limit'];
    if (typeof v !== 'number' || !Number.isSafeInteger(v) || v < 1) bad(`"limit" must be a positive integer, got ${JSON.stringify(v)}.`);
    spec.limit = v as number;
  }
  if (o['offset'] !== undefined) {
    const v = o['offset'];
    if (typeof v !== 'number' || !Number.isSafeInteger(v) || v < 0) bad(`"offset" must be a non-negative integer, got ${JSON.stringify(v)}.`);
    if (fmt === 'synthetic') bad('"offset" is not used with format "synthetic" (change "synthetic.seed" for other samples).');
    spec.offset = v as number;
  }
  if (o['preprocess'] !== undefined) spec.preprocess = parsePreprocess(o['preprocess'], bad);
  if (o['synthetic'] !== undefined || fmt === 'synthetic') {
    if (fmt !== 'synthetic') bad('"synthetic" is only used with format "synthetic".');
    spec.synthetic = parseSynthetic(o['synthetic'] ?? {}, bad);
  }
  return spec;
}

function parsePreprocess(v: unknown, bad: (m: string) => never): Partial<PreprocessOptions> {
  if (typeof v !== 'object' || v === null || Array.isArray(v)) bad('"preprocess" must be an object.');
  const o = v as Record<string, unknown>;
  const out: { -readonly [K in keyof PreprocessOptions]?: PreprocessOptions[K] } = {};
  for (const k of Object.keys(o)) if (!PRE_KEYS.includes(k)) bad(`unknown key 'preprocess.${k}' (${closest(k, PRE_KEYS)}).`);
  const num = (k: string): number => {
    const x = o[k];
    return typeof x === 'number' && Number.isFinite(x) ? x : bad(`"preprocess.${k}" must be a number, got ${JSON.stringify(x)}.`);
  };
  const nums = (k: string): number[] => {
    const x = o[k];
    if (typeof x === 'number') return [x];
    if (Array.isArray(x) && x.length > 0 && x.every((e) => typeof e === 'number' && Number.isFinite(e))) return x as number[];
    return bad(`"preprocess.${k}" must be a number or a non-empty array of numbers, got ${JSON.stringify(x)}.`);
  };
  if (o['scale'] !== undefined) out.scale = num('scale');
  if (o['mean'] !== undefined) out.mean = nums('mean');
  if (o['std'] !== undefined) {
    out.std = nums('std');
    if (out.std.some((s) => s === 0)) bad(`"preprocess.std" ${JSON.stringify(o['std'])} contains 0.`);
  }
  if (o['layout'] !== undefined) {
    if (o['layout'] !== 'NCHW' && o['layout'] !== 'NHWC') bad(`"preprocess.layout" is ${JSON.stringify(o['layout'])}; expected "NCHW" or "NHWC".`);
    out.layout = o['layout'];
  }
  if (o['channels'] !== undefined) {
    const c = o['channels'];
    if (c !== 'rgb' && c !== 'bgr' && c !== 'gray') bad(`"preprocess.channels" is ${JSON.stringify(c)}; expected "rgb", "bgr" or "gray".`);
    out.channels = c;
  }
  if (o['resize'] !== undefined) {
    const r = num('resize');
    if (!Number.isInteger(r) || r < 1) bad(`"preprocess.resize" must be a positive integer (shorter side in pixels), got ${r}.`);
    out.resize = r;
  }
  if (o['crop'] !== undefined) {
    const c = nums('crop');
    if (c.length > 2 || c.some((x) => !Number.isInteger(x) || x < 1)) bad(`"preprocess.crop" must be a size or [height, width] in pixels, got ${JSON.stringify(o['crop'])}.`);
    out.crop = [c[0]!, c[1] ?? c[0]!];
  }
  return out;
}

function parseSynthetic(v: unknown, bad: (m: string) => never): SyntheticSpec {
  if (typeof v !== 'object' || v === null || Array.isArray(v)) bad('"synthetic" must be an object.');
  const o = v as Record<string, unknown>;
  for (const k of Object.keys(o)) if (!SYN_KEYS.includes(k)) bad(`unknown key 'synthetic.${k}' (${closest(k, SYN_KEYS)}).`);
  const partial: Record<string, unknown> = {};
  for (const k of ['count', 'seed', 'mean', 'std', 'low', 'high', 'intLow', 'intHigh']) {
    if (o[k] === undefined) continue;
    if (typeof o[k] !== 'number' || !Number.isFinite(o[k])) bad(`"synthetic.${k}" must be a number, got ${JSON.stringify(o[k])}.`);
    partial[k] = o[k];
  }
  if (o['distribution'] !== undefined) {
    if (o['distribution'] !== 'normal' && o['distribution'] !== 'uniform') bad(`"synthetic.distribution" is ${JSON.stringify(o['distribution'])}; expected "normal" or "uniform".`);
    partial['distribution'] = o['distribution'];
  }
  if (o['dims'] !== undefined) {
    const d = o['dims'];
    if (typeof d !== 'object' || d === null || Array.isArray(d) || !Object.values(d).every((a) => Array.isArray(a) && a.every((x) => Number.isInteger(x) && x > 0))) {
      bad('"synthetic.dims" must map input names to per-sample shapes, e.g. {"input": [3, 224, 224]}.');
    }
    partial['dims'] = d;
  }
  const s = makeSyntheticSpec(partial as Partial<SyntheticSpec>);
  if (!Number.isSafeInteger(s.count) || s.count < 1) bad(`"synthetic.count" must be a positive integer, got ${s.count}.`);
  if (s.intHigh <= s.intLow) bad(`"synthetic.intHigh" (${s.intHigh}) must exceed "synthetic.intLow" (${s.intLow}).`);
  return s;
}

/** Reads and validates a dataset JSON file; then checks that every file it names exists. */
export async function loadDatasetSpec(jsonPath: string): Promise<DatasetSpec> {
  let text: string;
  try {
    text = await readFile(jsonPath, 'utf8');
  } catch (e) {
    fail('E_DATASET', `Dataset file '${jsonPath}' does not exist or cannot be read.`, e);
  }
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch (e) {
    fail('E_DATASET', `Dataset file '${jsonPath}' is not valid JSON: ${(e as Error).message}.`, e);
  }
  const spec = parseDatasetSpec(json, dirname(resolve(jsonPath)), jsonPath);
  const paths: string[] = [];
  if (spec.format !== 'npz') {
    if (typeof spec.inputs === 'string') paths.push(spec.inputs);
    else if (spec.inputs) paths.push(...Object.values(spec.inputs));
    if (spec.labels) paths.push(spec.labels);
  }
  if (spec.file) paths.push(spec.file);
  if (typeof spec.classes === 'string') paths.push(spec.classes);
  for (const p of paths) {
    try {
      await stat(p);
    } catch {
      fail('E_DATASET', `Dataset file '${jsonPath}' names '${p}', which does not exist.`);
    }
  }
  return spec;
}

/**
 * Builds a spec from `--data PATH [--labels PATH]`: `.npy` → npy, `.npz` → npz, a folder → images,
 * `.json` → {@link loadDatasetSpec}, anything else (`.idx`, `-ubyte`, `.gz`) → idx.
 */
export async function datasetSpecFromArgs(data: string, labels?: string): Promise<DatasetSpec> {
  if (/\.json$/i.test(data)) {
    if (labels !== undefined) fail('E_DATASET', `--labels '${labels}' cannot be combined with a dataset file '${data}'; put "labels" in the JSON.`);
    return loadDatasetSpec(data);
  }
  const st = await stat(data).catch((e: unknown) => fail('E_DATASET', `Data path '${data}' does not exist.`, e));
  const abs = resolve(data);
  const lab = labels === undefined ? undefined : resolve(labels);
  if (lab !== undefined) await stat(lab).catch((e: unknown) => fail('E_DATASET', `Labels file '${labels}' does not exist.`, e));
  if (st.isDirectory()) {
    if (lab !== undefined) fail('E_DATASET', `--labels is not used with the image folder '${data}': class folders are the labels.`);
    return { format: 'images', inputs: abs };
  }
  if (/\.npz$/i.test(data)) {
    if (lab !== undefined) fail('E_DATASET', `--labels '${labels}' cannot be used with the archive '${data}'; name the labels array in a dataset JSON.`);
    return { format: 'npz', file: abs };
  }
  const format = /\.npy$/i.test(data) ? 'npy' : 'idx';
  return lab === undefined ? { format, inputs: abs } : { format, inputs: abs, labels: lab };
}
