/**
 * npm run bench:triggers [-- --url postgres://... --rounds 5 --single 2000]
 *
 * What `invalidateOn` costs an application's writes: the same UPDATEs on two identical tables, one with the
 * invalidation triggers and one without, in interleaved rounds (medians reported). Single-row UPDATEs by
 * primary key (random ids, as a web request's write) and a 10,000-row UPDATE of the whole table; before
 * each round the cache holds one tagged entry per row (`product:{id}`) plus a list entry (`products`), so
 * the triggered table's statements really delete. Without --url it runs on a throw-away embedded PostgreSQL.
 */
import { parseArgs } from 'node:util';
import pg from 'pg';
import { PgStore } from '../src/index.js';
import { startTestDatabase } from '../src/testing/index.js';
import { seededRandom } from './random.js';

const { values: args } = parseArgs({
  options: { url: { type: 'string' }, rounds: { type: 'string', default: '5' }, single: { type: 'string', default: '2000' } },
});
const ROWS = 10_000;
const rounds = Number(args.rounds);
const singles = Number(args.single);
const database = args.url ? { url: args.url, stop: async () => {} } : await startTestDatabase();
const pool = new pg.Pool({ connectionString: database.url, max: 2 });
const store = new PgStore({ pool, table: 'bench_triggers_cache' });
const tables = { plain: 'bench_triggers_plain', triggered: 'bench_triggers_on' } as const;
for (const table of Object.values(tables)) {
  await pool.query(`DROP TABLE IF EXISTS ${table}`);
  await pool.query(`CREATE TABLE ${table} (id int PRIMARY KEY, category text NOT NULL, price int NOT NULL)`);
  await pool.query(`INSERT INTO ${table} SELECT g, 'c' || (g % 50), 1 FROM generate_series(1, ${ROWS}) g`);
  await pool.query(`VACUUM ANALYZE ${table}`);
}
await store.ext.invalidateOn({ table: tables.triggered, tags: ['product:{id}', 'category:{category}', 'products'] });

/** One tagged entry per row, as an application caching its products would hold. */
async function fillCache(): Promise<void> {
  await pool.query(`INSERT INTO bench_triggers_cache (id, value, expiresattime, tags)
    SELECT 'product:' || g, '\\x00'::bytea, now() + interval '1 hour', ARRAY['product:' || g, 'category:c' || (g % 50)]
    FROM generate_series(1, ${ROWS}) g
    ON CONFLICT (id) DO UPDATE SET expiresattime = EXCLUDED.expiresattime, tags = EXCLUDED.tags`);
  await pool.query(`INSERT INTO bench_triggers_cache (id, value, expiresattime, tags) VALUES ('products', '\\x00', now() + interval '1 hour', ARRAY['products'])
    ON CONFLICT (id) DO NOTHING`);
  await pool.query('VACUUM ANALYZE bench_triggers_cache');
}

const median = (values: number[]) => [...values].sort((a, b) => a - b)[Math.floor(values.length / 2)]!;
const random = seededRandom(42);
const results: Record<string, { single: number[]; bulk: number[] }> = { plain: { single: [], bulk: [] }, triggered: { single: [], bulk: [] } };
const client = await pool.connect();
try {
  for (let round = 0; round < rounds; round++) {
    for (const kind of round % 2 === 0 ? (['plain', 'triggered'] as const) : (['triggered', 'plain'] as const)) {
      const table = tables[kind];
      await fillCache();
      let started = process.hrtime.bigint();
      for (let i = 0; i < singles; i++) {
        await client.query(`UPDATE ${table} SET price = price + 1 WHERE id = $1`, [1 + Math.floor(random() * ROWS)]);
      }
      results[kind]!.single.push(Number(process.hrtime.bigint() - started) / 1e3 / singles);
      await fillCache();
      started = process.hrtime.bigint();
      await client.query(`UPDATE ${table} SET price = price + 1`);
      results[kind]!.bulk.push(Number(process.hrtime.bigint() - started) / 1e6);
      await pool.query(`VACUUM ${table}`);
    }
  }
} finally {
  client.release();
}
const version = (await pool.query<{ server_version: string }>('SHOW server_version')).rows[0]!.server_version;
console.log(`PostgreSQL ${version}, ${rounds} interleaved rounds (medians), ${ROWS} rows, cache of ${ROWS + 1} tagged entries`);
const p = results['plain']!;
const t = results['triggered']!;
console.log(`single-row UPDATE by id:  ${median(p.single).toFixed(0)} us without, ${median(t.single).toFixed(0)} us with invalidateOn (+${(median(t.single) - median(p.single)).toFixed(0)} us, deletes 1 entry + the list)`);
console.log(`10,000-row UPDATE:        ${median(p.bulk).toFixed(0)} ms without, ${median(t.bulk).toFixed(0)} ms with invalidateOn (+${(median(t.bulk) - median(p.bulk)).toFixed(0)} ms, one DELETE of ${ROWS + 1} entries)`);
await store.ext.dropInvalidation({ table: tables.triggered });
for (const table of [...Object.values(tables), 'bench_triggers_cache', 'bench_triggers_cache_locks']) await pool.query(`DROP TABLE IF EXISTS ${table}`);
await store.disconnect();
await pool.end();
await database.stop();
