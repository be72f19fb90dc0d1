/**
 * Builds small ONNX models in tests, with protobuf-es `create`, so tests need no Python.
 */
import { create } from '@bufbuild/protobuf';
import { GraphProtoSchema, ModelProtoSchema, OperatorSetIdProtoSchema, type GraphProto, type ModelProto, type NodeProto, type TensorProto, type ValueInfoProto } from '../../../src/engine/onnx/proto';
import { attr, makeFloatTensor, makeNode, makeValueInfo } from '../../../src/engine/onnx';
import { gaussian, mulberry32 } from '../../../src/engine/util/random';

export { attr };
/** A node (see `makeNode`). */
export const node = makeNode;
/** A value info (see `makeValueInfo`). */
export const valueInfo = makeValueInfo;

/** A graph. */
export function graph(o: { nodes: NodeProto[]; inputs: ValueInfoProto[]; outputs: ValueInfoProto[]; initializers?: TensorProto[]; name?: string }): GraphProto {
  return create(GraphProtoSchema, { name: o.name ?? 'g', node: o.nodes, input: o.inputs, output: o.outputs, initializer: o.initializers ?? [] });
}

/** A model with the default opset `opset` (and IR version 8 unless given). */
export function model(g: GraphProto, opset = 13, irVersion = 8): ModelProto {
  return create(ModelProtoSchema, {
    irVersion: BigInt(irVersion),
    producerName: 'onnx-compress-tests',
    opsetImport: [create(OperatorSetIdProtoSchema, { domain: '', version: BigInt(opset) })],
    graph: g,
  });
}

/** Seeded Gaussian values scaled by `scale`. */
export function randomWeights(n: number, seed: number, scale = 0.1): Float32Array {
  const g = gaussian(mulberry32(seed));
  const out = new Float32Array(n);
  for (let i = 0; i < n; i++) out[i] = g() * scale;
  return out;
}

/**
 * A small CNN: Conv(3->8, 3x3) + Relu + Conv(8->8, 3x3) + GlobalAveragePool + Flatten + Gemm(8->4),
 * input `x` [N,3,8,8], output `y` [N,4]. Weights are seeded.
 */
export function tinyCnn(seed = 1): ModelProto {
  const w1 = makeFloatTensor('conv1.weight', randomWeights(8 * 3 * 9, seed), [8, 3, 3, 3]);
  const b1 = makeFloatTensor('conv1.bias', randomWeights(8, seed + 1), [8]);
  const w2 = makeFloatTensor('conv2.weight', randomWeights(8 * 8 * 9, seed + 2), [8, 8, 3, 3]);
  const fc = makeFloatTensor('fc.weight', randomWeights(4 * 8, seed + 3), [4, 8]);
  const fcb = makeFloatTensor('fc.bias', randomWeights(4, seed + 4), [4]);
  return model(
    graph({
      nodes: [
        node('Conv', ['x', 'conv1.weight', 'conv1.bias'], ['c1'], 'conv1', [attr.ints('pads', [1, 1, 1, 1])]),
        node('Relu', ['c1'], ['r1'], 'relu1'),
        node('Conv', ['r1', 'conv2.weight'], ['c2'], 'conv2', [attr.ints('pads', [1, 1, 1, 1])]),
        node('GlobalAveragePool', ['c2'], ['p'], 'pool'),
        node('Flatten', ['p'], ['f'], 'flatten'),
        node('Gemm', ['f', 'fc.weight', 'fc.bias'], ['y'], 'fc', [attr.int('transB', 1)]),
      ],
      inputs: [valueInfo('x', ['N', 3, 8, 8])],
      outputs: [valueInfo('y', ['N', 4])],
      initializers: [w1, b1, w2, fc, fcb],
    }),
  );
}
