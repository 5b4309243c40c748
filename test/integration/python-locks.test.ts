import { expect } from 'chai';
import Keyv from 'keyv';
import { LockNotHeldError, PgStore } from '../../src/index.js';
import { rejects } from '../helpers/assert.js';
import { testUrl, waitFor } from '../helpers/db.js';
import { useCacheTable } from '../helpers/fixture.js';
import { pythonCall, pythonPeer, pythonProcess } from '../helpers/python-peer.js';
import { track, within } from '../helpers/settle.js';

describe("lockProtocol 'python': locks shared with the Python library (run as a peer process)", function () {
  this.timeout(60_000);
  before(function () {
    const peer = pythonPeer();
    // Where Python cannot run, nothing here can be checked: say why (CI installs what it needs).
    if (typeof peer === 'string') {
      console.warn(`      (skipped: ${peer})`);
      this.skip();
    }
  });
  const fx = useCacheTable('cp_pylock');
  const store = () => fx.make({ lockProtocol: 'python' });
  const py = (expression: string) => pythonCall(testUrl(), fx.table, expression);

  it('Node holds: set_lock fails and is_locked is true; released, Python takes it and Node cannot, until Python unlocks', async () => {
    const node = store();
    const held = (await node.ext.tryLock('nightly-job', { ttl: '30s' }))!;
    expect(held).to.not.equal(undefined);
    expect(await py("cache.set_lock('nightly-job', 'python-owner', '30s')")).to.equal(false);
    expect(await py("cache.is_locked('nightly-job')")).to.equal(true);
    await held.release();
    expect(await py("cache.is_locked('nightly-job')")).to.equal(false);
    expect(await py("cache.set_lock('nightly-job', 'python-owner', '30s')")).to.equal(true);
    expect(await node.ext.tryLock('nightly-job')).to.equal(undefined);
    expect(await node.ext.isLocked('nightly-job')).to.equal(true);
    expect(await py("cache.unlock('nightly-job', 'python-owner')")).to.equal(true);
    expect(await node.ext.isLocked('nightly-job')).to.equal(false);
    const again = (await node.ext.tryLock('nightly-job'))!;
    expect(again.token > held.token, 'fencing tokens keep increasing across Python holders').to.equal(true);
    await again.release();
  });

  it("Python holds with its lock() context manager: Node's lock waits for its release, then gets it", async () => {
    const node = store();
    const holder = pythonProcess(testUrl(), fx.table, `
with cache.lock('nightly-job', expire='30s'):
    say('held')
    sys.stdin.readline()
    say('releasing')
say('released')
`);
    try {
      expect(await within(holder.next(), 20_000, 'python to hold the lock')).to.equal('held');
      expect(await node.ext.tryLock('nightly-job')).to.equal(undefined);
      const attempts = node.roundTrips;
      const waiting = track(node.ext.lock('nightly-job', { wait: '20s', retryInterval: '20ms' }));
      // Still waiting after several of its attempts: Python holds.
      await waitFor(() => node.roundTrips > attempts + 5, 5000, 'several attempts');
      expect(waiting.outcome.state).to.equal('pending');
      holder.send('release');
      expect(await holder.next()).to.equal('releasing');
      const handle = await within(waiting.promise, 10_000, 'node to take the lock once python released it');
      expect(await within(holder.next(), 10_000, 'python to finish')).to.equal('released');
      expect(await py("cache.set_lock('nightly-job', 'python-2', '30s')")).to.equal(false);
      await handle.release();
    } finally {
      holder.child.kill('SIGKILL');
    }
  });

  it('a crashed Python holder: its row expires and Node takes over, with a fencing token', async () => {
    const node = store();
    const holder = pythonProcess(testUrl(), fx.table, `
say(cache.set_lock('nightly-job', 'crashing-owner', '1s'))
sys.stdin.readline()
`);
    try {
      expect(await within(holder.next(), 20_000, 'python to take the lock')).to.equal(true);
      holder.child.kill('SIGKILL'); // never unlocks
      expect(await node.ext.tryLock('nightly-job')).to.equal(undefined);
      const handle = await within(node.ext.lock('nightly-job', { wait: '10s', retryInterval: '50ms' }), 15_000, 'the lease to run out');
      expect(handle.token > 0n).to.equal(true);
      expect(await py("cache.is_locked('nightly-job')")).to.equal(true);
      await handle.release();
    } finally {
      holder.child.kill('SIGKILL');
    }
  });

  it('withLock renews the row lease while its function runs: Python cannot take it meanwhile', async () => {
    const node = store();
    await node.ext.withLock('nightly-job', async () => {
      // Each attempt starts a Python process (a few hundred ms): three of them outlast the 600 ms lease
      // several times over, which only its renewals keep.
      const started = performance.now();
      for (let i = 0; performance.now() - started < 2000 || i < 3; i++) {
        expect(await py("cache.set_lock('nightly-job', 'python-owner', '30s')"), `attempt ${i}`).to.equal(false);
      }
    }, { ttl: '600ms' });
    expect(await py("cache.is_locked('nightly-job')")).to.equal(false);
  });

  it('a Node holder whose lease ran out and was taken by Python gets LockNotHeldError, and leaves Python\'s row alone', async () => {
    const node = store();
    const handle = (await node.ext.tryLock('nightly-job', { ttl: '200ms' }))!;
    await waitFor(async () => (await py("cache.set_lock('nightly-job', 'python-owner', '30s')")) === true, 10_000, 'the lease to run out and python to take it');
    await rejects(handle.extend(), LockNotHeldError);
    await rejects(handle.release(), LockNotHeldError);
    expect(await handle.held()).to.equal(false);
    expect(await py("cache.unlock('nightly-job', 'python-owner')")).to.equal(true);
  });

  it('a lock row is an entry of the table: ext sees it, a Keyv namespace does not, and it ends the lease when deleted', async () => {
    const node = store();
    const keyv = new Keyv({ store: node, namespace: 'app' });
    const handle = (await node.ext.tryLock('nightly-job', { ttl: '30s' }))!;
    expect(await keyv.get('nightly-job')).to.equal(undefined);
    expect(await new Keyv({ store: node }).get('nightly-job')).to.equal(undefined);
    expect((await node.ext.getString('nightly-job'))!).to.match(/^[0-9a-f-]{36}$/);
    expect(await node.ext.info('nightly-job')).to.include({ slidingExpiration: undefined, absoluteExpiration: undefined });
    await keyv.clear(); // the namespace's rows only
    expect(await handle.held()).to.equal(true);
    await node.ext.delete('nightly-job');
    await rejects(handle.release(), LockNotHeldError);
  });

  it('takes over an expired cache entry under the name, clearing its sliding window so a read cannot move the lease', async () => {
    const clock = { now: Date.now() };
    const node = new PgStore({ uri: testUrl(), table: fx.table, enableExpirationScan: false, lockProtocol: 'python', clock: () => clock.now });
    try {
      await node.ext.set('nightly-job', 'an entry', { slidingExpiration: '1m', tags: ['t'] });
      expect(await node.ext.tryLock('nightly-job')).to.equal(undefined); // a live entry holds the name, as in Python
      clock.now += 61_000;
      const handle = (await node.ext.tryLock('nightly-job', { ttl: '30s' }))!;
      expect(await node.ext.info('nightly-job')).to.include({ slidingExpiration: undefined, absoluteExpiration: undefined });
      expect((await node.ext.info('nightly-job'))!.tags).to.deep.equal([]);
      await handle.release();
    } finally {
      await node.disconnect();
    }
  });
});

describe("lockProtocol: the option (no Python needed)", () => {
  const fx = useCacheTable('cp_pylock_opt');

  it('refuses anything but lease-table or python, naming both', () => {
    for (const bad of ['row', 'Python', 1, null]) {
      expect(() => new PgStore({ uri: testUrl(), lockProtocol: bad as never }), String(bad)).to.throw(/lockProtocol.*'lease-table' \(the default\) or 'python'/);
    }
  });

  it("'python' locks are rows of the cache table on a fresh store, and 'lease-table' ones are not", async () => {
    const rows = fx.make({ lockProtocol: 'python' });
    const lease = fx.make();
    const a = (await rows.ext.tryLock('a'))!;
    const b = (await lease.ext.tryLock('b'))!;
    expect(await fx.ids()).to.deep.equal(['a']);
    // Two protocols on one name do not exclude each other: every process sharing names must use one.
    const crossed = (await lease.ext.tryLock('a'))!;
    expect(crossed).to.not.equal(undefined);
    for (const handle of [a, b, crossed]) await handle.release();
    expect(await fx.ids()).to.deep.equal([]);
  });
});
