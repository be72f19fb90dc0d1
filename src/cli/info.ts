/** `onnx-compress info MODEL [--json]`. */
import * as fs from 'node:fs';
import { loadModel, modelInfo, type ModelInfo } from '../engine/onnx';
import { formatBytes, parse, table, UsageError } from './util';

/** Usage line of the command. */
export const INFO_USAGE = 'usage: onnx-compress info MODEL.onnx [--json] [--min-params N]';

/** Runs `info`. */
export async function infoCommand(argv: string[], signal: AbortSignal): Promise<void> {
  const { values, positionals } = parse(argv, {
    json: { type: 'boolean' },
    'min-params': { type: 'string' },
  });
  if (positionals.length !== 1) throw new UsageError(positionals.length ? `expected one model, got ${positionals.length}` : 'missing MODEL');
  const file = positionals[0]!;
  const minParams = values['min-params'] === undefined ? undefined : Number(values['min-params']);
  if (minParams !== undefined && !(Number.isInteger(minParams) && minParams >= 0)) throw new UsageError(`--min-params must be a whole number, got '${values['min-params']}'`);
  const model = await loadModel(file, { signal });
  const fileBytes = fs.statSync(file).size + model.externalFiles.reduce((s, f) => s + fs.statSync(f).size, 0);
  const info = modelInfo(model, fileBytes, minParams === undefined ? {} : { minParams });
  process.stdout.write(values.json ? `${JSON.stringify(info, null, 2)}\n` : formatInfo(info));
}

/** Human-readable rendering of {@link ModelInfo}. */
export function formatInfo(info: ModelInfo): string {
  const shape = (s: Array<number | string | null> | null): string => (s ? `[${s.map((d) => d ?? '?').join(', ')}]` : '?');
  const lines = [
    `${info.file}  (${formatBytes(info.fileBytes)}, IR ${info.irVersion}, opsets ${Object.entries(info.opsets).map(([d, v]) => `${d} ${v}`).join(', ')}${info.producer ? `, from ${info.producer}` : ''})`,
    '',
    'Inputs:',
    ...info.inputs.map((v) => `  ${v.name}: ${v.dtype} ${shape(v.shape)}`),
    'Outputs:',
    ...info.outputs.map((v) => `  ${v.name}: ${v.dtype} ${shape(v.shape)}`),
    '',
    `Nodes: ${info.nodes}  (${Object.entries(info.ops).sort((a, b) => b[1] - a[1]).map(([k, v]) => `${k} ${v}`).join(', ')})`,
    '',
    table(
      ['weight', 'op', 'role', 'dtype', 'shape', 'params', 'bytes', 'compress'],
      info.weights.map((w) => [w.name, w.op, w.role, w.dtype, `[${w.shape.join('×')}]`, w.params.toLocaleString('en-US'), formatBytes(w.bytes), w.compressible ? 'yes' : `no: ${w.reason ?? ''}`]),
    ),
    '',
    `Weights: ${info.totalParams.toLocaleString('en-US')} params, ${formatBytes(info.totalWeightBytes)}; compressible: ${info.compressibleParams.toLocaleString('en-US')} params, ${formatBytes(info.compressibleBytes)} (${info.weights.filter((w) => w.compressible).length} layers)`,
    '',
  ];
  return lines.join('\n');
}
