import { expect } from 'chai';
import { PgStore } from '../../src/index.js';
import { dropTables, testUrl, uniqueTable, waitFor } from '../helpers/db.js';
import { startWorker } from '../helpers/worker-process.js';

async function runTogether(count: number, args: string[]): Promise<unknown[]> {
  const workers = Array.from({ length: count }, () => startWorker(args));
  await Promise.all(workers.map((w) => w.ready));
  for (const w of workers) w.child.stdin.write('go\n');
  return Promise.all(workers.map((w) => w.result));
}

describe('coordination across OS processes', function () {
  this.timeout(120_000);
  const table = uniqueTable('cp_multi');
  let store: PgStore;

  before(async () => {
    store = new PgStore({ uri: testUrl(), table, enableExpirationScan: false });
    await store.ext.has('create');
  });
  after(async () => {
    await store.disconnect();
    await dropTables(table, `${table}_locks`);
  });

  it('getOrSet: 4 processes x 20 concurrent callers on one cold key make exactly 1 factory call', async () => {
    const results = (await runTogether(4, ['stampede', testUrl(), table, 'stampede-key', '20', '200'])) as Array<{
      calls: number;
      values: string[];
    }>;
    const calls = results.reduce((sum, r) => sum + r.calls, 0);
    expect(calls).to.equal(1);
    const values = results.flatMap((r) => r.values);
    expect(values).to.have.length(80);
    expect(new Set(values).size).to.equal(1);
    expect(await store.ext.getString('stampede-key')).to.equal(values[0]);
  });

  it('withLock: 4 processes x 250 read-modify-write increments end at exactly 1000, tokens increasing in order', async () => {
    const results = (await runTogether(4, ['increments', testUrl(), table, 'counter-lock', 'plain-counter', '250'])) as Array<{
      observed: Array<{ token: string; read: number }>;
    }>;
    expect(await store.ext.getString('plain-counter')).to.equal('1000');
    const all = results.flatMap((r) => r.observed).sort((a, b) => a.read - b.read);
    expect(all.map((o) => o.read)).to.deep.equal(Array.from({ length: 1000 }, (_, i) => i)); // each value read once
    for (let i = 1; i < all.length; i++) {
      expect(BigInt(all[i]!.token) > BigInt(all[i - 1]!.token), `token at ${i}`).to.equal(true);
    }
  });

  it('early: an old entry is served at once by 2 processes and refreshed by exactly one of them', async () => {
    // Written 35 s "ago" for a 1 min ttl: past the 30 s earlyTtl (age = ttl - time left to the absolute expiry).
    await store.ext.set('early-key', JSON.stringify('original'), { absoluteExpirationRelative: '25s' });
    const results = (await runTogether(2, ['early', testUrl(), table, 'early-key'])) as Array<{ served: string; refreshed: boolean; calls: number }>;
    expect(results.map((r) => r.served)).to.deep.equal(['original', 'original']);
    expect(results.reduce((sum, r) => sum + r.calls, 0)).to.equal(1);
    expect(results.filter((r) => r.refreshed)).to.have.length(1);
    expect(JSON.parse((await store.ext.getString('early-key'))!)).to.match(/^refreshed by \d+$/);
  });

  it("localCache: a value held in this process's memory is dropped when another process writes it", async () => {
    const reader = new PgStore({ uri: testUrl(), table, enableExpirationScan: false, localCache: { ttl: '1h' } });
    try {
      await reader.set('l1:shared', 'before');
      await waitFor(async () => {
        const before = reader.roundTrips;
        return (await reader.get('l1:shared')) === 'before' && reader.roundTrips === before;
      }, 5000, 'the value to be held in memory');
      const [written] = await runTogether(1, ['write', testUrl(), table, 'l1:shared', 'after']);
      expect(written).to.deep.equal({ written: true });
      // The ttl is an hour: only the other process's notification can explain a fresh read.
      await waitFor(async () => (await reader.get('l1:shared')) === 'after', 5000, 'the notification from the other process');
    } finally {
      await reader.disconnect();
    }
  });

  it('a holder killed with SIGKILL keeps its lock until the ttl runs out, and no longer', async () => {
    const worker = startWorker(['hold', testUrl(), table, 'crash-lock', '1500ms']);
    await worker.ready;
    worker.child.stdin.write('go\n');
    const { token, leaseStartsNoEarlierThan } = (await worker.result) as { token: string; leaseStartsNoEarlierThan: number };
    const exited = new Promise((resolve) => worker.child.once('exit', resolve));
    worker.child.kill('SIGKILL');
    await exited;
    expect(await store.ext.tryLock('crash-lock')).to.equal(undefined); // the lease still runs
    const next = await store.ext.lock('crash-lock', { wait: '10s', retryInterval: '20ms' });
    expect(Date.now() - leaseStartsNoEarlierThan).to.be.at.least(1500);
    expect(next.token > BigInt(token)).to.equal(true);
    await next.release();
  });
});
