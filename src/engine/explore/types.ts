/**
 * Result files of `analyze` and `compress`, shared by the CLI, the report writers and the VS Code
 * panel. These are the documented, versioned JSON schemas (README, "Result files"). Everything is
 * plain JSON: no bigint, no typed arrays, no class instances.
 *
 * Units: accuracies and losses are fractions (0.004 = 0.4 percentage points); sizes are bytes.
 * "loss" is the top-1 accuracy drop against the original model on the same samples when the dataset
 * has labels, else the top-1 disagreement with the original model (1 − agreement).
 */
import type { TechniqueSpec } from '../compress';
import type { LayerPlan, PlanFile } from './plan';
import type { Flips } from './search';

/** The model a result file belongs to. */
export interface ModelRef {
  /** Path as given (relative to the results folder's parent when written by the tools). */
  file: string;
  /** sha256 of the .onnx file (hex). Results of another model are refused on resume. */
  sha256: string;
  /** .onnx file size plus external data, bytes. */
  bytes: number;
  /** Parameters of the compressible layers. */
  compressibleParams: number;
}

/** The data a result was measured on. */
export interface DatasetRef {
  /** Dataset JSON path, or a description such as `x.npy + y.npy` or `synthetic`. */
  source: string;
  /** Samples used. */
  samples: number;
  /** Whether losses are accuracy drops (labels) or disagreements (no labels). */
  labels: boolean;
}

/** A column of the sensitivity matrix: one technique at one level. */
export interface LevelDef {
  /** Stable id, e.g. `share:k=4`, `prune:0.5`, `quant:4`, `bf16m:3`, `lowrank:0.9`. */
  id: string;
  /** Technique family for grouping columns: `share`, `prune`, `quant`, `float`, `lowrank`. */
  technique: string;
  /** Short label for headers, e.g. `k=4`, `50%`, `4 bit`. */
  label: string;
  /** The exact spec applied. */
  spec: TechniqueSpec;
}

/** A row of the sensitivity matrix: one compressible layer, in graph order. */
export interface LayerRow {
  /** Weight initializer name (plans use it). */
  name: string;
  /** Consumer op type, e.g. `Conv`. */
  op: string;
  /** Consumer node name. */
  node: string;
  /** `conv`, `gemm`, `matmul` or `other`. */
  kind: string;
  shape: number[];
  params: number;
  /** Bytes as stored in the original model. */
  bytes: number;
  /**
   * Levels that do not apply to this layer, with the reason (e.g. low rank on a layer whose op the
   * low-rank rewrite does not support). No cell is measured for them; absent when every level applies.
   */
  unsupported?: Record<string, string>;
}

/** One measured cell: a layer compressed alone at one level. */
export interface SensitivityCell {
  layer: string;
  level: string;
  /** Loss (see module comment) and its confidence interval (95 % unless stated in the file). */
  loss: number;
  ci: [number, number];
  /** Top-1 accuracy of the variant (null without labels) and its agreement with the original. */
  top1: number | null;
  agreement: number;
  /** Samples evaluated (fewer than the dataset when stopped early). */
  samples: number;
  stoppedEarly: boolean;
  /** Exact storage bits of this layer at this level, and with Huffman-coded indices. */
  bits: number;
  entropyBits: number;
  /** Bytes of the smallest exact ONNX encoding of this layer at this level. */
  onnxBytes: number;
  /** Relative weight error ‖w − ŵ‖² / ‖w‖². */
  relError: number;
  /**
   * Mean KL divergence of the variant's softmax output from the original's, nats per sample (on
   * `samples`). Unlike the loss, which counts a few flipped predictions, it moves with every sample,
   * so mild levels get a usable signal, and it adds up over layers (the search's cost). Absent in
   * files of older versions.
   */
  kl?: number;
  /** Wall time of the evaluation, seconds. */
  seconds: number;
}

/** `sensitivity.json` (schema 1). Written as results arrive; `complete` is false until done. */
export interface SensitivityFile {
  schema: 'onnx-compress/sensitivity@1';
  tool: string;
  model: ModelRef;
  dataset: DatasetRef;
  /** Confidence of `ci` (e.g. 0.95) and the early-stopping budget used (fraction), if any. */
  confidence: number;
  budget: number | null;
  baseline: { top1: number | null; samples: number };
  levels: LevelDef[];
  layers: LayerRow[];
  /**
   * The cells' compressed layers had their bias corrected (`eval/biasCorrection.ts`; with
   * calibration on real data). Absent in files from earlier versions: false.
   */
  biasCorrection?: boolean;
  /** Measured cells (any order); a missing cell has not been measured yet. */
  cells: SensitivityCell[];
  complete: boolean;
  /** ISO times. */
  started: string;
  updated: string;
}

/** One candidate compressed model, measured for real. */
export interface Candidate {
  /** `c1`, `c2`, ... in the order found. */
  id: string;
  /** The plan (every compressible layer listed). */
  plan: PlanFile;
  /** Size of the compressed ONNX file (encodings of the encode module), bytes. */
  bytes: number;
  /** Original file bytes ÷ `bytes`. */
  ratio: number;
  /** Exact storage bits of the compressed layers plus untouched tensors, bytes (theory). */
  theoreticalBytes: number;
  /** Measured on the search data. */
  top1: number | null;
  loss: number;
  /**
   * Paired flip counts on the search data (right→wrong `up`, wrong→right `down`; without labels
   * top-1 changes): `loss = (up − down) / samples`. Absent in files of older versions.
   */
  flips?: Flips;
  /** Mean KL divergence of its softmax output from the original's on the search data, nats per sample (`SensitivityCell.kl`). Absent in files of older versions. */
  kl?: number;
  /**
   * One-sided upper confidence bound on the expected loss at `CandidatesFile.selection.confidence`
   * (adjusted Wald on the flips, `pairedLossBounds`). Under a loss budget a candidate
   * is feasible when this bound, not the point estimate `loss`, is within the budget.
   */
  lossUpper?: number;
  /** Loss the predictor expected before the measurement. */
  predictedLoss: number;
  /**
   * Measured on held-out data the search did not see (the confirmation), when done: loss, its
   * two-sided 95 % interval `ci` (`pairedLossBounds` at 0.975 each side) and flips; `passed` = held-out loss within a loss
   * budget (absent under a size budget).
   */
  holdout: { top1: number | null; loss: number; samples: number; ci?: [number, number]; flips?: Flips; passed?: boolean } | null;
  /** Full evaluations spent when this candidate was measured (cumulative). */
  evaluations: number;
  /** On the Pareto front of (bytes, loss) among all candidates. */
  pareto: boolean;
  /** Meets the budget. */
  feasible: boolean;
  /** Size of the archive (`.onnxc`, entropy-coded) of the compressed ONNX, bytes; set for the exported candidate. */
  archiveBytes?: number;
}

/** `candidates.json` (schema 1). */
export interface CandidatesFile {
  schema: 'onnx-compress/candidates@1';
  tool: string;
  model: ModelRef;
  dataset: DatasetRef;
  holdoutDataset: DatasetRef | null;
  /** The budget: max loss (fraction) or max size (bytes). */
  budget: { maxLoss: number } | { maxSize: number };
  /** What the search made small: the ONNX file (`bytes`) or its archive (`archiveBytes`). Absent in files of older versions: `onnx`. */
  target?: 'onnx' | 'archive';
  techniques: string[];
  baseline: { top1: number | null; samples: number };
  candidates: Candidate[];
  /** Id of the chosen candidate (null when none meets the budget). */
  chosen: string | null;
  /** Full evaluations of the whole run (sensitivity cells included) and wall time. */
  evaluations: number;
  seconds: number;
  /**
   * The split of `evaluations`: sensitivity cells measured by this run (0 when all were reused from
   * `sensitivity.json`), evaluations of combined candidates by the search on the full search data,
   * and held-out confirmations. `search` is `fast` (predictor + knapsack) or `greedy` (the
   * exhaustive baseline: every layer's next level measured at every step).
   */
  breakdown?: { cells: number; search: number; holdout: number; method: 'fast' | 'greedy' };
  /** Written files, relative to the results folder. */
  outputs: { model?: string; archive?: string; report?: string; html?: string; plan?: string };
  /** How `chosen` was picked (absent in files of older versions); see {@link Selection}. */
  selection?: Selection;
}

/**
 * The choice rule of `compress`. Under a loss budget a candidate is feasible when the one-sided
 * upper confidence bound of its search-data loss at `confidence` is within the budget
 * (`Candidate.lossUpper`); the smallest feasible candidate is chosen. With held-out data it is then
 * confirmed there; when its held-out loss exceeds the budget and `holdout` is `walk-back`, the next
 * feasible candidates by increasing size (only those with a lower search loss than every one that
 * failed) are confirmed, at most `holdoutTries` in all: the held-out set then took part in the
 * final choice (`holdoutUsedForChoice`), and its loss is a final check rather than an untouched
 * estimate.
 */
export interface Selection {
  /** `upper-bound` (loss budget) or `size` (size budget: least point loss among those that fit). */
  rule: 'upper-bound' | 'size';
  /** One-sided confidence of `lossUpper` (e.g. 0.9). */
  confidence: number;
  /** `none` (no held-out data), `confirm` (measured, never used to choose) or `walk-back`. */
  holdout: 'none' | 'confirm' | 'walk-back';
  /** Candidates measured on the held-out data, in order. */
  holdoutChecked: string[];
  /** True when a held-out failure moved the choice to another candidate. */
  holdoutUsedForChoice: boolean;
  /** Held-out confirmations allowed at most (walk-back). */
  holdoutTries: number;
  /** One sentence for reports. */
  note: string;
}

/** Progress events streamed by `analyze` and `compress` (CLI stderr, VS Code progress + panel). */
export type ExploreEvent =
  | { type: 'phase'; phase: string; message: string }
  | { type: 'progress'; done: number; total: number; message: string }
  | { type: 'cell'; cell: SensitivityCell }
  | { type: 'candidate'; candidate: Candidate }
  | { type: 'log'; message: string };

export type { LayerPlan, PlanFile };
