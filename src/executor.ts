import pg from 'pg';
import { Connections, type Lease, NO_ANSWER_GRACE_MS } from './connections.js';
import type { RunStatement } from './batch_delete.js';
import { callerRows, checkReadable, PROBE, type RowShape } from './caller_answers.js';
import { type CachePostgresError, ConnectionError, queryError, type QueryError } from './errors.js';
import { listen, type ListenHandlers, type Subscription } from './listener.js';
import type { ResolvedOptions } from './options.js';
import { acquirePool, type PoolHandle } from './pools.js';
import type { Statement } from './sql.js';

/** deadlock_detected and serialization_failure: the statement was rolled back and may simply run again. */
const RETRYABLE = new Set(['40P01', '40001']);
const MAX_ATTEMPTS = 3;

/**
 * A batch (or pipeline) that has not answered after this long is late: later batches stop waiting
 * behind it and go ahead on other connections (Batcher's `lateAfterMs`, and the executor's lanes).
 * Far above a batch's usual time (well under 5 ms on loopback), so under normal load nothing changes;
 * one row lock held elsewhere delays calls on other keys by about this much, not by the lock's time.
 */
export const LATE_AFTER_MS = 30;

export { LISTENER_NAME, type ListenHandlers } from './listener.js';

/**
 * The readiness gate every statement passes (see {@link Executor}): undefined when the store is ready,
 * else a promise that settles once it is (the table created) or rejects (it could not be, or the store
 * was closed first). `operation` names the statement, for errors.
 */
export type Gate = (operation: string) => Promise<void> | undefined;

/** The executor's statements without the gate: for the readiness work itself. */
export interface SetupExecutor {
  /** What schema work is remembered per: see {@link Executor.schemaScope}. */
  readonly schemaScope: object;
  query<R extends object = Record<string, unknown>>(statement: Statement, values: unknown[]): Promise<R[]>;
  transaction<T>(fn: (query: TransactionQuery) => Promise<T>): Promise<T>;
}

/**
 * A connection the application holds, for `store.ext.in(client)`: a `pg.Client` or `pg.PoolClient`, or
 * any object whose `query(text, values)` runs PostgreSQL text with `$1`-style parameters on one
 * connection and resolves to the rows or to `{ rows }` (a few lines adapt Kysely's or Drizzle's
 * transaction: see docs/postgres-features.md).
 */
export interface CallerClient {
  query(text: string, values: unknown[]): unknown;
}

/** One statement of a pipeline and its parameters. */
export interface PipelinePart {
  readonly statement: Statement;
  readonly values: unknown[];
}

/**
 * Runs statements inside an open transaction; see {@link Executor.transaction}. `timeoutMs` replaces
 * the statement's time limit on the client side (Infinity: none), for a wait bounded otherwise.
 */
export type TransactionQuery = <R extends object = Record<string, unknown>>(
  statement: Statement | string,
  values?: unknown[],
  timeoutMs?: number,
) => Promise<R[]>;

/**
 * The only module that talks to `pg`: it owns or borrows the pool, runs named statements, types
 * failures ({@link queryError}) and counts round trips (so "a get is one round trip" is checkable).
 * Every connection it uses is checked out through {@link Connections}: bounded waits, an error
 * listener while checked out, a watchdog per statement, and a close that settles every call.
 *
 * Every statement also passes the store's readiness gate here, so no path can reach the table before
 * it exists, whatever method it came from; only {@link Executor.setup} (the schema work the gate
 * waits for) runs without it.
 */
export class Executor {
  readonly #pool: pg.Pool;
  /** The pool this store shares with every store of the same connection settings (undefined: the caller's `pool`). */
  readonly #held: PoolHandle | undefined;
  readonly #table: string;
  readonly #prepare: boolean;
  readonly #pipelining: boolean;
  readonly #connections: Connections;
  readonly #lanes: Lanes;
  /** Client-side limit of one statement's answer (ms; Infinity: none). */
  readonly #answerMs: number;
  /** Settings for a connection of its own (LISTEN needs a session, not a pooled connection). */
  readonly #sessionConfig: pg.ClientConfig;
  readonly #gate: Gate;
  #roundTrips = 0;

  /**
   * @param options resolved store options (pool or connection settings)
   * @param table `schema.table`, named in error messages
   * @param onPoolError receives errors of idle pooled connections, which would otherwise crash Node; returns
   *   false when nobody heard it (then the pool says it once, as a process warning, for all its holders)
   * @param gate the readiness gate every statement but {@link Executor.setup}'s passes
   */
  constructor(options: ResolvedOptions, table: string, onPoolError: (error: Error) => boolean, gate: Gate) {
    this.#table = table;
    this.#gate = gate;
    this.#prepare = options.preparedStatements;
    const statementMs = options.statementTimeoutMs;
    if (options.pool) {
      this.#pool = options.pool;
      this.#held = undefined;
    } else {
      // Every setting that shapes the pool: stores that agree on all of them share one (pools.ts).
      const settings = {
        connectionString: options.connectionString,
        connectTimeoutMs: options.connectTimeoutMs,
        statementTimeoutMs: statementMs > 0 && options.preparedStatements ? statementMs : 0,
        pipeline: options.pipelining && options.preparedStatements,
        max: options.poolMax,
        poolConfig: options.poolConfig,
      };
      this.#held = acquirePool(
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
      this.#pool = this.#held.pool;
    }
    // node-postgres pipelines only on clients created with `pipeline: true`; a borrowed pool says so in
    // its options. Pipelines and unnamed statements are both what a pooler without prepared-statement
    // support mishandles, so one setting turns both off.
    this.#pipelining = options.pipelining && options.preparedStatements && this.#pool.options?.pipeline === true;
    this.#answerMs = statementMs > 0 ? statementMs + NO_ANSWER_GRACE_MS : Number.POSITIVE_INFINITY;
    this.#connections = new Connections(this.#pool, table, options.connectTimeoutMs);
    this.#lanes = new Lanes(this.#pool, this.#connections, this.#answerMs);
    this.#sessionConfig = options.pool
      ? { ...this.#pool.options }
      : { keepAlive: true, connectionTimeoutMillis: options.connectTimeoutMs, ...options.poolConfig, connectionString: options.connectionString };
  }

  /**
   * Set once the schema check finds the table distributed by Citus: from then on every statement that
   * has a `citus` form runs in it (see {@link Statement.citus}). Chosen here, where every statement
   * passes, so no caller has to remember.
   */
  distributed = false;

  /** The form of `statement` this table runs. */
  #form(statement: Statement): Statement {
    return this.distributed && statement.citus ? statement.citus : statement;
  }

  /** Statements sent since the store was created (each is one round trip). */
  get roundTrips(): number {
    return this.#roundTrips;
  }

  /** True when the pool was created by the stores (shared by those of the same settings), not passed as `pool`. */
  get ownsPool(): boolean {
    return this.#held !== undefined;
  }

  /** The client-side limit of one statement's answer, in ms (Infinity: none); see `statementTimeout`. */
  get answerTimeoutMs(): number {
    return this.#answerMs;
  }

  /**
   * Runs one named statement on any pooled connection and returns its rows.
   * A statement chosen as a deadlock victim is retried: a single statement outside a transaction was
   * rolled back as a whole, so running it again is always safe (bulk writes of concurrent callers can
   * lock overlapping rows in different orders).
   */
  async query<R extends object = Record<string, unknown>>(statement: Statement, values: unknown[]): Promise<R[]> {
    const opening = this.#gate(statement.label);
    if (opening) await opening;
    return this.#query(statement, values);
  }

  /**
   * The statements of the readiness work, which the gate waits for: they run without it. Nothing else
   * uses them.
   */
  get setup(): SetupExecutor {
    return {
      schemaScope: this.schemaScope,
      query: (statement, values) => this.#query(statement, values),
      transaction: (fn) => this.#transaction(fn),
    };
  }

  async #query<R extends object = Record<string, unknown>>(statement: Statement, values: unknown[]): Promise<R[]> {
    for (let attempt = 1; ; attempt++) {
      this.#roundTrips++;
      const lease = await this.#connections.acquire(statement.label);
      let failed: unknown;
      try {
        return await lease.watch(this.#answerMs, send<R>(lease.client, queryConfig(this.#form(statement), values, this.#prepare)));
      } catch (error) {
        failed = error;
      } finally {
        lease.release(failed);
      }
      if (attempt < MAX_ATTEMPTS && RETRYABLE.has((failed as { code?: string }).code ?? '')) continue;
      throw lease.failure(statement.label, failed);
    }
  }

  /**
   * True when {@link Executor.pipeline} sends its statements in one round trip. Never on a distributed
   * table: a pipelined lane relies on a statement giving up a row lock after LANE_LOCK_TIMEOUT, and Citus
   * waits for row locks on the workers, where the coordinator's lock_timeout does not reach; a lane would
   * then stall behind someone's transaction. Statements go one at a time instead.
   */
  get pipelining(): boolean {
    return this.#pipelining && !this.distributed;
  }

  /**
   * True when reads go as two statements, a slide and a select ({@link Executor.pipeline}): pipelined,
   * in one round trip, or on a distributed table one after the other, where Citus would run the
   * one-statement form (a data-modifying CTE) as three distributed steps, one an UPDATE on every shard.
   */
  get splitReads(): boolean {
    return this.#pipelining || this.distributed;
  }

  /**
   * Sends every part back to back, in order, in one round trip when {@link Executor.pipelining}; else
   * (a distributed table) one after the other on one connection.
   * Pipelines issued while others are in flight join them on the same connection (see {@link Lanes}).
   * Each part runs in its own implicit transaction and settles on its own: a failed part does not fail
   * the others, and a retryable failure (deadlock) runs again alone.
   * @returns each part's rows, or the typed error that part ended with
   */
  async pipeline(parts: readonly PipelinePart[]): Promise<Array<unknown[] | CachePostgresError>> {
    const opening = this.#gate(parts[0]?.statement.label ?? 'pipeline');
    if (opening) await opening;
    if (!this.pipelining) return this.#inTurn(parts);
    this.#roundTrips++;
    const labels = parts.map((part) => part.statement.label);
    const settled = await this.#lanes.run(labels, parts.map((part) => queryConfig(this.#form(part.statement), part.values, true)));
    return this.#retryVictims(parts, settled);
  }

  /**
   * {@link Executor.pipeline} without pipelining: the parts one after the other on one connection, so a
   * disconnect() that begins meanwhile lets the whole pipeline finish (it waits for connections in use).
   * A deadlock victim runs again alone, as in a pipeline.
   */
  async #inTurn(parts: readonly PipelinePart[]): Promise<Array<unknown[] | CachePostgresError>> {
    const settled: Array<unknown[] | CachePostgresError> = [];
    const lease = await this.#connections.acquire(parts[0]?.statement.label ?? 'pipeline').catch((error: unknown) => error as CachePostgresError);
    if (lease instanceof Error) return parts.map(() => lease);
    let broken: unknown;
    try {
      for (const part of parts) {
        this.#roundTrips++;
        try {
          settled.push(await lease.watch(this.#answerMs, send(lease.client, queryConfig(this.#form(part.statement), part.values, this.#prepare))));
        } catch (error) {
          // An error of the statement leaves the connection usable; a lost or cut one fails the rest.
          if (!(error instanceof pg.DatabaseError)) broken = error;
          settled.push(lease.failure(part.statement.label, error));
          if (broken) break;
        }
      }
    } finally {
      lease.release(broken);
    }
    while (settled.length < parts.length) settled.push(settled[settled.length - 1] as CachePostgresError);
    return this.#retryVictims(parts, settled);
  }

  /** A part chosen as a deadlock victim (or a serialization failure) runs again alone. */
  #retryVictims(parts: readonly PipelinePart[], settled: ReadonlyArray<unknown[] | CachePostgresError>): Promise<Array<unknown[] | CachePostgresError>> {
    return Promise.all(
      settled.map(async (outcome, i) => {
        const part = parts[i]!;
        if (!(outcome instanceof Error) || !RETRYABLE.has((outcome as Partial<QueryError>).sqlState ?? '')) return outcome;
        return this.#query(part.statement, part.values).catch((error: unknown) => error as CachePostgresError);
      }),
    );
  }

  /**
   * Runs `fn` in a transaction on one connection: COMMIT when it resolves, ROLLBACK when it throws.
   * A connection whose ROLLBACK fails is destroyed rather than returned to the pool in an unknown state.
   */
  async transaction<T>(fn: (query: TransactionQuery) => Promise<T>): Promise<T> {
    const opening = this.#gate('BEGIN');
    if (opening) await opening;
    return this.#transaction(fn);
  }

  async #transaction<T>(fn: (query: TransactionQuery) => Promise<T>): Promise<T> {
    this.#roundTrips++;
    const lease = await this.#connections.acquire('BEGIN');
    const query: TransactionQuery = async <R extends object>(statement: Statement | string, values: unknown[] = [], timeoutMs = this.#answerMs) => {
      this.#roundTrips++;
      try {
        return await lease.watch(timeoutMs, send<R>(lease.client, queryConfig(typeof statement === 'string' ? statement : this.#form(statement), values, this.#prepare)));
      } catch (error) {
        throw lease.failure(typeof statement === 'string' ? statement.split(/\s/, 3).join(' ') : statement.label, error);
      }
    };
    let broken: unknown;
    try {
      await query('BEGIN');
      const result = await fn(query);
      await query('COMMIT');
      return result;
    } catch (error) {
      try {
        await lease.watch(this.#answerMs, send(lease.client, { text: 'ROLLBACK' }));
      } catch (rollbackError) {
        broken = rollbackError;
      }
      throw error;
    } finally {
      lease.release(broken);
    }
  }

  /**
   * Runs statements on a connection the application holds (see {@link CallerClient}), inside whatever
   * transaction it has open there: the form this table runs, the readiness gate passed first, failures
   * typed as every other statement's. Sent unnamed: the library never leaves prepared statements in a
   * session it does not own (nor trips a pooler that forbids them). No watchdog either: the caller's
   * connection runs under the caller's limits (its statement_timeout), and a lost one is the caller's
   * to handle; the error says so.
   *
   * Before a client's first statement, a read-only check (one `SELECT` of constants, remembered per client
   * object) refuses a client whose answers the store could not read, so nothing is written through it; every
   * answer is then checked against `shape`, what its statement returns (see caller_answers.ts).
   */
  onClient(client: CallerClient): RunStatement {
    return async <R extends object>(statement: Statement, values: unknown[], shape?: RowShape): Promise<R[]> => {
      const opening = this.#gate(statement.label);
      if (opening) await opening;
      const checked = checkReadable(client, () => this.#send(client, 'probe', PROBE.text, []));
      if (checked) await checked;
      const result = await this.#send(client, statement.label, this.#form(statement).text, values);
      return rowsOf<R>(result, statement.label, shape);
    };
  }

  /** One statement on a caller's client: counted, and its failure typed. */
  async #send(client: CallerClient, label: string, text: string, values: unknown[]): Promise<unknown> {
    this.#roundTrips++;
    try {
      return await client.query(text, values);
    } catch (error) {
      throw queryError(label, this.#table, error);
    }
  }

  /**
   * LISTENs on `channel` on the listening connection of this pool's stores (one per pool, however many
   * stores and channels: listener.ts), reconnecting until stopped. `state(true)` once listening,
   * `state(false)` when the connection is lost: whatever was said on the channel meanwhile is lost too.
   * The connection does not keep the process alive.
   */
  listen(channel: string, handlers: ListenHandlers): Subscription {
    return listen(this.#pool, this.#sessionConfig, this.#table, channel, handlers);
  }

  /**
   * What the schema checks are remembered per: the application's pool (`pool` option: its stores check
   * once, as before), else this store. A pool shared by settings can outlive any one store, and a table
   * dropped meanwhile is then created again by the next store instead of being assumed.
   */
  get schemaScope(): object {
    return this.#held ? this : this.#pool;
  }

  /** The pool, for the listening connection and the expiration scan, shared per pool. */
  get pool(): pg.Pool {
    return this.#pool;
  }

  /**
   * Settles every call: callers waiting for a connection are refused, work in progress gets a few
   * seconds ({@link Connections.close}), then this store lets go of its shared pool, which the last
   * store of those settings ends (a borrowed pool is left to its owner).
   */
  async end(): Promise<void> {
    await this.#connections.close();
    await this.#held?.release();
  }
}

/** pg.Client whose connection attempt gives up after `ms` (TCP, TLS and startup). */
function timedClient(ms: number): typeof pg.Client {
  return class TimedClient extends pg.Client {
    constructor(config?: string | pg.ClientConfig) {
      super(typeof config === 'string' ? { connectionString: config, connectionTimeoutMillis: ms } : { connectionTimeoutMillis: ms, ...config });
    }
  };
}

/** What {@link send} sends: node-postgres prepares a statement once per connection when it has a name; plain text runs unprepared. */
interface Sendable {
  readonly text: string;
  readonly values?: unknown[];
  readonly name?: string;
}

function queryConfig(statement: Statement | string, values: unknown[], prepare: boolean): Sendable {
  if (typeof statement === 'string') return { text: statement, values };
  return prepare && statement.prepared ? { name: statement.name, text: statement.text, values } : { text: statement.text, values };
}

/**
 * Sends one statement on `client` and resolves with its rows. It hands node-postgres a `pg.Query`
 * built from the text, which it runs as is: `client.query(config)` would copy the config object
 * (property descriptors and all) and wrap the answer in two promises of its own, a measurable share
 * of the CPU a batched call costs.
 */
function send<R = unknown>(client: pg.ClientBase, config: Sendable): Promise<R[]> {
  return new Promise<R[]>((resolve, reject) => {
    const query = new pg.Query(config.text, config.values, (error: Error | undefined, result: { rows: unknown[] }) =>
      error ? reject(error) : resolve(result.rows as R[]),
    );
    if (config.name !== undefined) (query as { name?: string }).name = config.name;
    client.query(query);
  });
}

/**
 * The rows of what a caller's client answered: an array of rows, or node-postgres' `{ rows }`, of `shape`.
 * @throws {UnreadableResultError} saying what was wrong, what is read, and that the statement ran
 */
function rowsOf<R>(result: unknown, label: string, shape: RowShape | undefined): R[] {
  return callerRows<R>(result, label, shape);
}

/** A pipeline's outcome: each part's rows or its typed error (a QueryError, or StoreClosedError after disconnect()). */
type Settled = Array<unknown[] | CachePostgresError>;

/**
 * The connections pipelines share. The first pipeline checks one out (a lane); pipelines issued
 * while any is in flight are written behind it on the same connection, and the last one to finish
 * returns it. So two batches in flight overlap (PostgreSQL runs one while Node handles the other's
 * rows) on a single backend, in the order they were issued. Two exceptions:
 * - when other work waits for a pooled connection, new pipelines wait for the lane to drain and
 *   queue behind that work, so a pool of one is never monopolized;
 * - when the lane's oldest pipeline is late ({@link LATE_AFTER_MS}: a row lock, a slow statement),
 *   new pipelines open another lane on another connection instead of queueing behind it; the late
 *   lane returns its connection once its own pipelines finish.
 */
class Lanes {
  readonly #pool: pg.Pool;
  readonly #connections: Connections;
  readonly #answerMs: number;
  #current: Lane | undefined;

  constructor(pool: pg.Pool, connections: Connections, answerMs: number) {
    this.#pool = pool;
    this.#connections = connections;
    this.#answerMs = answerMs;
  }

  async run(labels: string[], configs: Sendable[]): Promise<Settled> {
    let lane = this.#current;
    if (lane?.late()) lane = undefined;
    // Only once connected: until then the pool's waiting count includes the lane's own checkout.
    while (lane?.connected && this.#pool.waitingCount > 0) {
      await lane.drained();
      lane = this.#current;
      if (lane?.late()) lane = undefined;
    }
    if (!lane) {
      const fresh = new Lane(this.#connections.acquire(labels[0] ?? 'pipeline'), this.#answerMs, () => {
        if (this.#current === fresh) this.#current = undefined;
      });
      lane = this.#current = fresh;
    }
    return lane.run(labels, configs);
  }
}

/** One connection's pipelines: see {@link Lanes}. */
class Lane {
  readonly #lease: Promise<Lease>;
  readonly #answerMs: number;
  readonly #onDone: () => void;
  connected = false;
  /** Start times of the pipelines in flight, oldest first (they finish in order). */
  readonly #started: number[] = [];
  #broken: unknown;
  #done = false;
  readonly #waiters: Array<() => void> = [];

  constructor(lease: Promise<Lease>, answerMs: number, onDone: () => void) {
    this.#lease = lease;
    this.#answerMs = answerMs;
    this.#onDone = onDone;
    lease.then(
      () => void (this.connected = true),
      () => {},
    );
  }

  /** True when its oldest pipeline has been out longer than {@link LATE_AFTER_MS}. */
  late(): boolean {
    const oldest = this.#started[0];
    return oldest !== undefined && performance.now() - oldest > LATE_AFTER_MS;
  }

  /** Resolves when this lane has returned its connection. */
  drained(): Promise<void> {
    return this.#done ? Promise.resolve() : new Promise((resolve) => this.#waiters.push(resolve));
  }

  async run(labels: string[], configs: Sendable[]): Promise<Settled> {
    this.#started.push(performance.now());
    let lease: Lease;
    try {
      lease = await this.#lease;
    } catch (error) {
      this.#finish(error);
      return configs.map(() => error as CachePostgresError);
    }
    const client = lease.client;
    // One socket write for the whole pipeline, not one per statement: on loopback each write costs
    // about as much CPU as a small statement. node-postgres corks around each statement; corks nest.
    const stream = (client as { connection?: { stream?: { cork?: () => void; uncork?: () => void } } }).connection?.stream;
    stream?.cork?.();
    let pending: Array<Promise<unknown[]>>;
    try {
      pending = configs.map((config) => send(client, config));
    } finally {
      stream?.uncork?.();
    }
    // allSettled never rejects: a watchdog that closes the connection fails the parts, which settles it.
    const outcomes = await lease.watch(this.#answerMs, Promise.allSettled(pending));
    const failed = outcomes.find((outcome) => outcome.status === 'rejected');
    const settled = outcomes.map((outcome, i) =>
      outcome.status === 'fulfilled' ? outcome.value : lease.failure(labels[i] ?? 'pipeline', outcome.reason),
    );
    this.#finish(failed?.reason, lease);
    return settled;
  }

  /** A pipeline finished; the last one out returns the connection (destroyed after any error, as pool.query does). */
  #finish(error: unknown, lease?: Lease): void {
    this.#started.shift();
    this.#broken ??= error;
    if (this.#started.length > 0) return;
    this.#done = true;
    this.#onDone();
    if (lease) lease.release(this.#broken);
    for (const wake of this.#waiters.splice(0)) wake();
  }
}
