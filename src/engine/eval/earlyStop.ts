/**
 * Sequential early stopping of a variant evaluation against a loss budget.
 *
 * Samples are visited in a seeded random order (a permutation of the dataset), so the first n are a
 * simple random sample *without replacement* of the N samples. Each sample has a loss `x_i` in a
 * range of width `R` (accuracy drop `[orig correct] − [variant correct]` ∈ {−1, 0, 1}, R = 2; or
 * disagreement `[top-1 differs]` ∈ {0, 1}, R = 1); the decision concerns the full-data mean μ.
 *
 * After n samples we use the empirical Bernstein–Serfling bound (Bardenet & Maillard 2015, Thm 3,
 * two-sided): with probability ≥ 1 − δ', |mean_n − μ| ≤ σ̂_n·√(2ρ_n·ln(10/δ')/n) + κ·R·ln(10/δ')/n,
 * with σ̂_n the (1/n) sample standard deviation, κ = 7/3 + 3/√2, and the finite-population factor
 * ρ_n = 1 − (n−1)/N for n ≤ N/2, (1 − n/N)(1 + 1/n) otherwise. We look at most K times (once per
 * batch) and use δ' = δ/K (union bound), so with probability ≥ 1 − δ **every** interval holds at once,
 * hence a stop is correct: "over" (lower bound > budget) implies μ > budget, "within" (upper bound
 * ≤ budget) implies μ ≤ budget. Default δ = 0.05: 95 % confidence that an early decision equals the
 * decision on the full dataset.
 */

/** Options of {@link SequentialTest}. */
export interface SequentialTestOptions {
  /** Probability that any early decision is wrong. Default 0.05. */
  delta: number;
  /** Width of the per-sample loss range (2 for accuracy drop, 1 for disagreement). */
  range: number;
  /** Population size N (samples in the full evaluation). */
  population: number;
  /** Maximum number of looks K (batches). */
  maxLooks: number;
  /** Never stop before this many samples. Default 50. */
  minSamples: number;
}

/** Outcome of a look. */
export type StopDecision = 'within' | 'over' | undefined;

const KAPPA = 7 / 3 + 3 / Math.SQRT2;

/** Radius of the two-sided empirical Bernstein–Serfling interval (see the module comment). */
export function bernsteinSerflingRadius(n: number, sigma: number, range: number, population: number, delta: number): number {
  if (n >= population) return 0;
  const rho = n <= population / 2 ? 1 - (n - 1) / population : (1 - n / population) * (1 + 1 / n);
  const l = Math.log(10 / delta);
  return sigma * Math.sqrt((2 * rho * l) / n) + (KAPPA * range * l) / n;
}

/** Running sums of per-sample losses with the stopping rule of the module comment. */
export class SequentialTest {
  private n = 0;
  private sum = 0;
  private sumSq = 0;
  private readonly o: SequentialTestOptions;

  constructor(
    private readonly budget: number,
    options: Partial<SequentialTestOptions> & Pick<SequentialTestOptions, 'population' | 'maxLooks' | 'range'>,
  ) {
    this.o = { delta: 0.05, minSamples: 50, ...options };
  }

  /** Adds per-sample losses (sum and sum of squares of `count` samples). */
  add(sum: number, sumSq: number, count: number): void {
    this.n += count;
    this.sum += sum;
    this.sumSq += sumSq;
  }

  /** Current mean loss and its confidence interval `[lo, hi]` at level δ/K. */
  interval(): { mean: number; lo: number; hi: number; n: number } {
    const mean = this.sum / this.n;
    const v = Math.max(0, this.sumSq / this.n - mean * mean);
    const r = bernsteinSerflingRadius(this.n, Math.sqrt(v), this.o.range, this.o.population, this.o.delta / this.o.maxLooks);
    return { mean, lo: mean - r, hi: mean + r, n: this.n };
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
