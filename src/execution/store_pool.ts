import pg from 'pg';
import { ConnectionError } from '../errors.js';
import type { ResolvedOptions } from '../options/index.js';
import { acquirePool, type PoolHandle } from './pools.js';

/** A store's pool: the application's (`pool` option, never ended here), or the one shared by every store of the same settings. */
export interface StorePool {
  readonly pool: pg.Pool;
  /** The shared pool's handle, released when the store ends (undefined: the caller's `pool`). */
  readonly held: PoolHandle | undefined;
}

/**
 * The pool a store runs on. Without a `pool` option, every setting that shapes the pool is compared, and
 * stores that agree on all of them share one (pools.ts).
 * @param onPoolError receives errors of idle pooled connections; returns false when nobody heard it
 */
export function openStorePool(options: ResolvedOptions, table: string, onPoolError: (error: Error) => boolean): StorePool {
  if (options.pool) return { pool: options.pool, held: undefined };
  const statementMs = options.statementTimeoutMs;
  const settings = {
    connectionString: options.connectionString,
    connectTimeoutMs: options.connectTimeoutMs,
    statementTimeoutMs: statementMs > 0 && options.preparedStatements ? statementMs : 0,
    pipeline: options.pipelining && options.preparedStatements,
    max: options.poolMax,
    poolConfig: options.poolConfig,
  };
  const held = acquirePool(
    settings,
    () =>
      new pg.Pool({
        // A cache must not keep a process alive, nor hang on a dead peer.
        allowExitOnIdle: true,
        keepAlive: true,
        // connectTimeout bounds a new connection's TCP and startup here, in the client, and the wait for
        // a pooled one in Connections. Not pg-pool's connectionTimeoutMillis: that would also arm a
        // timer on every checkout, the hot path.
        Client: timedClient(settings.connectTimeoutMs),
        // Enforced by PostgreSQL: a statement past its time is cancelled and writes nothing. Not sent
        // with preparedStatements off, the PgBouncer setting: PgBouncer refuses unknown startup parameters.
        ...(settings.statementTimeoutMs > 0 ? { statement_timeout: settings.statementTimeoutMs } : {}),
        ...settings.poolConfig,
        connectionString: settings.connectionString,
        max: settings.max,
        ...(settings.pipeline ? { pipeline: true } : {}),
      }),
    (error) => onPoolError(new ConnectionError('idle connection', table, error)),
  );
  return { pool: held.pool, held };
}

/** pg.Client whose connection attempt gives up after `ms` (TCP, TLS and startup). */
function timedClient(ms: number): typeof pg.Client {
  return class TimedClient extends pg.Client {
    constructor(config?: string | pg.ClientConfig) {
      super(typeof config === 'string' ? { connectionString: config, connectionTimeoutMillis: ms } : { connectionTimeoutMillis: ms, ...config });
    }
  };
}
