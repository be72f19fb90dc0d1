import { strict as assert } from 'node:assert';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { openNpy } from '../../../src/engine/eval/arraySource';
import { openDataset } from '../../../src/engine/eval/dataset';
import { datasetSpecFromArgs, loadDatasetSpec, parseDatasetSpec, type DatasetSpec } from '../../../src/engine/eval/datasetSpec';
import type { Batch, Dataset, ModelInputSpec } from '../../../src/engine/eval/types';
import { DATA, list, rejectsWith, tempDir } from './helpers';

const f = (n: string) => join(DATA, n);
const MODEL: ModelInputSpec[] = [{ name: 'input', dims: ['N', 1, 4, 4], type: 'float32' }];

async function all(ds: Dataset, bs: number): Promise<Batch[]> {
  const out: Batch[] = [];
  for await (const b of ds.batches(bs)) out.push(b);
  return out;
}

describe('eval/dataset', () => {
  it('feeds npy data with labels, applying (x·scale − mean) / std, in batches', async () => {
    const spec: DatasetSpec = { format: 'npy', inputs: f('u1.npy'), labels: f('labels.npy'), preprocess: { scale: 0.5, mean: [3], std: [2] } };
    const ds = await openDataset(spec, MODEL, { numClasses: 10 });
    assert.equal(ds.meta.count, 6);
    assert.ok(ds.meta.hasLabels);
    const raw = list(await (await openNpy(f('u1.npy'))).readRows(0, 6));
    const batches = await all(ds, 4);
    assert.deepEqual(batches.map((b) => [b.start, b.count]), [[0, 4], [4, 2]]);
    assert.deepEqual(batches[1]!.feeds['input']!.dims, [2, 1, 4, 4]);
    const got = [...batches.flatMap((b) => Array.from(b.feeds['input']!.data as Float32Array))];
    got.forEach((v, i) => assert.ok(Math.abs(v - (raw[i]! * 0.5 - 3) / 2) < 1e-5));
    assert.deepEqual(batches.flatMap((b) => Array.from(b.labels!)), [0, 1, 2, 3, 4, 5]);
  });

  it('skips the first "offset" samples of inputs and labels, and refuses an offset past the end', async () => {
    const base: DatasetSpec = { format: 'npy', inputs: f('u1.npy'), labels: f('labels.npy') };
    const whole = await all(await openDataset(base, MODEL, { numClasses: 10 }), 6);
    const part = await openDataset({ ...base, offset: 2, limit: 3 }, MODEL, { numClasses: 10 });
    assert.equal(part.meta.count, 3);
    const got = await all(part, 2);
    assert.deepEqual(got.map((b) => [b.start, b.count]), [[0, 2], [2, 1]]);
    const wholeData = Array.from(whole[0]!.feeds['input']!.data as Float32Array);
    assert.deepEqual(got.flatMap((b) => Array.from(b.feeds['input']!.data as Float32Array)), wholeData.slice(2 * 16, 5 * 16));
    assert.deepEqual(got.flatMap((b) => Array.from(b.labels!)), [2, 3, 4]);
    assert.equal((await openDataset({ ...base, offset: 4 }, MODEL, { numClasses: 10 })).meta.count, 2);
    await rejectsWith(openDataset({ ...base, offset: 6 }, MODEL), 'E_DATASET', '"offset" 6 skips all 6 samples', 'u1.npy');
    await rejectsWith(() => parseDatasetSpec({ format: 'npy', inputs: 'a.npy', offset: -1 }, '/x', '/x/d.json'), 'E_DATASET', '"offset" must be a non-negative integer', 'd.json');
  });

  it('applies per-channel mean/std on the channel axis (NCHW and NHWC)', async () => {
    const model: ModelInputSpec[] = [{ name: 'x', dims: ['N', 2, 2, 4], type: 'float32' }];
    const dir = tempDir();
    const hdr = "{'descr': '|u1', 'fortran_order': False, 'shape': (1, 2, 2, 4), }";
    const pad = hdr + ' '.repeat(63 - ((10 + hdr.length) % 64)) + '\n';
    const h = Buffer.from([0x93, 0x4e, 0x55, 0x4d, 0x50, 0x59, 1, 0, pad.length & 255, pad.length >> 8]);
    writeFileSync(join(dir, 'c.npy'), Buffer.concat([h, Buffer.from(pad, 'latin1'), Buffer.from(Array.from({ length: 16 }, () => 10))]));
    const nchw = await openDataset({ format: 'npy', inputs: join(dir, 'c.npy'), preprocess: { mean: [0, 10], std: [1, 5] } }, model);
    const a = Array.from((await all(nchw, 1))[0]!.feeds['x']!.data as Float32Array);
    assert.deepEqual(a, [...Array(8).fill(10), ...Array(8).fill(0)]);
    const m2: ModelInputSpec[] = [{ name: 'x', dims: ['N', 2, 2, 4], type: 'float32' }];
    const nhwc = await openDataset({ format: 'npy', inputs: join(dir, 'c.npy'), preprocess: { layout: 'NHWC', mean: [0, 0, 0, 10], std: [1, 1, 1, 5] } }, m2);
    const b = Array.from((await all(nhwc, 1))[0]!.feeds['x']!.data as Float32Array);
    assert.deepEqual(b, [10, 10, 10, 0, 10, 10, 10, 0, 10, 10, 10, 0, 10, 10, 10, 0]);
    await rejectsWith(openDataset({ format: 'npy', inputs: join(dir, 'c.npy'), preprocess: { mean: [0, 1, 2] } }, model).then((d) => all(d, 1)), 'E_DATASET', 'c.npy', '3 values', '2 channels');
  });

  it('feeds IDX [N,4,4] to a [N,1,4,4] input (size-1 dims may differ) and npz by name', async () => {
    const dir = tempDir();
    const head = Buffer.from([0, 0, 0x08, 3, 0, 0, 0, 2, 0, 0, 0, 4, 0, 0, 0, 4]);
    writeFileSync(join(dir, 'x.idx'), Buffer.concat([head, Buffer.alloc(32, 7)]));
    const ds = await openDataset({ format: 'idx', inputs: join(dir, 'x.idx') }, MODEL);
    const [b] = await all(ds, 8);
    assert.deepEqual(b!.feeds['input']!.dims, [2, 1, 4, 4]);
    const npz = await openDataset({ format: 'npz', file: f('deflated.npz') }, MODEL, { numClasses: 10, limit: 5 });
    assert.equal(npz.meta.count, 5);
    assert.ok(npz.meta.hasLabels);
  });

  it('says which dimension does not fit and rejects float data for integer inputs', async () => {
    const m: ModelInputSpec[] = [{ name: 'input', dims: ['N', 1, 5, 4], type: 'float32' }];
    await rejectsWith(openDataset({ format: 'npy', inputs: f('f4.npy') }, m), 'E_DATASET', 'f4.npy', "'input'", 'dimension 2 is 4, expected 5');
    const m3: ModelInputSpec[] = [{ name: 'input', dims: ['N', 16], type: 'float32' }];
    await rejectsWith(openDataset({ format: 'npy', inputs: f('f4.npy') }, m3), 'E_DATASET', 'f4.npy', 'dimensions');
    const mi: ModelInputSpec[] = [{ name: 'input', dims: ['N', 1, 4, 4], type: 'int64' }];
    await rejectsWith(openDataset({ format: 'npy', inputs: f('f4.npy') }, mi), 'E_DATASET', 'f4.npy', 'float32', 'int64');
    const ints = await openDataset({ format: 'npy', inputs: f('i8.npy') }, mi);
    assert.equal((await all(ints, 6))[0]!.feeds['input']!.data.constructor, BigInt64Array);
  });

  it('rejects bad labels and mismatched counts, naming the file', async () => {
    await rejectsWith(openDataset({ format: 'npy', inputs: f('u1.npy'), labels: f('labels-bad.npy') }, MODEL, { numClasses: 10 }), 'E_DATASET', 'labels-bad.npy', '12', 'index 5');
    await rejectsWith(openDataset({ format: 'npy', inputs: f('u1.npy'), labels: f('labels-5.npy') }, MODEL), 'E_DATASET', 'labels-5.npy', '5 entries', '6 samples');
    await rejectsWith(openDataset({ format: 'npy', inputs: f('u1.npy'), labels: f('labels-float.npy') }, MODEL), 'E_DATASET', 'labels-float.npy', 'float32');
    const two: ModelInputSpec[] = [MODEL[0]!, { name: 'mask', dims: ['N', 1, 4, 4], type: 'float32' }];
    await rejectsWith(openDataset({ format: 'npy', inputs: f('u1.npy') }, two), 'E_DATASET', 'input, mask');
    await rejectsWith(openDataset({ format: 'npy', inputs: { input: f('u1.npy'), mask: f('labels-5.npy') } }, two), 'E_DATASET', 'labels-5.npy', '5 samples');
    await rejectsWith(openDataset({ format: 'npy', inputs: { inptu: f('u1.npy') } }, MODEL), 'E_DATASET', 'inptu', 'not a model input');
    await rejectsWith(openDataset({ format: 'npz', file: f('two.npz') }, MODEL), 'E_DATASET', 'two.npz', 'ambiguous');
  });

  it('makes synthetic data that does not depend on the batch size', async () => {
    const spec = parseDatasetSpec({ format: 'synthetic', synthetic: { count: 50, seed: 3 } }, '/');
    const ds = await openDataset(spec, MODEL);
    const a = (await all(ds, 7)).flatMap((b) => Array.from(b.feeds['input']!.data as Float32Array));
    const b = (await all(ds, 50)).flatMap((x) => Array.from(x.feeds['input']!.data as Float32Array));
    assert.deepEqual(a, b);
    const mean = a.reduce((s, v) => s + v, 0) / a.length;
    const sd = Math.sqrt(a.reduce((s, v) => s + (v - mean) ** 2, 0) / a.length);
    assert.ok(Math.abs(mean) < 0.1 && Math.abs(sd - 1) < 0.1, `${mean} ${sd}`);
    assert.ok(!ds.meta.hasLabels);
  });
});

describe('eval/datasetSpec', () => {
  it('loads the JSON, resolving paths against its folder', async () => {
    const dir = tempDir();
    writeFileSync(join(dir, 'x.npy'), '');
    writeFileSync(join(dir, 'd.json'), JSON.stringify({ format: 'npy', inputs: { input: 'x.npy' }, preprocess: { scale: 2, crop: 3 } }));
    const s = await loadDatasetSpec(join(dir, 'd.json'));
    assert.deepEqual(s.inputs, { input: join(dir, 'x.npy') });
    assert.deepEqual(s.preprocess, { scale: 2, crop: [3, 3] });
  });

  it('names the file and the key for every mistake', async () => {
    const dir = tempDir();
    const w = (o: unknown) => {
      writeFileSync(join(dir, 'd.json'), typeof o === 'string' ? o : JSON.stringify(o));
      return loadDatasetSpec(join(dir, 'd.json'));
    };
    await rejectsWith(w({ format: 'npy', inputs: 'x.npy', lables: 'y.npy' }), 'E_DATASET', 'd.json', "'lables'", "'labels'");
    await rejectsWith(w({ format: 'npy', inputs: 'nope.npy' }), 'E_DATASET', 'd.json', 'nope.npy', 'does not exist');
    await rejectsWith(w({ format: 'csv', inputs: 'x' }), 'E_DATASET', 'd.json', '"csv"');
    await rejectsWith(w('{ nope'), 'E_DATASET', 'd.json', 'not valid JSON');
    await rejectsWith(w({ format: 'npy' }), 'E_DATASET', 'd.json', '"inputs" is missing');
    await rejectsWith(w({ format: 'images', inputs: '.', preprocess: { std: [0] } }), 'E_DATASET', 'd.json', 'std');
    await rejectsWith(w({ format: 'images', inputs: '.', preprocess: { chanels: 'rgb' } }), 'E_DATASET', 'preprocess.chanels');
    await rejectsWith(w({ format: 'npy', inputs: 'x.npy', limit: 0 }), 'E_DATASET', '"limit"');
    await rejectsWith(loadDatasetSpec(join(dir, 'none.json')), 'E_DATASET', 'none.json');
  });

  it('builds specs from --data/--labels', async () => {
    const s = await datasetSpecFromArgs(f('u1.npy'), f('labels.npy'));
    assert.equal(s.format, 'npy');
    assert.equal(s.labels, f('labels.npy'));
    assert.equal((await datasetSpecFromArgs(f('stored.npz'))).format, 'npz');
    assert.equal((await datasetSpecFromArgs(DATA)).format, 'images');
    await rejectsWith(datasetSpecFromArgs(f('nope.npy')), 'E_DATASET', 'nope.npy');
  });
});
