// Phase 1: the mocha suite runs INSIDE code-server's Node extension host, with the same contract as
// @vscode/test-electron's runTests(): the workbench URL payload names extensionDevelopmentPath and
// extensionTestsPath, the module's run() gets the full `vscode` API, and the workbench reports the outcome
// through window.codeAutomationExit(code).
import { mirrorExtHostConsole, workbenchUrl } from './browser.mjs';

/**
 * @param {{ browser: import('playwright-core').Browser, baseUrl: string, folder: string, devPath: string,
 *   testsPath: string, timeoutMs: number }} o
 * @returns {Promise<number | 'timeout'>} the exit code VS Code reported (0 = all passed)
 */
export async function runInHostTests({ browser, baseUrl, folder, devPath, testsPath, timeoutMs }) {
  const page = await browser.newPage();
  try {
    /** @type {(code: number) => void} */
    let resolveExit = () => {};
    const exited = new Promise((r) => { resolveExit = r; });
    await page.exposeFunction('codeAutomationExit', (/** @type {number} */ code) => resolveExit(code));
    const flush = mirrorExtHostConsole(page, '  ');
    await page.goto(workbenchUrl(baseUrl, folder, [
      ['extensionDevelopmentPath', devPath],
      ['extensionTestsPath', testsPath],
    ]));
    /** @type {NodeJS.Timeout | undefined} */
    let timer;
    const code = await Promise.race([
      exited,
      new Promise((r) => { timer = setTimeout(() => r('timeout'), timeoutMs); }),
    ]);
    clearTimeout(timer);
    await flush();
    return /** @type {number | 'timeout'} */ (code);
  } finally {
    await page.close().catch(() => {});
  }
}
