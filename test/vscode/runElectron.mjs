#!/usr/bin/env node
// The same in-host suite in a desktop VS Code (Electron) through @vscode/test-electron, for machines that can
// download VS Code (this network cannot: use run.mjs there). Selected by ONNXC_VSCODE=electron in run.mjs, or:
//
//   node test/vscode/runElectron.mjs [--vsix path/to.vsix]
//
// No UI phase here (the UI tests drive code-server's web workbench). ONNXC_VSCODE_VERSION picks the VS Code
// version (default 1.100.3, the version code-server 4.100.3 embeds; `stable` for the newest).
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import {
  downloadAndUnzipVSCode,
  resolveCliArgsFromVSCodeExecutablePath,
  runTests,
} from '@vscode/test-electron';
import { prepareWorkspace, writeTestHostExtension } from './driver/workspace.mjs';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
const SUITE = path.join(ROOT, 'dist/test/vscode/suite/index.js');
const { values: args } = parseArgs({ options: { vsix: { type: 'string' } } });
const version = process.env.ONNXC_VSCODE_VERSION || '1.100.3';

const runDir = fs.mkdtempSync(path.join(os.tmpdir(), 'onnxc-vscode-electron-'));
const ws = path.join(runDir, 'ws');
const extDir = path.join(runDir, 'ext');
const out = path.join(runDir, 'out');
fs.mkdirSync(extDir, { recursive: true });
prepareWorkspace(path.join(ROOT, 'test/fixtures'), ws);

let passed = 0;
let failed = 0;
try {
  const vscodeExecutablePath = await downloadAndUnzipVSCode(version);
  /** @type {Record<string, string>} */
  const extensionTestsEnv = { ONNXC_VSCODE_OUT: out };
  let extensionDevelopmentPath = ROOT;
  if (args.vsix) {
    const [cli, ...cliArgs] = resolveCliArgsFromVSCodeExecutablePath(vscodeExecutablePath);
    const r = spawnSync(cli, [...cliArgs, '--extensions-dir', extDir, '--install-extension', path.resolve(args.vsix)], {
      stdio: 'inherit',
      shell: process.platform === 'win32',
    });
    if (r.status !== 0) throw new Error(`installing ${args.vsix} failed (exit ${r.status})`);
    extensionDevelopmentPath = writeTestHostExtension(path.join(runDir, 'test-host-ext'));
    extensionTestsEnv.ONNXC_VSCODE_EXPECT_EXTENSION_ROOT = extDir;
  }
  await runTests({
    vscodeExecutablePath,
    extensionDevelopmentPath,
    extensionTestsPath: SUITE,
    extensionTestsEnv,
    launchArgs: [ws, '--extensions-dir', extDir, '--user-data-dir', path.join(runDir, 'data'),
      '--disable-workspace-trust', '--skip-welcome', '--skip-release-notes'],
  });
} catch (e) {
  console.error(e instanceof Error ? e.message : e);
} finally {
  const resultsFile = path.join(out, 'in-host-results.json');
  if (fs.existsSync(resultsFile)) {
    const r = JSON.parse(fs.readFileSync(resultsFile, 'utf8'));
    passed = r.passed;
    failed = r.failed;
  }
  if (passed === 0 && failed === 0) failed = 1; // VS Code never ran the suite
  if (failed === 0) fs.rmSync(runDir, { recursive: true, force: true });
  else console.error(`run dir kept: ${runDir}`);
}
console.log(`vscode: ${passed} passed, ${failed} failed`);
process.exit(failed === 0 ? 0 : 1);
