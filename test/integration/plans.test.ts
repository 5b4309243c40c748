import { expect } from 'chai';
import pg from 'pg';
import { PgStore } from '../../src/index.js';
import { buildSql, type Statement } from '../../src/sql.js';
import { dropTables, sql, testUrl, uniqueTable } from '../helpers/db.js';

/**
 * node-postgres prepares our statements; after a few runs PostgreSQL may switch to a generic plan that
 * cannot look at parameter values. These checks force the generic plan and read EXPLAIN, so a
 * statement that would scan the table once it is prepared fails here.
 */
describe('query plans (generic, as prepared statements run)', () => {
  const table = uniqueTable('cp_plans');
  let client: pg.Client;

  async function plan(statement: Statement, types: string[], values: unknown[]): Promise<string> {
    const name = `p_${statement.label}`;
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
      `INSERT INTO public.${table} (id, value, expiresattime) SELECT 'ns' || (g % 50) || ':' || g, '\\x00', 'infinity' FROM generate_series(1, 20000) g`,
    );
    await sql(`ANALYZE public.${table}`);
    client = new pg.Client(testUrl());
    await client.connect();
    await client.query(`SET plan_cache_mode = force_generic_plan`);
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
    ['has', () => s().has, ['text', 'timestamptz'], ['ns1:1', now]],
    ['delete', () => s().delete, ['text', 'timestamptz'], ['ns1:1', now]],
    ['iterator page of a namespace', () => s().iterateRange, ['text', 'text', 'timestamptz', 'text', 'int'], ['ns9:', 'ns9;', now, '', 100]],
    ['clear batch of a namespace', () => s().deleteRangeBatch, ['text', 'text', 'int', 'timestamptz'], ['ns9:', 'ns9;', 1000, now]],
  ];
  for (const [name, statement, types, values] of cases) {
    it(`${name} finds its rows through the primary key`, async () => {
      const text = await plan(statement(), types, values);
      expect(text).to.match(new RegExp(`Index (Only )?Scan using ${table}_pkey|Bitmap Index Scan on ${table}_pkey`));
      expect(text).to.match(/Index Cond: .*\(id\)::text/);
      expect(text).to.not.match(/Seq Scan/);
    });
  }

  it('the expiration scan walks the expiry index, not the table', async () => {
    const text = await plan(s().deleteExpiredBatch, ['timestamptz', 'int', 'text'], [now, 1000, 'scan']);
    expect(text).to.match(new RegExp(`Index Scan using ix_${table}_expiresattime`));
  });
});
