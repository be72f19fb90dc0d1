import { strict as assert } from 'node:assert';
import { copyFileSync, cpSync, mkdtempSync, readdirSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { isCancellationError } from '../../../src/engine/errors';
import { loadDatasetSpec } from '../../../src/engine/eval/datasetSpec';
import { compressModel, type DataInput } from '../../../src/engine/explore';

const FIX = join(__dirname, '../../fixtures');
const DATA = join(FIX, 'data/fmnist-test-1000.dataset.json');
const HOLD = join(FIX, 'data/fmnist-holdout-1000.dataset.json');

async function data(file: string): Promise<DataInput> {
  return { spec: await loadDatasetSpec(file), source: file };
}

/** Files of the results folder that are neither results nor the lock (temp files). */
function strays(dir: string): string[] {
  return readdirSync(dir).filter((f) => f.startsWith('.') && f !== '.lock');
}

describe('compress: candidates evaluated from disk (variantsOnDisk)', function () {
  this.timeout(300_000);

  it('LeNet-5: the same candidates, choice, held-out check and export as in memory; no temp file left, also after a cancel', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'disk-variants-'));
    const model = join(dir, 'lenet5.onnx');
    copyFileSync(join(FIX, 'lenet5.onnx'), model);
    const common = { model, data: await data(DATA), holdout: await data(HOLD), maxLoss: 0.01, limit: 500, sensitivityLimit: 300, techniques: ['quant'] as const, calibrate: false };
    const mem = await compressModel({ ...common, out: join(dir, 'mem'), variantsOnDisk: false });
    // The sensitivity study is the same: run it once.
    cpSync(join(dir, 'mem', 'sensitivity.json'), join(dir, 'disk', 'sensitivity.json'));
    const disk = await compressModel({ ...common, out: join(dir, 'disk'), variantsOnDisk: true });
    assert.equal(disk.breakdown!.cells, 0);
    assert.ok(mem.candidates.length >= 2 && mem.chosen);
    const key = (cf: typeof mem) => cf.candidates.map((c) => ({ id: c.id, plan: c.plan, bytes: c.bytes, loss: c.loss, top1: c.top1, flips: c.flips, holdout: c.holdout }));
    assert.deepEqual(key(disk), key(mem));
    assert.equal(disk.chosen, mem.chosen);
    assert.equal(disk.outputs.model, mem.outputs.model);
    assert.deepEqual(strays(join(dir, 'disk')), []);

    // Cancelled as the first candidate is reported: the next one is never started, nothing is left.
    const ac = new AbortController();
    await assert.rejects(
      compressModel({ ...common, out: join(dir, 'disk'), variantsOnDisk: true, fresh: false, signal: ac.signal, onEvent: (e) => e.type === 'candidate' && ac.abort() }),
      (e: unknown) => isCancellationError(e),
    );
    assert.deepEqual(strays(join(dir, 'disk')), []);
  });
});
