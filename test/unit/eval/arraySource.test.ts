import { strict as assert } from 'node:assert';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { gzipSync } from 'node:zlib';
import { openArrayFile, openIdx, openNpy, openNpz } from '../../../src/engine/eval/arraySource';
import { DATA, list, rejectsWith, tempDir } from './helpers';

const f = (n: string) => join(DATA, n);

describe('eval/arraySource', () => {
  it('reads numpy-written .npy files of every dtype and byte order to the same values', async () => {
    const ref = await openNpy(f('u1.npy'));
    assert.deepEqual(ref.shape, [6, 1, 4, 4]);
    const want = list(await ref.readRows(1, 3));
    assert.equal(want.length, 48);
    for (const name of ['f4.npy', 'f4be.npy', 'f8.npy', 'f2.npy', 'i8.npy']) {
      const a = await openNpy(f(name));
      assert.deepEqual(a.shape, [6, 1, 4, 4], name);
      assert.deepEqual(list(await a.readRows(1, 3)), want, name);
    }
  });

  it('rejects Fortran-ordered arrays, naming the file', async () => {
    await rejectsWith(openNpy(f('fortran.npy')), 'E_DATASET', 'fortran.npy', 'Fortran');
  });

  it('reads hand-built v1 and v2 headers and rejects truncated data', async () => {
    const dir = tempDir();
    const mk = (version: 1 | 2, descr: string, shape: string, data: Buffer): Buffer => {
      let header = `{'descr': '${descr}', 'fortran_order': False, 'shape': ${shape}, }`;
      const pre = version === 1 ? 10 : 12;
      header += ' '.repeat(63 - ((pre + header.length) % 64)) + '\n';
      const h = Buffer.alloc(pre);
      Buffer.from([0x93, 0x4e, 0x55, 0x4d, 0x50, 0x59, version, 0]).copy(h);
      if (version === 1) h.writeUInt16LE(header.length, 8);
      else h.writeUInt32LE(header.length, 8);
      return Buffer.concat([h, Buffer.from(header, 'latin1'), data]);
    };
    const i4 = Buffer.alloc(12);
    [7, -2, 100000].forEach((v, i) => i4.writeInt32LE(v, 4 * i));
    writeFileSync(join(dir, 'a.npy'), mk(1, '<i4', '(3,)', i4));
    writeFileSync(join(dir, 'b.npy'), mk(2, '|u1', '(2, 2)', Buffer.from([1, 2, 3, 4])));
    writeFileSync(join(dir, 'c.npy'), mk(1, '<f4', '(5,)', Buffer.alloc(8)));
    writeFileSync(join(dir, 'd.npy'), mk(1, '<c8', '(1,)', Buffer.alloc(8)));
    assert.deepEqual(list(await (await openNpy(join(dir, 'a.npy'))).readRows(0, 3)), [7, -2, 100000]);
    assert.deepEqual(list(await (await openNpy(join(dir, 'b.npy'))).readRows(1, 1)), [3, 4]);
    await rejectsWith(openNpy(join(dir, 'c.npy')), 'E_DATASET', 'c.npy', 'truncated');
    await rejectsWith(openNpy(join(dir, 'd.npy')), 'E_DATASET', 'd.npy', "'<c8'");
    writeFileSync(join(dir, 'e.npy'), 'hello');
    await rejectsWith(openNpy(join(dir, 'e.npy')), 'E_DATASET', 'e.npy', 'not a NumPy');
    await rejectsWith(openNpy(join(dir, 'missing.npy')), 'E_DATASET', 'missing.npy');
  });

  it('reads stored and deflated .npz archives', async () => {
    const want = list(await (await openNpy(f('u1.npy'))).readRows(0, 6));
    for (const name of ['stored.npz', 'deflated.npz']) {
      const m = await openNpz(f(name));
      assert.deepEqual([...m.keys()].sort(), ['input', 'labels']);
      assert.deepEqual(list(await m.get('input')!.readRows(0, 6)), want, name);
      assert.deepEqual(list(await m.get('labels')!.readRows(0, 6)), [0, 1, 2, 3, 4, 5]);
    }
  });

  it('reads IDX files, raw and gzipped, with big-endian data', async () => {
    const dir = tempDir();
    const head = Buffer.from([0, 0, 0x08, 3, 0, 0, 0, 3, 0, 0, 0, 2, 0, 0, 0, 2]);
    const body = Buffer.from(Array.from({ length: 12 }, (_, i) => i * 20));
    writeFileSync(join(dir, 'x.idx'), Buffer.concat([head, body]));
    writeFileSync(join(dir, 'x.idx.gz'), gzipSync(Buffer.concat([head, body])));
    const ints = Buffer.alloc(4 + 4 + 8);
    ints.set([0, 0, 0x0c, 1]);
    ints.writeUInt32BE(2, 4);
    ints.writeInt32BE(-5, 8);
    ints.writeInt32BE(70000, 12);
    writeFileSync(join(dir, 'y-ubyte'), ints);
    for (const n of ['x.idx', 'x.idx.gz']) {
      const a = await openArrayFile(join(dir, n));
      assert.deepEqual(a.shape, [3, 2, 2]);
      assert.deepEqual(list(await a.readRows(1, 2)), [80, 100, 120, 140, 160, 180, 200, 220]);
    }
    assert.deepEqual(list(await (await openIdx(join(dir, 'y-ubyte'))).readRows(0, 2)), [-5, 70000]);
    writeFileSync(join(dir, 'bad.idx'), Buffer.from([1, 2, 3, 4, 5]));
    await rejectsWith(openIdx(join(dir, 'bad.idx')), 'E_DATASET', 'bad.idx', 'not an IDX');
    writeFileSync(join(dir, 'short.idx'), head);
    await rejectsWith(openIdx(join(dir, 'short.idx')), 'E_DATASET', 'short.idx', 'truncated');
  });
});
