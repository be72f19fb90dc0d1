import { floatToHalf, halfToFloat } from '../../../src/engine/util/half';
import * as assert from 'node:assert/strict';
import { compressTensor, type WeightTensor } from '../../../src/engine/compress';
import { mulberry32, gaussian } from '../../../src/engine/util/random';

/** A conv weight whose output channels differ in scale by up to 100× (as after folding batch norm). */
function foldedConv(seed: number): WeightTensor {
  const g = gaussian(mulberry32(seed));
  const [O, I, K] = [16, 8, 9];
  const data = new Float32Array(O * I * K);
  for (let o = 0; o < O; o++) {
    const s = 10 ** (-2 + (2 * o) / (O - 1));
    for (let j = 0; j < I * K; j++) data[o * I * K + j] = g() * s;
  }
  return { data, shape: [O, I, 3, 3], role: 'conv', channelAxis: 0, name: 'folded' };
}

describe('compress/scaledShare', () => {
  it('reconstruction is exactly fround(scale[c] · codebook[index]) and bits = n·⌈log2 k⌉ + 16k + 16C (float16 codebook and scales)', () => {
    const t = foldedConv(1);
    const ct = compressTensor(t, { technique: 'share', k: 16, perChannel: false, scaled: true });
    const s = ct.storage;
    assert.equal(s.kind, 'codebook');
    if (s.kind !== 'codebook' || !s.scale) throw new Error('expected scaled codebook storage');
    assert.equal(s.scale.values.length, 16);
    for (let i = 0; i < t.data.length; i++) {
      const c = Math.floor(i / 72);
      assert.equal(ct.weights[i], Math.fround(s.scale.values[c]! * s.codebook[s.indices[i]!]!));
    }
    // scales are float16 values (stored in 2 bytes each)
    for (const v of s.scale.values) assert.equal(v, halfToFloat(floatToHalf(v)));
    assert.equal(ct.bits.total, t.data.length * 4 + 16 * 16 + 16 * 16);
    for (let j = 1; j < s.k; j++) assert.ok(s.codebook[j]! >= s.codebook[j - 1]!, 'ascending codebook');
    let sse = 0;
    for (let i = 0; i < t.data.length; i++) sse += (t.data[i]! - ct.weights[i]!) ** 2;
    assert.ok(Math.abs(sse - ct.sse) <= 1e-9 * Math.max(1, sse));
  });

  it('on channels of very different scale it beats per-tensor sharing by far and costs C floats, not C·k', () => {
    const t = foldedConv(2);
    const plain = compressTensor(t, { technique: 'share', k: 16, perChannel: false });
    const scaled = compressTensor(t, { technique: 'share', k: 16, perChannel: false, scaled: true });
    const perCh = compressTensor(t, { technique: 'share', k: 16, perChannel: true });
    // Relative error per channel matters for the small channels: compare the worst channel's error.
    const worst = (w: Float32Array): number => {
      let m = 0;
      for (let o = 0; o < 16; o++) {
        let e = 0;
        let n = 0;
        for (let j = 0; j < 72; j++) {
          e += (t.data[o * 72 + j]! - w[o * 72 + j]!) ** 2;
          n += t.data[o * 72 + j]! ** 2;
        }
        m = Math.max(m, e / n);
      }
      return m;
    };
    assert.ok(worst(scaled.weights) < worst(plain.weights) / 20, `${worst(scaled.weights)} vs ${worst(plain.weights)}`);
    assert.ok(scaled.bits.total < perCh.bits.total, 'cheaper than per-channel codebooks');
  });
});
