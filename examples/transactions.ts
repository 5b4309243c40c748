/**
 * Cache writes in your own transaction: they commit or roll back with your data.
 * Shown with node-postgres (the client your transaction runs on), Kysely and Drizzle (a small adapter over
 * their transactions: anything whose query(text, values) runs $1-parameter text on the transaction's connection).
 * Run: DATABASE_URL=postgres://... npx tsx examples/transactions.ts
 */
import { type SQL, sql as drizzleSql } from 'drizzle-orm';
import { drizzle } from 'drizzle-orm/node-postgres';
import { CompiledQuery, Kysely, PostgresDialect, sql } from 'kysely';
import pg from 'pg';
import { PgStore } from 'cache-postgres';

const pool = new pg.Pool({ connectionString: process.env['DATABASE_URL'] });
const store = new PgStore({ pool, localCache: true });
await pool.query('CREATE TABLE IF NOT EXISTS example_tx_products (id int PRIMARY KEY, price int NOT NULL)');
await pool.query('INSERT INTO example_tx_products VALUES (42, 10) ON CONFLICT (id) DO UPDATE SET price = 10');
await store.ext.set('product:42', JSON.stringify({ price: 10 }), { absoluteExpirationRelative: '1h' });

// node-postgres: pass the client your transaction is open on.
const client = await pool.connect();
try {
  await client.query('BEGIN');
  await client.query('UPDATE example_tx_products SET price = 12 WHERE id = 42');
  await store.ext.in(client).set('product:42', JSON.stringify({ price: 12 }), { absoluteExpirationRelative: '1h' });
  await client.query('COMMIT');
} finally {
  client.release();
}
console.log('after COMMIT:', await store.ext.getString('product:42'));

// A failure after the cache write rolls both back.
const failing = await pool.connect();
try {
  await failing.query('BEGIN');
  await failing.query('UPDATE example_tx_products SET price = 99 WHERE id = 42');
  await store.ext.in(failing).set('product:42', JSON.stringify({ price: 99 }), { absoluteExpirationRelative: '1h' });
  throw new Error('payment service down');
} catch (error) {
  await failing.query('ROLLBACK');
  console.log(`rolled back (${(error as Error).message}):`, await store.ext.getString('product:42'));
} finally {
  failing.release();
}

// Kysely: an adapter over its transaction.
const db = new Kysely<unknown>({ dialect: new PostgresDialect({ pool }) });
await db.transaction().execute(async (trx) => {
  await sql`UPDATE example_tx_products SET price = 15 WHERE id = 42`.execute(trx);
  const cache = store.ext.in({ query: (text, values) => trx.executeQuery(CompiledQuery.raw(text, values)) });
  await cache.delete('product:42');
});
console.log('after the Kysely transaction:', await store.ext.getString('product:42'));

// Drizzle: its sql template takes the parameters as sql.param chunks.
const viaDrizzle = (tx: { execute(query: SQL): Promise<{ rows: unknown[] }> }) => ({
  query: (text: string, values: unknown[]) =>
    tx.execute(drizzleSql.join(text.split(/\$(\d+)/).map((part, i) => (i % 2 ? drizzleSql.param(values[Number(part) - 1]) : drizzleSql.raw(part))))),
});
await drizzle(pool).transaction(async (tx) => {
  await tx.execute(drizzleSql`UPDATE example_tx_products SET price = 16 WHERE id = 42`);
  await store.ext.in(viaDrizzle(tx)).set('product:42', JSON.stringify({ price: 16 }), { absoluteExpirationRelative: '1h' });
});
console.log('after the Drizzle transaction:', await store.ext.getString('product:42'));

await pool.query('DROP TABLE example_tx_products'); // an example tidies up
await store.disconnect();
await db.destroy(); // ends the pool
