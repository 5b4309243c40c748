import { expect } from 'chai';
import pg from 'pg';
import { FactoryTimeoutError, InvalidKeyError, InvalidOptionError, InvalidValueError, PgStore, ValueTooLargeError } from '../../src/index.js';
import { manualClock, rejects } from '../helpers/assert.js';
import { testUrl, waitFor } from '../helpers/db.js';
import { useCacheTable } from '../helpers/fixture.js';

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));
class DownstreamError extends Error {}


/** A promise the test settles when it chooses. */
function deferred<T>(): { promise: Promise<T>; resolve(value: T): void } {
  let resolve!: (value: T) => void;
  const promise = new Promise<T>((settle) => (resolve = settle));
  return { promise, resolve };
}

describe('resilience: wrappers, timeouts, grace, serializers, events', () => {
  const fx = useCacheTable('cp_resil');

  describe('cached', () => {
    it('renders keys from the arguments, computes once per key, and serves hits without the function', async () => {
      const ext = fx.make().ext;
      let calls = 0;
      const getUser = ext.cached(async (id: number, opts?: { full: boolean }) => {
        calls++;
        await sleep(20);
        return { id, full: opts?.full ?? false };
      }, { key: 'user:{0}:{1.full}', ttl: '10m' });
      const results = await Promise.all(Array.from({ length: 5 }, () => getUser(7, { full: true })));
      expect(results).to.deep.equal(Array(5).fill({ id: 7, full: true }));
      expect(await getUser(7, { full: true })).to.deep.equal({ id: 7, full: true });
      expect(calls).to.equal(1);
      expect(await fx.ids()).to.deep.equal(['user:7:true']);
      expect((await fx.row('user:7:true'))!.value.toString()).to.equal('{"id":7,"full":true}'); // plain JSON: readable by anyone
      const byProperty = ext.cached(async (q: { id: string }) => q.id, { key: 'q:{id}' });
      expect(await byProperty({ id: 'x' })).to.equal('x');
      await rejects(getUser(8), InvalidValueError, /no value for \{1.full\}/);
    });

    it('keeps types with the v8 serializer, compresses large values with a header, and enforces maxValueSize', async () => {
      const ext = fx.make().ext;
      const typed = ext.cached(async () => ({ when: new Date(0), ids: new Set([1, 2]), big: 10n }), { key: 'typed', serializer: 'v8' });
      const value = await typed();
      expect((await typed()).when).to.be.instanceOf(Date);
      expect(value.ids.has(2)).to.equal(true);

      const large = ext.cached(async () => 'a'.repeat(50_000), { key: 'large', compression: { threshold: 1024 } });
      expect(await large()).to.equal('a'.repeat(50_000));
      const stored = (await fx.row('large'))!.value;
      expect([...stored.subarray(0, 5)]).to.deep.equal([0x00, 0x63, 0x70, 0x7a, 0x67]);
      expect(stored.length).to.be.lessThan(1000);
      expect(await large()).to.equal('a'.repeat(50_000)); // decompressed on a hit too

      const capped = ext.cached(async () => 'b'.repeat(2000), { key: 'capped', maxValueSize: 1000 });
      const error = await rejects(capped(), ValueTooLargeError, /2002 bytes once stored; maxValueSize allows 1000/);
      expect(error.code).to.equal('E_VALUE_TOO_LARGE');
      expect(await fx.row('capped')).to.equal(undefined);
    });

    it('passes Buffers through untouched', async () => {
      const ext = fx.make().ext;
      const bytes = ext.cached(async () => Buffer.from([0, 1, 2, 255]), { key: 'bytes', serializer: 'raw' });
      expect([...(await bytes())]).to.deep.equal([0, 1, 2, 255]);
      expect([...(await fx.row('bytes'))!.value]).to.deep.equal([0, 1, 2, 255]);
    });

    it('works as a standard method decorator', async () => {
      const store = fx.make();
      const { cached } = store.ext.decorators;
      let calls = 0;
      class Repository {
        prefix = 'repo';
        @cached({ key: 'item:{0}', ttl: '1m' })
        async find(id: number): Promise<string> {
          calls++;
          return `${this.prefix}-${id}`;
        }
      }
      const repository = new Repository();
      expect(await repository.find(3)).to.equal('repo-3');
      expect(await repository.find(3)).to.equal('repo-3');
      expect(calls).to.equal(1);
    });
  });

  describe('failover', () => {
    it('serves the last value (as stale, not re-stored) on listed errors, up to maxStale only', async () => {
      const clock = manualClock();
      const store = fx.make({ clock, retainExpiredFor: '1h' });
      let fail = false;
      const weather = store.ext.failover(async (city: string) => {
        if (fail) throw new DownstreamError('upstream is down');
        return { city, temp: 21 };
      }, { key: 'weather:{0}', ttl: '1m', errors: [DownstreamError], maxStale: '10m' });
      expect(await weather('oslo')).to.deep.equal({ city: 'oslo', temp: 21 });
      const stored = (await fx.row('weather:oslo'))!;
      clock.advance(2 * 60_000); // expired a minute ago
      fail = true;
      const stale: unknown[] = [];
      store.on('stale-served', (info) => stale.push(info));
      expect(await weather('oslo')).to.deep.equal({ city: 'oslo', temp: 21 });
      expect(stale).to.deep.equal([{ key: 'weather:oslo', reason: 'failover', expiredMsAgo: 60_000 }]);
      expect((await fx.row('weather:oslo'))!.expiresattime).to.deep.equal(stored.expiresattime); // not revived
      clock.advance(10 * 60_000); // now past maxStale
      await rejects(weather('oslo'), DownstreamError, /upstream is down/);
      await rejects(weather('paris'), DownstreamError); // no last value at all
    });

    it('rethrows errors that are not listed', async () => {
      const store = fx.make({ retainExpiredFor: '1h' });
      const flaky = store.ext.failover(async () => {
        throw new TypeError('a bug, not an outage');
      }, { key: 'bug', errors: (error) => error instanceof DownstreamError, maxStale: '1h' });
      await rejects(flaky(), TypeError, /a bug/);
    });

    it("falls back on the function's failures only: a key the arguments make invalid is the caller's InvalidKeyError, the function not called", async () => {
      const store = fx.make({ retainExpiredFor: '1h' });
      let calls = 0;
      // Default `errors` (every error): an invalid key must still not count as an outage of the function.
      const weather = store.ext.failover(async (city: string) => {
        calls++;
        return city;
      }, { key: 'weather:{0}', ttl: '1m', maxStale: '1h' });
      await rejects(weather('a\u0000b'), InvalidKeyError, /NUL/);
      await rejects(weather('x'.repeat(500)), InvalidKeyError);
      await rejects(store.ext.failover(async () => 1, { key: 'w:{0.missing}', maxStale: '1h' })(), InvalidValueError, /no value for \{0.missing\}/);
      expect(calls).to.equal(0);
      expect(await fx.ids()).to.deep.equal([]);
    });
  });

  describe('early', () => {
    it('serves at once and refreshes once in the background across two stores (own pools)', async () => {
      const clock = manualClock();
      const stores = [1, 2].map(() => {
        const store = new PgStore({ uri: testUrl(), table: fx.table, clock, enableExpirationScan: false });
        return store;
      });
      try {
        let version = 0;
        const load = async () => {
          version++;
          await sleep(30);
          return `v${version}`;
        };
        const readers = stores.map((store) => store.ext.early(load, { key: 'report', ttl: '1m', earlyTtl: '30s' }));
        expect(await readers[0]!()).to.equal('v1');
        clock.advance(10_000);
        expect(await Promise.all(readers.map((read) => read()))).to.deep.equal(['v1', 'v1']); // young: no refresh
        expect(version).to.equal(1);
        clock.advance(25_000); // 35 s old
        const refreshed = Promise.race(stores.map((store) => new Promise((resolve) => store.once('refresh', resolve))));
        expect(await Promise.all(readers.map((read) => read()))).to.deep.equal(['v1', 'v1']); // served at once
        await refreshed;
        expect(version).to.equal(2);
        expect(await readers[1]!()).to.equal('v2');
        expect(await stores[0]!.ext.ttl('report')).to.equal(60_000); // stored with a fresh absolute ttl
      } finally {
        await Promise.all(stores.map((store) => store.disconnect()));
      }
    });

    it('refreshes once even when another process refreshed between its read and its lease (no second refresh)', async () => {
      const clock = manualClock();
      // Store A's lease request reaches PostgreSQL late (as on a loaded server or through a Citus coordinator):
      // B reads, refreshes and releases the lease in between.
      let delayLease = false;
      let leaseDone: () => void = () => {};
      const aReleased = new Promise<void>((resolve) => (leaseDone = resolve));
      const slowPool = new pg.Pool({ connectionString: testUrl(), max: 2 });
      slowPool.on('connect', (client) => {
        const query = client.query.bind(client) as (q: unknown) => unknown;
        (client as { query: unknown }).query = (q: { name?: string; callback?: unknown }) => {
          if (delayLease && q.name?.startsWith('cp_lock_acquire')) {
            delayLease = false;
            setTimeout(() => query(q), 300);
            return undefined;
          }
          if (q.name?.startsWith('cp_lock_release')) setTimeout(leaseDone, 0);
          return query(q);
        };
      });
      const a = new PgStore({ pool: slowPool, table: fx.table, clock, enableExpirationScan: false });
      const b = new PgStore({ uri: testUrl(), table: fx.table, clock, enableExpirationScan: false });
      try {
        let version = 0;
        const load = async () => `v${++version}`;
        const [readA, readB] = [a, b].map((store) => store.ext.early(load, { key: 'report2', ttl: '1m', earlyTtl: '30s' }));
        expect(await readA!()).to.equal('v1');
        clock.advance(35_000);
        const bRefreshed = new Promise((resolve) => b.once('refresh', resolve));
        delayLease = true;
        expect(await readA!()).to.equal('v1'); // A decides to refresh; its lease request is on its way
        expect(await readB!()).to.equal('v1'); // B decides too, takes the lease at once, refreshes, releases
        await bRefreshed;
        await aReleased; // A got the lease after B released it, and is done with it
        expect(version, 'computations: the first, and one refresh').to.equal(2);
        expect(await readA!()).to.equal('v2');
      } finally {
        await Promise.all([a.disconnect(), b.disconnect()]);
        await slowPool.end();
      }
    });

    it('refuses earlyTtl not shorter than ttl', async () => {
      const ext = fx.make().ext;
      await rejects(async () => ext.early(async () => 1, { key: 'k', ttl: '1m', earlyTtl: '1m' }), InvalidOptionError, /shorter than ttl/);
    });
  });

  describe('getOrSet timeouts, grace, jitter, forceFresh', () => {
    it('soft timeout: serves the stale value without waiting for the factory, and stores its result in the background', async () => {
      const clock = manualClock();
      const store = fx.make({ clock, retainExpiredFor: '1h' });
      await store.ext.set('slow', 'old', { absoluteExpirationRelative: '1m' });
      clock.advance(61_000);
      const refreshed = new Promise((resolve) => store.once('refresh', resolve));
      // The factory answers only when the test says: getOrSet resolving before that is the promise kept,
      // however slow the machine (no wall-clock bound to miss under load).
      const factory = deferred<string>();
      const value = await store.ext.getOrSet('slow', () => factory.promise, { softTimeout: 30, absoluteExpirationRelative: '1m' });
      expect(value.toString()).to.equal('old');
      factory.resolve('new');
      await refreshed;
      expect(await store.ext.getString('slow')).to.equal('new');
    });

    it('hard timeout: a typed error when nothing stale exists; the computation still stores its value', async () => {
      const store = fx.make();
      const errors: unknown[] = [];
      store.on('factory-error', (info) => errors.push(info));
      const factory = deferred<string>(); // answers after the timeout, whatever the machine's load
      await rejects(store.ext.getOrSet('hard', () => factory.promise, { hardTimeout: 30 }), FactoryTimeoutError, /within 30 ms/);
      factory.resolve('late');
      await waitFor(async () => (await store.ext.getString('hard')) === 'late', 5000, 'the late value');
      expect(errors).to.deep.equal([]);
    });

    it('grace never hides a caller error as a failure: a factory value that cannot be stored is an InvalidValueError', async () => {
      const clock = manualClock();
      const store = fx.make({ clock, retainExpiredFor: '1h' });
      await store.ext.set('graced-bad', 'last good', { absoluteExpirationRelative: '1m' });
      clock.advance(90_000);
      const unstorable = async () => 42 as unknown as string; // not bytes nor a string: the caller's bug
      await rejects(store.ext.getOrSet('graced-bad', unstorable, { grace: { maxStale: '1h' } }), InvalidValueError);
    });

    it('grace: serves the stale value when the factory fails, then backs off before calling it again', async () => {
      const clock = manualClock();
      const store = fx.make({ clock, retainExpiredFor: '1h' });
      await store.ext.set('graced', 'last good', { absoluteExpirationRelative: '1m' });
      clock.advance(90_000);
      let calls = 0;
      const failing = async () => {
        calls++;
        throw new DownstreamError('down');
      };
      const options = { grace: { maxStale: '10m', backoff: '30s' }, absoluteExpirationRelative: '1m' };
      expect((await store.ext.getOrSet('graced', failing, options)).toString()).to.equal('last good');
      expect((await store.ext.getOrSet('graced', failing, options)).toString()).to.equal('last good');
      expect(calls).to.equal(1); // the second call was inside the backoff
      clock.advance(31_000);
      expect((await store.ext.getOrSet('graced', failing, options)).toString()).to.equal('last good');
      expect(calls).to.equal(2);
      expect((await store.ext.getOrSet('graced', async () => 'recovered', { ...options, forceFresh: true })).toString()).to.equal('recovered');
      clock.advance(20 * 60_000);
      await rejects(store.ext.getOrSet('never-cached', failing, options), DownstreamError);
    });

    it('hard timeout with grace: serves the stale value instead of the error', async () => {
      const clock = manualClock();
      const store = fx.make({ clock, retainExpiredFor: '1h' });
      await store.ext.set('hard-grace', 'stale but served', { absoluteExpirationRelative: '1m' });
      clock.advance(61_000);
      const factory = deferred<string>(); // answers after the timeout, whatever the machine's load
      const value = await store.ext.getOrSet('hard-grace', () => factory.promise, { hardTimeout: 30, grace: { maxStale: '10m' } });
      expect(value.toString()).to.equal('stale but served');
      factory.resolve('too late');
      await waitFor(async () => (await store.ext.getString('hard-grace')) === 'too late', 5000, 'the background result');
    });

    it('jitter spreads the stored expiry within the given fraction', async () => {
      const clock = manualClock();
      const ext = fx.make({ clock }).ext;
      const ttls = new Set<number>();
      for (let i = 0; i < 10; i++) {
        await ext.getOrSet(`j${i}`, () => 'x', { absoluteExpirationRelative: 100_000, jitter: 0.2 });
        ttls.add((await ext.ttl(`j${i}`))!);
      }
      for (const ttl of ttls) expect(ttl).to.be.within(80_000, 120_000);
      expect(ttls.size).to.be.greaterThan(1);
    });

    it('forceFresh recomputes a live value', async () => {
      const ext = fx.make().ext;
      await ext.set('f', 'old');
      expect((await ext.getOrSet('f', () => 'new', { forceFresh: true })).toString()).to.equal('new');
      expect(await ext.getString('f')).to.equal('new');
    });
  });

  describe('events and stats', () => {
    it('counts hits, misses, factory calls and errors, stale serves, lock waits and refreshes exactly', async () => {
      const clock = manualClock();
      const store = fx.make({ clock, retainExpiredFor: '1h' });
      const seen: string[] = [];
      for (const event of ['hit', 'miss', 'stale-served', 'factory-error', 'lock-wait'] as const) {
        store.on(event, () => seen.push(event));
      }
      await store.ext.getOrSet('e', () => 'one'); // miss, factory call
      await store.ext.getOrSet('e', () => 'two'); // hit
      await store.ext.set('old', 'v', { absoluteExpirationRelative: '1s' });
      clock.advance(2000);
      await store.ext.getOrSet('old', () => {
        throw new DownstreamError('x');
      }, { grace: { maxStale: '1m' } }); // miss, factory call + error, stale served
      const holder = await fx.pool.connect();
      await holder.query('BEGIN');
      await holder.query('SELECT pg_advisory_xact_lock(hashtextextended($1, 0))', ['busy']);
      const waiting = store.ext.getOrSet('busy', () => 'computed'); // miss, lock wait, factory call
      await waitFor(async () => (await fx.pool.query(`SELECT 1 FROM pg_locks WHERE locktype = 'advisory' AND NOT granted`)).rowCount! > 0);
      await holder.query('COMMIT');
      holder.release();
      await waiting;
      const stats = await store.stats();
      expect(stats).to.include({ hits: 1, misses: 3, factoryCalls: 3, factoryErrors: 1, staleServed: 1, lockWaits: 1 });
      expect(stats.rows).to.equal(3);
      expect(stats.liveRows).to.equal(2);
      expect(stats.bytes).to.be.greaterThan(0);
      expect(seen.sort()).to.deep.equal(['factory-error', 'hit', 'lock-wait', 'miss', 'miss', 'miss', 'stale-served']);
    });
  });
});
