/**
 * Faults: `analyze`, `compress` and `apply --out` killed with SIGKILL at seeded random moments leave
 * the input intact, no half-written result (only whole files, plus at most a temp file that the next
 * writer removes), and a results folder the next run resumes from. A full disk (a real 16–64 kB
 * tmpfs; skipped when mounting is not allowed) gives a clear E_IO error and leaves no temp file.
 */
import * as assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { decodeModel, OnnxModel } from '../../../src/engine/onnx';
import { mulberry32 } from '../../../src/engine/util/random';
import { buildCli, CLI, ROOT, runCli } from './harness';

const LENET = path.join(ROOT, 'test/fixtures/lenet5.onnx');
const DATA = path.join(ROOT, 'test/fixtures/data/fmnist-test-1000.dataset.json');
const sha = (f: string): string => createHash('sha256').update(fs.readFileSync(f)).digest('hex');

/** Starts the CLI and SIGKILLs it after `ms` (if still running). Resolves with how it ended. */
function killAfter(args: string[], ms: number): Promise<{ killed: boolean; code: number | null }> {
  return new Promise((resolve) => {
    const child = spawn(process.execPath, [CLI, ...args], { cwd: ROOT, stdio: 'ignore' });
    const timer = setTimeout(() => child.kill('SIGKILL'), ms);
    child.on('close', (code, signal) => {
      clearTimeout(timer);
      resolve({ killed: signal === 'SIGKILL', code });
    });
  });
}

/** Files of a results folder that must each be complete: JSON parses, ONNX validates. */
function assertWhole(dir: string, label: string): string[] {
  if (!fs.existsSync(dir)) return [];
  const names = fs.readdirSync(dir);
  for (const n of names) {
    const f = path.join(dir, n);
    if (n.endsWith('.tmp') || n === '.lock') continue; // temp files of the killed writer; never read
    if (n.endsWith('.json')) assert.doesNotThrow(() => JSON.parse(fs.readFileSync(f, 'utf8')), `${label}: ${n} is not whole JSON`);
    if (n.endsWith('.onnx')) assert.doesNotThrow(() => new OnnxModel(decodeModel(fs.readFileSync(f), n), n).validate(), `${label}: ${n} is not a whole model`);
  }
  return names;
}

describe('robustness: SIGKILL and full disk', function () {
  this.timeout(240_000);
  let work: string;
  const lenetSha = sha(LENET);
  before(() => {
    buildCli();
    work = fs.mkdtempSync(path.join(os.tmpdir(), 'onnxc-faults-'));
  });
  after(() => fs.rmSync(work, { recursive: true, force: true }));

  it('analyze killed 5 times at random moments resumes to a complete study; no temp files after the re-run', async () => {
    const out = path.join(work, 'analyze');
    // All 1000 samples and every technique so the study outlasts the kills: analyze got fast enough
    // (level pruning, early stopping, bias correction without passes) that smaller studies were
    // often finished by the third kill.
    const args = ['analyze', LENET, '--data', DATA, '--limit', '1000', '--out', out];
    const rand = mulberry32(0xdead);
    let killed = 0;
    for (let i = 0; i < 5; i++) {
      // set-up (evaluator, calibration statistics) takes 1–4 s before the first cell; a kill during
      // it is a kill mid-way too (the folder then holds the first, empty write)
      const r = await killAfter(args, 800 + Math.floor(rand() * 3200));
      if (r.killed) killed++;
      assert.equal(sha(LENET), lenetSha, 'the input changed');
      assertWhole(out, `kill ${i}`);
    }
    assert.ok(killed >= 3, `only ${killed} of 5 runs were killed mid-way`);
    const sf = JSON.parse(fs.readFileSync(path.join(out, 'sensitivity.json'), 'utf8'));
    const before = sf.cells.length;
    const r = await runCli(args, { timeoutMs: 120_000 });
    assert.equal(r.code, 0, r.stderr);
    // The last killed-at-random run may have finished the study before its kill (analyze is fast
    // on LeNet): then the re-run has nothing to measure; otherwise it resumes from what was kept.
    if (sf.complete) assert.doesNotMatch(r.stderr, /Measuring|Resuming/);
    else if (before > 0) assert.match(r.stderr, new RegExp(`Resuming: ${before} of \\d+ cells already measured`));
    const done = JSON.parse(fs.readFileSync(path.join(out, 'sensitivity.json'), 'utf8'));
    assert.equal(done.complete, true);
    // Every (layer, level) is measured or marked unsupported (68 cells on LeNet when none is).
    const expected = done.layers.reduce((s: number, l: { unsupported?: Record<string, string> }) => s + done.levels.filter((v: { id: string }) => !l.unsupported?.[v.id]).length, 0);
    assert.equal(done.cells.length, expected, JSON.stringify(done.layers.map((l: { unsupported?: unknown }) => l.unsupported)));
    // Cells measured before the kills are kept as they were (not re-measured).
    assert.deepEqual(done.cells.slice(0, before), sf.cells);
    assert.deepEqual(fs.readdirSync(out).sort(), ['sensitivity.csv', 'sensitivity.json']);
  });

  it('compress killed 3 times resumes and exports whole files; apply --out killed 5 times never leaves a partial model', async () => {
    const out = path.join(work, 'compress');
    const args = ['compress', LENET, '--data', DATA, '--max-loss', '5', '--limit', '200', '--sensitivity-limit', '200', '--techniques', 'share,quant', '--out', out];
    const rand = mulberry32(0xbeef);
    for (let i = 0; i < 3; i++) {
      await killAfter(args, 500 + Math.floor(rand() * 3000));
      assert.equal(sha(LENET), lenetSha);
      assertWhole(out, `compress kill ${i}`);
    }
    const r = await runCli(args, { timeoutMs: 180_000 });
    assert.equal(r.code, 0, r.stderr);
    const names = assertWhole(out, 'compress re-run');
    assert.deepEqual(names.filter((n) => n.endsWith('.tmp') || n === '.lock'), []);
    for (const f of ['lenet5.compressed.onnx', 'candidates.json', 'report.html', 'plan.json']) assert.ok(names.includes(f), f);

    const plan = path.join(work, 'plan.json');
    fs.writeFileSync(plan, JSON.stringify({ default: { technique: 'prune+share', sparsity: 0.5, k: 16 } }));
    const target = path.join(work, 'apply', 'out.onnx');
    fs.mkdirSync(path.dirname(target));
    for (let i = 0; i < 5; i++) {
      await killAfter(['apply', LENET, '--plan', plan, '--out', target], 150 + Math.floor(rand() * 700));
      assert.equal(sha(LENET), lenetSha);
      assertWhole(path.dirname(target), `apply kill ${i}`);
    }
    const ok = await runCli(['apply', LENET, '--plan', plan, '--out', target]);
    assert.equal(ok.code, 0, ok.stderr);
    assert.deepEqual(fs.readdirSync(path.dirname(target)), ['out.onnx'], 'stale temp files of killed writers are removed by the next one');
  });

  it('a full disk (tmpfs) gives a clear E_IO error, exit 2, and removes temp files', async function () {
    const mnt = path.join(work, 'tiny-disk');
    fs.mkdirSync(mnt);
    const m = spawnSync('mount', ['-t', 'tmpfs', '-o', 'size=16k', 'tmpfs', mnt], { encoding: 'utf8' });
    if (m.status !== 0) {
      console.log(`      (skipped: cannot mount a tmpfs: ${m.stderr.trim()})`);
      this.skip();
    }
    try {
      const plan = path.join(work, 'share.json');
      fs.writeFileSync(plan, JSON.stringify({ default: { technique: 'share', k: 16 } }));
      const r = await runCli(['apply', LENET, '--plan', plan, '--out', path.join(mnt, 'out.onnx')]);
      assert.equal(r.code, 2, r.stderr);
      assert.match(r.stderr, /^onnx-compress: error: Cannot write '.*out\.onnx': the disk is full; free some space and retry\.$/m);
      assert.deepEqual(fs.readdirSync(mnt), []);
      const a = await runCli(['analyze', LENET, '--data', DATA, '--limit', '50', '--techniques', 'share', '--out', path.join(mnt, 'res')], { timeoutMs: 60_000 });
      assert.equal(a.code, 2, a.stderr);
      assert.match(a.stderr, /^onnx-compress: error: Cannot write '.*sensitivity\.(json|csv)': the disk is full/m);
      const left = fs.existsSync(path.join(mnt, 'res')) ? fs.readdirSync(path.join(mnt, 'res')) : [];
      assert.deepEqual(left.filter((n) => n.endsWith('.tmp') || n === '.lock'), [], 'no temp or lock file');
      const p = await runCli(['pack', LENET, '--out', path.join(mnt, 'x.onnxc')]);
      assert.equal(p.code, 2, p.stderr);
      assert.match(p.stderr, /the disk is full/);
      assert.deepEqual(fs.readdirSync(mnt).filter((n) => n !== 'res'), []);
    } finally {
      spawnSync('umount', [mnt]);
    }
  });
});
