import { setMaxListeners } from 'node:events';
import { Rows } from '../batching/rows.js';
import type { StoreContext } from '../context.js';
import { StoreClosedError } from '../errors.js';
import { Executor } from '../execution/executor.js';
import { RowStatements } from '../execution/row_statements.js';
import { TableStatements } from '../execution/table_statements.js';
import { LocalTier } from '../local/local_tier.js';
import { Observer } from '../observer.js';
import type { ResolvedOptions } from '../options/index.js';
import { hostname } from 'node:os';
import { CapacityStatements, type CapacityRecord, ensureCapacity } from '../execution/capacity.js';
import { capacitySql } from '../sql/capacity.js';
import { type EvictionResult, Sweeper, Touches } from './capacity.js';
import { joinScan } from './scanner.js';
import { ensureSchema, isDistributedNow } from '../execution/schema.js';
import { buildSql, type Sql } from '../sql/index.js';
import type { Reporter } from './reporter.js';

/**
 * Batched statements of one kind running at once on separate connections. One keeps batches large:
 * with more, callers released at different moments form separate, smaller batches (a 90/10 get/set
 * mix from 20 callers on this 2-core machine: 45k ops/s with one, 39k with two, 26k with four).
 * Pipelined gets and sets are the exception (two halves on one connection; see TickBatches).
 */
const BATCHES_IN_FLIGHT = 1;

/**
 * One store's layers, built once, top to bottom: the rows in issue order and batched per tick (batching/),
 * the local tier in front of them (local/), the statements that run them (execution/), their SQL (sql/).
 * It also owns the two things every call passes whatever its method: the readiness gate (the table checked,
 * or created, before any statement reaches it; see {@link StoreCore.prepare}) and the closing sequence.
 * PgStore and store.ext reach the layers only through {@link StoreCore.context}.
 */
export class StoreCore {
  readonly options: ResolvedOptions;
  readonly sql: Sql;
  readonly observer: Observer;
  readonly exec: Executor;
  readonly rows: Rows;
  /** Range deletes, iteration, the expiry sweep and the table's counts. */
  readonly table: TableStatements;
  /** What `store.ext` is built on. */
  readonly context: StoreContext;
  readonly #reporter: Reporter;
  /** What a pass of the expiration scan runs (the store's public clearExpired). */
  readonly #scanPass: () => Promise<number>;
  #ready: Promise<void> | undefined;
  #isReady = false;
  #closed = false;
  /** Aborted when disconnect() begins: waits between attempts (locks) end at once. */
  readonly #closing = new AbortController();
  /** Leaves the table's shared expiration scan (see joinScan). */
  #leaveScan: (() => Promise<void>) | undefined;
  /** With a cap: its statements, the sweeper's pass and LRU's record of reads. */
  readonly #capacity: { statements: CapacityStatements; sweeper: Sweeper; touches: Touches | undefined; gauges: () => void } | undefined;
  #leaveSweep: (() => Promise<void>) | undefined;

  /** @param scanPass what a pass of the expiration scan runs (PgStore's clearExpired, which an application may wrap) */
  constructor(options: ResolvedOptions, reporter: Reporter, scanPass: () => Promise<number>) {
    this.options = options;
    this.#reporter = reporter;
    this.#scanPass = scanPass;
    // Every lock waiter listens on it between attempts: any number of them is expected, not a leak.
    setMaxListeners(0, this.#closing.signal);
    const sql = (this.sql = buildSql(options.schema, options.table, options.slidingWriteThreshold, options.localCache !== undefined, options.capacity !== undefined));
    const observer = (this.observer = new Observer(
      (event, ...args) => reporter.event(event, ...args),
      `${options.schema}.${options.table}`,
      (message) => reporter.warn(message),
    ));
    this.exec = new Executor(
      options,
      sql.display,
      // An idle connection of the shared pool is every holder's news: those with a logger or a listener hear it,
      // and one process warning stands for those without (pools.ts), not one per store.
      (error) => reporter.tell(error),
      // Calls already in progress when disconnect() began still drain: only an unready store waits here.
      (operation) => (this.#isReady ? undefined : this.prepare(operation)),
    );
    const statements = new RowStatements(this.exec, sql, options.clock, (error) => observer.error(error));
    const front = options.localCache
      ? new LocalTier(
          {
            notify: (payload) => statements.notify(payload),
            touch: (keys, at) => statements.slide(keys, at),
            listen: (handlers) => statements.listen(handlers),
            observer,
            clock: options.clock,
            slidingWriteThreshold: options.slidingWriteThreshold,
          },
          options.localCache,
        )
      : undefined;
    this.rows = new Rows(statements, { ...options, maxInFlight: BATCHES_IN_FLIGHT, observer, front, maxEntryBytes: options.capacity?.maxBytes });
    this.table = new TableStatements(this.exec, sql, options.clock);
    const cap = options.capacity;
    if (cap) {
      const statements = new CapacityStatements(this.exec, capacitySql(sql), sql.display);
      const sweepOptions = { capacity: cap, clock: options.clock, retainExpiredForMs: options.retainExpiredForMs, deleteBatchSize: options.deleteBatchSize };
      const touches = cap.policy === 'lru' ? new Touches(statements, cap.resolutionMs, options.clock, (error) => reporter.background(error)) : undefined;
      if (touches) observer.onHit((key) => touches.read(key));
      const sweeper = new Sweeper(statements, this.table, sweepOptions, observer, () => this.#closed);
      this.#capacity = { statements, sweeper, touches, gauges: observer.usageGauges() };
    }
    this.context = {
      exec: this.exec,
      rows: this.rows,
      observer,
      sql,
      options,
      closing: this.#closing.signal,
      prepare: (operation) => (this.usable() ? undefined : this.prepare(operation)),
    };
  }

  /** True once disconnect() began. */
  get closed(): boolean {
    return this.#closed;
  }

  /** Ready and open: the hot paths skip awaiting {@link StoreCore.prepare} (an await costs a turn of the microtask queue). */
  usable(): boolean {
    return this.#isReady && !this.#closed;
  }

  /** First call: ensure the table (memoised per pool and table), then start the scan. Later calls: a flag check. */
  async prepare(operation: string): Promise<void> {
    if (this.#closed) throw new StoreClosedError(operation);
    if (this.#isReady) return;
    const options = this.options;
    this.#ready ??= ensureSchema(this.exec.setup, this.sql, { ...options, notifyTrigger: options.localCache?.notifyTrigger })
      .then(async (shape) => {
        // The database's clock, read before the first statement that is passed `now` (after the schema step, on
        // the connection it used: read beside it, it took a second one, left idle).
        await options.databaseClock?.sync(async () => {
          const [row] = await this.exec.setup.query<{ ms: number }>(this.sql.clock, []);
          return Number(row?.ms);
        });
        this.exec.forms.watch(shape.distributed, () => isDistributedNow(this.exec.setup, this.sql));
        await this.#ensureCapacity(shape.distributed);
        this.#isReady = true;
        this.#startScanner();
        if (!this.#closed) this.rows.start();
      })
      .catch((error: unknown) => {
        this.#ready = undefined; // the next call tries again
        throw error;
      });
    await this.#ready;
  }

  /**
   * Physically deletes expired rows now (those expired longer than `retainExpiredFor` ago), in batches,
   * unless another instance is doing it. Resolves to the rows deleted.
   */
  async clearExpired(): Promise<number> {
    if (!this.usable()) await this.prepare('clearExpired');
    const options = this.options;
    const total = await this.table.deleteExpired(() => options.clock() - options.retainExpiredForMs, options.deleteBatchSize, () => this.#closed);
    if (total > 0) this.observer.expiredDeleted(total);
    return total;
  }

  /**
   * One pass of the cap's sweeper now (see Sweeper.pass): what it evicted, nothing when the table is under its cap
   * or another process's sweeper is at work.
   */
  async evict(): Promise<EvictionResult> {
    if (!this.usable()) await this.prepare('evict');
    return this.#capacity ? this.#capacity.sweeper.pass() : { rows: 0, bytes: 0 };
  }

  /** The table's usage, cap and eviction record, when this store has a cap (else null). */
  async capacity(): Promise<CapacityRecord | null> {
    if (!this.usable()) await this.prepare('stats');
    return (await this.#capacity?.statements.snapshot()) ?? null;
  }

  /** Installs the cap's column, index, tables and triggers (when missing) and writes this store's cap in the table. */
  async #ensureCapacity(distributed: boolean): Promise<void> {
    const cap = this.options.capacity;
    if (!cap) return;
    const { replaced, owner } = await ensureCapacity(this.exec.setup, this.sql, capacitySql(this.sql), cap, {
      createIfNotExists: this.options.createIfNotExists,
      distributed,
      who: `pid ${process.pid} on ${hostname()}`,
    });
    if (!owner) this.#capacity?.sweeper.notOwner();
    if (replaced) {
      const show = (c: { maxBytes: number | null; maxEntries: number | null; policy: string }) =>
        `maxSize ${c.maxBytes ?? 'none'}, maxEntries ${c.maxEntries ?? 'none'}, eviction ${c.policy}`;
      this.observer.warnOnce(
        `The cap of ${this.sql.display} was ${show(replaced)}; this store replaced it with ${show(cap)}. A table has one cap, the last one a store started with: give every store of the table the same.`,
      );
    }
  }

  /** Closes every layer, top down; later calls reject with StoreClosedError. */
  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    // The connections it closes do not keep Node running (unref'd, so a process that never disconnects
    // still exits): the process must stay until they are closed, or `await disconnect()` never returns.
    const keepAlive = setInterval(() => {}, 60_000);
    try {
      await this.#close();
    } finally {
      clearInterval(keepAlive);
    }
  }

  async #close(): Promise<void> {
    this.options.databaseClock?.stop();
    await this.#leaveScan?.();
    await this.#leaveSweep?.();
    await this.#capacity?.sweeper.close();
    await this.#capacity?.touches?.close();
    this.#capacity?.gauges();
    this.#closing.abort();
    await this.rows.close();
    // Calls made before disconnect() still in a batch are dispatched on the next tick: they count as
    // in progress, and get the executor's drain period like every statement already running.
    await new Promise((resolve) => setImmediate(resolve));
    await this.exec.end();
    // The calls the executor just failed settle through a few promise hops: let them, so that every
    // call has settled when disconnect() resolves.
    await new Promise((resolve) => setImmediate(resolve));
  }

  #startScanner(): void {
    this.#startSweeper();
    if (!this.options.enableExpirationScan || this.#closed || this.#leaveScan) return;
    // One scan per table per pool: stores sharing a pool do not each run one.
    this.#leaveScan = joinScan(this.exec.pool, this.sql.qualified, {
      pass: this.#scanPass,
      intervalMs: this.options.expirationScanIntervalMs,
      onError: (error) => this.#reporter.background(error),
    });
  }

  /** The cap's sweeper: one pass per interval per pool and table (shared like the scan), one at a time across processes. */
  #startSweeper(): void {
    const capacity = this.#capacity;
    if (!capacity || this.#closed || this.#leaveSweep) return;
    const intervalMs = this.options.capacity!.intervalMs;
    this.#leaveSweep = joinScan(this.exec.pool, `${this.sql.qualified}:cap`, {
      pass: async () => (await capacity.sweeper.pass()).rows,
      // Read before each wait: shorter while the writes outrun the interval.
      get intervalMs() {
        return capacity.sweeper.waitMs(intervalMs);
      },
      onError: (error) => this.#reporter.background(error),
    }, true);
  }
}
