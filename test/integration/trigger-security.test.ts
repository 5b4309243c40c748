import { expect } from 'chai';
import pg from 'pg';
import { InvalidValueError, PgStore, type PgStoreOptions } from '../../src/index.js';
import { keyDigest } from '../../src/key_digest.js';
import { buildSql, TRIGGER_VERSION } from '../../src/sql/index.js';
import { rejects } from '../helpers/assert.js';
import { sql, testDistributed, testUrl, uniqueTable, waitFor } from '../helpers/db.js';
import { useCacheTable } from '../helpers/fixture.js';
import { fromMemory, tieredStore } from '../helpers/local-tier.js';

/**
 * The triggers in a database shared with roles that do not trust each other (issue 26): a role that owns an
 * application table with invalidateOn installed (not a superuser) tries to run its own code as the
 * installer, writers' sessions try to render other tags, a role with no right on the cache table listens
 * on the channel, and writers take the cache rows' locks in orders of their own.
 */
describe('triggers among roles that do not trust each other', function () {
  this.timeout(60_000);
  before(function () {
    if (testDistributed()) this.skip(); // both trigger features are refused on a distributed table (invalidation.test.ts)
  });
  const fx = useCacheTable('cp_trsec');
  const own: PgStore[] = [];
  afterEach(async () => {
    await Promise.all(own.splice(0).map((store) => store.disconnect()));
  });

  /** A LOGIN role (no superuser) and a client connected as it; `drop()` removes both and what it owns. */
  async function role(prefix: string): Promise<{ name: string; client: pg.Client; drop(): Promise<void> }> {
    const name = uniqueTable(prefix);
    const password = `pw_${name}`;
    await sql(`CREATE ROLE ${name} LOGIN NOSUPERUSER PASSWORD '${password}'`);
    const url = new URL(testUrl());
    url.username = name;
    url.password = password;
    const client = new pg.Client({ connectionString: url.toString() });
    client.on('error', () => {});
    await client.connect();
    return {
      name,
      client,
      async drop() {
        await client.end().catch(() => {});
        await sql(`DROP OWNED BY ${name} CASCADE`);
        await sql(`DROP ROLE ${name}`);
      },
    };
  }

  describe('a table owner against the installer of invalidateOn', () => {
    let attacker: Awaited<ReturnType<typeof role>>;
    let schema: string;
    let store: PgStore;
    beforeEach(async () => {
      attacker = await role('cp_owner');
      schema = uniqueTable('cp_trsec_app');
      await sql(`CREATE SCHEMA ${schema} AUTHORIZATION ${attacker.name}`);
      await attacker.client.query(`CREATE TABLE ${schema}.items (id int, name text)`);
      // What the attacker's function leaves when it runs: who ran it.
      await attacker.client.query(`CREATE TABLE ${schema}.ran (who text)`);
      await attacker.client.query(`GRANT INSERT ON ${schema}.ran TO PUBLIC`);
      await attacker.client.query(`CREATE FUNCTION ${schema}.escalate() RETURNS text LANGUAGE plpgsql AS $$
BEGIN
  INSERT INTO ${schema}.ran VALUES (current_user);
  BEGIN
    EXECUTE 'ALTER ROLE ${attacker.name} SUPERUSER';
  EXCEPTION WHEN insufficient_privilege THEN NULL;
  END;
  RETURN 'x';
END $$`);
      store = fx.make();
      // The installer: the test's own role, a superuser, as a migration or an administrator would run it.
      await store.ext.invalidateOn({ schema, table: 'items', tags: ['item:{id}'] });
      await store.ext.set('item:1', 'v', { absoluteExpirationRelative: '1h', tags: ['item:1'] });
    });
    afterEach(async () => {
      await store.ext.dropInvalidation({ schema, table: 'items' });
      await sql(`DROP SCHEMA IF EXISTS ${schema} CASCADE`);
      await attacker.drop();
    });
    const superuser = async () => (await sql<{ s: boolean }>('SELECT rolsuper AS s FROM pg_roles WHERE rolname = $1', [attacker.name]))[0]!.s;
    const ran = async () => (await sql<{ who: string }>(`SELECT who FROM ${schema}.ran`)).map((r) => r.who);

    it('a column retyped to a type of its own with a CAST to text: its function never runs as the installer', async () => {
      const { client } = attacker;
      await client.query(`CREATE TYPE ${schema}.evil AS (v int)`);
      await client.query(`CREATE FUNCTION ${schema}.evil_text(${schema}.evil) RETURNS text LANGUAGE sql AS $$ SELECT ${schema}.escalate() $$`);
      await client.query(`CREATE CAST (${schema}.evil AS text) WITH FUNCTION ${schema}.evil_text(${schema}.evil)`);
      await client.query(`ALTER TABLE ${schema}.items ALTER COLUMN id TYPE ${schema}.evil USING ROW(id)::${schema}.evil`);
      await client.query(`INSERT INTO ${schema}.items VALUES (ROW(1)::${schema}.evil, 'n')`);
      expect(await superuser()).to.equal(false);
      expect(await ran()).to.deep.equal([]);
      // And the check says what is wrong with the table now.
      const [status] = await store.ext.invalidations();
      expect(status!.ok).to.equal(false);
      expect(status!.problems.join('\n')).to.match(/column "id" of .*items is of type .*evil: its text is a row of .*evil/);
    });

    it('an enum of its own with a CAST to text: the tag is the label (the type\'s output), the cast is never called', async () => {
      const { client } = attacker;
      await client.query(`CREATE TYPE ${schema}.mood AS ENUM ('1', '2')`);
      await client.query(`CREATE FUNCTION ${schema}.mood_text(${schema}.mood) RETURNS text LANGUAGE sql AS $$ SELECT ${schema}.escalate() $$`);
      await client.query(`CREATE CAST (${schema}.mood AS text) WITH FUNCTION ${schema}.mood_text(${schema}.mood)`);
      await client.query(`ALTER TABLE ${schema}.items ALTER COLUMN id TYPE ${schema}.mood USING id::text::${schema}.mood`);
      await client.query(`INSERT INTO ${schema}.items VALUES ('1', 'n')`);
      expect(await superuser()).to.equal(false);
      expect(await ran()).to.deep.equal([]);
      expect(await fx.ids()).to.deep.equal([]); // item:1 rendered from the label, and deleted
      expect((await store.ext.invalidations())[0]!.ok).to.equal(true);
    });

    it('a column default, a domain and an operator of its own are evaluated as the writer, never as the installer', async () => {
      const { client } = attacker;
      await client.query(`CREATE DOMAIN ${schema}.checked AS int CHECK (${schema}.escalate() = 'x')`);
      await client.query(`CREATE FUNCTION ${schema}.same(int, int) RETURNS boolean LANGUAGE sql AS $$ SELECT ${schema}.escalate() = 'x' $$`);
      await client.query(`CREATE OPERATOR ${schema}.= (LEFTARG = int, RIGHTARG = int, FUNCTION = ${schema}.same)`);
      await client.query(`ALTER TABLE ${schema}.items ALTER COLUMN id TYPE ${schema}.checked, ALTER COLUMN name SET DEFAULT ${schema}.escalate()`);
      await client.query(`SET search_path = ${schema}, pg_catalog`);
      await client.query(`INSERT INTO ${schema}.items (id) VALUES (1)`);
      expect(await superuser()).to.equal(false);
      // Every run was the attacker's own (its INSERT checking the domain, its default): none as the installer.
      expect(new Set(await ran())).to.deep.equal(new Set([attacker.name]));
      expect(await fx.ids()).to.deep.equal([]);
    });

    it('its session\'s bytea_output, IntervalStyle, DateStyle, TimeZone and extra_float_digits render no other tag', async () => {
      const { client } = attacker;
      await client.query(`ALTER TABLE ${schema}.items ADD COLUMN b bytea, ADD COLUMN i interval, ADD COLUMN d date, ADD COLUMN t timestamptz, ADD COLUMN f float8`);
      await store.ext.invalidateOn({ schema, table: 'items', tags: ['b:{b}', 'i:{i}', 'd:{d}', 't:{t}', 'f:{f}'] });
      const tags = ['b:\\x0102', 'i:1 day 02:00:00', 'd:2026-01-02', 't:2026-01-01 00:00:00+00', 'f:0.30000000000000004'];
      for (const [n, tag] of tags.entries()) await store.ext.set(`k${n}`, 'v', { absoluteExpirationRelative: '1h', tags: [tag] });
      await client.query("SET bytea_output = 'escape'; SET IntervalStyle = 'sql_standard'; SET DateStyle = 'SQL, DMY'; SET TimeZone = 'America/New_York'; SET extra_float_digits = 0");
      const values = `'\\x0102'::bytea, '1 day 2 hours'::interval, '2026-01-02'::date, '2026-01-01 00:00:00+00'::timestamptz, (0.1::float8 + 0.2::float8)`;
      // Its own text of each value differs from the tags above.
      const [own] = (await client.query({ text: `SELECT ${values.split(', ').map((value) => `(${value})::text`).join(', ')}`, rowMode: 'array' })).rows as string[][];
      expect(own!.filter((text, i) => text === tags[i]!.slice(2))).to.deep.equal([]);
      await client.query(`INSERT INTO ${schema}.items (id, b, i, d, t, f) VALUES (2, ${values})`);
      expect(await fx.ids()).to.deep.equal(['item:1']);
    });

    it('invalidations() reports a function installed by a version before the fix, until invalidateOn reinstalls it', async () => {
      const [fn] = await sql<{ oid: string; comment: string }>(
        `SELECT p.oid::regprocedure::text AS oid, obj_description(p.oid, 'pg_proc') AS comment FROM pg_trigger t JOIN pg_proc p ON p.oid = t.tgfoid WHERE t.tgrelid = $1::regclass LIMIT 1`,
        [`${schema}.items`],
      );
      await sql(`COMMENT ON FUNCTION ${fn!.oid} IS ${pg.escapeLiteral(fn!.comment.replace(`"v":${TRIGGER_VERSION}`, '"v":2'))}`);
      const [old] = await store.ext.invalidations();
      expect(old!.ok).to.equal(false);
      expect(old!.problems.join('\n')).to.match(new RegExp(`older cache-postgres \\(trigger version 2, now ${TRIGGER_VERSION}\\).*call invalidateOn again`));
      await store.ext.invalidateOn({ schema, table: 'items', tags: ['item:{id}'] });
      expect((await store.ext.invalidations())[0]!.ok).to.equal(true);
    });

    it('renders booleans, character(n) and inet as their casts to text did (true, unpadded, with the mask)', async () => {
      await attacker.client.query(`ALTER TABLE ${schema}.items ADD COLUMN ok boolean, ADD COLUMN code character(5), ADD COLUMN ip inet, ADD COLUMN net inet`);
      await store.ext.invalidateOn({ schema, table: 'items', tags: ['ok:{ok}', 'code:{code}', 'ip:{ip}', 'net:{net}'] });
      const tags = ['ok:true', 'code:ab', 'ip:10.0.0.1/32', 'net:10.1.0.0/16'];
      for (const [n, tag] of tags.entries()) await store.ext.set(`r${n}`, 'v', { absoluteExpirationRelative: '1h', tags: [tag] });
      await attacker.client.query(`INSERT INTO ${schema}.items (id, ok, code, ip, net) VALUES (3, true, 'ab', '10.0.0.1', '10.1.0.0/16')`);
      expect(await fx.ids()).to.deep.equal(['item:1']);
    });

    it('refuses at install a column whose text no setting can pin: a row type, a catalog name (regclass)', async () => {
      await attacker.client.query(`CREATE TYPE ${schema}.pair AS (a int, b int)`);
      await attacker.client.query(`ALTER TABLE ${schema}.items ADD COLUMN p ${schema}.pair, ADD COLUMN rel regclass, ADD COLUMN ok int[]`);
      await rejects(store.ext.invalidateOn({ schema, table: 'items', tags: ['p:{p}'] }), InvalidValueError, /column "p" of .*items is of type .*pair: its text is a row of/);
      await rejects(store.ext.invalidateOn({ schema, table: 'items', tags: ['r:{rel}'] }), InvalidValueError, /column "rel" .* regclass's text depends on the catalog/);
      // Refused before anything is installed: the table keeps the triggers it had.
      expect((await store.ext.invalidations()).map((s) => s.tags)).to.deep.equal([['item:{id}']]);
      await store.ext.invalidateOn({ schema, table: 'items', tags: ['ok:{ok}'] });
    });
  });

  it('the cache table\'s owner, not a superuser, cannot run its code as a superuser who installed invalidateOn', async () => {
    const owner = await role('cp_cacheowner');
    const cache = uniqueTable('cp_trsec_owned');
    const app = uniqueTable('cp_trsec_app2');
    const store = new PgStore({ uri: testUrl(), table: cache, enableExpirationScan: false });
    try {
      await store.ext.set('item:1', 'v', { absoluteExpirationRelative: '1h', tags: ['item:1'] });
      await sql(`GRANT CREATE ON SCHEMA public TO ${owner.name}`);
      await sql(`ALTER TABLE public.${cache} OWNER TO ${owner.name}`);
      await sql(`CREATE TABLE public.${app} (id int)`);
      await store.ext.invalidateOn({ table: app, tags: ['item:{id}'] }); // by the superuser
      // The owner of the cache table puts a trigger of its own on it, as it may.
      await owner.client.query(`CREATE FUNCTION public.${owner.name}_escalate() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  BEGIN EXECUTE 'ALTER ROLE ${owner.name} SUPERUSER'; EXCEPTION WHEN insufficient_privilege THEN NULL; END;
  RETURN NULL;
END $$`);
      await owner.client.query(`CREATE TRIGGER escalate AFTER DELETE ON public.${cache} FOR EACH STATEMENT EXECUTE FUNCTION public.${owner.name}_escalate()`);
      await sql(`INSERT INTO public.${app} VALUES (1)`);
      expect(await sql(`SELECT id FROM public.${cache}`)).to.deep.equal([]);
      expect((await sql<{ s: boolean }>('SELECT rolsuper AS s FROM pg_roles WHERE rolname = $1', [owner.name]))[0]!.s).to.equal(false);
    } finally {
      await store.ext.dropInvalidation({ table: app }).catch(() => {});
      await store.disconnect();
      await sql(`DROP TABLE IF EXISTS public.${app}`);
      await sql(`DROP TABLE IF EXISTS public.${cache}, public.${cache}_locks`);
      await sql(`REVOKE CREATE ON SCHEMA public FROM ${owner.name}`);
      await owner.drop();
    }
  });

  it('a role below superuser that owns its schema installs and runs invalidateOn and notifyTrigger as itself', async () => {
    const app = await role('cp_approle');
    const schema = uniqueTable('cp_trsec_own');
    await sql(`CREATE SCHEMA ${schema} AUTHORIZATION ${app.name}`);
    const url = new URL(testUrl());
    url.username = app.name;
    url.password = `pw_${app.name}`;
    const store = new PgStore({ uri: url.toString(), schema, table: 'cache', enableExpirationScan: false, localCache: { ttl: '1h', notifyTrigger: true } });
    try {
      await app.client.query(`CREATE TABLE ${schema}.items (id int)`);
      await store.ext.set('item:1', 'v', { absoluteExpirationRelative: '1h', tags: ['item:1'] });
      expect(await store.ext.invalidateOn({ schema, table: 'items', tags: ['item:{id}'] })).to.include({ ok: true });
      await app.client.query(`INSERT INTO ${schema}.items VALUES (1)`);
      expect(await sql(`SELECT id FROM ${schema}.cache`)).to.deep.equal([]);
      const owners = await sql<{ owner: string }>(`SELECT DISTINCT pg_get_userbyid(p.proowner) AS owner FROM pg_proc p WHERE p.pronamespace = $1::regnamespace`, [schema]);
      expect(owners).to.deep.equal([{ owner: app.name }]);
    } finally {
      await store.disconnect();
      await sql(`DROP SCHEMA ${schema} CASCADE`);
      await app.drop();
    }
  });

  it('two writers whose tags reach the same entries in opposite orders do not deadlock (victims locked in key order)', async function () {
    const store = fx.make();
    const app = uniqueTable('cp_trsec_order');
    await sql(`CREATE TABLE public.${app} (id int PRIMARY KEY, t1 text, t2 text)`);
    const clients = [0, 1, 2].map(() => new pg.Client({ connectionString: testUrl() }));
    await Promise.all(clients.map((client) => client.connect()));
    const [holder, first, second] = clients as [pg.Client, pg.Client, pg.Client];
    try {
      await store.ext.invalidateOn({ table: app, tags: ['{t1}', '{t2}'] });
      // Tags in sorted order reach entry b before a for the first writer (w < x), and a before b for the second (y < z).
      await store.ext.set('a', 'v', { absoluteExpirationRelative: '1h', tags: ['x', 'y'] });
      await store.ext.set('b', 'v', { absoluteExpirationRelative: '1h', tags: ['w', 'z'] });
      await holder.query('BEGIN');
      await holder.query(`SELECT 1 FROM public.${fx.table} WHERE id = 'a' FOR UPDATE`);
      const waiting = async (client: pg.Client) => {
        const pid = (client as unknown as { processID: number }).processID;
        await waitFor(async () => (await sql<{ n: number }>(`SELECT count(*)::int AS n FROM pg_stat_activity WHERE pid = $1 AND wait_event_type = 'Lock'`, [pid]))[0]!.n === 1, 10_000, 'a writer to wait');
      };
      // The second waits for a (it locks nothing before it); then the first, which in tag order took b first.
      await second.query('BEGIN');
      const secondInsert = second.query(`INSERT INTO public.${app} VALUES (2, 'y', 'z')`);
      await waiting(second);
      await first.query('BEGIN');
      const firstInsert = first.query(`INSERT INTO public.${app} VALUES (1, 'w', 'x')`);
      await waiting(first);
      await holder.query('COMMIT');
      const outcomes = await Promise.allSettled([
        secondInsert.then(() => second.query('COMMIT')),
        firstInsert.then(() => first.query('COMMIT')),
      ]);
      expect(outcomes.map((outcome) => (outcome.status === 'rejected' ? String((outcome.reason as Error).message) : 'ok'))).to.deep.equal(['ok', 'ok']);
      expect(await fx.ids()).to.deep.equal([]);
    } finally {
      for (const client of [first, second]) await client.query('ROLLBACK').catch(() => {});
      await Promise.all(clients.map((client) => client.end()));
      await store.ext.dropInvalidation({ table: app });
      await sql(`DROP TABLE public.${app}`);
    }
  });

  describe('the channel, heard by a role with no right on the cache table', () => {
    let listener: Awaited<ReturnType<typeof role>>;
    const heard: string[] = [];
    beforeEach(async () => {
      listener = await role('cp_listener');
      heard.length = 0;
      listener.client.on('notification', (message) => heard.push(message.payload ?? ''));
    });
    afterEach(async () => {
      await listener.drop();
      const cleaner = new PgStore({ uri: testUrl(), table: fx.table, enableExpirationScan: false });
      await cleaner.ext.dropNotifyTrigger();
      await cleaner.disconnect();
    });
    const secret = 'session:alice:tok_8f3a9c';

    for (const [what, options] of [
      ['a store\'s own notices', { localCache: { ttl: '1h' } }],
      ['the notify trigger\'s notices', { localCache: { ttl: '1h', notifyTrigger: true } }],
    ] as Array<[string, Omit<PgStoreOptions, 'table'>]>) {
      it(`${what} carry digests, never keys, and still reach the tiers`, async () => {
        const reader = await tieredStore(fx.table, own, options);
        const writer = await tieredStore(fx.table, own, options);
        // The channel's name is computed from the table's, as any role can.
        await listener.client.query(`LISTEN ${buildSql('public', fx.table).channel}`);
        await reader.ext.set(secret, 'v1', { absoluteExpirationRelative: '1h' });
        await waitFor(async () => (await reader.ext.getString(secret)) === 'v1', 5000, 'the reader to hold v1');
        await writer.ext.set(secret, 'v2', { absoluteExpirationRelative: '1h' });
        await waitFor(async () => (await reader.ext.getString(secret)) === 'v2', 5000, 'the notice to reach the reader');
        await waitFor(() => heard.some((payload) => payload.includes(keyDigest(secret))), 5000, 'the listener to hear the digest');
        expect(heard.join('\n')).to.not.include('alice');
        expect(heard.join('\n')).to.not.include('probe');
      });
    }

    it('a forged notice from it only makes the tiers read PostgreSQL again: no value comes from a notice', async () => {
      const reader = await tieredStore(fx.table, own);
      for (const key of [secret, 'other']) {
        await reader.ext.set(key, 'v1', { absoluteExpirationRelative: '1h' });
        await waitFor(async () => (await fromMemory(reader, key)).fromMemory, 5000, `the reader to hold ${key}`);
      }
      const channel = buildSql('public', fx.table).channel;
      // A value in the payload, junk: nothing is dropped by them, nothing is taken from them.
      for (const payload of ['x\n{"other":"forged"}', 'junk', 'x\n[1]']) await listener.client.query('SELECT pg_notify($1, $2)', [channel, payload]);
      await listener.client.query('SELECT pg_notify($1, $2)', [channel, `x\n["${keyDigest(secret)}"]`]); // heard after them
      await waitFor(async () => !(await fromMemory(reader, secret)).fromMemory, 5000, 'the forged notice to drop the entry');
      expect(await fromMemory(reader, 'other')).to.deep.equal({ value: 'v1', fromMemory: true });
      expect(await reader.ext.getString(secret)).to.equal('v1');
      // Keys in clear (a store of an earlier version): which entries they mean is unknown, so everything goes.
      await listener.client.query('SELECT pg_notify($1, $2)', [channel, 'x\n["other"]']);
      await waitFor(async () => !(await fromMemory(reader, 'other')).fromMemory, 5000, 'a list of keys in clear to flush the tier');
      expect(await reader.ext.getString('other')).to.equal('v1');
      await listener.client.query('SELECT pg_notify($1, $2)', [channel, 'x\n*']);
      expect(await reader.ext.getString(secret)).to.equal('v1');
      expect(await fx.ids()).to.include(secret);
    });

    it('the notify trigger runs as the writer (SECURITY INVOKER), the invalidation function as its installer', async () => {
      const store = await tieredStore(fx.table, own, { localCache: { ttl: '1h', notifyTrigger: true } });
      const app = uniqueTable('cp_trsec_kind');
      await sql(`CREATE TABLE public.${app} (id int)`);
      try {
        await store.ext.invalidateOn({ table: app, tags: ['x:{id}'] });
        const definer = async (table: string) =>
          (await sql<{ d: boolean }>(`SELECT bool_and(p.prosecdef) AS d FROM pg_trigger t JOIN pg_proc p ON p.oid = t.tgfoid WHERE t.tgrelid = $1::regclass AND NOT t.tgisinternal`, [table]))[0]!.d;
        expect(await definer(`public.${fx.table}`)).to.equal(false);
        expect(await definer(`public.${app}`)).to.equal(true);
      } finally {
        await store.ext.dropInvalidation({ table: app });
        await sql(`DROP TABLE public.${app}`);
      }
    });
  });
});

