/**
 * Conformance against ONNX's own operator test models (Debian's libonnx-testdata): every model that
 * onnxruntime-node runs as shipped must give identical outputs after our read -> write round trip.
 */
import { fromBinary } from '@bufbuild/protobuf';
import * as assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import * as ort from 'onnxruntime-node';
import { toBinary } from '@bufbuild/protobuf';
import { decodeModel, encodeModel } from '../../../src/engine/onnx';
import { encodeChunks, joinChunks } from '../../../src/engine/onnx/lazyEncode';
import { toPlainTensor } from '../../../src/engine/onnx/plainTensor';
import { ModelProtoSchema, TensorProtoSchema } from '../../../src/engine/onnx/proto';

const ROOT = process.env.ONNX_TESTDATA ?? '/usr/share/libonnx-testdata/data';
const SUITES = ['node', 'pytorch-converted', 'pytorch-operator', 'simple'];

function modelDirs(): string[] {
  const dirs: string[] = [];
  for (const s of SUITES) {
    const base = path.join(ROOT, s);
    if (!fs.existsSync(base)) continue;
    for (const d of fs.readdirSync(base).sort()) {
      if (fs.existsSync(path.join(base, d, 'model.onnx'))) dirs.push(path.join(base, d));
    }
  }
  return dirs;
}

async function feedsFor(dir: string, session: ort.InferenceSession): Promise<Record<string, ort.Tensor> | undefined> {
  const ds = path.join(dir, 'test_data_set_0');
  if (!fs.existsSync(ds)) return undefined;
  const files = fs.readdirSync(ds).filter((f) => /^input_\d+\.pb$/.test(f)).sort((a, b) => parseInt(a.slice(6)) - parseInt(b.slice(6)));
  if (files.length !== session.inputNames.length) return undefined;
  const feeds: Record<string, ort.Tensor> = {};
  for (const [i, f] of files.entries()) {
    const t = fromBinary(TensorProtoSchema, fs.readFileSync(path.join(ds, f)));
    const p = toPlainTensor(t);
    feeds[session.inputNames[i]!] = new ort.Tensor(p.type, p.data as never, p.dims);
  }
  return feeds;
}

function sameOutput(a: ort.Tensor, b: ort.Tensor): boolean {
  if (a.type !== b.type || a.dims.join() !== b.dims.join()) return false;
  if (Array.isArray(a.data)) return JSON.stringify(a.data) === JSON.stringify(b.data);
  const x = a.data as ArrayLike<number>;
  const ab = new Uint8Array((x as unknown as Uint8Array).buffer, (x as unknown as Uint8Array).byteOffset, (x as unknown as Uint8Array).byteLength);
  const y = b.data as unknown as Uint8Array;
  const bb = new Uint8Array(y.buffer, y.byteOffset, y.byteLength);
  return Buffer.compare(ab, bb) === 0;
}

describe('conformance: libonnx-testdata round trip', function () {
  this.timeout(20 * 60 * 1000);
  const dirs = modelDirs();

  it('finds the ONNX test models (apt package libonnx-testdata)', () => {
    assert.ok(dirs.length > 500, `expected the ONNX test models under ${ROOT}; install libonnx-testdata (found ${dirs.length})`);
  });

  it('read -> write -> run gives outputs identical to the original for every model ORT runs', async () => {
    let passed = 0;
    let skipped = 0;
    let identicalBytes = 0;
    const failures: string[] = [];
    const opts: ort.InferenceSession.SessionOptions = { logSeverityLevel: 4, intraOpNumThreads: 1, graphOptimizationLevel: 'disabled' };
    for (const dir of dirs) {
      const name = path.relative(ROOT, dir);
      const original = fs.readFileSync(path.join(dir, 'model.onnx'));
      let sa: ort.InferenceSession | undefined;
      let sb: ort.InferenceSession | undefined;
      try {
        let written: Uint8Array;
        try {
          const decoded = decodeModel(original, name);
          written = encodeModel(decoded);
          // The chunked encoder, with every payload by reference, equals protobuf-es's own encoding.
          const reference = toBinary(ModelProtoSchema, decoded, { writeUnknownFields: true });
          if (Buffer.compare(Buffer.from(joinChunks(encodeChunks(ModelProtoSchema, decoded, 1))), Buffer.from(reference)) !== 0) {
            failures.push(`${name}: chunked encoding differs from toBinary`);
          }
        } catch (e) {
          failures.push(`${name}: round trip threw ${(e as Error).message}`);
          continue;
        }
        if (Buffer.compare(Buffer.from(written), original) === 0) identicalBytes++;
        let feeds: Record<string, ort.Tensor> | undefined;
        let expected: ort.InferenceSession.OnnxValueMapType;
        try {
          sa = await ort.InferenceSession.create(original, opts);
          feeds = await feedsFor(dir, sa);
          if (!feeds) throw new Error('no usable inputs');
          expected = await sa.run(feeds);
        } catch {
          skipped++;
          continue;
        }
        try {
          sb = await ort.InferenceSession.create(written, opts);
          const got = await sb.run(feeds);
          const bad = Object.keys(expected).filter((k) => !got[k] || !sameOutput(expected[k] as ort.Tensor, got[k] as ort.Tensor));
          if (bad.length) failures.push(`${name}: outputs differ (${bad.join(', ')})`);
          else passed++;
        } catch (e) {
          failures.push(`${name}: the round-tripped model fails in onnxruntime: ${(e as Error).message.split('\n')[0]}`);
        }
      } finally {
        await sa?.release();
        await sb?.release();
      }
    }
    console.log(`      conformance: ${dirs.length} models, ${skipped} skipped (original not runnable by onnxruntime-node), ${passed} passed, ${failures.length} failed; ${identicalBytes} re-encoded byte for byte`);
    assert.deepEqual(failures, []);
    assert.equal(passed + skipped + failures.length, dirs.length);
    assert.ok(passed > dirs.length / 2, `only ${passed} of ${dirs.length} models ran`);
  });
});
