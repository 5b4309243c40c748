import { expect } from 'chai';
import pg from 'pg';
import { PgStore } from '../../src/index.js';
import { buildSql, type Statement } from '../../src/sql/index.js';
import { dropTables, sql, testUrl, uniqueTable } from '../helpers/db.js';

/**
 * node-postgres prepares our statements; after a few runs PostgreSQL may switch to a generic plan that
 * cannot look at parameter values. These checks force the generic plan and read EXPLAIN, so a
 * statement that would scan the table once it is prepared fails here.
 */
describe('query plans (as the statements run: generic plans for prepared ones)', () => {
  const table = uniqueTable('cp_plans');
  let client: pg.Client;

  /** The plan the statement runs with: generic when prepared, custom (for these values) when not. */
  async function plan(statement: Statement, types: string[], values: unknown[]): Promise<string> {
    const name = `p_${statement.label}`;
    await client.query(`SET plan_cache_mode = ${statement.prepared ? 'force_generic_plan' : 'force_custom_plan'}`);
    await client.query(`PREPARE ${name}(${types.join(', ')}) AS ${statement.text}`);
    try {
      const literals = values.map((v) => (v === null ? 'NULL' : pg.escapeLiteral(String(v))));
      const { rows } = await client.query(`EXPLAIN EXECUTE ${name}(${literals.join(', ')})`);
      return rows.map((r: { 'QUERY PLAN': string }) => r['QUERY PLAN']).join('\n');
    } finally {
      await client.query(`DEALLOCATE ${name}`);
    }
  }

  before(async () => {
    const store = new PgStore({ uri: testUrl(), table, enableExpirationScan: false });
    await store.has('create');
    await store.disconnect();
    await sql(
      `INSERT INTO public.${table} (id, value, expiresattime, tags)
       SELECT 'ns' || (g % 50) || ':' || g, '\\x00', 'infinity', ARRAY['t' || (g % 500)] FROM generate_series(1, 20000) g`,
    );
    await sql(`ANALYZE public.${table}`);
    client = new pg.Client(testUrl());
    await client.connect();
  });
  after(async () => {
    await client.end();
    await dropTables(table);
  });

  const s = () => buildSql('public', table);
  const now = new Date().toISOString();
  const cases: Array<[string, () => Statement, string[], unknown[]]> = [
    ['get', () => s().get, ['text', 'timestamptz'], ['ns1:1', now]],
    ['getMany', () => s().getMany, ['text[]', 'timestamptz'], ['{ns1:1,ns2:2}', now]],
    ['the pipelined read', () => s().selectMany, ['text[]', 'timestamptz'], ['{ns1:1,ns2:2}', now]],
    ['the pipelined slide', () => s().slideMany, ['text[]', 'timestamptz'], ['{ns1:1,ns2:2}', now]],
    ['the pipelined slide (fail-fast form)', () => s().slideManyFailFast, ['text[]', 'timestamptz'], ['{ns1:1,ns2:2}', now]],
    ['has', () => s().has, ['text', 'timestamptz'], ['ns1:1', now]],
    ['delete', () => s().delete, ['text', 'timestamptz'], ['ns1:1', now]],
    ['iterator page of a namespace', () => s().iterateRange, ['text', 'text', 'timestamptz', 'text', 'int'], ['ns9:', 'ns9;', now, '', 100]],
    ['ext.scan page of a prefix pattern', () => s().scanPattern, ['text', 'text', 'text', 'text', 'timestamptz', 'int'], ['ns9:', 'ns9;', 'ns9:%', '', now, 100]],
    ['ext.getPattern page of a prefix pattern', () => s().getPatternPage, ['text', 'text', 'text', 'text', 'timestamptz', 'int'], ['ns9:', 'ns9;', 'ns9:1%', '', now, 100]],
    ['ext.deletePattern batch of a prefix pattern', () => s().deletePatternBatch, ['text', 'text', 'text', 'int', 'timestamptz'], ['ns9:', 'ns9;', 'ns9:%', 1000, now]],
    ['clear batch of a namespace', () => s().deleteRangeBatch, ['text', 'text', 'int', 'timestamptz'], ['ns9:', 'ns9;', 1000, now]],
    // A tag delete's batches over the keys it read first: the keys' index, whatever the tag (t1 is on 40 rows).
    ['ext.deleteTags batch of listed keys (any)', () => s().deleteTaggedAnyListed, ['text[]', 'int', 'timestamptz', 'text[]'], ['{t1}', 1000, now, '{ns1:1,ns1:501}']],
    ['ext.deleteTags batch of listed keys (all)', () => s().deleteTaggedAllListed, ['text[]', 'int', 'timestamptz', 'text[]'], ['{t1}', 1000, now, '{ns1:1,ns1:501}']],
  ];
  for (const [name, statement, types, values] of cases) {
    it(`${name} finds its rows through the primary key`, async () => {
      const text = await plan(statement(), types, values);
      expect(text).to.match(new RegExp(`Index (Only )?Scan using ${table}_pkey|Bitmap Index Scan on ${table}_pkey`));
      expect(text).to.match(/Index Cond: .*\(id\)::text/);
      expect(text).to.not.match(/Seq Scan/);
    });
  }

  it('ext.deleteTags finds a rare tag\'s rows through the GIN index (planned per call, not prepared)', async () => {
    for (const statement of [s().deleteTagsAnyBatch, s().deleteTagsAllBatch]) {
      const text = await plan(statement, ['text[]', 'int', 'timestamptz'], ['{products}', 1000, now]);
      expect(text).to.match(new RegExp(`Bitmap Index Scan on ix_${table}_tags`));
    }
    // Its first step, reading the keys that carry the tags.
    for (const statement of [s().taggedAny, s().taggedAll]) {
      const text = await plan(statement, ['text[]', 'int'], ['{products}', 200_001]);
      expect(text).to.match(new RegExp(`Bitmap Index Scan on ix_${table}_tags`));
    }
  });

  it('the expiration scan walks the expiry index, not the table', async () => {
    const text = await plan(s().deleteExpiredBatch, ['timestamptz', 'int', 'text'], [now, 1000, 'scan']);
    expect(text).to.match(new RegExp(`Index Scan using ix_${table}_expiresattime`));
  });
});
