/**
 * The bad-input corpus (`test/bad-inputs/`, made by `scripts/make-bad-inputs.ts`) through the real
 * CLI: every check of `manifest.json` gives its exit code within 10 s, failures print one
 * `onnx-compress: error:` line matching the manifest's regex (which names the file), nothing is left
 * in the output folder (no output, no temp file), and the inputs are unchanged.
 */
import * as assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { makeBadInputs, type ManifestEntry } from '../../../scripts/make-bad-inputs';
import { buildCli, diffSnapshots, lastLine, pool, ROOT, runCli, snapshot, type CliRun } from './harness';

const CORPUS = path.join(ROOT, 'test/bad-inputs');
const manifest = JSON.parse(fs.readFileSync(path.join(CORPUS, 'manifest.json'), 'utf8')) as { entries: ManifestEntry[] };

interface Outcome {
  run: CliRun;
  outAfter: Map<string, string>;
  inDiff: string[];
}

describe('robustness: bad-input corpus through the CLI', function () {
  this.timeout(240_000);
  let work: string;
  let inDir: string;
  let inSnap: Map<string, string>;
  const outcomes = new Map<string, Promise<Outcome>>();
  const key = (e: ManifestEntry, i: number): string => `${e.file}#${i}`;

  before(() => {
    buildCli();
    work = fs.mkdtempSync(path.join(os.tmpdir(), 'onnxc-bad-'));
    inDir = path.join(work, 'in');
    fs.cpSync(CORPUS, inDir, { recursive: true });
    inSnap = snapshot(inDir);
    const tasks: Array<() => Promise<Outcome>> = [];
    const keys: string[] = [];
    let n = 0;
    for (const e of manifest.entries) {
      e.checks.forEach((c, i) => {
        const out = path.join(work, `out-${n++}`);
        fs.mkdirSync(out);
        const args = c.args.map((a) => a.replaceAll('{file}', path.join(inDir, e.file)).replaceAll('{in}', inDir).replaceAll('{out}', out));
        keys.push(key(e, i));
        tasks.push(async () => {
          const run = await runCli(args, { timeoutMs: 10_000, cwd: work });
          return { run, outAfter: snapshot(out), inDiff: diffSnapshots(inSnap, snapshot(inDir)) };
        });
      });
    }
    pool(tasks, Math.max(2, Math.min(4, os.availableParallelism()))).forEach((p, i) => outcomes.set(keys[i]!, p));
  });
  after(() => fs.rmSync(work, { recursive: true, force: true }));

  it('the committed corpus is what scripts/make-bad-inputs.ts writes', () => {
    const fresh = path.join(fs.mkdtempSync(path.join(os.tmpdir(), 'onnxc-bad-gen-')), 'corpus');
    makeBadInputs(fresh);
    assert.deepEqual(diffSnapshots(snapshot(CORPUS), snapshot(fresh)), [], 'run `npx tsx scripts/make-bad-inputs.ts` and commit test/bad-inputs');
    fs.rmSync(path.dirname(fresh), { recursive: true, force: true });
  });

  for (const e of manifest.entries) {
    it(`${e.file}: ${e.what}`, async () => {
      for (const [i, c] of e.checks.entries()) {
        const { run, outAfter, inDiff } = await outcomes.get(key(e, i))!;
        const label = `${c.command} ${e.file}`;
        assert.ok(!run.timedOut, `${label}: still running after 10 s`);
        assert.equal(run.code, c.exit, `${label}: exit ${run.code}, expected ${c.exit}\n${run.stderr}`);
        assert.doesNotMatch(run.stderr, /internal error|\n\s+at /, `${label}: crashed\n${run.stderr}`);
        assert.deepEqual(inDiff, [], `${label}: changed the inputs`);
        assert.deepEqual([...outAfter.keys()].filter((f) => /\.tmp$|\.lock$/.test(f)), [], `${label}: left temp or lock files`);
        if (c.exit !== 0) {
          const errLines = run.stderr.split('\n').filter((l) => l.startsWith('onnx-compress:'));
          assert.equal(errLines.length, 1, `${label}: expected one error line\n${run.stderr}`);
          const last = lastLine(run.stderr);
          assert.equal(last, errLines[0], `${label}: the error is not the last line\n${run.stderr}`);
          assert.match(last, new RegExp(c.error ?? '.'), `${label}`);
          assert.deepEqual([...outAfter.keys()], [], `${label}: left files in the output folder`);
        }
      }
    });
  }
});
