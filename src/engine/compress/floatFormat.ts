/**
 * Reduced-precision floating point: fp16, bf16, bf16 with m = 0…7 mantissa bits and a reduced
 * exponent, and the two ONNX/OCP 8-bit formats.
 *
 * Rounding is IEEE round to nearest, ties to even, from the exact float32 value, with gradual
 * underflow: values below the smallest normal round to the subnormal grid
 * 2^(1 - bias - m)·{0, 1, …}, and values below half the smallest subnormal become a zero of the
 * same sign (a tie at exactly half rounds to the even code 0).
 *
 * Overflow (the rounded magnitude exceeds the largest finite value):
 * - fp16, bf16: ±Inf, as an IEEE cast does (ONNX Cast to FLOAT16 / BFLOAT16).
 * - fp8e4m3 (FLOAT8E4M3FN, no Inf) and fp8e5m2: saturate to ±max finite (448, 57344), as ONNX Cast
 *   with its default `saturate = 1`. In e4m3 the all-ones pattern S.1111.111 is NaN, so the largest
 *   value is 1.110·2^8 = 448 and e.g. 464 (a tie between 448 and the missing 480) saturates to 448.
 * - bf16m: saturates; with the default exponent range nothing can overflow (the top exponent is
 *   chosen from the rounded largest |w|).
 *
 * bf16m exponent: with `exponentBits` = 8 (or omitted and the tensor needs 8) the layout is exactly
 * bf16's (bias 127, Inf/NaN exponent reserved); with e < 8 bits there are no specials, all 2^e - 1
 * non-zero exponent codes are normal, and a per-tensor bias puts the top code at the exponent of
 * the rounded largest |w|: bias = 2^e - 1 - E_max. The default e is the fewest bits with
 * 2^e - 1 ≥ E_max - E_min + 1 (E_min: exponent of the smallest non-zero |w|), at most 8.
 *
 * Storage: one code of 1 + e + m bits per weight (sign | exponent | mantissa); params 8 bits for the
 * per-tensor bias when e < 8 in bf16m, else 0; entropy-coded indices: Huffman over the codes.
 */
import { fail } from '../errors';
import { huffmanBits } from './huffman';
import { roundHalfEven } from './quantize';
import { makeBits } from './storage';
import { makeCompressOptions, sumSquaredError, tensorLabel, validateTensor } from './tensor';
import type {
  CompressOptions,
  CompressedTensor,
  FloatFormat,
  FloatSpec,
  FloatStorage,
  WeightTensor,
} from './types';

/** The fixed formats. */
export const FLOAT_FORMATS: Readonly<Record<'fp16' | 'bf16' | 'fp8e4m3' | 'fp8e5m2', FloatFormat>> =
  {
    fp16: {
      exponentBits: 5,
      mantissaBits: 10,
      bias: 15,
      ieeeSpecials: true,
      nanAllOnes: false,
      overflow: 'inf',
    },
    bf16: {
      exponentBits: 8,
      mantissaBits: 7,
      bias: 127,
      ieeeSpecials: true,
      nanAllOnes: false,
      overflow: 'inf',
    },
    fp8e4m3: {
      exponentBits: 4,
      mantissaBits: 3,
      bias: 7,
      ieeeSpecials: false,
      nanAllOnes: true,
      overflow: 'saturate',
    },
    fp8e5m2: {
      exponentBits: 5,
      mantissaBits: 2,
      bias: 15,
      ieeeSpecials: true,
      nanAllOnes: false,
      overflow: 'saturate',
    },
  };

/** Largest finite value of a format. */
export function maxFinite(f: FloatFormat): number {
  const topExp = (f.ieeeSpecials ? 2 ** f.exponentBits - 2 : 2 ** f.exponentBits - 1) - f.bias;
  const maxMant = f.nanAllOnes ? 2 ** f.mantissaBits - 2 : 2 ** f.mantissaBits - 1;
  return 2 ** topExp * (1 + maxMant / 2 ** f.mantissaBits);
}

/** floor(log2(a)) for a > 0, exact. */
function exponentOf(a: number): number {
  let e = Math.floor(Math.log2(a));
  if (2 ** e > a) e--;
  else if (2 ** (e + 1) <= a) e++;
  return e;
}

/**
 * Rounds x (finite) to format `f` (RNE, gradual underflow, overflow per `f.overflow`).
 * @returns the value and its bit pattern (sign | exponent | mantissa).
 */
export function roundToFormat(x: number, f: FloatFormat): { value: number; code: number } {
  const m = f.mantissaBits;
  const signBit = x < 0 || Object.is(x, -0) ? 2 ** (f.exponentBits + m) : 0;
  const sign = signBit ? -1 : 1;
  const a = Math.abs(x);
  if (a === 0) return { value: sign * 0, code: signBit };
  const minExp = 1 - f.bias;
  const e = Math.max(exponentOf(a), minExp);
  const quantum = 2 ** (e - m);
  const r = roundHalfEven(a / quantum) * quantum;
  const max = maxFinite(f);
  if (r > max) {
    if (f.overflow === 'inf' && f.ieeeSpecials) {
      return { value: sign * Infinity, code: signBit + (2 ** f.exponentBits - 1) * 2 ** m };
    }
    return { value: sign * max, code: signBit + encodeMagnitude(max, f) };
  }
  return { value: sign * r, code: signBit + encodeMagnitude(r, f) };
}

/** Bit pattern (without sign) of a representable magnitude r ≥ 0. */
function encodeMagnitude(r: number, f: FloatFormat): number {
  const m = f.mantissaBits;
  if (r === 0) return 0;
  const minExp = 1 - f.bias;
  if (r < 2 ** minExp) return r / 2 ** (minExp - m);
  const e = exponentOf(r);
  return (e + f.bias) * 2 ** m + (r / 2 ** (e - m) - 2 ** m);
}

/**
 * Encodes every value of `data` to format `f`; the same result as {@link roundToFormat} per value
 * (tests check this), computed on the float32 bit patterns: for targets where the value is normal,
 * RNE is `(bits + 2^(s-1) - 1 + lsb) >> s` with s = 23 - m, then the exponent is re-biased.
 * Values that are subnormal in the target (or in float32) take the arithmetic path.
 */
export function encodeFloats(data: Float32Array, f: FloatFormat): Uint8Array | Uint16Array {
  const m = f.mantissaBits;
  const e = f.exponentBits;
  const width = 1 + e + m;
  const codes = width <= 8 ? new Uint8Array(data.length) : new Uint16Array(data.length);
  const u32 = new Uint32Array(data.buffer, data.byteOffset, data.length);
  const shift = 23 - m;
  const half = 2 ** (shift - 1) - 1;
  const rebias = (127 - f.bias) * 2 ** m;
  const minNormalE32 = Math.max(1, 1 - f.bias + 127);
  const maxCode = maxFinite(f) === 0 ? 0 : encodeMagnitude(maxFinite(f), f);
  const overflowCode = f.overflow === 'inf' && f.ieeeSpecials ? (2 ** e - 1) * 2 ** m : maxCode;
  const signBit = 2 ** (e + m);
  const invQuantum = 2 ** -(1 - f.bias - m);
  for (let i = 0; i < data.length; i++) {
    const u = u32[i]!;
    const mag = u & 0x7fffffff;
    let code: number;
    if (mag === 0) code = 0;
    else if (mag >>> 23 >= minNormalE32)
      code = ((mag + half + ((mag >>> shift) & 1)) >>> shift) - rebias;
    else if (mag >>> 23 === 0) code = roundToFormat(Math.abs(data[i]!), f).code;
    else code = roundHalfEven(Math.abs(data[i]!) * invQuantum);
    if (code > maxCode) code = overflowCode;
    codes[i] = u >>> 31 ? code + signBit : code;
  }
  return codes;
}

/** Decodes a bit pattern of format `f` (for tests and encoders). */
export function decodeFormat(code: number, f: FloatFormat): number {
  const m = f.mantissaBits;
  const eb = f.exponentBits;
  const sign = code >= 2 ** (eb + m) ? -1 : 1;
  const mag = code % 2 ** (eb + m);
  const ef = Math.floor(mag / 2 ** m);
  const mf = mag % 2 ** m;
  if (f.ieeeSpecials && ef === 2 ** eb - 1) return mf === 0 ? sign * Infinity : NaN;
  if (f.nanAllOnes && ef === 2 ** eb - 1 && mf === 2 ** m - 1) return NaN;
  if (ef === 0) return sign * mf * 2 ** (1 - f.bias - m);
  return sign * (1 + mf / 2 ** m) * 2 ** (ef - f.bias);
}

/** Checks a float spec. @throws CompressError `E_BAD_ARGUMENT`. */
export function validateFloatSpec(spec: FloatSpec, t?: WeightTensor): void {
  const where = t ? `${tensorLabel(t)}: ` : '';
  const names = ['fp16', 'bf16', 'bf16m', 'fp8e4m3', 'fp8e5m2'];
  if (!names.includes(spec.format)) {
    fail(
      'E_BAD_ARGUMENT',
      `${where}float format '${String(spec.format)}' is not one of ${names.join(', ')}.`,
    );
  }
  if (spec.format === 'bf16m') {
    const m = spec.mantissaBits ?? 7;
    if (!Number.isInteger(m) || m < 0 || m > 7) {
      fail('E_BAD_ARGUMENT', `${where}bf16m mantissaBits = ${String(m)} is not an integer in 0…7.`);
    }
    const e = spec.exponentBits;
    if (e !== undefined && (!Number.isInteger(e) || e < 1 || e > 8)) {
      fail('E_BAD_ARGUMENT', `${where}bf16m exponentBits = ${String(e)} is not an integer in 1…8.`);
    }
  } else if (spec.mantissaBits !== undefined || spec.exponentBits !== undefined) {
    fail(
      'E_BAD_ARGUMENT',
      `${where}mantissaBits/exponentBits only apply to format bf16m, not ${spec.format}.`,
    );
  }
}

/** The concrete {@link FloatFormat} a spec uses on this tensor (bf16m depends on the data). */
export function resolveFloatFormat(spec: FloatSpec, data: Float32Array): FloatFormat {
  if (spec.format !== 'bf16m') return FLOAT_FORMATS[spec.format];
  const m = spec.mantissaBits ?? 7;
  let maxAbs = 0;
  let minAbs = Infinity;
  for (let i = 0; i < data.length; i++) {
    const a = Math.abs(data[i]!);
    if (a > maxAbs) maxAbs = a;
    if (a > 0 && a < minAbs) minAbs = a;
  }
  let eMax = 0;
  let eMin = 0;
  if (maxAbs > 0) {
    eMax = exponentOf(maxAbs);
    // Rounding to m bits can carry the largest value into the next binade.
    if (roundHalfEven(maxAbs / 2 ** (eMax - m)) * 2 ** (eMax - m) >= 2 ** (eMax + 1)) eMax++;
    eMin = exponentOf(minAbs);
  }
  let e = spec.exponentBits;
  if (e === undefined) {
    e = 1;
    while (e < 8 && 2 ** e - 1 < eMax - eMin + 1) e++;
  }
  if (e === 8) return { ...FLOAT_FORMATS.bf16, mantissaBits: m, overflow: 'saturate' };
  return {
    exponentBits: e,
    mantissaBits: m,
    bias: 2 ** e - 1 - eMax,
    ieeeSpecials: false,
    nanAllOnes: false,
    overflow: 'saturate',
  };
}

/** Rounds a tensor to a reduced float format. See the module comment. */
export function floatWeights(
  tensor: WeightTensor,
  spec: FloatSpec,
  options: Partial<CompressOptions> = {},
): CompressedTensor {
  validateTensor(tensor);
  validateFloatSpec(spec, tensor);
  makeCompressOptions(options);
  const data = tensor.data;
  const n = data.length;
  const f = resolveFloatFormat(spec, data);
  const width = 1 + f.exponentBits + f.mantissaBits;
  const codes = encodeFloats(data, f);
  const weights = new Float32Array(n);
  const counts = new Float64Array(2 ** width);
  const table = new Float32Array(2 ** width);
  for (let c = 0; c < table.length; c++) table[c] = decodeFormat(c, f);
  for (let i = 0; i < n; i++) {
    const code = codes[i]!;
    weights[i] = table[code]!;
    counts[code]!++;
  }
  const storage: FloatStorage = { kind: 'float', format: spec.format, spec: f, codes };
  const customBias = spec.format === 'bf16m' && f.exponentBits < 8;
  return {
    spec,
    weights,
    storage,
    bits: makeBits({
      indices: n * width,
      params: customBias ? 8 : 0,
      entropyIndices: huffmanBits(counts).total,
    }),
    sse: sumSquaredError(data, weights),
  };
}
