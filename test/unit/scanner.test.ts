import { expect } from 'chai';
import { ExpirationScanner, joinScan } from '../../src/store/scanner.js';
import { waitFor } from '../helpers/db.js';

describe('ExpirationScanner', () => {
  it('runs a first pass at once, then one per interval, and none after stop()', async () => {
    let passes = 0;
    const scanner = new ExpirationScanner(async () => ++passes, 10, () => {});
    scanner.start();
    await waitFor(() => passes >= 3, 2000, 'three passes');
    await scanner.stop();
    const stoppedAt = passes;
    // Absence cannot be awaited: give it ten intervals' worth of chances.
    await new Promise((resolve) => setTimeout(resolve, 100));
    expect(passes).to.equal(stoppedAt);
  });

  it('stop() waits for the pass under way, so the pool is never ended under it', async () => {
    let finish!: () => void;
    let started = false;
    const scanner = new ExpirationScanner(
      () => {
        started = true;
        return new Promise<number>((resolve) => (finish = () => resolve(0)));
      },
      60_000,
      () => {},
    );
    scanner.start();
    await waitFor(() => started, 2000, 'the first pass');
    let stopped = false;
    const stopping = scanner.stop().then(() => (stopped = true));
    await new Promise((resolve) => setImmediate(resolve));
    expect(stopped).to.equal(false);
    finish();
    await stopping;
    expect(stopped).to.equal(true);
  });

  it('reports a failing pass and keeps its schedule', async () => {
    const failures: unknown[] = [];
    let passes = 0;
    const scanner = new ExpirationScanner(
      async () => {
        passes++;
        throw new Error('boom');
      },
      10,
      (error) => failures.push(error),
    );
    scanner.start();
    await waitFor(() => passes >= 2, 2000, 'a second pass after a failure');
    await scanner.stop();
    expect((failures[0] as Error).message).to.equal('boom');
  });

  it('never keeps the process alive: its timer is unref\'d', async () => {
    const scanner = new ExpirationScanner(async () => 0, 60_000, () => {});
    const before = process.getActiveResourcesInfo().filter((r) => r === 'Timeout').length;
    scanner.start();
    const during = process.getActiveResourcesInfo().filter((r) => r === 'Timeout').length;
    await scanner.stop();
    expect(during).to.equal(before);
  });

  it('a shared scan waits the shortest interval of the stores present: the first store leaving takes its interval with it', async () => {
    const table = {}; // stands for a pool: scans are kept per pool and table
    let fast = 0;
    let slow = 0;
    const leaveFast = joinScan(table, 't', { pass: async () => ++fast, intervalMs: 10, onError: () => {} });
    await waitFor(() => fast >= 3, 2000, 'passes every 10 ms');
    const leaveSlow = joinScan(table, 't', { pass: async () => ++slow, intervalMs: 60_000, onError: () => {} });
    await leaveFast();
    const settled = fast + slow;
    // The wait armed before it left may still run one pass (the slow store's); then an hour-long wait.
    await new Promise((resolve) => setTimeout(resolve, 100));
    expect(fast + slow - settled).to.be.at.most(1);
    await leaveSlow();
  });
});
