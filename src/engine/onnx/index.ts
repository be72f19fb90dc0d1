/** ONNX model I/O and graph editing: the public surface of `engine/onnx`. */
export { decodeModel, encodeModel, encodeModelChunks, MAX_IR_VERSION, MIN_IR_VERSION } from './codec';
export * from './dtype';
export { modelInfo, type ModelInfo, type ValueInfo, type WeightSummary } from './info';
export { EXTERNAL_THRESHOLD, externalInfo, loadModel, modelFromBytes, readExternalTensor, resolveExternalPath, saveModel, savedSize } from './io';
export type { ExternalDataMode, LoadOptions, SaveOptions, SaveResult } from './io';
export { OnnxModel } from './model';
export * from './tensor';
export { attr, makeNode, makeValueInfo } from './build';
export { forEachGraph, forEachTensor, nodeLabel, type GraphScope } from './walk';
export { incompressibleSummary, inputRole, listWeights, type Consumer, type LayerKind, type ListWeightsOptions, type WeightInfo, type WeightRole } from './weights';
export type { AttributeProto, GraphProto, ModelProto, NodeProto, TensorProto, ValueInfoProto } from './proto';
