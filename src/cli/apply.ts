/** `onnx-compress apply MODEL --plan PLAN.json --out OUT.onnx [--archive OUT.onnxc] [--json]`. */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { applySpecs } from '../engine/encode/apply';
import { isCalibrated } from '../engine/compress';
import { packArchiveWithStats } from '../engine/encode/archive';
import { sameFile, writeFileAtomic } from '../engine/util/atomicWrite';
import { fail } from '../engine/errors';
import { resolvePlan, type PlanFile } from '../engine/explore/plan';
import { decodeModel, incompressibleSummary, listWeights, loadModel, saveModel } from '../engine/onnx';
import { formatBytes, parse, table, UsageError } from './util';
import { dataFromArgs } from './analyze';
import { collectHessians } from '../engine/eval/calibration';
import { planCorrections } from '../engine/explore/calibrate';
import type { LayerHessian } from '../engine/compress/gptq';

/** Usage line. */
export const APPLY_USAGE = `usage: onnx-compress apply MODEL.onnx --plan PLAN.json --out OUT.onnx [options]
  --archive OUT.onnxc     also write the compact archive
  --data FILE [--labels FILE]
                          calibration data for layers with "calibrated": true (dataset JSON, .npy/.npz/.idx,
                          image folder); the first --calibration-samples samples are used (default 256);
                          also for plans with "biasCorrection": true (its first 128 samples)
  --keep-names            keep activation and node names (default: shortened, see docs/encodings.md)
  --json                  machine-readable report on stdout`;

/** `apply --json` output (schema 1). Sizes in bytes; `bits` are exact theoretical storage bits. */
export interface ApplyReport {
  schema: 'onnx-compress/apply@1';
  model: string;
  out: string;
  layers: Array<{ name: string; technique: string; params: number; originalBytes: number; bits: number; entropyBits: number; encoding: string; onnxBytes: number; archiveBytes: number | null }>;
  skipped: Array<{ name: string; reason: string }>;
  total: { originalBytes: number; onnxBytes: number; archiveBytes: number | null; ratio: number; archiveRatio: number | null; theoreticalBytes: number };
}

/** Reads and parses a plan file. @throws E_PLAN / E_IO naming the file. */
export function readPlan(file: string): PlanFile {
  let text: string;
  try {
    text = fs.readFileSync(file, 'utf8');
  } catch (e) {
    fail('E_IO', `Cannot read plan '${file}': ${(e as Error).message}`);
  }
  try {
    return JSON.parse(text) as PlanFile;
  } catch (e) {
    return fail('E_PLAN', `${file} is not valid JSON (${(e as Error).message}).`);
  }
}

/** Runs `apply`. */
export async function applyCommand(argv: string[], signal: AbortSignal): Promise<void> {
  const { values, positionals } = parse(argv, {
    plan: { type: 'string' },
    out: { type: 'string', short: 'o' },
    archive: { type: 'string' },
    'keep-names': { type: 'boolean' },
    data: { type: 'string' },
    labels: { type: 'string' },
    'calibration-samples': { type: 'string' },
    json: { type: 'boolean' },
  });
  if (positionals.length !== 1) throw new UsageError(positionals.length ? `expected one model, got ${positionals.length}` : 'missing MODEL');
  if (!values.plan) throw new UsageError('missing --plan PLAN.json');
  if (!values.out) throw new UsageError('missing --out OUT.onnx');
  const file = positionals[0]!;
  const out = values.out;
  for (const target of [out, values.archive]) {
    if (target && sameFile(target, file)) throw new UsageError(`--out/--archive '${target}' is the input model; choose another path`);
  }
  const model = await loadModel(file, { signal });
  if (values.archive && model.externalFiles.length > 0) {
    throw new UsageError(`--archive: ${file} keeps weights in external data (${model.externalFiles.map((f) => path.basename(f)).join(', ')}), and so will ${out}; an archive holds one self-contained .onnx file. Leave out --archive, or apply to a copy saved without external data (under 2 GiB).`);
  }
  const plan = readPlan(values.plan);
  const weights = listWeights(model);
  // Everything is validated before anything is computed or written.
  const specs = resolvePlan(plan, weights, values.plan);
  if (!weights.some((w) => w.compressible)) {
    fail('E_PLAN', `${file}: nothing to compress: no weight of this model can be compressed (${incompressibleSummary(weights)}); see \`onnx-compress info ${file}\`.`);
  }
  const listed = new Set(Object.keys(plan.layers ?? {}));
  const fromDefault = new Set([...specs.keys()].filter((n) => !listed.has(n)));
  const originalBytes = fs.statSync(file).size + model.externalFiles.reduce((s, f) => s + fs.statSync(f).size, 0);
  const calibrated = [...specs].filter(([, s]) => isCalibrated(s)).map(([n]) => n);
  if (calibrated.length > 0 && values.data === undefined) {
    fail('E_PLAN', `${values.plan}: ${calibrated.length} layer(s) use calibrated rounding ("calibrated": true, e.g. '${calibrated[0]}'): give the calibration data with --data FILE (the search data the plan was made with), or remove "calibrated".`);
  }
  if (plan.biasCorrection && values.data === undefined) {
    fail('E_PLAN', `${values.plan}: the plan corrects biases ("biasCorrection": true): give the calibration data with --data FILE (the search data the plan was made with), or remove "biasCorrection".`);
  }
  const samples = values['calibration-samples'] === undefined ? 256 : Number(values['calibration-samples']);
  if (!Number.isSafeInteger(samples) || samples < 1) throw new UsageError(`--calibration-samples must be a positive integer, got '${values['calibration-samples']}'`);
  const data = calibrated.length > 0 || plan.biasCorrection ? await dataFromArgs({ data: values.data, labels: values.labels }) : undefined;
  let calibration: Map<string, LayerHessian> | undefined;
  if (calibrated.length > 0 && data) {
    const wanted = new Set(calibrated);
    calibration = await collectHessians(model, weights.filter((w) => wanted.has(w.name)), data.spec, { samples, signal });
    const plain = calibrated.filter((n) => !calibration!.has(n));
    if (plain.length > 0 && !values.json) process.stderr.write(`note: calibrated rounding does not support ${plain.join(', ')} (consumer); plain rounding used there\n`);
  }
  const corrections = plan.biasCorrection && data
    ? await planCorrections(fs.readFileSync(file), () => loadModel(file, { signal }), specs, calibration, data, {
        signal,
        sequential: plan.sequentialCalibration,
        ...(model.externalFiles.length ? { externalDataFolder: path.dirname(file) } : {}),
      })
    : undefined;
  const progress = !values.json && process.stderr.isTTY;
  const result = applySpecs(model, specs, {
    overrides: corrections?.biases,
    compressed: corrections?.compressed,
    fromDefault,
    signal,
    compact: !values['keep-names'],
    calibration,
    onProgress: progress ? (d, t, name) => process.stderr.write(`\r  ${d}/${t} ${name.slice(0, 60).padEnd(60)}`) : undefined,
  });
  if (progress) process.stderr.write('\r'.padEnd(70) + '\r');
  const saved = await saveModel(model, out, { signal });
  const onnxBytes = saved.modelBytes + saved.dataBytes;
  let archiveBytes: number | null = null;
  let archiveLayer: Map<string, number> | undefined;
  if (values.archive) {
    const a = await writeArchive(fs.readFileSync(out), values.archive);
    archiveBytes = a.bytes;
    archiveLayer = a.perLayer;
  }
  const untouched = weights.filter((w) => !specs.has(w.name)).reduce((s, w) => s + w.bytes, 0);
  const theoretical = result.layers.reduce((s, l) => s + l.bits.total / 8, 0) + untouched;
  const report: ApplyReport = {
    schema: 'onnx-compress/apply@1',
    model: file,
    out,
    layers: result.layers.map((l) => ({
      name: l.name,
      technique: l.label,
      params: l.params,
      originalBytes: l.originalBytes,
      bits: l.bits.total,
      entropyBits: l.bits.entropyTotal,
      encoding: l.encoding,
      onnxBytes: l.onnxBytes,
      // Coded index streams of the layer (its codebooks and other small tensors are in the brotli'd rest).
      archiveBytes: archiveLayer?.get(l.name) ?? null,
    })),
    skipped: result.skipped,
    total: {
      originalBytes,
      onnxBytes,
      archiveBytes,
      ratio: originalBytes / onnxBytes,
      archiveRatio: archiveBytes === null ? null : originalBytes / archiveBytes,
      theoreticalBytes: Math.round(theoretical),
    },
  };
  if (values.json) {
    process.stdout.write(`${JSON.stringify(report, null, 2)}\n`);
    return;
  }
  const rows = report.layers.map((l) => [
    l.name,
    l.technique,
    formatBytes(l.originalBytes),
    `${(l.bits / l.params).toFixed(2)} b/w`,
    formatBytes(Math.ceil(l.bits / 8)),
    `${l.encoding}`,
    formatBytes(l.onnxBytes),
    l.archiveBytes === null ? '-' : formatBytes(l.archiveBytes),
  ]);
  process.stdout.write(
    [
      table(['layer', 'technique', 'original', 'bits/weight', 'theory', 'encoding', 'ONNX', 'archive'], rows),
      ...report.skipped.map((s) => `skipped ${s.name}: ${s.reason}`),
      '',
      `original ${formatBytes(originalBytes)} -> ONNX ${formatBytes(onnxBytes)} (${report.total.ratio.toFixed(2)}×)` +
        (archiveBytes === null ? '' : `, archive ${formatBytes(archiveBytes)} (${report.total.archiveRatio!.toFixed(2)}×)`) +
        `; theoretical ${formatBytes(report.total.theoreticalBytes)} (${(originalBytes / report.total.theoreticalBytes).toFixed(2)}×)`,
      `wrote ${out}${saved.dataFile ? ` + ${saved.dataFile}` : ''}${values.archive ? ` and ${values.archive}` : ''}`,
      '',
    ].join('\n'),
  );
}

/**
 * Writes the archive of an ONNX file; coded bytes per layer (a stream belongs to the layer whose
 * decoder node reads it; that node's output carries the weight's name).
 */
async function writeArchive(onnx: Uint8Array, file: string): Promise<{ bytes: number; perLayer: Map<string, number> }> {
  const { archive, stats } = packArchiveWithStats(onnx, { source: file });
  await writeFileAtomic(file, archive);
  const reader = new Map<string, string>();
  for (const n of decodeModel(onnx, file).graph?.node ?? []) for (const i of n.input) if (n.output[0]) reader.set(i, n.output[0]);
  const perLayer = new Map<string, number>();
  for (const st of stats.streams) {
    const layer = reader.get(st.name) ?? st.name;
    perLayer.set(layer, (perLayer.get(layer) ?? 0) + st.codedBytes);
  }
  return { bytes: archive.length, perLayer };
}
