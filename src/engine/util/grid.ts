/**
 * Per-tensor affine 8-bit grids whose scale and offset are float16 values: a tensor on such a grid
 * is stored as one uint8 code per value plus two float16 numbers, and decoded by float32 Mul then
 * Add ({@link gridValue}, the one definition both the rounding and the decoder check use).
 */
import { isHalfExact, roundToHalf } from './half';

/** The smallest and largest of `values` (NaN when one is). */
function bounds(values: ArrayLike<number>): [number, number] {
  let lo = Infinity;
  let hi = -Infinity;
  for (let i = 0; i < values.length; i++) {
    lo = Math.min(lo, values[i]!);
    hi = Math.max(hi, values[i]!);
  }
  return [lo, hi];
}

/** Codes of a tensor on a grid: value i = {@link gridValue}(codes[i], scale, offset). */
export interface Grid {
  /** A float16 value, ≥ 0 (0 when every value is the offset). */
  scale: number;
  /** A float16 value: the smallest value. */
  offset: number;
  codes: Uint8Array;
}

/** The largest code. */
export const GRID_MAX_CODE = 255;

/** Code `q`'s value: `fround(fround(q · scale) + offset)`, what float32 Mul then Add compute. */
export function gridValue(q: number, scale: number, offset: number): number {
  return Math.fround(Math.fround(q * scale) + offset);
}

/** The codes of `values` on (scale, offset), or undefined when one does not re-derive bit for bit. */
function codesOn(values: ArrayLike<number>, scale: number, offset: number): Uint8Array | undefined {
  const codes = new Uint8Array(values.length);
  for (let i = 0; i < values.length; i++) {
    const v = values[i]!;
    const q = scale > 0 ? Math.round((v - offset) / scale) : 0;
    if (!(q >= 0 && q <= GRID_MAX_CODE) || !Object.is(gridValue(q, scale, offset), v)) return undefined;
    codes[i] = q;
  }
  return codes;
}

/**
 * The grid `values` are on, found from the values: offset = the smallest, scale = the greatest
 * common divisor of the differences to it (exact for grids of float16 values, as
 * {@link roundedToGrid} makes) or the range / 255 rounded to float16; every value must re-derive
 * bit for bit. A constant tensor is on the grid of scale 0. Undefined when there is no such grid.
 */
export function gridOf(values: ArrayLike<number>): Grid | undefined {
  if (values.length === 0) return undefined;
  const [lo, hi] = bounds(values);
  if (!Number.isFinite(lo) || !Number.isFinite(hi) || !isHalfExact([lo])) return undefined;
  const finest = (hi - lo) / GRID_MAX_CODE;
  // Euclid on the differences (exact for multiples of a power of two); it only decreases, so it
  // stops once below the finest scale 255 codes allow
  let g = 0;
  for (let i = 0; i < values.length && (g === 0 || g >= finest); i++) {
    let a = values[i]! - lo;
    if (a === 0) continue;
    for (let b = g; b > 0 && a >= finest; ) [a, b] = [b, a % b];
    g = a;
  }
  for (const scale of hi === lo ? [0] : [g, roundToHalf(finest)]) {
    if (!(scale >= finest) || !isHalfExact([scale])) continue;
    const codes = codesOn(values, scale, lo);
    if (codes) return { scale, offset: lo, codes };
  }
  return undefined;
}

/** The float16 ulp at `x` (2^-24 below the normal range). */
function halfUlp(x: number): number {
  return Math.abs(x) < 2 ** -14 ? 2 ** -24 : 2 ** (Math.floor(Math.log2(Math.abs(x))) - 10);
}

/**
 * `values` rounded to a uint8 grid of float16 values (so an encoder that does not take the grid can
 * still store them as float16, losing nothing): offset and scale are multiples of the float16 ulp
 * u of the largest magnitude, so every grid value is a float16 value, and the scale is the
 * smallest such multiple k·u ≥ range / 255 or the next one. Of those grids and their k offsets
 * (every alignment), the one whose largest error, relative to `tolerance(i)` for value i (1 by
 * default: the absolute error), is smallest; about scale / 2. {@link gridOf} finds it back.
 * Undefined when a value is not finite or beyond the float16 range.
 */
export function roundedToGrid(values: ArrayLike<number>, tolerance: (i: number) => number = () => 1): Float32Array | undefined {
  const [lo, hi] = bounds(values);
  if (!(Math.abs(lo) <= 65504 && Math.abs(hi) <= 65504)) return undefined;
  let best: { out: Float32Array; worst: number } | undefined;
  for (let u = halfUlp(Math.max(-lo, hi)); u <= 2 ** 6 && !best; u *= 2) {
    const k0 = Math.max(1, Math.ceil((hi - lo) / (GRID_MAX_CODE * u)));
    for (const k of hi === lo ? [0] : [k0, k0 + 1]) {
      for (let j = 0; j < Math.max(1, k); j++) {
        const offset = (Math.round(lo / u) - j) * u;
        const scale = k * u;
        const out = new Float32Array(values.length);
        let worst = 0;
        for (let i = 0; i < values.length; i++) {
          const q = scale > 0 ? Math.min(GRID_MAX_CODE, Math.max(0, Math.round((values[i]! - offset) / scale))) : 0;
          out[i] = gridValue(q, scale, offset);
          worst = Math.max(worst, Math.abs(out[i]! - values[i]!) / tolerance(i));
        }
        if ((!best || worst < best.worst) && isHalfExact([offset, scale]) && isHalfExact(out)) best = { out, worst };
      }
    }
  }
  return best && gridOf(best.out) ? best.out : undefined;
}
