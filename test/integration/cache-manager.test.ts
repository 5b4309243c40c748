import { expect } from 'chai';
import { createCache } from 'cache-manager';
import { caching } from 'cache-manager5';
import { Cacheable } from 'cacheable';
import Keyv from 'keyv';
import { InvalidValueError, PgStore } from '../../src/index.js';
import { createPgCache } from '../../src/cache_manager/index.js';
import { pgStore } from '../../src/cache_manager/v5.js';
import { dropTables, testUrl, uniqueTable } from '../helpers/db.js';

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

describe('cache-manager and cacheable', () => {
  const table = uniqueTable('cp_cm');
  const open: Array<{ disconnect(): Promise<unknown> }> = [];
  const pg = (options: Record<string, unknown> = {}) => {
    const store = new PgStore({ uri: testUrl(), table, enableExpirationScan: false, ...options });
    open.push(store);
    return store;
  };
  afterEach(async () => {
    await Promise.all(open.splice(0).map((s) => s.disconnect()));
  });
  after(() => dropTables(table, `${table}_locks`));

  describe('cache-manager 7 through Keyv', () => {
    it('does get, set, mget, mset, del, mdel, ttl and clear', async () => {
      const cache = createCache({ stores: [new Keyv({ store: pg(), namespace: 'cm7' })], ttl: 60_000 });
      expect(await cache.set('a', { n: 1 })).to.deep.equal({ n: 1 });
      expect(await cache.get('a')).to.deep.equal({ n: 1 });
      await cache.mset<unknown>([{ key: 'b', value: 2 }, { key: 'c', value: 'three', ttl: 5_000 }]);
      expect(await cache.mget(['a', 'b', 'c', 'none'])).to.deep.equal([{ n: 1 }, 2, 'three', undefined]);
      const left = (await cache.ttl('c'))! - Date.now();
      expect(left).to.be.within(4_000, 5_000);
      expect(await cache.del('a')).to.equal(true);
      expect(await cache.mdel(['b', 'c'])).to.equal(true);
      expect(await cache.get('b')).to.equal(undefined);
      await cache.set('d', 4);
      await cache.clear();
      expect(await cache.get('d')).to.equal(undefined);
    });

    it('wraps, with refreshThreshold serving the old value and refreshing in the background', async () => {
      const cache = createCache({ stores: [new Keyv({ store: pg(), namespace: 'cm7wrap' })] });
      let version = 0;
      const load = async () => ++version;
      expect(await cache.wrap('w', load, 2_000, 1_990)).to.equal(1);
      const refreshed = new Promise<{ value: unknown }>((resolve) => cache.on('refresh', resolve));
      await sleep(20); // now inside the refresh threshold
      expect(await cache.wrap('w', load, 2_000, 1_990)).to.equal(1); // served at once
      expect((await refreshed).value).to.equal(2);
      expect(await cache.get('w')).to.equal(2);
    });

    it('works as the second tier behind an in-memory first tier', async () => {
      const memory = new Keyv();
      const store = pg();
      const cache = createCache({ stores: [memory, new Keyv({ store, namespace: 'tier2' })] });
      await cache.set('k', 'v', 60_000);
      expect(await store.get('tier2:k')).to.be.a('string'); // written through to PostgreSQL
      await memory.clear();
      expect(await cache.get('k')).to.equal('v'); // served by PostgreSQL
      await cache.wrap('k', async () => 'unused', 60_000);
      expect(await memory.get('k')).to.equal('v'); // back-filled into memory by wrap
    });
  });

  describe('createPgCache', () => {
    it('is a cache-manager Cache in one line, readable through plain Keyv', async () => {
      const cache = createPgCache({ store: { uri: testUrl(), table, enableExpirationScan: false }, namespace: 'one', ttl: 60_000 });
      open.push(cache.pgStore);
      await cache.set('user:1', { name: 'Ada' });
      expect(await cache.get('user:1')).to.deep.equal({ name: 'Ada' });
      expect(await new Keyv({ store: cache.pgStore, namespace: 'one' }).get('user:1')).to.deep.equal({ name: 'Ada' });
    });

    it('makes wrap stampede-safe across caches with their own pools: one call for 2 x 10 concurrent wraps', async () => {
      const caches = [1, 2].map(() => {
        const cache = createPgCache({ store: { uri: testUrl(), table, enableExpirationScan: false }, namespace: 'stampede', ttl: 60_000 });
        open.push(cache.pgStore);
        return cache;
      });
      let calls = 0;
      const results = await Promise.all(
        caches.flatMap((cache) =>
          Array.from({ length: 10 }, () =>
            cache.wrap('report', async () => {
              calls++;
              await sleep(150);
              return { rows: 42 };
            }),
          ),
        ),
      );
      expect(calls).to.equal(1);
      expect(results.every((r) => r.rows === 42)).to.equal(true);
      expect(await caches[1]!.get('report')).to.deep.equal({ rows: 42 });
    });

    it('refreshes in the background once across caches, and emits refresh', async () => {
      const caches = [1, 2].map(() => {
        const cache = createPgCache({ store: { uri: testUrl(), table, enableExpirationScan: false }, namespace: 'refresh' });
        open.push(cache.pgStore);
        return cache;
      });
      // Both ready first: a store's first call checks the schema, which on a Citus coordinator can take longer
      // than the 50 ms refresh below, and the second cache would then read the refreshed value.
      await Promise.all(caches.map((cache) => cache.pgStore.ready()));
      let calls = 0;
      const load = async () => {
        calls++;
        await sleep(50);
        return calls;
      };
      expect(await caches[0]!.wrap('r', load, { ttl: 2_000, refreshThreshold: 1_990 })).to.equal(1);
      await sleep(20);
      const events = caches.map((cache) => new Promise<{ value: unknown }>((resolve) => cache.on('refresh', resolve)));
      expect(await Promise.all(caches.map((cache) => cache.wrap('r', load, { ttl: 2_000, refreshThreshold: 1_990 })))).to.deep.equal([1, 1]);
      const refreshed = await Promise.all(events);
      expect(refreshed.map((e) => e.value)).to.deep.equal([2, 2]);
      expect(calls).to.equal(2); // one first computation, one refresh for both caches
    });
  });

  describe('cacheable 2', () => {
    it('uses PgStore as the secondary store, with tags and getOrSet', async () => {
      const store = pg();
      const cache = new Cacheable({ secondary: new Keyv({ store, namespace: 'cbl' }), ttl: '1m', tags: true });
      await cache.set('p:1', { price: 10 }, { tags: ['products'] });
      expect(await cache.get('p:1')).to.deep.equal({ price: 10 });
      expect(await store.has('cbl:p:1')).to.equal(true); // in PostgreSQL
      await cache.tags.invalidateTag('products');
      expect(await cache.get('p:1')).to.equal(undefined);
      let calls = 0;
      const value = await cache.getOrSet('g', async () => {
        calls++;
        return 'computed';
      });
      expect(value).to.equal('computed');
      expect(await cache.getOrSet('g', async () => 'again')).to.equal('computed');
      expect(calls).to.equal(1);
      await cache.disconnect();
    });
  });

  describe('cache-manager 5', () => {
    it('works as a caching(pgStore, config) store: get, set, del, reset, mget, mset, mdel, keys, ttl, wrap', async () => {
      const cache = await caching(pgStore, { uri: testUrl(), table, enableExpirationScan: false, ttl: 60_000, prefix: 'v5:' });
      open.push(cache.store);
      await cache.set('a', { x: 1 });
      expect(await cache.get('a')).to.deep.equal({ x: 1 });
      await cache.store.mset([['b', 2], ['c', [3]]], 5_000);
      expect(await cache.store.mget('a', 'b', 'c', 'none')).to.deep.equal([{ x: 1 }, 2, [3], undefined]);
      expect((await cache.store.keys()).sort()).to.deep.equal(['a', 'b', 'c']);
      expect(await cache.store.keys('?')).to.have.length(3);
      expect(await cache.store.ttl('b')).to.be.within(4_000, 5_000);
      expect(await cache.store.ttl('none')).to.equal(-2);
      await cache.store.set('forever', 1, 0);
      expect(await cache.store.ttl('forever')).to.equal(-1);
      await cache.del('a');
      await cache.store.mdel('b', 'c');
      expect(await cache.get('b')).to.equal(undefined);
      let calls = 0;
      expect(await cache.wrap('w', async () => ++calls)).to.equal(1);
      expect(await cache.wrap('w', async () => ++calls)).to.equal(1);
      await cache.reset();
      expect(await cache.store.keys()).to.deep.equal([]);
    });
  });

  describe('ttl edges, as cache-manager over an in-memory Keyv', () => {
    for (const ttl of [-1, () => -5]) {
      it(`wrap with a negative ttl (${typeof ttl === 'function' ? 'a function' : ttl}) recomputes, like cache-manager over memory`, async () => {
        const memory = createCache({ stores: [new Keyv()] });
        const ours = createPgCache({ store: pg(), namespace: `neg${typeof ttl}` });
        for (const cache of [memory, ours]) {
          let calls = 0;
          const compute = async () => ++calls;
          await cache.wrap('k', compute, ttl as never);
          await sleep(5);
          await cache.wrap('k', compute, ttl as never);
          expect(calls, cache === memory ? 'memory' : 'createPgCache').to.equal(2);
        }
      });
    }

    it('the v5 store: set with a negative ttl is expired at once, NaN is refused, a row that is not JSON is a typed error', async () => {
      const store = pg();
      const v5 = await pgStore({ store, prefix: 'v5edge:' });
      await v5.set('neg', 'x', -1);
      expect(await v5.get('neg')).to.equal(undefined);
      let refused: unknown;
      try {
        await v5.set('nan', 'x', Number.NaN);
      } catch (error) {
        refused = error;
      }
      expect(refused).to.be.instanceOf(InvalidValueError);
      await store.ext.set('v5edge:raw', 'not json {');
      let thrown: unknown;
      try {
        await v5.get('raw');
      } catch (error) {
        thrown = error;
      }
      expect(thrown).to.be.instanceOf(InvalidValueError);
      expect((thrown as Error).message).to.match(/v5edge:raw.*not JSON/);
    });
  });
});
