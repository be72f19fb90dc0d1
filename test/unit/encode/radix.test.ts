import * as assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import * as ort from 'onnxruntime-node';
import type { ShareSpec, TechniqueSpec } from '../../../src/engine/compress';
import { indexStreamBits } from '../../../src/engine/compress/tensor';
import { applySpecs, compressWeight } from '../../../src/engine/encode/apply';
import { findPackedStreams, packArchiveWithStats, unpackArchive } from '../../../src/engine/encode/archive';
import { bitsFor, packedLength, packRadix, radixLayout, radixLength, unpackRadix } from '../../../src/engine/encode/bits';
import { chooseEncoding, encodingChoices } from '../../../src/engine/encode/choose';
import { CompressError } from '../../../src/engine/errors';
import { encodeModel, listWeights, modelFromBytes, type OnnxModel } from '../../../src/engine/onnx';
import { mulberry32 } from '../../../src/engine/util/random';
import { firstBitDifference, ortDecode } from './decodeHarness';

const LENET = fs.readFileSync(path.join(__dirname, '../../fixtures/lenet5.onnx'));
const share = (k: number, extra: Partial<{ perChannel: boolean; scaled: boolean }> = {}): ShareSpec => ({ technique: 'share', k, perChannel: false, ...extra });

function lenet(): OnnxModel {
  return modelFromBytes(LENET, 'lenet5');
}

function weight(m: OnnxModel, name: string) {
  return listWeights(m).find((w) => w.name === name)!;
}

/** The model's output for a fixed random input batch. */
async function outputs(onnx: Uint8Array): Promise<Float32Array> {
  const s = await ort.InferenceSession.create(onnx, { logSeverityLevel: 3 });
  try {
    const r = mulberry32(3);
    const x = new ort.Tensor('float32', Float32Array.from({ length: 2 * 28 * 28 }, () => r()), [2, 1, 28, 28]);
    const out = await s.run({ [s.inputNames[0]!]: x });
    return out[s.outputNames[0]!]!.data as Float32Array;
  } finally {
    await s.release();
  }
}

describe('encode/bits: mixed-radix packing', () => {
  it('picks the word size with the fewest bits per code, and no layout where bits do as well', () => {
    const rate = (k: number): number | undefined => {
      const r = radixLayout(k);
      return r && (8 * r.wordBytes) / r.digits;
    };
    // k → [word bytes, digits per word]
    const expected: Record<number, [number, number]> = { 3: [1, 5], 5: [4, 13], 6: [1, 3], 7: [4, 11], 9: [2, 5], 10: [4, 9], 11: [4, 9], 20: [4, 7], 40: [2, 3] };
    for (const [k, [wordBytes, digits]] of Object.entries(expected)) assert.deepEqual(radixLayout(Number(k)), { k: Number(k), wordBytes, digits }, `k=${k}`);
    for (const k of [1, 2, 4, 8, 12, 16, 24, 32, 48, 64, 128, 200, 255, 256, 300]) assert.equal(radixLayout(k), undefined, `k=${k}`);
    assert.equal(rate(3), 1.6);
    assert.ok(Math.abs(rate(5)! - 32 / 13) < 1e-12 && Math.abs(rate(6)! - 8 / 3) < 1e-12 && Math.abs(rate(7)! - 32 / 11) < 1e-12);
    for (let k = 3; k <= 255; k++) {
      const r = radixLayout(k);
      if (r) assert.ok(k ** r.digits <= 2 ** (8 * r.wordBytes) && (8 * r.wordBytes) / r.digits < bitsFor(k), `k=${k}`);
    }
  });

  it('round-trips codes of every radix layout at many lengths (n not a multiple of d)', () => {
    for (let k = 3; k <= 84; k++) {
      const r = radixLayout(k);
      if (!r) continue;
      for (const n of [1, r.digits - 1, r.digits, r.digits + 1, 2 * r.digits + 3, 1000, 4099]) {
        const rand = mulberry32(k * 7919 + n);
        const codes = Uint8Array.from({ length: n }, (_, i) => (i % 17 === 0 ? k - 1 : Math.floor(rand() * k)));
        const packed = packRadix(codes, r);
        assert.equal(packed.length, radixLength(n, r));
        assert.equal(packed.length, Math.ceil(n / r.digits) * r.wordBytes);
        assert.deepEqual(unpackRadix(packed, r, n), codes, `k=${k} n=${n}`);
      }
    }
  });

  it('words are Σ code_j·k^j, little-endian; bad codes are rejected', () => {
    const r5 = radixLayout(5)!;
    // 1 + 2·5 + 4·5^12 = 976 562 511 = 0x3A35_294F
    const codes = [1, 2, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 4];
    assert.deepEqual([...packRadix(codes, r5)], [0x4f, 0x29, 0x35, 0x3a]);
    assert.deepEqual([...packRadix([2, 1, 0, 0, 2, 1], radixLayout(3)!)], [2 + 1 * 3 + 2 * 81, 1]);
    assert.throws(() => packRadix([5], r5), (e: unknown) => e instanceof CompressError && /not a base-5 digit/.test(e.message));
    assert.throws(() => packRadix([0], { k: 6, wordBytes: 1, digits: 4 }), /invalid/);
  });
});

describe('encode: radix-packed codebooks in onnxruntime (LeNet-5 fc2, 10 080 weights)', () => {
  const cases: Array<[string, TechniqueSpec, string]> = [
    ...[3, 5, 6, 7, 11].map((k) => [`share k=${k}`, share(k), 'radix-codebook'] as [string, TechniqueSpec, string]),
    ['share k=6 per channel', share(6, { perChannel: true }), 'radix-codebook'],
    ['share k=5 scaled', share(5, { scaled: true }), 'radix-scaled-codebook'],
    ['prune 50% + share k=6 (kept indices base 5)', { technique: 'prune+share', prune: { technique: 'prune', pattern: 'unstructured', sparsity: 0.5 }, share: share(6) }, 'radix-masked-codebook'],
  ];
  for (const [label, spec, kind] of cases) {
    it(`${label}: chosen, decodes to the reconstruction bit for bit`, async () => {
      const m = lenet();
      const w = weight(m, 'fc2.weight');
      const ct = compressWeight(m, w, spec);
      const best = chooseEncoding(w.name, w.shape, ct);
      assert.equal(best.kind, kind);
      const got = await ortDecode(w.name, w.shape, best.graph);
      assert.equal(firstBitDifference(got, ct.weights), undefined);
    });
  }

  it('k = 6 picks radix; k = 8 and 12 (no gain) keep bit packing; sizes shrink by the expected ratio', () => {
    const m = lenet();
    const w = weight(m, 'fc1.weight');
    const n = w.params;
    for (const [k, kind] of [[6, 'radix-codebook'], [5, 'radix-codebook'], [3, 'radix-codebook'], [8, 'codebook'], [12, 'codebook'], [4, 'codebook']] as const) {
      const ct = compressWeight(m, w, share(k));
      assert.equal(ct.storage.kind === 'codebook' && ct.storage.k, k);
      assert.equal(chooseEncoding(w.name, w.shape, ct).kind, kind, `k=${k}`);
      const all = encodingChoices(w.name, w.shape, ct);
      const bits = all.find((c) => c.kind === 'codebook')!;
      const radix = all.find((c) => c.kind === 'radix-codebook');
      const r = radixLayout(k);
      assert.equal(radix === undefined, r === undefined);
      if (!radix || !r) continue;
      // Same codebook and shape; the stream shrinks from ⌈n/8⌉·b to ⌈n/d⌉·w bytes (the radix table adds its bytes).
      const table = r.digits * r.wordBytes + 40;
      assert.equal(radix.bytes - bits.bytes, radixLength(n, r) - packedLength(n, bitsFor(k)) + table - (bitsFor(k) < 8 ? 26 + 40 : 0));
      const ratio = radixLength(n, r) / packedLength(n, bitsFor(k));
      assert.ok(Math.abs(ratio - (8 * r.wordBytes) / r.digits / bitsFor(k)) < 1e-3, `k=${k}: ${ratio}`);
      // theoretical storage bits follow the stream
      assert.equal(ct.bits.indices, indexStreamBits(n, k));
      assert.equal(indexStreamBits(n, k), 8 * radixLength(n, r));
    }
    // fc1 at k = 6: 16 000 bytes of indices instead of 18 000 (2.67 bits per weight)
    assert.equal(radixLength(n, radixLayout(6)!), 16_000);
    assert.equal(radixLength(n, radixLayout(5)!), 14_772);
    assert.equal(radixLength(n, radixLayout(3)!), 9_600);
  });
});

describe('encode: radix-packed models and their archive', () => {
  it('one radix: the per-radix function with its powers inlined; the model decodes to the reconstructions', async () => {
    const m = lenet();
    const ws = listWeights(m).filter((w) => w.compressible);
    const res = applySpecs(m, new Map(ws.map((w) => [w.name, share(6)] as const)));
    assert.ok(res.layers.every((l) => l.encoding === 'radix-codebook'));
    assert.deepEqual(m.proto.functions.map((f) => f.name), ['CodebookR6']);
    // packed, codebook, shape: no radix table
    assert.ok(m.graph.node.filter((n) => n.opType === 'CodebookR6').every((n) => n.input.length === 3));
    const onnx = encodeModel(m.proto);
    const plain = lenet();
    for (const [name, w] of res.reconstructions) plain.setFloat32(name, w);
    assert.equal(firstBitDifference(await outputs(onnx), await outputs(encodeModel(plain.proto))), undefined);
  });

  it('mixed radixes and widths: one generic function each; the archive finds every stream, entropy-codes the digits, and round-trips', async () => {
    const m = lenet();
    const ws = listWeights(m).filter((w) => w.compressible);
    const mixed = [share(3), share(5), share(6, { perChannel: true }), share(7), share(16)];
    const res = applySpecs(m, new Map(ws.map((w, i) => [w.name, mixed[i]!] as const)));
    assert.deepEqual(m.proto.functions.map((f) => f.name).sort(), ['Codebook4', 'CodebookR', 'CodebookRPC']);
    const onnx = encodeModel(m.proto);
    const streams = findPackedStreams(onnx);
    assert.deepEqual(streams.map((s) => s.radix?.k ?? `${s.bits} bits`).sort(), [3, 5, 6, 7, '4 bits'].sort());
    const { archive, stats } = packArchiveWithStats(onnx, { wholeFile: false });
    assert.equal(archive[8], 2, 'format version 2 (radix entries)');
    assert.deepEqual(Buffer.from(unpackArchive(archive, 'arch.onnxc')), Buffer.from(onnx));
    for (const s of stats.streams.filter((x) => x.radix)) {
      // Coded as digits: within 3% (+ a table's worth) of their order-0 entropy, below the packed bytes.
      assert.ok(s.codedBytes <= s.entropyBytes * 1.03 + s.radix * 2 + 16, `${s.name}: ${s.codedBytes} vs ${s.entropyBytes}`);
      // (conv1's 30 bytes of base-3 digits may stay raw)
      if (s.rawBytes > 100) assert.ok(s.codedBytes < s.rawBytes && (s.coder === 'range' || s.coder === 'huffman'), `${s.name}: ${s.coder} ${s.codedBytes} B of ${s.rawBytes}`);
    }
    const plain = lenet();
    for (const [name, w] of res.reconstructions) plain.setFloat32(name, w);
    assert.equal(firstBitDifference(await outputs(onnx), await outputs(encodeModel(plain.proto))), undefined);
  });

  it('prune + share with radix kept indices: mask and digits found and restored; every coder alone round-trips', () => {
    const m = lenet();
    const spec: TechniqueSpec = { technique: 'prune+share', prune: { technique: 'prune', pattern: 'unstructured', sparsity: 0.5 }, share: share(6) };
    applySpecs(m, new Map(listWeights(m).filter((w) => w.compressible).map((w) => [w.name, spec] as const)));
    assert.deepEqual(m.proto.functions.map((f) => f.name), ['MaskedCodebookR5']);
    const onnx = encodeModel(m.proto);
    const streams = findPackedStreams(onnx);
    assert.equal(streams.filter((s) => s.radix?.k === 5).length, 5);
    assert.equal(streams.filter((s) => !s.radix && s.bits === 1).length, 5);
    for (const coders of [['raw'], ['brotli'], ['huffman'], ['range']] as const) {
      const { archive } = packArchiveWithStats(onnx, { coders, wholeFile: false });
      assert.deepEqual(Buffer.from(unpackArchive(archive, 'arch.onnxc')), Buffer.from(onnx), coders.join());
    }
  });
});
