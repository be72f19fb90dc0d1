/**
 * Reading result files (`sensitivity.json`, `candidates.json`) and aggregating them into the
 * panel's {@link PanelView}. Result files are untrusted input (another tool, another user, a
 * hand edit): their schema is checked before use, and strings are only ever rendered as text.
 * Pure functions except {@link readResults}; no `vscode` import, so they are easy to test.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { layerSpec, specLabel, specToLayerPlan, type LayerPlan } from '../engine/explore/plan';
import type { Candidate, CandidatesFile, LevelDef, SensitivityCell, SensitivityFile } from '../engine/explore/types';
import type { PanelView, ViewCandidate, ViewCell, ViewLayer } from '../protocol';

/** File names inside a results folder (as the CLI writes them). */
export const SENSITIVITY_FILE = 'sensitivity.json';
export const CANDIDATES_FILE = 'candidates.json';

/** A result file that does not follow its schema. */
export class ResultFileError extends Error {
  override readonly name = 'ResultFileError';
  readonly code = 'E_RESULTS';
}

type Obj = Record<string, unknown>;
const isObj = (v: unknown): v is Obj => typeof v === 'object' && v !== null && !Array.isArray(v);
const isNum = (v: unknown): v is number => typeof v === 'number' && Number.isFinite(v);
const isStr = (v: unknown): v is string => typeof v === 'string';

function check(cond: boolean, file: string, what: string): asserts cond {
  if (!cond) throw new ResultFileError(`'${file}' is not a valid result file: ${what}. Re-run the analysis or delete the file.`);
}

/** Checks `json` against the `onnx-compress/sensitivity@1` schema (the fields the panel uses). */
export function validateSensitivity(json: unknown, file: string): SensitivityFile {
  check(isObj(json) && json['schema'] === 'onnx-compress/sensitivity@1', file, 'expected "schema": "onnx-compress/sensitivity@1"');
  const o = json;
  check(isObj(o['model']) && isNum(o['model']['bytes']) && isStr(o['model']['file']), file, '"model" needs "file" and "bytes"');
  check(Array.isArray(o['levels']) && o['levels'].every((l) => isObj(l) && isStr(l['id']) && isStr(l['technique']) && isStr(l['label'])), file, '"levels" must be [{id, technique, label, spec}]');
  check(
    Array.isArray(o['layers']) &&
      o['layers'].every((l) => isObj(l) && isStr(l['name']) && isStr(l['op']) && isStr(l['node']) && Array.isArray(l['shape']) && l['shape'].every(isNum) && isNum(l['params']) && isNum(l['bytes'])),
    file,
    '"layers" must be [{name, op, node, shape, params, bytes}]',
  );
  check(
    Array.isArray(o['cells']) &&
      o['cells'].every((c) => isObj(c) && isStr(c['layer']) && isStr(c['level']) && isNum(c['loss']) && Array.isArray(c['ci']) && c['ci'].length === 2 && c['ci'].every(isNum) && isNum(c['bits']) && isNum(c['onnxBytes']) && isNum(c['samples'])),
    file,
    '"cells" must be [{layer, level, loss, ci, bits, onnxBytes, samples, ...}]',
  );
  check(typeof o['complete'] === 'boolean', file, '"complete" must be true or false');
  return o as unknown as SensitivityFile;
}

/** Checks `json` against the `onnx-compress/candidates@1` schema (the fields the panel uses). */
export function validateCandidates(json: unknown, file: string): CandidatesFile {
  check(isObj(json) && json['schema'] === 'onnx-compress/candidates@1', file, 'expected "schema": "onnx-compress/candidates@1"');
  const o = json;
  check(isObj(o['model']) && isNum(o['model']['bytes']), file, '"model" needs "bytes"');
  check(
    Array.isArray(o['candidates']) &&
      o['candidates'].every((c) => isObj(c) && isStr(c['id']) && isObj(c['plan']) && isNum(c['bytes']) && isNum(c['ratio']) && isNum(c['loss']) && isNum(c['evaluations']) && typeof c['pareto'] === 'boolean' && typeof c['feasible'] === 'boolean'),
    file,
    '"candidates" must be [{id, plan, bytes, ratio, loss, evaluations, pareto, feasible, ...}]',
  );
  check(o['chosen'] === null || isStr(o['chosen']), file, '"chosen" must be a candidate id or null');
  check(isObj(o['outputs']), file, '"outputs" must be an object');
  return o as unknown as CandidatesFile;
}

/** The parsed result files of a folder (either may be missing). */
export interface Results {
  dir: string;
  sensitivity: SensitivityFile | null;
  candidates: CandidatesFile | null;
}

/**
 * Reads and validates the result files of `dir`. A missing file is `null`; a file being rewritten
 * (truncated JSON) keeps `previous`'s copy so a live view never flickers.
 * @throws ResultFileError for a file that parses but breaks the schema.
 */
export function readResults(dir: string, previous?: Results): Results {
  const read = <T>(name: string, validate: (j: unknown, f: string) => T, prev: T | null): T | null => {
    const file = path.join(dir, name);
    let text: string;
    try {
      text = fs.readFileSync(file, 'utf8');
    } catch {
      return null;
    }
    let json: unknown;
    try {
      json = JSON.parse(text);
    } catch {
      if (prev) return prev;
      throw new ResultFileError(`'${file}' is not valid JSON. Re-run, or delete the file.`);
    }
    return validate(json, file);
  };
  return {
    dir,
    sensitivity: read(SENSITIVITY_FILE, validateSensitivity, previous?.sensitivity ?? null),
    candidates: read(CANDIDATES_FILE, validateCandidates, previous?.candidates ?? null),
  };
}

/** Adds streamed cells (from `cell` events) that the file on disk does not have yet. */
export function mergeCells(file: SensitivityFile, extra: readonly SensitivityCell[]): SensitivityFile {
  if (extra.length === 0) return file;
  const key = (c: SensitivityCell): string => `${c.layer}\u0000${c.level}`;
  const have = new Set(file.cells.map(key));
  const add = extra.filter((c) => !have.has(key(c)));
  return add.length === 0 ? file : { ...file, cells: [...file.cells, ...add] };
}

function canonical(p: LayerPlan): string {
  return JSON.stringify(Object.fromEntries(Object.entries(p).sort(([a], [b]) => a.localeCompare(b))));
}

/** The plan entry of `layer` in a candidate (its own entry, else the plan's default, else none). */
function candidateEntry(c: Candidate, layer: string): LayerPlan {
  return c.plan.layers?.[layer] ?? c.plan.default ?? { technique: 'none' };
}

/**
 * The level id whose spec equals a candidate's plan entry for `layer` (null for `none` or a spec
 * that is no heatmap column).
 */
export function candidateLevel(c: Candidate, layer: string, levels: readonly LevelDef[]): string | null {
  let key: string;
  try {
    const spec = layerSpec(candidateEntry(c, layer), layer);
    if (!spec) return null;
    key = canonical(specToLayerPlan(spec));
  } catch {
    return null;
  }
  return levels.find((l) => canonical(specToLayerPlan(l.spec)) === key)?.id ?? null;
}

function summary(c: Candidate, layers: readonly string[]): string {
  const parts: string[] = [];
  const names = layers.length > 0 ? layers : Object.keys(c.plan.layers ?? {});
  for (const name of names) {
    let label: string;
    try {
      label = specLabel(layerSpec(candidateEntry(c, name), name));
    } catch {
      label = '?';
    }
    if (label !== 'none') parts.push(`${name}: ${label}`);
  }
  return parts.length > 0 ? parts.join(', ') : 'uncompressed';
}

function percent(x: number): string {
  return `${(x * 100).toFixed(x < 0.1 ? 2 : 1)} %`;
}

function bytesText(n: number): string {
  if (n < 1024) return `${n} B`;
  if (n < 1024 * 1024) return `${(n / 1024).toFixed(1)} KiB`;
  return `${(n / (1024 * 1024)).toFixed(1)} MiB`;
}

/**
 * The panel's view of `results`. `selection` holds the user's clicks (layer -> level id, null =
 * none); layers it does not mention take the chosen candidate's level.
 * Size of the selection = original bytes − Σ(layer bytes − selected level's ONNX bytes); its
 * predicted loss = Σ of the selected cells' losses (first-order: losses of layers add).
 */
export function buildPanelView(results: Results, modelPath: string, selection: ReadonlyMap<string, string | null>): PanelView | null {
  const s = results.sensitivity;
  const c = results.candidates;
  if (!s && !c) return null;
  const levels = s?.levels ?? [];
  const layerRows = s?.layers ?? [];
  const chosen = c?.candidates.find((x) => x.id === c.chosen) ?? null;
  const col = new Map(levels.map((l, i) => [l.id, i]));
  const row = new Map(layerRows.map((l, i) => [l.name, i]));
  const cellAt = new Map<string, SensitivityCell>();
  const cells: ViewCell[] = [];
  let maxLoss = 0;
  for (const cell of s?.cells ?? []) {
    const r = row.get(cell.layer);
    const k = col.get(cell.level);
    if (r === undefined || k === undefined) continue;
    cellAt.set(`${cell.layer}\u0000${cell.level}`, cell);
    maxLoss = Math.max(maxLoss, cell.loss);
    cells.push({ row: r, col: k, loss: cell.loss, lo: cell.ci[0], hi: cell.ci[1], bits: cell.bits, onnxBytes: cell.onnxBytes, top1: cell.top1 ?? null, samples: cell.samples, stoppedEarly: cell.stoppedEarly === true });
  }
  let saved = 0;
  let predicted = 0;
  let selectedLayers = 0;
  const layers: ViewLayer[] = layerRows.map((l) => {
    const sel = selection.has(l.name) ? selection.get(l.name)! : chosen ? candidateLevel(chosen, l.name, levels) : null;
    const cell = sel === null ? undefined : cellAt.get(`${l.name}\u0000${sel}`);
    const selectedBytes = cell ? cell.onnxBytes : l.bytes;
    if (sel !== null) selectedLayers++;
    if (cell) {
      saved += l.bytes - cell.onnxBytes;
      predicted += cell.loss;
    }
    const unsupported: Record<string, string> = {};
    for (const [k, v] of Object.entries((l as { unsupported?: unknown }).unsupported ?? {})) if (typeof v === 'string') unsupported[k] = v;
    return { name: l.name, op: l.op, node: l.node, shape: [...l.shape], params: l.params, bytes: l.bytes, selected: sel, selectedBytes, unsupported };
  });
  const layerNames = layerRows.map((l) => l.name);
  const candidates: ViewCandidate[] = (c?.candidates ?? []).map((x) => ({
    id: x.id,
    bytes: x.bytes,
    ratio: x.ratio,
    top1: x.top1 ?? null,
    loss: x.loss,
    holdoutLoss: x.holdout ? x.holdout.loss : null,
    evaluations: x.evaluations,
    pareto: x.pareto,
    feasible: x.feasible,
    summary: summary(x, layerNames),
  }));
  const model = s?.model ?? c!.model;
  const ds = s?.dataset ?? c?.dataset;
  const budget = c ? ('maxLoss' in c.budget ? `max loss ${percent(c.budget.maxLoss)}` : `max size ${bytesText(c.budget.maxSize)}`) : null;
  return {
    model: { name: path.basename(modelPath), bytes: model.bytes, compressibleParams: model.compressibleParams },
    resultsDir: results.dir,
    dataset: ds ? `${path.basename(ds.source)}, ${ds.samples} samples, ${ds.labels ? 'accuracy drop' : 'disagreement'}` : null,
    baselineTop1: s?.baseline.top1 ?? c?.baseline.top1 ?? null,
    confidence: s?.confidence ?? 0.95,
    levels: levels.map((l) => ({ id: l.id, technique: l.technique, label: l.label })),
    layers,
    cells,
    lossScaleMax: Math.max(0.01, maxLoss),
    analysisComplete: s?.complete ?? false,
    candidates,
    chosen: c?.chosen ?? null,
    budget,
    budgetValue: c ? ('maxLoss' in c.budget ? { maxLoss: c.budget.maxLoss } : { maxSize: c.budget.maxSize }) : null,
    selection: { bytes: model.bytes - saved, originalBytes: model.bytes, predictedLoss: predicted, layers: selectedLayers },
    report: { html: typeof c?.outputs.html === 'string', markdown: typeof c?.outputs.report === 'string' },
  };
}
