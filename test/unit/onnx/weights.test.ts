import * as assert from 'node:assert/strict';
import {
  bfloat16ToFloat,
  DataType,
  floatToBfloat16,
  floatToHalf,
  halfToFloat,
  listWeights,
  makeFloatTensor,
  makeTensor,
  modelFromBytes,
  encodeModel,
  modelInfo,
} from '../../../src/engine/onnx';
import { attr, graph, model, node, randomWeights, tinyCnn, valueInfo } from '../helpers/onnxBuilder';

describe('onnx weights listing', () => {
  it('lists conv/gemm weights with roles, kinds, channel axes and consumers in graph order', () => {
    const m = modelFromBytes(encodeModel(tinyCnn()));
    const ws = listWeights(m, { minParams: 32 });
    assert.deepEqual(ws.map((w) => w.name), ['conv1.weight', 'conv1.bias', 'conv2.weight', 'fc.weight', 'fc.bias']);
    const by = Object.fromEntries(ws.map((w) => [w.name, w]));
    assert.equal(by['conv1.weight']!.role, 'weight');
    assert.equal(by['conv1.weight']!.kind, 'conv');
    assert.equal(by['conv1.bias']!.role, 'bias');
    assert.equal(by['conv1.bias']!.compressible, false);
    assert.equal(by['fc.weight']!.kind, 'gemm');
    assert.equal(by['fc.weight']!.channelAxis, 0, 'transB=1: [out, in]');
    assert.equal(by['fc.weight']!.compressible, true);
    assert.equal(by['conv2.weight']!.bytes, 8 * 8 * 9 * 4);
    assert.deepEqual(by['conv2.weight']!.consumers, [{ op: 'Conv', node: 'conv2', input: 1, role: 'weight' }]);
    const info = modelInfo(m, 1234, { minParams: 32 });
    assert.deepEqual(info.inputs, [{ name: 'x', dtype: 'float32', shape: ['N', 3, 8, 8] }]);
    assert.equal(info.totalParams, 216 + 8 + 576 + 32 + 4);
    assert.equal(info.compressibleParams, 216 + 576 + 32);
    assert.deepEqual(info.ops, { Conv: 2, Relu: 1, GlobalAveragePool: 1, Flatten: 1, Gemm: 1 });
  });

  it('finds weights in If subgraphs, Constant nodes, behind Cast, and marks QDQ weights quantized', () => {
    const w = randomWeights(16 * 16, 3);
    const thenG = graph({
      name: 'then',
      nodes: [node('MatMul', ['x', 'sub.w'], ['t'], 'then_mm')],
      inputs: [],
      outputs: [valueInfo('t', [1, 16])],
      initializers: [makeFloatTensor('sub.w', w, [16, 16])],
    });
    const elseG = graph({ name: 'else', nodes: [node('Identity', ['x'], ['e'])], inputs: [], outputs: [valueInfo('e', [1, 16])] });
    const q = makeTensor({ name: 'q.w', dataType: DataType.INT8, dims: [16, 16], raw: new Uint8Array(256) });
    const m = model(
      graph({
        nodes: [
          node('Constant', [], ['const.w'], 'const', [attr.tensor('value', makeFloatTensor('', w, [16, 16]))]),
          node('MatMul', ['x', 'const.w'], ['a'], 'mm_const'),
          node('Cast', ['half.w'], ['half.w.f32'], 'cast', [attr.int('to', DataType.FLOAT)]),
          node('MatMul', ['a', 'half.w.f32'], ['b'], 'mm_half'),
          node('DequantizeLinear', ['q.w', 'q.scale'], ['q.deq'], 'dq'),
          node('MatMul', ['b', 'q.deq'], ['c'], 'mm_q'),
          node('If', ['cond'], ['y'], 'if', [attr.graph('then_branch', thenG), attr.graph('else_branch', elseG)]),
        ],
        inputs: [valueInfo('x', [1, 16]), valueInfo('cond', [], DataType.BOOL)],
        outputs: [valueInfo('y', [1, 16])],
        initializers: [makeFloatTensor('half.w', w, [16, 16], DataType.FLOAT16), q, makeFloatTensor('q.scale', new Float32Array([0.1]), [])],
      }),
    );
    const ws = listWeights(modelFromBytes(encodeModel(model(m.graph!, 13))));
    const by = Object.fromEntries(ws.map((x) => [x.name, x]));
    assert.equal(by['const.w']!.source, 'constant');
    assert.equal(by['const.w']!.compressible, true);
    assert.equal(by['half.w']!.dtype, 'float16');
    assert.equal(by['half.w']!.op, 'MatMul', 'looked through the Cast');
    assert.equal(by['half.w']!.channelAxis, 1);
    assert.equal(by['half.w']!.compressible, true);
    assert.equal(by['q.w']!.quantized, true);
    assert.equal(by['q.w']!.reason, 'already quantized');
    assert.equal(by['sub.w']!.graph, 'main/if.then_branch');
    assert.equal(by['sub.w']!.op, 'MatMul');
    assert.equal(by['sub.w']!.compressible, true);
  });
});

describe('onnx dtype conversions', () => {
  it('float16: every finite half survives half -> float -> half; NaN stays NaN', () => {
    for (let h = 0; h < 0x10000; h++) {
      const f = halfToFloat(h);
      if (Number.isNaN(f)) assert.ok(Number.isNaN(halfToFloat(floatToHalf(f))));
      else assert.equal(floatToHalf(f), h, `0x${h.toString(16)}`);
    }
  });

  it('float16 rounds to nearest even, overflows to infinity and underflows to signed zero', () => {
    assert.equal(floatToHalf(1 + 2 ** -11), 0x3c00, 'tie to even (down)');
    assert.equal(floatToHalf(1 + 3 * 2 ** -11), 0x3c02, 'tie to even (up)');
    assert.equal(floatToHalf(65504), 0x7bff);
    assert.equal(floatToHalf(65520), 0x7c00, 'halfway to the next binade rounds to infinity');
    assert.equal(floatToHalf(2 ** -25), 0x0000, 'half the smallest subnormal ties to zero');
    assert.equal(floatToHalf(-(2 ** -26)), 0x8000);
    assert.equal(floatToHalf(3 * 2 ** -25), 0x0002, 'subnormal tie to even');
  });

  it('bfloat16: every non-NaN pattern round-trips; float32 rounds to nearest even', () => {
    for (let b = 0; b < 0x10000; b++) {
      const f = bfloat16ToFloat(b);
      if (Number.isNaN(f)) assert.ok(Number.isNaN(bfloat16ToFloat(floatToBfloat16(f))));
      else assert.equal(floatToBfloat16(f), b);
    }
    assert.equal(floatToBfloat16(1 + 2 ** -8), 0x3f80, 'tie to even (down)');
    assert.equal(floatToBfloat16(1 + 3 * 2 ** -8), 0x3f82, 'tie to even (up)');
    assert.equal(floatToBfloat16(1 + 2 ** -8 + 2 ** -20), 0x3f81);
  });
});
