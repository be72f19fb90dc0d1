/**
 * Image folders: `root/<class>/*.{jpg,jpeg,png}` (labelled; class index = position of the folder
 * name in the sorted list, or in a classes file) and flat `root/*.{jpg,jpeg,png}` (unlabelled).
 * Decoding, resizing and cropping use sharp (libvips), which runs off the main thread; see
 * `docs/datasets.md` for the speed comparison with pure-JS decoders.
 */
import { readdir, readFile } from 'node:fs/promises';
import { join } from 'node:path';
import sharp from 'sharp';
import { fail } from '../errors.js';
import type { PreprocessOptions } from './preprocess.js';

/** File extensions read as images (case-insensitive). */
export const IMAGE_EXTENSIONS: readonly string[] = ['.jpg', '.jpeg', '.png'];

const isImage = (name: string): boolean => {
  const n = name.toLowerCase();
  return IMAGE_EXTENSIONS.some((e) => n.endsWith(e));
};

/** The files of an image folder, in a fixed order, with their labels when labelled. */
export interface ImageListing {
  readonly root: string;
  readonly files: readonly string[];
  /** Class index per file (labelled folders only). */
  readonly labels?: Int32Array;
  readonly classNames?: readonly string[];
}

/** Code-point order, like Python's `sorted()` (torchvision's `ImageFolder`). */
const byCodePoint = (a: string, b: string): number => (a < b ? -1 : a > b ? 1 : 0);

/**
 * Lists an image folder. With sub-folders it is labelled: classes are the sorted sub-folder names,
 * or, when `classes` is given, the order of that list (a `.txt` file with one name per line or a
 * JSON array). Sub-folders without images are ignored unless named in `classes`. A folder with
 * both images and class sub-folders, or with no images at all, is an error naming the folder.
 */
export async function listImageFolder(
  root: string,
  classes?: readonly string[] | string,
): Promise<ImageListing> {
  let entries;
  try {
    entries = await readdir(root, { withFileTypes: true });
  } catch (e) {
    fail('E_DATASET', `Image folder '${root}' does not exist or cannot be read.`, e);
  }
  const flat = entries.filter((e) => e.isFile() && isImage(e.name)).map((e) => e.name).sort(byCodePoint);
  const dirs = entries.filter((e) => e.isDirectory()).map((e) => e.name).sort(byCodePoint);
  const perDir = new Map<string, string[]>();
  for (const d of dirs) {
    const files = (await readdir(join(root, d), { withFileTypes: true }))
      .filter((e) => e.isFile() && isImage(e.name))
      .map((e) => join(root, d, e.name))
      .sort(byCodePoint);
    if (files.length > 0) perDir.set(d, files);
  }
  if (flat.length > 0 && perDir.size > 0) {
    fail(
      'E_DATASET',
      `Image folder '${root}' has both images (${flat[0]}...) and class folders (${[...perDir.keys()][0]}...). Use one layout: root/<class>/*.jpg or root/*.jpg.`,
    );
  }
  if (perDir.size === 0) {
    if (flat.length === 0) {
      fail(
        'E_DATASET',
        `Image folder '${root}' contains no ${IMAGE_EXTENSIONS.join('/')} files, neither directly nor in class sub-folders.`,
      );
    }
    return { root, files: flat.map((f) => join(root, f)) };
  }
  let classNames: string[];
  if (classes === undefined) {
    classNames = [...perDir.keys()];
  } else if (typeof classes === 'string') {
    const text = await readFile(classes, 'utf8').catch((e: unknown) =>
      fail('E_DATASET', `Classes file '${classes}' does not exist or cannot be read.`, e),
    );
    classNames = text.trim().startsWith('[')
      ? (JSON.parse(text) as string[])
      : text.split(/\r?\n/).map((s) => s.trim()).filter((s) => s.length > 0);
  } else {
    classNames = [...classes];
  }
  const index = new Map(classNames.map((n, i) => [n, i]));
  const files: string[] = [];
  const labels: number[] = [];
  for (const [d, list] of perDir) {
    const k = index.get(d);
    if (k === undefined) {
      fail(
        'E_DATASET',
        `Class folder '${join(root, d)}' is not in the classes list${typeof classes === 'string' ? ` '${classes}'` : ''} (${classNames.length} names). Add it or remove the folder.`,
      );
    }
    for (const f of list) {
      files.push(f);
      labels.push(k);
    }
  }
  return { root, files, labels: Int32Array.from(labels), classNames };
}

/**
 * Decodes one image and returns it preprocessed as float32 of shape `[C, H, W]` (NCHW) or
 * `[H, W, C]` (NHWC): shorter side resized to `resize` (libvips default kernel,
 * Lanczos-3 for downscaling), center crop `crop`, channel order `channels`, then
 * `(x · scale − mean[c]) / std[c]`. Alpha is dropped; grayscale uses libvips' sRGB → b-w (Rec. 601
 * luma). Throws the decoder's error for undecodable files (the caller counts or rethrows).
 */
export async function decodeImage(
  file: string,
  p: PreprocessOptions & { crop: readonly [number, number] },
): Promise<Float32Array> {
  const [ch, cw] = p.crop;
  const shorter = p.resize ?? Math.max(ch, cw);
  let img = sharp(file, { failOn: 'error' }).rotate().removeAlpha();
  if (p.channels === 'gray') img = img.grayscale();
  else img = img.toColourspace('srgb');
  const meta = await sharp(file, { failOn: 'error' }).rotate().metadata();
  const w0 = meta.autoOrient?.width ?? meta.width;
  const h0 = meta.autoOrient?.height ?? meta.height;
  if (!w0 || !h0) throw new Error('image has no size');
  const s = shorter / Math.min(w0, h0);
  const w1 = Math.max(cw, Math.round(w0 * s));
  const h1 = Math.max(ch, Math.round(h0 * s));
  if (w1 !== w0 || h1 !== h0) img = img.resize(w1, h1, { fit: 'fill' });
  img = img.extract({ left: (w1 - cw) >> 1, top: (h1 - ch) >> 1, width: cw, height: ch });
  const { data, info } = await img.raw().toBuffer({ resolveWithObject: true });
  const c = p.channels === 'gray' ? 1 : 3;
  if (info.channels !== c) throw new Error(`decoded to ${info.channels} channels, expected ${c}`);
  const mean = (k: number): number => (p.mean.length === 1 ? p.mean[0]! : p.mean[k]!);
  const std = (k: number): number => (p.std.length === 1 ? p.std[0]! : p.std[k]!);
  const a = Array.from({ length: c }, (_, k) => p.scale / std(k));
  const b = Array.from({ length: c }, (_, k) => -mean(k) / std(k));
  const out = new Float32Array(c * ch * cw);
  const hw = ch * cw;
  for (let i = 0; i < hw; i++) {
    for (let k = 0; k < c; k++) {
      // sharp gives RGB; BGR models read the channels reversed.
      const srcK = p.channels === 'bgr' ? 2 - k : k;
      const v = data[i * c + srcK]! * a[k]! + b[k]!;
      if (p.layout === 'NCHW') out[k * hw + i] = v;
      else out[i * c + k] = v;
    }
  }
  return out;
}
