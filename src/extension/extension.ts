// VS Code front end: commands (controller.ts), the engine worker (engineRunner.ts), the results panel (panel.ts).
// `onnxCompress.showModelSummary` loads the model in onnxruntime-node (proving the native addon works in this
// extension host) and prints the engine's `info` view (inputs, outputs, layers, sizes) to the output channel.
import * as fs from 'node:fs';
import * as vscode from 'vscode';
import type { InferenceSession } from 'onnxruntime-node';
import { loadModel, modelInfo, type ModelInfo } from '../engine/onnx';
import { Controller } from './controller';
import { EngineRunner } from './engineRunner';
import { RESULTS_VIEW_TYPE, ResultsPanel } from './panel';

/** Name of the output channel the extension writes to. */
export const OUTPUT_CHANNEL_NAME = 'ONNX Compress';

/** Command ids contributed in `package.json`. */
export const Commands = {
  showModelSummary: 'onnxCompress.showModelSummary',
  analyzeSensitivity: 'onnxCompress.analyzeSensitivity',
  compress: 'onnxCompress.compress',
  openResults: 'onnxCompress.openResults',
  exportCandidate: 'onnxCompress.exportCandidate',
  configureDataset: 'onnxCompress.configureDataset',
  openReport: 'onnxCompress.openReport',
  exportPlan: 'onnxCompress.exportPlan',
} as const;

/** What `onnxCompress.showModelSummary` found out about a model; also the command's return value. */
export interface ModelSummary {
  /** The model file, as a URI string. */
  uri: string;
  /** File size in bytes. */
  sizeBytes: number;
  /** Graph input names, in the order onnxruntime reports them. */
  inputNames: readonly string[];
  /** Graph output names, in the order onnxruntime reports them. */
  outputNames: readonly string[];
}

/**
 * The object `activate()` returns, readable by tests through
 * `vscode.extensions.getExtension('onnx-compress.onnx-compress').exports`.
 */
export interface ExtensionApi {
  /** `version` from the extension's `package.json`. */
  readonly version: string;
  /** Absolute folder the extension runs from (the dev folder or the installed `.vsix`). */
  readonly extensionPath: string;
  /**
   * The open results panels: model path and the view the panel renders (for tests: the same data
   * the webview gets, so in-host tests check the heatmap rows without driving the UI).
   */
  panels(): { model: string; view: import('../protocol').PanelView | null }[];
  /** Cancels the model's running analysis or search, as the panel's Cancel button does. */
  cancelRun(model: string): void;
}

/** Activation: creates the output channel and registers the commands; everything goes to `subscriptions`. */
export function activate(context: vscode.ExtensionContext): ExtensionApi {
  const output = vscode.window.createOutputChannel(OUTPUT_CHANNEL_NAME);
  const engine = new EngineRunner(context.extensionPath);
  const controller = new Controller(context, output, engine);
  context.subscriptions.push(
    output,
    { dispose: () => controller.dispose() },
    { dispose: () => engine.dispose() },
    { dispose: () => ResultsPanel.all().forEach((p) => p.dispose()) },
    vscode.commands.registerCommand(Commands.showModelSummary, (uri?: unknown) => showModelSummary(output, uri)),
    vscode.commands.registerCommand(Commands.analyzeSensitivity, (uri?: unknown) => controller.analyzeSensitivity(uri)),
    vscode.commands.registerCommand(Commands.compress, (uri?: unknown, args?: unknown) =>
      controller.compress(uri, isObject(args) ? args : undefined),
    ),
    vscode.commands.registerCommand(Commands.openResults, (uri?: unknown) => controller.openResults(uri)),
    vscode.commands.registerCommand(Commands.exportCandidate, (uri?: unknown, id?: unknown, args?: unknown) =>
      controller.exportCandidate(uri, id, isObject(args) ? args : undefined),
    ),
    vscode.commands.registerCommand(Commands.openReport, (uri?: unknown, where?: unknown) =>
      controller.openReport(uri, where === 'browser' ? 'browser' : 'panel'),
    ),
    vscode.commands.registerCommand(Commands.exportPlan, (uri?: unknown, plan?: unknown, args?: unknown) =>
      controller.exportPlan(uri, plan, isObject(args) ? args : undefined),
    ),
    vscode.commands.registerCommand(Commands.configureDataset, (uri?: unknown, choice?: unknown, overwrite?: unknown) =>
      controller.configureDataset(uri, isObject(choice) ? (choice as never) : undefined, overwrite === true),
    ),
    vscode.window.registerWebviewPanelSerializer(RESULTS_VIEW_TYPE, ResultsPanel.serializer(context.extensionUri, controller)),
  );
  return {
    version: String((context.extension.packageJSON as { version?: unknown }).version),
    extensionPath: context.extensionPath,
    panels: () => ResultsPanel.all().map((p) => ({ model: p.model, view: p.view })),
    cancelRun: (model: string) => controller.cancelRun(model),
  };
}

function isObject(v: unknown): v is Record<string, never> {
  return typeof v === 'object' && v !== null && !Array.isArray(v) && !(v instanceof vscode.Uri);
}

/** Nothing to do: all resources are in `context.subscriptions`. */
export function deactivate(): void {}

async function showModelSummary(
  output: vscode.OutputChannel,
  arg: unknown,
): Promise<ModelSummary | undefined> {
  const uri = await pickModel(arg);
  if (!uri) return undefined;
  const name = uri.path.slice(uri.path.lastIndexOf('/') + 1);
  // Restricted Mode: no native code on workspace files. The engine's own reader (TypeScript,
  // bounds-checked, external data confined to the model's folder) still shows what the model is.
  const trusted = vscode.workspace.isTrusted;
  if (!trusted && uri.scheme !== 'file') {
    void vscode.window.showWarningMessage('ONNX Compress reads only local files in Restricted Mode; trust this workspace to summarize this model.');
    return undefined;
  }
  try {
    const summary = trusted ? await summarizeModel(uri) : await summarizeWithoutRuntime(uri);
    output.appendLine(`Model ${uri.fsPath || uri.toString()}`);
    if (uri.scheme === 'file') {
      const model = await loadModel(uri.fsPath);
      const external = model.externalFiles.reduce((s, f) => s + fs.statSync(f).size, 0);
      for (const line of formatInfo(modelInfo(model, summary.sizeBytes + external))) output.appendLine(`  ${line}`);
    }
    // The short summary last: the channel shows its end.
    output.appendLine(`  size:    ${summary.sizeBytes} bytes`);
    output.appendLine(`  inputs:  ${summary.inputNames.join(', ')}`);
    output.appendLine(`  outputs: ${summary.outputNames.join(', ')}`);
    output.show(true);
    void vscode.window.showInformationMessage(
      `${name}: ${formatBytes(summary.sizeBytes)}, inputs ${summary.inputNames.join(', ')}; ` +
        `outputs ${summary.outputNames.join(', ')}` +
        (trusted ? '' : ' (read without onnxruntime: Restricted Mode)'),
    );
    return summary;
  } catch (e: unknown) {
    const message = e instanceof Error ? e.message : String(e);
    output.appendLine(`Model ${uri.toString()}: failed: ${message}`);
    output.show(true);
    void vscode.window.showErrorMessage(`ONNX Compress could not read '${name}': ${message}`);
    throw e;
  }
}

/** The model the command acts on: the explorer's URI, else the active editor's `.onnx`, else a file dialog. */
async function pickModel(arg: unknown): Promise<vscode.Uri | undefined> {
  if (arg instanceof vscode.Uri) return arg;
  if (typeof arg === 'string' && arg !== '') return vscode.Uri.file(arg);
  const active = vscode.window.activeTextEditor?.document.uri;
  if (active?.path.endsWith('.onnx')) return active;
  const picked = await vscode.window.showOpenDialog({
    canSelectMany: false,
    filters: { 'ONNX models': ['onnx'] },
    openLabel: 'Show Model Summary',
  });
  return picked?.[0];
}

async function summarizeModel(uri: vscode.Uri): Promise<ModelSummary> {
  const stat = await vscode.workspace.fs.stat(uri);
  // Loaded on first use, so activation stays cheap and a broken native binary surfaces as a command error.
  const ort = await import('onnxruntime-node');
  // onnxruntime reads local files itself; other schemes go through VS Code's file system.
  const session: InferenceSession =
    uri.scheme === 'file'
      ? await ort.InferenceSession.create(uri.fsPath)
      : await ort.InferenceSession.create(await vscode.workspace.fs.readFile(uri));
  try {
    return {
      uri: uri.toString(),
      sizeBytes: stat.size,
      inputNames: [...session.inputNames],
      outputNames: [...session.outputNames],
    };
  } finally {
    await session.release();
  }
}

/** The summary from the engine's model reader alone (no onnxruntime): graph inputs that are not initializers, and outputs. */
async function summarizeWithoutRuntime(uri: vscode.Uri): Promise<ModelSummary> {
  const stat = await vscode.workspace.fs.stat(uri);
  const info = modelInfo(await loadModel(uri.fsPath), stat.size);
  return { uri: uri.toString(), sizeBytes: stat.size, inputNames: info.inputs.map((v) => v.name), outputNames: info.outputs.map((v) => v.name) };
}

/** The `info` view as lines: inputs and outputs with types, then one line per weight. */
function formatInfo(info: ModelInfo): string[] {
  const shape = (s: Array<number | string | null> | null): string => (s ? `[${s.map((d) => d ?? '?').join(', ')}]` : '?');
  const lines = [
    `file:    ${formatBytes(info.fileBytes)}, IR ${info.irVersion}, ${info.nodes} nodes (${Object.entries(info.ops).map(([k, v]) => `${k} ${v}`).join(', ')})`,
    ...info.inputs.map((v) => `input   ${v.name}: ${v.dtype} ${shape(v.shape)}`),
    ...info.outputs.map((v) => `output  ${v.name}: ${v.dtype} ${shape(v.shape)}`),
    'layers:',
  ];
  for (const w of info.weights) {
    lines.push(`  ${w.name.padEnd(28)} ${w.op.padEnd(10)} [${w.shape.join('×')}]`.padEnd(60) + ` ${String(w.params).padStart(10)} params ${formatBytes(w.bytes).padStart(10)}  ${w.compressible ? 'compressible' : `kept: ${w.reason ?? ''}`}`);
  }
  lines.push(`weights: ${info.totalParams} params, ${formatBytes(info.totalWeightBytes)}; compressible ${info.compressibleParams} params, ${formatBytes(info.compressibleBytes)}`);
  return lines;
}

function formatBytes(n: number): string {
  if (n < 1024) return `${n} B`;
  if (n < 1024 * 1024) return `${(n / 1024).toFixed(1)} KiB`;
  return `${(n / (1024 * 1024)).toFixed(1)} MiB`;
}
