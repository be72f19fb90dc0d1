/**
 * Lists the weight tensors of a model: every float initializer (in any graph) and every Constant
 * node holding a tensor, with its consumers and the role it plays for them.
 */
import { CompressError, fail } from '../errors';
import { dataTypeName, isFloatType } from './dtype';
import { AttributeProto_AttributeType } from './proto';
import type { OnnxModel } from './model';
import type { NodeProto, TensorProto } from './proto';
import { dimsOf, elementCount } from './tensor';
import { forEachGraph, nodeLabel } from './walk';

/** What a tensor is to the node that consumes it. */
export type WeightRole = 'weight' | 'bias' | 'other';

/** The kind of layer a weight belongs to, which decides how it is reshaped and compressed. */
export type LayerKind = 'conv' | 'gemm' | 'matmul' | 'other';

/** One use of a tensor by a node. */
export interface Consumer {
  /** Operator type, e.g. `Conv`. */
  op: string;
  /** Node name (or `OpType_<index>` when unnamed). */
  node: string;
  /** Input position of the tensor in the node. */
  input: number;
  /** Role of that input. */
  role: WeightRole;
}

/** A weight tensor and how it is used. */
export interface WeightInfo {
  /** Initializer name, or the Constant node's output name. */
  name: string;
  /** Where the data is: an initializer or a Constant node attribute. */
  source: 'initializer' | 'constant';
  /** Graph path: `main`, or `main/<node>.<attr>` for subgraphs. */
  graph: string;
  /** Data type name (`float32`, `float16`, ...). */
  dtype: string;
  /** ONNX data type number. */
  dataType: number;
  /** Shape. */
  shape: number[];
  /** Element count. */
  params: number;
  /** Payload size in bytes as stored. */
  bytes: number;
  /** Every node that reads the tensor (directly, or through one Cast/Identity/DequantizeLinear). */
  consumers: Consumer[];
  /** Op type of the first consumer (`''` when unused). */
  op: string;
  /** Name of the first consumer. */
  node: string;
  /** Role for the first consumer. */
  role: WeightRole;
  /** Layer kind derived from the first consumer. */
  kind: LayerKind;
  /**
   * Axis of the output channels in this tensor for per-channel methods: 0 for Conv / Gemm(transB=1)
   * / MatMul's left operand, 1 for ConvTranspose, the last axis for MatMul's right operand and Gemm
   * with transB=0; 0 otherwise.
   */
  channelAxis: number;
  /** True when already quantized (integer data feeding DequantizeLinear or a quantized op). */
  quantized: boolean;
  /** True when the engine can compress it: float, role `weight`, and at least `minParams` elements. */
  compressible: boolean;
  /** Why it is not compressible (absent when it is). */
  reason?: string;
  /** The tensor itself (not serialised). */
  tensor: TensorProto;
}

/** Options of {@link listWeights}. */
export interface ListWeightsOptions {
  /**
   * Tensors with fewer elements are never compressible (default 128: below that, a codebook and its
   * decoder outweigh what sharing saves; first convolutions of small nets have about 150).
   */
  minParams: number;
  /** Include non-float and tiny tensors too (default true; they are marked not compressible). */
  includeAll: boolean;
}

const QUANT_OPS = new Set(['DequantizeLinear', 'QLinearConv', 'QLinearMatMul', 'ConvInteger', 'MatMulInteger', 'DynamicQuantizeLinear', 'QuantizeLinear']);

/** Role of input `index` of `node`, and the layer kind and channel axis it implies. */
export function inputRole(node: NodeProto, index: number, rank: number): { role: WeightRole; kind: LayerKind; channelAxis: number } {
  const attrInt = (name: string, dflt: number): number => {
    const a = node.attribute.find((x) => x.name === name);
    // type 0 is tolerated: IR < 2 models left it unset.
    if (a && a.type !== AttributeProto_AttributeType.INT && a.type !== AttributeProto_AttributeType.UNDEFINED) {
      fail('E_MODEL_INVALID', `${node.opType} node '${node.name}': attribute '${name}' must be an int, got ${AttributeProto_AttributeType[a.type] ?? a.type}. The model is corrupt; re-export it.`);
    }
    return a ? Number(a.i) : dflt;
  };
  switch (node.opType) {
    case 'Conv':
      return index === 1 ? { role: 'weight', kind: 'conv', channelAxis: 0 } : index === 2 ? { role: 'bias', kind: 'conv', channelAxis: 0 } : other();
    case 'ConvTranspose':
      return index === 1 ? { role: 'weight', kind: 'conv', channelAxis: 1 } : index === 2 ? { role: 'bias', kind: 'conv', channelAxis: 0 } : other();
    case 'Gemm':
      if (index === 1) return { role: 'weight', kind: 'gemm', channelAxis: attrInt('transB', 0) ? 0 : 1 };
      if (index === 0) return { role: 'weight', kind: 'gemm', channelAxis: attrInt('transA', 0) ? 1 : 0 };
      return { role: 'bias', kind: 'gemm', channelAxis: 0 };
    case 'MatMul':
      if (index === 1) return { role: 'weight', kind: 'matmul', channelAxis: Math.max(0, rank - 1) };
      return { role: 'weight', kind: 'matmul', channelAxis: Math.max(0, rank - 2) };
    case 'LSTM':
    case 'GRU':
    case 'RNN':
      return index === 1 || index === 2 ? { role: 'weight', kind: 'matmul', channelAxis: 1 } : index === 3 ? { role: 'bias', kind: 'other', channelAxis: 0 } : other();
    case 'Gather':
      return index === 0 && rank === 2 ? { role: 'weight', kind: 'other', channelAxis: 0 } : other();
    case 'Add':
      return rank <= 1 ? { role: 'bias', kind: 'other', channelAxis: 0 } : other();
    default:
      return other();
  }
  function other(): { role: WeightRole; kind: LayerKind; channelAxis: number } {
    return { role: 'other', kind: 'other', channelAxis: 0 };
  }
}

/**
 * The 1-D tensor a Split node cuts into pieces after a Cast, as biases narrowed to float16 are
 * stored (`encode/narrow.ts`), or `undefined` for any other node. Its pieces are looked through
 * like a Cast, so the packed tensor is listed as the bias of the layers that read the pieces.
 */
function packedSplit(n: NodeProto, passThrough: ReadonlyMap<string, string>, tensors: ReadonlyMap<string, { t: TensorProto }>): string | undefined {
  if (n.opType !== 'Split' || (n.domain !== '' && n.domain !== 'ai.onnx') || n.input[0] === undefined) return undefined;
  const src = passThrough.get(n.input[0]);
  return src !== undefined && tensors.get(src)?.t.dims.length === 1 ? src : undefined;
}

/**
 * The integer tensor a Mul or Add scales or shifts after a Cast (input 0), as biases on uint8 grids
 * are decoded (`encode/narrow.ts`: codes · scale + offset, then a Split), or `undefined`. Looked
 * through like a Cast: a dequantization written out.
 */
function dequantized(n: NodeProto, passThrough: ReadonlyMap<string, string>, tensors: ReadonlyMap<string, { t: TensorProto }>): string | undefined {
  if ((n.opType !== 'Mul' && n.opType !== 'Add') || (n.domain !== '' && n.domain !== 'ai.onnx') || n.input[0] === undefined) return undefined;
  const src = passThrough.get(n.input[0]);
  const t = src === undefined ? undefined : tensors.get(src)?.t;
  return t && !isFloatType(t.dataType) ? src : undefined;
}

/**
 * Lists weights in graph order (main graph first, then subgraphs; within a graph, by first
 * consumer's position, then unused tensors). Casts, Identity and DequantizeLinear between a weight
 * and its consumer are looked through, so fp16 models (`Cast` to float) and QDQ models (already
 * quantized, reported with `quantized: true`) are described by the layer that really uses them;
 * so is a Split of a Cast 1-D tensor (biases packed as float16 by `encode/narrow.ts`), and a Mul or
 * Add of a Cast integer tensor (biases packed as uint8 codes).
 */
export function listWeights(model: OnnxModel, options: Partial<ListWeightsOptions> = {}): WeightInfo[] {
  const o: ListWeightsOptions = { minParams: 128, includeAll: true, ...options };
  try {
    return listWeightsOf(model, o);
  } catch (e) {
    if (e instanceof CompressError && e.code === 'E_MODEL_INVALID' && !e.message.startsWith(model.source)) fail(e.code, `${model.source}: ${e.message}`, e);
    throw e;
  }
}

function listWeightsOf(model: OnnxModel, o: ListWeightsOptions): WeightInfo[] {
  const out: WeightInfo[] = [];
  forEachGraph(model.proto, ({ graph, path }) => {
    const tensors = new Map<string, { t: TensorProto; source: 'initializer' | 'constant' }>();
    for (const t of graph.initializer) tensors.set(t.name, { t, source: 'initializer' });
    for (const n of graph.node) {
      if (n.opType === 'Constant' && n.output[0]) {
        const v = n.attribute.find((a) => a.name === 'value');
        if (v?.t) tensors.set(n.output[0], { t: v.t, source: 'constant' });
      }
    }
    // Inputs with an initializer of the same name are overridable inputs; they are still weights.
    const consumers = new Map<string, { order: number; list: Consumer[]; quantized: boolean }>();
    const passThrough = new Map<string, string>();
    graph.node.forEach((n, i) => {
      if ((n.opType === 'Cast' || n.opType === 'Identity' || n.opType === 'DequantizeLinear') && n.input[0] !== undefined && n.output[0]) {
        const src = passThrough.get(n.input[0]) ?? n.input[0];
        if (tensors.has(src)) passThrough.set(n.output[0], src);
      }
      const packed = packedSplit(n, passThrough, tensors) ?? dequantized(n, passThrough, tensors);
      if (packed !== undefined) for (const o of n.output) passThrough.set(o, packed);
      n.input.forEach((name, idx) => {
        const src = passThrough.get(name) ?? name;
        const entry = tensors.get(src);
        if (!entry) return;
        if (n.opType === 'Cast' || n.opType === 'Identity' || n.opType === 'DequantizeLinear') {
          if (idx === 0) {
            if (n.opType === 'DequantizeLinear') markQuantized(src);
            return;
          }
        } else if (packed !== undefined && idx === 0) {
          return;
        } else if (QUANT_OPS.has(n.opType) && idx === 0) markQuantized(src);
        const c = consumers.get(src) ?? { order: i, list: [], quantized: false };
        const rank = entry.t.dims.length;
        c.list.push({ op: n.opType, node: nodeLabel(n, i), input: idx, role: inputRole(n, idx, rank).role });
        consumers.set(src, c);
      });
    });
    function markQuantized(name: string): void {
      const c = consumers.get(name) ?? { order: Number.MAX_SAFE_INTEGER, list: [], quantized: true };
      c.quantized = true;
      consumers.set(name, c);
    }
    const nodesByLabel = new Map(graph.node.map((n, i) => [nodeLabel(n, i), n] as const));
    const rows: Array<{ order: number; info: WeightInfo }> = [];
    for (const [name, { t, source }] of tensors) {
      const shape = dimsOf(t);
      const params = elementCount(shape);
      const c = consumers.get(name);
      const first = c?.list[0];
      const firstNode = first ? nodesByLabel.get(first.node) : undefined;
      const r = firstNode && first ? inputRole(firstNode, first.input, shape.length) : { role: 'other' as const, kind: 'other' as const, channelAxis: 0 };
      const quantized = c?.quantized === true || (!isFloatType(t.dataType) && c?.list.some((x) => QUANT_OPS.has(x.op)) === true);
      const reason = !isFloatType(t.dataType)
        ? quantized ? 'already quantized' : `${dataTypeName(t.dataType)} is not a float type`
        : quantized ? 'already quantized'
        : !first ? 'not used by any node'
        : r.role !== 'weight' ? `${r.role} of ${first.op}`
        : params < o.minParams ? `fewer than ${o.minParams} elements`
        : undefined;
      if (!o.includeAll && reason) continue;
      const info: WeightInfo = {
        name,
        source,
        graph: path,
        dtype: dataTypeName(t.dataType),
        dataType: t.dataType,
        shape,
        params,
        bytes: model.byteLength(t),
        consumers: c?.list ?? [],
        op: first?.op ?? '',
        node: first?.node ?? '',
        role: r.role,
        kind: r.kind,
        channelAxis: r.channelAxis,
        quantized,
        compressible: reason === undefined,
        tensor: t,
      };
      if (reason !== undefined) info.reason = reason;
      rows.push({ order: c?.order ?? Number.MAX_SAFE_INTEGER, info });
    }
    rows.sort((a, b) => a.order - b.order);
    out.push(...rows.map((r) => r.info));
  });
  return out;
}

/**
 * Why nothing is compressible, for "nothing to compress" messages: the reasons of `weights` with
 * their counts, most frequent first, e.g. `2 already quantized, 1 int64 is not a float type`
 * (`no weights at all` when the list is empty).
 */
export function incompressibleSummary(weights: readonly WeightInfo[]): string {
  if (weights.length === 0) return 'no weights at all';
  const counts = new Map<string, number>();
  for (const w of weights) if (w.reason) counts.set(w.reason, (counts.get(w.reason) ?? 0) + 1);
  return [...counts].sort((a, b) => b[1] - a[1]).map(([r, n]) => `${n} ${r}`).join(', ');
}
