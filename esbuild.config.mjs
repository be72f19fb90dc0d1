// One build script, one entry per target (see docs/CONTRIBUTING.md).
// node targets keep `vscode` and `onnxruntime-node` external (native binaries stay in node_modules);
// the webview targets the browser.
import * as esbuild from 'esbuild';
import { existsSync } from 'node:fs';

const watch = process.argv.includes('--watch');
const production = process.argv.includes('--production');

/** @type {esbuild.BuildOptions} */
const node = {
  bundle: true,
  platform: 'node',
  target: 'node20',
  format: 'cjs',
  sourcemap: !production,
  minify: production,
  external: ['vscode', 'onnxruntime-node', 'sharp'],
  logLevel: 'warning',
};

const targets = [
  { ...node, entryPoints: { extension: 'src/extension/extension.ts' }, outdir: 'dist' },
  { ...node, entryPoints: { cli: 'src/cli/main.ts' }, outdir: 'dist', banner: { js: '#!/usr/bin/env node' } },
  { ...node, entryPoints: { worker: 'src/engine/worker/worker.ts' }, outdir: 'dist' },
  { ...node, entryPoints: { bench: 'bench/main.ts' }, outdir: 'dist' },
  {
    bundle: true,
    platform: 'browser',
    target: 'es2022',
    format: 'iife',
    sourcemap: !production,
    minify: production,
    entryPoints: { webview: 'webview/main.ts' },
    outdir: 'dist',
    logLevel: 'warning',
  },
].filter((t) => Object.values(t.entryPoints).every((p) => existsSync(p)));

if (watch) {
  for (const t of targets) await (await esbuild.context(t)).watch();
} else {
  await Promise.all(targets.map((t) => esbuild.build(t)));
}
