/**
 * One-shot evaluation of a model on a dataset (`onnx-compress eval`): accuracy against labels and,
 * with a reference model, top-1 agreement and output fidelity. The reference model's outputs are
 * cached on disk (keyed by content hashes) so repeated evaluations against it cost one pass.
 */
import { fail } from '../errors';
import { openDataset } from './dataset';
import type { DatasetSpec } from './datasetSpec';
import { ClassificationAccumulator, FidelityAccumulator, type Fidelity } from './metrics';
import { cachedReference, computeReference, datasetFingerprint, type ReferenceOutputs } from './referenceCache';
import { classesOf, createSession, runDataset, sessionInputs, sessionOutputs } from './session';

/** Options of {@link evaluateModel}. */
export interface EvaluateModelOptions {
  /** Bytes of the original model to compare against (agreement, fidelity). */
  reference: Uint8Array | undefined;
  /** Folder for the reference-output cache (`<dir>/cache/`); no caching when undefined. */
  cacheDir: string | undefined;
  /** Evaluate the first N samples. */
  limit: number | undefined;
  /** Samples per inference call. Default 64. */
  batchSize: number;
  /** onnxruntime intra-op threads (default all cores). */
  threads: number | undefined;
  /** Model output to score (default the first). */
  output: string | undefined;
  signal: AbortSignal | undefined;
  onProgress: ((done: number, total: number) => void) | undefined;
}

/** `eval --json` (schema 1). Rates are fractions in [0, 1]; null where they do not apply. */
export interface EvalReport {
  schema: 'onnx-compress/eval@1';
  samples: number;
  /** Top-1 / top-5 accuracy against labels (null without labels). */
  top1: number | null;
  top5: number | null;
  /** Top-1 agreement with the reference model (null without a reference). */
  agreement: number | null;
  /** Reference model's own top-1 on the same samples (null without reference or labels). */
  referenceTop1: number | null;
  /** Output fidelity against the reference (null without a reference). */
  fidelity: Fidelity | null;
  output: string;
  classes: number | null;
  seconds: number;
}

/**
 * Evaluates `model` on the dataset `spec`.
 * @throws E_DATASET when the data does not fit the model, E_BAD_ARGUMENT for data-free evaluation
 * without a reference (there is nothing to score against).
 */
export async function evaluateModel(model: Uint8Array, spec: DatasetSpec, source: string, options: Partial<EvaluateModelOptions> = {}): Promise<EvalReport> {
  const o: EvaluateModelOptions = { reference: undefined, cacheDir: undefined, limit: undefined, batchSize: 64, threads: undefined, output: undefined, signal: undefined, onProgress: undefined, ...options };
  if (spec.format === 'synthetic' && !o.reference) {
    fail('E_BAD_ARGUMENT', 'Data-free evaluation needs --reference ORIGINAL.onnx: synthetic inputs have no labels, so the model is scored against the original model\'s outputs.');
  }
  const t0 = performance.now();
  const so = o.threads === undefined ? {} : { intraOpNumThreads: o.threads };
  const session = await createSession(model, so, source);
  try {
    const outputs = sessionOutputs(session);
    const output = outputs.find((x) => x.name === (o.output ?? outputs[0]?.name));
    if (!output) fail('E_BAD_ARGUMENT', `${source} has no output named '${o.output}'; outputs: ${outputs.map((x) => x.name).join(', ')}.`);
    const classes = classesOf(output);
    const opened = () => openDataset(spec, sessionInputs(session), { limit: o.limit, numClasses: classes });
    let ref: ReferenceOutputs | undefined;
    if (o.reference) {
      const rs = await createSession(o.reference, so, 'the reference model');
      try {
        const ds = await opened();
        const ro = { outputs: [output.name], signal: o.signal, batchSize: o.batchSize };
        ref = o.cacheDir ? (await cachedReference(o.cacheDir, o.reference, await datasetFingerprint(spec, o.limit), rs, ds, ro)).ref : await computeReference(rs, ds, ro);
      } finally {
        await rs.release();
      }
    }
    const dataset = await opened();
    const acc = new ClassificationAccumulator();
    const refRows = ref?.outputs[output.name];
    const per = refRows ? refRows.data.length / ref!.count : 0;
    const fid = refRows ? new FidelityAccumulator(classes ?? per) : undefined;
    const refAcc = new ClassificationAccumulator();
    await runDataset(
      session,
      dataset,
      (outs, batch) => {
        const block = outs[output.name]!;
        const n = batch.count;
        const c = classes ?? block.data.length / n;
        let refTop1: Int32Array | undefined;
        if (refRows) {
          const slice = refRows.data.subarray(batch.start * per, (batch.start + n) * per);
          refTop1 = refAcc.add(slice, n, c, batch.labels);
          fid!.add(slice, block.data, n, per);
        }
        acc.add(block.data, n, c, batch.labels, refTop1);
      },
      { batchSize: o.batchSize, outputs: [output.name], signal: o.signal, onProgress: o.onProgress },
    );
    const labels = dataset.meta.hasLabels;
    return {
      schema: 'onnx-compress/eval@1',
      samples: acc.counts.samples,
      top1: labels ? acc.top1 : null,
      top5: labels ? acc.top5 : null,
      agreement: ref ? acc.agreement : null,
      referenceTop1: ref && labels ? refAcc.top1 : null,
      fidelity: fid ? fid.result() : null,
      output: output.name,
      classes: classes ?? null,
      seconds: (performance.now() - t0) / 1000,
    };
  } finally {
    await session.release();
  }
}
