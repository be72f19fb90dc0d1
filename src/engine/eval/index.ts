/** Evaluation: datasets, metrics, onnxruntime sessions, reference cache, fast variant evaluation. */
export { openArrayFile, openIdx, openNpy, openNpz, type ArraySource, type NumArray, type NumDType } from './arraySource.js';
export { fitSampleDims, openDataset, type OpenDatasetOptions } from './dataset.js';
export {
  datasetSpecFromArgs,
  loadDatasetSpec,
  makeSyntheticSpec,
  parseDatasetSpec,
  type DatasetFormat,
  type DatasetSpec,
  type SyntheticSpec,
} from './datasetSpec.js';
export { bernoulliKl, klBounds, SequentialTest, type SequentialTestOptions, type StopDecision } from './earlyStop.js';
export { decodeImage, IMAGE_EXTENSIONS, listImageFolder, type ImageListing } from './images.js';
export { ClassificationAccumulator, FidelityAccumulator, klSoftmaxRow, topK, type ClassificationCounts, type Fidelity } from './metrics.js';
export { makePreprocessOptions, normalizeToFloat32, type Layout, type PreprocessOptions } from './preprocess.js';
export {
  cachedReference,
  computeReference,
  datasetFingerprint,
  sha256,
  writeFileAtomic,
  type ReferenceOutputs,
} from './referenceCache.js';
export {
  classesOf,
  createSession,
  effectiveBatchSize,
  makeSessionOptions,
  runDataset,
  sessionInputs,
  sessionOutputs,
  toOrtFeeds,
  withSession,
  type OutputBlock,
  type RunOptions,
  type SessionOptions,
} from './session.js';
export type * from './types.js';
export {
  ActivationStore,
  makeVariantEvaluatorOptions,
  modelIo,
  VariantEvaluator,
  type EvaluateOptions,
  type VariantEvaluatorOptions,
  type VariantResult,
} from './variantEvaluator.js';
export {
  splitAtWeights,
  substituteWeights,
  weightsAsInputs,
  WeightSplicer,
  withExtraOutputs,
  type SplitModels,
  type WeightTensor,
} from './weightsAsInputs.js';
