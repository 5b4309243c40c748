import pg from 'pg';
import { Connections, NO_ANSWER_GRACE_MS } from './connections.js';
import type { RunStatement } from './batch_delete.js';
import { onCallerClient } from './caller_client.js';
import { type CachePostgresError, type QueryError } from '../errors.js';
import { Forms } from './forms.js';
import { Lanes } from './lanes.js';
import { listen, type ListenHandlers, type Subscription } from './listener.js';
import type { ResolvedOptions } from '../options/index.js';
import type { PoolHandle } from './pools.js';
import { queryConfig, send } from './send.js';
import type { Statement } from '../sql/index.js';
import { openStorePool } from './store_pool.js';
import { inTransaction, type TransactionPorts } from './transaction.js';
import type { CallerClient, Gate, PipelinePart, SetupExecutor, TransactionQuery } from './types.js';

const MAX_ATTEMPTS = 3;

export { LATE_AFTER_MS } from './lanes.js';
export { LISTENER_NAME, type ListenHandlers } from './listener.js';
export type { CallerClient, Gate, PipelinePart, SetupExecutor, TransactionQuery } from './types.js';

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
  /** What transactions and callers' clients take of this executor. */
  readonly #ports: TransactionPorts;

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
    ({ pool: this.#pool, held: this.#held } = openStorePool(options, table, onPoolError));
    // node-postgres pipelines only on clients created with `pipeline: true`; a borrowed pool says so in
    // its options. Pipelines and unnamed statements are both what a pooler without prepared-statement
    // support mishandles, so one setting turns both off.
    this.#pipelining = options.pipelining && options.preparedStatements && this.#pool.options?.pipeline === true;
    this.#answerMs = statementMs > 0 ? statementMs + NO_ANSWER_GRACE_MS : Number.POSITIVE_INFINITY;
    this.#ports = { form: (statement) => this.forms.of(statement), counted: () => void this.#roundTrips++, prepare: this.#prepare, answerMs: this.#answerMs };
    this.#connections = new Connections(this.#pool, table, options.connectTimeoutMs);
    this.#lanes = new Lanes(this.#pool, this.#connections, this.#answerMs);
    this.#sessionConfig = options.pool
      ? { ...this.#pool.options }
      : { keepAlive: true, connectionTimeoutMillis: options.connectTimeoutMs, ...options.poolConfig, connectionString: options.connectionString };
  }

  /** Which form of each statement runs: the common one, or the distributed one once the table is (forms.ts). */
  readonly forms = new Forms();

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
      const form = this.forms.of(statement);
      let failed: unknown;
      try {
        return await lease.watch(this.#answerMs, send<R>(lease.client, queryConfig(form, values, this.#prepare)));
      } catch (error) {
        failed = error;
      } finally {
        lease.release(failed);
      }
      if (attempt < MAX_ATTEMPTS && (await this.forms.again(statement, form, (failed as { code?: string }).code))) continue;
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
    return this.#pipelining && !this.forms.distributed;
  }

  /**
   * True when reads go as two statements, a slide and a select ({@link Executor.pipeline}): pipelined,
   * in one round trip, or on a distributed table one after the other, where Citus would run the
   * one-statement form (a data-modifying CTE) as three distributed steps, one an UPDATE on every shard.
   */
  get splitReads(): boolean {
    return this.#pipelining || this.forms.distributed;
  }

  /**
   * Sends every part back to back, in order, in one round trip when {@link Executor.pipelining}; else
   * (a distributed table) one after the other on one connection.
   * Pipelines issued while others are in flight join them on the same connection (see {@link Lanes}).
   * Each part runs in its own implicit transaction and settles on its own: a failed part does not fail
   * the others, and a retryable failure (deadlock) runs again alone. `alone`: on a connection no later
   * pipeline joins (see Lanes.run).
   * @returns each part's rows, or the typed error that part ended with
   */
  async pipeline(parts: readonly PipelinePart[], alone = false): Promise<Array<unknown[] | CachePostgresError>> {
    const opening = this.#gate(parts[0]?.statement.label ?? 'pipeline');
    if (opening) await opening;
    if (!this.pipelining) return this.#inTurn(parts);
    this.#roundTrips++;
    const labels = parts.map((part) => part.statement.label);
    const forms = parts.map((part) => this.forms.of(part.statement));
    const settled = await this.#lanes.run(labels, parts.map((part, i) => queryConfig(forms[i]!, part.values, true)), alone);
    return this.#retryVictims(parts, forms, settled);
  }

  /**
   * {@link Executor.pipeline} without pipelining: the parts one after the other on one connection, so a
   * disconnect() that begins meanwhile lets the whole pipeline finish (it waits for connections in use).
   * A deadlock victim runs again alone, as in a pipeline.
   */
  async #inTurn(parts: readonly PipelinePart[]): Promise<Array<unknown[] | CachePostgresError>> {
    const settled: Array<unknown[] | CachePostgresError> = [];
    const forms = parts.map((part) => this.forms.of(part.statement));
    const lease = await this.#connections.acquire(parts[0]?.statement.label ?? 'pipeline').catch((error: unknown) => error as CachePostgresError);
    if (lease instanceof Error) return parts.map(() => lease);
    let broken: unknown;
    try {
      for (const [i, part] of parts.entries()) {
        this.#roundTrips++;
        try {
          settled.push(await lease.watch(this.#answerMs, send(lease.client, queryConfig(forms[i]!, part.values, this.#prepare))));
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
    return this.#retryVictims(parts, forms, settled);
  }

  /**
   * A part chosen as a deadlock victim (or a serialization failure) runs again alone, and so does one
   * Citus refused because the table was distributed meanwhile (in its distributed form).
   */
  #retryVictims(
    parts: readonly PipelinePart[],
    forms: readonly Statement[],
    settled: ReadonlyArray<unknown[] | CachePostgresError>,
  ): Promise<Array<unknown[] | CachePostgresError>> {
    const outcomes = settled.map(async (outcome, i) => {
      const part = parts[i]!;
      if (!(outcome instanceof Error) || !(await this.forms.again(part.statement, forms[i]!, (outcome as Partial<QueryError>).sqlState))) return outcome;
      return this.#query(part.statement, part.values);
    });
    return Promise.all(outcomes.map((outcome) => outcome.catch((error: unknown) => error as CachePostgresError)));
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
    return inTransaction(lease, this.#ports, fn);
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
    return onCallerClient(client, { ...this.#ports, gate: this.#gate, table: this.#table });
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
