import { strict as assert } from 'node:assert';
import { ClassificationAccumulator, FidelityAccumulator, klSoftmaxRow, topK } from '../../../src/engine/eval/metrics';
import { mulberry32 } from '../../../src/engine/util/random';

describe('eval/metrics', () => {
  it('top-k: best first, ties to the lower index, NaN last', () => {
    assert.deepEqual(Array.from(topK([1, 3, 3, 2], 1, 4, 2)), [1, 2]);
    assert.deepEqual(Array.from(topK([5, 5, 5], 1, 3, 5)), [0, 1, 2]);
    assert.deepEqual(Array.from(topK([NaN, -1, 0], 1, 3, 3)), [2, 1, 0]);
    // brute force against a sort on random rows with many ties
    const r = mulberry32(1);
    for (let t = 0; t < 200; t++) {
      const row = Array.from({ length: 9 }, () => Math.floor(r() * 4));
      const want = row.map((v, i) => [v, i] as const).sort((a, b) => b[0] - a[0] || a[1] - b[1]).slice(0, 5).map((x) => x[1]);
      assert.deepEqual(Array.from(topK(row, 1, 9, 5)), want);
    }
  });

  it('counts top-1, top-5 and agreement', () => {
    const acc = new ClassificationAccumulator();
    // 2 rows of 6 classes
    const scores = [0, 1, 2, 3, 4, 5, 9, 8, 7, 6, 5, 4];
    const top1 = acc.add(scores, 2, 6, [5, 5], [5, 1]);
    assert.deepEqual(Array.from(top1), [5, 0]);
    assert.deepEqual(acc.counts, { samples: 2, top1Correct: 1, top5Correct: 1, agree: 1 });
    assert.equal(acc.top1, 0.5);
    assert.equal(acc.agreement, 0.5);
  });

  it('SQNR, cosine and KL match closed forms', () => {
    const f = new FidelityAccumulator(2);
    f.add([1, 1, 1, 1], [1, 1, 1, 0], 2, 2);
    const r = f.result();
    assert.ok(Math.abs(r.sqnrDb - 10 * Math.log10(4)) < 1e-12);
    assert.ok(Math.abs(r.cosine - (1 + 1 / Math.SQRT2) / 2) < 1e-12);
    assert.equal(r.maxAbsDiff, 1);
    // KL(softmax([0, ln 3]) || softmax([0, 0])) = 1/4 ln(1/2) + 3/4 ln(3/2)
    const kl = klSoftmaxRow([0, Math.log(3)], [0, 0], 0, 2);
    assert.ok(Math.abs(kl - (0.25 * Math.log(0.5) + 0.75 * Math.log(1.5))) < 1e-12);
    assert.equal(klSoftmaxRow([1000, 0], [1000, 0], 0, 2), 0);
    const same = new FidelityAccumulator(3);
    same.add([1, 2, 3], [1, 2, 3], 1, 3);
    assert.equal(same.result().sqnrDb, Infinity);
    assert.equal(same.result().klSoftmax, 0);
  });
});
