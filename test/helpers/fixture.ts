import pg from 'pg';
import { PgStore, type PgStoreOptions } from '../../src/index.js';
import { dropTables, sql, testDistributed, testUrl, uniqueTable } from './db.js';

/** A row of the cache table as node-postgres returns it (timestamps as Date, or Infinity for 'infinity'). */
export interface CacheRow {
  id: string;
  value: Buffer;
  expiresattime: Date | number;
  slidingexpirationinseconds: string | null;
  absoluteexpiration: Date | null;
  tags: string[] | null;
  xmin: string;
}

/**
 * Registers mocha hooks for a suite that works on its own table: one shared pool, the table created
 * before, emptied before each test, dropped after; stores made with `make()` are disconnected after
 * each test. Call inside a `describe`.
 */
export function useCacheTable(prefix: string) {
  const table = uniqueTable(prefix);
  const stores: PgStore[] = [];
  let pool: pg.Pool | undefined;

  const fixture = {
    table,
    get pool(): pg.Pool {
      if (!pool) throw new Error('pool is available inside hooks and tests');
      return pool;
    },
    /** A store on the suite's table and pool (no background scan unless asked). */
    make(options: Omit<PgStoreOptions, 'pool' | 'table'> = {}): PgStore {
      const store = new PgStore({ pool: fixture.pool, table, enableExpirationScan: false, ...options });
      stores.push(store);
      return store;
    },
    async row(id: string): Promise<CacheRow | undefined> {
      return (await sql<CacheRow>(`SELECT *, xmin::text FROM public.${table} WHERE id = $1`, [id]))[0];
    },
    async ids(): Promise<string[]> {
      return (await sql<{ id: string }>(`SELECT id FROM public.${table} ORDER BY id`)).map((r) => r.id);
    },
    async count(): Promise<number> {
      return (await sql<{ n: number }>(`SELECT count(*)::int AS n FROM public.${table}`))[0]!.n;
    },
  };

  before(async () => {
    // Pipelined, like the pool a store creates for itself; batching.test.ts covers a pool without.
    pool = new pg.Pool({ connectionString: testUrl(), max: 4, pipeline: true });
    const creator = new PgStore({ pool, table, enableExpirationScan: false, distributed: testDistributed() });
    await creator.has('create-the-table');
    await creator.disconnect();
  });
  beforeEach(() => sql(`TRUNCATE public.${table}`));
  afterEach(async () => {
    await Promise.all(stores.splice(0).map((store) => store.disconnect()));
  });
  after(async () => {
    await pool?.end();
    await dropTables(table, `${table}_locks`);
  });
  return fixture;
}
