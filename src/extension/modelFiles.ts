/**
 * Where a model's companion files live, shared with the CLI so each reads the other's results:
 * - `<model>.compress/` (results: `sensitivity.json`, `candidates.json`, reports), or
 *   `<resultsFolder>/<model>.compress/` when the setting is set;
 * - `<model>.dataset.json` (the dataset JSON of `docs/datasets.md`) next to the model;
 * where `<model>` is the model's path without `.onnx`.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import * as vscode from 'vscode';
import type { Settings } from './settings';

/** The model's path without the `.onnx` extension. */
export function modelStem(modelPath: string): string {
  return modelPath.replace(/\.onnx$/i, '');
}

/** The model's file name. */
export function modelName(modelPath: string): string {
  return path.basename(modelPath);
}

/** Resolves a setting's path: absolute as is, relative against the model's workspace folder (else its folder). */
export function resolveSettingPath(p: string, model: string): string {
  if (path.isAbsolute(p)) return p;
  const folder = vscode.workspace.getWorkspaceFolder(vscode.Uri.file(model));
  return path.resolve(folder ? folder.uri.fsPath : path.dirname(model), p);
}

/** The results folder of `model` (absolute). */
export function resultsDirFor(model: string, settings: Settings): string {
  if (!settings.resultsFolder) return `${modelStem(model)}.compress`;
  return path.join(resolveSettingPath(settings.resultsFolder, model), `${path.basename(modelStem(model))}.compress`);
}

/** `<model>.dataset.json`. */
export function datasetFileFor(model: string): string {
  return `${modelStem(model)}.dataset.json`;
}

/** Where an exported candidate goes by default: `<model>.<id>.onnx` next to the model or in the export folder. */
export function exportPathFor(model: string, candidateId: string, settings: Settings): string {
  const dir = settings.exportFolder ? resolveSettingPath(settings.exportFolder, model) : path.dirname(model);
  return path.join(dir, `${path.basename(modelStem(model))}.${candidateId}.onnx`);
}

/**
 * True when `p` is inside one of the workspace folders (or equal to one). Result files are
 * untrusted content: paths read from them must pass this before they are opened or written.
 */
export function isInsideWorkspace(p: string): boolean {
  const abs = path.resolve(p);
  return (vscode.workspace.workspaceFolders ?? []).some((f) => isInside(abs, f.uri.fsPath));
}

/** True when `child` equals `parent` or lies below it (no `..` escape). */
export function isInside(child: string, parent: string): boolean {
  const rel = path.relative(path.resolve(parent), path.resolve(child));
  return rel === '' || (!rel.startsWith('..') && !path.isAbsolute(rel));
}

/**
 * The model a command acts on: the URI it was invoked on (explorer / editor title), else the active
 * editor's or tab's `.onnx`, else a file dialog. Only `file:` URIs: the engine reads local files.
 */
export async function pickModel(arg: unknown, openLabel: string): Promise<vscode.Uri | undefined> {
  if (arg instanceof vscode.Uri) return arg;
  if (typeof arg === 'string' && arg !== '') return vscode.Uri.file(arg);
  const active = vscode.window.activeTextEditor?.document.uri;
  if (active?.path.toLowerCase().endsWith('.onnx')) return active;
  const tab = vscode.window.tabGroups.activeTabGroup.activeTab?.input;
  if (tab && typeof tab === 'object' && 'uri' in tab && tab.uri instanceof vscode.Uri && tab.uri.path.toLowerCase().endsWith('.onnx')) return tab.uri;
  const picked = await vscode.window.showOpenDialog({ canSelectMany: false, filters: { 'ONNX models': ['onnx'] }, openLabel });
  return picked?.[0];
}

/** True when `file` exists. */
export function exists(file: string): boolean {
  return fs.existsSync(file);
}
