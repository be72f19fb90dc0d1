/** Small constructors for graph pieces: nodes, attributes and value infos. */
import { create } from '@bufbuild/protobuf';
import {
  AttributeProto_AttributeType,
  AttributeProtoSchema,
  NodeProtoSchema,
  TensorShapeProto_DimensionSchema,
  TensorShapeProtoSchema,
  TypeProto_TensorSchema,
  TypeProtoSchema,
  ValueInfoProtoSchema,
  type AttributeProto,
  type GraphProto,
  type NodeProto,
  type TensorProto,
  type ValueInfoProto,
} from './proto';
import { DataType } from './dtype';

/** A node; `domain` defaults to the ONNX domain. */
export function makeNode(opType: string, inputs: string[], outputs: string[], name = '', attributes: AttributeProto[] = [], domain = ''): NodeProto {
  const n = create(NodeProtoSchema, { opType, input: inputs, output: outputs, attribute: attributes });
  if (name) n.name = name;
  if (domain) n.domain = domain;
  return n;
}

/** Attribute constructors. */
export const attr = {
  int: (name: string, i: number): AttributeProto => create(AttributeProtoSchema, { name, type: AttributeProto_AttributeType.INT, i: BigInt(i) }),
  ints: (name: string, v: readonly number[]): AttributeProto => create(AttributeProtoSchema, { name, type: AttributeProto_AttributeType.INTS, ints: v.map(BigInt) }),
  float: (name: string, f: number): AttributeProto => create(AttributeProtoSchema, { name, type: AttributeProto_AttributeType.FLOAT, f }),
  string: (name: string, s: string): AttributeProto => create(AttributeProtoSchema, { name, type: AttributeProto_AttributeType.STRING, s: new TextEncoder().encode(s) }),
  graph: (name: string, g: GraphProto): AttributeProto => create(AttributeProtoSchema, { name, type: AttributeProto_AttributeType.GRAPH, g }),
  tensor: (name: string, t: TensorProto): AttributeProto => create(AttributeProtoSchema, { name, type: AttributeProto_AttributeType.TENSOR, t }),
};

/** A tensor value info; string dims are symbolic, `null` unknown. */
export function makeValueInfo(name: string, dims: ReadonlyArray<number | string | null>, elemType: number = DataType.FLOAT): ValueInfoProto {
  return create(ValueInfoProtoSchema, {
    name,
    type: create(TypeProtoSchema, {
      value: {
        case: 'tensorType',
        value: create(TypeProto_TensorSchema, {
          elemType,
          shape: create(TensorShapeProtoSchema, {
            dim: dims.map((d) =>
              create(TensorShapeProto_DimensionSchema, {
                value: typeof d === 'number' ? { case: 'dimValue', value: BigInt(d) } : typeof d === 'string' ? { case: 'dimParam', value: d } : { case: undefined },
              }),
            ),
          }),
        }),
      },
    }),
  });
}
