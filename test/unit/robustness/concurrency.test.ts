/**
 * Concurrency: two analyses of different models at once give the same results as alone; a second
 * analysis of the same results folder is refused with a message naming the folder and the pid.
 */
import * as assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { buildCli, CLI, ROOT, runCli } from './harness';

const LENET = path.join(ROOT, 'test/fixtures/lenet5.onnx');
const LENET_DATA = path.join(ROOT, 'test/fixtures/data/fmnist-test-1000.dataset.json');
const TINY = path.join(ROOT, 'test/bad-inputs/tiny.onnx');
const TINY_DATA = path.join(ROOT, 'test/bad-inputs/data/tiny.dataset.json');

/** The measured part of the cells (timings differ run to run). */
function cells(dir: string): unknown[] {
  const sf = JSON.parse(fs.readFileSync(path.join(dir, 'sensitivity.json'), 'utf8'));
  return sf.cells.map((c: Record<string, unknown>) => ({ ...c, seconds: 0 }));
}

describe('robustness: concurrent runs', function () {
  this.timeout(180_000);
  let work: string;
  before(() => {
    buildCli();
    work = fs.mkdtempSync(path.join(os.tmpdir(), 'onnxc-conc-'));
  });
  after(() => fs.rmSync(work, { recursive: true, force: true }));

  it('two analyses of different models at once give the same cells as each alone', async () => {
    const lenetArgs = (out: string): string[] => ['analyze', LENET, '--data', LENET_DATA, '--limit', '100', '--techniques', 'share,prune', '--threads', '1', '--out', out];
    const tinyArgs = (out: string): string[] => ['analyze', TINY, '--data', TINY_DATA, '--limit', '24', '--threads', '1', '--out', out];
    const alone = [await runCli(lenetArgs(path.join(work, 'lenet-alone')), { timeoutMs: 120_000 }), await runCli(tinyArgs(path.join(work, 'tiny-alone')), { timeoutMs: 120_000 })];
    for (const r of alone) assert.equal(r.code, 0, r.stderr);
    const both = await Promise.all([runCli(lenetArgs(path.join(work, 'lenet-both')), { timeoutMs: 120_000 }), runCli(tinyArgs(path.join(work, 'tiny-both')), { timeoutMs: 120_000 })]);
    for (const r of both) assert.equal(r.code, 0, r.stderr);
    assert.deepEqual(cells(path.join(work, 'lenet-both')), cells(path.join(work, 'lenet-alone')));
    assert.deepEqual(cells(path.join(work, 'tiny-both')), cells(path.join(work, 'tiny-alone')));
  });

  it('a second analysis of the same results folder is refused while the first runs; the first finishes', async () => {
    const out = path.join(work, 'shared');
    const args = ['analyze', LENET, '--data', LENET_DATA, '--limit', '200', '--techniques', 'share,prune,quant', '--out', out];
    const first = spawn(process.execPath, [CLI, ...args], { cwd: ROOT, stdio: ['ignore', 'ignore', 'pipe'] });
    let firstErr = '';
    first.stderr.setEncoding('utf8').on('data', (d: string) => (firstErr += d));
    const firstDone = new Promise<number | null>((resolve) => first.on('close', (code) => resolve(code)));
    const lock = path.join(out, '.lock');
    for (let i = 0; i < 200 && !fs.existsSync(lock); i++) await new Promise((r) => setTimeout(r, 25));
    assert.ok(fs.existsSync(lock), 'the first run took no lock');
    const second = await runCli(args, { timeoutMs: 30_000 });
    assert.equal(second.code, 2, second.stderr);
    assert.match(second.stderr, new RegExp(`^onnx-compress: error: The results folder '${out.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}' is in use by another run \\(pid ${first.pid}\\)\\. Wait for it to finish, stop it, or use another --out\\.$`, 'm'));
    assert.equal(await firstDone, 0, firstErr);
    const sf = JSON.parse(fs.readFileSync(path.join(out, 'sensitivity.json'), 'utf8'));
    assert.equal(sf.complete, true);
    assert.ok(!fs.existsSync(lock), 'lock released');
  });
});
