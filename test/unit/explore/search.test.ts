import { strict as assert } from 'node:assert';
import { isotonic, mckp, minBytesUnderLoss, paretoFront, type SearchLayer } from '../../../src/engine/explore/search';
import { mulberry32 } from '../../../src/engine/util/random';

/** Every combination of one option per group (brute force). */
function* all(sizes: number[]): Generator<number[]> {
  const c = sizes.map(() => 0);
  for (;;) {
    yield [...c];
    let i = 0;
    while (i < sizes.length && ++c[i]! >= sizes[i]!) c[i++] = 0;
    if (i === sizes.length) return;
  }
}

describe('explore/search', () => {
  it('isotonic regression is non-decreasing and optimal (PAVA vs brute force on small cases)', () => {
    assert.deepEqual(isotonic([1, 3, 2, 4]), [1, 2.5, 2.5, 4]);
    assert.deepEqual(isotonic([3, 2, 1]), [2, 2, 2]);
    const rand = mulberry32(3);
    for (let t = 0; t < 50; t++) {
      const v = Array.from({ length: 5 }, () => Math.round(rand() * 10));
      const f = isotonic(v);
      for (let i = 1; i < f.length; i++) assert.ok(f[i]! >= f[i - 1]! - 1e-12);
      // the mean is preserved and no monotone grid sequence is closer
      assert.ok(Math.abs(f.reduce((a, b) => a + b) - v.reduce((a, b) => a + b)) < 1e-9);
      const err = (g: number[]) => g.reduce((s, x, i) => s + (x - v[i]!) ** 2, 0);
      for (const g of all([11, 11, 11, 11, 11])) {
        if (g.every((x, i) => i === 0 || x >= g[i - 1]!)) assert.ok(err(f) <= err(g) + 1e-9);
      }
    }
  });

  it('multiple-choice knapsack equals brute force', () => {
    const rand = mulberry32(7);
    for (let t = 0; t < 60; t++) {
      const groups = Array.from({ length: 4 }, () => {
        const n = 1 + Math.floor(rand() * 4);
        return { cost: Array.from({ length: n }, () => Math.floor(rand() * 6)), value: Array.from({ length: n }, () => Math.round(rand() * 100)) };
      });
      const cap = Math.floor(rand() * 14);
      let best = Infinity;
      for (const c of all(groups.map((g) => g.cost.length))) {
        const cost = c.reduce((s, o, i) => s + groups[i]!.cost[o]!, 0);
        if (cost <= cap) best = Math.min(best, c.reduce((s, o, i) => s + groups[i]!.value[o]!, 0));
      }
      const got = mckp(groups, cap);
      if (!Number.isFinite(best)) assert.equal(got, undefined);
      else {
        assert.ok(got);
        assert.ok(got.reduce((s, o, i) => s + groups[i]!.cost[o]!, 0) <= cap);
        assert.equal(got.reduce((s, o, i) => s + groups[i]!.value[o]!, 0), best);
      }
    }
  });

  it('minBytesUnderLoss never exceeds the loss budget and uses it', () => {
    const layer = (name: string, opts: Array<[number, number]>): SearchLayer => ({
      name,
      options: opts.map(([bytes, loss], i) => ({ key: `o${i}`, spec: null, bytes, bits: bytes * 8, loss })),
    });
    const layers = [layer('a', [[1000, 0], [500, 0.002], [250, 0.004]]), layer('b', [[800, 0], [400, 0.001], [100, 0.01]])];
    assert.deepEqual(minBytesUnderLoss(layers, 0.005), [2, 1]);
    assert.deepEqual(minBytesUnderLoss(layers, 0.0029), [1, 0]);
    assert.deepEqual(minBytesUnderLoss(layers, 0.02), [2, 2]);
  });

  it('Pareto front keeps exactly the non-dominated points', () => {
    const pts = [
      { bytes: 10, loss: 0.5 },
      { bytes: 20, loss: 0.1 },
      { bytes: 15, loss: 0.6 },
      { bytes: 30, loss: 0.1 },
      { bytes: 5, loss: 2 },
    ];
    assert.deepEqual([...paretoFront(pts)].sort(), [0, 1, 4]);
  });
});
