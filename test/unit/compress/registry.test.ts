import assert from 'node:assert/strict';
import { decodeFormat } from '../../../src/engine/compress/floatFormat';
import { COMPRESSORS, compressTensor } from '../../../src/engine/compress/registry';
import { channelLayout } from '../../../src/engine/compress/tensor';
import type {
  CompressedTensor,
  TechniqueSpec,
  WeightTensor,
} from '../../../src/engine/compress/types';
import { expectError, tensor, trainedLike } from './helpers';

/** An independent decoder of every storage kind, following the documented layouts. */
function decode(t: WeightTensor, r: CompressedTensor): Float32Array {
  const n = t.data.length;
  const out = new Float32Array(n);
  const s = r.storage;
  const l = channelLayout(t);
  const channelOf = (i: number): number => Math.floor(i / l.inner) % l.channels;
  switch (s.kind) {
    case 'codebook':
      for (let i = 0; i < n; i++)
        out[i] = s.scale
          ? Math.fround(s.scale.values[channelOf(i)]! * s.codebook[s.indices[i]!]!)
          : s.codebook[(s.axis === null ? 0 : channelOf(i)) * s.k + s.indices[i]!]!;
      return out;
    case 'quant':
      for (let i = 0; i < n; i++) {
        const c = s.axis === null ? 0 : channelOf(i);
        out[i] = Math.fround(s.scale[c]! * (s.codes[i]! - s.zeroPoint[c]!));
      }
      return out;
    case 'float':
      for (let i = 0; i < n; i++) out[i] = decodeFormat(s.codes[i]!, s.spec);
      return out;
    case 'sparse':
      for (let i = 0, j = 0; i < n; i++) out[i] = s.mask[i] ? s.values[j++]! : 0;
      return out;
    case 'lowrank':
      for (let i = 0; i < n; i++) {
        const c = channelOf(i);
        const col = Math.floor(i / (l.inner * l.channels)) * l.inner + (i % l.inner);
        let x = 0;
        for (let k = 0; k < s.rank; k++) x += s.left[c * s.rank + k]! * s.right[k * s.cols + col]!;
        out[i] = Math.fround(x);
      }
      return out;
  }
}

const specs: TechniqueSpec[] = [
  { technique: 'share', k: 8, perChannel: false },
  { technique: 'share', k: 4, perChannel: true },
  { technique: 'prune', pattern: 'unstructured', sparsity: 0.6 },
  { technique: 'share', k: 8, perChannel: false, scaled: true },
  { technique: 'prune', pattern: 'n:m', sparsity: 0, n: 4, m: 8 },
  { technique: 'prune', pattern: 'channel', sparsity: 0.25, norm: 'l2' },
  { technique: 'quant', bits: 4, symmetric: true, perChannel: true, clip: 'mse' },
  { technique: 'quant', bits: 6, symmetric: false, perChannel: false, clip: 'minmax' },
  { technique: 'float', format: 'fp16' },
  { technique: 'float', format: 'bf16m', mantissaBits: 2 },
  { technique: 'float', format: 'fp8e4m3' },
  { technique: 'lowrank', rank: 3 },
  { technique: 'lowrank', energy: 0.8 },
  {
    technique: 'prune+share',
    prune: { technique: 'prune', pattern: 'n:m', sparsity: 0 },
    share: { technique: 'share', k: 16, perChannel: false },
  },
  {
    technique: 'prune+quant',
    prune: { technique: 'prune', pattern: 'unstructured', sparsity: 0.5 },
    quant: { technique: 'quant', bits: 3, symmetric: false, perChannel: true, clip: 'minmax' },
  },
];

describe('compress/registry (every technique)', () => {
  // A MatMul [K=16, N=8] (channel axis 1) exercises non-contiguous channels everywhere.
  const data = trainedLike(16 * 8, 21);
  const t = tensor(data, [16, 8], 'matmul', 1);
  const conv = tensor(trainedLike(6 * 4 * 3 * 3, 22), [6, 4, 3, 3], 'conv', 0);

  it('registers every technique', () => {
    assert.deepEqual([...COMPRESSORS.keys()].sort(), [
      'float',
      'lowrank',
      'prune',
      'prune+quant',
      'prune+share',
      'quant',
      'share',
    ]);
  });

  for (const spec of specs) {
    it(`${JSON.stringify(spec)}: storage decodes bit-exactly, SSE and bits add up, input untouched, deterministic`, () => {
      for (const w of [t, conv]) {
        const before = w.data.slice();
        const r = compressTensor(w, spec);
        assert.deepEqual(w.data, before);
        assert.equal(r.weights.length, w.data.length);
        const d = decode(w, r);
        for (let i = 0; i < d.length; i++) assert.ok(Object.is(d[i], r.weights[i]), `element ${i}`);
        let sse = 0;
        for (let i = 0; i < d.length; i++) sse += (w.data[i]! - r.weights[i]!) ** 2;
        assert.ok(Math.abs(sse - r.sse) <= 1e-12 * (1 + sse));
        const b = r.bits;
        assert.equal(b.total, b.indices + b.codebook + b.params + b.sparsity);
        assert.equal(b.entropyTotal, b.entropyIndices + b.codebook + b.params + b.sparsity);
        assert.ok(b.total < w.data.length * 32);
        assert.deepEqual(compressTensor(w, spec).weights, r.weights);
      }
    });
  }

  const bad: [string, WeightTensor, string, string | RegExp][] = [
    [
      'NaN',
      tensor(Float32Array.of(1, NaN, 2, 3), [2, 2], 'gemm'),
      'E_TENSOR_DATA',
      'element 1 is NaN',
    ],
    [
      '-Inf',
      tensor(Float32Array.of(1, 2, -Infinity, 3), [2, 2], 'gemm'),
      'E_TENSOR_DATA',
      '-Infinity',
    ],
    ['empty', tensor(new Float32Array(0), [0, 4], 'gemm'), 'E_TENSOR_DATA', 'empty'],
    [
      'int8 data',
      {
        ...tensor(Float32Array.of(1, 2, 3, 4), [2, 2], 'gemm'),
        data: Int8Array.of(1, 2, 3, 4) as unknown as Float32Array,
      },
      'E_TENSOR_DATA',
      'Int8Array',
    ],
    [
      'shape mismatch',
      tensor(Float32Array.of(1, 2, 3), [2, 2], 'gemm'),
      'E_TENSOR_DATA',
      'holds 4',
    ],
  ];
  for (const [what, w, code, msg] of bad) {
    it(`every technique rejects ${what} with ${code}`, () => {
      for (const spec of specs) expectError(() => compressTensor(w, spec), code, msg);
    });
  }

  it('unknown technique', () => {
    expectError(
      () => compressTensor(t, { technique: 'magic' } as unknown as TechniqueSpec),
      'E_BAD_ARGUMENT',
      'magic',
    );
  });
});

describe('compress cancellation', () => {
  const t = tensor(trainedLike(64 * 40, 5), [64, 40], 'gemm', 0);
  const specs: TechniqueSpec[] = [
    { technique: 'share', k: 8, perChannel: true },
    { technique: 'quant', bits: 4, symmetric: true, perChannel: true, clip: 'mse' },
    { technique: 'lowrank', rank: 2 },
  ];
  for (const spec of specs) {
    it(`${spec.technique} stops with E_CANCELLED on an aborted signal`, () => {
      const ac = new AbortController();
      ac.abort();
      expectError(() => compressTensor(t, spec, { signal: ac.signal }), 'E_CANCELLED');
    });
  }
});
