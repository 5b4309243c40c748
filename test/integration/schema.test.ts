import { expect } from 'chai';
import pg from 'pg';
import { PgStore, SchemaError } from '../../src/index.js';
import { rejects } from '../helpers/assert.js';
import { sql, testUrl, uniqueTable } from '../helpers/db.js';

interface Column { name: string; type: string; notnull: boolean; collation: string | null }

async function columns(schema: string, table: string): Promise<Column[]> {
  return sql<Column>(
    `SELECT a.attname AS name, format_type(a.atttypid, a.atttypmod) AS type, a.attnotnull AS notnull,
            (SELECT collname FROM pg_collation WHERE oid = a.attcollation AND a.attcollation <> 0) AS collation
       FROM pg_attribute a WHERE a.attrelid = to_regclass($1) AND a.attnum > 0 AND NOT a.attisdropped ORDER BY a.attnum`,
    [`${schema}.${table}`],
  );
}

async function indexes(schema: string, table: string) {
  return sql<{ name: string; column: string; method: string; options: string[] | null; primary: boolean }>(
    `SELECT ic.relname AS name, a.attname AS column, am.amname AS method, ic.reloptions AS options, i.indisprimary AS primary
       FROM pg_index i JOIN pg_class ic ON ic.oid = i.indexrelid JOIN pg_am am ON am.oid = ic.relam
       JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = i.indkey[0]
      WHERE i.indrelid = to_regclass($1) ORDER BY ic.relname`,
    [`${schema}.${table}`],
  );
}

async function persistence(schema: string, table: string): Promise<string> {
  const [row] = await sql<{ p: string }>(`SELECT relpersistence AS p FROM pg_class WHERE oid = to_regclass($1)`, [`${schema}.${table}`]);
  return row!.p;
}

/** The exact DDL .NET's Microsoft.Extensions.Caching.Postgres runs (table contract, "DDL (exact)"). */
function dotnetDdl(schema: string, table: string): string {
  return [
    `CREATE SCHEMA IF NOT EXISTS ${schema}`,
    `CREATE UNLOGGED TABLE IF NOT EXISTS ${schema}.${table} (
    id VARCHAR(449) COLLATE "C" PRIMARY KEY,
    value BYTEA NOT NULL,
    expiresattime TIMESTAMPTZ NOT NULL,
    slidingexpirationinseconds BIGINT NULL,
    absoluteexpiration TIMESTAMPTZ NULL
)`,
    `CREATE INDEX IF NOT EXISTS ix_expiresattime ON ${schema}.${table} (expiresattime) WITH (deduplicate_items=True)`,
  ].join(';');
}

describe('schema', () => {
  const cleanup: string[] = [];
  const stores: PgStore[] = [];
  const store = (options: ConstructorParameters<typeof PgStore>[0] & object) => {
    const created = new PgStore({ uri: testUrl(), enableExpirationScan: false, ...options });
    stores.push(created);
    return created;
  };

  afterEach(async () => {
    await Promise.all(stores.splice(0).map((s) => s.disconnect()));
    for (const name of cleanup.splice(0)) await sql(`DROP ${name} CASCADE`);
  });

  it('creates exactly the contract table: .NET columns and types, COLLATE "C" key, tags, UNLOGGED, indexes', async () => {
    const schema = uniqueTable('cp_schema');
    cleanup.push(`SCHEMA IF EXISTS ${schema}`);
    await store({ schema, table: 'cache' }).has('probe');

    expect(await columns(schema, 'cache')).to.deep.equal([
      { name: 'id', type: 'character varying(449)', notnull: true, collation: 'C' },
      { name: 'value', type: 'bytea', notnull: true, collation: null },
      { name: 'expiresattime', type: 'timestamp with time zone', notnull: true, collation: null },
      { name: 'slidingexpirationinseconds', type: 'bigint', notnull: false, collation: null },
      { name: 'absoluteexpiration', type: 'timestamp with time zone', notnull: false, collation: null },
      { name: 'tags', type: 'text[]', notnull: false, collation: 'default' },
    ]);
    expect(await persistence(schema, 'cache')).to.equal('u');
    const found = await indexes(schema, 'cache');
    expect(found.map((i) => [i.column, i.method, i.primary])).to.have.deep.members([
      ['id', 'btree', true],
      ['expiresattime', 'btree', false],
      ['tags', 'gin', false],
    ]);
    const expiry = found.find((i) => i.column === 'expiresattime')!;
    expect(expiry.name).to.equal('ix_cache_expiresattime');
    expect(expiry.options).to.deep.equal(['deduplicate_items=true']);
  });

  it('creates a WAL-logged table with useWal', async () => {
    const table = uniqueTable('cp_wal');
    cleanup.push(`TABLE IF EXISTS public.${table}`);
    await store({ table, useWal: true }).has('probe');
    expect(await persistence('public', table)).to.equal('p');
  });

  it('adopts a table created by .NET: adds tags and its GIN index, keeps .NET\'s expiry index, and both can read', async () => {
    const schema = uniqueTable('cp_dotnet');
    cleanup.push(`SCHEMA IF EXISTS ${schema}`);
    await sql(dotnetDdl(schema, 'cache'));
    const s = store({ schema });
    await s.set('keyv:greeting', '"hello"');

    const names = (await indexes(schema, 'cache')).map((i) => `${i.name}:${i.column}:${i.method}`);
    expect(names).to.have.members(['cache_pkey:id:btree', 'ix_expiresattime:expiresattime:btree', 'ix_cache_tags:tags:gin']);
    expect((await columns(schema, 'cache')).map((c) => c.name)).to.include('tags');
    expect(await s.get('keyv:greeting')).to.equal('"hello"');
    // .NET's own read statement (the SELECT half of its Get) sees our row.
    const [row] = await sql<{ value: Buffer }>(
      `SELECT value FROM ${schema}.cache WHERE id = $1 AND expiresAtTime >= $2`,
      ['keyv:greeting', new Date()],
    );
    expect(row!.value.toString()).to.equal('"hello"');
  });

  it('adopts a table created by the Python library (pk_<table> constraint, tags already there)', async () => {
    const schema = uniqueTable('cp_python');
    cleanup.push(`SCHEMA IF EXISTS ${schema}`);
    await sql(`CREATE SCHEMA ${schema}`);
    await sql(`CREATE UNLOGGED TABLE IF NOT EXISTS "${schema}"."cache" (  id VARCHAR(449) COLLATE "C"  NOT NULL,  value BYTEA NOT NULL,
      expiresattime TIMESTAMPTZ NOT NULL,  slidingexpirationinseconds BIGINT NULL,  absoluteexpiration TIMESTAMPTZ NULL,  tags TEXT[] NULL,
      CONSTRAINT "pk_cache" PRIMARY KEY (id))`);
    await sql(`CREATE INDEX IF NOT EXISTS ix_expiresattime ON "${schema}"."cache" (expiresattime) WITH (deduplicate_items = True)`);
    await sql(`CREATE INDEX IF NOT EXISTS "ix_cache_tags" ON "${schema}"."cache" USING GIN (tags)`);
    const s = store({ schema });
    await s.set('keyv:a', '1');
    expect(await s.get('keyv:a')).to.equal('1');
    expect(await indexes(schema, 'cache')).to.have.length(3); // nothing added
  });

  it('gives a second cache table in the same schema its own expiry index (index names are per schema)', async () => {
    const schema = uniqueTable('cp_two');
    cleanup.push(`SCHEMA IF EXISTS ${schema}`);
    await store({ schema, table: 'first' }).has('x');
    await store({ schema, table: 'second' }).has('x');
    for (const table of ['first', 'second']) {
      expect((await indexes(schema, table)).some((i) => i.column === 'expiresattime')).to.equal(true);
    }
  });

  it('survives ten instances starting at once, each with its own connections', async () => {
    const schema = uniqueTable('cp_race');
    cleanup.push(`SCHEMA IF EXISTS ${schema}`);
    const racers = Array.from({ length: 10 }, () => store({ schema, poolMax: 1 }));
    await Promise.all(racers.map((s, i) => s.set(`keyv:${i}`, String(i))));
    const [count] = await sql<{ n: number }>(`SELECT count(*)::int AS n FROM ${schema}.cache`);
    expect(count!.n).to.equal(10);
    expect(await indexes(schema, 'cache')).to.have.length(3);
  });

  it('refuses a table of another shape, naming the differences', async () => {
    const table = uniqueTable('cp_foreign');
    cleanup.push(`TABLE IF EXISTS public.${table}`);
    await sql(`CREATE TABLE public.${table} (key varchar(255) PRIMARY KEY, value text)`);
    const error = await rejects(store({ table }).get('keyv:x'), SchemaError, /not a cache table/);
    expect(error.message).to.match(/id should be character varying\(449\) but is missing/);
    expect(error.message).to.match(/value should be bytea but is text/);
  });

  it('with createIfNotExists false: a missing table is a SchemaError and nothing is created', async () => {
    const table = uniqueTable('cp_missing');
    await rejects(store({ table, createIfNotExists: false }).set('keyv:x', '1'), SchemaError, /does not exist and createIfNotExists is false/);
    const [row] = await sql<{ t: string | null }>(`SELECT to_regclass($1)::text AS t`, [`public.${table}`]);
    expect(row!.t).to.equal(null);
  });

  it('with createIfNotExists false: a .NET table without tags says which ALTER to run', async () => {
    const schema = uniqueTable('cp_notags');
    cleanup.push(`SCHEMA IF EXISTS ${schema}`);
    await sql(dotnetDdl(schema, 'cache'));
    await rejects(store({ schema, createIfNotExists: false }).get('keyv:x'), SchemaError, /ADD COLUMN IF NOT EXISTS tags/);
  });

  it('retries schema setup after a failure instead of remembering it', async () => {
    const table = uniqueTable('cp_retry');
    cleanup.push(`TABLE IF EXISTS public.${table}`);
    const pool = new pg.Pool({ connectionString: testUrl(), max: 1 });
    try {
      const s = new PgStore({ pool, table, createIfNotExists: false, enableExpirationScan: false });
      stores.push(s);
      await rejects(s.get('keyv:x'), SchemaError);
      await new PgStore({ pool, table, enableExpirationScan: false }).has('create-it');
      expect(await s.get('keyv:x')).to.equal(undefined);
    } finally {
      await Promise.all(stores.splice(0).map((s) => s.disconnect()));
      await pool.end();
    }
  });

  it('refuses a table whose expiry index name is taken by another relation, instead of going without the index', async () => {
    const table = uniqueTable('cp_taken');
    const squatter = `ix_${table}_expiresattime`;
    cleanup.push(`TABLE IF EXISTS public.${table}`, `TABLE IF EXISTS public.${squatter}`);
    await sql(`CREATE TABLE public.${squatter} (x int)`);
    await rejects(store({ table }).set('keyv:x', '1'), SchemaError, new RegExp(`${squatter}.*taken`));
  });

  it('refuses a lock table that belongs to another cache table, or has another shape', async () => {
    const table = uniqueTable('cp_locks');
    cleanup.push(`TABLE IF EXISTS public.${table}`, `TABLE IF EXISTS public.${table}_locks`);
    await sql(`CREATE TABLE public.${table}_locks (name varchar(449) PRIMARY KEY, owner text NOT NULL, token bigint NOT NULL, expiresat timestamptz NOT NULL)`);
    await sql(`COMMENT ON TABLE public.${table}_locks IS 'cache-postgres: leases of public.some_other_cache'`);
    const s = store({ table });
    await rejects(s.ext.tryLock('l'), SchemaError, /some_other_cache/);
    await sql(`COMMENT ON TABLE public.${table}_locks IS NULL`);
    await sql(`ALTER TABLE public.${table}_locks DROP COLUMN token`);
    await rejects(store({ table }).ext.tryLock('l'), SchemaError, /token/);
  });

  it('marks the lock table it creates as the cache table\'s', async () => {
    const table = uniqueTable('cp_mark');
    cleanup.push(`TABLE IF EXISTS public.${table}`, `TABLE IF EXISTS public.${table}_locks`);
    const lock = await store({ table }).ext.tryLock('l');
    await lock?.release();
    const [row] = await sql<{ comment: string }>(`SELECT obj_description($1::regclass, 'pg_class') AS comment`, [`public.${table}_locks`]);
    expect(row!.comment).to.equal(`cache-postgres: leases of public.${table}`);
  });
});
