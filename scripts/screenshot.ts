/**
 * npm run screenshot: regenerates docs/dashboard.png, the README's picture of the dashboard.
 * Starts the dashboard (DATABASE_URL or PG_URL when set, else embedded PostgreSQL), clicks through the
 * panels in headless Chromium (CHROMIUM_PATH, or chromium on PATH), runs the quick benchmark, and
 * takes a full-page screenshot. Everything it starts is stopped at the end.
 */
import { mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { chromium } from 'playwright-core';
import { CHROMIUM_ARGS, findChromium } from '../demo/chromium.js';
import { startDemo } from '../demo/launch.js';

const OUT = fileURLToPath(new URL('../docs/dashboard.png', import.meta.url));
const executablePath = findChromium();
if (!executablePath) {
  console.error('No Chromium found: set CHROMIUM_PATH or install it (Debian: apt-get install chromium).');
  process.exit(2);
}
const results = mkdtempSync(path.join(tmpdir(), 'dashboard-shot-'));
const demo = await startDemo({ args: ['--results', path.join(results, 'last.json')] });
const browser = await chromium.launch({ executablePath, args: CHROMIUM_ARGS });
try {
  const page = await browser.newPage({ viewport: { width: 1400, height: 900 } });
  await page.goto(demo.url);
  for (const mode of ['naive', 'getOrSet', 'wrap']) {
    await page.click(`#stampede-${mode}`);
    await page.locator(`#stampede-results tr[data-mode="${mode}"]`).waitFor();
  }
  for (const mode of ['atomic', 'naive']) {
    await page.click(`#counters-${mode}`);
    await page.locator(`#counters-results tr[data-mode="${mode}"]`).waitFor();
  }
  await page.click('#tags-set');
  await page.fill('#tags-key', 'product:2');
  await page.fill('#tags-tags', 'products');
  await page.click('#tags-set');
  await page.locator('#tags-list tr[data-key="product:2"]').waitFor();
  await page.click('#failover-fetch');
  await page.locator('#failover-result[data-source]').waitFor();
  await page.click('#locks-acquire-1');
  await page.locator('#locks-state', { hasText: 'held by worker 1' }).waitFor();
  await page.click('#local-run');
  await page.locator('#local-result[data-invalidated-after-ms]').waitFor();
  await page.click('#atomic-invalidate-commit');
  await page.locator('#atomic-invalidate-result[data-outcome]').waitFor();
  await page.click('#atomic-in-rollback');
  await page.locator('#atomic-in-result[data-outcome]').waitFor();
  await page.click('#foreign-run');
  await page.locator('#foreign-result[data-dropped-after-ms]').waitFor();
  await page.fill('#bench-ops', '1000');
  await page.click('#bench-start');
  await page.locator('#bench-panel[data-finished-at]:not([data-finished-at=""])').waitFor({ timeout: 300_000 });
  mkdirSync(path.dirname(OUT), { recursive: true });
  await page.screenshot({ path: OUT, fullPage: true });
  console.log(`written: ${path.relative(process.cwd(), OUT)}`);
} finally {
  await browser.close();
  demo.child.kill('SIGTERM');
  await demo.exited;
  rmSync(results, { recursive: true, force: true });
}
