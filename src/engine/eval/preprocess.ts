/**
 * Sample preprocessing shared by all readers: `y = (x · scale − mean[c]) / std[c]`, where `c` is the
 * channel of the element (axis 0 of a sample in NCHW layout, the last axis in NHWC).
 */
import { fail } from '../errors.js';
import type { NumArray } from './arraySource.js';

/** Memory layout of image-like samples. */
export type Layout =
  /** Channels first: a sample is `[C, H, W]` (PyTorch, most ONNX exports). */
  | 'NCHW'
  /** Channels last: a sample is `[H, W, C]` (TensorFlow / Keras exports). */
  | 'NHWC';

/** Preprocessing options (all optional in the dataset JSON; see `docs/datasets.md`). */
export interface PreprocessOptions {
  /** Multiplier applied first. Default 1 for arrays, 1/255 for images. */
  scale: number;
  /** Per-channel mean subtracted after scaling (one value = all channels). Default `[0]`. */
  mean: readonly number[];
  /** Per-channel divisor applied last; must be non-zero. Default `[1]`. */
  std: readonly number[];
  /** Layout of the model input. Default: NCHW unless the model input's last dimension is 1 or 3. */
  layout: Layout;
  /** Image channel order fed to the model: `'rgb'`, `'bgr'` or `'gray'` (1 channel). Images only. */
  channels: 'rgb' | 'bgr' | 'gray';
  /** Images: resize so the shorter side is this many pixels (then crop). Default: the crop size. */
  resize: number | undefined;
  /** Images: center crop `[height, width]`. Default: the model input's spatial size. */
  crop: readonly [number, number] | undefined;
}

/** Fills the defaults of {@link PreprocessOptions}; `forImages` selects the 1/255 scale default. */
export function makePreprocessOptions(
  partial: Partial<PreprocessOptions> | undefined,
  forImages: boolean,
): PreprocessOptions {
  const p: PreprocessOptions = {
    scale: forImages ? 1 / 255 : 1,
    mean: [0],
    std: [1],
    layout: 'NCHW',
    channels: 'rgb',
    resize: undefined,
    crop: undefined,
    ...partial,
  };
  if (p.std.some((s) => s === 0 || !Number.isFinite(s))) {
    fail('E_DATASET', `preprocess.std ${JSON.stringify(p.std)} contains a zero or non-finite value.`);
  }
  return p;
}

/**
 * Converts `count` samples of `sampleDims` from `src` into float32 with the normalisation of `p`.
 * `mean`/`std` of length 1 apply to every element; otherwise their length must equal the channel
 * dimension (`sampleDims[0]` for NCHW, the last for NHWC). `source` names the file for errors.
 */
export function normalizeToFloat32(
  src: NumArray,
  sampleDims: readonly number[],
  p: Pick<PreprocessOptions, 'scale' | 'mean' | 'std' | 'layout'>,
  source: string,
): Float32Array {
  const out = new Float32Array(src.length);
  const nc = Math.max(p.mean.length, p.std.length);
  if (nc === 1 || sampleDims.length === 0) {
    const m = p.mean[0] ?? 0;
    const s = p.std[0] ?? 1;
    const a = p.scale / s;
    const b = -m / s;
    if (typeof src[0] === 'bigint') {
      for (let i = 0; i < src.length; i++) out[i] = Number(src[i]) * a + b;
    } else {
      const s2 = src as Exclude<NumArray, BigInt64Array | BigUint64Array>;
      for (let i = 0; i < s2.length; i++) out[i] = s2[i]! * a + b;
    }
    return out;
  }
  const channels = p.layout === 'NCHW' ? sampleDims[0]! : sampleDims[sampleDims.length - 1]!;
  for (const [key, arr] of [
    ['mean', p.mean],
    ['std', p.std],
  ] as const) {
    if (arr.length !== 1 && arr.length !== channels) {
      fail(
        'E_DATASET',
        `preprocess.${key} has ${arr.length} values but '${source}' samples have ${channels} channels (${p.layout} shape [${sampleDims.join(',')}]). Give 1 or ${channels} values.`,
      );
    }
  }
  const a = Array.from({ length: channels }, (_, c) => p.scale / (p.std.length === 1 ? p.std[0]! : p.std[c]!));
  const b = Array.from(
    { length: channels },
    (_, c) => -(p.mean.length === 1 ? p.mean[0]! : p.mean[c]!) / (p.std.length === 1 ? p.std[0]! : p.std[c]!),
  );
  const per = sampleDims.reduce((x, y) => x * y, 1);
  const inner = p.layout === 'NCHW' ? per / channels : 1;
  const num = (i: number): number => Number(src[i]);
  for (let i = 0; i < src.length; i++) {
    const c = p.layout === 'NCHW' ? Math.floor((i % per) / inner) : i % channels;
    out[i] = num(i) * a[c]! + b[c]!;
  }
  return out;
}
