import { randomUUID } from 'node:crypto';
import { expect } from 'chai';
import Keyv from 'keyv';
import pg from 'pg';
import { InvalidOptionError, PgStore } from '../../src/index.js';
import { LISTENER_NAME, listen, type Subscription } from '../../src/execution/listener.js';
import { sharedPools } from '../../src/execution/pools.js';
import { dropTables, sql, testDistributed, testUrl, uniqueTable, waitFor } from '../helpers/db.js';
import { processWarnings } from '../helpers/warnings.js';

/** Backends of this server whose application_name is `name`. */
async function backends(name: string): Promise<number> {
  return (await sql<{ n: number }>('SELECT count(*)::int AS n FROM pg_stat_activity WHERE application_name = $1', [name]))[0]!.n;
}

/**
 * A store per module, per request or per test: what code written for @keyv/postgres does, which shares one
 * pool per connection string. Stores from the same settings share one pool here too, counted.
 */
describe('Stores from the same connection settings share one pool', function () {
  this.timeout(60_000);
  const table = uniqueTable('cp_shared');
  const distributed = testDistributed();
  after(() => dropTables(table, `${table}_locks`));

  it('150 stores from one URL, used at once, open at most poolMax connections (not one pool each: 53300 too many clients)', async () => {
    const name = `cp-share-${randomUUID().slice(0, 8)}`;
    const stores = Array.from({ length: 150 }, () => new PgStore({ uri: testUrl(), table, distributed, poolConfig: { application_name: name } }));
    try {
      const values = await Promise.all(
        stores.map(async (store, i) => {
          const keyv = new Keyv({ store, namespace: `n${i}` });
          await keyv.set('k', i);
          return keyv.get('k');
        }),
      );
      expect(values).to.deep.equal(stores.map((_, i) => i));
      expect(await backends(name)).to.be.within(1, 10);
      expect(sharedPools().filter((entry) => entry.holders === 150)).to.have.length(1);
    } finally {
      await Promise.all(stores.map((store) => store.disconnect()));
    }
    // The last disconnect() ended the pool: its connections are gone.
    await waitFor(async () => (await backends(name)) === 0, 10_000, 'the shared pool to close its connections');
    expect(sharedPools().some((entry) => entry.holders === 150)).to.equal(false);
  });

  it('one store disconnecting leaves the others working; the last one ends the pool', async () => {
    const options = { uri: testUrl(), table, distributed, poolConfig: { application_name: `cp-share-${randomUUID().slice(0, 8)}` } };
    const [a, b] = [new PgStore(options), new PgStore(options)];
    await a.set('a', 'A');
    await b.set('b', 'B');
    const pool = sharedPools().find((entry) => entry.holders === 2)!.pool;
    await a.disconnect();
    expect(await b.get('b')).to.equal('B');
    expect(await b.get('a')).to.equal('A');
    expect(pool.ended).to.equal(false);
    await b.disconnect();
    expect(pool.ended).to.equal(true);
    // A new store with those settings gets a new pool.
    const c = new PgStore(options);
    try {
      expect(await c.get('a')).to.equal('A');
    } finally {
      await c.disconnect();
    }
  });

  it('settings that differ (poolMax, statementTimeout, poolConfig) get pools of their own', async () => {
    const base = { uri: testUrl(), table, distributed };
    const before = sharedPools().length;
    const stores = [
      new PgStore(base),
      new PgStore({ ...base, poolMax: 3 }),
      new PgStore({ ...base, statementTimeout: '3s' }),
      new PgStore({ ...base, poolConfig: { application_name: 'other' } }),
      new PgStore(base),
    ];
    try {
      await Promise.all(stores.map((store) => store.has('x')));
      expect(sharedPools().length - before).to.equal(4);
    } finally {
      await Promise.all(stores.map((store) => store.disconnect()));
    }
    expect(sharedPools().length).to.equal(before);
  });

  it('a poolConfig holding a function is never shared (it cannot be compared by value)', async () => {
    const options = { uri: testUrl(), table, distributed, poolConfig: { types: { getTypeParser: pg.types.getTypeParser } } };
    const [a, b] = [new PgStore(options), new PgStore(options)];
    try {
      await Promise.all([a.has('x'), b.has('x')]);
      expect(sharedPools().filter((entry) => entry.holders === 2)).to.have.length(0);
    } finally {
      await Promise.all([a.disconnect(), b.disconnect()]);
    }
  });

  it("a store given `pool` uses the caller's pool and never ends it", async () => {
    const pool = new pg.Pool({ connectionString: testUrl(), max: 2 });
    const [a, b] = [new PgStore({ pool, table, distributed }), new PgStore({ pool, table, distributed })];
    try {
      await a.set('p', '1');
      expect(await b.get('p')).to.equal('1');
      await Promise.all([a.disconnect(), b.disconnect()]);
      expect(pool.ended).to.equal(false);
      expect((await pool.query('SELECT 1 AS one')).rows[0].one).to.equal(1);
    } finally {
      await pool.end();
    }
  });

  it('a table dropped while the pool lives on is created again by the next store (the schema check is per store)', async () => {
    const own = uniqueTable('cp_shared_drop');
    const options = { uri: testUrl(), table: own, distributed, enableExpirationScan: false };
    const keeper = new PgStore(options);
    try {
      await keeper.set('k', '1');
      await dropTables(own);
      const next = new PgStore(options);
      try {
        await next.set('k', '2');
        expect(await next.get('k')).to.equal('2');
      } finally {
        await next.disconnect();
      }
    } finally {
      await keeper.disconnect();
      await dropTables(own);
    }
  });

  it('the expiration scan runs once per table and pool, not once per store', async () => {
    const stores = Array.from({ length: 20 }, () => new PgStore({ uri: testUrl(), table, distributed, poolConfig: { application_name: 'cp-scan-share' } }));
    let passes = 0;
    for (const store of stores) {
      const pass = store.clearExpired.bind(store);
      store.clearExpired = () => {
        passes++;
        return pass();
      };
    }
    try {
      await Promise.all(stores.map((store) => store.ready()));
      await waitFor(() => passes > 0, 10_000, 'the first pass');
      // Every store is ready and the first pass has run: a pass per store would have started with it.
      await new Promise((resolve) => setImmediate(resolve));
      expect(passes).to.equal(1);
      // The store running the scan leaves: another member runs it (the scan is not lost with it).
      await stores[0]!.disconnect();
      expect(passes).to.equal(1);
    } finally {
      await Promise.all(stores.map((store) => store.disconnect()));
    }
  });

  it('@keyv/postgres spellings are taken as written: useUnloggedTable, keySize, dialect, max, ssl and pg fields', async () => {
    const logged = uniqueTable('cp_keyv_logged');
    const name = `cp-share-${randomUUID().slice(0, 8)}`;
    const store = new PgStore({
      uri: testUrl(),
      table: logged,
      useUnloggedTable: false,
      keySize: 255,
      dialect: 'postgres',
      max: 3,
      idleTimeoutMillis: 5000,
      application_name: name,
      connectionTimeoutMillis: 4000,
      iterationLimit: 2,
    });
    try {
      await store.set('k', 'v');
      expect(await store.get('k')).to.equal('v');
      const [row] = await sql<{ relpersistence: string }>(`SELECT relpersistence FROM pg_class WHERE oid = 'public.${logged}'::regclass`);
      expect(row!.relpersistence).to.equal(distributed ? row!.relpersistence : 'p');
      expect(await backends(name)).to.be.within(1, 3);
      const entry = sharedPools().find((shared) => shared.pool.options.application_name === name)!;
      expect(entry.pool.options.max).to.equal(3);
      expect(entry.pool.options.idleTimeoutMillis).to.equal(5000);
    } finally {
      await store.disconnect();
      await dropTables(logged);
    }
  });

  it("an idle connection lost under twenty stores: each store's listener hears it, and those without one share a single warning", async () => {
    const name = `cp-share-${randomUUID().slice(0, 8)}`;
    const stores = Array.from({ length: 20 }, () => new PgStore({ uri: testUrl(), table, distributed, enableExpirationScan: false, poolConfig: { application_name: name } }));
    const heard: unknown[] = [];
    stores[0]!.on('error', (error) => heard.push(error));
    try {
      await Promise.all(stores.map((store) => store.has('x')));
      const pool = sharedPools().find((entry) => entry.pool.options.application_name === name)!.pool;
      const quiet = await processWarnings(async () => {
        await sql('SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = $1', [name]);
        await waitFor(() => pool.totalCount === 0, 10_000, 'the pool to drop its lost connections');
      });
      expect(heard.length).to.be.greaterThan(0);
      expect(quiet.filter((warning) => warning.code === 'CACHE_POSTGRES_BACKGROUND_ERROR')).to.have.length(0);
      // Now nobody listens: one warning for the pool, not twenty.
      stores[0]!.removeAllListeners('error');
      await stores[0]!.has('x');
      const warnings = await processWarnings(async () => {
        expect(pool.totalCount).to.equal(1);
        await sql('SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = $1', [name]);
        await waitFor(() => pool.totalCount === 0, 10_000, 'the pool to drop its lost connection');
      });
      expect(warnings.filter((warning) => warning.code === 'CACHE_POSTGRES_BACKGROUND_ERROR')).to.have.length(1);
    } finally {
      await Promise.all(stores.map((store) => store.disconnect()));
    }
  });

  it('the same setting written both ways is one setting, not a contradiction', async () => {
    const store = new PgStore({ uri: testUrl(), table, distributed, connectionTimeoutMillis: 5000, connectTimeout: '5s', ssl: false, poolConfig: { ssl: false } });
    try {
      expect(await store.has('x')).to.equal(false);
    } finally {
      await store.disconnect();
    }
  });

  it("a holder's logger that throws keeps the other holders from nothing, and the process lives", async () => {
    const name = `cp-share-${randomUUID().slice(0, 8)}`;
    const options = { uri: testUrl(), table, distributed, enableExpirationScan: false, poolConfig: { application_name: name } };
    const told: Error[] = [];
    const throwing = new PgStore({ ...options, logger: { error: () => { throw new Error('a broken logger'); }, warn: () => {} } });
    const other = new PgStore({ ...options, logger: { error: (error) => void told.push(error), warn: () => {} } });
    try {
      await Promise.all([throwing.has('x'), other.has('x')]);
      const terminated = await sql('SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = $1', [name]);
      // Every lost connection heard (and so out of the pool): on a busy machine the second one's news can come after
      // the first's, and a call given that connection meanwhile fails with it, as any call on a lost connection does.
      await waitFor(() => told.length >= terminated.length, 10_000, 'the other store to hear every lost connection');
      expect(await other.has('x')).to.equal(false);
    } finally {
      await Promise.all([throwing.disconnect(), other.disconnect()]);
    }
  });

  it('a @keyv/postgres option PgStore cannot honour is an InvalidOptionError naming it, before anything connects', () => {
    const cases: Array<[Record<string, unknown>, string, RegExp]> = [
      [{ keySize: 500 }, 'keySize', /varchar\(449\).*from 1 to 449/],
      [{ dialect: 'mysql' }, 'dialect', /only 'postgres'/],
      [{ useUnloggedTable: true, useWal: true }, 'useUnloggedTable', /contradicts useWal/],
      [{ max: 5, poolMax: 6 }, 'max', /contradicts poolMax/],
      [{ max: 0 }, 'max', /positive whole number.*max is PgStore's poolMax/],
      [{ connectionTimeoutMillis: -1 }, 'connectionTimeoutMillis', /connectionTimeoutMillis is PgStore's connectTimeout/],
      [{ useUnloggedTable: true, useWal: 'yes' }, 'useWal', /true or false/],
      [{ host: 'db', pool: new pg.Pool() }, 'host', /cannot be combined with "pool"/],
      [{ nonsense: 1 }, 'nonsense', /unknown option/],
    ];
    for (const [options, name, message] of cases) {
      let error: unknown;
      try {
        new PgStore(options);
      } catch (caught) {
        error = caught;
      }
      expect(error, name).to.be.instanceOf(InvalidOptionError);
      expect((error as InvalidOptionError).option).to.equal(name);
      expect((error as Error).message).to.match(message);
    }
  });
});

describe('Local tiers of stores on one pool share one listening connection', function () {
  this.timeout(60_000);
  const tables = [uniqueTable('cp_listen_a'), uniqueTable('cp_listen_b')];
  after(() => dropTables(...tables));

  it('channels subscribed at once on a connection already listening are LISTENed one statement at a time', async () => {
    // node-postgres deprecates (a process warning) a query sent on a client while another is in flight: tiers of
    // several tables starting together on one pool sent their LISTENs that way.
    const pool = new pg.Pool({ connectionString: testUrl() });
    const id = randomUUID().slice(0, 8);
    const channels = ['a', 'b', 'c', 'd'].map((c) => `cp_listen_${id}_${c}`);
    const states = new Map<string, boolean>();
    const handlers = (channel: string) => ({ message: () => {}, state: (listening: boolean) => void states.set(channel, listening), error: () => {} });
    const subscriptions: Subscription[] = [];
    try {
      const warnings = await processWarnings(async () => {
        subscriptions.push(listen(pool, { connectionString: testUrl() }, 'public.t', channels[0]!, handlers(channels[0]!)));
        await waitFor(() => states.get(channels[0]!) === true, 10_000, 'the first channel to be listened to');
        for (const channel of channels.slice(1)) subscriptions.push(listen(pool, { connectionString: testUrl() }, 'public.t', channel, handlers(channel)));
        await waitFor(() => channels.every((channel) => states.get(channel) === true), 10_000, 'every channel to be listened to');
        await Promise.all(subscriptions.slice(1).map((subscription) => subscription.stop()));
      });
      expect(warnings.map((warning) => warning.message)).to.deep.equal([]);
    } finally {
      await Promise.all(subscriptions.map((subscription) => subscription.stop()));
      await pool.end();
    }
  });

  it('ten stores on two tables: one LISTEN connection, each tier hears its own table, none after the last disconnect', async function () {
    if (testDistributed()) this.skip(); // localCache's notices need one node's channel; citus.test.ts covers tiers there
    const name = `cp-listen-${randomUUID().slice(0, 8)}`;
    const listeners = async () => backends(LISTENER_NAME);
    const before = await listeners();
    const stores = Array.from(
      { length: 10 },
      (_, i) => new PgStore({ uri: testUrl(), table: tables[i % 2]!, localCache: { maxEntries: 100 }, poolConfig: { application_name: name } }),
    );
    const [a, b] = [stores[0]!, stores[2]!]; // both on table A
    const other = stores[1]!; // table B
    try {
      await Promise.all(stores.map((store) => store.ready()));
      await waitFor(async () => (await listeners()) === before + 1, 10_000, 'one listening connection');
      await a.set('k', 'v1');
      await other.set('k', 'other');
      await waitFor(async () => (await b.get('k')) === 'v1' && (await b.stats()).localEntries > 0, 10_000, 'b to hold k in memory');
      await a.set('k', 'v2');
      await waitFor(async () => (await b.get('k')) === 'v2', 10_000, "b to hear a's write");
      expect(await other.get('k')).to.equal('other');
      // Stores leaving one by one do not end the listening of those that stay.
      for (const store of stores.slice(3)) await store.disconnect();
      await a.set('k', 'v3');
      await waitFor(async () => (await b.get('k')) === 'v3', 10_000, "b to hear a's write after others left");
    } finally {
      await Promise.all(stores.map((store) => store.disconnect()));
    }
    await waitFor(async () => (await listeners()) === before, 10_000, 'the listening connection to close');
  });
});
