/**
 * Public surface of `engine/explore`: the sensitivity study ({@link analyzeModel}), the search
 * ({@link compressModel}) and the export of a candidate ({@link exportCandidate}). All are free of
 * `process.exit` and console output; progress and results stream through `onEvent`, cancellation
 * through `signal`. Result schemas: `types.ts`; plan files: `plan.ts`.
 */
export { analyzeModel, makeAnalyzeOptions, readSensitivity, FILES, type AnalyzeOptions } from './analyze';
export { compressModel, exportCandidate, makeCompressModelOptions, searchLayers, type CompressModelOptions, type ExportResult } from './compress';
export { DEFAULT_LEVELS, SCALED_SHARE_LEVELS, TECHNIQUE_FAMILIES, defaultLevels, familyLevels, ladderOf, makeLevel, makeScaledShareLevel, parseTechniques, type TechniqueFamily } from './levels';
export { isotonic, LossPredictor, mckp, minBytesUnderLoss, minLossUnderBytes, normalQuantile, pairedLossBounds, paretoFront, type Flips, type LayerOption, type SearchLayer } from './search';
export { resultsDirFor, type DataInput } from './workspace';
export * from './plan';
export * from './types';
