import { expect } from 'chai';
import Keyv from 'keyv';
import { InvalidKeyError, InvalidValueError, PgStore, QueryError, StoreClosedError } from '../../src/index.js';
import { manualClock, rejects } from '../helpers/assert.js';
import { readRoundTrips, sql, testUrl, uniqueTable, waitFor } from '../helpers/db.js';
import { useCacheTable } from '../helpers/fixture.js';

describe('PgStore', () => {
  const fx = useCacheTable('cp_store');
  const { table, make } = fx;
  const row = (id: string) => fx.row(id);
  const count = () => fx.count();

  describe('expiry', () => {
    it('writes a TTL as an absolute expiry: expiresattime = absoluteexpiration = now + ttl, no sliding', async () => {
      const clock = manualClock(Date.parse('2030-01-01T00:00:00.000Z'));
      await make({ clock }).set('keyv:a', '"v"', 90_000);
      const stored = await row('keyv:a');
      expect((stored!.expiresattime as Date).toISOString()).to.equal('2030-01-01T00:01:30.000Z');
      expect(stored!.absoluteexpiration!.toISOString()).to.equal('2030-01-01T00:01:30.000Z');
      expect(stored!.slidingexpirationinseconds).to.equal(null);
      expect(stored!.tags).to.equal(null);
    });

    it('stores "no TTL" as never expiring (infinity, no sliding, no absolute)', async () => {
      await make().set('keyv:forever', '1');
      const stored = await row('keyv:forever');
      expect(stored!.expiresattime).to.equal(Number.POSITIVE_INFINITY); // node-postgres parses 'infinity' to Infinity
      expect(stored!.absoluteexpiration).to.equal(null);
      expect(stored!.slidingexpirationinseconds).to.equal(null);
    });

    it('hides expired rows from get, getMany, has, hasMany and the iterator, in SQL', async () => {
      const clock = manualClock();
      const store = make({ clock });
      await store.set('keyv:short', '"s"', 1000);
      await store.set('keyv:long', '"l"', 60_000);
      clock.advance(1001);
      expect(await store.get('keyv:short')).to.equal(undefined);
      expect(await store.getMany(['keyv:short', 'keyv:long'])).to.deep.equal([undefined, '"l"']);
      expect(await store.has('keyv:short')).to.equal(false);
      expect(await store.hasMany(['keyv:short', 'keyv:long'])).to.deep.equal([false, true]);
      const seen: string[] = [];
      for await (const [key] of store.iterator('keyv')) seen.push(key);
      expect(seen).to.deep.equal(['keyv:long']);
      expect(await count()).to.equal(2); // hidden, not yet deleted: that is the scanner's job
    });

    it('treats the expiry instant itself as live (expiresattime >= now, as .NET does)', async () => {
      const clock = manualClock();
      const store = make({ clock });
      await store.set('keyv:edge', '1', 1000);
      clock.advance(1000);
      expect(await store.has('keyv:edge')).to.equal(true);
      clock.advance(1);
      expect(await store.has('keyv:edge')).to.equal(false);
    });

    it('reports delete() of an expired row as false but removes it', async () => {
      const clock = manualClock();
      const store = make({ clock });
      await store.set('keyv:gone', '1', 10);
      clock.advance(11);
      expect(await store.delete('keyv:gone')).to.equal(false);
      expect(await row('keyv:gone')).to.equal(undefined);
    });

    it('slides a row written with a sliding expiration (.NET-style) on read, capped by its absolute expiry', async () => {
      const now = Date.now();
      await sql(
        `INSERT INTO public.${table} (id, value, expiresattime, slidingexpirationinseconds, absoluteexpiration)
         VALUES ('keyv:slide', convert_to('"x"', 'UTF8'), $1, 60, $2), ('keyv:capped', convert_to('"y"', 'UTF8'), $1, 60, $3)`,
        [new Date(now + 10_000), new Date(now + 3_600_000), new Date(now + 30_000)],
      );
      const clock = manualClock(now + 5_000);
      const store = make({ clock });
      expect(await store.get('keyv:slide')).to.equal('"x"');
      expect(await store.getMany(['keyv:capped'])).to.deep.equal(['"y"']);
      expect(((await row('keyv:slide'))!.expiresattime as Date).getTime()).to.equal(now + 5_000 + 60_000);
      expect(((await row('keyv:capped'))!.expiresattime as Date).getTime()).to.equal(now + 30_000);
    });

    it('reads a row without sliding expiration without writing it (same xmin)', async () => {
      const store = make();
      await store.set('keyv:still', '"v"', 60_000);
      const before = (await row('keyv:still'))!.xmin;
      await store.get('keyv:still');
      await store.getMany(['keyv:still']);
      await store.has('keyv:still');
      expect((await row('keyv:still'))!.xmin).to.equal(before);
    });
  });

  describe('round trips', () => {
    it('sends exactly one statement per get, getMany, set, setMany, delete, deleteMany, has and hasMany', async () => {
      const store = make();
      await store.has('warm'); // first call checks the schema
      const calls: Array<[string, () => Promise<unknown>]> = [
        ['set', () => store.set('keyv:1', '1')],
        ['get', () => store.get('keyv:1')],
        ['getMany', () => store.getMany(['keyv:1', 'keyv:2'])],
        ['setMany', () => store.setMany([{ key: 'keyv:2', value: '2' }, { key: 'keyv:3', value: '3', ttl: 1000 }])],
        ['has', () => store.has('keyv:1')],
        ['hasMany', () => store.hasMany(['keyv:1', 'keyv:9'])],
        ['delete', () => store.delete('keyv:1')],
        ['deleteMany', () => store.deleteMany(['keyv:2', 'keyv:3'])],
      ];
      for (const [name, call] of calls) {
        const before = store.roundTrips;
        await call();
        expect(store.roundTrips - before, name).to.equal(name === 'get' || name === 'getMany' ? readRoundTrips() : 1);
      }
    });

    it('sends nothing for empty getMany, hasMany, deleteMany and setMany', async () => {
      const store = make();
      await store.has('warm');
      const before = store.roundTrips;
      expect(await store.getMany([])).to.deep.equal([]);
      expect(await store.hasMany([])).to.deep.equal([]);
      expect(await store.deleteMany([])).to.equal(false);
      expect(await store.setMany([])).to.deep.equal([]);
      expect(store.roundTrips).to.equal(before);
    });
  });

  describe('bulk', () => {
    it('returns getMany results in the order asked, duplicates included', async () => {
      const store = make();
      await store.setMany([{ key: 'keyv:a', value: 'A' }, { key: 'keyv:b', value: 'B' }]);
      expect(await store.getMany(['keyv:b', 'keyv:x', 'keyv:a', 'keyv:b'])).to.deep.equal(['B', undefined, 'A', 'B']);
    });

    it('lets the last duplicate win in setMany (one statement cannot upsert a row twice)', async () => {
      const store = make();
      expect(await store.setMany([{ key: 'keyv:d', value: 'first' }, { key: 'keyv:d', value: 'last' }])).to.deep.equal([true, true]);
      expect(await store.get('keyv:d')).to.equal('last');
    });

    it('writes a per-entry TTL in setMany', async () => {
      const clock = manualClock(Date.parse('2030-01-01T00:00:00.000Z'));
      await make({ clock }).setMany([{ key: 'keyv:t', value: '1', ttl: 5000 }, { key: 'keyv:n', value: '2' }]);
      expect((await row('keyv:t'))!.absoluteexpiration!.toISOString()).to.equal('2030-01-01T00:00:05.000Z');
      expect((await row('keyv:n'))!.expiresattime).to.equal(Number.POSITIVE_INFINITY);
    });
  });

  describe('namespaces', () => {
    it('clear() removes only its own namespace, matched literally (users never clears users-archive or usersX)', async () => {
      const writer = make();
      await writer.setMany(
        ['users:1', 'users:2', 'users-archive:1', 'usersX:1', 'users_:1', 'u%:1', 'other'].map((key) => ({ key, value: '1' })),
      );
      const users = make();
      users.namespace = 'users';
      await users.clear();
      const left = (await sql<{ id: string }>(`SELECT id FROM public.${table} ORDER BY id`)).map((r) => r.id);
      expect(left).to.deep.equal(['other', 'u%:1', 'users-archive:1', 'usersX:1', 'users_:1']);

      const percent = make();
      percent.namespace = 'u%';
      await percent.clear();
      expect(await count()).to.equal(4);
    });

    it('clear() without a namespace empties the whole table, in batches', async () => {
      const store = make({ deleteBatchSize: 7 });
      await store.setMany(Array.from({ length: 49 }, (_, i) => ({ key: `k${i}`, value: String(i) })));
      await store.set('\u{10FFFF}'.repeat(449), 'the highest possible key'); // still inside the whole-table range
      store.namespace = undefined;
      const before = store.roundTrips;
      await store.clear();
      expect(await count()).to.equal(0);
      expect(store.roundTrips - before).to.equal(8); // ceil(50 / 7) batches, the last one short
    });

    it('iterates a namespace in key order across pages, never mixing in other namespaces', async () => {
      const store = make({ iterationLimit: 2 });
      await store.setMany(
        ['ns:e', 'ns:a', 'ns:c', 'ns:b', 'ns:d', 'nsx:a', 'n_:z'].map((key) => ({ key, value: key.toUpperCase() })),
      );
      const seen: Array<[string, string]> = [];
      for await (const entry of store.iterator('ns')) seen.push(entry);
      expect(seen).to.deep.equal([
        ['ns:a', 'NS:A'],
        ['ns:b', 'NS:B'],
        ['ns:c', 'NS:C'],
        ['ns:d', 'NS:D'],
        ['ns:e', 'NS:E'],
      ]);
    });
  });

  describe('bad input', () => {
    it('refuses keys over 449 characters, with NUL or lone surrogates, and writes nothing', async () => {
      const store = make();
      await rejects(store.set('k'.repeat(450), '1'), InvalidKeyError, /at most 449/);
      await rejects(store.set('a\0b', '1'), InvalidKeyError, /NUL/);
      await rejects(store.set('a\udc00', '1'), InvalidKeyError, /lone surrogate/);
      await rejects(store.setMany([{ key: 'ok', value: '1' }, { key: '', value: '2' }]), InvalidKeyError, /empty/);
      expect(await count()).to.equal(0);
    });

    it('stores a key of exactly 449 characters (898 UTF-16 units) unchanged', async () => {
      const store = make();
      const key = '😀'.repeat(449);
      await store.set(key, '"max"');
      expect(await store.get(key)).to.equal('"max"');
      expect((await row(key))!.id).to.equal(key);
    });

    it('refuses non-string values and invalid TTLs without writing', async () => {
      const store = make();
      await rejects(store.set('keyv:o', { value: 1 } as never), InvalidValueError, /strings Keyv serializes/);
      for (const ttl of [Number.NaN, Number.POSITIVE_INFINITY, '10' as never, 3e14, -Date.now() - 3_600_000]) {
        await rejects(store.set('keyv:t', '1', ttl), InvalidValueError, /ttl must be/);
      }
      expect(await count()).to.equal(0);
    });

    it('stores a negative ttl as expired at once, as Keyv over memory does', async () => {
      const store = make();
      expect(await store.set('keyv:neg', '1', -1)).to.equal(true);
      expect(await store.get('keyv:neg')).to.equal(undefined);
    });

    it('turns a Keyv set with a too-long key into an error event and false, leaving the table untouched', async () => {
      const keyv = new Keyv({ store: make() });
      const errors: unknown[] = [];
      keyv.on('error', (error) => errors.push(error));
      expect(await keyv.set('x'.repeat(500), 'value')).to.equal(false);
      expect(errors).to.have.length(1);
      expect(errors[0]).to.be.instanceOf(InvalidKeyError);
      expect(await count()).to.equal(0);
    });
  });

  describe('errors and lifecycle', () => {
    it('emits get failures, which Keyv 5 would otherwise swallow', async () => {
      const store = new PgStore({ uri: 'postgres://nobody@127.0.0.1:1/none', enableExpirationScan: false });
      const keyv = new Keyv({ store });
      const seen: unknown[] = [];
      keyv.on('error', (error) => seen.push(error));
      expect(await keyv.get('a')).to.equal(undefined);
      await store.disconnect();
      expect(seen).to.have.length(1);
      expect(seen[0]).to.be.instanceOf(QueryError);
      expect((seen[0] as QueryError).sqlState).to.equal('ECONNREFUSED');
      expect((seen[0] as QueryError).message).to.match(/Statement "inspect" on public.cache failed/);
    });

    it('rejects every call after disconnect with StoreClosedError, and disconnect is idempotent', async () => {
      const store = make();
      await store.set('keyv:a', '1');
      await store.disconnect();
      await store.disconnect();
      await rejects(store.get('keyv:a'), StoreClosedError, /get\(\) on a PgStore after disconnect/);
      await rejects(store.set('keyv:a', '2'), StoreClosedError);
      await rejects(store.clear(), StoreClosedError);
    });

    it('settles calls still in an open batch when the store disconnects: none hangs', async () => {
      const store = new PgStore({ uri: testUrl(), table, enableExpirationScan: false });
      await store.set('keyv:pending', '1');
      const pending = Promise.allSettled([store.get('keyv:pending'), store.set('keyv:other', '2'), store.has('keyv:pending')]);
      await store.disconnect();
      const outcomes = await pending;
      // Calls made before disconnect() are in progress: it lets them finish.
      expect(outcomes.map((outcome) => outcome.status)).to.deep.equal(['fulfilled', 'fulfilled', 'fulfilled']);
    });

    it('never ends a shared pool, and ends (with all its connections) the pool it created', async () => {
      const shared = make();
      const other = make();
      await shared.set('keyv:s', '1');
      await shared.disconnect();
      expect(fx.pool.ended).to.equal(false);
      expect(await other.get('keyv:s')).to.equal('1');

      const applicationName = uniqueTable('cp_owned');
      const owned = new PgStore({ uri: testUrl(), table, enableExpirationScan: false, poolConfig: { application_name: applicationName } });
      await Promise.all([owned.get('keyv:s'), owned.get('keyv:s'), owned.has('keyv:s')]);
      const connections = async () =>
        (await sql<{ n: number }>(`SELECT count(*)::int AS n FROM pg_stat_activity WHERE application_name = $1`, [applicationName]))[0]!.n;
      expect(await connections()).to.be.greaterThan(0);
      await owned.disconnect();
      // A backend leaves pg_stat_activity a moment after its socket closes.
      await waitFor(async () => (await connections()) === 0, 5000, 'the owned connections to close');
    });
  });
});
