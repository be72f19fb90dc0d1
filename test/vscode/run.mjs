#!/usr/bin/env node
// Integration tests in a real VS Code 1.100.3 (code-server, Node extension host, so onnxruntime-node loads),
// headless and offline. Needs `bash scripts/vscode-harness-setup.sh` once and a build (`npm run test:vscode` does
// both builds). Where a desktop VS Code can be downloaded, test/vscode/runElectron.mjs runs the same in-host suite.
//
//   node test/vscode/run.mjs [--vsix path/to.vsix] [--fixtures dir] [--grep text] [--keep]
//
// Phase 1 runs dist/test/vscode/suite/index.js inside the extension host; phase 2 drives the workbench UI
// (test/vscode/driver/ui.mjs); phase 3 drives it again with workspace trust on and the folder untrusted. Without --vsix the extension under test is this folder; with --vsix the package is
// installed with `code-server --install-extension` and both phases run against the installed copy. The workspace
// gets tiny.onnx plus --fixtures' *.onnx and data/ (default test/fixtures/).
// Screenshots go to test/.output/vscode/<dev|vsix>/. The last line is `vscode: N passed, N failed`; exit 1 on failure.
// Environment: ONNXC_VSCODE_DIR (harness install dir), ONNXC_VSCODE_TIMEOUT_MS (whole run, default 600000),
// VERBOSE=1 (all workbench console output), CHROMIUM (browser path, default /usr/bin/chromium).
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { launchChromium } from './driver/browser.mjs';
import { installVsix, startCodeServer } from './driver/codeServer.mjs';
import { runInHostTests } from './driver/inHost.mjs';
import { runUiTests } from './driver/ui.mjs';
import { describeModel, prepareWorkspace, writeTestHostExtension } from './driver/workspace.mjs';

if (process.env.ONNXC_VSCODE === 'electron') {
  await import('./runElectron.mjs'); // desktop VS Code via @vscode/test-electron; it exits by itself
}

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
const HARNESS = process.env.ONNXC_VSCODE_DIR || path.join(os.homedir(), '.cache/onnx-compress/vscode-harness');
const CS_BIN = path.join(HARNESS, 'cs/bin/code-server');
const SUITE = path.join(ROOT, 'dist/test/vscode/suite/index.js');

const { values: args } = parseArgs({
  options: {
    vsix: { type: 'string' },
    fixtures: { type: 'string', default: path.join(ROOT, 'test/fixtures') },
    grep: { type: 'string' },
    keep: { type: 'boolean', default: false },
  },
});
const mode = args.vsix ? 'vsix' : 'dev';
const t0 = Date.now();
const step = (/** @type {string} */ msg) => console.log(`== [${((Date.now() - t0) / 1000).toFixed(1)}s] ${msg}`);

for (const [file, fix] of [
  [CS_BIN, 'bash scripts/vscode-harness-setup.sh'],
  [SUITE, 'node test/vscode/esbuild.test.mjs'],
  [path.join(ROOT, 'dist/extension.js'), 'npm run build'],
]) {
  if (!fs.existsSync(file)) {
    console.error(`missing ${file}: run \`${fix}\` first`);
    console.log('vscode: 0 passed, 1 failed');
    process.exit(1);
  }
}

const outDir = path.join(ROOT, 'test/.output/vscode', mode);
fs.rmSync(outDir, { recursive: true, force: true });
fs.mkdirSync(outDir, { recursive: true });
const runDir = fs.mkdtempSync(path.join(os.tmpdir(), `onnxc-vscode-${mode}-`));
const dirs = Object.fromEntries(['home', 'ext', 'ws', 'out'].map((d) => [d, path.join(runDir, d)]));
for (const d of Object.values(dirs)) fs.mkdirSync(d, { recursive: true });

const models = prepareWorkspace(path.resolve(args.fixtures), dirs.ws);
// The UI test right-clicks a real fixture when there is one; its expected names come from onnxruntime in Node.
const uiModelName = ['lenet5.onnx', 'tiny.onnx'].find((f) => models.includes(f)) ?? 'tiny.onnx';
const uiModel = await describeModel(ROOT, path.join(dirs.ws, uiModelName));
step(`workspace ${dirs.ws}: ${models.join(', ')}`);

/** @type {Awaited<ReturnType<typeof startCodeServer>> | undefined} */
let cs;
/** @type {import('playwright-core').Browser | undefined} */
let browser;
let passed = 0;
let failed = 0;
let cleanedUp = false;
async function cleanup() {
  if (cleanedUp) return;
  cleanedUp = true;
  await browser?.close().catch(() => {});
  await cs?.stop();
}
for (const sig of /** @type {const} */ (['SIGINT', 'SIGTERM'])) {
  process.on(sig, async () => {
    console.error(`\n${sig}: stopping code-server (run dir ${runDir})`);
    await cleanup();
    process.exit(130);
  });
}
const watchdog = setTimeout(async () => {
  console.error(`timeout after ${process.env.ONNXC_VSCODE_TIMEOUT_MS || 600000} ms (run dir ${runDir})`);
  await cleanup();
  console.log(`vscode: ${passed} passed, ${failed + 1} failed`);
  process.exit(1);
}, +(process.env.ONNXC_VSCODE_TIMEOUT_MS || 600_000));

try {
  // The extension under test, and what phase 1 passes as extensionDevelopmentPath.
  const pkg = JSON.parse(fs.readFileSync(path.join(ROOT, 'package.json'), 'utf8'));
  /** @type {string} */
  let devPath;
  /** @type {Record<string, string>} */
  const hostEnv = { ONNXC_VSCODE_OUT: dirs.out };
  if (args.grep) hostEnv.ONNXC_VSCODE_GREP = args.grep;
  if (args.vsix) {
    const vsix = path.resolve(args.vsix);
    step(`installing ${vsix} (${(fs.statSync(vsix).size / 1e6).toFixed(1)} MB) with code-server --install-extension`);
    console.log(installVsix({ csBin: CS_BIN, runDir, extensionsDir: dirs.ext, vsix }).trim());
    devPath = writeTestHostExtension(path.join(runDir, 'test-host-ext'));
    hostEnv.ONNXC_VSCODE_EXPECT_EXTENSION_ROOT = dirs.ext;
  } else {
    // A folder named <publisher>.<name>-<version> in --extensions-dir is picked up at startup (phase 2).
    fs.symlinkSync(ROOT, path.join(dirs.ext, `${pkg.publisher}.${pkg.name}-${pkg.version}`));
    devPath = ROOT;
  }

  cs = await startCodeServer({ csBin: CS_BIN, runDir, extensionsDir: dirs.ext, env: hostEnv });
  step(`code-server pid ${cs.pid} on ${cs.url} (mode ${mode}, run dir ${runDir})`);
  browser = await launchChromium(HARNESS);

  step('phase 1: mocha suite inside the extension host');
  const code = await runInHostTests({
    browser, baseUrl: cs.url, folder: dirs.ws, devPath, testsPath: SUITE, timeoutMs: 240_000,
  });
  const resultsFile = path.join(dirs.out, 'in-host-results.json');
  if (fs.existsSync(resultsFile)) {
    const r = JSON.parse(fs.readFileSync(resultsFile, 'utf8'));
    passed += r.passed;
    failed += r.failed;
    for (const f of r.failures) console.log(`  ✘ ${f.title}\n${f.error.replace(/^/gm, '      ')}`);
    if (code !== 0 && r.failed === 0) failed++; // run() rejected for another reason (no tests, load error)
  } else {
    failed++;
  }
  step(`phase 1: exit code ${code}`);

  step(`phase 2: UI in headless chromium (model ${uiModelName})`);
  const ui = await runUiTests({ browser, baseUrl: cs.url, folder: dirs.ws, outDir, model: uiModel, grep: args.grep });
  passed += ui.passed;
  failed += ui.failed;

  // Phase 3: the same workspace in Restricted Mode. Trust is a server flag and a user setting, so a second
  // code-server with its own user data (which trusts nothing) serves it.
  if (!args.grep || 'untrusted'.includes(args.grep) || args.grep.includes('untrusted')) {
    await cs.stop();
    const untrustedDir = path.join(runDir, 'untrusted');
    cs = await startCodeServer({ csBin: CS_BIN, runDir: untrustedDir, extensionsDir: dirs.ext, env: hostEnv, untrusted: true });
    step(`phase 3: Restricted Mode (code-server pid ${cs.pid}, workspace trust on, folder untrusted)`);
    const ut = await runUiTests({ browser, baseUrl: cs.url, folder: dirs.ws, outDir, model: uiModel, grep: args.grep, phase: 'untrusted' });
    passed += ut.passed;
    failed += ut.failed;
  }
} catch (e) {
  failed++;
  console.error('runner error:', e);
} finally {
  clearTimeout(watchdog);
  await cleanup();
}

const logs = path.join(outDir, 'logs');
fs.cpSync(path.join(runDir, 'data/logs'), logs, { recursive: true, force: true, errorOnExist: false });
if (fs.existsSync(path.join(runDir, 'code-server.log'))) fs.copyFileSync(path.join(runDir, 'code-server.log'), path.join(logs, 'code-server.log'));
if (failed === 0 && !args.keep) fs.rmSync(runDir, { recursive: true, force: true });
step(`done; logs in ${logs}${failed || args.keep ? `, run dir kept: ${runDir}` : ''}`);
console.log(`vscode: ${passed} passed, ${failed} failed`);
process.exit(failed === 0 && passed > 0 ? 0 : 1);

