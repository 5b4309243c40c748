/// <reference lib="dom" />
/**
 * The dashboard in a real browser (headless Chromium driven by playwright-core): every panel clicked
 * as a person would, and the numbers it shows checked. Runs in CI (.ci/run installs Debian's chromium).
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { expect } from 'chai';
import { type Browser, chromium, type Page } from 'playwright-core';
import { dropTables, testUrl, uniqueTable } from '../helpers/db.js';
import { CHROMIUM_ARGS, findChromium } from '../../demo/chromium.js';
import { type RunningDemo, startDemo } from '../helpers/demo.js';

describe('the dashboard in Chromium', function () {
  this.timeout(180_000);
  const table = uniqueTable('dash');
  const resultsDir = mkdtempSync(path.join(tmpdir(), 'dashboard-results-'));
  let demo: RunningDemo | undefined;
  let browser: Browser | undefined;
  let page: Page;
  const pageErrors: string[] = [];

  before(async function () {
    const executablePath = findChromium();
    // Skipped only where no Chromium is installed (CI installs Debian's chromium); the reason is printed.
    if (!executablePath) {
      console.log('      (no Chromium found: set CHROMIUM_PATH or apt-get install chromium; the browser tests are skipped)');
      this.skip();
    }
    demo = await startDemo({ args: ['--table', table, '--results', path.join(resultsDir, 'last.json')], env: { ...process.env, DATABASE_URL: testUrl() } });
    browser = await chromium.launch({ executablePath, args: CHROMIUM_ARGS });
    page = await browser.newPage({ viewport: { width: 1400, height: 1000 } });
    page.on('pageerror', (error) => pageErrors.push(error.message));
    page.on('console', (message) => {
      if (message.type() === 'error' && !/status of 4\d\d/.test(message.text())) pageErrors.push(message.text());
    });
    await page.goto(demo.url);
  });

  after(async () => {
    await browser?.close();
    if (demo) {
      demo.child.kill('SIGTERM');
      await demo.exited;
      await dropTables(table, `${table}_locks`, `${table}_products`, `${table}_xlang`, `${table}_xlang_locks`);
    }
    rmSync(resultsDir, { recursive: true, force: true });
  });

  const text = (selector: string) => page.locator(selector).innerText();
  /** The cells of the newest row of a results table with this mode. */
  const rowCells = async (tbody: string, mode: string) => page.locator(`${tbody} tr[data-mode="${mode}"]`).first().locator('td').allInnerTexts();

  it('stampede: one factory call for getOrSet and wrap across two processes, one per caller for Keyv get-then-set', async () => {
    await page.fill('#stampede-count', '20');
    for (const mode of ['getOrSet', 'wrap', 'naive']) {
      await page.click(`#stampede-${mode}`);
      await page.locator(`#stampede-results tr[data-mode="${mode}"]`).waitFor();
    }
    expect((await rowCells('#stampede-results', 'getOrSet')).slice(1, 4)).to.deep.equal(['20', '1', '1']);
    expect((await rowCells('#stampede-results', 'wrap')).slice(1, 4)).to.deep.equal(['20', '1', '1']);
    const naive = await rowCells('#stampede-results', 'naive');
    expect(Number(naive[2]), 'factory calls of get-then-set').to.be.greaterThan(1);
    expect(await text('#stampede-live')).to.equal(naive[2]);
  });

  it('stampede: a refused request shows no factory count, the next run its own', async () => {
    await page.fill('#stampede-count', '-5');
    await page.click('#stampede-getOrSet');
    await page.locator('#message', { hasText: '400: "count" must be a whole number from 2 to 200' }).waitFor();
    await page.locator('#stampede-getOrSet:enabled').waitFor();
    expect(await text('#stampede-live')).to.equal('- (refused: nothing ran)');
    await page.fill('#stampede-count', '20');
    const rows = await page.locator('#stampede-results tr[data-mode="getOrSet"]').count();
    await page.click('#stampede-getOrSet');
    await page.waitForFunction((n) => document.querySelectorAll('#stampede-results tr[data-mode="getOrSet"]').length > n, rows);
    expect(await text('#stampede-live')).to.equal('1');
  });

  it("live stats: a crashed worker's counts stay in the totals", async () => {
    const misses = async () => Number((await text('#stat-misses')).replace(/,/g, ''));
    await page.fill('#stampede-count', '20');
    await page.click('#stampede-naive'); // every caller misses, in both workers
    await page.locator('#stampede-naive:enabled').waitFor();
    const made = await page.evaluate(async () => (await (await fetch('/api/stats')).json()).misses as number);
    await page.waitForFunction((n) => Number(document.getElementById('stat-misses')!.textContent!.replace(/,/g, '')) >= n, made);
    await page.click('#locks-crash-2');
    await page.locator('#locks-log', { hasText: 'worker 2 crashed' }).waitFor();
    await page.locator('#locks-log', { hasText: 'replaces worker 2' }).waitFor({ timeout: 60_000 });
    // Two refreshes after the replacement is up: the totals still hold what the crashed process counted.
    for (let i = 0; i < 2; i++) await page.waitForResponse((r) => r.url().endsWith('/api/stats'));
    expect(await misses()).to.be.at.least(made);
  });

  it('counters: the exact total with ext.incr, lost updates with get-then-set', async () => {
    await page.fill('#counters-count', '1000');
    await page.click('#counters-atomic');
    await page.locator('#counters-results tr[data-mode="atomic"]').waitFor();
    expect((await rowCells('#counters-results', 'atomic')).slice(1, 4)).to.deep.equal(['1000', '1000', '0']);
    await page.click('#counters-naive');
    await page.locator('#counters-results tr[data-mode="naive"]').waitFor();
    const naive = await rowCells('#counters-results', 'naive');
    expect(Number(naive[3]), 'updates lost by get-then-set').to.be.greaterThan(0);
  });

  it('tags: invalidating a tag removes the keys that carry it, and only those', async () => {
    const entries: Array<[string, string]> = [['product:1', 'products, brand:acme'], ['product:2', 'products'], ['product:3', 'brand:acme, sale']];
    for (const [key, tags] of entries) {
      await page.fill('#tags-key', key);
      await page.fill('#tags-tags', tags);
      await page.click('#tags-set');
      await page.locator(`#tags-list tr[data-key="${key}"]`).waitFor();
    }
    await page.fill('#tags-invalidate-tags', 'brand:acme, sale');
    await page.selectOption('#tags-match', 'all');
    await page.click('#tags-invalidate');
    await page.locator('#tags-deleted', { hasText: '1 deleted' }).waitFor();
    await page.locator('#tags-list tr[data-key="product:3"]').waitFor({ state: 'detached' });
    await page.fill('#tags-invalidate-tags', 'brand:acme');
    await page.selectOption('#tags-match', 'any');
    await page.click('#tags-invalidate');
    await page.locator('#tags-deleted', { hasText: '1 deleted' }).waitFor();
    await page.locator('#tags-list tr[data-key="product:1"]').waitFor({ state: 'detached' });
    expect(await page.locator('#tags-list tr').evaluateAll((rows) => rows.map((r) => (r as HTMLElement).dataset['key']))).to.deep.equal(['product:2']);
  });

  it('failover: a stale value with its age during the outage, and the error where nothing is retained', async () => {
    await page.fill('#failover-city', 'Oslo');
    await page.click('#failover-fetch');
    await page.locator('#failover-result[data-source="downstream"]').waitFor();
    expect(await text('#failover-result')).to.match(/^Oslo: -?[\d.]+ °C, fresh from the service, 0\.\d s old$/);
    await page.check('#failover-down');
    // The value is fresh for 3 s: fetch until it has expired and is served stale (a condition, not a sleep).
    const deadline = Date.now() + 15_000;
    while ((await page.locator('#failover-result').getAttribute('data-source')) !== 'stale' && Date.now() < deadline) {
      await page.click('#failover-fetch');
      await page.locator('#failover-fetch:enabled').waitFor();
    }
    expect(await text('#failover-result')).to.match(/^Oslo: -?[\d.]+ °C, STALE \(expired [\d.]+ s ago\), served during the outage, [3-9]\.\d s old$/);
    await page.fill('#failover-city', 'Atlantis');
    await page.click('#failover-fetch');
    await page.locator('#failover-result[data-source="error"]').waitFor();
    expect(await text('#failover-result')).to.equal('error: weather service unavailable (simulated outage) (nothing retained to serve)');
    await page.uncheck('#failover-down');
  });

  it('locks: a holder with a fencing token; it crashes, its lease runs out, the waiter takes over with a larger token', async () => {
    await page.click('#locks-acquire-1');
    await page.locator('#locks-state', { hasText: 'held by worker 1' }).waitFor();
    const first = Number(/fencing token (\d+)/.exec(await text('#locks-state'))?.[1]);
    await page.click('#locks-acquire-2');
    await page.locator('#locks-state', { hasText: 'waiting: worker 2' }).waitFor();
    await page.click('#locks-crash-1');
    await page.locator('#locks-log', { hasText: 'worker 1 crashed' }).waitFor();
    // Until the lease runs out the state says whose it is: a crashed process's, not worker 1's any more.
    await page.locator('#locks-state', { hasText: /held by a crashed process, fencing token \d+, lease runs out in|held by worker 2/ }).waitFor();
    await page.locator('#locks-state', { hasText: 'held by worker 2' }).waitFor({ timeout: 15_000 });
    const second = Number(/fencing token (\d+)/.exec(await text('#locks-state'))?.[1]);
    expect(second).to.be.greaterThan(first);
    // In the order it happened (the log shows the newest first): the crash, the lease running out, the takeover.
    const events = (await page.locator('#locks-log li').allInnerTexts()).reverse();
    const at = (pattern: RegExp) => events.findIndex((line) => pattern.test(line));
    expect(at(/worker 1 crashed/), events.join('\n')).to.be.at.least(0);
    expect(at(/worker 1 crashed/), events.join('\n')).to.be.below(at(/the crashed holder's lease ran out/));
    expect(at(/the crashed holder's lease ran out/), events.join('\n')).to.be.below(at(new RegExp(`worker 2 holds the lock, fencing token ${second}`)));
    await page.click('#locks-release-2');
    await page.locator('#locks-state', { hasText: 'unlocked: free' }).waitFor();
  });

  it("local tier: A's copy is answered from memory, then dropped when B writes", async () => {
    await page.click('#local-run');
    await page.locator('#local-result[data-invalidated-after-ms]').waitFor();
    const result = await text('#local-result');
    expect(result).to.match(/^A read "v1 \(written by A\)" from memory; B wrote; A read "v2 \(written by B\)" [\d.]+ ms after B's write was acknowledged/);
  });

  it('live stats: counters and table size shown and refreshed', async () => {
    const hits = async () => Number((await text('#stat-hits')).replace(/,/g, ''));
    await page.waitForFunction(() => document.getElementById('stat-rows')!.textContent !== '-');
    expect(await text('#stat-rows')).to.match(/^[\d,]+$/);
    expect(await text('#stat-liveRows')).to.match(/^[\d,]+$/);
    expect(await text('#stat-bytes')).to.match(/KiB$/);
    expect(Number((await text('#stat-factoryCalls')).replace(/,/g, ''))).to.be.greaterThan(0);
    const before = await hits();
    await page.click('#local-run'); // store A reads its key from memory: a hit (and a local hit)
    await page.locator('#local-run:enabled').waitFor();
    await page.waitForFunction((n) => Number(document.getElementById('stat-hits')!.textContent!.replace(/,/g, '')) > n, before);
  });

  it('bad input: the server\'s message on the page, no 500', async () => {
    const statuses: number[] = [];
    page.on('response', (response) => statuses.push(response.status()));
    await page.fill('#counters-count', '-5');
    await page.click('#counters-atomic');
    await page.locator('#message', { hasText: '400: "count" must be a whole number from 1 to 10000, got -5.' }).waitFor();
    await page.fill('#tags-key', '');
    await page.click('#tags-set');
    await page.locator('#message', { hasText: '400: "key" must be a non-empty string.' }).waitFor();
    await page.fill('#tags-key', 'big');
    await page.fill('#tags-value', 'x'.repeat(70_000));
    await page.click('#tags-set');
    await page.locator('#message', { hasText: '"value" is 70000 characters long; at most 65536 are allowed.' }).waitFor();
    await page.fill('#stampede-count', '');
    await page.click('#stampede-getOrSet');
    await page.locator('#message', { hasText: '400: "count" must be a whole number from 2 to 200, got null.' }).waitFor();
    expect(statuses.filter((s) => s >= 500)).to.deep.equal([]);
  });

  it('benchmark: progress while it runs, then charts and a table that a reload still shows', async () => {
    await page.fill('#bench-ops', '200');
    await page.fill('#bench-rounds', '2');
    await page.click('#bench-start');
    await page.locator('#bench-progress:visible').waitFor();
    await page.locator('#bench-status', { hasText: /running: \d+ of \d+ measurements/ }).waitFor();
    await page.locator('#bench-panel[data-finished-at]:not([data-finished-at=""])').waitFor({ timeout: 150_000 });
    const targets = await page.locator('#bench-results tr td:first-child').allInnerTexts();
    for (const target of ['PgStore/Keyv unlogged pool 10', 'PgStore/Keyv logged pool 10', 'PgStore/Keyv pool 1', 'PgStore/Keyv + localCache', '@keyv/postgres']) {
      expect(targets, target).to.include(target);
    }
    const charted = await page.evaluate(() => ['bench-ops-chart', 'bench-latency-chart'].map((id) => (window as unknown as { Chart: { getChart(id: string): { data: { datasets: unknown[] } } | undefined } }).Chart.getChart(id)?.data.datasets.length ?? 0));
    expect(charted[0]).to.be.at.least(5);
    expect(charted[1]).to.be.at.least(5);
    // Two rounds: each figure with the spread of its rounds, and the page says what a quick run cannot show.
    const spreads = await page.locator('#bench-results tr td:nth-child(4)').allInnerTexts();
    expect(spreads.filter((cell) => /^[\d,.]+ to [\d,.]+ \([\d.]+x\)$/.test(cell)).length, spreads.join(' | ')).to.be.at.least(5);
    expect(await text('#bench-status')).to.match(/2 rounds/);
    expect(await text('#bench-caveat')).to.match(/cannot: a ranking of targets within 2x/);
    const rows = await page.locator('#bench-results tr').count();
    await page.reload();
    await page.locator('#bench-panel[data-finished-at]:not([data-finished-at=""])').waitFor();
    expect(await page.locator('#bench-results tr').count()).to.equal(rows);
  });

  it('atomic with your data: an application UPDATE deletes the tagged entry at COMMIT and not at ROLLBACK', async () => {
    await page.click('#atomic-invalidate-rollback');
    await page.locator('#atomic-invalidate-result[data-outcome="rollback"]').waitFor();
    expect(await page.locator('#atomic-invalidate-result').getAttribute('data-after')).to.equal('cached');
    expect(await text('#atomic-invalidate-result')).to.match(/Before the writer ended, others still read "\{.*\}"; after ROLLBACK, product:1 is still cached/);
    await page.click('#atomic-invalidate-commit');
    await page.locator('#atomic-invalidate-result[data-outcome="commit"]').waitFor();
    expect(await page.locator('#atomic-invalidate-result').getAttribute('data-after')).to.equal('gone');
    expect(await text('#atomic-invalidate-result')).to.match(/after COMMIT, product:1 is gone/);
  });

  it('atomic with your data: a cache write in the caller\'s transaction is seen at COMMIT and vanishes at ROLLBACK', async () => {
    await page.click('#atomic-in-commit');
    await page.locator('#atomic-in-result[data-outcome="commit"]').waitFor();
    expect(await page.locator('#atomic-in-result').getAttribute('data-after')).to.equal('visible');
    expect(await text('#atomic-in-result')).to.match(/others read nothing before it ended; after COMMIT, "written in a transaction that ends in COMMIT"/);
    await page.click('#atomic-in-rollback');
    await page.locator('#atomic-in-result[data-outcome="rollback"]').waitFor();
    expect(await page.locator('#atomic-in-result').getAttribute('data-after')).to.equal('gone');
  });

  it("another language's write (plain SQL) reaches a local tier through the notify trigger", async () => {
    await page.click('#foreign-run');
    await page.locator('#foreign-result[data-dropped-after-ms]').waitFor();
    expect(await page.locator('#foreign-result').getAttribute('data-dropped-after-ms')).to.match(/^[\d.]+$/);
    expect(await text('#foreign-result')).to.match(/^The tier answered "10" from memory; plain SQL wrote "12"; the tier read "12" [\d.]+ ms later\.$/);
    expect(await text('#foreign-sql')).to.match(/^INSERT INTO .*\s+ON CONFLICT \(id\) DO UPDATE/s);
  });

  it('serves its icon (no 404 on every load) and shows expiry as a person reads it', async () => {
    const icon = await page.evaluate(async () => {
      const href = document.querySelector<HTMLLinkElement>('link[rel="icon"]')!.href;
      const response = await fetch(href);
      return { status: response.status, type: response.headers.get('content-type') };
    });
    expect(icon).to.deep.equal({ status: 200, type: 'image/svg+xml' });
    await page.fill('#tags-key', 'expiry:1');
    await page.click('#tags-set');
    await page.locator('#tags-list tr[data-key="expiry:1"]').waitFor();
    const expires = await page.locator('#tags-list tr[data-key="expiry:1"] td').nth(2).innerText();
    expect(expires).to.match(/^(never|\d+ s|\d+ min \d+ s|\d+ h \d+ min)$/);
    expect(expires).not.to.match(/^\d{3,} s$/);
  });

  it('size cap: filling past the 64 MB cap shows the evictions live, and what the table holds back under it', async () => {
    const evicted = async () => Number((await text('#stat-evicted')).split(' ')[0]!.replace(/,/g, ''));
    const before = await evicted();
    for (let i = 0; i < 3; i++) {
      await page.fill('#cap-mb', '32');
      await page.click('#cap-fill');
      await page.locator('#cap-fill:enabled').waitFor({ timeout: 60_000 });
    }
    expect(await text('#cap-result')).to.match(/^wrote 512 entries \(32 MB\); the table holds [\d.,]+ MB of its 64 MB cap/);
    await page.waitForFunction((n) => Number(document.getElementById('stat-evicted')!.textContent!.split(' ')[0]!.replace(/,/g, '')) > n, before, { timeout: 30_000 });
    // Back under the cap within a few of the sweeper's passes (a second each).
    await page.waitForFunction(() => {
      const m = /^([\d,.]+) (B|KiB|MB) of 64 MB/.exec(document.getElementById('stat-cap')!.textContent!);
      return m !== null && (m[2] !== 'MB' || Number(m[1]!.replace(/,/g, '')) <= 64);
    }, undefined, { timeout: 30_000 });
  });

  it('raised no error in the page', () => {
    expect(pageErrors).to.deep.equal([]);
  });
});
