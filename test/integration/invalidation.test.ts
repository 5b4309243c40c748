import { expect } from 'chai';
import pg from 'pg';
import { InvalidValueError, PgStore, type PgStoreOptions, SchemaError } from '../../src/index.js';
import { rejects } from '../helpers/assert.js';
import { sql, testDistributed, testUrl, uniqueTable, waitFor } from '../helpers/db.js';
import { useCacheTable } from '../helpers/fixture.js';
import { within } from '../helpers/settle.js';
import { startWorker } from '../helpers/worker-process.js';
import { fromMemory, tieredStore } from '../helpers/local-tier.js';


describe('triggers: invalidation driven by the data, and local tiers told of every writer', function () {
  this.timeout(60_000);
  // Triggers on a table distributed by Citus would run on the workers: both features refuse it (tested below).
  before(function () {
    if (testDistributed()) this.skip();
  });
  const fx = useCacheTable('cp_trig');
  const own: PgStore[] = [];
  const tiered = (options: Omit<PgStoreOptions, 'table'> = {}) => tieredStore(fx.table, own, options);
  afterEach(async () => {
    await Promise.all(own.splice(0).map((store) => store.disconnect()));
  });


  describe('ext.invalidateOn', () => {
    const products = uniqueTable('cp_trig_products');
    const qualified = `public.${products}`;
    beforeEach(async () => {
      await sql(`DROP TABLE IF EXISTS ${qualified}`);
      await sql(`CREATE TABLE ${qualified} (id int PRIMARY KEY, category text, price int NOT NULL)`);
      await sql(`INSERT INTO ${qualified} SELECT g, CASE WHEN g % 2 = 0 THEN 'even' ELSE 'odd' END, 10 FROM generate_series(1, 4) g`);
    });
    afterEach(async () => {
      const store = new PgStore({ uri: testUrl(), table: fx.table, enableExpirationScan: false });
      await store.ext.dropInvalidation({ table: products });
      await store.disconnect();
    });
    after(() => sql(`DROP TABLE IF EXISTS ${qualified}`));

    /** Caches an entry per product (tagged product:<id> and category:<category>) and one tagged `products`. */
    async function cacheProducts(store: PgStore, ids = [1, 2, 3, 4]): Promise<void> {
      for (const id of ids) {
        await store.ext.set(`product:${id}`, `p${id}`, { absoluteExpirationRelative: '1h', tags: [`product:${id}`, `category:${id % 2 === 0 ? 'even' : 'odd'}`] });
      }
      await store.ext.set('product-list', 'all', { absoluteExpirationRelative: '1h', tags: ['products'] });
      await store.ext.set('unrelated', 'u', { absoluteExpirationRelative: '1h', tags: ['other'] });
    }

    const install = (store: PgStore) => store.ext.invalidateOn({ table: products, tags: ['product:{id}', 'category:{category}', 'products'] });

    it('an UPDATE from a plain pg client (not the store) deletes the entries its rows tag, in its transaction', async () => {
      const store = fx.make();
      const status = await install(store);
      expect(status).to.deep.equal({ table: qualified, tags: ['product:{id}', 'category:{category}', 'products'], ok: true, problems: [] });
      await cacheProducts(store);
      const client = new pg.Client({ connectionString: testUrl() });
      await client.connect();
      try {
        await client.query('BEGIN');
        await client.query(`UPDATE ${qualified} SET price = 11 WHERE id = 1`);
        // Deleted in the writer's transaction: others still see the entries until it commits.
        expect(await store.ext.getString('product:1')).to.equal('p1');
        await client.query('COMMIT');
      } finally {
        await client.end();
      }
      // product:1, its category (odd: product:3 too) and the list are gone; even products and the rest stay.
      expect(await fx.ids()).to.deep.equal(['product:2', 'product:4', 'unrelated']);
    });

    it('a rolled-back UPDATE deletes nothing', async () => {
      const store = fx.make();
      await install(store);
      await cacheProducts(store);
      const client = new pg.Client({ connectionString: testUrl() });
      await client.connect();
      try {
        await client.query('BEGIN');
        await client.query(`UPDATE ${qualified} SET price = 11`);
        await client.query('ROLLBACK');
      } finally {
        await client.end();
      }
      expect(await fx.count()).to.equal(6);
    });

    it('INSERT, DELETE, an UPDATE moving a row (old and new tags), and TRUNCATE each invalidate', async () => {
      const store = fx.make();
      await install(store);
      await store.ext.set('category:new', 'x', { absoluteExpirationRelative: '1h', tags: ['category:new'] });
      await sql(`INSERT INTO ${qualified} VALUES (5, 'new', 1)`);
      expect(await store.ext.has('category:new')).to.equal(false);

      await cacheProducts(store);
      await sql(`DELETE FROM ${qualified} WHERE id = 2`);
      expect(await fx.ids()).to.deep.equal(['product:1', 'product:3', 'unrelated']);

      await cacheProducts(store);
      await sql(`UPDATE ${qualified} SET category = 'even' WHERE id = 3`);
      expect(await fx.ids(), 'old category odd and new category even').to.deep.equal(['unrelated']);

      await cacheProducts(store);
      await sql(`TRUNCATE ${qualified}`);
      expect(await fx.ids(), 'every entry a template could tag').to.deep.equal(['unrelated']);
    });

    it('a statement touching no row deletes nothing; a NULL column renders no tag', async () => {
      const store = fx.make();
      await install(store);
      await cacheProducts(store);
      await sql(`UPDATE ${qualified} SET price = 0 WHERE id = -1`);
      expect(await fx.count()).to.equal(6);
      await store.ext.set('category:null', 'x', { absoluteExpirationRelative: '1h', tags: ['category:'] });
      await sql(`UPDATE ${qualified} SET category = NULL WHERE id = 4`);
      expect(await fx.ids()).to.include('category:null');
      expect(await fx.ids()).to.not.include('product:4');
    });

    it('a bulk UPDATE of 10,000 rows invalidates them all in one statement', async () => {
      const store = fx.make();
      await install(store);
      await sql(`INSERT INTO ${qualified} SELECT g, 'bulk', 1 FROM generate_series(5, 10004) g`);
      const entries = new Map<string, string>();
      for (let id = 1; id <= 10_004; id++) entries.set(`product:${id}`, 'v');
      for (const chunk of [[...entries].slice(0, 5000), [...entries].slice(5000)]) {
        // One tag each: setMany shares options, so tag rows with SQL afterwards.
        await store.ext.setMany(chunk, { absoluteExpirationRelative: '1h' });
      }
      await sql(`UPDATE public.${fx.table} SET tags = ARRAY[id]`);
      await cacheProducts(store, []);
      await sql(`UPDATE ${qualified} SET price = price + 1`);
      expect(await fx.ids()).to.deep.equal(['unrelated']);
    });

    it('is idempotent, replaces the tags when called again, and is removed by dropInvalidation', async () => {
      const store = fx.make();
      await install(store);
      const oids = () => sql<{ oid: string }>(`SELECT oid::text FROM pg_trigger WHERE tgrelid = $1::regclass AND NOT tgisinternal ORDER BY oid`, [qualified]);
      const first = await oids();
      expect(first).to.have.length(4);
      await install(store);
      // Nothing re-run: DROP and CREATE TRIGGER would lock the table against its readers at every boot.
      expect(await oids()).to.deep.equal(first);
      await store.ext.invalidateOn({ table: products, tags: ['products'] });
      await cacheProducts(store);
      await sql(`UPDATE ${qualified} SET price = 1 WHERE id = 1`);
      expect(await fx.ids(), 'only the literal tag is left').to.deep.equal(['product:1', 'product:2', 'product:3', 'product:4', 'unrelated']);
      expect(await store.ext.dropInvalidation({ table: products })).to.equal(true);
      expect(await store.ext.dropInvalidation({ table: products })).to.equal(false);
      await cacheProducts(store);
      await sql(`UPDATE ${qualified} SET price = 2`);
      expect(await fx.count()).to.equal(6);
      expect(await store.ext.invalidations()).to.deep.equal([]);
    });

    it('invalidations() reports a dropped trigger, a disabled one and a dropped table; invalidateOn again mends', async () => {
      const store = fx.make();
      await install(store);
      const [trigger] = await sql<{ tgname: string }>(`SELECT tgname FROM pg_trigger WHERE tgrelid = $1::regclass AND tgtype & 16 <> 0 AND NOT tgisinternal`, [qualified]);
      await sql(`DROP TRIGGER "${trigger!.tgname}" ON ${qualified}`);
      let [status] = await store.ext.invalidations();
      expect(status!.ok).to.equal(false);
      expect(status!.problems.join('\n')).to.match(/no UPDATE trigger/);
      await install(store);
      expect((await store.ext.invalidations())[0]!.ok).to.equal(true);
      await sql(`ALTER TABLE ${qualified} DISABLE TRIGGER ALL`);
      [status] = await store.ext.invalidations();
      expect(status!.problems.join('\n')).to.match(/INSERT, UPDATE, DELETE, TRUNCATE trigger .* is disabled/);
      await sql(`ALTER TABLE ${qualified} ENABLE TRIGGER ALL`);
      await sql(`ALTER TABLE ${qualified} RENAME COLUMN category TO kind`);
      [status] = await store.ext.invalidations();
      expect(status!.problems.join('\n')).to.match(/no column category any more .* every write to it fails/);
      await rejects(sql(`UPDATE ${qualified} SET price = 3`), Error, /category/);
      await sql(`DROP TABLE ${qualified}`);
      [status] = await store.ext.invalidations();
      expect(status!.problems.join('\n')).to.match(/does not exist/);
      expect(await store.ext.dropInvalidation({ table: products })).to.equal(true);
      expect(await store.ext.invalidations()).to.deep.equal([]);
    });

    it('invalidates for a writer with no privilege on the cache table (the trigger runs as the role that installed it)', async () => {
      const store = fx.make();
      await install(store);
      await cacheProducts(store);
      const role = uniqueTable('cp_writer');
      const password = 'writer-only';
      await sql(`CREATE ROLE ${role} LOGIN PASSWORD '${password}'`);
      try {
        await sql(`GRANT USAGE ON SCHEMA public TO ${role}`);
        await sql(`GRANT SELECT, UPDATE ON ${qualified} TO ${role}`);
        const url = new URL(testUrl());
        url.username = role;
        url.password = password;
        const writer = new pg.Client({ connectionString: url.toString() });
        await writer.connect();
        try {
          await rejects(writer.query(`SELECT * FROM public.${fx.table}`), Error, /permission denied/);
          await writer.query(`UPDATE ${qualified} SET price = 1 WHERE id = 2`);
          // Nor can it run the function as the installer by attaching it to a table of its own.
          const [fn] = await sql<{ name: string }>(`SELECT p.oid::regprocedure::text AS name FROM pg_trigger t JOIN pg_proc p ON p.oid = t.tgfoid WHERE t.tgrelid = $1::regclass LIMIT 1`, [qualified]);
          await writer.query('CREATE TEMP TABLE mine (id int)');
          await rejects(writer.query(`CREATE TRIGGER steal AFTER TRUNCATE ON mine FOR EACH STATEMENT EXECUTE FUNCTION ${fn!.name}`), Error, /permission denied/);
        } finally {
          await writer.end();
        }
        expect(await fx.ids()).to.deep.equal(['product:1', 'product:3', 'unrelated']);
      } finally {
        await sql(`REVOKE ALL ON ${qualified} FROM ${role}`);
        await sql(`REVOKE ALL ON SCHEMA public FROM ${role}`);
        await sql(`DROP ROLE ${role}`);
      }
    });

    it('renders a column the same for every writer: a timestamp tag holds whatever TimeZone the writer\'s session has', async () => {
      const store = fx.make();
      const events = uniqueTable('cp_trig_events');
      await sql(`CREATE TABLE public.${events} (id int PRIMARY KEY, at timestamptz NOT NULL)`);
      try {
        await sql(`INSERT INTO public.${events} VALUES (1, '2026-01-01 00:00:00+00')`);
        await store.ext.invalidateOn({ table: events, tags: ['at:{at}'] });
        await store.ext.set('e', 'v', { absoluteExpirationRelative: '1h', tags: ['at:2026-01-01 00:00:00+00'] });
        const writer = new pg.Client({ connectionString: testUrl() });
        await writer.connect();
        try {
          await writer.query("SET TimeZone = 'America/New_York'"); // its own text of the value: 2025-12-31 19:00:00-05
          await writer.query(`UPDATE public.${events} SET id = id WHERE id = 1`);
        } finally {
          await writer.end();
        }
        expect(await fx.ids()).to.deep.equal([]);
      } finally {
        await store.ext.dropInvalidation({ table: events });
        await sql(`DROP TABLE public.${events}`);
      }
    });

    it('tells the local tiers which keys went: a tier holding an invalidated entry drops it within milliseconds', async () => {
      const store = await tiered();
      await install(store);
      await cacheProducts(store, [1]);
      await waitFor(async () => (await fromMemory(store, 'product:1')).fromMemory, 5000, 'the tier to hold product:1');
      await sql(`UPDATE ${qualified} SET price = 5 WHERE id = 1`);
      await waitFor(async () => (await store.ext.getString('product:1')) === undefined, 5000, 'the tier to drop product:1');
    });

    it('quotes every name and text it is given: a hostile table, column and template are only names and text', async () => {
      const store = fx.make();
      const table = `${products} "x"; DROP TABLE y; --`;
      await sql(`CREATE TABLE public."${table.replaceAll('"', '""')}" ("we'ird col" int, id int)`);
      try {
        await store.ext.invalidateOn({ table, tags: ["it's {we'ird col} $cp$ \\ {{literal}}"] });
        await store.ext.set('k', 'v', { absoluteExpirationRelative: '1h', tags: ["it's 7 $cp$ \\ {literal}"] });
        await store.ext.set('kept', 'v', { absoluteExpirationRelative: '1h', tags: ["it's 8 $cp$ \\ {literal}"] });
        await sql(`INSERT INTO public."${table.replaceAll('"', '""')}" VALUES (7, 1)`);
        expect(await fx.ids()).to.deep.equal(['kept']);
        expect(await store.ext.dropInvalidation({ table })).to.equal(true);
      } finally {
        await sql(`DROP TABLE IF EXISTS public."${table.replaceAll('"', '""')}"`);
      }
    });

    it('refuses bad input with a typed error before installing anything', async () => {
      const store = fx.make();
      await rejects(store.ext.invalidateOn({ table: products, tags: ['product:{nope}'] }), InvalidValueError, /has no column "nope"\. Its columns: id, category, price/);
      await rejects(store.ext.invalidateOn({ table: products, tags: ['product:{id'] }), InvalidValueError, /malformed tag template/);
      await rejects(store.ext.invalidateOn({ table: products, tags: ['product:}'] }), InvalidValueError, /lone "}"/);
      await rejects(store.ext.invalidateOn({ table: products, tags: [] }), InvalidValueError, /non-empty array/);
      await rejects(store.ext.invalidateOn({ table: products, tags: [''] }), InvalidValueError, /non-empty string/);
      await rejects(store.ext.invalidateOn({ table: '', tags: ['x'] }), InvalidValueError, /table must be/);
      await rejects(store.ext.invalidateOn({ table: products, tags: ['x'], tag: 1 } as never), Error, /unknown invalidateOn option/);
      await rejects(store.ext.invalidateOn({ table: 'no_such_table_here', tags: ['x'] }), SchemaError, /does not exist/);
      expect(await store.ext.invalidations()).to.deep.equal([]);
    });
  });

  describe('localCache.notifyTrigger', () => {
    // Dropping the test table drops its triggers but not their function: removed here, as an application would.
    afterEach(async () => {
      const store = new PgStore({ uri: testUrl(), table: fx.table, enableExpirationScan: false });
      await store.ext.dropNotifyTrigger();
      await store.disconnect();
    });

    it('a write by anything (plain SQL, a store without localCache) reaches the tier within milliseconds', async () => {
      const store = await tiered({ localCache: { ttl: '1h', notifyTrigger: true } });
      const plain = fx.make();
      await plain.ext.set('k', 'v1', { absoluteExpirationRelative: '1h' });
      await waitFor(async () => (await fromMemory(store, 'k')).value === 'v1', 5000, 'the tier to hold v1');
      await waitFor(async () => (await fromMemory(store, 'k')).fromMemory, 5000, 'the tier to hold v1');
      await plain.ext.set('k', 'v2', { absoluteExpirationRelative: '1h' });
      await waitFor(async () => (await store.ext.getString('k')) === 'v2', 5000, 'the store write to reach the tier');
      await waitFor(async () => (await fromMemory(store, 'k')).fromMemory, 5000, 'the tier to hold v2');
      await sql(`UPDATE public.${fx.table} SET value = 'v3'::bytea WHERE id = 'k'`);
      await waitFor(async () => (await store.ext.getString('k')) === 'v3', 5000, 'the SQL write to reach the tier');
      await sql(`DELETE FROM public.${fx.table} WHERE id = 'k'`);
      await waitFor(async () => (await store.ext.getString('k')) === undefined, 5000, 'the SQL delete to reach the tier');
    });

    it('does not tell the tiers of a row only slid later (a read), nor of expired rows deleted', async () => {
      const store = await tiered({ localCache: { ttl: '1h', notifyTrigger: true } });
      await store.ext.set('k', 'v', { absoluteExpirationRelative: '1h' });
      await store.ext.set('sentinel', 's0', { absoluteExpirationRelative: '1h' });
      for (const key of ['k', 'sentinel']) await waitFor(async () => (await fromMemory(store, key)).fromMemory, 5000, `the tier to hold ${key}`);
      await sql(`UPDATE public.${fx.table} SET expiresattime = expiresattime + interval '1 minute' WHERE id = 'k'`);
      await sql(`INSERT INTO public.${fx.table} (id, value, expiresattime) VALUES ('old', 'x', now() - interval '1 hour')`);
      await sql(`DELETE FROM public.${fx.table} WHERE id = 'old'`);
      await sql(`UPDATE public.${fx.table} SET value = 's1' WHERE id = 'sentinel'`); // heard after the ones above
      await waitFor(async () => (await store.ext.getString('sentinel')) === 's1', 5000, 'the sentinel to reach the tier');
      expect(await fromMemory(store, 'k')).to.deep.equal({ value: 'v', fromMemory: true });
    });

    it('tells the tiers "everything" for a TRUNCATE, and for more keys than one notice holds', async () => {
      const store = await tiered({ localCache: { ttl: '1h', notifyTrigger: true } });
      const held = async () => {
        await store.ext.set('held', 'v', { absoluteExpirationRelative: '1h' });
        await waitFor(async () => (await fromMemory(store, 'held')).fromMemory, 5000, 'the tier to hold "held"');
      };
      await held();
      await sql(`INSERT INTO public.${fx.table} (id, value, expiresattime) VALUES ('other', 'x', now() + interval '1 hour')`);
      await sql(`TRUNCATE public.${fx.table}`);
      await waitFor(async () => !(await fromMemory(store, 'held')).fromMemory, 5000, 'the TRUNCATE notice to flush the tier');
      // 1,000 keys of 40 characters: about 43 kB of key list, over the 8 kB a notice holds.
      await held();
      await sql(`INSERT INTO public.${fx.table} (id, value, expiresattime)
        SELECT 'bulk:' || lpad(g::text, 35, '0'), 'x', now() + interval '1 hour' FROM generate_series(1, 1000) g`);
      await waitFor(async () => !(await fromMemory(store, 'held')).fromMemory, 5000, 'the oversized notice to flush the tier');
    });

    it('is installed once per table, refused with createIfNotExists false (naming the DDL), and removed by dropNotifyTrigger', async () => {
      const store = await tiered({ localCache: { notifyTrigger: true } });
      const count = async () => (await sql<{ n: number }>(`SELECT count(*)::int AS n FROM pg_trigger WHERE tgrelid = $1::regclass AND NOT tgisinternal`, [`public.${fx.table}`]))[0]!.n;
      expect(await count()).to.equal(4);
      await tiered({ localCache: { notifyTrigger: true } });
      expect(await count()).to.equal(4);
      expect(await store.ext.dropNotifyTrigger()).to.equal(true);
      expect(await store.ext.dropNotifyTrigger()).to.equal(false);
      expect(await count()).to.equal(0);
      const strict = new PgStore({ uri: testUrl(), table: fx.table, enableExpirationScan: false, createIfNotExists: false, localCache: { notifyTrigger: true } });
      own.push(strict);
      await rejects(strict.ext.get('k'), SchemaError, /notify trigger of .* is not installed and createIfNotExists is false\. Run:\nCREATE OR REPLACE FUNCTION/);
    });

    it('two other OS processes hear a plain SQL write, and an invalidateOn delete, by notices (their copies would last an hour)', async function () {
      this.timeout(90_000);
      const writer = fx.make();
      const app = uniqueTable('cp_trig_app');
      await sql(`CREATE TABLE public.${app} (id int PRIMARY KEY, price int)`);
      try {
        await writer.ext.invalidateOn({ table: app, tags: ['product:{id}'] });
        await writer.ext.set('price', 'v0', { absoluteExpirationRelative: '1h' });
        await writer.ext.set('product:1', 'p1', { absoluteExpirationRelative: '1h', tags: ['product:1'] });
        // Each worker's tier keeps its copy an hour: only a notice explains a change seen.
        const prices = [0, 1].map(() => startWorker(['watch-trigger', testUrl(), fx.table, 'price', 'v1']));
        const products = [0, 1].map(() => startWorker(['watch-trigger', testUrl(), fx.table, 'product:1', '(missing)']));
        const workers = [...prices, ...products];
        await Promise.all(workers.map((worker) => worker.ready));
        for (const worker of workers) worker.child.stdin.write('go\n');
        await sql(`UPDATE public.${fx.table} SET value = 'v1'::bytea WHERE id = 'price'`);
        await sql(`INSERT INTO public.${app} VALUES (1, 10)`);
        try {
          for (const [worker, first, last] of [...prices.map((w) => [w, 'v0', 'v1'] as const), ...products.map((w) => [w, 'p1', '(missing)'] as const)]) {
            const result = (await within(worker.result, 10_000, `a watcher to see ${last}`)) as { seen: string[] };
            expect(result.seen.filter((value) => value !== first)).to.deep.equal([last]); // its first read may come after the notice
          }
        } finally {
          for (const worker of workers) worker.child.kill('SIGKILL');
        }
      } finally {
        await writer.ext.dropInvalidation({ table: app });
        await writer.ext.dropNotifyTrigger();
        await sql(`DROP TABLE IF EXISTS public.${app}`);
      }
    });

    it('refuses a notifyTrigger that is not a boolean', () => {
      expect(() => new PgStore({ uri: testUrl(), localCache: { notifyTrigger: 'yes' as never } })).to.throw(/notifyTrigger must be true or false/);
    });
  });
});

describe('triggers on a table distributed by Citus', function () {
  before(function () {
    if (!testDistributed()) this.skip(); // runs in the Citus pass of .ci/run only
  });
  const fx = useCacheTable('cp_trig_citus');

  it('invalidateOn and notifyTrigger are refused with a typed error that says why', async () => {
    const store = fx.make();
    await rejects(store.ext.invalidateOn({ table: fx.table, tags: ['x'] }), SchemaError, /distributed by Citus/);
    const notifying = fx.make({ localCache: { notifyTrigger: true } });
    await rejects(notifying.ext.get('k'), SchemaError, /distributed by Citus/);
  });
});
