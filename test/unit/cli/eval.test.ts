import * as assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { cli } from './cliHarness';

const EXPECTED = JSON.parse(fs.readFileSync('test/fixtures/expected.json', 'utf8')) as {
  models: Record<string, { file: string; accuracy: Record<string, number> }>;
};
const DATA = 'test/fixtures/data';

describe('cli: eval', function () {
  this.timeout(120_000);

  for (const [name, m] of Object.entries(EXPECTED.models)) {
    it(`${name}: top-1 on the test and holdout sets equals PyTorch's (expected.json)`, () => {
      for (const set of ['test-1000', 'holdout-1000'] as const) {
        const r = cli(['eval', `test/fixtures/${m.file}`, '--data', `${DATA}/fmnist-${set}.dataset.json`, '--json']);
        assert.equal(r.code, 0, r.stderr);
        const j = JSON.parse(r.stdout);
        assert.equal(j.samples, 1000);
        const want = m.accuracy[`fmnist-${set}`];
        assert.ok(typeof want === 'number', `expected.json has ${JSON.stringify(m.accuracy)}`);
        assert.ok(Math.abs(j.top1 - want) <= 0.002, `${set}: ${j.top1} vs ${want}`);
        assert.ok(j.top5 >= j.top1);
        assert.equal(j.agreement, null);
      }
    });
  }

  it('against a reference: agreement 1 and infinite SQNR for the model itself; data-free works with a reference', () => {
    const self = cli(['eval', 'test/fixtures/lenet5.onnx', '--data', `${DATA}/fmnist-test-100-images.idx`, '--labels', `${DATA}/fmnist-test-100-labels.idx`, '--reference', 'test/fixtures/lenet5.onnx', '--json']);
    assert.equal(self.code, 0, self.stderr);
    const j = JSON.parse(self.stdout);
    assert.equal(j.samples, 100);
    assert.equal(j.agreement, 1);
    assert.equal(j.referenceTop1, j.top1);
    assert.equal(j.fidelity.maxAbsDiff, 0);
    const free = cli(['eval', 'test/fixtures/lenet5.onnx', '--data-free', '--reference', 'test/fixtures/lenet5.onnx', '--limit', '32', '--json']);
    assert.equal(free.code, 0, free.stderr);
    assert.equal(JSON.parse(free.stdout).agreement, 1);
  });

  it('bad data exits 2 with a message naming the file', () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'onnxc-eval-'));
    try {
      const noRef = cli(['eval', 'test/fixtures/lenet5.onnx', '--data-free']);
      assert.equal(noRef.code, 2);
      assert.match(noRef.stderr, /needs --reference/);
      // 100 labels for 1000 images
      const r = cli(['eval', 'test/fixtures/lenet5.onnx', '--data', `${DATA}/fmnist-test-1000-images.npy`, '--labels', `${DATA}/fmnist-test-100-labels.idx`]);
      assert.equal(r.code, 2, r.stderr);
      assert.match(r.stderr, /fmnist-test-100-labels\.idx|1000|100/);
      const missing = cli(['eval', 'test/fixtures/lenet5.onnx', '--data', path.join(dir, 'nope.json')]);
      assert.equal(missing.code, 2);
      assert.match(missing.stderr, /nope\.json/);
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });
});
