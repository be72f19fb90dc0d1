/**
 * The ONNX protobuf schema, generated from ONNX 1.20's `onnx.proto` (proto2, so field presence and
 * unknown fields survive a round trip) by protoc-gen-es, as shipped by the `onnx-buf` package.
 *
 * Measured against `onnx-proto` (protobufjs 6, ONNX 1.8 schema) before choosing; see
 * `docs/decisions.md`. Everything in the engine imports the schema through this module so a later
 * swap (e.g. to code generated into `gen/`) touches one file.
 */
export {
  AttributeProto_AttributeType,
  AttributeProtoSchema,
  FunctionProtoSchema,
  GraphProtoSchema,
  ModelProtoSchema,
  NodeProtoSchema,
  OperatorSetIdProtoSchema,
  SparseTensorProtoSchema,
  StringStringEntryProtoSchema,
  TensorProto_DataLocation,
  TensorProto_DataType,
  TensorProtoSchema,
  TensorShapeProto_DimensionSchema,
  TensorShapeProtoSchema,
  TypeProto_TensorSchema,
  TypeProtoSchema,
  ValueInfoProtoSchema,
} from 'onnx-buf';
export type {
  AttributeProto,
  FunctionProto,
  GraphProto,
  ModelProto,
  NodeProto,
  OperatorSetIdProto,
  SparseTensorProto,
  StringStringEntryProto,
  TensorProto,
  TensorShapeProto,
  TypeProto,
  ValueInfoProto,
} from 'onnx-buf';
