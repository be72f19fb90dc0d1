// Phase 2: UI tests in the real workbench (headless Chromium), as a user would click. Each test gets the page
// after the workbench has loaded; a failing test leaves a `<name>-failure.png` next to the screenshots.
import fs from 'node:fs';
import path from 'node:path';
import { mirrorExtHostConsole, workbenchUrl } from './browser.mjs';

/**
 * @typedef {{ page: import('playwright-core').Page, outDir: string, folder: string, model: { name: string, inputNames: string[],
 *   outputNames: string[] }, log: (...a: unknown[]) => void }} UiContext
 * @typedef {{ name: string, run: (ctx: UiContext) => Promise<void> }} UiTest
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
      await candRows.first().locator('[data-action="export"]').click();
      for (let i = 0; i < 120 && !fs.existsSync(target); i++) await new Promise((r) => setTimeout(r, 500));
      if (!fs.existsSync(target)) throw new Error(`Export did not write ${target}`);
      await frame.locator('.status', { hasText: `Export ${id}: done.` }).waitFor({ timeout: 30_000 });
      log(`exported ${id}: ${target} (${fs.statSync(target).size} bytes)`);
      const toast = page.locator('.notifications-toasts .notification-toast', { hasText: `Exported ${id} to lenet5.${id}.onnx` });
      await toast.first().waitFor({ timeout: 20_000 });
      const shot2 = path.join(outDir, 'ui-results-panel-exported.png');
      await page.screenshot({ path: shot2 });
      log('screenshot:', shot2);
    },
  },
];

/**
 * Opens the workbench on `folder` and runs every UI test in order.
 * @param {{ browser: import('playwright-core').Browser, baseUrl: string, folder: string, outDir: string,
 *   model: UiContext['model'], grep?: string | undefined }} o
 * @returns {Promise<{ passed: number, failed: number }>}
 */
export async function runUiTests({ browser, baseUrl, folder, outDir, model, grep }) {
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
    await flush();
    await page.close().catch(() => {});
  }
  return { passed, failed };
}
