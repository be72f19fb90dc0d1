// In-host test entry, the `extensionTestsPath` contract shared by @vscode/test-electron and the code-server runner
// (test/vscode/run.mjs): VS Code loads this module inside the extension host and awaits `run()`.
// Test files are the `*.vscode.test.js` bundles next to this one (built by test/vscode/esbuild.test.mjs).
import * as fs from 'node:fs';
import * as path from 'node:path';
import Mocha from 'mocha';

/** Counts written to `$ONNXC_VSCODE_OUT/in-host-results.json` so the runner can report per-test numbers. */
export interface InHostResults {
  passed: number;
  failed: number;
  failures: { title: string; error: string }[];
}

/**
 * Runs every `*.vscode.test.js` under this folder with mocha (tdd ui: `suite`/`test`).
 * Environment: `ONNXC_VSCODE_GREP` filters tests by title; `ONNXC_VSCODE_OUT` is where results go.
 * @returns resolves when all tests pass, rejects with the failure count otherwise.
 */
export function run(): Promise<void> {
  const grep = process.env['ONNXC_VSCODE_GREP'];
  const mocha = new Mocha({ ui: 'tdd', color: false, timeout: 60_000, reporter: 'spec' });
  if (grep) mocha.grep(grep);
  const files = fs
    .readdirSync(__dirname, { recursive: true, encoding: 'utf8' })
    .filter((f) => f.endsWith('.vscode.test.js'))
    .sort();
  for (const f of files) mocha.addFile(path.join(__dirname, f));

  return new Promise((resolve, reject) => {
    const results: InHostResults = { passed: 0, failed: 0, failures: [] };
    try {
      const runner = mocha.run((failures) => {
        writeResults(results);
        if (failures > 0) reject(new Error(`${failures} in-host test(s) failed`));
        else if (results.passed === 0 && !grep) reject(new Error(`no in-host tests ran (files: ${files.length})`));
        else resolve();
      });
      runner.on('pass', () => results.passed++);
      runner.on('fail', (t, err: unknown) => {
        results.failed++;
        results.failures.push({
          title: t.fullTitle(),
          error: err instanceof Error ? (err.stack ?? err.message) : String(err),
        });
      });
    } catch (e: unknown) {
      results.failed++;
      results.failures.push({ title: 'mocha', error: String(e) });
      writeResults(results);
      reject(e instanceof Error ? e : new Error(String(e)));
    }
  });
}

function writeResults(results: InHostResults): void {
  const out = process.env['ONNXC_VSCODE_OUT'];
  if (!out) return;
  fs.mkdirSync(out, { recursive: true });
  fs.writeFileSync(path.join(out, 'in-host-results.json'), JSON.stringify(results, null, 2));
}
