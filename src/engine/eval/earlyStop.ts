/**
 * Sequential early stopping of a variant evaluation against a loss budget.
 *
 * Samples are visited in a seeded random order (a permutation of the dataset), so the first n are a
 * simple random sample *without replacement* of the N samples. The loss is paired: with labels it
 * is the accuracy drop `(U − D) / N`, where U counts the samples the original model gets right and
 * the variant wrong ("up" flips) and D the reverse; without labels it is the disagreement share
 * `U / N` (top-1 differs; D = 0). Samples both models get right (or both wrong) add nothing, so the
 * loss is settled by the few flips rather than by two noisy accuracies. The decision concerns the
 * full-data loss.
 *
 * Bounds. U and D are counts in a finite population sampled without replacement, so the number of
 * flips seen in the first n samples is hypergeometric. Each count gets the exact one-sided
 * hypergeometric bounds (the finite-population analogue of Clopper–Pearson): from k flips in n, the
 * upper bound is the largest K with `P(X ≤ k | N, K, n) > δ′`, the lower bound the smallest K with
 * `P(X ≥ k | N, K, n) > δ′`. They use the finite population (once 800 of 1000 samples showed 3
 * flips, the 200 unseen ones cannot hide many more), so they settle far earlier than binomial or
 * Chernoff bounds late in a run, and they are exact once all N samples ran. The loss interval is
 * `[K_lo(U) − K_hi(D), K_hi(U) − K_lo(D)] / N`.
 *
 * Confidence. We look at most K times (once per batch). Whatever the full-data loss L is, only one
 * kind of early decision can be wrong: "within" when L > budget (it needs `K_hi(U) < U` or
 * `K_lo(D) > D` at some look) and "over" when L ≤ budget (it needs `K_lo(U) > U` or `K_hi(D) < D`).
 * So 2 one-sided bounds per look can fail in a way that matters (1 without labels), and with
 * δ′ = δ / (2K) (δ / K without labels) the union bound gives: **with probability ≥ 1 − δ every early
 * decision equals the decision on the full dataset**. Default δ = 0.05: 95 %. Each end of the
 * reported interval holds with probability ≥ 1 − δ at every look at once (the two together: 1 − 2δ).
 * `test/unit/eval/earlyStop.test.ts` checks the bounds' exact coverage and the rule's error rate
 * by seeded simulation.
 */

/** Options of {@link SequentialTest}. */
export interface SequentialTestOptions {
  /** Probability that any early decision is wrong. Default 0.05. */
  delta: number;
  /** Population size N (samples in the full evaluation). */
  population: number;
  /** Maximum number of looks K (batches). */
  maxLooks: number;
  /** True when the loss is a difference p⁺ − p⁻ (labelled), false for a single proportion. */
  twoSided: boolean;
  /** Never stop before this many samples. Default 50. */
  minSamples: number;
  /**
   * Which early decisions are allowed: `'both'` (default), or `'over'` only — a variant that is not
   * decisively over the budget then runs to the end and gets its exact loss.
   */
  stopOn: 'both' | 'over';
}

/** Outcome of a look. */
export type StopDecision = 'within' | 'over' | undefined;

/** Bernoulli relative entropy KL(p ‖ q) in nats (0·ln 0 = 0). */
export function bernoulliKl(p: number, q: number): number {
  const t = (a: number, b: number) => (a === 0 ? 0 : b === 0 ? Infinity : a * Math.log(a / b));
  return t(p, q) + t(1 - p, 1 - q);
}

/**
 * Chernoff–KL bounds on a proportion from `k` successes in `n` draws, each one-sided at level
 * `delta`: `[lo, hi]` with `n·KL(k/n ‖ lo) = n·KL(k/n ‖ hi) = ln(1/delta)` (bisection, 1e-9).
 */
export function klBounds(k: number, n: number, delta: number): [number, number] {
  if (n === 0) return [0, 1];
  const p = k / n;
  const c = Math.log(1 / delta) / n;
  const solve = (a: number, b: number): number => {
    // invariant: KL(p‖a) ≤ c < KL(p‖b) with a on p's side
    for (let i = 0; i < 60; i++) {
      const m = (a + b) / 2;
      if (bernoulliKl(p, m) <= c) a = m;
      else b = m;
    }
    return a;
  };
  const hi = p >= 1 || bernoulliKl(p, 1) <= c ? 1 : solve(p, 1);
  const lo = p <= 0 || bernoulliKl(p, 0) <= c ? 0 : solve(p, 0);
  return [lo, hi];
}

/** ln(i!) for i = 0..n, grown on demand (shared by all tests). */
let logFact = new Float64Array([0, 0]);
function lnFactorial(n: number): Float64Array {
  if (n >= logFact.length) {
    const t = new Float64Array(Math.max(n + 1, 2 * logFact.length));
    t.set(logFact);
    for (let i = logFact.length; i < t.length; i++) t[i] = t[i - 1]! + Math.log(i);
    logFact = t;
  }
  return logFact;
}

/**
 * `P(X ≤ k)` (`upper = false`) or `P(X ≥ k)` (`upper = true`) for X hypergeometric: draws `n`
 * without replacement from `N` items of which `K` are successes. Sums from k outwards into the tail
 * and stops once a term adds less than 1e-15 of the sum (the terms fall off geometrically there).
 */
export function hypergeometricTail(k: number, N: number, K: number, n: number, upper: boolean): number {
  const lo = Math.max(0, n - (N - K));
  const hi = Math.min(n, K);
  if (upper ? k <= lo : k >= hi) return 1;
  if (upper ? k > hi : k < lo) return 0;
  const lf = lnFactorial(N);
  const lnC = (a: number, b: number) => lf[a]! - lf[b]! - lf[a - b]!;
  const base = lnC(N, n);
  const pmf = (x: number) => Math.exp(lnC(K, x) + lnC(N - K, n - x) - base);
  // Sum the shorter way round: the tail side of the mode directly, else 1 − the other side.
  const mode = Math.floor(((n + 1) * (K + 1)) / (N + 2));
  const direct = upper ? k >= mode : k <= mode;
  const from = direct ? k : upper ? k - 1 : k + 1;
  const step = upper === direct ? 1 : -1;
  let sum = 0;
  for (let x = from; x >= lo && x <= hi; x += step) {
    const t = pmf(x);
    sum += t;
    if (t <= sum * 1e-15) break;
  }
  return direct ? Math.min(1, sum) : Math.max(0, 1 - sum);
}

/**
 * Exact one-sided confidence bounds on the number K of successes in a population of `N`, from `k`
 * successes in `n` draws without replacement, each at level `delta`: `hi` is the largest K with
 * `P(X ≤ k | K) > delta`, `lo` the smallest with `P(X ≥ k | K) > delta` (so `P(hi < K) ≤ delta`
 * and `P(lo > K) ≤ delta` whatever K is). Exact (`[k, k]`) once `n = N`.
 */
export function hypergeometricBounds(k: number, n: number, N: number, delta: number): [number, number] {
  return [hypergeometricBound(k, n, N, delta, 'lower'), hypergeometricBound(k, n, N, delta, 'upper')];
}

/** One end of {@link hypergeometricBounds}. */
export function hypergeometricBound(k: number, n: number, N: number, delta: number, end: 'lower' | 'upper'): number {
  if (!(n >= 0 && n <= N && k >= 0 && k <= n)) throw new RangeError(`hypergeometricBounds: need 0 ≤ k ≤ n ≤ N, got k=${k}, n=${n}, N=${N}.`);
  // P(X ≤ k | K) falls as K grows and P(X ≥ k | K) rises: bisect on K within the feasible range.
  let a = k;
  let b = k + (N - n);
  if (end === 'upper') {
    while (a < b) {
      const m = Math.ceil((a + b) / 2);
      if (hypergeometricTail(k, N, m, n, false) > delta) a = m;
      else b = m - 1;
    }
    return a;
  }
  while (a < b) {
    const m = Math.floor((a + b) / 2);
    if (hypergeometricTail(k, N, m, n, true) > delta) b = m;
    else a = m + 1;
  }
  return a;
}

/** Running counts with the stopping rule of the module comment. */
export class SequentialTest {
  private n = 0;
  private up = 0;
  private down = 0;
  private readonly o: SequentialTestOptions;

  constructor(
    private readonly budget: number,
    options: Partial<SequentialTestOptions> & Pick<SequentialTestOptions, 'population' | 'maxLooks'>,
  ) {
    this.o = { delta: 0.05, minSamples: 50, twoSided: true, stopOn: 'both', ...options };
  }

  /** Adds `count` samples of which `up` raise the loss (U) and `down` lower it (D). */
  add(up: number, down: number, count: number): void {
    this.n += count;
    this.up += up;
    this.down += down;
  }

  /** Samples seen so far. */
  get samples(): number {
    return this.n;
  }

  /** Current loss and its simultaneous confidence interval (exact once all N samples are in). */
  interval(): { mean: number; lo: number; hi: number; n: number } {
    return { mean: (this.up - this.down) / this.n, lo: this.end('lower'), hi: this.end('upper'), n: this.n };
  }

  /** One end of the loss interval: `(K_lo(U) − K_hi(D)) / N` or `(K_hi(U) − K_lo(D)) / N`. */
  private end(which: 'lower' | 'upper'): number {
    const N = this.o.population;
    if (this.n >= N) return (this.up - this.down) / this.n;
    const d = this.o.delta / ((this.o.twoSided ? 2 : 1) * this.o.maxLooks);
    const other = which === 'lower' ? 'upper' : 'lower';
    const down = this.o.twoSided ? hypergeometricBound(this.down, this.n, N, d, other) : 0;
    return (hypergeometricBound(this.up, this.n, N, d, which) - down) / N;
  }

  /** `'over'` / `'within'` once the interval clears the budget (after `minSamples`), else undefined. */
  decide(): StopDecision {
    if (this.n < Math.min(this.o.minSamples, this.o.population)) return undefined;
    if (this.end('lower') > this.budget) return 'over';
    if ((this.o.stopOn === 'both' || this.n >= this.o.population) && this.end('upper') <= this.budget) return 'within';
    return undefined;
  }
}
