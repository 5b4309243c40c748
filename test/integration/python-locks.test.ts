import { expect } from 'chai';
import Keyv from 'keyv';
import { LockNotHeldError, PgStore } from '../../src/index.js';
import { rejects } from '../helpers/assert.js';
import { sql, testUrl, waitFor } from '../helpers/db.js';
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
    // Node stores of both protocols exclude each other on one name (the lease-table store sees the python holder's lease).
    expect(await lease.ext.tryLock('a')).to.equal(undefined);
    expect(await rows.ext.tryLock('b')).to.equal(undefined);
    for (const handle of [a, b]) await handle.release();
    expect(await fx.ids()).to.deep.equal([]);
  });
});

describe("lockProtocol 'python' beside 'lease-table' holders and cache entries (no Python needed)", () => {
  const fx = useCacheTable('cp_pylock_mix');
  interface LeaseRow {
    owner: string;
    token: string;
    expiresat: Date | number;
  }
  const leaseRow = async (name: string) =>
    (await sql<LeaseRow>(`SELECT owner, token::text AS token, expiresat FROM public.${fx.table}_locks WHERE name = $1`, [name]))[0];
  /** Stores of both protocols on one application clock, moved by the test. */
  const clocked = () => {
    const clock = { now: Date.now() };
    return { clock, rows: fx.make({ lockProtocol: 'python', clock: () => clock.now }), lease: fx.make({ clock: () => clock.now }) };
  };

  it("a 'python' acquisition leaves a running lease-table lease alone: it fails, and no second lease-table holder gets in", async () => {
    const lease = fx.make();
    const other = fx.make();
    const rows = fx.make({ lockProtocol: 'python' });
    const first = (await lease.ext.tryLock('job-a', { ttl: '30s' }))!;
    expect(first).to.not.equal(undefined);
    const before = await leaseRow('job-a');
    expect(await rows.ext.tryLock('job-a'), 'a python-protocol holder beside a running lease').to.equal(undefined);
    expect(await leaseRow('job-a'), 'the running lease, untouched').to.deep.equal(before);
    expect(await fx.ids(), 'no lock row left in the cache table').to.deep.equal([]);
    expect(await rows.ext.isLocked('job-a')).to.equal(true);
    expect(await other.ext.tryLock('job-a'), 'a second lease-table holder').to.equal(undefined);
    expect(await first.held()).to.equal(true);
    await first.release();
    const next = (await rows.ext.tryLock('job-a'))!;
    expect(next.token > first.token, 'fencing tokens keep increasing across protocols').to.equal(true);
    await next.release();
  });

  it("a 'python' holder keeps lease-table stores out, also past its first ttl once extended; its waiter gets the name after a lease-table release", async () => {
    const { clock, rows, lease } = clocked();
    const held = (await rows.ext.tryLock('job-b', { ttl: '1s' }))!;
    expect(await lease.ext.tryLock('job-b')).to.equal(undefined);
    expect(await lease.ext.isLocked('job-b')).to.equal(true);
    await held.extend('30s');
    clock.now += 2000;
    expect(await lease.ext.tryLock('job-b'), 'past the first ttl, within the extension').to.equal(undefined);
    await held.release();
    expect(await lease.ext.isLocked('job-b')).to.equal(false);
    const taken = (await lease.ext.tryLock('job-b'))!;
    expect(taken.token > held.token).to.equal(true);
    const attempts = rows.roundTrips;
    const waiting = track(rows.ext.lock('job-b', { wait: '20s', retryInterval: '20ms' }));
    await waitFor(() => rows.roundTrips > attempts + 10, 5000, 'several attempts');
    expect(waiting.outcome.state, 'waits while the lease-table holder holds').to.equal('pending');
    await taken.release();
    const after = await within(waiting.promise, 10_000, 'the python waiter to take the name once released');
    expect(after.token > taken.token).to.equal(true);
    await after.release();
  });

  it('at no time do two holders of either protocol hold one name when they race for it', async () => {
    const stores = [fx.make(), fx.make(), fx.make(), fx.make({ lockProtocol: 'python' }), fx.make({ lockProtocol: 'python' }), fx.make({ lockProtocol: 'python' })];
    for (let round = 0; round < 15; round++) {
      const name = `race-${round}`;
      // Whoever comes first, in either protocol: one holder, whatever the interleaving.
      const order = round % 2 === 0 ? stores : [...stores].reverse();
      const handles = (await Promise.all(order.map((store) => store.ext.tryLock(name, { ttl: '30s' })))).filter((h) => h !== undefined);
      expect(handles.length, `holders of ${name}`).to.equal(1);
      const [handle] = handles;
      expect(await handle!.held()).to.equal(true);
      await handle!.release();
    }
  });

  it('a holder whose lease ran out cannot release or extend it, and its expired lock row stays as it was', async () => {
    const { clock, rows } = clocked();
    const handle = (await rows.ext.tryLock('job-d', { ttl: '1s' }))!;
    const row = (await fx.row('job-d'))!;
    clock.now += 2000;
    await rejects(handle.extend('1h'), LockNotHeldError);
    await rejects(handle.release(), LockNotHeldError);
    expect(await handle.held()).to.equal(false);
    expect(await fx.row('job-d'), 'the row, untouched').to.deep.equal(row);
  });

  for (const [writer, write] of [
    ['a Keyv-level set (no expiry)', async (store: PgStore, name: string, bytes: string) => store.set(name, bytes)],
    ['ext.set with an absolute expiry', async (store: PgStore, name: string, bytes: string) => store.ext.set(name, bytes, { absoluteExpirationRelative: '1h' })],
    [
      'a lock-shaped row with another lease end (a set_lock reusing the value)',
      async (_store: PgStore, name: string, bytes: string, now: number) =>
        sql(`UPDATE public.${fx.table} SET value = convert_to($2, 'UTF8'), expiresattime = $3 WHERE id = $1`, [name, bytes, new Date(now + 3_600_000)]),
    ],
  ] as const) {
    it(`after the lease ran out, an entry whose bytes equal the token (${writer}) is neither released nor extended`, async () => {
      const { clock, rows } = clocked();
      const handle = (await rows.ext.tryLock('job-e', { ttl: '1s' }))!;
      const owner = (await rows.ext.getString('job-e'))!;
      expect(owner).to.match(/^[0-9a-f-]{36}$/);
      clock.now += 2000;
      await write(rows, 'job-e', owner, clock.now);
      const entry = (await fx.row('job-e'))!;
      expect(entry.value.toString('utf8')).to.equal(owner);
      await rejects(handle.release(), LockNotHeldError);
      await rejects(handle.extend('2h'), LockNotHeldError);
      expect(await handle.held()).to.equal(false);
      expect(await fx.row('job-e'), 'the entry, untouched').to.deep.equal(entry);
    });
  }

  it("a release racing the holder's own renewal (withLock's timer) still releases: both take the lease's row first", async () => {
    const rows = fx.make({ lockProtocol: 'python' });
    for (let round = 0; round < 20; round++) {
      const handle = (await rows.ext.tryLock('job-g', { ttl: '30s' }))!;
      const [extended, released] = await Promise.allSettled([handle.extend('1m'), handle.release()]);
      expect(released.status, `round ${round}: ${released.status === 'rejected' ? String(released.reason) : ''}`).to.equal('fulfilled');
      // The renewal either came first or found the lease released.
      if (extended.status === 'rejected') expect(extended.reason).to.be.instanceOf(LockNotHeldError);
      expect(await rows.ext.isLocked('job-g')).to.equal(false);
    }
  });

  it('a lock row deleted under its holder: another python-protocol holder takes the name at once, and the first one is told it lost it', async () => {
    const rows = fx.make({ lockProtocol: 'python' });
    const lease = fx.make();
    const handle = (await rows.ext.tryLock('job-f', { ttl: '30s' }))!;
    expect(await lease.ext.tryLock('job-f')).to.equal(undefined);
    await rows.ext.delete('job-f');
    expect(await rows.ext.isLocked('job-f')).to.equal(false);
    const other = (await rows.ext.tryLock('job-f', { ttl: '30s' }))!;
    expect(other, 'a python-protocol holder takes the freed row').to.not.equal(undefined);
    await rejects(handle.extend(), LockNotHeldError);
    await rejects(handle.release(), LockNotHeldError);
    expect(await other.held()).to.equal(true);
    await other.release();
    const taken = (await lease.ext.tryLock('job-f'))!;
    expect(taken.token > other.token).to.equal(true);
    await taken.release();
  });
});
