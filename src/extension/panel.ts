/**
 * The results panel: one webview per model, showing its results folder. The host reads and
 * validates the result files, aggregates them ({@link buildPanelView}) and posts the view; the
 * webview renders and posts intents, each validated against the protocol before it is acted on.
 *
 * Lifetimes: every listener goes to `_disposables`, released in `dispose()`. Survives hide/show
 * (`retainContextWhenHidden` is off: the webview re-asks with `ready` and keeps its view state in
 * `getState`), and window reload (the serializer revives the panel from the state's model path).
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import * as vscode from 'vscode';
import { specToLayerPlan, type LayerPlan, type PlanFile } from '../engine/explore/plan';
import type { SensitivityCell } from '../engine/explore/types';
import {
  MessageHandler,
  validateFromWebviewMessage,
  type Envelope,
  type FromWebviewMessage,
  type PanelView,
  type RunState,
  type ToWebviewMessage,
} from '../protocol';
import { isInsideWorkspace } from './modelFiles';
import { buildPanelView, CANDIDATES_FILE, mergeCells, readResults, SENSITIVITY_FILE, type Results } from './results';

/** The panel's view type (also the serializer's key, declared in `activationEvents`). */
export const RESULTS_VIEW_TYPE = 'onnxCompress.results';

/** What the panel's buttons call back into (implemented by the command controller). */
export interface PanelActions {
  resultsDirFor(model: string): string;
  exportCandidate(model: string, candidateId: string): Promise<unknown>;
  startRun(model: string, op: 'analyze' | 'compress'): void;
  cancelRun(model: string): void;
  openReport(model: string, where: 'panel' | 'browser'): Promise<unknown>;
  /** Exports `plan` (the heatmap selection) as a model. */
  exportSelection(model: string, plan: PlanFile): Promise<unknown>;
  /** The user's heatmap selection of `model` as last saved (survives window reloads). */
  loadSelection(model: string): Record<string, string | null>;
  saveSelection(model: string, selection: Record<string, string | null>): void;
  /** Why runs are disabled (untrusted workspace), else null. */
  restriction(): string | null;
  log(line: string): void;
}

/** What the webview persists with `setState` and the serializer gets back. */
interface PersistedState {
  model?: unknown;
}

const IDLE: RunState = { running: false, op: null, message: '', fraction: null };

/** A results panel for one model. */
export class ResultsPanel {
  private static readonly panels = new Map<string, ResultsPanel>();
  private readonly _disposables: vscode.Disposable[] = [];
  private readonly handler: MessageHandler<ToWebviewMessage, FromWebviewMessage>;
  private results: Results;
  private readonly selection = new Map<string, string | null>();
  private extraCells: SensitivityCell[] = [];
  private run: RunState = IDLE;
  private refreshTimer: ReturnType<typeof setTimeout> | undefined;
  private lastError = '';

  /** Opens (or reveals) the panel of `model`. */
  static show(extensionUri: vscode.Uri, actions: PanelActions, model: string, preserveFocus = false): ResultsPanel {
    const existing = ResultsPanel.panels.get(model);
    if (existing) {
      // The results folder setting may have changed since the panel opened.
      const dir = actions.resultsDirFor(model);
      if (dir !== existing.results.dir) existing.results = { dir, sensitivity: null, candidates: null };
      existing.panel.reveal(undefined, preserveFocus);
      existing.refresh();
      return existing;
    }
    const panel = vscode.window.createWebviewPanel(
      RESULTS_VIEW_TYPE,
      `Compress: ${path.basename(model)}`,
      { viewColumn: vscode.ViewColumn.Active, preserveFocus },
      webviewOptions(extensionUri),
    );
    return new ResultsPanel(panel, extensionUri, actions, model);
  }

  /** The open panel of `model`, if any. */
  static get(model: string): ResultsPanel | undefined {
    return ResultsPanel.panels.get(model);
  }

  /** Every open panel (for tests and `dispose`). */
  static all(): ResultsPanel[] {
    return [...ResultsPanel.panels.values()];
  }

  /** The serializer that restores panels after a window reload. */
  static serializer(extensionUri: vscode.Uri, actions: PanelActions): vscode.WebviewPanelSerializer<PersistedState> {
    return {
      async deserializeWebviewPanel(panel, state) {
        const model = state?.model;
        if (typeof model !== 'string' || !model.toLowerCase().endsWith('.onnx') || !isInsideWorkspace(model)) {
          panel.dispose();
          return;
        }
        panel.webview.options = webviewOptions(extensionUri);
        new ResultsPanel(panel, extensionUri, actions, model);
      },
    };
  }

  private constructor(
    readonly panel: vscode.WebviewPanel,
    private readonly extensionUri: vscode.Uri,
    private readonly actions: PanelActions,
    readonly model: string,
  ) {
    ResultsPanel.panels.set(model, this);
    this.results = { dir: actions.resultsDirFor(model), sensitivity: null, candidates: null };
    for (const [layer, level] of Object.entries(actions.loadSelection(model))) this.selection.set(layer, level);
    this.handler = new MessageHandler<ToWebviewMessage, FromWebviewMessage>(
      (m: Envelope<ToWebviewMessage>) => void this.panel.webview.postMessage(m),
      (body) => this.onMessage(body),
    );
    panel.webview.html = this.html();
    panel.iconPath = vscode.Uri.joinPath(extensionUri, 'media', 'icon.svg');
    this._disposables.push(
      panel.onDidDispose(() => this.dispose()),
      panel.webview.onDidReceiveMessage((m: unknown) => void this.handler.handleMessage(m)),
      this.watchResults(),
      vscode.workspace.onDidGrantWorkspaceTrust(() => this.setRun(this.run)),
    );
    this.reload();
  }

  /** Results folder shown. */
  get resultsDir(): string {
    return this.results.dir;
  }

  /** The view as last computed (for tests: what the webview renders). */
  get view(): PanelView | null {
    return buildPanelView(this.resultsWithExtras(), this.model, this.selection);
  }

  /** Streams an engine event into the panel (cells arrive before the file is rewritten). */
  onEngineEvent(event: { type: string; cell?: SensitivityCell }): void {
    if (event.type === 'cell' && event.cell) this.extraCells.push(event.cell);
    if (event.type === 'cell' || event.type === 'candidate' || event.type === 'phase') this.scheduleRefresh();
  }

  /** Shows a run's state (progress bar, cancel button). */
  setRun(run: RunState): void {
    this.run = run;
    this.handler.sendEvent({ type: 'didChangeRun', run: this.runState() });
    if (!run.running) {
      this.extraCells = [];
      this.refresh();
    }
  }

  /** Re-reads the result files and posts the view. */
  refresh(): void {
    this.reload();
    const view = this.view;
    if (view) this.handler.sendEvent({ type: 'didChangeResults', view });
  }

  /** Releases the panel and its listeners. */
  dispose(): void {
    if (ResultsPanel.panels.get(this.model) === this) ResultsPanel.panels.delete(this.model);
    if (this.refreshTimer) clearTimeout(this.refreshTimer);
    this.handler.dispose();
    this.panel.dispose();
    while (this._disposables.length) this._disposables.pop()?.dispose();
  }

  private resultsWithExtras(): Results {
    const s = this.results.sensitivity;
    return s ? { ...this.results, sensitivity: mergeCells(s, this.extraCells) } : this.results;
  }

  private reload(): void {
    try {
      this.results = readResults(this.results.dir, this.results);
      this.lastError = '';
    } catch (e) {
      const msg = e instanceof Error ? e.message : String(e);
      if (msg !== this.lastError) {
        this.lastError = msg;
        this.actions.log(msg);
        void vscode.window.showWarningMessage(msg);
      }
    }
  }

  private scheduleRefresh(): void {
    if (this.refreshTimer) return;
    this.refreshTimer = setTimeout(() => {
      this.refreshTimer = undefined;
      this.refresh();
    }, 250);
  }

  private watchResults(): vscode.Disposable {
    // Picks up runs of the CLI (or another window) on the same results folder.
    const w = vscode.workspace.createFileSystemWatcher(
      new vscode.RelativePattern(vscode.Uri.file(this.results.dir), `{${SENSITIVITY_FILE},${CANDIDATES_FILE}}`),
    );
    const on = (): void => this.scheduleRefresh();
    w.onDidChange(on);
    w.onDidCreate(on);
    w.onDidDelete(on);
    return w;
  }

  private async onMessage(body: unknown): Promise<ToWebviewMessage | undefined> {
    let msg: FromWebviewMessage;
    try {
      msg = validateFromWebviewMessage(body);
    } catch (e) {
      this.actions.log(`Ignored a malformed message from the results panel: ${e instanceof Error ? e.message : String(e)}`);
      throw e;
    }
    switch (msg.type) {
      case 'ready':
        this.reload();
        return { type: 'readyResponse', view: this.view, run: this.runState() };
      case 'selectLevel': {
        const known = this.results.sensitivity;
        if (!known?.layers.some((l) => l.name === msg.layer)) throw new Error(`unknown layer '${msg.layer}'.`);
        if (msg.level !== null && !known.levels.some((l) => l.id === msg.level)) throw new Error(`unknown level '${msg.level}'.`);
        this.selection.set(msg.layer, msg.level);
        this.saveSelection();
        this.refresh();
        return undefined;
      }
      case 'selectCandidate': {
        const c = this.results.candidates?.candidates.find((x) => x.id === msg.candidateId);
        if (!c) throw new Error(`unknown candidate '${msg.candidateId}'.`);
        this.selection.clear();
        const view = buildPanelView(this.resultsWithExtras(), this.model, new Map());
        // Levels of the candidate: computed against an empty selection with this candidate as chosen.
        const asChosen = buildPanelView(
          { ...this.resultsWithExtras(), candidates: this.results.candidates ? { ...this.results.candidates, chosen: c.id } : null },
          this.model,
          new Map(),
        );
        for (const l of asChosen?.layers ?? view?.layers ?? []) this.selection.set(l.name, l.selected);
        this.saveSelection();
        this.refresh();
        return undefined;
      }
      case 'exportCandidate':
        return exported(await this.actions.exportCandidate(this.model, this.knownCandidate(msg.candidateId)));
      case 'exportSelection':
        return exported(await this.actions.exportSelection(this.model, this.selectionPlan()));
      case 'showPlan': {
        const c = this.results.candidates?.candidates.find((x) => x.id === this.knownCandidate(msg.candidateId));
        const doc = await vscode.workspace.openTextDocument({ language: 'json', content: `${JSON.stringify(c?.plan ?? {}, null, 2)}\n` });
        await vscode.window.showTextDocument(doc, { viewColumn: vscode.ViewColumn.Beside, preview: true });
        return undefined;
      }
      case 'startRun':
        this.actions.startRun(this.model, msg.op);
        return undefined;
      case 'cancelRun':
        this.actions.cancelRun(this.model);
        return undefined;
      case 'openReport':
        await this.actions.openReport(this.model, msg.where);
        return undefined;
      default: {
        const never: never = msg;
        throw new Error(`unhandled message ${JSON.stringify(never)}`);
      }
    }
  }

  /**
   * The heatmap selection as a plan: each layer at its selected level (the user's click, else the
   * chosen candidate's level), the others left alone.
   * @throws when no layer has a level selected.
   */
  selectionPlan(): PlanFile {
    const levels = new Map((this.results.sensitivity?.levels ?? []).map((l) => [l.id, l]));
    const layers: Record<string, LayerPlan> = {};
    for (const l of this.view?.layers ?? []) {
      const level = l.selected === null ? undefined : levels.get(l.selected);
      if (level) layers[l.name] = specToLayerPlan(level.spec);
    }
    if (Object.keys(layers).length === 0) throw new Error('Nothing selected: click a heatmap cell to choose a level for a layer first.');
    // The cells were measured with corrected biases: export with them, and with several layers
    // compressed, calibrate them sequentially (each on the inputs the compressed layers before it give).
    return this.results.sensitivity?.biasCorrection ? { layers, biasCorrection: true, sequentialCalibration: true } : { layers };
  }

  private runState(): RunState {
    return { ...this.run, restricted: this.actions.restriction() };
  }

  private saveSelection(): void {
    this.actions.saveSelection(this.model, Object.fromEntries(this.selection));
  }

  private knownCandidate(id: string): string {
    if (!this.results.candidates?.candidates.some((c) => c.id === id)) throw new Error(`unknown candidate '${id}'.`);
    return id;
  }

  private html(): string {
    const webview = this.panel.webview;
    const nonce = makeNonce();
    const dist = vscode.Uri.joinPath(this.extensionUri, 'dist');
    const script = webview.asWebviewUri(vscode.Uri.joinPath(dist, 'webview.js'));
    const cssFile = vscode.Uri.joinPath(dist, 'webview.css');
    const css = fs.existsSync(cssFile.fsPath) ? `<link rel="stylesheet" href="${webview.asWebviewUri(cssFile).toString()}">` : '';
    const csp = [
      "default-src 'none'",
      `style-src ${webview.cspSource}`,
      `font-src ${webview.cspSource}`,
      `img-src ${webview.cspSource} data:`,
      `script-src 'nonce-${nonce}'`,
    ].join('; ');
    // The model path is the only state the page starts with; it goes through JSON + a data attribute, never markup.
    const modelAttr = escapeAttr(this.model);
    return `<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="UTF-8">
<meta http-equiv="Content-Security-Policy" content="${csp}">
<meta name="viewport" content="width=device-width, initial-scale=1.0">
${css}
<title>ONNX Compress results</title>
</head>
<body data-model="${modelAttr}">
<div id="app" role="main"><p class="loading">Loading results…</p></div>
<script nonce="${nonce}" src="${script.toString()}"></script>
</body>
</html>`;
  }
}

/** The reply to an export request: the written file's name, or `cancelled` (the user said no to overwriting). */
function exported(file: unknown): ToWebviewMessage {
  return { type: 'ok', detail: typeof file === 'string' ? `saved ${path.basename(file)}` : 'cancelled' };
}

function webviewOptions(extensionUri: vscode.Uri): vscode.WebviewPanelOptions & vscode.WebviewOptions {
  return {
    enableScripts: true,
    localResourceRoots: [vscode.Uri.joinPath(extensionUri, 'dist')],
  };
}

function makeNonce(): string {
  const chars = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789';
  const bytes = new Uint8Array(32);
  globalThis.crypto.getRandomValues(bytes);
  return Array.from(bytes, (b) => chars[b % chars.length]).join('');
}

function escapeAttr(s: string): string {
  return s.replace(/&/g, '&amp;').replace(/"/g, '&quot;').replace(/</g, '&lt;').replace(/>/g, '&gt;');
}
