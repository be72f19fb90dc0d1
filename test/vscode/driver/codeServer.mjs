// Starts and stops an isolated code-server (VS Code 1.100.3 server + web workbench) for one test run.
import { spawn, execFileSync } from 'node:child_process';
import fs from 'node:fs';
import net from 'node:net';
import path from 'node:path';

/**
 * Environment that keeps code-server, its extension host and Chromium inside `runDir`: nothing lands in the real
 * ~/.config, ~/.local or ~/.cache (code-server config and logs, Chromium profile and crash dirs, @vscode/deviceid
 * and onnxruntime-node device-id files). `EXTENSIONS_GALLERY={}` turns off Open VSX lookups.
 * @param {string} runDir
 */
export function isolatedEnv(runDir) {
  const home = path.join(runDir, 'home');
  return {
    ...process.env,
    HOME: home,
    XDG_CACHE_HOME: path.join(home, '.cache'),
    XDG_CONFIG_HOME: path.join(home, '.config'),
    XDG_DATA_HOME: path.join(home, '.local/share'),
    EXTENSIONS_GALLERY: '{}',
  };
}

/** Settings that stop the Welcome page and other late editors from taking focus during UI tests. */
export const USER_SETTINGS = {
  'workbench.startupEditor': 'none',
  'workbench.welcomePage.walkthroughs.openOnInstall': false,
  'workbench.tips.enabled': false,
  'telemetry.telemetryLevel': 'off',
  'update.mode': 'none',
  'extensions.autoCheckUpdates': false,
  'extensions.autoUpdate': false,
  'workbench.enableExperiments': false,
  'security.workspace.trust.enabled': false,
};

/** @returns {Promise<number>} a port that was free on 127.0.0.1 a moment ago */
export function freePort() {
  return new Promise((resolve, reject) => {
    const s = net.createServer();
    s.on('error', reject);
    s.listen(0, '127.0.0.1', () => {
      const addr = s.address();
      s.close(() => resolve(typeof addr === 'object' && addr ? addr.port : 0));
    });
  });
}

/**
 * Installs a .vsix into `extensionsDir` with code-server's own CLI (as a user would).
 * @param {{ csBin: string, runDir: string, extensionsDir: string, vsix: string }} o
 * @returns {string} the CLI's output
 */
export function installVsix({ csBin, runDir, extensionsDir, vsix }) {
  return execFileSync(
    csBin,
    ['--extensions-dir', extensionsDir, '--user-data-dir', path.join(runDir, 'data'),
      '--config', path.join(runDir, 'home/config.yaml'), '--install-extension', vsix],
    { env: isolatedEnv(runDir), encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'], timeout: 120_000 },
  );
}

/** @param {number} pid @returns {number[]} all descendants of pid, deepest last */
function descendants(pid) {
  let out;
  try {
    out = execFileSync('ps', ['-o', 'pid=', '--ppid', String(pid)], { encoding: 'utf8' });
  } catch {
    return []; // ps exits 1 when there are no children
  }
  const kids = out.split(/\s+/).filter(Boolean).map(Number);
  return kids.flatMap((k) => [k, ...descendants(k)]);
}

/**
 * Starts code-server on a free port of 127.0.0.1 and waits for /healthz.
 * It runs in its own process group; `stop()` kills that group and every descendant (the extension host outlives
 * the browser tab for a reconnect grace period, so closing the page is not enough).
 * With `untrusted`, workspace trust is on and folders open in Restricted Mode without the startup prompt (a fresh
 * user data dir trusts nothing).
 * @param {{ csBin: string, runDir: string, extensionsDir: string, env?: Record<string, string>, untrusted?: boolean }} o
 */
export async function startCodeServer({ csBin, runDir, extensionsDir, env = {}, untrusted = false }) {
  fs.mkdirSync(path.join(runDir, 'data/User'), { recursive: true });
  fs.mkdirSync(path.join(runDir, 'home'), { recursive: true });
  const settings = untrusted
    ? { ...USER_SETTINGS, 'security.workspace.trust.enabled': true, 'security.workspace.trust.startupPrompt': 'never', 'security.workspace.trust.banner': 'never' }
    : USER_SETTINGS;
  fs.writeFileSync(path.join(runDir, 'data/User/settings.json'), JSON.stringify(settings, null, 2));
  const port = await freePort();
  const logFile = path.join(runDir, 'code-server.log');
  const log = fs.openSync(logFile, 'a');
  const child = spawn(
    csBin,
    ['--auth', 'none', '--bind-addr', `127.0.0.1:${port}`, '--disable-telemetry', '--disable-update-check',
      ...(untrusted ? [] : ['--disable-workspace-trust']), '--disable-getting-started-override',
      '--config', path.join(runDir, 'home/config.yaml'), '--user-data-dir', path.join(runDir, 'data'),
      '--extensions-dir', extensionsDir],
    { env: { ...isolatedEnv(runDir), ...env }, stdio: ['ignore', log, log], detached: true },
  );
  fs.closeSync(log);
  const pid = /** @type {number} */ (child.pid);
  let exited = false;
  child.on('exit', () => { exited = true; });

  const stop = async () => {
    const pids = [...descendants(pid).reverse(), pid];
    const signal = (/** @type {NodeJS.Signals} */ sig) => {
      try { process.kill(-pid, sig); } catch { /* group gone */ }
      for (const p of pids) try { process.kill(p, sig); } catch { /* already gone */ }
    };
    signal('SIGTERM');
    for (let i = 0; i < 20 && pids.some(alive); i++) await sleep(100);
    signal('SIGKILL');
  };

  const url = `http://127.0.0.1:${port}`;
  for (const end = Date.now() + 30_000; ; await sleep(200)) {
    if (exited) throw new Error(`code-server exited at startup, see ${logFile}:\n${fs.readFileSync(logFile, 'utf8')}`);
    if (Date.now() > end) { await stop(); throw new Error(`code-server not healthy after 30 s, see ${logFile}`); }
    try {
      if ((await fetch(`${url}/healthz`)).ok) break;
    } catch { /* not listening yet */ }
  }
  return { pid, port, url, logFile, stop };
}

/** @param {number} pid */
function alive(pid) {
  try { process.kill(pid, 0); return true; } catch { return false; }
}

/** @param {number} ms */
export const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
