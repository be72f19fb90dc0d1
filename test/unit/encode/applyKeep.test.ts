import * as assert from 'node:assert/strict';
import * as fs from 'node:fs';
import { applySpecs } from '../../../src/engine/encode/apply';
import { resolvePlan } from '../../../src/engine/explore/plan';
import { encodeModel, listWeights, modelFromBytes } from '../../../src/engine/onnx';

const LENET = 'test/fixtures/lenet5.onnx';

describe('encode/apply: keepReconstructions', () => {
  it('false keeps no reconstruction and writes the same model and layer results', () => {
    const bytes = fs.readFileSync(LENET);
    const runs = [true, false].map((keepReconstructions) => {
      const m = modelFromBytes(bytes, LENET);
      const r = applySpecs(m, resolvePlan({ default: { technique: 'quant', bits: 4 } }, listWeights(m)), { keepReconstructions });
      return { r, encoded: encodeModel(m.proto) };
    });
    assert.ok(runs[0]!.r.reconstructions.size >= 3);
    assert.equal(runs[1]!.r.reconstructions.size, 0);
    assert.deepEqual(runs[1]!.r.layers, runs[0]!.r.layers);
    assert.ok(Buffer.from(runs[1]!.encoded).equals(Buffer.from(runs[0]!.encoded)));
  });
});
