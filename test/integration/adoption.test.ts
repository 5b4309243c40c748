import { readFileSync } from 'node:fs';
import KeyvPostgres from '@keyv/postgres';
import { expect } from 'chai';
import Keyv from 'keyv';
import DefaultExport, { ConnectionError, createKeyv, InvalidOptionError, InvalidValueError, PgStore, SchemaError } from '../../src/index.js';
import { manualClock, rejects } from '../helpers/assert.js';
import { dropTables, sql, testUrl, uniqueTable, waitFor } from '../helpers/db.js';
import { useCacheTable } from '../helpers/fixture.js';
import { processWarnings } from '../helpers/warnings.js';

/** A logger that keeps what it is given. */
function recordingLogger() {
  const errors: Error[] = [];
  const warnings: string[] = [];
  return { errors, warnings, error: (error: Error) => void errors.push(error), warn: (message: string) => void warnings.push(message) };
}

describe('Adoption: failing loudly, migrating from @keyv/postgres, the Keyv-style exports', () => {
  describe('store.ready()', () => {
    const keyvTable = uniqueTable('cp_keyv_shaped');
    before(() => sql(`CREATE TABLE public.${keyvTable} (key varchar(255) PRIMARY KEY, value text)`));
    after(() => dropTables(keyvTable));

    it('rejects with ConnectionError when the database does not answer', async () => {
      const store = new PgStore({ uri: 'postgres://nobody@127.0.0.1:1/none', connectTimeout: '2s' });
      try {
        await rejects(store.ready(), ConnectionError);
      } finally {
        await store.disconnect();
      }
    });

    it('rejects a @keyv/postgres table with a SchemaError that says what to do', async () => {
      const store = new PgStore({ uri: testUrl(), table: keyvTable });
      try {
        const error = await rejects(store.ready(), SchemaError, /looks like a @keyv\/postgres table/);
        expect(error.message).to.match(/give PgStore another table name/);
        expect(error.message).to.match(/Migrating from @keyv\/postgres/);
      } finally {
        await store.disconnect();
      }
    });

    it('resolves to the store, and once ready costs no round trip', async () => {
      const table = uniqueTable('cp_ready');
      const store = new PgStore({ uri: testUrl(), table, enableExpirationScan: false });
      try {
        expect(await store.ready()).to.equal(store);
        const trips = store.roundTrips;
        expect(await store.ready()).to.equal(store);
        expect(store.roundTrips).to.equal(trips);
        expect(await sql(`SELECT 1 FROM pg_class WHERE relname = $1`, [table])).to.have.length(1);
      } finally {
        await store.disconnect();
        await dropTables(table, `${table}_locks`);
      }
    });
  });

  describe('logger', () => {
    const keyvTable = uniqueTable('cp_keyv_log');
    before(() => sql(`CREATE TABLE public.${keyvTable} (key varchar(255) PRIMARY KEY, value text)`));
    after(() => dropTables(keyvTable));

    it('receives the failures Keyv turns into misses and false, and still lets them reject', async () => {
      const logger = recordingLogger();
      const store = new PgStore({ uri: testUrl(), table: keyvTable, logger });
      const keyv = new Keyv({ store });
      keyv.on('error', () => {}); // Keyv's own event, wired or not: the logger sees the failure either way
      try {
        expect(await keyv.get('k')).to.equal(undefined);
        expect(await keyv.set('k', 1)).to.equal(false);
        expect(logger.errors.length).to.be.at.least(2);
        expect(logger.errors.every((error) => error instanceof SchemaError)).to.equal(true);
        await rejects(store.has('k'), SchemaError); // direct calls still reject
      } finally {
        await store.disconnect();
      }
    });

    it('a logger that throws changes nothing: the call still rejects with its own error, background work goes on', async () => {
      const logger = { error: () => { throw new Error('logger down'); }, warn: () => { throw new Error('logger down'); } };
      const store = new PgStore({ uri: testUrl(), table: uniqueTable('cp_bad_logger'), createIfNotExists: false, logger });
      try {
        await rejects(store.get('k'), SchemaError);
        store.ext.failover(async () => 1, { key: 'f', ttl: '1m', maxStale: '1h' }); // a warning, thrown away by the logger
      } finally {
        await store.disconnect();
      }
    });

    it('is refused when it lacks error() or warn()', () => {
      for (const logger of [{}, { error() {} }, { warn() {} }, 'console', null]) {
        expect(() => new PgStore({ logger: logger as never }), JSON.stringify(logger)).to.throw(InvalidOptionError, /Invalid option "logger"/);
      }
    });

    it('receives background failures instead of a process warning', async () => {
      const logger = recordingLogger();
      const clock = manualClock();
      const table = uniqueTable('cp_bg_logger');
      const store = new PgStore({ uri: testUrl(), table, enableExpirationScan: false, clock, logger });
      try {
        // A background refresh whose value cannot be stored (JSON has no BigInt): nobody awaits it.
        let calls = 0;
        const report = store.ext.early(async (): Promise<unknown> => (++calls === 1 ? 1 : 10n), { key: 'bg', ttl: '10m', earlyTtl: '1m' });
        expect(await report()).to.equal(1);
        clock.advance(120_000);
        const warnings = await processWarnings(async () => {
          expect(await report()).to.equal(1); // served at once; the refresh runs behind it
          await waitFor(() => logger.errors.length > 0, 5000, 'the background failure to be logged');
        });
        expect(logger.errors[0]).to.be.instanceOf(InvalidValueError);
        expect(warnings.filter((w) => w.code === 'CACHE_POSTGRES_BACKGROUND_ERROR')).to.deep.equal([]);
      } finally {
        await store.disconnect();
        await dropTables(table, `${table}_locks`);
      }
    });
  });

  describe('stale values asked for longer than the store keeps them', () => {
    const fx = useCacheTable('cp_retain');

    it('failover with maxStale over retainExpiredFor warns once, through the logger', () => {
      const logger = recordingLogger();
      const ext = fx.make({ logger }).ext;
      ext.failover(async () => 1, { key: 'f', ttl: '1m', maxStale: '1h' });
      ext.failover(async () => 1, { key: 'g', ttl: '1m', maxStale: '1h' });
      expect(logger.warnings).to.have.length(1);
      expect(logger.warnings[0]).to.match(/failover maxStale asks for stale values up to 3600000 ms, but the store keeps expired rows only 0 ms \(retainExpiredFor\)/);
      expect(logger.warnings[0]).to.match(/retainExpiredFor of at least 3600000 ms/);
    });

    it('says nothing when retainExpiredFor covers maxStale', () => {
      const logger = recordingLogger();
      const ext = fx.make({ logger, retainExpiredFor: '1h' }).ext;
      ext.failover(async () => 1, { key: 'f', ttl: '1m', maxStale: '1h' });
      expect(logger.warnings).to.deep.equal([]);
    });

    it('getOrSet grace and softTimeout (without grace, on a store that keeps nothing) warn too', async () => {
      const logger = recordingLogger();
      const ext = fx.make({ logger }).ext;
      await ext.getOrSet('a', () => 'v', { grace: { maxStale: '10m' } });
      await ext.getOrSet('b', () => 'v', { softTimeout: '1s' });
      expect(logger.warnings.map((w) => w.split(' asks')[0])).to.deep.equal(['getOrSet grace.maxStale', 'getOrSet softTimeout (without grace)']);
      const kept = recordingLogger();
      await fx.make({ logger: kept, retainExpiredFor: '1h' }).ext.getOrSet('c', () => 'v', { softTimeout: '1s', grace: { maxStale: '1h' } });
      expect(kept.warnings).to.deep.equal([]);
    });

    it('without a logger, the warning is a process warning with its own code', async () => {
      const store = fx.make();
      const warnings = await processWarnings(() => store.ext.failover(async () => 1, { key: 'f', ttl: '1m', maxStale: '2h' }));
      expect(warnings.map((w) => w.code)).to.deep.equal(['CACHE_POSTGRES_CONFIG']);
      expect(warnings[0]!.message).to.match(/failover maxStale/);
    });
  });

  describe('options of @keyv/postgres', () => {
    // Its options themselves are taken as written (pool-sharing.test.ts): a literal swap changes no option.

    it("the README's SQL copies the live entries of a @keyv/postgres table, with their expiry", async () => {
      const script = readFileSync(new URL('../../examples/readme/migrate-from-keyv-postgres.sql', import.meta.url), 'utf8');
      expect(readFileSync(new URL('../../README.md', import.meta.url), 'utf8')).to.include(script.trimEnd());
      const [from, to] = [uniqueTable('cp_from_keyv'), uniqueTable('cp_to_cache')];
      const theirs = new Keyv({ store: new KeyvPostgres({ uri: testUrl(), table: from }) });
      const store = new PgStore({ uri: testUrl(), table: to, enableExpirationScan: false });
      try {
        await theirs.set('forever', { name: 'Ada' });
        await theirs.set('hour', [1, 2], 3_600_000);
        await theirs.set('gone', 'x', 3_600_000);
        // An entry whose time has passed (Keyv would delete it on its next read).
        await sql(`UPDATE public.${from} SET value = jsonb_set(value::jsonb, '{expires}', to_jsonb($1::bigint))::text WHERE key = 'keyv:gone'`, [Date.now() - 1000]);
        await store.ready();
        await sql(script.replaceAll('public.keyv', `public.${from}`).replaceAll('public.cache', `public.${to}`));
        const keyv = new Keyv({ store });
        expect(await keyv.get('forever')).to.deep.equal({ name: 'Ada' });
        expect(await keyv.get('hour')).to.deep.equal([1, 2]);
        expect(await keyv.get('gone')).to.equal(undefined);
        const [row] = await sql<{ left: number }>(`SELECT extract(epoch FROM expiresattime - now()) AS left FROM public.${to} WHERE id = 'keyv:hour'`);
        expect(Number(row!.left)).to.be.within(3500, 3600);
        expect(await sql(`SELECT 1 FROM public.${to} WHERE id = 'keyv:gone'`)).to.deep.equal([]);
      } finally {
        await theirs.disconnect();
        await store.disconnect();
        await dropTables(from, to, `${to}_locks`);
      }
    });

    it('iterationLimit, schema, table and uri keep their @keyv/postgres meaning', () => {
      const store = new PgStore({ uri: testUrl(), table: 'keyv_next', schema: 'public', iterationLimit: 10 });
      expect(store.tableName).to.equal('public.keyv_next');
      return store.disconnect();
    });
  });

  describe('exports the @keyv packages have', () => {
    it('a default export, PgStore itself', () => {
      expect(DefaultExport).to.equal(PgStore);
    });

    it('createKeyv(options, keyvOptions): a Keyv on a new PgStore', async () => {
      const table = uniqueTable('cp_create');
      const keyv = createKeyv({ uri: testUrl(), table, enableExpirationScan: false }, { namespace: 'users' });
      try {
        expect(keyv.store).to.be.instanceOf(PgStore);
        await keyv.set('ada', { name: 'Ada' });
        expect(await keyv.get('ada')).to.deep.equal({ name: 'Ada' });
        expect((await sql<{ id: string }>(`SELECT id FROM public.${table}`)).map((r) => r.id)).to.deep.equal(['users:ada']);
      } finally {
        await keyv.disconnect();
        await dropTables(table, `${table}_locks`);
      }
    });
  });

  describe('typed getOrSet', () => {
    const fx = useCacheTable('cp_typed');

    it('with a serializer, stores the value serialized (JSON text .NET and Python read) and resolves to the value', async () => {
      const ext = fx.make().ext;
      let calls = 0;
      const load = async () => {
        calls += 1;
        return { id: 7, tags: ['a', 'é'] };
      };
      const [first, second] = await Promise.all([
        ext.getOrSet<{ id: number; tags: string[] }>('user:7', load, { serializer: 'json' }),
        ext.getOrSet<{ id: number; tags: string[] }>('user:7', load, { serializer: 'json' }),
      ]);
      expect(first).to.deep.equal({ id: 7, tags: ['a', 'é'] });
      expect(second).to.deep.equal(first);
      expect(calls).to.equal(1);
      expect((await fx.row('user:7'))!.value.toString('utf8')).to.equal('{"id":7,"tags":["a","é"]}');
      // The bytes form still answers the same key.
      expect((await ext.getOrSet('user:7', () => 'unused')).toString('utf8')).to.equal('{"id":7,"tags":["a","é"]}');
    });

    it('compression needs the typed form: without a serializer it is an unknown getOrSet option', async () => {
      const ext = fx.make().ext;
      await rejects(ext.getOrSet('k', () => 'v', { compression: true } as never), InvalidOptionError, /unknown getOrSet option/);
      expect(await ext.getOrSet('k', () => 'x'.repeat(2000), { serializer: 'json', compression: true })).to.equal('x'.repeat(2000));
      expect((await fx.row('k'))!.value.subarray(0, 4)).to.deep.equal(Buffer.from([0, 0x63, 0x70, 0x7a]));
    });
  });
});
