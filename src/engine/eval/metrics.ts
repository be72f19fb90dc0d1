/**
 * Accuracy and fidelity metrics over model outputs. Classifier outputs are `[N, C]` logits (or
 * probabilities: top-k is the same); fidelity compares any float output with the original model's.
 */

/**
 * Top-k class indices of each row of `scores` (`n` rows of `c` values), best first. Ties keep the
 * lower index first (as `torch.topk` does on CPU for equal values in practice, and deterministic).
 * NaN ranks below every number. Returns `n · k'` indices with `k' = min(k, c)`.
 */
export function topK(scores: ArrayLike<number>, n: number, c: number, k: number): Int32Array {
  const kk = Math.min(k, c);
  const out = new Int32Array(n * kk);
  const best = new Int32Array(kk);
  const bestV = new Float64Array(kk);
  for (let r = 0; r < n; r++) {
    let filled = 0;
    for (let j = 0; j < c; j++) {
      let v = scores[r * c + j]!;
      if (Number.isNaN(v)) v = -Infinity;
      // insertion into a sorted list of kk: strictly greater moves up, so earlier indices win ties
      let p = filled < kk ? filled : kk;
      if (p === kk && !(v > bestV[kk - 1]!)) continue;
      if (p === kk) p = kk - 1;
      while (p > 0 && v > bestV[p - 1]!) {
        bestV[p] = bestV[p - 1]!;
        best[p] = best[p - 1]!;
        p--;
      }
      bestV[p] = v;
      best[p] = j;
      if (filled < kk) filled++;
    }
    out.set(best.subarray(0, kk), r * kk);
  }
  return out;
}

/** Counts of a classification evaluation. Rates are counts ÷ `samples`. */
export interface ClassificationCounts {
  samples: number;
  /** Samples whose label is the top-1 class (labelled data only). */
  top1Correct: number;
  /** Samples whose label is among the top-5 classes (labelled data only). */
  top5Correct: number;
  /** Samples whose top-1 class equals the reference model's top-1 (when a reference is given). */
  agree: number;
}

/** Accumulates top-1/top-5 accuracy and top-1 agreement over batches. */
export class ClassificationAccumulator {
  readonly counts: ClassificationCounts = { samples: 0, top1Correct: 0, top5Correct: 0, agree: 0 };

  /**
   * Adds `n` rows of `c` scores. `labels[i]` is the class of row i; `refTop1[i]` the reference
   * model's top-1 class. Returns this row block's top-1 classes.
   */
  add(scores: ArrayLike<number>, n: number, c: number, labels?: ArrayLike<number>, refTop1?: ArrayLike<number>): Int32Array {
    const k = Math.min(5, c);
    const top = topK(scores, n, c, k);
    const top1 = new Int32Array(n);
    for (let i = 0; i < n; i++) {
      top1[i] = top[i * k]!;
      if (labels) {
        const y = labels[i]!;
        if (top[i * k] === y) this.counts.top1Correct++;
        for (let j = 0; j < k; j++) if (top[i * k + j] === y) this.counts.top5Correct++;
      }
      if (refTop1 && refTop1[i] === top1[i]) this.counts.agree++;
    }
    this.counts.samples += n;
    return top1;
  }

  /** Top-1 accuracy in [0, 1] (NaN when no samples). */
  get top1(): number {
    return this.counts.top1Correct / this.counts.samples;
  }
  /** Top-5 accuracy in [0, 1]. */
  get top5(): number {
    return this.counts.top5Correct / this.counts.samples;
  }
  /** Top-1 agreement with the reference in [0, 1]. */
  get agreement(): number {
    return this.counts.agree / this.counts.samples;
  }
}

/** Fidelity of a float output against the reference output. */
export interface Fidelity {
  /** `10·log10(Σ ref² / max(Σ (ref − out)², ε))` in dB over all elements; +Infinity when identical. */
  sqnrDb: number;
  /** Mean over samples of `ref·out / max(‖ref‖·‖out‖, ε)` (1 = same direction). */
  cosine: number;
  /** Mean over samples of `KL(softmax(ref) ‖ softmax(out))` in nats (softmax over the last axis). */
  klSoftmax: number;
  /** Largest absolute element difference. */
  maxAbsDiff: number;
  samples: number;
}

const EPS = 1e-30;

/** Accumulates {@link Fidelity} over batches of `n` samples with `per` elements each. */
export class FidelityAccumulator {
  private signal = 0;
  private noise = 0;
  private cosSum = 0;
  private klSum = 0;
  private maxAbs = 0;
  private samples = 0;

  /** @param classes length of the softmax axis (the last axis); `per` must be a multiple of it. */
  constructor(private readonly classes: number) {}

  /** `refLse`: the reference rows' {@link logSumExpRow}, one per softmax row, when precomputed. */
  add(ref: ArrayLike<number>, out: ArrayLike<number>, n: number, per: number, refLse?: ArrayLike<number>): void {
    const c = this.classes;
    for (let i = 0; i < n; i++) {
      let dot = 0;
      let rr = 0;
      let oo = 0;
      for (let j = 0; j < per; j++) {
        const a = ref[i * per + j]!;
        const b = out[i * per + j]!;
        const d = a - b;
        this.noise += d * d;
        rr += a * a;
        oo += b * b;
        dot += a * b;
        if (Math.abs(d) > this.maxAbs) this.maxAbs = Math.abs(d);
      }
      this.signal += rr;
      this.cosSum += dot / Math.max(Math.sqrt(rr) * Math.sqrt(oo), EPS);
      let kl = 0;
      for (let g = 0; g < per; g += c) kl += klSoftmaxRow(ref, out, i * per + g, c, refLse?.[(i * per + g) / c]);
      this.klSum += kl / (per / c);
      this.samples++;
    }
  }

  result(): Fidelity {
    return fidelityFromSums(this.signal, this.noise, this.cosSum, this.klSum, this.maxAbs, this.samples);
  }
}

/**
 * {@link Fidelity} from running sums over `samples` rows: Σ‖ref‖², Σ‖ref − out‖², Σ per-row cosine,
 * Σ per-row KL of softmax, and the largest |ref − out|.
 */
export function fidelityFromSums(signal: number, noise: number, cosSum: number, klSum: number, maxAbs: number, samples: number): Fidelity {
  return {
    sqnrDb: noise === 0 ? Infinity : 10 * Math.log10(Math.max(signal, EPS) / noise),
    cosine: cosSum / samples,
    klSoftmax: klSum / samples,
    maxAbsDiff: maxAbs,
    samples,
  };
}

/** `log Σ exp(p[off + j])` over `c` values, computed stably (max subtracted). */
export function logSumExpRow(p: ArrayLike<number>, off: number, c: number): number {
  let m = -Infinity;
  for (let j = 0; j < c; j++) m = Math.max(m, p[off + j]!);
  let s = 0;
  for (let j = 0; j < c; j++) s += Math.exp(p[off + j]! - m);
  return m + Math.log(s);
}

/**
 * `KL(softmax(p) ‖ softmax(q))` of `c` logits starting at `off`, computed stably (log-sum-exp).
 * `lp`: `logSumExpRow(p, off, c)` when already known (a fixed reference scored many times).
 */
export function klSoftmaxRow(p: ArrayLike<number>, q: ArrayLike<number>, off: number, c: number, lp = logSumExpRow(p, off, c)): number {
  const lq = logSumExpRow(q, off, c);
  let kl = 0;
  for (let j = 0; j < c; j++) {
    const logP = p[off + j]! - lp;
    const logQ = q[off + j]! - lq;
    kl += Math.exp(logP) * (logP - logQ);
  }
  return Math.max(0, kl);
}
