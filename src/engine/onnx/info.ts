/**
 * `onnx-compress info`: a summary of a model. The JSON shape ({@link ModelInfo}) is a stable,
 * documented schema (README, "info --json").
 */
import { dataTypeName } from './dtype';
import type { OnnxModel } from './model';
import type { TypeProto, ValueInfoProto } from './proto';
import { listWeights, type ListWeightsOptions, type WeightInfo } from './weights';

/** A graph input or output. Unknown dims are `null`, symbolic ones their name. */
export interface ValueInfo {
  name: string;
  dtype: string;
  shape: Array<number | string | null> | null;
}

/** One weight tensor, as printed by `info`. */
export interface WeightSummary {
  name: string;
  op: string;
  node: string;
  role: WeightInfo['role'];
  dtype: string;
  shape: number[];
  params: number;
  bytes: number;
  compressible: boolean;
  reason?: string;
  graph: string;
}

/** `info --json` (schema version 1). */
export interface ModelInfo {
  schema: 'onnx-compress/info@1';
  file: string;
  fileBytes: number;
  irVersion: number;
  producer: string;
  opsets: Record<string, number>;
  inputs: ValueInfo[];
  outputs: ValueInfo[];
  nodes: number;
  ops: Record<string, number>;
  weights: WeightSummary[];
  totalParams: number;
  totalWeightBytes: number;
  compressibleParams: number;
  compressibleBytes: number;
}

function valueInfo(v: ValueInfoProto): ValueInfo {
  const tt = tensorType(v.type);
  return {
    name: v.name,
    dtype: tt ? dataTypeName(tt.elemType) : describeType(v.type),
    shape: tt?.shape ? tt.shape.dim.map((d) => (d.value.case === 'dimValue' ? Number(d.value.value) : d.value.case === 'dimParam' ? d.value.value : null)) : null,
  };
}

function tensorType(t: TypeProto | undefined): { elemType: number; shape?: import('./proto').TensorShapeProto } | undefined {
  return t?.value.case === 'tensorType' ? t.value.value : undefined;
}

function describeType(t: TypeProto | undefined): string {
  return t?.value.case ? t.value.case.replace('Type', '') : 'unknown';
}

/** Summarises a model. `fileBytes` is the size of the .onnx plus its external data. */
export function modelInfo(model: OnnxModel, fileBytes: number, options: Partial<ListWeightsOptions> = {}): ModelInfo {
  const g = model.graph;
  const inits = new Set(g.initializer.map((t) => t.name));
  const ops: Record<string, number> = {};
  let nodes = 0;
  for (const n of g.node) {
    const key = n.domain && n.domain !== 'ai.onnx' ? `${n.domain}.${n.opType}` : n.opType;
    ops[key] = (ops[key] ?? 0) + 1;
    nodes++;
  }
  const weights = listWeights(model, options).map((w): WeightSummary => {
    const s: WeightSummary = {
      name: w.name,
      op: w.op,
      node: w.node,
      role: w.role,
      dtype: w.dtype,
      shape: w.shape,
      params: w.params,
      bytes: w.bytes,
      compressible: w.compressible,
      graph: w.graph,
    };
    if (w.reason !== undefined) s.reason = w.reason;
    return s;
  });
  const sum = (ws: WeightSummary[], k: 'params' | 'bytes'): number => ws.reduce((a, w) => a + w[k], 0);
  const comp = weights.filter((w) => w.compressible);
  return {
    schema: 'onnx-compress/info@1',
    file: model.source,
    fileBytes,
    irVersion: Number(model.proto.irVersion),
    producer: [model.proto.producerName, model.proto.producerVersion].filter(Boolean).join(' '),
    opsets: model.opsets,
    inputs: g.input.filter((v) => !inits.has(v.name)).map(valueInfo),
    outputs: g.output.map(valueInfo),
    nodes,
    ops,
    weights,
    totalParams: sum(weights, 'params'),
    totalWeightBytes: sum(weights, 'bytes'),
    compressibleParams: sum(comp, 'params'),
    compressibleBytes: sum(comp, 'bytes'),
  };
}
