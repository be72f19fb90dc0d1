import { strict as assert } from 'node:assert';
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import sharp from 'sharp';
import { openDataset } from '../../../src/engine/eval/dataset';
import { parseDatasetSpec } from '../../../src/engine/eval/datasetSpec';
import type { Batch, Dataset, ModelInputSpec } from '../../../src/engine/eval/types';
import { rejectsWith, tempDir } from './helpers';

async function solid(file: string, w: number, h: number, rgb: [number, number, number]): Promise<void> {
  const img = sharp({ create: { width: w, height: h, channels: 3, background: { r: rgb[0], g: rgb[1], b: rgb[2] } } });
  await (file.endsWith('.png') ? img.png() : img.jpeg({ quality: 95 })).toFile(file);
}

async function all(ds: Dataset, bs: number): Promise<Batch[]> {
  const out: Batch[] = [];
  for await (const b of ds.batches(bs)) out.push(b);
  return out;
}

const RGB: ModelInputSpec[] = [{ name: 'img', dims: ['N', 3, 2, 2], type: 'float32' }];
const spec = (root: string, extra: object = {}) => parseDatasetSpec({ format: 'images', inputs: root, ...extra }, '/');

describe('eval/images', () => {
  let root: string;
  before(async () => {
    root = tempDir();
    for (const c of ['zebra', 'ant']) mkdirSync(join(root, c));
    await solid(join(root, 'ant', 'a1.png'), 6, 4, [10, 100, 200]);
    await solid(join(root, 'ant', 'a2.png'), 3, 3, [10, 100, 200]);
    await solid(join(root, 'zebra', 'z1.png'), 4, 8, [255, 0, 50]);
    await solid(join(root, 'zebra', 'z2.jpg'), 5, 5, [255, 0, 50]);
  });

  it('labels class folders in sorted order and normalises exactly (PNG, NCHW, RGB)', async () => {
    const ds = await openDataset(spec(root, { preprocess: { mean: [0.5], std: [0.25] } }), RGB, { numClasses: 10 });
    assert.deepEqual(ds.meta.classNames, ['ant', 'zebra']);
    const [b] = await all(ds, 10);
    assert.equal(b!.count, 4);
    assert.deepEqual(Array.from(b!.labels!), [0, 0, 1, 1]);
    const d = b!.feeds['img']!.data as Float32Array;
    const norm = (v: number) => (v / 255 - 0.5) / 0.25;
    const want0 = [10, 10, 10, 10, 100, 100, 100, 100, 200, 200, 200, 200].map(norm);
    Array.from(d.subarray(0, 12)).forEach((v, i) => assert.ok(Math.abs(v - want0[i]!) < 1e-5, `${i}: ${v} vs ${want0[i]}`));
    // JPEG is lossy: within a few levels
    const jpg = Array.from(d.subarray(36, 48));
    [255, 0, 50].forEach((c, k) => assert.ok(Math.abs(jpg[k * 4]! - norm(c)) < (6 / 255) / 0.25, `jpeg channel ${k}`));
  });

  it('orders BGR and NHWC as asked, and uses a classes file', async () => {
    const nhwc: ModelInputSpec[] = [{ name: 'img', dims: ['N', 2, 2, 3], type: 'float32' }];
    const classes = join(tempDir(), 'classes.txt');
    writeFileSync(classes, 'zebra\nant\n');
    const ds = await openDataset(spec(root, { classes, preprocess: { channels: 'bgr', scale: 1 } }), nhwc);
    assert.equal(ds.meta.inputs[0]!.sampleDims.join(), '2,2,3');
    const [b] = await all(ds, 1);
    assert.deepEqual(Array.from(b!.feeds['img']!.data as Float32Array), [200, 100, 10, 200, 100, 10, 200, 100, 10, 200, 100, 10]);
    assert.equal(b!.labels![0], 1);
    await rejectsWith(openDataset(spec(root, { classes: ['ant'] }), RGB), 'E_DATASET', 'zebra', 'not in the classes list');
  });

  it('resizes the shorter side, then center-crops, and makes grayscale', async () => {
    const dir = tempDir();
    // 4×2 image: columns 0,1 black, 2,3 white; the central 2×2 crop is [black, white]
    const px = Buffer.alloc(4 * 2 * 3);
    for (let y = 0; y < 2; y++) for (let x = 2; x < 4; x++) px.fill(255, (y * 4 + x) * 3, (y * 4 + x) * 3 + 3);
    await sharp(px, { raw: { width: 4, height: 2, channels: 3 } }).png().toFile(join(dir, 'half.png'));
    await solid(join(dir, 'gray.png'), 8, 8, [77, 77, 77]);
    const gray: ModelInputSpec[] = [{ name: 'g', dims: ['N', 1, 2, 2], type: 'float32' }];
    const ds = await openDataset(spec(dir, { preprocess: { scale: 1 } }), gray);
    assert.equal(ds.meta.hasLabels, false);
    const [b] = await all(ds, 2);
    const d = Array.from(b!.feeds['g']!.data as Float32Array);
    assert.deepEqual(d.slice(0, 4), [77, 77, 77, 77]); // gray.png sorts first
    assert.deepEqual(d.slice(4), [0, 255, 0, 255]);
  });

  it('skips undecodable images with a count, or fails naming the file', async () => {
    const dir = tempDir();
    await solid(join(dir, 'a.png'), 2, 2, [1, 2, 3]);
    writeFileSync(join(dir, 'b.jpg'), 'not a jpeg');
    await solid(join(dir, 'c.png'), 2, 2, [1, 2, 3]);
    const ds = await openDataset(spec(dir), RGB);
    const bs = await all(ds, 2);
    assert.deepEqual(bs.map((b) => b.count), [2]);
    assert.equal(ds.stats.skipped, 1);
    assert.equal(ds.stats.skippedFiles[0], join(dir, 'b.jpg'));
    const strict = await openDataset(spec(dir, { onUndecodable: 'fail' }), RGB);
    await rejectsWith(all(strict, 2), 'E_DATASET', 'b.jpg', 'cannot be decoded');
  });

  it('rejects empty folders, channel mismatches and too many classes', async () => {
    const empty = tempDir();
    mkdirSync(join(empty, 'cls'));
    await rejectsWith(openDataset(spec(empty), RGB), 'E_DATASET', empty, 'no .jpg');
    const one: ModelInputSpec[] = [{ name: 'img', dims: ['N', 1, 2, 2], type: 'float32' }];
    await rejectsWith(openDataset(spec(root, { preprocess: { channels: 'rgb' } }), one), 'E_DATASET', "'img'", '1 channels');
    await rejectsWith(openDataset(spec(root), RGB, { numClasses: 1 }), 'E_DATASET', root, '2 classes');
  });
});
