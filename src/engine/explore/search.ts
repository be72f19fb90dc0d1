/**
 * The search over per-layer options, independent of models and onnxruntime (unit-testable):
 * - {@link isotonic}: monotone smoothing of a layer's losses along a technique's ladder;
 * - {@link mckp}: exact multiple-choice knapsack by dynamic programming on a discretised budget;
 * - {@link LossPredictor}: loss of a combination ≈ α · Σ single-layer losses, α fitted from every
 *   real measurement (with a prior pulling α towards 1);
 * - {@link pairedLossBounds}: confidence bounds on a paired top-1 loss from its flip counts, which
 *   the choice uses instead of the point estimate (see the function).
 */
import type { TechniqueSpec } from '../compress';

/** One way to store one layer. */
export interface LayerOption {
  /** `none`, a level id (`share:k=8`) or a combination (`prune:0.5+share:k=8`). */
  key: string;
  /** `null` for `none`. */
  spec: TechniqueSpec | null;
  /** Bytes of the layer in the ONNX file with this option (exact encoding size from the encoder). */
  bytes: number;
  /** Exact storage bits (theory). */
  bits: number;
  /** Predicted single-layer loss (fraction, ≥ 0) before the global correction. */
  loss: number;
  /** Relative weight error ‖W − Ŵ‖/‖W‖ of a measured cell (absent for `none`: 0, and combinations). */
  relError?: number;
}

/** A layer and its options; `options[0]` is `none` (original bytes, loss 0). */
export interface SearchLayer {
  name: string;
  options: LayerOption[];
}

/**
 * Pool-adjacent-violators: the non-decreasing sequence closest to `v` in least squares. Used on a
 * layer's losses ordered from the mildest to the harshest level of one technique, where the true
 * loss can only grow; it removes most of the sampling noise of single cells.
 */
export function isotonic(v: readonly number[]): number[] {
  const blocks: Array<{ sum: number; n: number }> = [];
  for (const x of v) {
    blocks.push({ sum: x, n: 1 });
    while (blocks.length > 1 && blocks[blocks.length - 2]!.sum / blocks[blocks.length - 2]!.n > blocks[blocks.length - 1]!.sum / blocks[blocks.length - 1]!.n) {
      const b = blocks.pop()!;
      blocks[blocks.length - 1]!.sum += b.sum;
      blocks[blocks.length - 1]!.n += b.n;
    }
  }
  return blocks.flatMap((b) => Array<number>(b.n).fill(b.sum / b.n));
}

/**
 * Multiple-choice knapsack: pick one option per group minimising Σ value with Σ cost ≤ `capacity`.
 * Costs are non-negative integers (discretise before: round costs *up* so a solution is never
 * over the real budget). O(groups · capacity · options). Returns the choice per group, or
 * undefined when no choice fits.
 */
export function mckp(groups: ReadonlyArray<{ cost: readonly number[]; value: readonly number[] }>, capacity: number): number[] | undefined {
  const C = Math.max(0, Math.floor(capacity));
  let dp = new Float64Array(C + 1).fill(Infinity);
  dp[0] = 0;
  const picks: Int16Array[] = [];
  for (const g of groups) {
    const next = new Float64Array(C + 1).fill(Infinity);
    const pick = new Int16Array(C + 1).fill(-1);
    for (let o = 0; o < g.cost.length; o++) {
      const c = g.cost[o]!;
      const v = g.value[o]!;
      if (!(c <= C) || !Number.isFinite(v)) continue;
      for (let b = c; b <= C; b++) {
        const t = dp[b - c]! + v;
        if (t < next[b]!) {
          next[b] = t;
          pick[b] = o;
        }
      }
    }
    dp = next;
    picks.push(pick);
  }
  let best = -1;
  for (let b = 0; b <= C; b++) if (Number.isFinite(dp[b]!) && (best < 0 || dp[b]! < dp[best]!)) best = b;
  if (best < 0) return undefined;
  const choice = new Array<number>(groups.length);
  for (let i = groups.length - 1; i >= 0; i--) {
    const o = picks[i]![best]!;
    choice[i] = o;
    best -= groups[i]!.cost[o]!;
  }
  return choice;
}

/** Resolution of the discretised budgets of {@link minBytesUnderLoss} / {@link minLossUnderBytes}. */
export const KNAPSACK_BINS = 400;

/** Σ bytes and Σ predicted single-layer losses of a choice. */
export function totals(layers: readonly SearchLayer[], choice: readonly number[]): { bytes: number; loss: number } {
  let bytes = 0;
  let loss = 0;
  layers.forEach((l, i) => {
    bytes += l.options[choice[i]!]!.bytes;
    loss += l.options[choice[i]!]!.loss;
  });
  return { bytes, loss };
}

/** The choice with the fewest layer bytes whose Σ predicted loss ≤ `lossBudget` (≥ 0). */
export function minBytesUnderLoss(layers: readonly SearchLayer[], lossBudget: number, bins = KNAPSACK_BINS): number[] {
  if (!(lossBudget > 0)) return layers.map((l) => argmin(l.options.filter((o) => o.loss <= 0).map((o) => o), l));
  const unit = lossBudget / bins;
  const groups = layers.map((l) => ({ cost: l.options.map((o) => Math.ceil(Math.max(0, o.loss) / unit - 1e-9)), value: l.options.map((o) => o.bytes) }));
  return mckp(groups, bins) ?? layers.map(() => 0);
}

/**
 * Relative weight errors of the {@link safeChoice} ladder, harshest first: each step halves the
 * error every layer may take (about 6 dB more SQNR per weight).
 */
export const SAFE_LADDER: readonly number[] = [0.08, 0.04, 0.02, 0.01, 0.005];

/**
 * The fewest bytes with every layer's relative weight error at most `maxRelError` (layers keep
 * `none` when no measured option is that accurate). A plan that ignores the measured losses: the
 * fallback when the losses a knapsack adds up say nothing (many cells measured as free whose
 * combination is not, as on models with many layers and few samples per cell).
 */
export function safeChoice(layers: readonly SearchLayer[], maxRelError: number): number[] {
  return layers.map((l) => argmin(l.options.filter((o) => o.relError !== undefined && o.relError <= maxRelError), l));
}

function argmin(opts: LayerOption[], l: SearchLayer): number {
  let best = 0;
  for (const o of opts) if (o.bytes < l.options[best]!.bytes) best = l.options.indexOf(o);
  return best;
}

/**
 * The choice with the least Σ predicted loss whose layer bytes total at most `bytesBudget`
 * (ties: fewer bytes). Undefined when even the smallest options do not fit.
 */
export function minLossUnderBytes(layers: readonly SearchLayer[], bytesBudget: number, bins = 4 * KNAPSACK_BINS): number[] | undefined {
  if (!(bytesBudget > 0)) return undefined;
  const unit = bytesBudget / bins;
  const groups = layers.map((l) => ({ cost: l.options.map((o) => Math.ceil(o.bytes / unit - 1e-9)), value: l.options.map((o) => Math.max(0, o.loss) + o.bytes * 1e-15) }));
  return mckp(groups, bins);
}

/**
 * Loss of a combination from the single-layer losses: `α · Σ lossᵢ`. α starts at 1 and is fitted
 * to the real measurements by least squares through the origin with a prior of weight `priorWeight`
 * (in units of Σlossᵢ²) pulling it to 1, clamped to [0.25, 4]: interactions between layers (errors
 * adding up or cancelling) and the bias of screening are absorbed into α.
 */
export class LossPredictor {
  private sxy = 0;
  private sxx = 0;
  /** Measurements seen. */
  n = 0;
  constructor(private readonly priorWeight: number) {}

  get alpha(): number {
    const a = (this.sxy + this.priorWeight) / (this.sxx + this.priorWeight);
    return Math.min(4, Math.max(0.25, a));
  }

  /** Predicted loss of a combination whose single-layer losses sum to `sum`. */
  predict(sum: number): number {
    return this.alpha * sum;
  }

  /** Adds a measurement: predicted sum `sum`, measured loss `measured`. */
  add(sum: number, measured: number): void {
    this.sxy += sum * measured;
    this.sxx += sum * sum;
    this.n++;
  }
}

/** Indices of the points on the Pareto front of (bytes ↓, loss ↓). */
export function paretoFront(points: ReadonlyArray<{ bytes: number; loss: number }>): Set<number> {
  const out = new Set<number>();
  points.forEach((p, i) => {
    const dominated = points.some((q, j) => j !== i && q.bytes <= p.bytes && q.loss <= p.loss && (q.bytes < p.bytes || q.loss < p.loss || j < i));
    if (!dominated) out.add(i);
  });
  return out;
}

/**
 * Quantile of the standard normal distribution: `z` with Φ(z) = `p`, 0 < p < 1 (Acklam's rational
 * approximation, relative error < 1.2e-9). `normalQuantile(0.9)` ≈ 1.2816, `(0.975)` ≈ 1.9600.
 */
export function normalQuantile(p: number): number {
  if (!(p > 0 && p < 1)) return p <= 0 ? -Infinity : Infinity;
  const a = [-3.969683028665376e1, 2.209460984245205e2, -2.759285104469687e2, 1.38357751867269e2, -3.066479806614716e1, 2.506628277459239];
  const b = [-5.447609879822406e1, 1.615858368580409e2, -1.556989798598866e2, 6.680131188771972e1, -1.328068155288572e1];
  const c = [-7.784894002430293e-3, -3.223964580411365e-1, -2.400758277161838, -2.549732539343734, 4.374664141464968, 2.938163982698783];
  const d = [7.784695709041462e-3, 3.224671290700398e-1, 2.445134137142996, 3.754408661907416];
  const tail = (q: number): number => (((((c[0]! * q + c[1]!) * q + c[2]!) * q + c[3]!) * q + c[4]!) * q + c[5]!) / ((((d[0]! * q + d[1]!) * q + d[2]!) * q + d[3]!) * q + 1);
  if (p < 0.02425) return tail(Math.sqrt(-2 * Math.log(p)));
  if (p > 1 - 0.02425) return -tail(Math.sqrt(-2 * Math.log(1 - p)));
  const q = p - 0.5;
  const r = q * q;
  return ((((((a[0]! * r + a[1]!) * r + a[2]!) * r + a[3]!) * r + a[4]!) * r + a[5]!) * q) / (((((b[0]! * r + b[1]!) * r + b[2]!) * r + b[3]!) * r + b[4]!) * r + 1);
}

/** Paired flip counts of a compressed model against the original on the same `samples`. */
export interface Flips {
  /** Samples the original gets right and the compressed model wrong (without labels: top-1 changed). */
  up: number;
  /** Samples the original gets wrong and the compressed model right (0 without labels). */
  down: number;
  samples: number;
}

/**
 * Confidence bounds on the *expected* top-1 loss of a compressed model (on new data from the same
 * distribution), from paired flip counts on `n` samples: the loss is `(up − down) / n`, a
 * difference of paired proportions. Adjusted Wald interval with one pseudo-flip each way
 * (`p̃⁺ = (up + 1) / (n + 2)`, `p̃⁻ = (down + 1) / (n + 2)`, `d̃ = p̃⁺ − p̃⁻`):
 * `d̃ ± z · sqrt((p̃⁺ + p̃⁻ − d̃²) / (n + 2))`, z the normal quantile of `confidence`. The
 * pseudo-flips keep the width sensible with zero or few flips, where the plain Wald interval
 * collapses to a point; with ½ per cell (Agresti–Min) the one-sided coverage drops to ~0.87 at
 * 90 % for rare flips (p⁺ = 0.4 %, n = 1000), with 1 it stays ≥ nominal from p⁺ = 0.1 % to 3 %
 * (seeded simulation in `test/unit/explore/search.test.ts`). `confidence` is one-sided for each
 * bound (0.9: the true loss is below `upper` with about 90 % probability); together they form a
 * 1 − 2(1 − confidence) interval. Returns fractions (0.005 = 0.5 points); `n = 0` gives [−1, 1].
 */
export function pairedLossBounds(f: Flips, confidence: number): { loss: number; lower: number; upper: number } {
  const n = f.samples;
  if (!(n > 0)) return { loss: 0, lower: -1, upper: 1 };
  const loss = (f.up - f.down) / n;
  const pu = (f.up + 1) / (n + 2);
  const pd = (f.down + 1) / (n + 2);
  const d = pu - pd;
  const half = normalQuantile(confidence) * Math.sqrt(Math.max(0, pu + pd - d * d) / (n + 2));
  return { loss, lower: Math.max(-1, d - half), upper: Math.min(1, d + half) };
}
