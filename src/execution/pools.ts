import pg from 'pg';

/**
 * Pools the stores create, shared by connection settings, as @keyv/postgres shares one pool per
 * connection string: code that creates a store per module, per request or per test opens one pool, not
 * one per store. Counted: each store holds a reference, and the last one to let go ends the pool. A pool
 * the application passes (`pool` option) never comes here: it stays the application's.
 *
 * The key is every setting that shapes the pool (URL, the `PG*` environment when no URL is given, size,
 * timeouts, pg.PoolConfig): stores whose settings differ in anything get different pools. Settings that
 * cannot be compared by value (a function, a class instance in poolConfig) are never shared.
 */

interface Entry {
  readonly pool: pg.Pool;
  refs: number;
  /** Each holder's handler for errors of idle connections (pg-pool emits them on the pool): true when heard. */
  readonly onError: Set<(error: Error) => boolean>;
}

/** What a holder of a pool gets: the pool, and the one way to let it go. */
export interface PoolHandle {
  readonly pool: pg.Pool;
  /** Drops this holder's reference; the last one ends the pool (bounded: a client never returned does not hang). */
  release(): Promise<void>;
}

const shared = new Map<string, Entry>();

/** How long ending a pool may wait for connections that never come back. */
const END_MS = 2000;

/**
 * A pool for `settings`, shared with every other holder of the same settings.
 * @param settings what the pool is created from, compared by value (see {@link poolKey})
 * @param create makes the pool when none is shared yet
 * @param onError this holder's handler for errors of idle connections: true when someone heard it
 */
export function acquirePool(settings: Record<string, unknown>, create: () => pg.Pool, onError: (error: Error) => boolean): PoolHandle {
  const key = poolKey(settings);
  let entry = key === undefined ? undefined : shared.get(key);
  if (!entry || entry.pool.ended) {
    const pool = create();
    const created: Entry = { pool, refs: 0, onError: new Set() };
    pool.on('error', (error) => {
      // A pool every holder let go of is ending: its connections closing is not news.
      if (created.refs === 0) return;
      let heard = false;
      for (const handler of created.onError) {
        try {
          heard = handler(error) || heard;
        } catch {
          // A holder's logger that throws must not keep the others from hearing it, nor escape into pg's socket callback.
        }
      }
      // Holders with neither a logger nor a listener: one warning for the pool, not one per store.
      if (!heard) process.emitWarning(`cache-postgres: an idle connection of the pool failed: ${error.message}`, { code: 'CACHE_POSTGRES_BACKGROUND_ERROR' });
    });
    if (key !== undefined) shared.set(key, created);
    entry = created;
  }
  const held = entry;
  held.refs++;
  // The same function twice (two stores sharing one handler) must count twice: wrap it.
  const handler = (error: Error) => onError(error);
  held.onError.add(handler);
  let released = false;
  return {
    pool: held.pool,
    release: async () => {
      if (released) return;
      released = true;
      held.onError.delete(handler);
      if (--held.refs > 0) return;
      if (key !== undefined && shared.get(key) === held) shared.delete(key);
      if (held.pool.ended) return;
      let timer: NodeJS.Timeout | undefined;
      await Promise.race([held.pool.end().catch(() => {}), new Promise((resolve) => (timer = setTimeout(resolve, END_MS)))]);
      clearTimeout(timer);
    },
  };
}

/** Pools open and shared now, with their holders: for diagnostics and tests. */
export function sharedPools(): Array<{ pool: pg.Pool; holders: number }> {
  return [...shared.values()].map((entry) => ({ pool: entry.pool, holders: entry.refs }));
}

/**
 * The settings as a comparable string, or undefined when some value can only be compared by identity
 * (a function, a class instance): then the pool is not shared. Without a URL, pg reads the `PG*`
 * environment when it connects, so those variables are part of the key.
 */
export function poolKey(settings: Record<string, unknown>): string | undefined {
  const env = settings.connectionString === undefined
    ? Object.fromEntries(Object.entries(process.env).filter(([name]) => name.startsWith('PG')).sort(([a], [b]) => (a < b ? -1 : 1)))
    : {};
  return canonical({ ...settings, env });
}

function canonical(value: unknown): string | undefined {
  if (value === undefined) return 'u';
  if (value === null || typeof value === 'boolean' || typeof value === 'string') return JSON.stringify(value);
  if (typeof value === 'number') return Number.isNaN(value) ? 'NaN' : String(value);
  if (typeof value === 'bigint') return `${value}n`;
  if (Buffer.isBuffer(value)) return `b${value.toString('base64')}`;
  if (Array.isArray(value)) {
    const parts = value.map(canonical);
    return parts.includes(undefined) ? undefined : `[${parts.join(',')}]`;
  }
  if (typeof value === 'object' && (Object.getPrototypeOf(value) === Object.prototype || Object.getPrototypeOf(value) === null)) {
    const parts: string[] = [];
    for (const name of Object.keys(value).sort()) {
      const part = canonical((value as Record<string, unknown>)[name]);
      if (part === undefined) return undefined;
      parts.push(`${JSON.stringify(name)}:${part}`);
    }
    return `{${parts.join(',')}}`;
  }
  return undefined; // a function, symbol or class instance: compared by identity only
}
