import * as assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { cli } from './cliHarness';

const LENET = path.resolve('test/fixtures/lenet5.onnx');
const DATA = path.resolve('test/fixtures/data/fmnist-test-1000.dataset.json');

describe('cli: compress --target', function () {
  this.timeout(180_000);
  let dir: string;
  beforeEach(() => (dir = fs.mkdtempSync(path.join(os.tmpdir(), 'onnxc-cli-'))));
  afterEach(() => fs.rmSync(dir, { recursive: true, force: true }));

  it('--target archive: the summary and candidates.json carry the archive the search made small, as written; a bad target is a usage error', () => {
    const out = path.join(dir, 'res');
    const r = cli(['compress', LENET, '--data', DATA, '--limit', '300', '--sensitivity-limit', '300', '--techniques', 'share,prune', '--max-loss', '1', '--target', 'archive', '--out', out, '--json']);
    assert.equal(r.code, 0, r.stderr);
    const s = JSON.parse(r.stdout) as { chosen: { bytes: number; archiveBytes: number }; outputs: { model: string; archive: string } };
    assert.equal(fs.statSync(path.join(out, s.outputs.archive)).size, s.chosen.archiveBytes);
    assert.equal(fs.statSync(path.join(out, s.outputs.model)).size, s.chosen.bytes);
    const cf = JSON.parse(fs.readFileSync(path.join(out, 'candidates.json'), 'utf8')) as { target: string; candidates: Array<{ archiveBytes?: number }> };
    assert.equal(cf.target, 'archive');
    assert.ok(cf.candidates.every((c) => (c.archiveBytes ?? 0) > 0));
    const bad = cli(['compress', LENET, '--data', DATA, '--max-loss', '1', '--target', 'zip', '--out', out]);
    assert.equal(bad.code, 2);
    assert.match(bad.stderr, /--target must be onnx or archive, got 'zip'/);
  });
});
