/**
 * The size cap (maxSize, maxEntries): exact accounting kept by the database for every writer, eviction in LRU and
 * FIFO order by the elected sweeper, lock rows spared, the cap the table holds when stores disagree, the bad
 * inputs, and the storage settings of a table the store creates.
 */
import { expect } from 'chai';
import Keyv from 'keyv';
import pg from 'pg';
import { InvalidOptionError, PgStore, SchemaError, ValueTooLargeError } from '../../src/index.js';
import { resolveOptions } from '../../src/options/index.js';
import { rejects } from '../helpers/assert.js';
import { sql, testDistributed, testUrl, uniqueTable, waitFor } from '../helpers/db.js';
import { pythonCall, pythonPeer } from '../helpers/python-peer.js';

const MB = 1024 * 1024;

/** A table of its own per test, dropped after with the cap's tables and functions. */
function capTable(prefix: string) {
  const stores: PgStore[] = [];
  const pools: pg.Pool[] = [];
  let table = '';
  beforeEach(() => {
    table = uniqueTable(prefix);
  });
  afterEach(async () => {
    await Promise.all(stores.splice(0).map((store) => store.disconnect()));
    await Promise.all(pools.splice(0).map((pool) => pool.end()));
    await sql(`DROP TABLE IF EXISTS public.${table}, public.${table}_usage, public.${table}_cap, public.${table}_locks`);
    await sql(`DROP FUNCTION IF EXISTS public.${table}_usage_count(), public.${table}_usage_write()`);
  });
  return {
    get table() {
      return table;
    },
    pool(): pg.Pool {
      const pool = new pg.Pool({ connectionString: testUrl(), max: 4 });
      pools.push(pool);
      return pool;
    },
    make(options: ConstructorParameters<typeof PgStore>[0] & object = {}): PgStore {
      const capped = 'maxSize' in options || 'maxEntries' in options;
      const store = new PgStore({ uri: testUrl(), table, enableExpirationScan: false, ...(capped ? { evictionInterval: '1h' } : {}), ...options } as never);
      store.on('error', () => {});
      stores.push(store);
      return store;
    },
    /** What the table holds, counted the slow way. */
    async actual(): Promise<{ bytes: number; entries: number }> {
      const [row] = await sql<{ bytes: string; entries: string }>(
        `SELECT COALESCE(sum(octet_length(id) + octet_length(value)), 0)::text AS bytes, count(*)::text AS entries FROM public.${table}`,
      );
      return { bytes: Number(row!.bytes), entries: Number(row!.entries) };
    },
    async ids(): Promise<string[]> {
      return (await sql<{ id: string }>(`SELECT id FROM public.${table} ORDER BY id`)).map((r) => r.id);
    },
  };
}

async function usageOf(store: PgStore): Promise<{ bytes: number; entries: number }> {
  const stats = await store.stats();
  return { bytes: stats.capacity!.usedBytes, entries: stats.capacity!.usedEntries };
}

const value = (bytes: number, fill = 'x') => fill.repeat(bytes);

describe('size cap: maxSize and maxEntries', function () {
  this.timeout(60_000);
  before(function () {
    // The cap is refused on a distributed table (tested at the end of this file): nothing else here applies there.
    if (testDistributed()) this.skip();
  });
  const fx = capTable('cp_cap');

  it('a fresh table over its byte cap is brought under it by a pass, and the count is exact', async () => {
    const store = fx.make({ maxSize: '1MB' });
    for (let i = 0; i < 30; i++) await store.set(`old:${i}`, value(10_000));
    await Promise.all(Array.from({ length: 270 }, (_, i) => store.set(`new:${i}`, value(10_000))));
    expect(await usageOf(store)).to.deep.equal(await fx.actual());
    expect((await fx.actual()).bytes).to.be.greaterThan(2.5 * MB);
    const evicted = await store.evict();
    const after = await fx.actual();
    expect(after.bytes).to.be.at.most(MB * 0.95);
    expect(after.bytes, 'not emptied: evicted in small batches down to the low water mark').to.be.greaterThan(MB * 0.85);
    expect(await usageOf(store)).to.deep.equal(after);
    expect(evicted.rows).to.equal(300 - after.entries);
    const ids = await fx.ids();
    expect(ids.filter((id) => id.startsWith('old:')), 'the oldest writes went first').to.deep.equal([]);
    const stats = await store.stats();
    expect(stats.capacity).to.include({ maxSize: MB, maxEntries: null, eviction: 'lru', evictedRows: evicted.rows, evictedBytes: evicted.bytes });
    expect(stats.capacity!.lastEviction).to.include({ rows: evicted.rows, bytes: evicted.bytes });
    expect(stats.evicted).to.equal(evicted.rows);
  });

  it('after evicting a quarter of the cap, the sweeper vacuums the table (its dead rows would outgrow the cap between autovacuum rounds)', async () => {
    const store = fx.make({ maxSize: '1MB' });
    await Promise.all(Array.from({ length: 250 }, (_, i) => store.set(`k${i}`, value(10_000))));
    const vacuums = async () =>
      Number((await sql<{ n: string }>(`SELECT vacuum_count::text AS n FROM pg_stat_all_tables WHERE relid = 'public.${fx.table}'::regclass`))[0]!.n);
    const before = await vacuums();
    expect((await store.evict()).bytes).to.be.greaterThan(MB / 4);
    await waitFor(async () => (await vacuums()) > before, 10_000, 'the sweeper to vacuum the table');
  });

  it('five processes\' stores starting at once on a fresh table, with getOrSet transactions running: every one ready, the cap installed once', async () => {
    const first = fx.make();
    await first.has('create the table, no cap yet');
    // getOrSet's transactions read the table, then write it: what an install's table lock can deadlock with.
    let running = true;
    const load = (async () => {
      for (let i = 0; running; i++) await first.ext.getOrSet(`g${i % 20}`, async () => 'v', { absoluteExpirationRelative: '1m' });
    })();
    const stores = Array.from({ length: 5 }, () => {
      const store = new PgStore({ pool: fx.pool(), table: fx.table, enableExpirationScan: false, maxEntries: 1000, evictionInterval: '1h' });
      return store;
    });
    try {
      await Promise.all(stores.map((store) => store.set('k', 'v')));
    } finally {
      running = false;
      await load;
      await Promise.all(stores.map((store) => store.disconnect()));
    }
    const triggers = await sql<{ n: number }>(`SELECT count(*)::int AS n FROM pg_trigger WHERE tgrelid = 'public.${fx.table}'::regclass AND NOT tgisinternal`);
    expect(triggers[0]!.n).to.equal(5);
    expect(await usageOf(fx.make({ maxEntries: 1000 }))).to.deep.equal(await fx.actual());
  });

  it('maxEntries alone caps the number of entries', async () => {
    const store = fx.make({ maxEntries: 100 });
    await Promise.all(Array.from({ length: 250 }, (_, i) => store.set(`k${i}`, 'v')));
    await store.evict();
    const after = await fx.actual();
    expect(after.entries).to.equal(95);
    expect(await usageOf(store)).to.deep.equal(after);
  });

  it('counts exactly whatever writes: Keyv, ext, overwrites of other sizes, deletes, counters, tags, patterns, clear, transactions, .NET and raw SQL, TRUNCATE', async () => {
    const store = fx.make({ maxSize: '64MB' });
    const keyv = new Keyv({ store, namespace: 'app' });
    const check = async (what: string) => expect(await usageOf(store), what).to.deep.equal(await fx.actual());
    await keyv.set('a', 'one');
    await keyv.set('a', 'a longer value than before');
    await keyv.set('b', { nested: ['json'] });
    await check('keyv sets and an overwrite');
    await store.ext.set('tagged:1', Buffer.alloc(5000), { tags: ['t'] });
    await store.ext.set('tagged:2', 'two', { tags: ['t'] });
    await store.ext.setMany([
      ['many:1', 'x'],
      ['many:2', value(3000)],
    ]);
    await check('ext writes');
    await store.ext.incr('counter', 5);
    await store.ext.incr('counter', 1_000_000);
    await check('counters');
    await store.ext.deleteTags(['t']);
    await check('tag invalidation');
    await store.ext.deletePattern('many:*');
    await check('pattern delete');
    await keyv.delete('a');
    await keyv.deleteMany(['b', 'missing']);
    await check('deletes');
    await store.ext.getOrSet('computed', async () => value(777));
    await check('getOrSet');
    const client = await fx.pool().connect();
    try {
      await client.query('BEGIN');
      await store.ext.in(client).set('in-tx', value(100));
      await client.query('ROLLBACK');
      await check('a rolled back write');
      await client.query('BEGIN');
      await store.ext.in(client).set('in-tx', value(200));
      await client.query('COMMIT');
    } finally {
      client.release();
    }
    await check('a committed write');
    // .NET's upsert, exactly (it names its five columns), then an overwrite of another size by it.
    const dotnet = `WITH _PARAMS (slidingExpirationInSeconds, absoluteExpiration, utcNow) AS (VALUES (1200::bigint, NULL::timestamp, now()::timestamp))
INSERT INTO public.${fx.table} (id, value, expiresAtTime, slidingExpirationInSeconds, absoluteExpiration)
SELECT $1, $2::bytea, utcNow + INTERVAL '1 second' * slidingExpirationInSeconds, slidingExpirationInSeconds, absoluteExpiration FROM _PARAMS
ON CONFLICT (id) DO UPDATE SET value = EXCLUDED.value, expiresAtTime = EXCLUDED.expiresAtTime,
  slidingExpirationInSeconds = EXCLUDED.slidingExpirationInSeconds, absoluteExpiration = EXCLUDED.absoluteExpiration`;
    await sql(dotnet, ['dotnet', Buffer.alloc(1000)]);
    await sql(dotnet, ['dotnet', Buffer.alloc(10)]);
    await sql(`UPDATE public.${fx.table} SET id = 'renamed' WHERE id = 'dotnet'`);
    await check('.NET writes and a renamed key');
    await keyv.clear();
    await check('a namespace clear');
    await sql(`TRUNCATE public.${fx.table}`);
    expect(await usageOf(store)).to.deep.equal({ bytes: 0, entries: 0 });
  });

  it('LRU: keys read since they were written survive the eviction of keys written after them', async () => {
    const store = fx.make({ maxSize: '1MB', lruResolution: '1s' });
    for (let i = 0; i < 50; i++) await store.set(`early:${i}`, value(10_000));
    // The write itself recorded an access: move it back, so the reads below are records of their own.
    await sql(`UPDATE public.${fx.table} SET lastaccess = lastaccess - interval '1 hour'`);
    const read = Array.from({ length: 10 }, (_, i) => `early:${i * 5}`);
    for (const key of read) expect(await store.get(key)).to.have.length(10_000);
    await waitFor(
      async () => (await sql<{ n: number }>(`SELECT count(*)::int AS n FROM public.${fx.table} WHERE lastaccess > now() - interval '1 minute'`))[0]!.n === 10,
      10_000,
      'the reads to be recorded',
    );
    for (let i = 0; i < 80; i++) await store.set(`late:${i}`, value(10_000));
    const evicted = await store.evict();
    expect(evicted.rows).to.be.within(25, 40); // 130 entries of 10 kB down to 95% of 1 MiB
    const ids = await fx.ids();
    expect(ids.filter((id) => id.startsWith('early:')), 'the read keys stay, the unread go first').to.include.members(read);
    expect(ids.filter((id) => id.startsWith('late:'))).to.have.length(80);
  });

  it('FIFO: reads change nothing, the oldest writes go first', async () => {
    const store = fx.make({ maxSize: '1MB', eviction: 'fifo' });
    for (let i = 0; i < 50; i++) await store.set(`early:${i}`, value(10_000));
    const before = await sql<{ xmin: string }>(`SELECT xmin::text FROM public.${fx.table} ORDER BY id`);
    for (let i = 0; i < 10; i++) expect(await store.get(`early:${i}`)).to.have.length(10_000);
    for (let i = 0; i < 80; i++) await store.set(`late:${i}`, value(10_000));
    expect(await sql<{ xmin: string }>(`SELECT xmin::text FROM public.${fx.table} WHERE id LIKE 'early:%' ORDER BY id`)).to.deep.equal(before);
    const evicted = await store.evict();
    const ids = await fx.ids();
    const gone = Array.from({ length: 50 }, (_, i) => `early:${i}`).filter((id) => !ids.includes(id));
    expect(gone, 'the first written, read or not').to.deep.equal(Array.from({ length: evicted.rows }, (_, i) => `early:${i}`));
    expect(ids.filter((id) => id.startsWith('late:'))).to.have.length(80);
  });

  it('an overwrite counts as a write: a rewritten old key outlives keys written after its first write', async () => {
    const store = fx.make({ maxSize: '1MB', eviction: 'fifo' });
    for (let i = 0; i < 60; i++) await store.set(`k:${i}`, value(10_000));
    await sql(`UPDATE public.${fx.table} SET lastaccess = lastaccess - interval '1 hour'`);
    await store.set('k:0', value(10_000, 'y'));
    for (let i = 0; i < 60; i++) await store.set(`n:${i}`, value(10_000));
    await store.evict();
    expect(await fx.ids()).to.include('k:0');
  });

  it('a live lock row (Python\'s shape) is never evicted, even when everything else is', async () => {
    const store = fx.make({ maxEntries: 1, lockProtocol: 'python' });
    const lock = (await store.ext.tryLock('job', { ttl: '30s' }))!;
    expect(lock).to.not.equal(undefined);
    // Python's set_lock, exactly: the key as id, the token as value, an expiry; no sliding, no absolute.
    await sql(`INSERT INTO public.${fx.table} (id, value, expiresattime) VALUES ('py-job', 'token'::bytea, now() + interval '30 seconds')`);
    await Promise.all(Array.from({ length: 20 }, (_, i) => store.set(`k${i}`, 'v')));
    await store.evict();
    expect(await fx.ids()).to.deep.equal(['job', 'py-job']);
    await lock.release();
  });

  it('a write larger than the cap is refused before anything runs, and nothing is written', async () => {
    const store = fx.make({ maxSize: '1MB' });
    const keyv = new Keyv({ store });
    await rejects(store.set('huge', value(MB + 1)), ValueTooLargeError, /maxSize/);
    await rejects(store.ext.set('huge', Buffer.alloc(MB)), ValueTooLargeError, /maxSize/);
    await rejects(store.ext.getOrSet('huge', async () => Buffer.alloc(MB)), ValueTooLargeError, /maxSize/);
    await rejects(store.setMany([{ key: 'fine', value: 'x' }, { key: 'huge', value: value(MB) }]), ValueTooLargeError);
    expect(await keyv.set('fine', 'small')).to.equal(true);
    expect(await fx.ids()).to.deep.equal(['keyv:fine']);
  });

  it('stores that disagree: the last one started writes the table\'s cap (and warns); every sweeper enforces that one', async () => {
    const warnings: string[] = [];
    const first = fx.make({ maxSize: '2MB' });
    await first.has('start');
    const second = fx.make({ maxSize: '1MB', logger: { warn: (message: string) => warnings.push(message), error: () => {} } as never });
    await second.has('start');
    expect(warnings.join('\n')).to.match(/maxSize 2097152.*replaced it with maxSize 1048576/);
    await Promise.all(Array.from({ length: 180 }, (_, i) => first.set(`k${i}`, value(10_000))));
    await first.evict(); // the first store's sweeper, enforcing the table's (the second's) cap
    expect((await fx.actual()).bytes).to.be.at.most(MB);
    expect((await first.stats()).capacity).to.include({ maxSize: MB });
  });

  it('the background sweeper keeps the table under its cap while writes go on', async () => {
    const store = fx.make({ maxSize: '1MB', evictionInterval: '100ms' });
    for (let round = 0; round < 5; round++) {
      await Promise.all(Array.from({ length: 100 }, (_, i) => store.set(`r${round}:${i}`, value(5_000))));
    }
    await waitFor(async () => (await fx.actual()).bytes <= MB, 10_000, 'the sweeper to evict');
    expect(await usageOf(store)).to.deep.equal(await fx.actual());
  });

  it('two sweepers at once, and a namespace clear during eviction: no deadlock, exact count, no double eviction', async () => {
    const a = fx.make({ maxSize: '1MB' });
    const b = fx.make({ maxSize: '1MB' });
    const keyv = new Keyv({ store: a, namespace: 'ns' });
    await Promise.all(Array.from({ length: 150 }, (_, i) => a.set(`k${i}`, value(10_000))));
    await Promise.all(Array.from({ length: 100 }, (_, i) => keyv.set(`n${i}`, value(10_000))));
    await Promise.all([a.evict(), b.evict(), keyv.clear(), a.evict()]);
    const after = await fx.actual();
    expect(after.bytes).to.be.at.most(MB);
    expect(await usageOf(a)).to.deep.equal(after);
    expect((await fx.ids()).filter((id) => id.startsWith('ns:'))).to.deep.equal([]);
    // How much is left after the clear depends on whether the sweepers evicted before it (then they evicted the
    // oldest rows, and the clear the rest) or after: no bound there. Without a clear, the sweepers together
    // evict down to the cap once, not once each.
    await Promise.all(Array.from({ length: 150 }, (_, i) => a.set(`again${i}`, value(10_000))));
    await Promise.all([a.evict(), b.evict(), a.evict()]);
    const swept = await fx.actual();
    expect(swept.bytes).to.be.at.most(MB);
    expect(swept.bytes).to.be.greaterThan(MB * 0.7);
    expect(await usageOf(a)).to.deep.equal(swept);
  });

  it('a role with no right on the cap\'s tables still writes and deletes (the triggers run as their installer)', async () => {
    const store = fx.make({ maxSize: '1MB' });
    await store.has('start');
    const role = `cp_cap_writer_${process.pid}`;
    await sql(`DROP ROLE IF EXISTS ${role}`);
    await sql(`CREATE ROLE ${role} LOGIN PASSWORD 'pw_${role}'`);
    try {
      await sql(`GRANT SELECT, INSERT, UPDATE, DELETE ON public.${fx.table} TO ${role}`);
      const url = new URL(testUrl());
      url.username = role;
      url.password = `pw_${role}`;
      const client = new pg.Client({ connectionString: url.toString() });
      await client.connect();
      try {
        await client.query(`INSERT INTO public.${fx.table} (id, value, expiresattime) VALUES ('w', 'abc'::bytea, 'infinity')`);
        await client.query(`UPDATE public.${fx.table} SET value = 'abcdef'::bytea WHERE id = 'w'`);
        await client.query(`DELETE FROM public.${fx.table} WHERE id = 'w'`);
        await rejects(client.query(`SELECT * FROM public.${fx.table}_usage`), Error, /permission denied/);
      } finally {
        await client.end();
      }
      expect(await usageOf(store)).to.deep.equal(await fx.actual());
    } finally {
      await sql(`DROP OWNED BY ${role}`);
      await sql(`DROP ROLE ${role}`);
    }
  });

  it("a capped store whose role does not own the table evicts, says once that it leaves vacuuming to others, and sends no VACUUM", async () => {
    await fx.make({ maxSize: '1MB' }).has('the owner installs the cap');
    const role = `cp_cap_sweeper_${process.pid}`;
    await sql(`DROP ROLE IF EXISTS ${role}`);
    await sql(`CREATE ROLE ${role} LOGIN PASSWORD 'pw_${role}'`);
    try {
      await sql(`GRANT SELECT, INSERT, UPDATE, DELETE ON public.${fx.table}, public.${fx.table}_usage, public.${fx.table}_cap TO ${role}`);
      const url = new URL(testUrl());
      url.username = role;
      url.password = `pw_${role}`;
      const warnings: string[] = [];
      const store = new PgStore({
        uri: url.toString(), table: fx.table, enableExpirationScan: false, maxSize: '1MB', evictionInterval: '1h',
        logger: { warn: (message: string) => warnings.push(message), error: () => {} },
      });
      try {
        await Promise.all(Array.from({ length: 250 }, (_, i) => store.set(`k${i}`, value(10_000))));
        const vacuums = async () =>
          Number((await sql<{ n: string }>(`SELECT vacuum_count::text AS n FROM pg_stat_all_tables WHERE relid = 'public.${fx.table}'::regclass`))[0]!.n);
        const before = await vacuums();
        expect((await store.evict()).bytes).to.be.greaterThan(MB / 4);
        expect((await fx.actual()).bytes).to.be.at.most(MB);
        expect(warnings.filter((w) => /does not own the cache table/.test(w))).to.have.length(1);
        expect(await vacuums()).to.equal(before);
      } finally {
        await store.disconnect();
      }
    } finally {
      await sql(`DROP OWNED BY ${role}`);
      await sql(`DROP ROLE ${role}`);
    }
  });

  it('the Python library reads and writes a capped table unchanged, and its entries are counted and evicted', async function () {
    const peer = pythonPeer();
    // Where the Python library cannot run (no python3 or psycopg), this cannot be checked: say why (CI installs them).
    if (typeof peer === 'string') {
      console.warn(`      (skipped: ${peer})`);
      this.skip();
    }
    const store = fx.make({ maxEntries: 10 });
    await store.has('start');
    const py = (expression: string) => pythonCall(testUrl(), fx.table, expression);
    await py("[cache.set(f'py:{i}', b'python value') for i in range(20)] and None");
    expect(await py("cache.get('py:19').decode()")).to.equal('python value');
    expect(await usageOf(store)).to.deep.equal(await fx.actual());
    await store.evict();
    expect((await fx.actual()).entries).to.equal(9);
    expect(await py("cache.get('py:19').decode()")).to.equal('python value');
  });

  it("a table of someone else's under the usage table's name is refused, and left as it was", async () => {
    await fx.make().has('create the table without a cap');
    await sql(`CREATE TABLE public.${fx.table}_usage (bytes bigint, entries bigint, note text)`);
    await sql(`INSERT INTO public.${fx.table}_usage VALUES (1, 2, 'theirs')`);
    const store = fx.make({ maxSize: '1MB' });
    await rejects(store.get('k'), SchemaError, /is not the size cap's table/);
    expect(await sql(`SELECT note FROM public.${fx.table}_usage`)).to.deep.equal([{ note: 'theirs' }]);
    expect(await sql(`SELECT 1 FROM pg_trigger WHERE tgrelid = 'public.${fx.table}'::regclass AND NOT tgisinternal`)).to.deep.equal([]);
  });

  it('createIfNotExists false: a missing cap is a SchemaError that gives the DDL', async () => {
    await fx.make().has('create the table without a cap');
    const store = fx.make({ maxSize: '1MB', createIfNotExists: false });
    await rejects(store.get('k'), SchemaError, /size cap .* not installed[\s\S]*CREATE TRIGGER/);
  });

  it('stats() reports the table\'s sizes and dead rows, with or without a cap', async () => {
    const store = fx.make();
    await store.set('k', 'v');
    const stats = await store.stats();
    expect(stats.capacity).to.equal(null);
    expect(stats.tableBytes).to.be.a('number').greaterThan(0);
    expect(stats.indexBytes).to.be.a('number').greaterThan(0);
    expect(stats.bytes).to.equal(stats.tableBytes + stats.indexBytes);
    expect(stats.deadRows).to.be.a('number');
  });
});

describe('size cap: bad options', function () {
  const bad: Array<[Record<string, unknown>, string, RegExp]> = [
    [{ maxSize: 0 }, 'maxSize', /at least 1MB/],
    [{ maxSize: -1 }, 'maxSize', /non-negative/],
    [{ maxSize: 1024 }, 'maxSize', /at least 1MB/],
    [{ maxSize: 'lots' }, 'maxSize', /expected bytes/],
    [{ maxSize: '64XB' }, 'maxSize', /unknown unit/],
    [{ maxSize: Number.NaN }, 'maxSize', /non-negative/],
    [{ maxSize: 1.5 * MB + 0.5 }, 'maxSize', /whole/],
    [{ maxSize: {} }, 'maxSize', /expected bytes/],
    [{ maxEntries: 0 }, 'maxEntries', /positive whole/],
    [{ maxEntries: 2.5 }, 'maxEntries', /positive whole/],
    [{ maxEntries: '10' }, 'maxEntries', /positive whole/],
    [{ maxSize: '1GB', eviction: 'random' }, 'eviction', /'lru'.*'fifo'/],
    [{ eviction: 'fifo' }, 'eviction', /without maxSize or maxEntries/],
    [{ evictionInterval: '1s' }, 'evictionInterval', /without maxSize or maxEntries/],
    [{ maxSize: '1GB', evictionInterval: '10ms' }, 'evictionInterval', /100 ms/],
    [{ maxSize: '1GB', lruResolution: '100ms' }, 'lruResolution', /at least 1 second/],
    [{ maxSize: '1GB', eviction: 'fifo', lruResolution: '5s' }, 'lruResolution', /lru/],
    [{ maxSize: '1GB', distributed: true }, 'maxSize', /distributed/],
    [{ storageSettings: 'yes' }, 'storageSettings', /true, false/],
  ];
  for (const [options, option, message] of bad) {
    it(`${JSON.stringify(options)} is refused, naming ${option}`, () => {
      let caught: unknown;
      try {
        new PgStore({ uri: 'postgres://nowhere/none', ...options } as never);
      } catch (error) {
        caught = error;
      }
      expect(caught).to.be.instanceOf(InvalidOptionError);
      expect((caught as InvalidOptionError).option).to.equal(option);
      expect((caught as Error).message).to.match(message);
    });
  }

  it('sizes in postgresql.conf units (powers of 1024)', () => {
    for (const [given, bytes] of [['1MB', MB], ['1.5GB', 1.5 * 1024 * MB], ['2GiB', 2048 * MB], [' 64 mb ', 64 * MB], ['2048kB', 2 * MB], [3 * MB, 3 * MB]] as const) {
      expect(resolveOptions({ maxSize: given }).capacity?.maxBytes, String(given)).to.equal(bytes);
    }
    expect(resolveOptions({ maxEntries: 5 }).capacity).to.include({ maxBytes: null, maxEntries: 5, policy: 'lru', intervalMs: 1000, resolutionMs: 5000 });
    expect(resolveOptions({}).capacity).to.equal(undefined);
  });
});

describe('storage settings of the cache table', function () {
  before(function () {
    if (testDistributed()) this.skip(); // reloptions of the coordinator's shell say nothing of the shards
  });
  const fx = capTable('cp_storage');
  const options = async () => (await sql<{ options: string[] | null }>(`SELECT reloptions AS options FROM pg_class WHERE oid = to_regclass('public.${fx.table}')`))[0]!.options ?? [];

  it('a table the store creates gets them; a table it finds keeps its own, unless asked', async () => {
    await fx.make().has('create');
    expect(await options()).to.include.members(['fillfactor=90', 'autovacuum_vacuum_scale_factor=0.02']);
    await sql(`ALTER TABLE public.${fx.table} RESET (fillfactor, autovacuum_vacuum_scale_factor)`);
    const other = new PgStore({ uri: testUrl(), table: fx.table, enableExpirationScan: false });
    await other.has('find');
    await other.disconnect();
    expect(await options()).to.not.include('fillfactor=90');
    await fx.make({ storageSettings: true }).has('asked');
    expect(await options()).to.include.members(['fillfactor=90', 'autovacuum_vacuum_scale_factor=0.02']);
  });

  it('storageSettings false: a table the store creates is left with PostgreSQL\'s defaults', async () => {
    await fx.make({ storageSettings: false }).has('create');
    expect(await options()).to.deep.equal([]);
  });
});

describe('size cap on a table distributed by Citus', function () {
  before(function () {
    if (!testDistributed()) this.skip(); // runs in the Citus pass of .ci/run only
  });
  it('is refused with a SchemaError that says why', async () => {
    const table = uniqueTable('cp_cap_citus');
    const creator = new PgStore({ uri: testUrl(), table, enableExpirationScan: false, distributed: true });
    await creator.has('create');
    await creator.disconnect();
    const store = new PgStore({ uri: testUrl(), table, enableExpirationScan: false, maxSize: '1GB' });
    try {
      await rejects(store.get('k'), SchemaError, /distributed by Citus/);
    } finally {
      await store.disconnect();
      await sql(`DROP TABLE IF EXISTS public.${table}, public.${table}_locks`);
    }
  });
});
