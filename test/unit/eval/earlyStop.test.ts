import { strict as assert } from 'node:assert';
import { bernoulliKl, hypergeometricBounds, hypergeometricTail, klBounds, SequentialTest, type SequentialTestOptions } from '../../../src/engine/eval/earlyStop';
import { mulberry32 } from '../../../src/engine/util/random';

/** Runs the test over `losses` in a seeded random order, `batch` at a time; returns the stop. */
function run(losses: number[], budget: number, batch: number, seed: number, twoSided = false, extra: Partial<SequentialTestOptions> = {}) {
  const r = mulberry32(seed);
  const p = losses.slice();
  for (let i = p.length - 1; i > 0; i--) {
    const j = Math.floor(r() * (i + 1));
    [p[i], p[j]] = [p[j]!, p[i]!];
  }
  const t = new SequentialTest(budget, { population: p.length, maxLooks: Math.ceil(p.length / batch), twoSided, ...extra });
  for (let s = 0; s < p.length; s += batch) {
    const b = p.slice(s, s + batch);
    t.add(b.filter((x) => x > 0).length, b.filter((x) => x < 0).length, b.length);
    const d = t.decide();
    if (d) return { decision: d, n: Math.min(p.length, s + batch) };
  }
  return { decision: undefined, n: p.length };
}

/** Hypergeometric pmf by the product formula (independent of the code under test). */
function pmf(x: number, N: number, K: number, n: number): number {
  if (x < Math.max(0, n - (N - K)) || x > Math.min(n, K)) return 0;
  let lp = 0;
  const lnC = (a: number, b: number) => {
    let s = 0;
    for (let i = 1; i <= b; i++) s += Math.log(a - b + i) - Math.log(i);
    return s;
  };
  lp = lnC(K, x) + lnC(N - K, n - x) - lnC(N, n);
  return Math.exp(lp);
}

/** A population of N paired losses: `up` samples +1, `down` samples −1, the rest 0. */
const population = (N: number, up: number, down: number) => [...Array(up).fill(1), ...Array(down).fill(-1), ...Array(N - up - down).fill(0)];

describe('eval/earlyStop', () => {
  it('hypergeometric tails equal sums of the pmf', () => {
    for (const [N, K, n] of [[60, 13, 17], [1000, 4, 500], [1000, 300, 900], [50, 0, 10], [50, 50, 10]] as const) {
      for (let k = 0; k <= n; k += Math.max(1, Math.floor(n / 7))) {
        let le = 0;
        for (let x = 0; x <= k; x++) le += pmf(x, N, K, n);
        let ge = 0;
        for (let x = k; x <= n; x++) ge += pmf(x, N, K, n);
        assert.ok(Math.abs(hypergeometricTail(k, N, K, n, false) - le) < 1e-9, `P(X ≤ ${k}) N=${N} K=${K} n=${n}`);
        assert.ok(Math.abs(hypergeometricTail(k, N, K, n, true) - ge) < 1e-9, `P(X ≥ ${k}) N=${N} K=${K} n=${n}`);
      }
    }
  });

  it('hypergeometric bounds have exact coverage ≥ 1 − δ for every population count, and are not loose', () => {
    const delta = 0.05;
    for (const [N, n] of [[200, 20], [200, 100], [200, 180], [1000, 300]] as const) {
      let worst = 0;
      for (let K = 0; K <= N; K += N === 1000 ? 11 : 2) {
        // P(hi < K) and P(lo > K) over the distribution of the observed count x
        let missHi = 0;
        let missLo = 0;
        for (let x = Math.max(0, n - (N - K)); x <= Math.min(n, K); x++) {
          const [lo, hi] = hypergeometricBounds(x, n, N, delta);
          if (hi < K) missHi += pmf(x, N, K, n);
          if (lo > K) missLo += pmf(x, N, K, n);
        }
        assert.ok(missHi <= delta + 1e-12 && missLo <= delta + 1e-12, `N=${N} n=${n} K=${K}: miss ${missHi}, ${missLo}`);
        worst = Math.max(worst, missHi, missLo);
      }
      // exact bounds: some K gets close to δ (a bound that is merely valid would sit far below)
      assert.ok(worst > delta / 3, `N=${N} n=${n}: largest miss ${worst}`);
    }
    assert.deepEqual(hypergeometricBounds(3, 1000, 1000, 0.001), [3, 3]);
    // 0 flips in 500 of 1000: at most ⌊log2(1/δ)⌋-ish flips can hide in the other half
    assert.deepEqual(hypergeometricBounds(0, 500, 1000, 0.0025), [0, 8]);
    assert.throws(() => hypergeometricBounds(5, 4, 10, 0.05), /k ≤ n ≤ N/);
  });

  it('the stopping rule errs in at most δ of seeded runs, at the budget from both sides (2000 runs)', () => {
    // Worst cases: the full-data loss just above the budget (a wrong "within" is possible) and exactly
    // at it (a wrong "over" is possible); with labels (U − D) and without (disagreement U).
    const cases: { pop: number[]; budget: number; twoSided: boolean; truth: 'within' | 'over' }[] = [
      { pop: population(1000, 21, 10), budget: 0.01, twoSided: true, truth: 'over' },
      { pop: population(1000, 20, 10), budget: 0.01, twoSided: true, truth: 'within' },
      { pop: population(1000, 51, 0), budget: 0.05, twoSided: false, truth: 'over' },
      { pop: population(1000, 50, 0), budget: 0.05, twoSided: false, truth: 'within' },
    ];
    for (const c of cases) {
      let wrong = 0;
      let early = 0;
      for (let seed = 0; seed < 500; seed++) {
        const r = run(c.pop, c.budget, 50, seed, c.twoSided);
        if (r.decision !== c.truth) wrong++;
        if (r.n < 1000) early++;
      }
      assert.ok(wrong / 500 <= 0.05, `budget ${c.budget} truth ${c.truth}: ${wrong} wrong of 500`);
      // every run decides by the end, so a wrong decision can only be an early one
      assert.ok(wrong <= early);
    }
  });

  it('settles clear cases after a few hundred samples (paired flips, finite population)', () => {
    // 3 up / 2 down flips in 1000 (loss 0.1 point) against 5 points; 40 up / 5 down against 1 point
    for (const [pop, budget, want, most] of [
      [population(1000, 3, 2), 0.05, 'within', 300],
      [population(1000, 3, 2), 0.01, 'within', 800],
      [population(1000, 40, 5), 0.01, 'over', 800],
      [population(1000, 300, 10), 0.05, 'over', 200],
    ] as const) {
      let total = 0;
      for (let seed = 0; seed < 20; seed++) {
        const r = run(pop, budget, 100, seed, true);
        assert.equal(r.decision, want);
        total += r.n;
      }
      assert.ok(total / 20 <= most, `mean ${total / 20} samples > ${most}`);
    }
  });

  it("stopOn 'over' stops early only on decisively-over variants", () => {
    const good = run(population(1000, 0, 0), 0.05, 100, 1, true, { stopOn: 'over' });
    assert.deepEqual(good, { decision: 'within', n: 1000 });
    const bad = run(population(1000, 300, 0), 0.05, 100, 1, true, { stopOn: 'over' });
    assert.equal(bad.decision, 'over');
    assert.ok(bad.n <= 200, `${bad.n}`);
  });

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

  it('decides a loss that sits exactly at the budget as within (never over)', () => {
    const at = Array.from({ length: 1000 }, (_, i) => (i < 100 ? 1 : 0)); // mean 0.1
    let late = 0;
    for (let seed = 0; seed < 20; seed++) {
      const r = run(at, 0.1, 50, seed);
      assert.equal(r.decision, 'within');
      if (r.n >= 900) late++;
    }
    // a correct early "within" needs a sample with fewer flips than its share: rare
    assert.ok(late >= 15, `${late} of 20 ran to 900+ samples`);
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
