/**
 * Reading and writing the data of `TensorProto`s. Tensor bytes come from `raw_data` (little-endian,
 * onnx.proto), from the typed fields (`float_data`, `int32_data`...), or from external data that
 * {@link TensorStore} resolved when the model was loaded.
 */
import { create } from '@bufbuild/protobuf';
import { fail } from '../errors';
import {
  bfloat16ToFloat,
  DataType as DT,
  dataTypeBits,
  dataTypeName,
  floatToBfloat16,
  floatToHalf,
  halfToFloat,
  isFloatType,
  rawByteLength,
} from './dtype';
import { TensorProto_DataLocation, TensorProtoSchema, type TensorProto } from './proto';

/** Resolved external data: the bytes of each tensor whose `data_location` is EXTERNAL. */
export type ExternalBytes = WeakMap<TensorProto, Uint8Array>;

/**
 * Converts int64 dims to numbers.
 * @throws E_MODEL_INVALID when a dim is negative or beyond `Number.MAX_SAFE_INTEGER`.
 */
export function dimsOf(t: { dims: bigint[]; name?: string }): number[] {
  return t.dims.map((d) => {
    if (d < 0n || d > BigInt(Number.MAX_SAFE_INTEGER)) {
      fail('E_MODEL_INVALID', `Tensor '${t.name ?? ''}' has an invalid dimension ${d}.`);
    }
    return Number(d);
  });
}

/** Number of elements: the product of the dims (1 for a scalar). */
export function elementCount(dims: readonly number[]): number {
  let n = 1;
  for (const d of dims) n *= d;
  return n;
}

/** True when the tensor's payload lives in an external file. */
export function isExternal(t: TensorProto): boolean {
  return t.dataLocation === TensorProto_DataLocation.EXTERNAL;
}

/**
 * The tensor's little-endian payload as stored in `raw_data` or external data, or `undefined` when
 * the data is in the typed fields. Returns a view, not a copy.
 */
export function rawBytes(t: TensorProto, external?: ExternalBytes): Uint8Array | undefined {
  if (isExternal(t)) {
    const b = external?.get(t);
    if (!b) fail('E_EXTERNAL_DATA', `External data of tensor '${t.name}' was not loaded.`);
    return b;
  }
  return t.rawData.length > 0 || typedFieldLength(t) === 0 ? t.rawData : undefined;
}

function typedFieldLength(t: TensorProto): number {
  return (
    t.floatData.length + t.int32Data.length + t.int64Data.length + t.doubleData.length + t.uint64Data.length + t.stringData.length
  );
}

/**
 * Size in bytes of the tensor's payload as stored (raw, external or typed fields re-encoded raw).
 * This is what the tensor costs on disk, give or take protobuf framing.
 */
export function storedByteLength(t: TensorProto, external?: ExternalBytes): number {
  const raw = rawBytes(t, external);
  if (raw) return raw.length;
  if (t.dataType === DT.STRING) return t.stringData.reduce((s, b) => s + b.length, 0);
  return rawByteLength(t.dataType, elementCount(dimsOf(t)));
}

/**
 * Checks that the payload size matches dims × element size.
 * @throws E_TENSOR_DATA naming the tensor, the expected and the actual size; E_MODEL_INVALID for an
 * unknown (or UNDEFINED) data type.
 */
export function checkTensorData(t: TensorProto, external?: ExternalBytes, where = ''): void {
  if (t.dataType === DT.STRING) return;
  const at = where ? ` in ${where}` : '';
  if (dataTypeBits(t.dataType) === 0) {
    fail('E_MODEL_INVALID', `Tensor '${t.name}'${at} has an unknown data type ${t.dataType} (onnx.proto TensorProto.DataType). The file is corrupt or was written by a broken exporter.`);
  }
  const count = elementCount(dimsOf(t));
  const raw = rawBytes(t, external);
  if (raw) {
    const expected = rawByteLength(t.dataType, count);
    if (raw.length !== expected) {
      fail(
        'E_TENSOR_DATA',
        `Tensor '${t.name}'${at} has ${raw.length} bytes of ${dataTypeName(t.dataType)} data but its shape [${dimsOf(t).join(', ')}] needs ${expected}. The file is corrupt or was written by a broken exporter.`,
      );
    }
    return;
  }
  const have = typedFieldLength(t);
  const expected = typedFieldExpected(t.dataType, count);
  if (expected !== undefined && have !== expected) {
    fail(
      'E_TENSOR_DATA',
      `Tensor '${t.name}'${at} has ${have} values of ${dataTypeName(t.dataType)} data but its shape [${dimsOf(t).join(', ')}] needs ${expected}.`,
    );
  }
}

function typedFieldExpected(dt: number, count: number): number | undefined {
  switch (dt) {
    case DT.UINT4:
    case DT.INT4:
    case DT.FLOAT4E2M1:
      return Math.ceil(count / 2);
    case DT.UINT2:
    case DT.INT2:
      return Math.ceil(count / 4);
    case DT.COMPLEX64:
    case DT.COMPLEX128:
      return count * 2;
    default:
      return count;
  }
}

/**
 * Decodes a float tensor (float32, float16, bfloat16, float64) to a new or viewed Float32Array.
 * A float32 `raw_data` that is 4-byte aligned is returned as a view (no copy); mutate it only if you
 * own the model.
 * @throws E_MODEL_UNSUPPORTED for non-float types; E_TENSOR_DATA when the size does not match.
 */
export function tensorToFloat32(t: TensorProto, external?: ExternalBytes): Float32Array {
  if (!isFloatType(t.dataType)) {
    fail('E_MODEL_UNSUPPORTED', `Tensor '${t.name}' is ${dataTypeName(t.dataType)}, not a float type; only float32, float16, bfloat16 and float64 weights can be read as float.`);
  }
  checkTensorData(t, external);
  const count = elementCount(dimsOf(t));
  const raw = rawBytes(t, external);
  if (!raw) return typedToFloat32(t, count);
  const dv = new DataView(raw.buffer, raw.byteOffset, raw.byteLength);
  switch (t.dataType) {
    case DT.FLOAT: {
      if (raw.byteOffset % 4 === 0 && isLittleEndianHost) return new Float32Array(raw.buffer, raw.byteOffset, count);
      const out = new Float32Array(count);
      new Uint8Array(out.buffer).set(raw.subarray(0, count * 4));
      return out;
    }
    case DT.FLOAT16: {
      const out = new Float32Array(count);
      for (let i = 0; i < count; i++) out[i] = halfToFloat(dv.getUint16(i * 2, true));
      return out;
    }
    case DT.BFLOAT16: {
      const out = new Float32Array(count);
      const o32 = new Uint32Array(out.buffer);
      for (let i = 0; i < count; i++) o32[i] = dv.getUint16(i * 2, true) << 16;
      return out;
    }
    default: {
      const out = new Float32Array(count);
      for (let i = 0; i < count; i++) out[i] = dv.getFloat64(i * 8, true);
      return out;
    }
  }
}

const isLittleEndianHost = new Uint8Array(new Uint16Array([1]).buffer)[0] === 1;

function typedToFloat32(t: TensorProto, count: number): Float32Array {
  const out = new Float32Array(count);
  switch (t.dataType) {
    case DT.FLOAT:
      out.set(t.floatData);
      break;
    case DT.DOUBLE:
      out.set(t.doubleData);
      break;
    case DT.FLOAT16:
      for (let i = 0; i < count; i++) out[i] = halfToFloat(t.int32Data[i]! & 0xffff);
      break;
    default:
      for (let i = 0; i < count; i++) out[i] = bfloat16ToFloat(t.int32Data[i]! & 0xffff);
  }
  return out;
}

/**
 * Encodes float32 values as `raw_data` bytes of a float type (rounding to nearest even for the
 * narrower ones).
 */
export function float32ToRaw(data: Float32Array, dataType: number): Uint8Array<ArrayBuffer> {
  switch (dataType) {
    case DT.FLOAT: {
      const out = new Uint8Array(data.length * 4);
      out.set(new Uint8Array(data.buffer, data.byteOffset, data.byteLength));
      return out;
    }
    case DT.FLOAT16:
    case DT.BFLOAT16: {
      const out = new Uint16Array(data.length);
      const conv = dataType === DT.FLOAT16 ? floatToHalf : floatToBfloat16;
      for (let i = 0; i < data.length; i++) out[i] = conv(data[i]!);
      return new Uint8Array(out.buffer);
    }
    case DT.DOUBLE:
      return new Uint8Array(Float64Array.from(data).buffer);
    default:
      return fail('E_BAD_ARGUMENT', `Cannot write float data as ${dataTypeName(dataType)}.`);
  }
}

/** Options for {@link makeTensor}. */
export interface MakeTensorOptions {
  /** Tensor name. */
  name: string;
  /** ONNX data type of the stored payload. */
  dataType: number;
  /** Shape. */
  dims: readonly number[];
  /** Little-endian payload, exactly `rawByteLength(dataType, product(dims))` bytes. */
  raw: Uint8Array<ArrayBuffer>;
  /** Optional doc string. */
  docString?: string;
}

/** Creates a `TensorProto` with `raw_data`. @throws E_BAD_ARGUMENT when the payload size is wrong. */
export function makeTensor(o: MakeTensorOptions): TensorProto {
  const expected = rawByteLength(o.dataType, elementCount(o.dims));
  if (o.raw.length !== expected) {
    fail('E_BAD_ARGUMENT', `Tensor '${o.name}': ${o.raw.length} bytes given, shape [${o.dims.join(', ')}] of ${dataTypeName(o.dataType)} needs ${expected}.`);
  }
  const t = create(TensorProtoSchema, {
    name: o.name,
    dataType: o.dataType,
    dims: o.dims.map((d) => BigInt(d)),
    rawData: o.raw,
  });
  if (o.docString) t.docString = o.docString;
  return t;
}

/** Creates a float tensor from float32 values, stored as `dataType` (float32 by default). */
export function makeFloatTensor(name: string, data: Float32Array, dims: readonly number[], dataType: number = DT.FLOAT): TensorProto {
  return makeTensor({ name, dataType, dims, raw: float32ToRaw(data, dataType) });
}
