import * as assert from 'node:assert/strict';
import * as path from 'node:path';
import { compressTensor, type CompressedTensor, type TechniqueSpec } from '../../../src/engine/compress';
import type { LayerHessian } from '../../../src/engine/compress/gptq';
import { collectHessians } from '../../../src/engine/eval/calibration';
import { loadDatasetSpec } from '../../../src/engine/eval/datasetSpec';
import { listWeights, loadModel, type OnnxModel, type WeightInfo } from '../../../src/engine/onnx';

const FIXTURES = path.join(__dirname, '../../fixtures');

/** Σ over rows of (w − ŵ)ᵀ H (w − ŵ): the layer's output error on the calibration inputs. */
function outputError(w: Float32Array, r: Float32Array, h: LayerHessian): number {
  const d = h.dim;
  const rows = w.length / d;
  let e = 0;
  const diff = new Float64Array(d);
  for (let row = 0; row < rows; row++) {
    const H = h.groups[Math.floor(row / h.rowsPerGroup)]!;
    for (let j = 0; j < d; j++) {
      const i = h.transposed ? j * rows + row : row * d + j;
      diff[j] = w[i]! - r[i]!;
    }
    for (let a = 0; a < d; a++) {
      if (diff[a] === 0) continue;
      let s = 0;
      for (let b = 0; b < d; b++) s += H[a * d + b]! * diff[b]!;
      e += diff[a]! * s;
    }
  }
  return e;
}

/** The reconstruction the storage describes (what the ONNX decoders compute). */
function decode(ct: CompressedTensor, channels: number): Float32Array {
  const s = ct.storage;
  const n = ct.weights.length;
  const out = new Float32Array(n);
  const inner = n / channels;
  for (let i = 0; i < n; i++) {
    const c = Math.floor(i / inner);
    if (s.kind === 'codebook') out[i] = s.scale ? Math.fround(s.scale.values[c]! * s.codebook[s.indices[i]!]!) : s.codebook[s.indices[i]!]!;
    else if (s.kind === 'quant') {
      const g = s.axis === null ? 0 : c;
      out[i] = Math.fround(s.scale[g]! * (s.codes[i]! - s.zeroPoint[g]!));
    }
  }
  return out;
}

describe('compress/gptq (calibrated rounding)', function () {
  this.timeout(180_000);
  let model: OnnxModel;
  let weights: WeightInfo[];
  let hs: Map<string, LayerHessian>;
  before(async () => {
    model = await loadModel(path.join(FIXTURES, 'resnet8.onnx'));
    weights = listWeights(model).filter((w) => w.compressible);
    const spec = await loadDatasetSpec(path.join(FIXTURES, 'data/fmnist-test-1000.dataset.json'));
    hs = await collectHessians(model, weights, spec, { samples: 64 });
  });

  it('collects input statistics for every Conv and Gemm weight of ResNet-8 (symmetric, positive diagonal)', () => {
    assert.equal(hs.size, weights.length);
    for (const w of weights) {
      const h = hs.get(w.name)!;
      assert.equal(h.dim * h.rowsPerGroup * h.groups.length, w.params, w.name);
      const H = h.groups[0]!;
      for (let i = 0; i < h.dim; i += 7) {
        assert.ok(H[i * h.dim + i]! >= 0);
        for (let j = 0; j < i; j += 5) assert.equal(H[i * h.dim + j], H[j * h.dim + i]);
      }
      assert.ok(h.count > 0);
    }
  });

  const specs: TechniqueSpec[] = [
    { technique: 'share', k: 8, perChannel: false },
    { technique: 'share', k: 4, perChannel: false, scaled: true },
    { technique: 'quant', bits: 4, symmetric: true, perChannel: true, clip: 'mse' },
    { technique: 'quant', bits: 3, symmetric: false, perChannel: false, clip: 'minmax' },
  ];
  for (const spec of specs) {
    it(`${JSON.stringify(spec)}: same storage layout and bits, lower output error on every layer, storage decodes to the weights`, () => {
      for (const w of weights) {
        const tensor = { data: model.float32(w.tensor), shape: w.shape, role: w.kind, channelAxis: w.channelAxis, name: w.name };
        const h = hs.get(w.name)!;
        const plain = compressTensor(tensor, spec);
        const cal = compressTensor(tensor, { ...spec, calibrated: true } as TechniqueSpec, { calibration: h });
        assert.equal(cal.storage.kind, plain.storage.kind);
        assert.equal(cal.bits.total, plain.bits.total, 'same storage bits');
        // sharing may refit the codebook's entries (same count); quantization keeps its grid
        if (plain.storage.kind === 'codebook' && cal.storage.kind === 'codebook') assert.equal(cal.storage.codebook.length, plain.storage.codebook.length);
        if (plain.storage.kind === 'quant' && cal.storage.kind === 'quant') assert.deepEqual(cal.storage.scale, plain.storage.scale);
        if (w.channelAxis === 0) assert.deepEqual(decode(cal, w.shape[0]!), cal.weights, w.name);
        const ep = outputError(tensor.data, plain.weights, h);
        const ec = outputError(tensor.data, cal.weights, h);
        assert.ok(ec < ep, `${w.name}: calibrated ${ec.toExponential(3)} < plain ${ep.toExponential(3)}`);
        // a spec that asks for calibration without statistics rounds plainly
        if (w === weights[0]) assert.deepEqual(compressTensor(tensor, { ...spec, calibrated: true } as TechniqueSpec).weights, plain.weights);
      }
    });
  }

  const prune = { technique: 'prune' as const, pattern: 'unstructured' as const, sparsity: 0.5 };
  const masked: Array<[TechniqueSpec, TechniqueSpec]> = [
    [{ technique: 'prune+share', prune, share: { technique: 'share', k: 6, perChannel: false } }, { technique: 'prune+share', prune, share: { technique: 'share', k: 6, perChannel: false, calibrated: true } }],
    [{ technique: 'prune+quant', prune, quant: { technique: 'quant', bits: 3, symmetric: true, perChannel: true, clip: 'mse' } }, { technique: 'prune+quant', prune, quant: { technique: 'quant', bits: 3, symmetric: true, perChannel: true, clip: 'mse', calibrated: true } }],
  ];
  for (const [spec, calSpec] of masked) {
    it(`${spec.technique} calibrated: the pruned weights stay exactly 0, same storage, lower output error on every layer`, () => {
      for (const w of weights) {
        const tensor = { data: model.float32(w.tensor), shape: w.shape, role: w.kind, channelAxis: w.channelAxis, name: w.name };
        const h = hs.get(w.name)!;
        const plain = compressTensor(tensor, spec);
        const cal = compressTensor(tensor, calSpec, { calibration: h });
        assert.equal(cal.storage.kind, plain.storage.kind);
        assert.equal(cal.bits.total, plain.bits.total, 'same storage bits');
        for (let i = 0; i < plain.weights.length; i++) if (plain.weights[i] === 0 && tensor.data[i] !== 0) assert.equal(cal.weights[i], 0, `${w.name}[${i}] was pruned`);
        if (plain.storage.kind === 'codebook' && cal.storage.kind === 'codebook') {
          assert.deepEqual(cal.storage.codebook, plain.storage.codebook, 'no refit: the zero entry stays');
          const z = cal.storage.zeroIndex!;
          for (let i = 0; i < cal.weights.length; i++) assert.equal(cal.storage.indices[i] === z, plain.storage.indices[i] === z, 'same mask');
        }
        if (w.channelAxis === 0) assert.deepEqual(decode(cal, w.shape[0]!), cal.weights, w.name);
        const ep = outputError(tensor.data, plain.weights, h);
        const ec = outputError(tensor.data, cal.weights, h);
        assert.ok(ec < ep, `${w.name}: calibrated ${ec.toExponential(3)} < plain ${ep.toExponential(3)}`);
      }
    });
  }
});
