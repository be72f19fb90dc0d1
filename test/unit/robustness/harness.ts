/** Shared helpers of the robustness tests: the built CLI run asynchronously with a timeout, folder snapshots. */
import { spawn } from 'node:child_process';
import { createHash } from 'node:crypto';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { buildSync } from 'esbuild';

export const ROOT = path.resolve(__dirname, '../../..');
/**
 * A private CLI bundle (`dist/.robustness-<pid>/cli.js`, same options as esbuild.config.mjs): others
 * rebuild `dist/cli.js` while these tests run, and a half-written bundle is not a robustness bug.
 */
export const CLI = path.join(ROOT, 'dist', `.robustness-${process.pid}`, 'cli.js');
let built = false;

/** Builds {@link CLI} once per process (removed when the process exits). */
export function buildCli(): void {
  if (built) return;
  buildSync({ entryPoints: [path.join(ROOT, 'src/cli/main.ts')], outfile: CLI, bundle: true, platform: 'node', target: 'node20', format: 'cjs', external: ['vscode', 'onnxruntime-node', 'sharp'], logLevel: 'warning' });
  built = true;
  process.once('exit', () => fs.rmSync(path.dirname(CLI), { recursive: true, force: true }));
}

/** What a CLI run gave. `code` is null when the process was killed (timeout or signal). */
export interface CliRun {
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
  ms: number;
  timedOut: boolean;
}

/** Runs `node dist/cli.js args...`, killing it (SIGKILL) after `timeoutMs`. */
export function runCli(args: string[], o: { timeoutMs?: number; cwd?: string; env?: NodeJS.ProcessEnv } = {}): Promise<CliRun> {
  const t0 = performance.now();
  return new Promise((resolve) => {
    const child = spawn(process.execPath, [CLI, ...args], { cwd: o.cwd ?? ROOT, env: o.env ?? process.env, stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    let timedOut = false;
    child.stdout.setEncoding('utf8').on('data', (d: string) => (stdout += d));
    child.stderr.setEncoding('utf8').on('data', (d: string) => (stderr += d));
    const timer = setTimeout(() => {
      timedOut = true;
      child.kill('SIGKILL');
    }, o.timeoutMs ?? 10_000);
    child.on('close', (code, signal) => {
      clearTimeout(timer);
      resolve({ code, signal, stdout, stderr, ms: performance.now() - t0, timedOut });
    });
  });
}

/** Every file under `dir` (relative path -> sha256), folders as `path/` -> ''. */
export function snapshot(dir: string): Map<string, string> {
  const out = new Map<string, string>();
  if (!fs.existsSync(dir)) return out;
  const walk = (d: string, rel: string): void => {
    for (const e of fs.readdirSync(d, { withFileTypes: true })) {
      const r = rel ? `${rel}/${e.name}` : e.name;
      if (e.isDirectory()) {
        out.set(`${r}/`, '');
        walk(path.join(d, e.name), r);
      } else out.set(r, createHash('sha256').update(fs.readFileSync(path.join(d, e.name))).digest('hex'));
    }
  };
  walk(dir, '');
  return out;
}

/** Differences between two snapshots, as `+added`, `-removed`, `~changed` lines. */
export function diffSnapshots(a: Map<string, string>, b: Map<string, string>): string[] {
  const d: string[] = [];
  for (const [k, v] of b) if (!a.has(k)) d.push(`+${k}`);
  else if (a.get(k) !== v) d.push(`~${k}`);
  for (const k of a.keys()) if (!b.has(k)) d.push(`-${k}`);
  return d;
}

/** Runs `tasks` with at most `n` at a time; results in order. */
export function pool<T>(tasks: Array<() => Promise<T>>, n: number): Array<Promise<T>> {
  const results: Array<Promise<T>> = [];
  let running = 0;
  const queue: Array<() => void> = [];
  for (const task of tasks) {
    results.push(
      new Promise<T>((resolve, reject) => {
        const start = (): void => {
          running++;
          task()
            .then(resolve, reject)
            .finally(() => {
              running--;
              queue.shift()?.();
            });
        };
        if (running < n) start();
        else queue.push(start);
      }),
    );
  }
  return results;
}

/** The last non-empty line of a stream. */
export function lastLine(s: string): string {
  const lines = s.split('\n').filter((l) => l.trim() !== '');
  return lines[lines.length - 1] ?? '';
}
