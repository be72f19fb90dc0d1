// The workspace folder the tests open: tiny.onnx (always; names X, Y -> Z) plus the project's fixtures
// (test/fixtures/*.onnx and test/fixtures/data/, or another folder given) when they exist.
import fs from 'node:fs';
import path from 'node:path';
import { createRequire } from 'node:module';
import { tinyAddModel } from './tinyOnnx.mjs';

/**
 * @param {string} fixtures the fixtures folder (normally test/fixtures; it may not exist yet)
 * @param {string} ws an empty folder to fill
 * @returns {string[]} the `.onnx` file names now in `ws`
 */
export function prepareWorkspace(fixtures, ws) {
  fs.mkdirSync(ws, { recursive: true });
  fs.writeFileSync(path.join(ws, 'tiny.onnx'), tinyAddModel());
  if (fs.existsSync(fixtures)) {
    for (const f of fs.readdirSync(fixtures).filter((f) => f.endsWith('.onnx'))) {
      fs.copyFileSync(path.join(fixtures, f), path.join(ws, f));
    }
    if (fs.existsSync(path.join(fixtures, 'data'))) {
      fs.cpSync(path.join(fixtures, 'data'), path.join(ws, 'data'), { recursive: true });
    }
  }
  // Short evaluations so the compression tests stay within a couple of minutes (the user-facing default is 1000).
  fs.mkdirSync(path.join(ws, '.vscode'), { recursive: true });
  fs.writeFileSync(path.join(ws, '.vscode/settings.json'), JSON.stringify({ 'onnxCompress.samples': 200 }, null, 2));
  return fs.readdirSync(ws).filter((f) => f.endsWith('.onnx')).sort();
}

/**
 * Input and output names of a model as the project's onnxruntime-node reports them in plain Node.
 * @param {string} root the repository root
 * @param {string} file
 */
export async function describeModel(root, file) {
  const ort = createRequire(path.join(root, 'package.json'))('onnxruntime-node');
  const session = await ort.InferenceSession.create(file);
  try {
    return {
      name: path.basename(file),
      /** @type {string[]} */ inputNames: [...session.inputNames],
      /** @type {string[]} */ outputNames: [...session.outputNames],
    };
  } finally {
    await session.release();
  }
}

/**
 * An empty development extension. Passed as extensionDevelopmentPath when testing an installed .vsix, so the
 * extension host runs the suite while the extension under test is the installed copy.
 * @param {string} dir
 */
export function writeTestHostExtension(dir) {
  fs.mkdirSync(dir, { recursive: true });
  fs.writeFileSync(path.join(dir, 'package.json'), JSON.stringify({
    name: 'onnxc-vscode-test-host', publisher: 'onnx-compress-test', version: '0.0.0', engines: { vscode: '*' },
  }));
  return dir;
}
