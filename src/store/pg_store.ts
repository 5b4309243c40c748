import type { RowWrite } from '../row.js';
import type { Counters } from '../observer.js';
import { CacheExt } from '../ext/index.js';
import { ALL_KEYS, prefixRange, validateNamespace } from '../keys.js';
import { type PgStoreOptions, resolveOptions } from '../options/index.js';
import { StoreCore } from './core.js';
import { KeyvAdapter, keyvContract, keyvNamespace, rowId, rowIds } from './keyv_adapter.js';
import { databaseOf, describe, expiry, logKeyvFailures, toBytes } from './keyv_values.js';
import { Reporter } from './reporter.js';
import { traceAs, traceMethods } from '../tracing.js';
import type { EventEmitter } from 'node:events';
import { forEachFor } from '../in_turns.js';
import type { TableStats } from '../execution/table_statements.js';

/** `stats().capacity`: the table's cap as stored in it, what it holds (exact), and what its sweepers evicted. */
export interface CapacityStats {
  /** The table's byte cap (keys and values), or null. */
  readonly maxSize: number | null;
  readonly maxEntries: number | null;
  readonly eviction: 'lru' | 'fifo';
  /** Bytes of the table's entries (keys and values, expired rows not yet swept included), counted exactly by its triggers. */
  readonly usedBytes: number;
  readonly usedEntries: number;
  /** Entries and bytes evicted by every store's sweeper since the cap was installed. */
  readonly evictedRows: number;
  readonly evictedBytes: number;
  /** The last pass that evicted anything, by any store. */
  readonly lastEviction: { readonly at: Date; readonly rows: number; readonly bytes: number } | null;
}

export type { PgStoreKeyvOptions } from './keyv_adapter.js';

const INFINITY = 'infinity';
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
export class PgStore extends KeyvAdapter {
  /**
   * What Keyv's interface lacks: raw-bytes entries with sliding and absolute expiry, bulk operations,
   * tags, key patterns and counters, on the same table (keys are exact row ids, shared with .NET and Python).
   */
  readonly ext: CacheExt;

  /** The layers below and the gate every call passes (see StoreCore). */
  readonly #core: StoreCore;
  /** Where failures nobody awaits go: logger, 'error' listeners, else a process warning. */
  readonly #reporter: Reporter;

  /**
   * @param options a connection URL, an options object, or nothing (then `DATABASE_URL`, else the
   *   `PG*` variables). Validated at once.
   * @throws {InvalidOptionError} for an invalid option, naming it
   */
  constructor(options?: PgStoreOptions | string) {
    const resolved = resolveOptions(options);
    super({ dialect: 'postgres', url: describe(resolved), schema: resolved.schema, table: resolved.table });
    this.#reporter = new Reporter(this, resolved.logger, () => this.#core?.closed ?? false);
    this.#core = new StoreCore(resolved, this.#reporter, () => this.clearExpired());
    this.#core.observer.inDatabase(databaseOf(resolved));
    traceAs(this, this.#core.observer.spanAttributes);
    this.ext = new CacheExt(this.#core.context);
    if (resolved.logger) logKeyvFailures(this, resolved.logger);
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
    if (!this.#core.usable()) await this.#core.prepare('ready');
    return this;
  }

  /** `schema.table` this store reads and writes. */
  get tableName(): string {
    return this.#core.sql.display;
  }

  /** Statements sent to PostgreSQL by this store so far (each one round trip). For diagnostics and tests. */
  get roundTrips(): number {
    return this.#core.exec.roundTrips;
  }

  /**
   * Returns the stored string, or `undefined` when missing or expired. A sliding row is extended in the
   * same statement. (Generic only to match Keyv's adapter type; the value is the string Keyv stored.)
   */
  async get<Value = string>(key: string): Promise<Value | undefined> {
    try {
      const id = rowId(this, key);
      if (!this.#core.usable()) await this.#core.prepare('get');
      return (await this.#core.rows.getText(id)) as Value | undefined;
    } catch (error) {
      this.#reporter.report(error);
      throw error;
    }
  }

  /** Returns one entry per key, in order; `undefined` for missing or expired keys. One statement. */
  async getMany<Value = string>(keys: string[]): Promise<Array<Value | undefined>> {
    const ids = rowIds(this, keys);
    if (ids.length === 0) return [];
    if (!this.#core.usable()) await this.#core.prepare('getMany');
    const found = await this.#core.rows.getMany(ids);
    const values: Array<Value | undefined> = [];
    // Decoded in turns for a large read (in_turns.ts), as its rows were.
    await forEachFor(ids.length)(ids, (id) => void values.push(found.get(id)?.toString('utf8') as Value | undefined));
    return values;
  }

  /**
   * Stores `value` (the string Keyv serialized) under `key`.
   * @param ttl Keyv 5: milliseconds until the entry expires, `undefined` or `0` meaning never; Keyv 6:
   *   the absolute `expires` (Unix ms), `undefined` meaning never (see {@link PgStore.capabilities})
   * @throws {InvalidKeyError} / {InvalidValueError} before anything is written
   */
  async set(key: string, value: string, ttl?: number): Promise<boolean> {
    const id = rowId(this, key);
    const bytes = toBytes(value);
    if (!this.#core.usable()) await this.#core.prepare('set');
    // After the readiness gate: it reads the database's clock (options/clock.ts).
    const now = this.#core.options.clock();
    const expires = expiry(keyvContract(this).ttl(ttl, now), now);
    await this.#core.rows.set({ id, value: bytes, text: value, expires: expires ?? INFINITY, sliding: null, absolute: expires, tags: null });
    return true;
  }

  /**
   * Stores many entries in one statement, or over 5,000 entries (or 1 MiB of values) several in one transaction:
   * all or none either way (a later duplicate key wins). Resolves to one `true` per entry.
   * (Keyv 5 types this method as `Promise<void>` yet returns its result from `keyv.setMany()`, where it
   * documents a `boolean[]`: the intersection satisfies both.)
   */
  async setMany(entries: Array<{ key: string; value: string; ttl?: number | undefined; expires?: number | undefined }>): Promise<boolean[] & void> {
    const timed = () => {
      const now = this.#core.options.clock();
      return entries.map((entry): RowWrite => {
        const id = rowId(this, entry.key);
        // Keyv 5 passes a ttl, Keyv 6 an absolute expires.
        const expires = expiry(keyvContract(this).v6 ? keyvContract(this).ttl(entry.expires, now) : entry.ttl, now);
        return { id, value: toBytes(entry.value), expires: expires ?? INFINITY, sliding: null, absolute: expires, tags: null };
      });
    };
    let rows = timed();
    if (rows.length > 0) {
      // Checked at once, timed again once ready: the readiness gate reads the database's clock (options/clock.ts).
      if (!this.#core.usable()) rows = (await this.#core.prepare('setMany'), timed());
      await this.#core.rows.setMany(rows);
    }
    return entries.map(() => true) as boolean[] & void;
  }

  /** Deletes `key`; resolves to true when a live (unexpired) entry was deleted. */
  async delete(key: string): Promise<boolean> {
    const id = rowId(this, key);
    if (!this.#core.usable()) await this.#core.prepare('delete');
    return this.#core.rows.delete(id);
  }

  /**
   * Deletes every key in one statement. Keyv 5: resolves to true when at least one live entry was
   * deleted; Keyv 6: to one boolean per key, true where a live entry was deleted. (Typed as both, as
   * each Keyv's adapter type asks.)
   */
  async deleteMany(keys: string[]): Promise<boolean & boolean[]> {
    const ids = rowIds(this, keys);
    const v6 = keyvContract(this).v6;
    if (ids.length === 0) return (v6 ? [] : false) as boolean & boolean[];
    if (!this.#core.usable()) await this.#core.prepare('deleteMany');
    const deleted = await this.#core.rows.deleteMany(ids);
    return (v6 ? ids.map((id) => deleted.has(id)) : deleted.size > 0) as boolean & boolean[];
  }

  /**
   * Deletes the entries of this store's namespace (the `namespace:` prefix as a key range, so `users`
   * never clears `users-archive` and `%` or `_` in a namespace mean themselves), or every row of the table when there is no namespace. Works in
   * batches of `deleteBatchSize` rows so no statement holds many locks for long.
   * @throws {InvalidValueError} when the namespace assigned was refused (lone surrogate, NUL): nothing is deleted
   */
  async clear(): Promise<void> {
    const namespace = keyvNamespace(this);
    validateNamespace(namespace);
    if (!this.#core.usable()) await this.#core.prepare('clear');
    const range = namespace ? prefixRange(`${namespace}:`) : ALL_KEYS;
    const { rows, table, options } = this.#core;
    await rows.barrier(async () => {
      try {
        await table.deleteRange(range, options.deleteBatchSize);
      } finally {
        rows.written('all');
      }
    });
  }

  /** True when `key` has a live entry. Never extends a sliding expiration. */
  async has(key: string): Promise<boolean> {
    const id = rowId(this, key);
    if (!this.#core.usable()) await this.#core.prepare('has');
    return this.#core.rows.has(id);
  }

  /** One boolean per key, in order, from one statement. */
  async hasMany(keys: string[]): Promise<boolean[]> {
    const ids = rowIds(this, keys);
    if (ids.length === 0) return [];
    if (!this.#core.usable()) await this.#core.prepare('hasMany');
    const live = await this.#core.rows.hasMany(ids);
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
    const v6 = keyvContract(this).v6 && namespace === undefined;
    if (v6) namespace = keyvNamespace(this);
    validateNamespace(namespace);
    if (!this.#core.usable()) await this.#core.prepare('iterator');
    const range = namespace ? prefixRange(`${namespace}:`) : ALL_KEYS;
    for await (const [id, value] of this.#core.table.entries(range, this.#core.options.iterationLimit, () => this.#core.closed)) {
      yield [v6 ? keyvContract(this).key(id, namespace) : id, value];
    }
  }

  /**
   * Physically deletes expired rows now (those expired longer than `retainExpiredFor` ago), in batches,
   * if no other instance is doing it at this moment (then this call deletes nothing). The background
   * scan calls this. Resolves to the rows deleted.
   */
  async clearExpired(): Promise<number> {
    return this.#core.clearExpired();
  }

  /**
   * Counters since the store was created (hits, misses, stale serves, factory calls and errors, lock
   * waits, refreshes, expired rows deleted, entries evicted) and the table's rows, sizes and dead rows; with a cap
   * (`maxSize`, `maxEntries`), `capacity`: the table's exact usage, its cap and the sweepers' eviction record. The
   * row counts scan the table: call it for monitoring, not per request.
   */
  async stats(): Promise<Counters & TableStats & { localEntries: number; capacity: CapacityStats | null }> {
    if (!this.#core.usable()) await this.#core.prepare('stats');
    const table = await this.#core.table.stats();
    const capacity = await this.#core.capacity();
    return {
      ...this.#core.observer.counters,
      ...table,
      localEntries: this.#core.rows.localSize,
      capacity: capacity && {
        maxSize: capacity.maxBytes,
        maxEntries: capacity.maxEntries,
        eviction: capacity.policy,
        usedBytes: capacity.bytes,
        usedEntries: capacity.entries,
        evictedRows: capacity.evictedRows,
        evictedBytes: capacity.evictedBytes,
        lastEviction: capacity.lastEviction,
      },
    };
  }

  /**
   * Runs a pass of the cap's sweeper now, as the background one does every `evictionInterval`: when the table is
   * over its cap, evicts down to 95% of it. Resolves to what it evicted (nothing without a cap, under it, or while
   * another process's sweeper is at work).
   */
  async evict(): Promise<{ rows: number; bytes: number }> {
    return this.#core.evict();
  }

  /**
   * Stops the expiration scan (waiting for a pass under way) and ends the pool if the store created
   * it. A shared pool (`pool` option) is left open. Later calls reject with {@link StoreClosedError}.
   */
  async disconnect(): Promise<void> {
    return this.#core.close();
  }
}


/** Every call of a store is a span (tracing.ts); a method missing here fails at load. */
traceMethods<PgStore, EventEmitter>(PgStore.prototype, {
  ready: { name: 'ready', keys: 'none' },
  get: { name: 'get', keys: 'one' },
  getMany: { name: 'getMany', keys: 'many' },
  set: { name: 'set', keys: 'one' },
  setMany: { name: 'setMany', keys: 'many' },
  delete: { name: 'delete', keys: 'one' },
  deleteMany: { name: 'deleteMany', keys: 'many' },
  clear: { name: 'clear', keys: 'none' },
  has: { name: 'has', keys: 'one' },
  hasMany: { name: 'hasMany', keys: 'many' },
  iterator: { name: 'iterator', keys: 'none' },
  clearExpired: { name: 'clearExpired', keys: 'none' },
  stats: { name: 'stats', keys: 'none' },
  evict: { name: 'evict', keys: 'none' },
  disconnect: { name: 'disconnect', keys: 'none' },
});
traceMethods<KeyvAdapter, EventEmitter>(KeyvAdapter.prototype, {}); // accessors only: a method added there fails at load
