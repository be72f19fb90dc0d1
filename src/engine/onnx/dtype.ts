/**
 * ONNX tensor element types: names, sizes, and conversion of float formats to and from float32.
 */
import { fail } from '../errors';
import { TensorProto_DataType as DT } from './proto';

export { DT as DataType };

const NAMES: Record<number, string> = {
  [DT.UNDEFINED]: 'undefined',
  [DT.FLOAT]: 'float32',
  [DT.UINT8]: 'uint8',
  [DT.INT8]: 'int8',
  [DT.UINT16]: 'uint16',
  [DT.INT16]: 'int16',
  [DT.INT32]: 'int32',
  [DT.INT64]: 'int64',
  [DT.STRING]: 'string',
  [DT.BOOL]: 'bool',
  [DT.FLOAT16]: 'float16',
  [DT.DOUBLE]: 'float64',
  [DT.UINT32]: 'uint32',
  [DT.UINT64]: 'uint64',
  [DT.COMPLEX64]: 'complex64',
  [DT.COMPLEX128]: 'complex128',
  [DT.BFLOAT16]: 'bfloat16',
  [DT.FLOAT8E4M3FN]: 'float8e4m3fn',
  [DT.FLOAT8E4M3FNUZ]: 'float8e4m3fnuz',
  [DT.FLOAT8E5M2]: 'float8e5m2',
  [DT.FLOAT8E5M2FNUZ]: 'float8e5m2fnuz',
  [DT.UINT4]: 'uint4',
  [DT.INT4]: 'int4',
  [DT.FLOAT4E2M1]: 'float4e2m1',
  [DT.FLOAT8E8M0]: 'float8e8m0',
  [DT.UINT2]: 'uint2',
  [DT.INT2]: 'int2',
};

/** Bits per element for fixed-size types; 0 for strings and unknown types. */
const BITS: Record<number, number> = {
  [DT.FLOAT]: 32,
  [DT.UINT8]: 8,
  [DT.INT8]: 8,
  [DT.UINT16]: 16,
  [DT.INT16]: 16,
  [DT.INT32]: 32,
  [DT.INT64]: 64,
  [DT.BOOL]: 8,
  [DT.FLOAT16]: 16,
  [DT.DOUBLE]: 64,
  [DT.UINT32]: 32,
  [DT.UINT64]: 64,
  [DT.COMPLEX64]: 64,
  [DT.COMPLEX128]: 128,
  [DT.BFLOAT16]: 16,
  [DT.FLOAT8E4M3FN]: 8,
  [DT.FLOAT8E4M3FNUZ]: 8,
  [DT.FLOAT8E5M2]: 8,
  [DT.FLOAT8E5M2FNUZ]: 8,
  [DT.UINT4]: 4,
  [DT.INT4]: 4,
  [DT.FLOAT4E2M1]: 4,
  [DT.FLOAT8E8M0]: 8,
  [DT.UINT2]: 2,
  [DT.INT2]: 2,
};

/** Lower-case name of an ONNX data type (`float32`, `bfloat16`...), or `type<N>` when unknown. */
export function dataTypeName(dt: number): string {
  return NAMES[dt] ?? `type${dt}`;
}

/** Bits per element, or 0 for variable-size (string) and unknown types. */
export function dataTypeBits(dt: number): number {
  return BITS[dt] ?? 0;
}

/** Bytes that `count` elements take in `raw_data` (sub-byte types are packed, rounded up). */
export function rawByteLength(dt: number, count: number): number {
  return Math.ceil((dataTypeBits(dt) * count) / 8);
}

/** The float types the engine can read as float32 and compress. */
export const FLOAT_TYPES: ReadonlySet<number> = new Set([DT.FLOAT, DT.FLOAT16, DT.BFLOAT16, DT.DOUBLE]);

/** True when tensors of this type can be decoded to float32 and compressed. */
export function isFloatType(dt: number): boolean {
  return FLOAT_TYPES.has(dt);
}

export { floatToHalf, halfToFloat, isHalfExact, roundToHalf } from '../util/half';

const f32 = new Float32Array(1);
const u32 = new Uint32Array(f32.buffer);

/** bfloat16 bits to a number (the top half of a float32). */
export function bfloat16ToFloat(b: number): number {
  u32[0] = (b & 0xffff) << 16;
  return f32[0]!;
}

/** float32 value to bfloat16 bits, rounding to nearest, ties to even; NaN stays NaN. */
export function floatToBfloat16(x: number): number {
  f32[0] = x;
  const bits = u32[0]!;
  if ((bits & 0x7f800000) === 0x7f800000 && bits & 0x7fffff) return ((bits >>> 16) | 0x40) & 0xffff;
  const rounded = bits + 0x7fff + ((bits >>> 16) & 1);
  return (rounded >>> 16) & 0xffff;
}

/** Parses a dtype name as printed by {@link dataTypeName} (also accepts `float`, `half`, `double`). */
export function parseDataType(name: string): number {
  const aliases: Record<string, number> = { float: DT.FLOAT, half: DT.FLOAT16, double: DT.DOUBLE, fp16: DT.FLOAT16, bf16: DT.BFLOAT16 };
  const lower = name.toLowerCase();
  if (aliases[lower] !== undefined) return aliases[lower];
  for (const [k, v] of Object.entries(NAMES)) if (v === lower) return Number(k);
  return fail('E_BAD_ARGUMENT', `Unknown data type '${name}'. Expected one of: ${Object.values(NAMES).join(', ')}.`);
}
