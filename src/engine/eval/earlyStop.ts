/**
 * Sequential early stopping of a variant evaluation against a loss budget.
 *
 * Samples are visited in a seeded random order (a permutation of the dataset), so the first n are a
 * simple random sample *without replacement* of the N samples. The loss is a difference of two
 * proportions: with labels, the accuracy drop `p⁺ − p⁻` where p⁺ is the share of samples the
 * original model gets right and the variant wrong, p⁻ the reverse; without labels, the
 * disagreement share p⁺ (top-1 differs) with p⁻ = 0. The decision concerns the full-data loss.
 *
 * Each proportion gets the Chernoff–KL (Chernoff–Hoeffding in its relative-entropy form) confidence
 * bounds: the upper bound of p from k successes in n is the largest q with n·KL(k/n ‖ q) ≤ ln(1/δ′),
 * the lower bound the smallest. Chernoff bounds hold for sampling without replacement too (Hoeffding
 * 1963, Thm 4), and are as tight as Clopper–Pearson for rare events (p⁺ ≈ 0.2 %), where Hoeffding or
 * Bernstein bounds need thousands of samples. The loss interval is `[LB(p⁺) − UB(p⁻), UB(p⁺) − LB(p⁻)]`.
 * We look at most K times (once per batch) and there are 4 one-sided bounds per look (2 without
 * labels), so δ′ = δ / (4K) (union bound): with probability ≥ 1 − δ **all** intervals hold at once,
 * hence every early stop is correct — "over" (lower bound > budget) implies a full-data loss above
 * the budget, "within" (upper bound ≤ budget) a full-data loss at or below it. Default δ = 0.05:
 * 95 % confidence that an early decision equals the decision on the full dataset.
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
    this.o = { delta: 0.05, minSamples: 50, twoSided: true, ...options };
  }

  /** Adds `count` samples of which `up` raise the loss (p⁺) and `down` lower it (p⁻). */
  add(up: number, down: number, count: number): void {
    this.n += count;
    this.up += up;
    this.down += down;
  }

  /** Current loss and its simultaneous confidence interval (exact once all N samples are in). */
  interval(): { mean: number; lo: number; hi: number; n: number } {
    const mean = (this.up - this.down) / this.n;
    if (this.n >= this.o.population) return { mean, lo: mean, hi: mean, n: this.n };
    const d = this.o.delta / ((this.o.twoSided ? 4 : 2) * this.o.maxLooks);
    const [upLo, upHi] = klBounds(this.up, this.n, d);
    const [dnLo, dnHi] = this.o.twoSided ? klBounds(this.down, this.n, d) : [0, 0];
    return { mean, lo: upLo - dnHi, hi: upHi - dnLo, n: this.n };
  }

  /** `'over'` / `'within'` once the interval clears the budget (after `minSamples`), else undefined. */
  decide(): StopDecision {
    if (this.n < Math.min(this.o.minSamples, this.o.population)) return undefined;
    const { lo, hi } = this.interval();
    if (lo > this.budget) return 'over';
    if (hi <= this.budget) return 'within';
    return undefined;
  }
}
