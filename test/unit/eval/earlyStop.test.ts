import { strict as assert } from 'node:assert';
import { bernoulliKl, klBounds, SequentialTest } from '../../../src/engine/eval/earlyStop';
import { mulberry32 } from '../../../src/engine/util/random';

/** Runs the test over `losses` in a seeded random order, `batch` at a time; returns the stop. */
function run(losses: number[], budget: number, batch: number, seed: number, twoSided = false) {
  const r = mulberry32(seed);
  const p = losses.slice();
  for (let i = p.length - 1; i > 0; i--) {
    const j = Math.floor(r() * (i + 1));
    [p[i], p[j]] = [p[j]!, p[i]!];
  }
  const t = new SequentialTest(budget, { population: p.length, maxLooks: Math.ceil(p.length / batch), twoSided });
  for (let s = 0; s < p.length; s += batch) {
    const b = p.slice(s, s + batch);
    t.add(b.filter((x) => x > 0).length, b.filter((x) => x < 0).length, b.length);
    const d = t.decide();
    if (d) return { decision: d, n: Math.min(p.length, s + batch) };
  }
  return { decision: undefined, n: p.length };
}

describe('eval/earlyStop', () => {
  it('KL bounds solve n·KL(p̂‖q) = ln(1/δ), shrink with n, and match the closed form at k = 0', () => {
    const [lo, hi] = klBounds(30, 100, 0.01);
    assert.ok(Math.abs(100 * bernoulliKl(0.3, hi) - Math.log(100)) < 1e-6);
    assert.ok(Math.abs(100 * bernoulliKl(0.3, lo) - Math.log(100)) < 1e-6);
    const [lo4, hi4] = klBounds(120, 400, 0.01);
    assert.ok(hi4 - lo4 < hi - lo && lo < 0.3 && hi > 0.3);
    // k = 0: n·ln(1/(1−q)) = ln(1/δ)  →  q = 1 − δ^(1/n)
    assert.ok(Math.abs(klBounds(0, 200, 0.05)[1] - (1 - 0.05 ** (1 / 200))) < 1e-9);
    assert.deepEqual(klBounds(0, 200, 0.05)[0], 0);
    const t = new SequentialTest(0.1, { population: 10, maxLooks: 1 });
    t.add(3, 1, 10);
    assert.deepEqual(t.interval(), { mean: 0.2, lo: 0.2, hi: 0.2, n: 10 });
  });

  it('stops early on clear cases, in the right direction', () => {
    const none = Array(1000).fill(0);
    const r1 = run(none, 0.05, 50, 1);
    assert.equal(r1.decision, 'within');
    assert.ok(r1.n < 1000, `stopped at ${r1.n}`);
    const all = Array(1000).fill(1);
    const r2 = run(all, 0.05, 50, 1);
    assert.equal(r2.decision, 'over');
    assert.ok(r2.n <= 100, `stopped at ${r2.n}`);
  });

  it('does not stop early when the loss sits at the budget, and decides exactly at the end', () => {
    const at = Array.from({ length: 1000 }, (_, i) => (i < 100 ? 1 : 0)); // mean 0.1
    const r = run(at, 0.1, 50, 2);
    assert.equal(r.n, 1000);
    assert.equal(r.decision, 'within');
  });

  it('early decisions agree with the full-data decision (200 seeded orders, accuracy-drop losses)', () => {
    // population: drop = (60 − 20) / 1000 = 0.04 with losses in {−1, 0, 1}
    const pop = [...Array(60).fill(1), ...Array(20).fill(-1), ...Array(920).fill(0)];
    for (const budget of [0.01, 0.02, 0.06, 0.1]) {
      const truth = 0.04 <= budget ? 'within' : 'over';
      for (let seed = 0; seed < 50; seed++) assert.equal(run(pop, budget, 50, seed, true).decision, truth, `budget ${budget} seed ${seed}`);
    }
  });
});
