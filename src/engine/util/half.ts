/** IEEE-754 binary16 (float16) conversions, shared by tensor I/O and the compressors' codebooks. */

const f32 = new Float32Array(1);
const u32 = new Uint32Array(f32.buffer);

/**
 * IEEE-754 binary16 bits to a number. Exact: every half value is a float32 value.
 * Subnormals, infinities and NaN (payload kept in the top mantissa bits) are handled.
 */
export function halfToFloat(h: number): number {
  const sign = h & 0x8000 ? -1 : 1;
  const exp = (h >> 10) & 0x1f;
  const man = h & 0x3ff;
  if (exp === 0) return sign * man * 2 ** -24;
  if (exp === 31) return man ? NaN : sign * Infinity;
  return sign * (1 + man / 1024) * 2 ** (exp - 15);
}

/**
 * float32 value to IEEE-754 binary16 bits, rounding to nearest, ties to even. Values beyond the
 * half range (|x| ≥ 65520) become ±Infinity, as IEEE rounding requires; NaN stays a quiet NaN.
 */
export function floatToHalf(x: number): number {
  f32[0] = x;
  const bits = u32[0]!;
  const sign = (bits >>> 16) & 0x8000;
  const exp = (bits >>> 23) & 0xff;
  let man = bits & 0x7fffff;
  if (exp === 0xff) return sign | 0x7c00 | (man ? 0x200 : 0);
  let e = exp - 127 + 15;
  if (e >= 31) return sign | 0x7c00;
  if (e <= 0) {
    if (e < -10) return sign;
    man |= 0x800000;
    const shift = 14 - e;
    const half = 1 << (shift - 1);
    const rem = man & ((1 << shift) - 1);
    let r = man >>> shift;
    if (rem > half || (rem === half && r & 1)) r++;
    return sign | r;
  }
  const rem = man & 0x1fff;
  let r = (e << 10) | (man >>> 13);
  if (rem > 0x1000 || (rem === 0x1000 && r & 1)) r++;
  return sign | r;
}

/**
 * The float16 value nearest to `x` (ties to even), or `x` itself when that is not finite (|x| ≥
 * 65520): codebooks are rounded with it so they can be stored in half the bytes.
 */
export function roundToHalf(x: number): number {
  const h = halfToFloat(floatToHalf(x));
  return Number.isFinite(h) || !Number.isFinite(x) ? h : x;
}

/** True when every value is exactly a float16 value (stored as FLOAT16, they lose nothing). */
export function isHalfExact(values: ArrayLike<number>): boolean {
  for (let i = 0; i < values.length; i++) {
    const v = values[i]!;
    if (!Number.isFinite(v) || halfToFloat(floatToHalf(v)) !== v) return false;
  }
  return true;
}

/** The largest finite float16 value. */
const MAX_HALF = 65504;

/**
 * `values` rounded to the nearest float16 values (ties to even), as float32, so they can be stored
 * as FLOAT16 losing nothing more; `undefined` when a value is not finite or beyond the half range
 * (|x| > 65504). Values below the smallest normal half (2^-14) become subnormal halves, an absolute
 * error ≤ 2^-25: below that of any normal value ≥ 2^-13, which is what matters for an additive
 * value such as a bias (a scale, whose relative error matters, should not use this).
 */
export function roundedToHalf(values: ArrayLike<number>): Float32Array | undefined {
  const out = new Float32Array(values.length);
  for (let i = 0; i < values.length; i++) {
    const v = values[i]!;
    if (!(Math.abs(v) <= MAX_HALF)) return undefined;
    out[i] = halfToFloat(floatToHalf(v));
  }
  return out;
}
