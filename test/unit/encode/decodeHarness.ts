/** Runs a decode graph alone in onnxruntime and returns the weight it produces. */
import * as ort from 'onnxruntime-node';
import { encodeModel, makeValueInfo, OnnxModel } from '../../../src/engine/onnx';
import { addFunction } from '../../../src/engine/encode/apply';
import type { DecodeGraph } from '../../../src/engine/encode/decoders';
import { graph, model } from '../helpers/onnxBuilder';

/** The float32 weight `name` as onnxruntime decodes it from `g` (opset `opset`). */
export async function ortDecode(name: string, dims: readonly number[], g: DecodeGraph, opset = 13): Promise<Float32Array> {
  const m = model(graph({ nodes: g.nodes, inputs: [], outputs: [makeValueInfo(name, dims)], initializers: g.initializers }), opset);
  const om = new OnnxModel(m, 'decode-test');
  for (const f of g.functions) addFunction(om, f);
  const s = await ort.InferenceSession.create(encodeModel(m), { logSeverityLevel: 3 });
  try {
    const out = await s.run({});
    return out[name]!.data as Float32Array;
  } finally {
    await s.release();
  }
}

/** Bit-for-bit equality of two float32 arrays (NaN patterns included); returns the first difference. */
export function firstBitDifference(a: Float32Array, b: Float32Array): string | undefined {
  if (a.length !== b.length) return `lengths ${a.length} vs ${b.length}`;
  const x = new Uint32Array(a.buffer, a.byteOffset, a.length);
  const y = new Uint32Array(b.buffer, b.byteOffset, b.length);
  for (let i = 0; i < x.length; i++) if (x[i] !== y[i]) return `element ${i}: ${a[i]} vs ${b[i]}`;
  return undefined;
}
