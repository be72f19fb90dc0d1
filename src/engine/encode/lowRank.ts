/**
 * Low rank as two layers: a weight W (viewed as the [rows = output channels, cols] matrix of
 * `LowRankStorage`) ≈ L·R is replaced by two smaller layers in the graph, which also saves compute:
 * - Conv (group 1), W [O, I, kh, kw]: Conv(x, R as [r, I, kh, kw], same strides/pads/dilations) then
 *   Conv(·, L as [O, r, 1, 1], bias).
 * - Gemm(A, W, C) with transB = 1 (W [O, I]): MatMul(A, Rᵀ [I, r]) then Gemm(·, L [O, r], C, transB=1).
 * - Gemm with transB = 0 (W [I, O]): MatMul(A, Rᵀ) then Gemm(·, Lᵀ [r, O], C, transB=0).
 * - MatMul(A, W [K, N]): MatMul(MatMul(A, Rᵀ [K, r]), Lᵀ [r, N]).
 * The factors are stored exactly (float32), so the file holds exactly what the compressor produced;
 * the model computes (A·Rᵀ)·Lᵀ instead of A·(L·R)ᵀ, equal up to float rounding.
 */
import type { LowRankStorage } from '../compress';
import { makeFloatTensor, makeNode, type NodeProto, type OnnxModel } from '../onnx';

/** Why a low-rank rewrite does not apply, or `undefined` when it does. */
export function lowRankUnsupported(model: OnnxModel, weight: string, dims: readonly number[]): string | undefined {
  const users = model.graph.node.filter((n) => n.input.includes(weight));
  if (users.length !== 1) return `'${weight}' has ${users.length} consumers; low rank needs exactly one`;
  const n = users[0]!;
  const intAttr = (name: string, d: number): number => Number(n.attribute.find((a) => a.name === name)?.i ?? d);
  switch (n.opType) {
    case 'Conv':
      if (n.input[1] !== weight) return `'${weight}' is not the Conv weight`;
      if (intAttr('group', 1) !== 1) return `Conv '${n.name}' is grouped (depthwise); low rank applies to group = 1 only`;
      if (dims.length < 3) return `Conv weight of rank ${dims.length}`;
      return undefined;
    case 'Gemm':
      if (n.input[1] !== weight) return `'${weight}' is not Gemm's B input`;
      if (intAttr('transA', 0) !== 0) return `Gemm '${n.name}' has transA = 1`;
      return undefined;
    case 'MatMul':
      if (n.input[1] !== weight || dims.length !== 2) return `'${weight}' is not a 2-D right-hand MatMul operand`;
      return undefined;
    default:
      return `low rank does not apply to ${n.opType}`;
  }
}

function transpose(m: Float32Array, rows: number, cols: number): Float32Array {
  const out = new Float32Array(m.length);
  for (let r = 0; r < rows; r++) for (let c = 0; c < cols; c++) out[c * rows + r] = m[r * cols + c]!;
  return out;
}

/**
 * Rewrites the single consumer of `weight` into two layers. Removes the weight's initializer.
 * Call {@link lowRankUnsupported} first.
 */
export function applyLowRank(model: OnnxModel, weight: string, dims: readonly number[], s: LowRankStorage): void {
  const g = model.graph;
  const idx = g.node.findIndex((n) => n.input.includes(weight));
  const n = g.node[idx]!;
  const r = s.rank;
  const mid = model.uniqueName(`${weight}::lowrank_mid`);
  const leftName = model.uniqueName(`${weight}::L`);
  const rightName = model.uniqueName(`${weight}::R`);
  let replacement: NodeProto[];
  if (n.opType === 'Conv') {
    model.addInitializer(makeFloatTensor(rightName, s.right, [r, ...dims.slice(1)]));
    model.addInitializer(makeFloatTensor(leftName, s.left, [dims[0]!, r, ...dims.slice(2).map(() => 1)]));
    const first = makeNode('Conv', [n.input[0]!, rightName], [mid], `${n.name || weight}::lowrank_a`, n.attribute.filter((a) => a.name !== 'group'));
    const second = makeNode('Conv', [mid, leftName, ...(n.input[2] ? [n.input[2]] : [])], [...n.output], n.name || `${weight}::lowrank_b`);
    replacement = [first, second];
  } else {
    // Rᵀ: [cols, r] multiplies the activations first.
    model.addInitializer(makeFloatTensor(rightName, transpose(s.right, r, s.cols), [s.cols, r]));
    const first = makeNode('MatMul', [n.input[0]!, rightName], [mid], `${n.name || weight}::lowrank_a`);
    if (n.opType === 'Gemm') {
      const transB = Number(n.attribute.find((a) => a.name === 'transB')?.i ?? 0);
      if (transB) model.addInitializer(makeFloatTensor(leftName, s.left, [s.rows, r]));
      else model.addInitializer(makeFloatTensor(leftName, transpose(s.left, s.rows, r), [r, s.rows]));
      const second = makeNode('Gemm', [mid, leftName, ...n.input.slice(2)], [...n.output], n.name, n.attribute.filter((a) => a.name !== 'transA'));
      replacement = [first, second];
    } else {
      model.addInitializer(makeFloatTensor(leftName, transpose(s.left, s.rows, r), [r, s.rows]));
      replacement = [first, makeNode('MatMul', [mid, leftName], [...n.output], n.name)];
    }
  }
  g.node.splice(idx, 1, ...replacement);
  model.removeInitializer(weight);
  const gi = g.input.findIndex((v) => v.name === weight);
  if (gi >= 0) g.input.splice(gi, 1);
}
