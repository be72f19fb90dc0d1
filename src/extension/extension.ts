// VS Code front end. For now one command, `onnxCompress.showModelSummary`, which proves the whole chain
// (explorer menu -> command -> onnxruntime-node native addon in the extension host -> output + notification).
// The engine's real `info` replaces `summarizeModel` later.
import * as vscode from 'vscode';
import type { InferenceSession } from 'onnxruntime-node';

/** Name of the output channel the extension writes to. */
export const OUTPUT_CHANNEL_NAME = 'ONNX Compress';

/** Command ids contributed in `package.json`. */
export const Commands = {
  showModelSummary: 'onnxCompress.showModelSummary',
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
}

/** Activation: creates the output channel and registers the commands; everything goes to `subscriptions`. */
export function activate(context: vscode.ExtensionContext): ExtensionApi {
  const output = vscode.window.createOutputChannel(OUTPUT_CHANNEL_NAME);
  context.subscriptions.push(
    output,
    vscode.commands.registerCommand(Commands.showModelSummary, (uri?: unknown) =>
      showModelSummary(output, uri),
    ),
  );
  return {
    version: String((context.extension.packageJSON as { version?: unknown }).version),
    extensionPath: context.extensionPath,
  };
}

/** Nothing to do: all resources are in `context.subscriptions`. */
export function deactivate(): void {}

async function showModelSummary(
  output: vscode.OutputChannel,
  arg: unknown,
): Promise<ModelSummary | undefined> {
  if (!vscode.workspace.isTrusted) {
    void vscode.window.showWarningMessage(
      'ONNX Compress runs native inference code on model files; trust this workspace to use it.',
    );
    return undefined;
  }
  const uri = await pickModel(arg);
  if (!uri) return undefined;
  const name = uri.path.slice(uri.path.lastIndexOf('/') + 1);
  try {
    const summary = await summarizeModel(uri);
    output.appendLine(`Model ${uri.fsPath || uri.toString()}`);
    output.appendLine(`  size:    ${summary.sizeBytes} bytes`);
    output.appendLine(`  inputs:  ${summary.inputNames.join(', ')}`);
    output.appendLine(`  outputs: ${summary.outputNames.join(', ')}`);
    output.show(true);
    void vscode.window.showInformationMessage(
      `${name}: ${formatBytes(summary.sizeBytes)}, inputs ${summary.inputNames.join(', ')}; ` +
        `outputs ${summary.outputNames.join(', ')}`,
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

function formatBytes(n: number): string {
  if (n < 1024) return `${n} B`;
  if (n < 1024 * 1024) return `${(n / 1024).toFixed(1)} KiB`;
  return `${(n / (1024 * 1024)).toFixed(1)} MiB`;
}
