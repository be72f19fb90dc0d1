// Headless Debian Chromium through playwright-core (installed by scripts/vscode-harness-setup.sh, never downloads
// a browser), with the flags that keep it off the network.
import { createRequire } from 'node:module';
import path from 'node:path';
import util from 'node:util';

/**
 * @param {string} harnessDir the setup script's install dir
 * @returns {Promise<import('playwright-core').Browser>}
 */
export async function launchChromium(harnessDir) {
  const require = createRequire(path.join(harnessDir, 'driver', 'package.json'));
  /** @type {typeof import('playwright-core')} */
  const { chromium } = require('playwright-core');
  return chromium.launch({
    executablePath: process.env.CHROMIUM || '/usr/bin/chromium',
    headless: true,
    args: ['--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking',
      '--disable-component-update', '--disable-sync', '--disable-dev-shm-usage'],
  });
}

/** Workbench log lines that say nothing about the extension under test (shown with VERBOSE=1). */
const WORKBENCH_NOISE = [
  /^Ignoring fetching additional builtin extensions/,
  /^Updating additional builtin extensions cache/,
  /^(Resolving|Resolved) connection token/,
  /^Creating a socket/,
  /^\[Service Worker\]/,
  /^ChatSessionStore:/,
  /^\[lifecycle\] Long running operations during shutdown/,
  // The workbench tearing down after the in-host run (output view, editors):
  /^Model is disposed!/,
  /^Cannot read properties of undefined \(reading 'add'\)/,
];

/**
 * Prints extension-host console output, which the workbench mirrors to the page console as
 * ('%c INFO' | '%c  ERR' | ..., 'color: ...', ...original args). Other console output and the
 * WORKBENCH_NOISE lines are dropped unless VERBOSE is set.
 * @param {import('playwright-core').Page} page
 * @param {string} prefix
 * @returns {() => Promise<void>} resolves when everything seen so far has been printed
 */
export function mirrorExtHostConsole(page, prefix) {
  let printing = Promise.resolve();
  page.on('console', (m) => {
    printing = printing.then(async () => {
      if (process.env.VERBOSE) return void console.log(`${prefix}[page]`, m.text());
      const a = await Promise.all(m.args().map((h) => h.jsonValue().catch(() => '<unserializable>')));
      const r = typeof a[0] === 'string' && /^%c\s*(INFO|WARN|ERR)$/.exec(a[0]);
      const text = r ? util.format(...a.slice(2)) : '';
      if (r && !WORKBENCH_NOISE.some((n) => n.test(text))) console.log(`${prefix}[${r[1]}]`, text);
    });
  });
  return () => printing;
}

/**
 * The workbench URL for `folder`, with an optional `payload` (extensionDevelopmentPath, extensionTestsPath).
 * code-server's remote authority is the literal string `remote`.
 * @param {string} baseUrl @param {string} folder @param {[string, string][]} [payload]
 */
export function workbenchUrl(baseUrl, folder, payload) {
  const q = `folder=${encodeURIComponent(folder)}`;
  if (!payload?.length) return `${baseUrl}/?${q}`;
  const p = payload.map(([k, v]) => [k, `vscode-remote://remote${v}`]);
  return `${baseUrl}/?${q}&payload=${encodeURIComponent(JSON.stringify(p))}`;
}
