// In-host tests of what the results panel offers beyond the compress commands: exporting the heatmap selection
// (a plan) through the engine worker, the .onnxc archive next to an export, report.html in a webview with a
// strict CSP, the per-technique level settings, and the selection surviving a new panel (window reload).
// They run after compress.vscode.test.ts (files run in name order) and reuse its lenet5.compress/ results.
import * as assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import * as vscode from 'vscode';
import type { CandidatesFile, SensitivityFile } from '../../../src/engine/explore/types';
import type { AnalyzeResult } from '../../../src/extension/controller';
import { reportHtml } from '../../../src/extension/controller';

/** First bytes of every `.onnxc` archive (docs/archive.md). */
const ARCHIVE_MAGIC_LENGTH = 8;

function workspaceDir(): string {
  const folder = vscode.workspace.workspaceFolders?.[0];
  assert.ok(folder, 'the test run must open a workspace folder');
  return folder.uri.fsPath;
}


/** lenet5.onnx and its candidates.json from the compress test; skips when that has not run. */
function compressed(ctx: Mocha.Context): { model: string; cf: CandidatesFile } {
  const model = path.join(workspaceDir(), 'lenet5.onnx');
  const file = path.join(workspaceDir(), 'lenet5.compress', 'candidates.json');
  if (!fs.existsSync(file)) ctx.skip();
  return { model, cf: JSON.parse(fs.readFileSync(file, 'utf8')) as CandidatesFile };
}

suite('panel actions', () => {
  test('exportPlan applies a plan in the worker: the chosen candidate\'s plan gives its exact size, plus an archive', async function () {
    this.timeout(120_000);
    const { model, cf } = compressed(this);
    const chosen = cf.candidates.find((c) => c.id === cf.chosen) ?? cf.candidates[0]!;
    const out = path.join(workspaceDir(), 'exports', 'lenet5.plan-test.onnx');
    const archive = out.replace(/\.onnx$/, '.onnxc');
    fs.rmSync(archive, { force: true });
    const written = await vscode.commands.executeCommand<string>('onnxCompress.exportPlan', vscode.Uri.file(model), chosen.plan, { outPath: out, overwrite: true, noReveal: true, archive: true });
    assert.equal(written, out);
    assert.equal(fs.statSync(out).size, chosen.bytes, 'the plan export differs in size from the candidate');
    assert.ok(fs.existsSync(archive), `no archive ${archive}`);
    const a = fs.readFileSync(archive);
    assert.ok(a.length > ARCHIVE_MAGIC_LENGTH && a.length < fs.statSync(out).size, `archive of ${a.length} bytes for a ${fs.statSync(out).size}-byte model`);
    // The same bytes as the candidate's own export: one pipeline, whichever way the plan arrives.
    const viaCandidate = path.join(workspaceDir(), 'exports', 'lenet5.candidate-test.onnx');
    await vscode.commands.executeCommand<string>('onnxCompress.exportCandidate', vscode.Uri.file(model), chosen.id, { outPath: viaCandidate, overwrite: true, noReveal: true, archive: false });
    assert.ok(fs.readFileSync(viaCandidate).equals(fs.readFileSync(out)), 'exportPlan and exportCandidate wrote different bytes');
    assert.ok(!fs.existsSync(viaCandidate.replace(/\.onnx$/, '.onnxc')), 'archive written although archive: false');
  });

  test('exportPlan refuses a plan that names an unknown layer, and writes nothing', async function () {
    const { model } = compressed(this);
    const out = path.join(workspaceDir(), 'exports', 'lenet5.bad-plan.onnx');
    fs.rmSync(out, { force: true });
    await assert.rejects(
      Promise.resolve(vscode.commands.executeCommand('onnxCompress.exportPlan', vscode.Uri.file(model), { layers: { 'no.such.weight': { technique: 'quant', bits: 4 } } }, { outPath: out, overwrite: true, noReveal: true })),
      /no\.such\.weight/,
    );
    assert.ok(!fs.existsSync(out));
  });

  test('openReport shows report.html in a webview tab; the document gets a CSP that allows no script', async function () {
    const { model, cf } = compressed(this);
    assert.equal(typeof cf.outputs.html, 'string', 'compress wrote no report.html');
    const file = await vscode.commands.executeCommand<string>('onnxCompress.openReport', vscode.Uri.file(model));
    assert.equal(file, path.join(workspaceDir(), 'lenet5.compress', cf.outputs.html!));
    const reportTabs = (): vscode.Tab[] => vscode.window.tabGroups.all.flatMap((g) => g.tabs).filter((t) => t.label === 'Report: lenet5.onnx');
    // The tab model follows the renderer a moment later.
    for (let i = 0; i < 50 && reportTabs().length === 0; i++) await new Promise((r) => setTimeout(r, 100));
    const tabs = reportTabs();
    assert.equal(tabs.length, 1, `expected one report tab, have ${vscode.window.tabGroups.all.flatMap((g) => g.tabs).map((t) => t.label).join(', ')}`);
    assert.ok(tabs[0]!.input instanceof vscode.TabInputWebview && tabs[0]!.input.viewType.endsWith('onnxCompress.report'), String(tabs[0]!.input));
    // Opening again reuses the tab.
    await vscode.commands.executeCommand('onnxCompress.openReport', vscode.Uri.file(model));
    assert.equal(reportTabs().length, 1);
    const html = reportHtml(fs.readFileSync(file!, 'utf8'));
    const csp = /<meta http-equiv="Content-Security-Policy" content="([^"]+)">/.exec(html)?.[1];
    assert.equal(csp, "default-src 'none'; style-src 'unsafe-inline'; img-src data:;");
    assert.ok(html.indexOf(csp!) < html.search(/<\/head>/i), 'the CSP must come before the body');
    await vscode.commands.executeCommand('workbench.action.closeActiveEditor');
  });

  test('onnxCompress.levels.<family> sets the heatmap columns (invalid values ignored)', async function () {
    this.timeout(120_000);
    const { model } = compressed(this);
    const config = vscode.workspace.getConfiguration('onnxCompress');
    await config.update('resultsFolder', 'levels-test', vscode.ConfigurationTarget.Workspace);
    await config.update('techniques', ['quant', 'share'], vscode.ConfigurationTarget.Workspace);
    await config.update('levels.quant', [8, 4, 99, 4], vscode.ConfigurationTarget.Workspace);
    await config.update('levels.share', [16], vscode.ConfigurationTarget.Workspace);
    try {
      fs.rmSync(path.join(workspaceDir(), 'levels-test'), { recursive: true, force: true });
      const r = await vscode.commands.executeCommand<AnalyzeResult>('onnxCompress.analyzeSensitivity', vscode.Uri.file(model));
      assert.equal(r.cancelled, false);
      const s = JSON.parse(fs.readFileSync(r.file, 'utf8')) as SensitivityFile;
      assert.deepEqual(s.levels.map((l) => l.id), ['share:k=16', 'quant:8', 'quant:4']);
      assert.equal(s.cells.length, s.layers.length * 3 - s.layers.reduce((n, l) => n + Object.keys(l.unsupported ?? {}).length, 0));
    } finally {
      for (const k of ['resultsFolder', 'techniques', 'levels.quant', 'levels.share']) await config.update(k, undefined, vscode.ConfigurationTarget.Workspace);
    }
  });
});
