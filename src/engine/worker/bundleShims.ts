/**
 * Imported first by the worker entry. esbuild bundles `sharp` (its ESM build) into `dist/worker.js`
 * as CommonJS, where `import.meta.url` becomes undefined, so sharp's top-level
 * `createRequire(import.meta.url)` throws before anything runs. This makes `createRequire(undefined)`
 * mean "relative to this bundle", so sharp's native package resolves from the extension's
 * `node_modules` as onnxruntime-node does.
 *
 * The clean fix is `external: ['sharp']` for the node targets in `esbuild.config.mjs` (not owned
 * here); this shim is then a no-op and can go.
 */
// eslint-disable-next-line @typescript-eslint/no-require-imports
const nodeModule = require('node:module') as { createRequire: (filename: string | URL) => NodeJS.Require };
const original = nodeModule.createRequire;
nodeModule.createRequire = (filename: string | URL | undefined) => original(filename ?? __filename);
export {};
