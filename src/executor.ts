import pg from 'pg';
import { QueryError } from './errors.js';
import type { ResolvedOptions } from './options.js';
import type { Statement } from './sql.js';

/** deadlock_detected and serialization_failure: the statement was rolled back and may simply run again. */
const RETRYABLE = new Set(['40P01', '40001']);
const MAX_ATTEMPTS = 3;

/** Runs statements inside an open transaction; see {@link Executor.transaction}. */
export type TransactionQuery = <R extends object = Record<string, unknown>>(statement: Statement | string, values?: unknown[]) => Promise<R[]>;

/**
 * The only module that talks to `pg`: it owns or borrows the pool, runs named statements, maps
 * failures to {@link QueryError} and counts round trips (so "a get is one round trip" is checkable).
 */
export class Executor {
  readonly #pool: pg.Pool;
  readonly #owned: boolean;
  readonly #table: string;
  readonly #prepare: boolean;
  #roundTrips = 0;

  /**
   * @param options resolved store options (pool or connection settings)
   * @param table `schema.table`, named in error messages
   * @param onPoolError receives errors of idle pooled connections, which would otherwise crash Node
   */
  constructor(options: ResolvedOptions, table: string, onPoolError: (error: Error) => void) {
    this.#table = table;
    this.#prepare = options.preparedStatements;
    if (options.pool) {
      this.#pool = options.pool;
      this.#owned = false;
    } else {
      this.#pool = new pg.Pool({ ...options.poolConfig, connectionString: options.connectionString, max: options.poolMax });
      this.#owned = true;
      this.#pool.on('error', onPoolError);
    }
  }

  /** Statements sent since the store was created (each is one round trip). */
  get roundTrips(): number {
    return this.#roundTrips;
  }

  /** True when the pool was created by the store and so is ended by {@link Executor.end}. */
  get ownsPool(): boolean {
    return this.#owned;
  }

  /**
   * Runs one named statement on any pooled connection and returns its rows.
   * A statement chosen as a deadlock victim is retried: a single statement outside a transaction was
   * rolled back as a whole, so running it again is always safe (bulk writes of concurrent callers can
   * lock overlapping rows in different orders).
   */
  async query<R extends object = Record<string, unknown>>(statement: Statement, values: unknown[]): Promise<R[]> {
    for (let attempt = 1; ; attempt++) {
      this.#roundTrips++;
      try {
        const result = await this.#pool.query<R>(queryConfig(statement, values, this.#prepare));
        return result.rows;
      } catch (error) {
        if (attempt < MAX_ATTEMPTS && RETRYABLE.has((error as { code?: string }).code ?? '')) continue;
        throw new QueryError(statement.label, this.#table, error);
      }
    }
  }

  /**
   * Runs `fn` in a transaction on one connection: COMMIT when it resolves, ROLLBACK when it throws.
   * A connection whose ROLLBACK fails is destroyed rather than returned to the pool in an unknown state.
   */
  async transaction<T>(fn: (query: TransactionQuery) => Promise<T>): Promise<T> {
    this.#roundTrips++;
    let client: pg.PoolClient;
    try {
      client = await this.#pool.connect();
    } catch (error) {
      throw new QueryError('connect', this.#table, error);
    }
    const query: TransactionQuery = async <R extends object>(statement: Statement | string, values: unknown[] = []) => {
      this.#roundTrips++;
      try {
        return (await client.query<R>(queryConfig(statement, values, this.#prepare))).rows;
      } catch (error) {
        throw new QueryError(typeof statement === 'string' ? statement.split(/\s/, 3).join(' ') : statement.label, this.#table, error);
      }
    };
    let broken: Error | undefined;
    try {
      await query('BEGIN');
      const result = await fn(query);
      await query('COMMIT');
      return result;
    } catch (error) {
      try {
        await client.query('ROLLBACK');
      } catch (rollbackError) {
        broken = rollbackError as Error;
      }
      throw error;
    } finally {
      client.release(broken);
    }
  }

  /** The pool, for the schema memo and for sharing checks. */
  get pool(): pg.Pool {
    return this.#pool;
  }

  /** Ends the pool if the store created it; a borrowed pool is left to its owner. */
  async end(): Promise<void> {
    if (this.#owned && !this.#pool.ended) await this.#pool.end();
  }
}

/** node-postgres prepares a statement once per connection when it has a name; plain text runs unprepared. */
function queryConfig(statement: Statement | string, values: unknown[], prepare: boolean): pg.QueryConfig {
  if (typeof statement === 'string') return { text: statement, values };
  return prepare && statement.prepared ? { name: statement.name, text: statement.text, values } : { text: statement.text, values };
}
