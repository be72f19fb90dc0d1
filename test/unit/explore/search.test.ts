import { strict as assert } from 'node:assert';
import { isotonic, mckp, minBytesUnderLoss, normalQuantile, pairedLossBounds, paretoFront, type SearchLayer } from '../../../src/engine/explore/search';
import { skipReason } from '../../../src/engine/explore/analyze';
import { makeLevel } from '../../../src/engine/explore/levels';
import type { SensitivityCell } from '../../../src/engine/explore/types';
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

  it('normalQuantile matches tabulated values and inverts symmetrically', () => {
    for (const [p, z] of [[0.5, 0], [0.8, 0.8416212], [0.9, 1.2815516], [0.975, 1.959964], [0.999, 3.0902323], [0.01, -2.3263479]] as const) {
      assert.ok(Math.abs(normalQuantile(p) - z) < 1e-6, `${p}: ${normalQuantile(p)} vs ${z}`);
    }
    for (const p of [0.001, 0.02, 0.3, 0.7]) assert.ok(Math.abs(normalQuantile(p) + normalQuantile(1 - p)) < 1e-9);
  });

  it('pairedLossBounds: point estimate, ordering, and one-sided coverage near the nominal level (seeded simulation)', () => {
    const b = pairedLossBounds({ up: 12, down: 4, samples: 1000 }, 0.9);
    assert.equal(b.loss, 0.008);
    assert.ok(b.lower < b.loss && b.loss < b.upper);
    // more flips (same net loss) = wider; zero flips still leaves a positive upper bound
    assert.ok(pairedLossBounds({ up: 30, down: 22, samples: 1000 }, 0.9).upper > b.upper);
    assert.ok(pairedLossBounds({ up: 0, down: 0, samples: 1000 }, 0.9).upper > 0);
    assert.ok(pairedLossBounds({ up: 12, down: 4, samples: 1000 }, 0.95).upper > b.upper);
    // true (p⁺, p⁻) pairs typical of compressed classifiers; n = 1000 paired samples
    const rand = mulberry32(11);
    for (const [pu, pd] of [[0.01, 0.005], [0.02, 0.02], [0.004, 0.001], [0.03, 0.015]] as const) {
      let covered = 0;
      const runs = 2000;
      for (let r = 0; r < runs; r++) {
        let up = 0;
        let down = 0;
        for (let i = 0; i < 1000; i++) {
          const u = rand();
          if (u < pu) up++;
          else if (u < pu + pd) down++;
        }
        if (pu - pd <= pairedLossBounds({ up, down, samples: 1000 }, 0.9).upper) covered++;
      }
      // nominal 90 %; the adjusted interval is slightly conservative for rare flips
      assert.ok(covered / runs >= 0.87 && covered / runs <= 0.97, `p⁺=${pu} p⁻=${pd}: coverage ${covered / runs}`);
    }
  });

  it('level pruning (skipReason): not smaller than the original, or larger than a measured level of another family that changed nothing', () => {
    const levels = [makeLevel('share', 64), makeLevel('prune', 0.5), makeLevel('quant', 8), makeLevel('float', 7)];
    const cell = (level: string, onnxBytes: number, loss: number, agreement: number): SensitivityCell => ({ layer: 'w', level, loss, ci: [loss, loss], top1: null, agreement, samples: 1000, stoppedEarly: false, bits: 0, entropyBits: 0, onnxBytes, relError: 0, seconds: 0 });
    const layer = { bytes: 4000 };
    assert.match(skipReason(layer, levels[2]!, 4000, [], levels)!, /not smaller/);
    assert.equal(skipReason(layer, levels[2]!, 1100, [], levels), undefined);
    const free = [cell('share:k=64', 900, 0, 1)];
    assert.match(skipReason(layer, levels[2]!, 1100, free, levels)!, /dominated.*share:k=64/);
    assert.equal(skipReason(layer, levels[2]!, 800, free, levels), undefined, 'smaller than the free level: measured');
    assert.equal(skipReason(layer, levels[1]!, 2200, free, levels), undefined, 'pruning is always measured (combinations need it)');
    assert.equal(skipReason(layer, levels[3]!, 2000, [cell('share:k=64', 900, 0, 0.999)], levels), undefined, 'a level that changed a prediction does not dominate');
    assert.equal(skipReason(layer, levels[3]!, 2000, [cell('share:k=64', 900, 0.001, 1)], levels), undefined);
  });
});
