// Phase 2: UI tests in the real workbench (headless Chromium), as a user would click. Each test gets the page
// after the workbench has loaded; a failing test leaves a `<name>-failure.png` next to the screenshots.
import fs from 'node:fs';
import { createRequire } from 'node:module';
import path from 'node:path';
import { mirrorExtHostConsole, workbenchUrl } from './browser.mjs';

/**
 * @typedef {{ page: import('playwright-core').Page, outDir: string, folder: string, model: { name: string, inputNames: string[],
 *   outputNames: string[] }, log: (...a: unknown[]) => void }} UiContext
 * @typedef {{ name: string, phase?: 'untrusted', run: (ctx: UiContext) => Promise<void> }} UiTest
 */

/** @param {string} s */
const escapeRe = (s) => s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');

/**
 * Right-clicks `name` in the explorer and runs the context-menu item `label`. Remote extensions' menu items appear
 * only once the extension host has registered them: reopen the menu until the item is there.
 * @param {import('playwright-core').Page} page @param {string} name @param {string} label @param {UiContext['log']} log
 */
async function explorerMenu(page, name, label, log) {
  const explorer = page.locator('.explorer-folders-view');
  if (!(await explorer.isVisible())) await page.locator('.activitybar [aria-label^="Explorer"]').first().click();
  const row = explorer.locator('.monaco-list-row').filter({
    has: page.locator('.label-name', { hasText: new RegExp(`^${escapeRe(name)}$`) }),
  });
  await row.waitFor({ timeout: 30_000 });
  const item = page.locator('.monaco-menu .action-item .action-label', { hasText: new RegExp(`^${escapeRe(label)}$`) });
  for (let attempt = 1; ; attempt++) {
    await row.click({ button: 'right' });
    await page.locator('.monaco-menu').first().waitFor({ timeout: 10_000 });
    if (await item.waitFor({ timeout: 2_000 }).then(() => true, () => false)) break;
    if (attempt >= 15) throw new Error(`the explorer context menu never showed "${label}"`);
    await page.keyboard.press('Escape');
    await new Promise((r) => setTimeout(r, 1_000));
  }
  log(`context menu shows "${label}"`);
  await item.click();
  const menu = page.locator('.monaco-menu').first();
  if (!(await menu.waitFor({ state: 'hidden', timeout: 2_000 }).then(() => true, () => false))) {
    await item.hover();
    await page.keyboard.press('Enter');
    await menu.waitFor({ state: 'hidden', timeout: 5_000 });
  }
}

/**
 * The results panel's document: the webview is an iframe (`iframe.webview`) holding the content iframe
 * (`#active-frame`). The panel whose body names `model` is picked.
 * @param {import('playwright-core').Page} page
 */
function panelFrame(page) {
  return page.frameLocator('iframe.webview.ready').last().frameLocator('iframe#active-frame');
}

/** @type {UiTest[]} */
export const uiTests = [
  {
    name: 'explorer-context-menu-show-model-summary',
    async run({ page, outDir, model, log }) {
      // Explorer is the default side bar view when a folder is open; open it explicitly if another view won.
      const explorer = page.locator('.explorer-folders-view');
      if (!(await explorer.isVisible())) await page.locator('.activitybar [aria-label^="Explorer"]').first().click();
      const row = explorer.locator('.monaco-list-row').filter({
        has: page.locator('.label-name', { hasText: new RegExp(`^${escapeRe(model.name)}$`) }),
      });
      await row.waitFor({ timeout: 30_000 });
      // The context menu is a custom DOM menu (inside a shadow root; playwright's CSS engine pierces it).
      // Remote extensions' menu items appear only once the extension host has registered them, a few seconds
      // after the workbench is up: reopen the menu until the item is there.
      const item = page.locator('.monaco-menu .action-item .action-label', { hasText: /^Show Model Summary$/ });
      for (let attempt = 1; ; attempt++) {
        await row.click({ button: 'right' });
        await page.locator('.monaco-menu').first().waitFor({ timeout: 10_000 });
        if (await item.waitFor({ timeout: 2_000 }).then(() => true, () => false)) break;
        if (attempt >= 15) throw new Error('the explorer context menu never showed "Show Model Summary"');
        await page.keyboard.press('Escape');
        await new Promise((r) => setTimeout(r, 1_000));
      }
      log('context menu shows "Show Model Summary"');
      await item.click();
      // Seen once: the click highlighted the item but the menu stayed open and ran nothing (the menu re-renders
      // when contributions change). The item then has focus, and Enter runs it.
      const menu = page.locator('.monaco-menu').first();
      if (!(await menu.waitFor({ state: 'hidden', timeout: 2_000 }).then(() => true, () => false))) {
        log('menu still open after the click: pressing Enter on the item');
        await item.hover();
        await page.keyboard.press('Enter');
        await menu.waitFor({ state: 'hidden', timeout: 5_000 });
      }

      const expected = `${model.name}: .* inputs ${escapeRe(model.inputNames.join(', '))}; ` +
        `outputs ${escapeRe(model.outputNames.join(', '))}`;
      const toasts = page.locator('.notifications-toasts .notification-toast');
      const toast = toasts.filter({ hasText: new RegExp(expected) });
      const errorToast = toasts.filter({ hasText: 'ONNX Compress could not read' });
      await toast.or(errorToast).first().waitFor({ timeout: 60_000 });
      if (await errorToast.count()) throw new Error(`error notification: ${await errorToast.first().innerText()}`);
      log('notification:', (await toast.innerText()).split('\n')[0]);

      // output.show(true) reveals the "ONNX Compress" channel in the panel.
      const outputText = page.locator('.part.panel .monaco-editor .view-lines', {
        hasText: `inputs:  ${model.inputNames.join(', ')}`,
      });
      await outputText.waitFor({ timeout: 20_000 });
      log('output channel:', (await outputText.innerText()).replace(/\s+/g, ' ').slice(0, 200));
      const shot = path.join(outDir, 'ui-explorer-context-menu.png');
      await page.screenshot({ path: shot });
      log('screenshot:', shot);
    },
  },
  {
    name: 'explorer-analyze-sensitivity-panel',
    async run({ page, outDir, folder, log }) {
      const model = path.join(folder, 'lenet5.onnx');
      if (!fs.existsSync(model)) throw new Error(`${model} is missing: the fixtures were not copied`);
      // The dataset and a short sample count, as a user would configure them (the in-host phase may have already).
      fs.writeFileSync(path.join(folder, 'lenet5.dataset.json'), JSON.stringify({
        format: 'npy', inputs: { input: 'data/fmnist-test-1000-images.npy' }, labels: 'data/fmnist-test-1000-labels.npy',
        preprocess: { scale: 1 / 255, mean: [0.286], std: [0.353] },
      }));
      fs.mkdirSync(path.join(folder, '.vscode'), { recursive: true });
      const settingsFile = path.join(folder, '.vscode/settings.json');
      const settings = fs.existsSync(settingsFile) ? JSON.parse(fs.readFileSync(settingsFile, 'utf8')) : {};
      fs.writeFileSync(settingsFile, JSON.stringify({ ...settings, 'onnxCompress.samples': 200 }, null, 2));
      const t0 = Date.now();
      await explorerMenu(page, 'lenet5.onnx', 'Analyze Sensitivity', log);

      const frame = panelFrame(page);
      const rows = frame.locator('table.heatmap tbody tr');
      await rows.first().waitFor({ timeout: 120_000 });
      log(`panel shows the heatmap after ${((Date.now() - t0) / 1000).toFixed(1)} s`);
      // Wait for the run to end (the Cancel button goes away), then check the rows against the file on disk.
      await frame.locator('.run').waitFor({ state: 'detached', timeout: 240_000 });
      log(`analysis finished after ${((Date.now() - t0) / 1000).toFixed(1)} s`);
      const sens = JSON.parse(fs.readFileSync(path.join(folder, 'lenet5.compress/sensitivity.json'), 'utf8'));
      const names = await rows.locator('th.layer .name').allInnerTexts();
      if (JSON.stringify(names) !== JSON.stringify(sens.layers.map((/** @type {{name: string}} */ l) => l.name))) {
        throw new Error(`heatmap rows ${JSON.stringify(names)} != layers ${JSON.stringify(sens.layers.map((/** @type {{name: string}} */ l) => l.name))}`);
      }
      const measured = await frame.locator('table.heatmap td.cell:not(.pending):not(.na)').count();
      if (measured !== sens.cells.length) throw new Error(`heatmap shows ${measured} measured cells, sensitivity.json has ${sens.cells.length}`);
      log(`heatmap: ${names.length} rows (${names.join(', ')}), ${measured} measured cells`);

      // Keyboard: focus the first cell, move right, select with Enter -> the size bar of that layer changes.
      const first = frame.locator('table.heatmap td.cell[data-row="0"][data-col="0"]');
      await first.focus();
      await page.keyboard.press('ArrowRight');
      await page.keyboard.press('Enter');
      await frame.locator('table.heatmap td.cell.selected[data-row="0"][data-col="1"]').waitFor({ timeout: 10_000 });
      log('keyboard selection: row 0, column 1 selected');

      // Candidates: from the in-host compress run, else run Compress from the explorer with the quick picks.
      const candRows = frame.locator('table.candidates tbody tr');
      if (!(await candRows.first().waitFor({ timeout: 3_000 }).then(() => true, () => false))) {
        log('no candidates yet: running Compress Model… from the explorer');
        await explorerMenu(page, 'lenet5.onnx', 'Compress Model…', log);
        // Each step of the quick picks has its own title; wait for it before typing.
        const step = (/** @type {string} */ t) => page.locator('.quick-input-widget .quick-input-title', { hasText: t }).waitFor({ timeout: 15_000 });
        await step('budget (1/3)');
        await page.locator('.quick-input-widget .quick-input-list .monaco-list-row', { hasText: 'Max accuracy loss' }).first().click();
        await step('max accuracy loss (2/3)');
        await page.locator('.quick-input-widget .quick-input-box input').fill('2');
        await page.keyboard.press('Enter');
        await step('techniques (3/3)');
        await page.locator('.quick-input-widget .quick-input-action a, .quick-input-widget .quick-input-action .monaco-button', { hasText: 'OK' }).first().click()
          .catch(async () => { await page.keyboard.press('Enter'); });
        log('quick picks: max loss 2 %, the preselected techniques');
        await candRows.first().waitFor({ timeout: 240_000 });
      }
      const nCand = await candRows.count();
      log(`candidate table: ${nCand} rows`);
      if (nCand === 0) throw new Error('the candidate table has no rows');

      const shot = path.join(outDir, 'ui-results-panel.png');
      await page.screenshot({ path: shot });
      log('screenshot:', shot);

      // Export the first row with its button; the file lands next to the model.
      const id = await candRows.first().getAttribute('data-candidate');
      const target = path.join(folder, `lenet5.${id}.onnx`);
      fs.rmSync(target, { force: true });
      fs.rmSync(target.replace(/\.onnx$/, '.onnxc'), { force: true });
      await candRows.first().locator('[data-action="export"]').click();
      await frame.locator('.status', { hasText: `Export ${id}: saved lenet5.${id}.onnx.` }).waitFor({ timeout: 60_000 });
      if (!fs.existsSync(target)) throw new Error(`Export did not write ${target}`);
      // onnxCompress.exportArchive defaults to true: the .onnxc archive lands next to it.
      if (!fs.existsSync(target.replace(/\.onnx$/, '.onnxc'))) throw new Error(`Export did not write the archive of ${target}`);
      log(`exported ${id}: ${target} (${fs.statSync(target).size} bytes) + .onnxc (${fs.statSync(target.replace(/\.onnx$/, '.onnxc')).size} bytes)`);
      const toast = page.locator('.notifications-toasts .notification-toast', { hasText: `Exported ${id} to lenet5.${id}.onnx` });
      await toast.first().waitFor({ timeout: 20_000 });
      const shot2 = path.join(outDir, 'ui-results-panel-exported.png');
      await page.screenshot({ path: shot2 });
      log('screenshot:', shot2);
    },
  },
  {
    name: 'panel-export-again-asks-before-overwriting-and-reveals',
    async run({ page, folder, log }) {
      const frame = panelFrame(page);
      const row = frame.locator('table.candidates tbody tr').first();
      const id = await row.getAttribute('data-candidate');
      const target = path.join(folder, `lenet5.${id}.onnx`);
      if (!fs.existsSync(target)) throw new Error(`${target} is missing: the export test did not run`);
      const before = fs.statSync(target).mtimeMs;
      const dialog = page.locator('.monaco-dialog-box', { hasText: `lenet5.${id}.onnx and lenet5.${id}.onnxc already exist` });
      // First answer: Cancel. Nothing is written.
      await row.locator('[data-action="export"]').click();
      await dialog.waitFor({ timeout: 20_000 });
      log('dialog:', (await dialog.innerText()).replace(/\s+/g, ' ').trim());
      await dialog.locator('.monaco-button', { hasText: /^Cancel$/ }).click();
      await frame.locator('.status', { hasText: `Export ${id}: cancelled.` }).waitFor({ timeout: 20_000 });
      if (fs.statSync(target).mtimeMs !== before) throw new Error(`${target} changed although the dialog was cancelled`);
      // Second answer: Overwrite. The file is rewritten and revealed in the explorer.
      await row.locator('[data-action="export"]').click();
      await dialog.waitFor({ timeout: 20_000 });
      await dialog.locator('.monaco-button', { hasText: /^Overwrite$/ }).click();
      await frame.locator('.status', { hasText: `Export ${id}: saved lenet5.${id}.onnx.` }).waitFor({ timeout: 60_000 });
      if (!(fs.statSync(target).mtimeMs > before)) throw new Error(`${target} was not rewritten after "Overwrite"`);
      log('Cancel kept the file; Overwrite rewrote it');
      const revealed = page.locator('.explorer-folders-view .monaco-list-row[aria-selected="true"]', { hasText: `lenet5.${id}.onnx` });
      await revealed.first().waitFor({ timeout: 20_000 });
      log(`explorer selects lenet5.${id}.onnx`);
    },
  },
  {
    name: 'heatmap-selection-export-this-plan',
    async run({ page, folder, outDir, log }) {
      const frame = panelFrame(page);
      const target = path.join(folder, 'lenet5.selection.onnx');
      for (const f of [target, target.replace(/\.onnx$/, '.onnxc')]) fs.rmSync(f, { force: true });
      // Click a cell (row 1, the milder end of its first family) to add it to the plan.
      const cell = frame.locator('table.heatmap td.cell[data-row="1"]:not(.pending):not(.na)').first();
      const level = await cell.getAttribute('data-level');
      if (!(await cell.getAttribute('class'))?.includes('selected')) await cell.click();
      await frame.locator(`table.heatmap td.cell.selected[data-row="1"][data-level="${level}"]`).waitFor({ timeout: 10_000 });
      const summary = (await frame.locator('.selection-summary').innerText()).trim();
      log('selection:', summary);
      await frame.locator('[data-action="export-selection"]').click();
      await frame.locator('.status', { hasText: 'Export this plan: saved lenet5.selection.onnx.' }).waitFor({ timeout: 60_000 });
      for (const f of [target, target.replace(/\.onnx$/, '.onnxc')]) if (!fs.existsSync(f)) throw new Error(`Export this plan did not write ${f}`);
      // A real model: onnxruntime-node loads it and runs one image; it is smaller than the original.
      const ort = createRequire(import.meta.url)('onnxruntime-node');
      const session = await ort.InferenceSession.create(target);
      try {
        const out = await session.run({ [session.inputNames[0]]: new ort.Tensor('float32', new Float32Array(28 * 28), [1, 1, 28, 28]) });
        const logits = out[session.outputNames[0]];
        if (logits.dims.join('x') !== '1x10') throw new Error(`unexpected output shape ${logits.dims}`);
      } finally {
        await session.release();
      }
      const size = fs.statSync(target).size;
      const original = fs.statSync(path.join(folder, 'lenet5.onnx')).size;
      if (!(size < original)) throw new Error(`the selection export (${size} bytes) is not smaller than the model (${original})`);
      log(`exported the selection: ${size} bytes (original ${original}); onnxruntime runs it`);
      await page.screenshot({ path: path.join(outDir, 'ui-export-selection.png') });
    },
  },
  {
    name: 'panel-open-report',
    async run({ page, outDir, log }) {
      const frame = panelFrame(page);
      await frame.locator('[data-action="report"]').click();
      const tab = page.locator('.tabs-container .tab', { hasText: 'Report: lenet5.onnx' });
      await tab.waitFor({ timeout: 20_000 });
      const report = page.frameLocator('iframe.webview.ready').last().frameLocator('iframe#active-frame');
      await report.locator('h1', { hasText: 'Compression report: lenet5.onnx' }).waitFor({ timeout: 20_000 });
      const csp = await report.locator('meta[http-equiv="Content-Security-Policy"]').first().getAttribute('content');
      if (csp !== "default-src 'none'; style-src 'unsafe-inline'; img-src data:;") throw new Error(`report CSP: ${csp}`);
      log('report tab shows report.html with CSP', csp);
      await page.screenshot({ path: path.join(outDir, 'ui-report.png') });
      await tab.locator('.codicon-close, .tab-actions .action-label').first().click();
      await tab.waitFor({ state: 'detached', timeout: 10_000 });
      await panelFrame(page).locator('table.heatmap').waitFor({ timeout: 20_000 });
    },
  },
  {
    name: 'panel-hide-show-keeps-heatmap-and-selection',
    async run({ page, log }) {
      const selected = async () => panelFrame(page).locator('table.heatmap td.cell.selected').evaluateAll(
        (els) => els.map((e) => `${e.getAttribute('data-row')}:${e.getAttribute('data-level')}`).sort().join(' '));
      await panelFrame(page).locator('table.heatmap td.cell.selected').first().waitFor({ timeout: 20_000 });
      const before = await selected();
      // Another editor in the same group hides the panel (its webview is not retained: it is rebuilt on show).
      const explorer = page.locator('.explorer-folders-view');
      await explorer.locator('.monaco-list-row', { has: page.locator('.label-name', { hasText: /^lenet5\.dataset\.json$/ }) }).click();
      await page.locator('.tabs-container .tab.active', { hasText: 'lenet5.dataset.json' }).waitFor({ timeout: 20_000 });
      await page.locator('iframe.webview.ready').first().waitFor({ state: 'hidden', timeout: 10_000 }).catch(() => {});
      log('panel hidden behind lenet5.dataset.json');
      await page.locator('.tabs-container .tab', { hasText: 'Compress: lenet5.onnx' }).click();
      await panelFrame(page).locator('table.heatmap tbody tr').first().waitFor({ timeout: 30_000 });
      await panelFrame(page).locator('table.heatmap td.cell.selected').first().waitFor({ timeout: 20_000 });
      const after = await selected();
      if (after !== before) throw new Error(`selection after hide/show ${after} != before ${before}`);
      log(`shown again: heatmap and selection (${after}) kept`);
    },
  },
  {
    name: 'themes-dark-light-high-contrast-meet-wcag-aa',
    async run({ page, folder, outDir, log }) {
      const settingsFile = path.join(folder, '.vscode/settings.json');
      const original = fs.readFileSync(settingsFile, 'utf8');
      const themes = [
        ['Default Light Modern', 'light', 'vscode-light'],
        ['Default High Contrast', 'high-contrast', 'vscode-high-contrast'],
        ['Default Dark Modern', 'dark', 'vscode-dark'],
      ];
      try {
        for (const [theme, name, bodyClass] of themes) {
          fs.writeFileSync(settingsFile, JSON.stringify({ ...JSON.parse(original), 'workbench.colorTheme': theme }, null, 2));
          const frame = panelFrame(page);
          await frame.locator(`body.${bodyClass}`).waitFor({ timeout: 30_000 });
          // The panel refits its text colours on the theme change; poll until every text passes (or report the worst).
          let worst = { ratio: 0, what: '' };
          for (let i = 0; i < 20; i++) {
            worst = await frame.locator('table.heatmap').evaluate(worstContrast);
            if (worst.ratio >= 4.5) break;
            await page.waitForTimeout(250);
          }
          const shot = path.join(outDir, `ui-theme-${name}.png`);
          await page.screenshot({ path: shot });
          log(`${theme}: lowest heatmap text contrast ${worst.ratio.toFixed(2)}:1 (${worst.what}); screenshot ${shot}`);
          if (worst.ratio < 4.5) throw new Error(`${theme}: ${worst.what} has contrast ${worst.ratio.toFixed(2)}:1 < 4.5:1`);
        }
      } finally {
        fs.writeFileSync(settingsFile, original);
      }
    },
  },
  {
    name: 'window-reload-restores-panel-with-selection',
    async run({ page, log }) {
      const selected = async () => panelFrame(page).locator('table.heatmap td.cell.selected').evaluateAll(
        (els) => els.map((e) => `${e.getAttribute('data-row')}:${e.getAttribute('data-level')}`).sort().join(' '));
      await panelFrame(page).locator('table.heatmap td.cell.selected').first().waitFor({ timeout: 20_000 });
      const before = await selected();
      const t0 = Date.now();
      await page.reload();
      await page.waitForSelector('.monaco-workbench', { timeout: 60_000 });
      // The serializer revives the panel from the webview state (the model path) and the selection from workspace state.
      await page.locator('.tabs-container .tab', { hasText: 'Compress: lenet5.onnx' }).waitFor({ timeout: 60_000 });
      await panelFrame(page).locator('table.heatmap tbody tr').first().waitFor({ timeout: 60_000 });
      await panelFrame(page).locator('table.heatmap td.cell.selected').first().waitFor({ timeout: 20_000 });
      const after = await selected();
      if (after !== before) throw new Error(`selection after reload ${after} != before ${before}`);
      log(`reloaded in ${((Date.now() - t0) / 1000).toFixed(1)} s: panel restored with its heatmap and selection (${after})`);
    },
  },
  {
    name: 'untrusted-workspace-disables-analysis-with-an-explanation',
    phase: 'untrusted',
    async run({ page, outDir, model, log }) {
      // Menu items stay visible but disabled (enablement: isWorkspaceTrusted).
      const explorer = page.locator('.explorer-folders-view');
      if (!(await explorer.isVisible())) await page.locator('.activitybar [aria-label^="Explorer"]').first().click();
      const row = explorer.locator('.monaco-list-row').filter({ has: page.locator('.label-name', { hasText: /^lenet5\.onnx$/ }) });
      await row.waitFor({ timeout: 30_000 });
      const item = (/** @type {string} */ label) => page.locator('.monaco-menu .action-item', { has: page.locator('.action-label', { hasText: new RegExp(`^${escapeRe(label)}$`) }) });
      for (let attempt = 1; ; attempt++) {
        await row.click({ button: 'right' });
        await page.locator('.monaco-menu').first().waitFor({ timeout: 10_000 });
        if (await item('Analyze Sensitivity').waitFor({ timeout: 2_000 }).then(() => true, () => false)) break;
        if (attempt >= 15) throw new Error('the explorer context menu never showed "Analyze Sensitivity"');
        await page.keyboard.press('Escape');
        await new Promise((r) => setTimeout(r, 1_000));
      }
      const disabled = async (/** @type {string} */ label) => item(label).first().evaluate((el) => el.classList.contains('disabled') || !!el.querySelector('.disabled, [aria-disabled="true"]'));
      for (const label of ['Analyze Sensitivity', 'Compress Model…']) if (!(await disabled(label))) throw new Error(`"${label}" is enabled in Restricted Mode`);
      for (const label of ['Show Model Summary', 'Open Results']) if (await disabled(label)) throw new Error(`"${label}" is disabled in Restricted Mode`);
      log('Analyze Sensitivity and Compress Model… are disabled; Show Model Summary and Open Results are not');
      // Show Model Summary works without onnxruntime (the extension's TypeScript reader).
      await page.keyboard.press('Escape');
      await explorerMenu(page, 'lenet5.onnx', 'Show Model Summary', log);
      const expected = new RegExp(`lenet5\\.onnx: .* inputs ${escapeRe(model.inputNames.join(', '))}; outputs ${escapeRe(model.outputNames.join(', '))} \\(read without onnxruntime: Restricted Mode\\)`);
      const toast = page.locator('.notifications-toasts .notification-toast', { hasText: expected });
      await toast.first().waitFor({ timeout: 30_000 });
      log('notification:', (await toast.first().innerText()).split('\n')[0]);
      // The results panel says why and disables its run and export buttons; the results stay viewable.
      await explorerMenu(page, 'lenet5.onnx', 'Open Results', log);
      const frame = panelFrame(page);
      const note = frame.locator('.restricted', { hasText: 'Restricted Mode' });
      await note.waitFor({ timeout: 30_000 });
      log('panel:', (await note.innerText()).trim());
      for (const a of ['analyze', 'compress']) {
        if ((await frame.locator(`[data-action="${a}"]`).getAttribute('disabled')) === null) throw new Error(`the panel's ${a} button is enabled in Restricted Mode`);
      }
      await frame.locator('table.heatmap tbody tr').first().waitFor({ timeout: 20_000 });
      const exportButtons = frame.locator('table.candidates [data-action="export"]');
      const n = await exportButtons.count();
      for (let i = 0; i < n; i++) if ((await exportButtons.nth(i).getAttribute('disabled')) === null) throw new Error('an Export button is enabled in Restricted Mode');
      const shot = path.join(outDir, 'ui-untrusted.png');
      await page.screenshot({ path: shot });
      log(`heatmap viewable, ${n} Export buttons disabled; screenshot ${shot}`);
    },
  },
];

/**
 * The lowest WCAG contrast ratio among the heatmap's texts (cells and layer names) against their backgrounds,
 * from the computed colours (alpha composited over the page background). Runs in the webview.
 * @param {Element} table
 * @returns {{ ratio: number, what: string }}
 */
function worstContrast(table) {
  const parse = (/** @type {string} */ s) => {
    let m = /^rgba?\(\s*([\d.]+)[,\s]+([\d.]+)[,\s]+([\d.]+)(?:\s*[,/]\s*([\d.]+%?))?\s*\)$/.exec(s);
    const a = (/** @type {string | undefined} */ x) => (x === undefined ? 1 : x.endsWith('%') ? parseFloat(x) / 100 : parseFloat(x));
    if (m) return [+m[1] / 255, +m[2] / 255, +m[3] / 255, a(m[4])];
    m = /^color\(srgb\s+([\d.e-]+)\s+([\d.e-]+)\s+([\d.e-]+)(?:\s*\/\s*([\d.]+%?))?\s*\)$/.exec(s);
    if (m) return [+m[1], +m[2], +m[3], a(m[4])];
    throw new Error(`unparsed colour ${s}`);
  };
  const over = (/** @type {number[]} */ f, /** @type {number[]} */ b) => [0, 1, 2].map((i) => f[i] * f[3] + b[i] * (1 - f[3])).concat(1);
  const lum = (/** @type {number[]} */ c) => {
    const l = c.slice(0, 3).map((v) => (v <= 0.04045 ? v / 12.92 : ((v + 0.055) / 1.055) ** 2.4));
    return 0.2126 * l[0] + 0.7152 * l[1] + 0.0722 * l[2];
  };
  const ratio = (/** @type {number[]} */ a, /** @type {number[]} */ b) => (Math.max(lum(a), lum(b)) + 0.05) / (Math.min(lum(a), lum(b)) + 0.05);
  const page = parse(getComputedStyle(document.body).backgroundColor);
  /** @returns {number[]} the opaque background behind el */
  const backOf = (/** @type {Element | null} */ el) => {
    const stack = [];
    for (let e = el; e; e = e.parentElement) stack.push(parse(getComputedStyle(e).backgroundColor));
    return stack.reverse().reduce((b, c) => over(c, b), page);
  };
  let worst = { ratio: Infinity, what: 'no text' };
  for (const el of table.querySelectorAll('td.cell, th.layer .name, th.level')) {
    if (!el.textContent?.trim()) continue;
    const back = backOf(el);
    const r = ratio(over(parse(getComputedStyle(el).color), back), back);
    if (r < worst.ratio) worst = { ratio: r, what: `${el.tagName.toLowerCase()}.${el.className} "${el.textContent.trim()}" (${getComputedStyle(el).color} on ${getComputedStyle(el).backgroundColor})` };
  }
  return worst;
}

/**
 * Opens the workbench on `folder` and runs every UI test in order.
 * @param {{ browser: import('playwright-core').Browser, baseUrl: string, folder: string, outDir: string,
 *   model: UiContext['model'], grep?: string | undefined, phase?: 'untrusted' }} o with `phase`, only that phase's tests
 * @returns {Promise<{ passed: number, failed: number }>}
 */
export async function runUiTests({ browser, baseUrl, folder, outDir, model, grep, phase }) {
  const t0 = Date.now();
  const log = (/** @type {unknown[]} */ ...a) => console.log(`  [${((Date.now() - t0) / 1000).toFixed(1)}s]`, ...a);
  const page = await browser.newPage({ viewport: { width: 1280, height: 800 } });
  const flush = mirrorExtHostConsole(page, '  ');
  page.on('pageerror', (e) => log('pageerror:', e.message));
  let passed = 0;
  let failed = 0;
  try {
    await page.goto(workbenchUrl(baseUrl, folder));
    await page.waitForSelector('.monaco-workbench', { timeout: 60_000 });
    log('workbench loaded');
    for (const t of uiTests) {
      if (grep && !t.name.includes(grep)) continue;
      if (t.phase !== phase) continue;
      try {
        await t.run({ page, outDir, folder, model, log });
        passed++;
        console.log(`  ✔ ${t.name}`);
      } catch (e) {
        failed++;
        const shot = path.join(outDir, `${t.name}-failure.png`);
        await page.screenshot({ path: shot }).catch(() => {});
        console.log(`  ✘ ${t.name}: ${e instanceof Error ? e.message : e}\n    screenshot: ${shot}`);
      }
    }
  } catch (e) {
    failed++;
    const shot = path.join(outDir, 'workbench-failure.png');
    await page.screenshot({ path: shot }).catch(() => {});
    console.log(`  ✘ workbench did not load: ${e instanceof Error ? e.message : e}\n    screenshot: ${shot}`);
  } finally {
    // Console handles of a page that reloaded can stay unresolved: do not wait for them forever.
    await Promise.race([flush(), new Promise((r) => setTimeout(r, 3_000))]);
    await page.close().catch(() => {});
  }
  return { passed, failed };
}
