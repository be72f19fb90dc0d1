/**
 * Public surface of `engine/compress`: pure, deterministic compression of float32 weight tensors.
 * Start with {@link compressTensor}; see `types.ts` for specs, results and storage descriptions.
 */
export * from './types';
export { compressTensor, COMPRESSORS, isCalibrated, type Compressor } from './registry';
export { shareWeights, shareSweep, pruneShareWeights } from './share';
export { SortedWeights, kmeans1d, type Kmeans1dResult } from './kmeans1d';
export { pruneWeights, pruneMask, type PruneMask } from './prune';
export { quantizeWeights, pruneQuantizeWeights, roundHalfEven, MSE_CLIP_RATIOS } from './quantize';
export {
  floatWeights,
  roundToFormat,
  decodeFormat,
  encodeFloats,
  maxFinite,
  resolveFloatFormat,
  FLOAT_FORMATS,
} from './floatFormat';
export { lowRankWeights, symmetricEigen } from './lowRank';
export { huffmanCodeLengths, huffmanBits, type EntropyBits } from './huffman';
export { makeBits, totalModelBits, type ModelTensorSize, type ModelBits } from './storage';
export { makeCompressOptions, validateTensor } from './tensor';
