/**
 * The commands of the extension and the runs behind them. Each command takes the model it acts
 * on (explorer / editor-title URI, else the active `.onnx`, else a file pick) and optional
 * arguments that let tests and other extensions skip the quick picks.
 *
 * Runs: one per model at a time, in the engine worker, shown by `withProgress` (cancellable, with a
 * percentage) and streamed to the model's results panel and the "ONNX Compress" output channel.
 * Cancel keeps what finished (the engine writes results as they arrive); the next run resumes.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import * as vscode from 'vscode';
import { parseDatasetSpec } from '../engine/eval/datasetSpec';
import type { CandidatesFile, ExploreEvent, SensitivityFile } from '../engine/explore/types';
import type { PlanFile } from '../engine/explore/plan';
import type { WorkerExportResult, WorkerRunOptions } from '../engine/worker/protocol';
import type { RunState } from '../protocol';
import { isCancellationError, toAbortSignal } from './cancellation';
import { EngineError, type EngineRunner } from './engineRunner';
import { datasetFileFor, exists, exportPathFor, isInside, isInsideWorkspace, modelName, pickModel, resolveSettingPath, resultsDirFor } from './modelFiles';
import { ResultsPanel, type PanelActions } from './panel';
import { CANDIDATES_FILE, readResults, SENSITIVITY_FILE } from './results';
import { readSettings, TECHNIQUES, type Settings } from './settings';

/** Result of `onnxCompress.analyzeSensitivity` (undefined when the user backed out). */
export interface AnalyzeResult {
  model: string;
  resultsDir: string;
  /** `sensitivity.json`. */
  file: string;
  cancelled: boolean;
  /** Measured cells in the file. */
  cells: number;
  seconds: number;
}

/** Result of `onnxCompress.compress`. */
export interface CompressResult {
  model: string;
  resultsDir: string;
  /** `candidates.json`. */
  file: string;
  cancelled: boolean;
  candidates: number;
  chosen: string | null;
  seconds: number;
}

/** Optional arguments of `onnxCompress.compress` (skip the quick picks). */
export interface CompressArgs {
  maxLoss?: number;
  maxSize?: number;
  techniques?: string[];
}

/** Optional arguments of `onnxCompress.exportCandidate`. */
export interface ExportArgs {
  /** Target file; default `<model>.<id>.onnx` next to the model (or in `onnxCompress.exportFolder`). */
  outPath?: string;
  /** Overwrite without asking. Default false (ask). */
  overwrite?: boolean;
  /** Do not reveal the file in the explorer. Default false. */
  noReveal?: boolean;
  /** Also write the `.onnxc` archive next to the model. Default: the `onnxCompress.exportArchive` setting. */
  archive?: boolean;
}

/** Choice of `onnxCompress.configureDataset` when given as an argument. */
export type DatasetChoice =
  | { kind: 'synthetic'; count?: number }
  | { kind: 'json'; file: string }
  | { kind: 'folder'; folder: string }
  | { kind: 'files'; inputs: string; labels?: string };

/** Why runs and exports are off in an untrusted workspace (notification and results panel). */
export const RESTRICTED_MESSAGE =
  'Restricted Mode: ONNX Compress runs native inference code (onnxruntime) on model and data files, so analysis, compression and export are disabled until you trust this workspace. Results can still be viewed.';

const LAST_BUDGET = 'onnxCompress.lastBudget';
const SELECTION_KEY = 'onnxCompress.selection:';
const LAST_TECHNIQUES = 'onnxCompress.lastTechniques';

type Budget = { maxLoss: number } | { maxSize: number };

/** Owns the runs and implements every command. */
export class Controller implements PanelActions {
  private readonly runs = new Map<string, vscode.CancellationTokenSource>();
  private readonly reports = new Map<string, vscode.WebviewPanel>();

  constructor(
    private readonly context: vscode.ExtensionContext,
    private readonly output: vscode.OutputChannel,
    private readonly engine: EngineRunner,
  ) {}

  /** Cancels every run (deactivation). */
  dispose(): void {
    for (const cts of this.runs.values()) cts.cancel();
    for (const p of [...this.reports.values()]) p.dispose();
  }

  log(line: string): void {
    this.output.appendLine(`[${new Date().toLocaleTimeString()}] ${line}`);
  }

  resultsDirFor(model: string): string {
    return resultsDirFor(model, readSettings(vscode.Uri.file(model)));
  }

  // ----- commands -------------------------------------------------------------------------------

  /** `onnxCompress.analyzeSensitivity`. */
  async analyzeSensitivity(arg?: unknown): Promise<AnalyzeResult | undefined> {
    if (!this.trusted()) return undefined;
    const uri = await pickModel(arg, 'Analyze Sensitivity');
    if (!uri) return undefined;
    const model = uri.fsPath;
    const settings = readSettings(uri);
    const data = await this.resolveDataset(model, settings);
    if (data === undefined) return undefined;
    const outDir = resultsDirFor(model, settings);
    const options: WorkerRunOptions = { model, data, outDir, techniques: settings.techniques, ...this.common(settings) };
    const t0 = Date.now();
    const r = await this.withRun(model, 'analyze', `Analyzing sensitivity of ${modelName(model)}`, (hooks) => this.engine.analyze(options, hooks));
    if (!r) return undefined;
    const file = path.join(outDir, SENSITIVITY_FILE);
    const s = r.result ?? readResults(outDir).sensitivity;
    const result: AnalyzeResult = { model, resultsDir: outDir, file, cancelled: r.cancelled, cells: s?.cells.length ?? 0, seconds: (Date.now() - t0) / 1000 };
    this.log(`Analysis of ${model} ${r.cancelled ? 'cancelled' : 'finished'}: ${result.cells} cells in ${result.seconds.toFixed(1)} s -> ${file}`);
    if (r.cancelled) void vscode.window.showInformationMessage(`Analysis cancelled; ${result.cells} measured cells are kept in ${path.basename(outDir)}. The next run resumes from them.`);
    return result;
  }

  /** `onnxCompress.compress`. */
  async compress(arg?: unknown, args?: CompressArgs): Promise<CompressResult | undefined> {
    if (!this.trusted()) return undefined;
    const uri = await pickModel(arg, 'Compress Model');
    if (!uri) return undefined;
    const model = uri.fsPath;
    const settings = readSettings(uri);
    const budget = args && (args.maxLoss !== undefined || args.maxSize !== undefined) ? checkBudget(args) : await this.askBudget(settings);
    if (!budget) return undefined;
    const techniques = args?.techniques ? checkTechniques(args.techniques) : await this.askTechniques(settings);
    if (!techniques) return undefined;
    const data = await this.resolveDataset(model, settings);
    if (data === undefined) return undefined;
    const outDir = resultsDirFor(model, settings);
    const options: WorkerRunOptions = { model, data, outDir, techniques, ...budget, ...this.common(settings) };
    const t0 = Date.now();
    const r = await this.withRun(model, 'compress', `Compressing ${modelName(model)}`, (hooks) => this.engine.compress(options, hooks));
    if (!r) return undefined;
    const c = r.result ?? readResults(outDir).candidates;
    const result: CompressResult = {
      model,
      resultsDir: outDir,
      file: path.join(outDir, CANDIDATES_FILE),
      cancelled: r.cancelled,
      candidates: c?.candidates.length ?? 0,
      chosen: c?.chosen ?? null,
      seconds: (Date.now() - t0) / 1000,
    };
    this.log(`Compression of ${model} ${r.cancelled ? 'cancelled' : 'finished'}: ${result.candidates} candidates, chosen ${result.chosen ?? 'none'}, ${result.seconds.toFixed(1)} s`);
    if (!r.cancelled && c) void this.announceCandidates(model, c);
    return result;
  }

  /** `onnxCompress.openResults`: a model, or its `.compress` folder. */
  async openResults(arg?: unknown): Promise<string | undefined> {
    let model: string | undefined;
    if (arg instanceof vscode.Uri && /\.compress\/?$/i.test(arg.path)) {
      model = `${arg.fsPath.replace(/[\\/]$/, '').replace(/\.compress$/i, '')}.onnx`;
    } else {
      model = (await pickModel(arg, 'Open Results'))?.fsPath;
    }
    if (!model) return undefined;
    const panel = ResultsPanel.show(this.context.extensionUri, this, model);
    if (!exists(path.join(panel.resultsDir, SENSITIVITY_FILE)) && !exists(path.join(panel.resultsDir, CANDIDATES_FILE))) {
      void vscode.window.showInformationMessage(`No results for ${modelName(model)} yet in ${panel.resultsDir}. Run "Analyze Sensitivity" or "Compress Model…".`);
    }
    return panel.resultsDir;
  }

  /** `onnxCompress.exportCandidate`: returns the written file. */
  async exportCandidate(arg?: unknown, candidateId?: unknown, args?: ExportArgs): Promise<string | undefined> {
    if (!this.trusted()) return undefined;
    const uri = await pickModel(arg, 'Export Candidate');
    if (!uri) return undefined;
    const model = uri.fsPath;
    const settings = readSettings(uri);
    const dir = resultsDirFor(model, settings);
    const cands = readResults(dir).candidates;
    if (!cands || cands.candidates.length === 0) {
      void vscode.window.showWarningMessage(`No candidates for ${modelName(model)} in ${dir}: run "Compress Model…" first.`);
      return undefined;
    }
    let id = typeof candidateId === 'string' && candidateId !== '' ? candidateId : undefined;
    if (id === undefined) {
      const pick = await vscode.window.showQuickPick(
        cands.candidates.map((c) => ({
          label: c.id,
          description: `${formatBytes(c.bytes)} (${c.ratio.toFixed(2)}×), loss ${formatPercent(c.loss)}`,
          detail: [c.id === cands.chosen ? 'chosen' : '', c.pareto ? 'Pareto' : '', c.feasible ? 'within budget' : 'over budget'].filter(Boolean).join(' · '),
          picked: c.id === cands.chosen,
        })),
        { title: `Export a candidate of ${modelName(model)}`, placeHolder: 'Candidate' },
      );
      if (!pick) return undefined;
      id = pick.label;
    }
    if (!cands.candidates.some((c) => c.id === id)) throw new Error(`No candidate '${id}' in ${path.join(dir, CANDIDATES_FILE)}.`);
    const out = await this.confirmTarget(args?.outPath ?? exportPathFor(model, id, settings), args?.overwrite === true, args?.archive ?? settings.exportArchive);
    if (!out) return undefined;
    const archive = args?.archive ?? settings.exportArchive;
    const r = await vscode.window.withProgress({ location: vscode.ProgressLocation.Notification, title: `Exporting ${id} of ${modelName(model)}` }, () =>
      this.engine.exportCandidate(dir, id, out, archive, this.knownDataset(model, settings)),
    );
    await this.announceExport(`${id} of ${model}`, id, r, args?.noReveal === true);
    return r.outPath;
  }

  /**
   * `onnxCompress.exportPlan`: applies a plan (`PlanFile`: the panel's heatmap selection, or a plan
   * JSON file picked when none is given) to the model and writes `<model>.selection.onnx` (plus
   * the archive); returns the written file.
   */
  async exportPlan(arg?: unknown, plan?: unknown, args?: ExportArgs): Promise<string | undefined> {
    if (!this.trusted()) return undefined;
    const uri = await pickModel(arg, 'Export Plan');
    if (!uri) return undefined;
    const model = uri.fsPath;
    const settings = readSettings(uri);
    let p = plan;
    let name = 'selection';
    if (p === undefined) {
      const f = await vscode.window.showOpenDialog({ defaultUri: vscode.Uri.file(path.dirname(model)), canSelectMany: false, filters: { 'Plan JSON': ['json'] }, openLabel: 'Apply Plan' });
      if (!f?.[0]) return undefined;
      p = JSON.parse(fs.readFileSync(f[0].fsPath, 'utf8')) as unknown;
      name = path.basename(f[0].fsPath).replace(/\.json$/i, '');
    }
    if (typeof p !== 'object' || p === null || Array.isArray(p)) throw new Error(`A plan must be an object like { "layers": { "<weight>": { "technique": "quant", "bits": 4 } } }, got ${JSON.stringify(p)?.slice(0, 80)}.`);
    const archive = args?.archive ?? settings.exportArchive;
    const out = await this.confirmTarget(args?.outPath ?? exportPathFor(model, name, settings), args?.overwrite === true, archive);
    if (!out) return undefined;
    const r = await vscode.window.withProgress({ location: vscode.ProgressLocation.Notification, title: `Exporting the ${name} plan of ${modelName(model)}` }, () =>
      this.engine.exportPlan(model, p as PlanFile, out, archive, this.knownDataset(model, settings)),
    );
    await this.announceExport(`the ${name} plan of ${model}`, `the ${name} plan`, r, args?.noReveal === true);
    return r.outPath;
  }

  /**
   * The export target: `out` itself when neither it nor its archive exists (or `overwrite`), else
   * what the user answers to "already exists" (Overwrite / Save As… / cancel = undefined).
   */
  private async confirmTarget(out: string, overwrite: boolean, archive: boolean): Promise<string | undefined> {
    const archiveOf = (f: string): string => `${f.replace(/\.onnx$/i, '')}.onnxc`;
    const taken = (f: string): string[] => [f, ...(archive ? [archiveOf(f)] : [])].filter(exists);
    let target = out;
    while (!overwrite && taken(target).length > 0) {
      const names = taken(target).map((f) => path.basename(f)).join(' and ');
      const answer = await vscode.window.showWarningMessage(`${names} already ${taken(target).length > 1 ? 'exist' : 'exists'}. Overwrite?`, { modal: true }, 'Overwrite', 'Save As…');
      if (answer === 'Overwrite') break;
      if (answer !== 'Save As…') return undefined;
      const picked = await vscode.window.showSaveDialog({ defaultUri: vscode.Uri.file(target), filters: { 'ONNX models': ['onnx'] } });
      if (!picked) return undefined;
      // The save dialog asked about the .onnx file already; ask again only for an existing archive.
      target = picked.fsPath;
      if (!archive || !exists(archiveOf(target))) break;
    }
    fs.mkdirSync(path.dirname(target), { recursive: true });
    return target;
  }

  private async announceExport(what: string, short: string, r: WorkerExportResult, noReveal: boolean): Promise<void> {
    const size = formatBytes(r.bytes);
    const archive = r.archive ? ` and ${path.basename(r.archive)} (${formatBytes(fs.statSync(r.archive).size)})` : '';
    this.log(`Exported ${what} -> ${r.outPath} (${size})${r.archive ? `, archive ${r.archive}` : ''}`);
    if (!noReveal) await vscode.commands.executeCommand('revealInExplorer', vscode.Uri.file(r.outPath)).then(undefined, () => undefined);
    void vscode.window.showInformationMessage(`Exported ${short} to ${path.basename(r.outPath)} (${size})${archive}.`);
  }

  /** `onnxCompress.configureDataset`: writes `<model>.dataset.json`; returns its path. */
  async configureDataset(arg?: unknown, choice?: DatasetChoice, overwrite = false): Promise<string | undefined> {
    const uri = await pickModel(arg, 'Configure Dataset');
    if (!uri) return undefined;
    const model = uri.fsPath;
    const c = choice ?? (await this.askDatasetChoice(model));
    if (!c) return undefined;
    const json = await this.datasetJson(model, c);
    if (!json) return undefined;
    const target = datasetFileFor(model);
    // Checked before writing: the engine reads this file and its errors name the key.
    parseDatasetSpec(json, path.dirname(model), target);
    if (exists(target) && !overwrite) {
      const answer = await vscode.window.showWarningMessage(`${path.basename(target)} already exists.`, { modal: true }, 'Overwrite');
      if (answer !== 'Overwrite') return undefined;
    }
    const tmp = `${target}.${process.pid}.tmp`;
    fs.writeFileSync(tmp, `${JSON.stringify(json, null, 2)}\n`);
    fs.renameSync(tmp, target);
    this.log(`Dataset of ${model}: wrote ${target}`);
    if (!choice) {
      void vscode.window.showInformationMessage(`Wrote ${path.basename(target)}.`, 'Open').then((a) => {
        if (a === 'Open') void vscode.window.showTextDocument(vscode.Uri.file(target));
      });
    }
    return target;
  }

  // ----- panel actions ----------------------------------------------------------------------------

  startRun(model: string, op: 'analyze' | 'compress'): void {
    const uri = vscode.Uri.file(model);
    void (op === 'analyze' ? this.analyzeSensitivity(uri) : this.compress(uri)).catch((e: unknown) => this.reportError(e, model));
  }

  cancelRun(model: string): void {
    this.runs.get(model)?.cancel();
  }

  /** `onnxCompress.openReport` and the panel's report buttons: returns the report file, undefined when there is none. */
  async openReport(arg: unknown, where: 'panel' | 'browser' = 'panel'): Promise<string | undefined> {
    const model = typeof arg === 'string' && arg.toLowerCase().endsWith('.onnx') ? arg : (await pickModel(arg, 'Open Report'))?.fsPath;
    if (!model) return undefined;
    const dir = this.resultsDirFor(model);
    const c = readResults(dir).candidates;
    const rel = c?.outputs.html;
    if (typeof rel !== 'string') {
      void vscode.window.showWarningMessage(`No report.html in ${dir} yet: run "Compress Model…".`);
      return undefined;
    }
    const file = path.resolve(dir, rel);
    if (!isInside(file, dir) || !exists(file)) {
      void vscode.window.showWarningMessage(`The report path '${rel}' in ${CANDIDATES_FILE} is not a file inside ${dir}.`);
      return undefined;
    }
    if (where === 'browser') {
      await vscode.env.openExternal(vscode.Uri.file(file));
      return file;
    }
    let panel = this.reports.get(file);
    if (panel) panel.reveal();
    else {
      panel = vscode.window.createWebviewPanel(REPORT_VIEW_TYPE, `Report: ${modelName(model)}`, vscode.ViewColumn.Active, {
        enableScripts: false,
        localResourceRoots: [],
      });
      const p = panel;
      this.reports.set(file, p);
      p.onDidDispose(() => this.reports.delete(file));
    }
    panel.webview.html = reportHtml(fs.readFileSync(file, 'utf8'));
    return file;
  }

  restriction(): string | null {
    return vscode.workspace.isTrusted ? null : RESTRICTED_MESSAGE;
  }

  loadSelection(model: string): Record<string, string | null> {
    const v = this.context.workspaceState.get<unknown>(SELECTION_KEY + model);
    if (typeof v !== 'object' || v === null || Array.isArray(v)) return {};
    return Object.fromEntries(Object.entries(v).filter((e): e is [string, string | null] => e[1] === null || typeof e[1] === 'string'));
  }

  saveSelection(model: string, selection: Record<string, string | null>): void {
    void this.context.workspaceState.update(SELECTION_KEY + model, Object.keys(selection).length > 0 ? selection : undefined);
  }

  exportSelection(model: string, plan: PlanFile): Promise<string | undefined> {
    return this.exportPlan(vscode.Uri.file(model), plan);
  }

  // ----- helpers ----------------------------------------------------------------------------------

  private trusted(): boolean {
    if (vscode.workspace.isTrusted) return true;
    void vscode.window.showWarningMessage(RESTRICTED_MESSAGE, 'Manage Workspace Trust').then((a) => {
      if (a) void vscode.commands.executeCommand('workbench.trust.manage');
    });
    return false;
  }

  private common(settings: Settings): Pick<WorkerRunOptions, 'limit' | 'threads' | 'levels'> {
    const o: Pick<WorkerRunOptions, 'limit' | 'threads' | 'levels'> = {};
    if (settings.samples > 0) o.limit = settings.samples;
    if (settings.threads > 0) o.threads = settings.threads;
    if (Object.keys(settings.levels).length > 0) o.levels = settings.levels;
    return o;
  }

  /**
   * The model's dataset: `<model>.dataset.json`, else the `onnxCompress.dataset` setting
   * (`synthetic` = data-free), else the user picks one (written as `<model>.dataset.json`).
   */
  /** The model's dataset without asking (its own dataset JSON, or the setting), for exports of calibrated plans. */
  private knownDataset(model: string, settings: Settings): WorkerRunOptions['data'] | undefined {
    const own = datasetFileFor(model);
    if (exists(own)) return own;
    if (settings.dataset === 'synthetic') return { format: 'synthetic' };
    if (settings.dataset) {
      const p = resolveSettingPath(settings.dataset, model);
      if (exists(p)) return p;
    }
    return undefined;
  }

  private async resolveDataset(model: string, settings: Settings): Promise<WorkerRunOptions['data'] | undefined> {
    const known = this.knownDataset(model, settings);
    if (known !== undefined) return known;
    if (settings.dataset) {
      void vscode.window.showWarningMessage(`The onnxCompress.dataset setting names '${resolveSettingPath(settings.dataset, model)}', which does not exist.`);
    }
    const written = await this.configureDataset(vscode.Uri.file(model));
    return written;
  }

  private async askDatasetChoice(model: string): Promise<DatasetChoice | undefined> {
    type Item = vscode.QuickPickItem & { kind2: DatasetChoice['kind'] };
    const pick = await vscode.window.showQuickPick<Item>(
      [
        { label: '$(json) Dataset JSON file…', description: 'a dataset description (docs/datasets.md)', kind2: 'json' },
        { label: '$(file-binary) Data files…', description: '.npy / .npz / .idx inputs, then labels', kind2: 'files' },
        { label: '$(folder) Image folder…', description: 'root/<class>/*.jpg or root/*.jpg', kind2: 'folder' },
        { label: '$(beaker) Data-free', description: 'seeded synthetic inputs, scored against the original model', kind2: 'synthetic' },
      ],
      { title: `Dataset for ${modelName(model)}`, placeHolder: `Writes ${path.basename(datasetFileFor(model))} next to the model` },
    );
    if (!pick) return undefined;
    const base = vscode.Uri.file(path.dirname(model));
    switch (pick.kind2) {
      case 'synthetic':
        return { kind: 'synthetic' };
      case 'json': {
        const f = await vscode.window.showOpenDialog({ defaultUri: base, canSelectMany: false, filters: { 'Dataset JSON': ['json'] }, openLabel: 'Use Dataset' });
        return f?.[0] ? { kind: 'json', file: f[0].fsPath } : undefined;
      }
      case 'folder': {
        const f = await vscode.window.showOpenDialog({ defaultUri: base, canSelectFiles: false, canSelectFolders: true, openLabel: 'Use Image Folder' });
        return f?.[0] ? { kind: 'folder', folder: f[0].fsPath } : undefined;
      }
      case 'files': {
        const f = await vscode.window.showOpenDialog({ defaultUri: base, canSelectMany: false, filters: { 'Arrays': ['npy', 'npz', 'idx', 'gz'] }, openLabel: 'Use as Inputs' });
        if (!f?.[0]) return undefined;
        const l = await vscode.window.showOpenDialog({ defaultUri: base, canSelectMany: false, filters: { 'Labels': ['npy', 'idx', 'gz'] }, openLabel: 'Use as Labels (Esc: none)' });
        return l?.[0] ? { kind: 'files', inputs: f[0].fsPath, labels: l[0].fsPath } : { kind: 'files', inputs: f[0].fsPath };
      }
    }
  }

  /** The dataset JSON for a choice, with paths relative to the model's folder. */
  private async datasetJson(model: string, c: DatasetChoice): Promise<Record<string, unknown> | undefined> {
    const dir = path.dirname(model);
    const rel = (p: string): string => {
      const r = path.relative(dir, p);
      return (r.startsWith('..') || path.isAbsolute(r) ? p : r).split(path.sep).join('/');
    };
    switch (c.kind) {
      case 'synthetic':
        return c.count === undefined ? { format: 'synthetic' } : { format: 'synthetic', synthetic: { count: c.count } };
      case 'folder':
        return { format: 'images', inputs: rel(c.folder) };
      case 'files': {
        const ext = c.inputs.toLowerCase();
        const format = ext.endsWith('.npz') ? 'npz' : ext.endsWith('.npy') ? 'npy' : 'idx';
        if (format === 'npz') return { format, file: rel(c.inputs), ...(c.labels ? { labels: c.labels } : {}) };
        return { format, inputs: rel(c.inputs), ...(c.labels ? { labels: rel(c.labels) } : {}) };
      }
      case 'json': {
        // Re-expressed relative to the model's folder so the copy keeps pointing at the same files.
        const raw = JSON.parse(fs.readFileSync(c.file, 'utf8')) as Record<string, unknown>;
        const src = path.dirname(c.file);
        const fix = (v: unknown): unknown => (typeof v === 'string' ? rel(path.resolve(src, v)) : v);
        const out: Record<string, unknown> = { ...raw };
        const npz = raw['format'] === 'npz';
        if (!npz) {
          if (typeof raw['inputs'] === 'string') out['inputs'] = fix(raw['inputs']);
          else if (raw['inputs'] && typeof raw['inputs'] === 'object') out['inputs'] = Object.fromEntries(Object.entries(raw['inputs'] as Record<string, unknown>).map(([k, v]) => [k, fix(v)]));
          if (raw['labels'] !== undefined) out['labels'] = fix(raw['labels']);
        }
        if (raw['file'] !== undefined) out['file'] = fix(raw['file']);
        if (typeof raw['classes'] === 'string') out['classes'] = fix(raw['classes']);
        return out;
      }
    }
  }

  private async askBudget(settings: Settings): Promise<Budget | undefined> {
    const last = this.context.globalState.get<Budget>(LAST_BUDGET);
    const lastKind = last && 'maxSize' in last ? 'size' : 'loss';
    type Item = vscode.QuickPickItem & { k: 'loss' | 'size' };
    const items: Item[] = [
      { label: 'Max accuracy loss', description: 'the smallest model that loses at most this much top-1', k: 'loss' },
      { label: 'Max size', description: 'the most accurate model of at most this size', k: 'size' },
    ];
    if (lastKind === 'size') items.reverse();
    const kind = await vscode.window.showQuickPick(items, { title: 'Compress Model: budget (1/3)', placeHolder: 'What must the compressed model respect?' });
    if (!kind) return undefined;
    if (kind.k === 'loss') {
      const v = last && 'maxLoss' in last ? last.maxLoss : settings.maxLoss;
      const text = await vscode.window.showInputBox({
        title: 'Compress Model: max accuracy loss (2/3)',
        prompt: 'Top-1 accuracy points the compressed model may lose, in percent',
        value: String(+(v * 100).toFixed(4)),
        validateInput: (s) => (parsePercent(s) === undefined ? 'A number of percent between 0 and 100, e.g. 1 or 0.5' : undefined),
      });
      const maxLoss = text === undefined ? undefined : parsePercent(text);
      if (maxLoss === undefined) return undefined;
      await this.context.globalState.update(LAST_BUDGET, { maxLoss });
      return { maxLoss };
    }
    const v = last && 'maxSize' in last ? last.maxSize : settings.maxSize;
    const text = await vscode.window.showInputBox({
      title: 'Compress Model: max size (2/3)',
      prompt: 'Largest acceptable file size, e.g. 200KB, 1.5MB or 100000 (bytes)',
      value: v > 0 ? formatBytes(v).replace(' ', '') : '',
      validateInput: (s) => (parseSize(s) === undefined ? 'A size such as 200KB, 1.5MB or a number of bytes' : undefined),
    });
    const maxSize = text === undefined ? undefined : parseSize(text);
    if (maxSize === undefined) return undefined;
    await this.context.globalState.update(LAST_BUDGET, { maxSize });
    return { maxSize };
  }

  private async askTechniques(settings: Settings): Promise<string[] | undefined> {
    const last = this.context.globalState.get<string[]>(LAST_TECHNIQUES) ?? settings.techniques;
    const picks = await vscode.window.showQuickPick(
      TECHNIQUES.map((t) => ({ label: t, description: TECHNIQUE_TEXT[t], picked: last.includes(t) })),
      { title: 'Compress Model: techniques (3/3)', canPickMany: true, placeHolder: 'Techniques the search may combine' },
    );
    if (!picks || picks.length === 0) return undefined;
    const techniques = picks.map((p) => p.label);
    await this.context.globalState.update(LAST_TECHNIQUES, techniques);
    return techniques;
  }

  private async announceCandidates(model: string, c: CandidatesFile): Promise<void> {
    const chosen = c.candidates.find((x) => x.id === c.chosen);
    const text = chosen
      ? `${modelName(model)}: ${c.candidates.length} candidates; ${chosen.id} is ${chosen.ratio.toFixed(2)}× smaller (${formatBytes(chosen.bytes)}) and loses ${formatPercent(chosen.loss)}.`
      : `${modelName(model)}: ${c.candidates.length} candidates, none within the budget.`;
    const a = await vscode.window.showInformationMessage(text, ...(chosen ? ['Export', 'Show Results'] : ['Show Results']));
    if (a === 'Export' && chosen) await this.exportCandidate(vscode.Uri.file(model), chosen.id).catch((e: unknown) => this.reportError(e, model));
    if (a === 'Show Results') ResultsPanel.show(this.context.extensionUri, this, model);
  }

  /**
   * Runs `work` as the model's one run: progress notification with cancel and percentage, the
   * panel's progress bar, the output channel. Returns null-result with `cancelled` on cancel;
   * undefined when another run of the model is active.
   */
  private async withRun<T extends SensitivityFile | CandidatesFile>(
    model: string,
    op: 'analyze' | 'compress',
    title: string,
    work: (hooks: { signal: AbortSignal; onEvent: (e: ExploreEvent) => void }) => Promise<T>,
  ): Promise<{ result: T | null; cancelled: boolean } | undefined> {
    if (this.runs.has(model)) {
      void vscode.window.showWarningMessage(`${modelName(model)} already has a run in progress; cancel it first.`);
      return undefined;
    }
    const cts = new vscode.CancellationTokenSource();
    this.runs.set(model, cts);
    const panel = ResultsPanel.show(this.context.extensionUri, this, model, true);
    let state: RunState = { running: true, op, message: 'Starting…', fraction: 0 };
    const setState = (s: RunState): void => {
      state = s;
      ResultsPanel.get(model)?.setRun(s);
    };
    setState(state);
    this.log(`${title}: ${model}`);
    try {
      return await vscode.window.withProgress(
        { location: vscode.ProgressLocation.Notification, title, cancellable: true },
        async (progress, token) => {
          const sub = token.onCancellationRequested(() => cts.cancel());
          const { signal, dispose } = toAbortSignal(cts.token);
          let reported = 0;
          let phase = '';
          const onEvent = (e: ExploreEvent): void => {
            ResultsPanel.get(model)?.onEngineEvent(e);
            switch (e.type) {
              case 'phase':
                phase = e.message || e.phase;
                this.log(`  ${phase}`);
                progress.report({ message: phase });
                setState({ ...state, message: phase });
                break;
              case 'progress': {
                const pct = e.total > 0 ? Math.min(100, (100 * e.done) / e.total) : 0;
                const message = `${Math.floor(pct)} % · ${e.message || phase}`;
                progress.report({ increment: Math.max(0, pct - reported), message });
                reported = Math.max(reported, pct);
                setState({ ...state, message, fraction: pct / 100 });
                break;
              }
              case 'cell':
                this.log(`  ${e.cell.layer} @ ${e.cell.level}: loss ${formatPercent(e.cell.loss)} [${formatPercent(e.cell.ci[0])}, ${formatPercent(e.cell.ci[1])}], ${e.cell.samples} samples${e.cell.stoppedEarly ? ' (stopped early)' : ''}`);
                break;
              case 'candidate':
                this.log(`  candidate ${e.candidate.id}: ${formatBytes(e.candidate.bytes)} (${e.candidate.ratio.toFixed(2)}×), loss ${formatPercent(e.candidate.loss)}${e.candidate.feasible ? '' : ' (over budget)'}`);
                break;
              case 'log':
                this.log(`  ${e.message}`);
                break;
            }
          };
          try {
            const result = await work({ signal, onEvent });
            return { result, cancelled: false };
          } catch (e) {
            if (cts.token.isCancellationRequested || isCancellationError(e)) return { result: null, cancelled: true };
            throw e;
          } finally {
            sub.dispose();
            dispose();
          }
        },
      );
    } catch (e) {
      this.reportError(e, model);
      throw e;
    } finally {
      this.runs.delete(model);
      cts.dispose();
      setState({ running: false, op: null, message: '', fraction: null });
      void panel;
    }
  }

  private reportError(e: unknown, model: string): void {
    const message = e instanceof Error ? e.message : String(e);
    const code = e instanceof EngineError ? ` [${e.code}]` : '';
    this.log(`Error${code} for ${model}: ${message}`);
    this.output.show(true);
    void vscode.window.showErrorMessage(`ONNX Compress: ${message}`);
  }
}

const TECHNIQUE_TEXT: Record<string, string> = {
  share: 'weight sharing: k shared values per tensor',
  prune: 'pruning: zero the smallest weights',
  quant: 'uniform quantization: 8…2 bits per channel',
  float: 'reduced floats: bf16 with fewer mantissa bits',
  lowrank: 'low rank: truncated SVD of Gemm/MatMul/Conv',
};

function checkBudget(a: CompressArgs): Budget {
  if (a.maxLoss !== undefined) {
    if (typeof a.maxLoss !== 'number' || !(a.maxLoss >= 0 && a.maxLoss <= 1)) throw new Error(`maxLoss must be a fraction in [0, 1], got ${JSON.stringify(a.maxLoss)}.`);
    return { maxLoss: a.maxLoss };
  }
  if (typeof a.maxSize !== 'number' || !(Number.isSafeInteger(a.maxSize) && a.maxSize > 0)) throw new Error(`maxSize must be a positive number of bytes, got ${JSON.stringify(a.maxSize)}.`);
  return { maxSize: a.maxSize };
}

function checkTechniques(t: unknown): string[] {
  if (!Array.isArray(t) || t.length === 0 || !t.every((x) => typeof x === 'string' && (TECHNIQUES as readonly string[]).includes(x))) {
    throw new Error(`techniques must be a non-empty list of ${TECHNIQUES.join(', ')}, got ${JSON.stringify(t)}.`);
  }
  return t as string[];
}

/** View type of the report panel. */
export const REPORT_VIEW_TYPE = 'onnxCompress.report';

/**
 * The report as a webview document: its own markup with a CSP that allows nothing but inline
 * styles and data: images (the report is self-contained; scripts are off in the panel anyway).
 */
export function reportHtml(html: string): string {
  const csp = `<meta http-equiv="Content-Security-Policy" content="default-src 'none'; style-src 'unsafe-inline'; img-src data:;">`;
  return /<head[^>]*>/i.test(html) ? html.replace(/<head[^>]*>/i, (m) => `${m}${csp}`) : `${csp}${html}`;
}

/** `"1"` / `"0.5 %"` -> 0.01 / 0.005; undefined when not a percentage in [0, 100]. */
export function parsePercent(s: string): number | undefined {
  const m = /^\s*(\d+(?:\.\d*)?|\.\d+)\s*%?\s*$/.exec(s);
  if (!m) return undefined;
  const v = Number(m[1]);
  return v >= 0 && v <= 100 ? v / 100 : undefined;
}

/** `"200KB"` / `"1.5 MiB"` / `"100000"` -> bytes (KB = KiB = 1024); undefined when unreadable. */
export function parseSize(s: string): number | undefined {
  const m = /^\s*(\d+(?:\.\d*)?|\.\d+)\s*([kmg]?i?b?)?\s*$/i.exec(s);
  if (!m) return undefined;
  const unit = (m[2] ?? '').toLowerCase()[0];
  const mult = unit === 'k' ? 1024 : unit === 'm' ? 1024 ** 2 : unit === 'g' ? 1024 ** 3 : 1;
  const v = Math.round(Number(m[1]) * mult);
  return v > 0 && Number.isSafeInteger(v) ? v : undefined;
}

/** Bytes as B / KiB / MiB. */
export function formatBytes(n: number): string {
  if (n < 1024) return `${n} B`;
  if (n < 1024 * 1024) return `${(n / 1024).toFixed(1)} KiB`;
  return `${(n / (1024 * 1024)).toFixed(2)} MiB`;
}

/** A loss fraction as percent (two decimals below 10 %). */
export function formatPercent(x: number): string {
  return `${(x * 100).toFixed(Math.abs(x) < 0.1 ? 2 : 1)} %`;
}

/** Used by the serializer guard and tests. */
export { isInsideWorkspace };
