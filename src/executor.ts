import pg from 'pg';
import { QueryError } from './errors.js';
import type { ResolvedOptions } from './options.js';
import type { Statement } from './sql.js';

/** deadlock_detected and serialization_failure: the statement was rolled back and may simply run again. */
const RETRYABLE = new Set(['40P01', '40001']);
const MAX_ATTEMPTS = 3;

/** `application_name` of the connection {@link Executor.listen} opens, so it can be told apart. */
export const LISTENER_NAME = 'cache-postgres listener';

/** What {@link Executor.listen} reports to. */
export interface ListenHandlers {
  /** A notification's payload. */
  message(payload: string): void;
  /** True once listening; false when the connection is lost or listening stops. */
  state(listening: boolean): void;
  /** Why the connection was lost. */
  error(error: Error): void;
}

/** One statement of a pipeline and its parameters. */
export interface PipelinePart {
  readonly statement: Statement;
  readonly values: unknown[];
}

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
  readonly #pipelining: boolean;
  readonly #lane: Lane;
  /** Settings for a connection of its own (LISTEN needs a session, not a pooled connection). */
  readonly #sessionConfig: pg.ClientConfig;
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
      this.#pool = new pg.Pool({
        ...options.poolConfig,
        connectionString: options.connectionString,
        max: options.poolMax,
        ...(options.pipelining && options.preparedStatements ? { pipeline: true } : {}),
      });
      this.#owned = true;
      this.#pool.on('error', onPoolError);
    }
    // node-postgres pipelines only on clients created with `pipeline: true`; a borrowed pool says so in
    // its options. Pipelines and unnamed statements are both what a pooler without prepared-statement
    // support mishandles, so one setting turns both off.
    this.#pipelining = options.pipelining && options.preparedStatements && this.#pool.options?.pipeline === true;
    this.#lane = new Lane(this.#pool);
    this.#sessionConfig = options.pool
      ? { ...this.#pool.options }
      : { ...options.poolConfig, connectionString: options.connectionString };
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

  /** True when {@link Executor.pipeline} sends its statements in one round trip. */
  get pipelining(): boolean {
    return this.#pipelining;
  }

  /**
   * Sends every part back to back, in order, in one round trip (requires {@link Executor.pipelining}).
   * Pipelines issued while others are in flight join them on the same connection (see {@link Lane}).
   * Each part runs in its own implicit transaction and settles on its own: a failed part does not fail
   * the others, and a retryable failure (deadlock) runs again alone.
   * @returns each part's rows, or the QueryError that part ended with
   */
  async pipeline(parts: readonly PipelinePart[]): Promise<Array<unknown[] | QueryError>> {
    this.#roundTrips++;
    const settled = await this.#lane.run(parts.map((part) => queryConfig(part.statement, part.values, true)));
    return Promise.all(
      settled.map(async (outcome, i) => {
        if (outcome.status === 'fulfilled') return outcome.value;
        const part = parts[i]!;
        if (!RETRYABLE.has((outcome.reason as { code?: string }).code ?? '')) return new QueryError(part.statement.label, this.#table, outcome.reason);
        try {
          return await this.query(part.statement, part.values);
        } catch (error) {
          return error as QueryError;
        }
      }),
    );
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

  /**
   * LISTENs on `channel` on a connection of its own, reconnecting (with backoff, on an unref'd timer)
   * until stopped. `state(true)` once listening, `state(false)` when the connection is lost: whatever
   * was said on the channel meanwhile is lost too.
   */
  listen(channel: string, handlers: ListenHandlers): { stop(): Promise<void> } {
    let client: pg.Client | undefined;
    let timer: NodeJS.Timeout | undefined;
    let stopped = false;
    let delay = 100;
    const lost = (gone: pg.Client, error?: Error) => {
      if (client !== gone) return; // an earlier attempt, already replaced
      client = undefined;
      gone.removeAllListeners('notification');
      gone.end().catch(() => {});
      handlers.state(false);
      if (error) handlers.error(new QueryError(`LISTEN ${channel}`, this.#table, error));
      if (stopped) return;
      timer = setTimeout(connect, delay);
      timer.unref();
      delay = Math.min(delay * 2, 5000);
    };
    const connect = () => {
      timer = undefined;
      if (stopped) return;
      const attempt = new pg.Client({ ...this.#sessionConfig, application_name: LISTENER_NAME });
      client = attempt;
      attempt.on('error', (error) => lost(attempt, error));
      attempt.on('end', () => lost(attempt));
      attempt.on('notification', (message) => handlers.message(message.payload ?? ''));
      attempt
        .connect()
        .then(() => attempt.query(`LISTEN ${pg.escapeIdentifier(channel)}`))
        .then(
          () => {
            if (client !== attempt) return;
            delay = 100;
            handlers.state(true);
          },
          (error: Error) => lost(attempt, error),
        );
    };
    connect();
    return {
      stop: async () => {
        stopped = true;
        if (timer) clearTimeout(timer);
        const last = client;
        client = undefined;
        handlers.state(false);
        if (last) await last.end().catch(() => {});
      },
    };
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

/**
 * The connection that pipelines share: the first pipeline checks one out, pipelines issued while any
 * is in flight are written behind it on the same connection, and the last one to finish returns it.
 * So two batches in flight overlap (PostgreSQL runs one while Node handles the other's rows) on a
 * single backend, in the order they were issued: never two backends competing for the cores, never a
 * later batch overtaking an earlier one. When other work waits for a pooled connection, new
 * pipelines wait for the lane to drain and queue behind it, so a pool of one is never monopolized.
 */
class Lane {
  readonly #pool: pg.Pool;
  #held: Promise<pg.PoolClient> | undefined;
  #connected = false;
  #inFlight = 0;
  #broken: Error | undefined;
  #drained: Array<() => void> = [];

  constructor(pool: pg.Pool) {
    this.#pool = pool;
  }

  async run(configs: pg.QueryConfig[]): Promise<Array<PromiseSettledResult<unknown[]>>> {
    // Only once connected: until then the pool's waiting count includes the lane's own checkout.
    while (this.#connected && this.#pool.waitingCount > 0) await new Promise<void>((resolve) => this.#drained.push(resolve));
    let held = this.#held;
    if (!held) {
      held = this.#held = this.#pool.connect();
      held.then(
        () => {
          if (this.#held === held) this.#connected = true;
        },
        () => {},
      );
    }
    this.#inFlight++;
    let client: pg.PoolClient;
    try {
      client = await held;
    } catch (error) {
      this.#settle(held, error as Error);
      return configs.map(() => ({ status: 'rejected', reason: error }));
    }
    // One socket write for the whole pipeline, not one per statement: on loopback each write costs
    // about as much CPU as a small statement. node-postgres corks around each statement; corks nest.
    const stream = (client as { connection?: { stream?: { cork?: () => void; uncork?: () => void } } }).connection?.stream;
    stream?.cork?.();
    let pending: Array<Promise<unknown[]>>;
    try {
      pending = configs.map((config) => client.query(config).then((result) => result.rows as unknown[]));
    } finally {
      stream?.uncork?.();
    }
    const settled = await Promise.allSettled(pending);
    const failed = settled.find((outcome) => outcome.status === 'rejected');
    this.#settle(held, failed ? (failed.reason as Error) : undefined);
    return settled;
  }

  /** A pipeline finished; the last one out returns the connection (destroyed, like pool.query does, after any error). */
  #settle(held: Promise<pg.PoolClient>, error: Error | undefined): void {
    this.#broken ??= error;
    if (--this.#inFlight > 0) return;
    const broken = this.#broken;
    this.#held = undefined;
    this.#connected = false;
    this.#broken = undefined;
    held.then((client) => client.release(broken), () => {});
    for (const wake of this.#drained.splice(0)) wake();
  }
}
