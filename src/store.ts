import { EventEmitter, setMaxListeners } from 'node:events';
import { CachePostgresError, InvalidValueError, StoreClosedError } from './errors.js';
import { deleteInBatches } from './batch_delete.js';
import { type RowWrite, Rows } from './batching/rows.js';
import { type Counters, Observer, type PgStoreEvents } from './observer.js';
import { Executor } from './executor.js';
import { CacheExt } from './ext/index.js';
import { ALL_KEYS, prefixRange, validateKey, validateNamespace } from './keys.js';
import { type CacheLogger, type PgStoreOptions, type ResolvedOptions, resolveOptions } from './options.js';
import { type KeyvStorageCapabilities, KeyvProtocol } from './keyv_protocol.js';
import { joinScan } from './scanner.js';
import { MAX_TIME_MS } from './duration.js';
import { ensureSchema } from './schema.js';
import { buildSql, bytesOf, MAX_VALUE_BYTES, type Sql, tooLarge } from './sql.js';

/** What Keyv reads from a store's `opts`: `dialect: 'postgres'` is what makes Keyv 5 wire `keyv.iterator`. */
export interface PgStoreKeyvOptions {
  dialect: 'postgres';
  /** A description of the target without credentials (Keyv only tests it for a dialect name). */
  url: string;
  schema: string;
  table: string;
  [key: string]: unknown;
}

interface IdValueRow { id: string; b64: string }
const INFINITY = 'infinity';
/**
 * Batched statements of one kind running at once on separate connections. One keeps batches large:
 * with more, callers released at different moments form separate, smaller batches (a 90/10 get/set
 * mix from 20 callers on this 2-core machine: 45k ops/s with one, 39k with two, 26k with four).
 * Pipelined gets and sets are the exception (two halves on one connection; see Rows).
 */
const BATCHES_IN_FLIGHT = 1;

/**
 * A Keyv store adapter on the cache table shared with .NET's Microsoft.Extensions.Caching.Postgres and
 * the Python cache-postgres library.
 *
 * ```ts
 * const keyv = new Keyv({ store: new PgStore() }); // DATABASE_URL or PG* variables
 * ```
 *
 * Keyv's TTL becomes the row's absolute expiry; expired rows are invisible to every read (in SQL, not
 * only in Keyv) and are deleted in the background by the expiration scan.
 *
 * Error policy: methods reject with typed errors ({@link CachePostgresError}); Keyv turns write
 * failures into `'error'` events and `false`. Because Keyv 5 silently discards failures of `get`,
 * `get` also emits `'error'` before rejecting.
 */
export class PgStore extends EventEmitter<PgStoreEvents> {
  #opts: PgStoreKeyvOptions;
  #namespace: string | undefined;
  /** Which Keyv's contract the store follows: the Keyv that adopts it decides (keyv_protocol.ts). */
  readonly #keyv = new KeyvProtocol();

  /**
   * What Keyv's interface lacks: raw-bytes entries with sliding and absolute expiry, bulk operations,
   * tags, key patterns and counters, on the same table (keys are exact row ids, shared with .NET and Python).
   */
  readonly ext: CacheExt;

  readonly #options: ResolvedOptions;
  readonly #sql: Sql;
  readonly #exec: Executor;
  readonly #rows: Rows;
  readonly #observer: Observer;
  #ready: Promise<void> | undefined;
  #isReady = false;
  #closed = false;
  /** Aborted when disconnect() begins: waits between attempts (locks) end at once. */
  readonly #closing = new AbortController();
  /** Leaves the table's shared expiration scan (see joinScan). */
  #leaveScan: (() => Promise<void>) | undefined;

  /**
   * @param options a connection URL, an options object, or nothing (then `DATABASE_URL`, else the
   *   `PG*` variables). Validated at once.
   * @throws {InvalidOptionError} for an invalid option, naming it
   */
  constructor(options?: PgStoreOptions | string) {
    super();
    // Every lock waiter listens on it between attempts: any number of them is expected, not a leak.
    setMaxListeners(0, this.#closing.signal);
    this.#options = resolveOptions(options);
    this.#sql = buildSql(this.#options.schema, this.#options.table, this.#options.slidingWriteThreshold, this.#options.localCache !== undefined);
    this.#observer = new Observer((event, ...args) => {
      if (event === 'error') this.#background(args[0]);
      // EventEmitter's typed emit cannot follow a generic event name; the Observer's signature checks it.
      else (this.emit as (name: string, ...payload: unknown[]) => boolean)(event, ...args);
    }, `${this.#options.schema}.${this.#options.table}`, (message) => this.#warn(message));
    this.#exec = new Executor(
      this.#options,
      this.#sql.display,
      // An idle connection of the shared pool is every holder's news: those with a logger or a listener hear it,
      // and one process warning stands for those without (pools.ts), not one per store.
      (error) => this.#tell(error),
      // Calls already in progress when disconnect() began still drain: only an unready store waits here.
      (operation) => (this.#isReady ? undefined : this.#prepare(operation)),
    );
    this.#rows = new Rows(this.#exec, this.#sql, { ...this.#options, maxInFlight: BATCHES_IN_FLIGHT, observer: this.#observer });
    this.#opts = { dialect: 'postgres', url: describe(this.#options), schema: this.#options.schema, table: this.#options.table };
    this.ext = new CacheExt({
      exec: this.#exec,
      rows: this.#rows,
      observer: this.#observer,
      sql: this.#sql,
      options: this.#options,
      closing: this.#closing.signal,
      prepare: (operation) => (this.#usable() ? undefined : this.#prepare(operation)),
    });
    if (this.#options.logger) logKeyvFailures(this, this.#options.logger);
  }

  /**
   * Connects, checks the table (creating it when allowed) and starts the expiration scan: what the first
   * call would do, done now, so that a wrong URL, a missing permission or a table of another layout is an
   * error at startup instead of a miss on every Keyv `get` (Keyv turns store failures into misses).
   * Once it has resolved it resolves at once, without a round trip.
   * @returns this store
   * @throws {ConnectionError} {SchemaError} {StoreClosedError} ... the typed error of what failed
   */
  async ready(): Promise<this> {
    if (!this.#usable()) await this.#prepare('ready');
    return this;
  }

  /**
   * What Keyv 6 reads when it adopts a store: this store takes an absolute `expires` and scopes keys by
   * its namespace itself (Keyv 6 no longer prefixes them). Reading it switches the store to Keyv 6's
   * contract: keys then arrive bare and are stored as `namespace:key`, the row Keyv 5 writes for them
   * (see keyv_protocol.ts). Keyv 5 never reads it.
   */
  get capabilities(): KeyvStorageCapabilities {
    return this.#keyv.adoptedBy6();
  }

  /**
   * Read by Keyv 5 (`dialect: 'postgres'` is what makes it wire `keyv.iterator`), which reads it when it
   * adopts a store: the store then follows Keyv 5's contract, unless Keyv 6 adopted it (see
   * {@link PgStore.capabilities}). Writable: Keyv and its test suite assign it.
   */
  get opts(): PgStoreKeyvOptions {
    this.#keyv.adoptedBy5();
    return this.#opts;
  }

  set opts(value: PgStoreKeyvOptions) {
    this.#opts = value;
  }

  /** Set by Keyv: keys arrive as `namespace:key` (Keyv 5) or bare (Keyv 6), and `clear()` removes only this namespace. */
  get namespace(): string | undefined {
    return this.#namespace;
  }

  /**
   * Keyv assigns it in its constructor and on `keyv.namespace = x`. A namespace that cannot be stored
   * faithfully (a lone surrogate, NUL, not a string) throws {@link InvalidValueError} at once, so
   * `new Keyv({ store, namespace })` fails at construction. It is kept all the same, and `clear()` and
   * Keyv's `iterator()` refuse it until a valid one is assigned: Keyv's setter has already taken the new
   * namespace when the store refuses it, and a store left on the previous one would then clear a namespace
   * this Keyv no longer names (and an unnamespaced store the whole table).
   * @throws {InvalidValueError} for a lone surrogate, NUL, or a value that is not a string
   */
  set namespace(namespace: string | undefined) {
    this.#namespace = namespace;
    validateNamespace(namespace);
  }

  /** `schema.table` this store reads and writes. */
  get tableName(): string {
    return this.#sql.display;
  }

  /** Statements sent to PostgreSQL by this store so far (each one round trip). For diagnostics and tests. */
  get roundTrips(): number {
    return this.#exec.roundTrips;
  }

  /**
   * Returns the stored string, or `undefined` when missing or expired. A sliding row is extended in the
   * same statement. (Generic only to match Keyv's adapter type; the value is the string Keyv stored.)
   */
  async get<Value = string>(key: string): Promise<Value | undefined> {
    try {
      const id = this.#id(key);
      if (!this.#usable()) await this.#prepare('get');
      return (await this.#rows.getText(id)) as Value | undefined;
    } catch (error) {
      this.#report(error);
      throw error;
    }
  }

  /** Returns one entry per key, in order; `undefined` for missing or expired keys. One statement. */
  async getMany<Value = string>(keys: string[]): Promise<Array<Value | undefined>> {
    const ids = this.#ids(keys);
    if (ids.length === 0) return [];
    if (!this.#usable()) await this.#prepare('getMany');
    const found = await this.#rows.getMany(ids);
    return ids.map((id) => found.get(id)?.toString('utf8') as Value | undefined);
  }

  /**
   * Stores `value` (the string Keyv serialized) under `key`.
   * @param ttl Keyv 5: milliseconds until the entry expires, `undefined` or `0` meaning never; Keyv 6:
   *   the absolute `expires` (Unix ms), `undefined` meaning never (see {@link PgStore.capabilities})
   * @throws {InvalidKeyError} / {InvalidValueError} before anything is written
   */
  async set(key: string, value: string, ttl?: number): Promise<boolean> {
    const id = this.#id(key);
    const bytes = toBytes(value);
    if (!this.#usable()) await this.#prepare('set');
    // After the readiness gate: it reads the database's clock (clock.ts).
    const now = this.#options.clock();
    const expires = expiry(this.#keyv.ttl(ttl, now), now);
    await this.#rows.set({ id, value: bytes, text: value, expires: expires ?? INFINITY, sliding: null, absolute: expires, tags: null });
    return true;
  }

  /**
   * Stores many entries in one statement (a later duplicate key wins). Resolves to one `true` per entry.
   * (Keyv 5 types this method as `Promise<void>` yet returns its result from `keyv.setMany()`, where it
   * documents a `boolean[]`: the intersection satisfies both.)
   */
  async setMany(entries: Array<{ key: string; value: string; ttl?: number | undefined; expires?: number | undefined }>): Promise<boolean[] & void> {
    const timed = () => {
      const now = this.#options.clock();
      return entries.map((entry): RowWrite => {
        const id = this.#id(entry.key);
        // Keyv 5 passes a ttl, Keyv 6 an absolute expires.
        const expires = expiry(this.#keyv.v6 ? this.#keyv.ttl(entry.expires, now) : entry.ttl, now);
        return { id, value: toBytes(entry.value), expires: expires ?? INFINITY, sliding: null, absolute: expires, tags: null };
      });
    };
    let rows = timed();
    if (rows.length > 0) {
      // Checked at once, timed again once ready: the readiness gate reads the database's clock (clock.ts).
      if (!this.#usable()) rows = (await this.#prepare('setMany'), timed());
      await this.#rows.setMany(rows);
    }
    return entries.map(() => true) as boolean[] & void;
  }

  /** Deletes `key`; resolves to true when a live (unexpired) entry was deleted. */
  async delete(key: string): Promise<boolean> {
    const id = this.#id(key);
    if (!this.#usable()) await this.#prepare('delete');
    return this.#rows.delete(id);
  }

  /**
   * Deletes every key in one statement. Keyv 5: resolves to true when at least one live entry was
   * deleted; Keyv 6: to one boolean per key, true where a live entry was deleted. (Typed as both, as
   * each Keyv's adapter type asks.)
   */
  async deleteMany(keys: string[]): Promise<boolean & boolean[]> {
    const ids = this.#ids(keys);
    const v6 = this.#keyv.v6;
    if (ids.length === 0) return (v6 ? [] : false) as boolean & boolean[];
    if (!this.#usable()) await this.#prepare('deleteMany');
    const deleted = await this.#rows.deleteMany(ids);
    return (v6 ? ids.map((id) => deleted.has(id)) : deleted.size > 0) as boolean & boolean[];
  }

  /** The row id of a key Keyv passed (see keyv_protocol.ts), checked before anything runs. */
  #id(key: string): string {
    const id = this.#keyv.id(key, this.#namespace);
    validateKey(id);
    return id;
  }

  /** {@link PgStore.#id} of each key, all checked before anything runs. */
  #ids(keys: string[]): string[] {
    return keys.map((key) => this.#id(key));
  }

  /**
   * Deletes the entries of this store's namespace (the `namespace:` prefix as a key range, so `users`
   * never clears `users-archive` and `%` or `_` in a namespace mean themselves), or every row of the table when there is no namespace. Works in
   * batches of `deleteBatchSize` rows so no statement holds many locks for long.
   * @throws {InvalidValueError} when the namespace assigned was refused (lone surrogate, NUL): nothing is deleted
   */
  async clear(): Promise<void> {
    const namespace = this.#namespace;
    validateNamespace(namespace);
    if (!this.#usable()) await this.#prepare('clear');
    const batch = this.#options.deleteBatchSize;
    const range = namespace ? prefixRange(`${namespace}:`) : ALL_KEYS;
    await this.#rows.barrier(async () => {
      try {
        await deleteInBatches((statement, values) => this.#exec.query(statement, values), this.#sql.deleteRangeBatch, batch, () => [range.lower, range.upper, batch, this.#now()]);
      } finally {
        this.#rows.written('all');
      }
    });
  }

  /** True when `key` has a live entry. Never extends a sliding expiration. */
  async has(key: string): Promise<boolean> {
    const id = this.#id(key);
    if (!this.#usable()) await this.#prepare('has');
    return this.#rows.has(id);
  }

  /** One boolean per key, in order, from one statement. */
  async hasMany(keys: string[]): Promise<boolean[]> {
    const ids = this.#ids(keys);
    if (ids.length === 0) return [];
    if (!this.#usable()) await this.#prepare('hasMany');
    const rows = await this.#rows.ordered(ids, 'read', () => this.#exec.query<{ id: string }>(this.#sql.hasMany, [ids, this.#now()]));
    const live = new Set(rows.map((row) => row.id));
    return ids.map((id) => live.has(id));
  }

  /**
   * Yields `[key, storedString]` for the live entries of `namespace` (or of the whole table), in key
   * order, `iterationLimit` rows per query (keyset pagination: memory stays constant). Keyv 5 passes the
   * namespace and takes keys as stored (`namespace:key`); Keyv 6 passes nothing: the store's namespace
   * is iterated and its keys yielded without the prefix.
   * @throws {InvalidValueError} for a namespace with a lone surrogate or NUL, before any query
   */
  async *iterator(namespace?: string): AsyncGenerator<[string, string], void> {
    const v6 = this.#keyv.v6 && namespace === undefined;
    if (v6) namespace = this.#namespace;
    validateNamespace(namespace);
    if (!this.#usable()) await this.#prepare('iterator');
    const limit = this.#options.iterationLimit;
    const range = namespace ? prefixRange(`${namespace}:`) : ALL_KEYS;
    let after: string | undefined;
    for (;;) {
      // '' sorts below every key: the first page starts at the range's lower bound.
      const rows = await this.#exec.query<IdValueRow>(this.#sql.iterateRange, [range.lower, range.upper, this.#now(), after ?? '', limit]);
      for (const row of rows) yield [v6 ? this.#keyv.key(row.id, namespace) : row.id, bytesOf(row).toString('utf8')];
      if (rows.length < limit || this.#closed) return;
      after = rows[rows.length - 1]!.id;
    }
  }

  /**
   * Physically deletes expired rows now (those expired longer than `retainExpiredFor` ago), in batches,
   * if no other instance is doing it at this moment (then this call deletes nothing). The background
   * scan calls this. Resolves to the rows deleted.
   */
  async clearExpired(): Promise<number> {
    if (!this.#usable()) await this.#prepare('clearExpired');
    const batch = this.#options.deleteBatchSize;
    const lockName = `scan:${this.#sql.display}`;
    let total = 0;
    for (;;) {
      const [row] = await this.#exec.query<{ locked: boolean; selected: number; deleted: number }>(
        this.#sql.deleteExpiredBatch,
        [new Date(this.#options.clock() - this.#options.retainExpiredForMs).toISOString(), batch, lockName],
      );
      if (!row?.locked) break;
      total += row.deleted;
      if (row.selected < batch || this.#closed) break;
    }
    if (total > 0) this.#observer.expiredDeleted(total);
    return total;
  }

  /**
   * Counters since the store was created (hits, misses, stale serves, factory calls and errors, lock
   * waits, refreshes, expired rows deleted) and the table's rows and bytes. The row counts scan the
   * table: call it for monitoring, not per request.
   */
  async stats(): Promise<Counters & { rows: number; liveRows: number; bytes: number; localEntries: number }> {
    if (!this.#usable()) await this.#prepare('stats');
    const [row] = await this.#exec.query<{ rows: string; live: string; bytes: string }>(this.#sql.stats, [this.#now(), this.#sql.qualified]);
    return {
      ...this.#observer.counters,
      rows: Number(row!.rows),
      liveRows: Number(row!.live),
      bytes: Number(row!.bytes),
      localEntries: this.#rows.localSize,
    };
  }

  /**
   * Stops the expiration scan (waiting for a pass under way) and ends the pool if the store created
   * it. A shared pool (`pool` option) is left open. Later calls reject with {@link StoreClosedError}.
   */
  async disconnect(): Promise<void> {
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
    this.#options.databaseClock?.stop();
    await this.#leaveScan?.();
    this.#closing.abort();
    await this.#rows.close();
    // Calls made before disconnect() still in a batch are dispatched on the next tick: they count as
    // in progress, and get the executor's drain period like every statement already running.
    await new Promise((resolve) => setImmediate(resolve));
    await this.#exec.end();
    // The calls the executor just failed settle through a few promise hops: let them, so that every
    // call has settled when disconnect() resolves.
    await new Promise((resolve) => setImmediate(resolve));
  }

  #now(): string {
    return new Date(this.#options.clock()).toISOString();
  }

  /** Ready and open: the hot paths skip awaiting {@link PgStore.#prepare} (an await costs a turn of the microtask queue). */
  #usable(): boolean {
    return this.#isReady && !this.#closed;
  }

  /** First call: ensure the table (memoised per pool and table), then start the scan. Later calls: a flag check. */
  async #prepare(operation: string): Promise<void> {
    if (this.#closed) throw new StoreClosedError(operation);
    if (this.#isReady) return;
    this.#ready ??= ensureSchema(this.#exec.setup, this.#sql, { ...this.#options, notifyTrigger: this.#options.localCache?.notifyTrigger })
      .then(async (shape) => {
        // The database's clock, read before the first statement that is passed `now` (after the schema step, on
        // the connection it used: read beside it, it took a second one, left idle).
        await this.#options.databaseClock?.sync(async () => {
          const [row] = await this.#exec.setup.query<{ ms: number }>(this.#sql.clock, []);
          return Number(row?.ms);
        });
        this.#exec.distributed = shape.distributed;
        this.#isReady = true;
        this.#startScanner();
        if (!this.#closed) this.#rows.start();
      })
      .catch((error: unknown) => {
        this.#ready = undefined; // the next call tries again
        throw error;
      });
    await this.#ready;
  }

  #startScanner(): void {
    if (!this.#options.enableExpirationScan || this.#closed || this.#leaveScan) return;
    // One scan per table per pool: stores sharing a pool do not each run one.
    this.#leaveScan = joinScan(this.#exec.pool, this.#sql.qualified, {
      pass: () => this.clearExpired(),
      intervalMs: this.#options.expirationScanIntervalMs,
      onError: (error) => this.#background(error),
    });
  }

  #report(error: unknown): void {
    if (this.listenerCount('error') > 0) this.#emitError(error);
  }

  /**
   * An 'error' event that can never throw here: Keyv 6 forwards it to its own emitter, which throws when
   * the application listens to none (then the call's own rejection, or the process warning, says it).
   * @returns false when delivering it threw
   */
  #emitError(error: unknown): boolean {
    try {
      this.emit('error', asError(error));
      return true;
    } catch {
      return false;
    }
  }

  /**
   * Failures nobody awaits: to the logger, and an 'error' event when someone listens; with neither, a
   * process warning (never a crash).
   */
  #background(error: unknown): void {
    if (!this.#tell(error)) process.emitWarning(asError(error).message, { code: 'CACHE_POSTGRES_BACKGROUND_ERROR' });
  }

  /**
   * A background failure to this store's logger and 'error' listeners.
   * @returns false when it has neither; true once told, or when the failure is not news (work cut short by disconnect())
   */
  #tell(error: unknown): boolean {
    // After disconnect(), work cut short by it is not news.
    if (this.#closed && (!(error instanceof CachePostgresError) || error instanceof StoreClosedError)) return true;
    const logger = this.#options.logger;
    logger?.error(asError(error));
    const heard = this.listenerCount('error') > 0 && this.#emitError(error);
    return heard || logger !== undefined;
  }

  /** A configuration that works until it quietly does not: to the logger, else a process warning. */
  #warn(message: string): void {
    if (this.#options.logger) this.#options.logger.warn(message);
    else process.emitWarning(message, { code: 'CACHE_POSTGRES_CONFIG' });
  }
}

/** The store methods Keyv calls and whose failures it turns into `undefined` / `false`. */
const KEYV_METHODS = ['get', 'getMany', 'set', 'setMany', 'delete', 'deleteMany', 'clear', 'has', 'hasMany'] as const;

/**
 * With a logger, each of them also logs its failure (and still rejects): a Keyv user sees a broken cache in
 * the log instead of only a low hit rate. Own properties of this store, set once: nothing is added to the
 * calls of a store without a logger.
 */
function logKeyvFailures(store: PgStore, logger: CacheLogger): void {
  for (const name of KEYV_METHODS) {
    const method = store[name] as (...args: unknown[]) => Promise<unknown>;
    Object.defineProperty(store, name, {
      configurable: true,
      writable: true,
      value: (...args: unknown[]) =>
        method.apply(store, args).catch((error: unknown) => {
          logger.error(asError(error));
          throw error;
        }),
    });
  }
}

function toBytes(value: unknown): Buffer {
  if (typeof value === 'string') {
    // Buffer.from would store a lone surrogate as U+FFFD: a value must never change silently.
    if (!value.isWellFormed()) throw new InvalidValueError('value must be well-formed Unicode to be stored as UTF-8 (it contains a lone surrogate).');
    // Checked before encoding: a string too long to store is not copied first.
    if (value.length > MAX_VALUE_BYTES) throw tooLarge(Buffer.byteLength(value, 'utf8'));
    const bytes = Buffer.from(value, 'utf8');
    if (bytes.length > MAX_VALUE_BYTES) throw tooLarge(bytes.length);
    return bytes;
  }
  throw new InvalidValueError(
    `PgStore stores the strings Keyv serializes; got ${value === null ? 'null' : typeof value}. Keep Keyv's default serializer, or use store.ext for raw bytes.`,
  );
}

/**
 * Keyv's ttl (ms) to an ISO expiry, or null for "never" (Keyv uses 0/undefined for that). A negative
 * ttl is an entry expired at once, as Keyv over memory keeps it (its expiry is then in the past).
 */
function expiry(ttl: unknown, now: number): string | null {
  if (ttl === undefined || ttl === null || ttl === 0) return null;
  if (typeof ttl !== 'number' || !Number.isFinite(ttl) || now + ttl > MAX_TIME_MS || now + ttl < 0) {
    throw new InvalidValueError(
      `ttl must be a finite number of milliseconds (0 or undefined: never expires; negative: expired at once) whose expiry falls between 1970 and year 9999, got ${String(ttl)}.`,
    );
  }
  return new Date(now + ttl).toISOString();
}

function asError(error: unknown): Error {
  return error instanceof Error ? error : new Error(String(error));
}

/** A target description for Keyv's `opts.url` with the password removed. */
function describe(options: ResolvedOptions): string {
  if (options.pool) return 'postgres://(shared pool)';
  const url = options.connectionString;
  if (!url) return 'postgres://(PG* environment)';
  try {
    const parsed = new URL(url);
    if (parsed.password) parsed.password = '***';
    // libpq (and node-postgres) also take the password, and the TLS key's, as parameters.
    for (const name of ['password', 'sslpassword']) if (parsed.searchParams.has(name)) parsed.searchParams.set(name, '***');
    return parsed.toString();
  } catch {
    return 'postgres://(connection string)';
  }
}
