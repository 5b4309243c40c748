/**
 * What only a cache in PostgreSQL can do, each shown end to end with the SQL another service would send:
 * - `invalidateOn`: an application table whose writes (plain SQL, no cache call) delete the tagged entries in the
 *   writer's own transaction: gone at COMMIT, back as they were at ROLLBACK;
 * - `ext.in(client)`: a cache write made in the caller's transaction: seen by others at COMMIT, never at ROLLBACK;
 * - the notify trigger: a write by another language's client (the upsert .NET and Python send) reaches a local
 *   tier, which drops its copy within milliseconds.
 * The application table is `<table>_products`, created on first use; the notify trigger's cache table is
 * `<table>_xlang` (on the demo's own table, it would make the other tiers drop their own written-through copies).
 */
import type pg from 'pg';
import type { PgStore } from 'cache-postgres';
import { oneOf } from '../http.js';
import type { DemoContext, Routes } from '../context.js';
import { readUntil, uniqueKey } from './read_until.js';

const OUTCOMES = ['commit', 'rollback'] as const;
const WAIT_LIMIT_MS = 5000;

/** The app table's name, quoted, and the cache table's. */
const quoted = (ctx: DemoContext) => ({ products: `"${ctx.table}_products"`, xlang: `"${ctx.table}_xlang"` });

/** Runs `work` in a transaction on a connection of its own, ending it as `outcome` says. */
async function inTransaction<T>(pool: pg.Pool, outcome: 'commit' | 'rollback', work: (client: pg.PoolClient) => Promise<T>): Promise<T> {
  const client = await pool.connect();
  let failed = false;
  try {
    await client.query('BEGIN');
    const result = await work(client);
    await client.query(outcome === 'commit' ? 'COMMIT' : 'ROLLBACK');
    return result;
  } catch (error) {
    failed = true;
    await client.query('ROLLBACK').catch(() => {});
    throw error;
  } finally {
    client.release(failed);
  }
}

export function postgresRoutes(): Routes {
  let installed: Promise<unknown> | undefined;
  /** The products table with one row, and its invalidation: once per server (idempotent in the database too). */
  const products = (ctx: DemoContext) =>
    (installed ??= (async () => {
      const { products: t } = quoted(ctx);
      await ctx.pool.query(`CREATE TABLE IF NOT EXISTS ${t} (id int PRIMARY KEY, name text NOT NULL, price int NOT NULL)`);
      await ctx.pool.query(`INSERT INTO ${t} VALUES (1, 'a book', 10) ON CONFLICT (id) DO NOTHING`);
      await ctx.store.ext.invalidateOn({ table: `${ctx.table}_products`, tags: ['product:{id}'] });
    })().catch((error: unknown) => {
      installed = undefined; // tried again on the next request
      throw error;
    }));
  const cached = async (store: PgStore, key: string) => (await store.ext.getString(key)) ?? null;

  return {
    async 'POST /api/pg/invalidate'(body, ctx) {
      const outcome = oneOf(body, 'outcome', OUTCOMES);
      await products(ctx);
      const key = 'product:1';
      const { products: t } = quoted(ctx);
      const row = (await ctx.pool.query<{ name: string; price: number }>(`SELECT name, price FROM ${t} WHERE id = 1`)).rows[0]!;
      await ctx.store.ext.set(key, JSON.stringify(row), { absoluteExpirationRelative: '10m', tags: [key] });
      const before = await cached(ctx.store, key);
      const sql = `UPDATE ${t} SET price = price + 1 WHERE id = 1`;
      const during = await inTransaction(ctx.pool, outcome, async (client) => {
        await client.query(sql);
        // Another connection, before the writer ends: the trigger's delete is not committed yet.
        return cached(ctx.store, key);
      });
      return { key, sql: [`BEGIN`, sql, outcome.toUpperCase()], before, during, after: await cached(ctx.store, key) };
    },

    async 'POST /api/pg/transaction'(body, ctx) {
      const outcome = oneOf(body, 'outcome', OUTCOMES);
      const key = uniqueKey('order');
      const value = `written in a transaction that ends in ${outcome.toUpperCase()}`;
      const during = await inTransaction(ctx.pool, outcome, async (client) => {
        await ctx.store.ext.in(client).set(key, value, { absoluteExpirationRelative: '10m' });
        return cached(ctx.store, key); // another connection: not committed yet
      });
      const after = await cached(ctx.store, key);
      await ctx.store.ext.delete(key);
      return { key, during, after };
    },

    async 'POST /api/pg/foreign-write'(_body, ctx) {
      const tier = ctx.localTriggered;
      const key = uniqueKey('price');
      await tier.ext.set(key, '10', { absoluteExpirationRelative: '10m' });
      // With the trigger, the store's own write comes back as a notice and drops its written-through copy: read
      // until the tier answers from memory (the next read after that notice asks PostgreSQL once, then keeps it).
      const held = await readUntil(
        async () => {
          const before = (await tier.stats()).localHits;
          const value = await cached(tier, key);
          return { value, fromMemory: (await tier.stats()).localHits > before };
        },
        (read) => read.fromMemory,
        WAIT_LIMIT_MS,
        () => new Promise((resolve) => setTimeout(resolve, 5)),
      );
      const { value: first, fromMemory } = held.value;
      // What .NET's and Python's clients send for a set: an upsert of the row, no cache library involved.
      const sql = `INSERT INTO ${quoted(ctx).xlang} (id, value, expiresattime, slidingexpirationinseconds, absoluteexpiration)
VALUES ($1, convert_to('12', 'UTF8'), now() + interval '10 minutes', NULL, now() + interval '10 minutes')
ON CONFLICT (id) DO UPDATE SET value = EXCLUDED.value, expiresattime = EXCLUDED.expiresattime,
  slidingexpirationinseconds = EXCLUDED.slidingexpirationinseconds, absoluteexpiration = EXCLUDED.absoluteexpiration`;
      await ctx.pool.query(sql, [key]);
      const seen = await readUntil(() => cached(tier, key), (value) => value !== first, WAIT_LIMIT_MS);
      await tier.ext.delete(key);
      return { key, first, fromMemory, sql, after: seen.value, droppedAfterMs: seen.ms };
    },
  };
}
