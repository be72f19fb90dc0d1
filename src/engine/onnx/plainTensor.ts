/**
 * `TensorProto` to a plain `{ type, data, dims }` value in the layout onnxruntime's `Tensor`
 * constructor takes (`new ort.Tensor(type, data, dims)`), without importing onnxruntime here.
 */
import { fail } from '../errors';
import { DataType as DT, dataTypeName } from './dtype';
import type { TensorProto } from './proto';
import { dimsOf, elementCount, rawBytes, type ExternalBytes } from './tensor';

/** onnxruntime-common tensor type names. */
export type OrtTypeName =
  | 'float32' | 'float64' | 'float16' | 'int8' | 'uint8' | 'int16' | 'uint16' | 'int32' | 'uint32'
  | 'int64' | 'uint64' | 'bool' | 'string' | 'int4' | 'uint4';

/** Typed data with its onnxruntime type name and dims. */
export interface PlainTensor {
  type: OrtTypeName;
  data: Float32Array | Float64Array | Uint16Array | Int8Array | Uint8Array | Int16Array | Int32Array | Uint32Array | BigInt64Array | BigUint64Array | string[];
  dims: number[];
}

const CTORS = {
  [DT.FLOAT]: ['float32', Float32Array, 'floatData'],
  [DT.DOUBLE]: ['float64', Float64Array, 'doubleData'],
  [DT.FLOAT16]: ['float16', Uint16Array, 'int32Data'],
  [DT.INT8]: ['int8', Int8Array, 'int32Data'],
  [DT.UINT8]: ['uint8', Uint8Array, 'int32Data'],
  [DT.INT16]: ['int16', Int16Array, 'int32Data'],
  [DT.UINT16]: ['uint16', Uint16Array, 'int32Data'],
  [DT.INT32]: ['int32', Int32Array, 'int32Data'],
  [DT.UINT32]: ['uint32', Uint32Array, 'uint64Data'],
  [DT.INT64]: ['int64', BigInt64Array, 'int64Data'],
  [DT.UINT64]: ['uint64', BigUint64Array, 'uint64Data'],
  [DT.BOOL]: ['bool', Uint8Array, 'int32Data'],
} as const;

/**
 * Converts a tensor to onnxruntime's layout. Data is copied (ORT may keep a reference).
 * @throws E_MODEL_UNSUPPORTED for types onnxruntime-node cannot take as input (bfloat16, float8...).
 */
export function toPlainTensor(t: TensorProto, external?: ExternalBytes): PlainTensor {
  const dims = dimsOf(t);
  const count = elementCount(dims);
  if (t.dataType === DT.STRING) {
    const dec = new TextDecoder();
    return { type: 'string', data: t.stringData.map((b) => dec.decode(b)), dims };
  }
  const spec = (CTORS as Record<number, readonly [OrtTypeName, new (n: number) => PlainTensor['data'], string]>)[t.dataType];
  if (!spec) fail('E_MODEL_UNSUPPORTED', `Tensor '${t.name}' of type ${dataTypeName(t.dataType)} cannot be fed to onnxruntime-node.`);
  const [type, Ctor, field] = spec;
  const out = new Ctor(count) as Exclude<PlainTensor['data'], string[]>;
  const raw = rawBytes(t, external);
  if (raw) {
    new Uint8Array(out.buffer).set(raw.subarray(0, out.byteLength));
  } else {
    const src = (t as unknown as Record<string, ArrayLike<number | bigint>>)[field]!;
    for (let i = 0; i < count; i++) {
      const v = src[i]!;
      (out as unknown as { [i: number]: number | bigint })[i] = out instanceof BigInt64Array || out instanceof BigUint64Array ? BigInt(v) : Number(v);
    }
  }
  return { type, data: out, dims };
}
