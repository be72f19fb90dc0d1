// Bundles the in-host VS Code test suite: test/vscode/suite/**/*.ts -> dist/test/vscode/suite/**/*.js.
// One bundle per file because mocha loads the `*.vscode.test.js` files itself (index.js lists them).
// `vscode` is provided by the extension host; mocha and onnxruntime-node are resolved from node_modules.
// Usage: node test/vscode/esbuild.test.mjs   (run by `npm run test:vscode`)
import * as esbuild from 'esbuild';
import { readdirSync } from 'node:fs';
import { join } from 'node:path';

const root = 'test/vscode/suite';
const entryPoints = readdirSync(root, { recursive: true, encoding: 'utf8' })
  .filter((f) => f === 'index.ts' || f.endsWith('.vscode.test.ts'))
  .map((f) => join(root, f));

await esbuild.build({
  entryPoints,
  outbase: root,
  outdir: 'dist/test/vscode/suite',
  bundle: true,
  platform: 'node',
  target: 'node20',
  format: 'cjs',
  sourcemap: 'inline',
  external: ['vscode', 'mocha', 'onnxruntime-node'],
  logLevel: 'warning',
});
