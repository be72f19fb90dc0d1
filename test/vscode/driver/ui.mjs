// Phase 2: UI tests in the real workbench (headless Chromium), as a user would click. Each test gets the page
// after the workbench has loaded; a failing test leaves a `<name>-failure.png` next to the screenshots.
import path from 'node:path';
import { mirrorExtHostConsole, workbenchUrl } from './browser.mjs';

/**
 * @typedef {{ page: import('playwright-core').Page, outDir: string, model: { name: string, inputNames: string[],
 *   outputNames: string[] }, log: (...a: unknown[]) => void }} UiContext
 * @typedef {{ name: string, run: (ctx: UiContext) => Promise<void> }} UiTest
 */

/** @param {string} s */
const escapeRe = (s) => s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');

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
        await t.run({ page, outDir, model, log });
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
