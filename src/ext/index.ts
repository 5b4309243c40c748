import type { StoreContext } from '../context.js';
import { type CounterOptions, increment } from './counters.js';
import {
  deleteEntries, deleteEntry, type EntryInfo, entryInfo, getEntries, getEntry, hasEntry, refreshEntry, setEntries, setEntry,
} from './entries.js';
import { createDecorators, type Decorators } from './decorators.js';
import type { EntryOptions } from './entry_options.js';
import { type Factory, type FactoryContext, GetOrSet, type GetOrSetOptions, type GraceOptions } from './get_or_set.js';
import { type LockHandle, type LockOptions, Locks } from './locks.js';
import { type DeletePatternOptions, deleteByPattern, getByPattern, type PatternOptions, scanKeys } from './patterns.js';
import { type DeleteTagsOptions, deleteByTags } from './tags.js';
import type { EntryValue } from './values.js';
import type { CallerClient } from '../execution/executor.js';
import { CacheTransaction, checkCallerClient } from './in_transaction.js';
import { traceAs, traceMethods } from '../tracing.js';
import {
  dropInvalidation, dropNotifyTrigger, type InvalidateOnOptions, invalidateOn, type InvalidationStatus, type InvalidationTarget, listInvalidations,
} from './invalidation.js';

export { CacheTransaction };
import { type CachedOptions, type EarlyOptions, type FailoverOptions, type KeyOption, type TypedFactory, type TypedGetOrSetOptions, Wrappers } from './wrappers.js';

export type {
  CallerClient, InvalidateOnOptions, InvalidationStatus, InvalidationTarget,
  CachedOptions, Decorators, EarlyOptions, FailoverOptions, GraceOptions, KeyOption,
  CounterOptions, DeletePatternOptions, DeleteTagsOptions, EntryInfo, EntryOptions, EntryValue, Factory, FactoryContext, GetOrSetOptions,
  LockHandle, LockOptions, PatternOptions, TypedFactory, TypedGetOrSetOptions,
};

/**
 * `store.ext`: what Keyv's interface has no room for, on the same table and connections as the store.
 *
 * Keys here are the exact row ids (no Keyv namespace prefix), and values are raw bytes (strings are
 * stored as UTF-8), so an entry written here is the entry .NET's `IDistributedCache` and the Python
 * library see under the same key, and the other way round. Every method rejects with a typed error
 * ({@link CachePostgresError}) before writing anything when its input is invalid.
 */
export class CacheExt {
  readonly #context: StoreContext;
  readonly #getOrSet: GetOrSet;
  readonly #locks: Locks;
  readonly #wrappers: Wrappers;
  #decorators: Decorators | undefined;

  /** @internal Built by PgStore. */
  constructor(context: StoreContext) {
    this.#context = context;
    traceAs(this, context.observer.spanAttributes);
    this.#getOrSet = new GetOrSet(context);
    this.#locks = new Locks(context);
    this.#wrappers = new Wrappers(context, this.#getOrSet, this.#locks);
  }

  /** The value's bytes, or `undefined` when missing or expired. A sliding entry due a slide is extended before it answers. */
  get(key: string): Promise<Buffer | undefined> {
    return getEntry(this.#context, key);
  }

  /** The value decoded as UTF-8 (what .NET's `SetString` wrote), or `undefined`. */
  async getString(key: string): Promise<string | undefined> {
    return (await getEntry(this.#context, key))?.toString('utf8');
  }

  /**
   * Writes `value` (bytes as given; a string as UTF-8 without BOM) with .NET's expiry semantics: with no
   * expiry option the store's `defaultSlidingExpiration` applies; sliding never extends past the
   * absolute expiry. All columns (tags too) are replaced.
   */
  set(key: string, value: EntryValue, options?: EntryOptions): Promise<void> {
    return setEntry(this.#context, key, value, options);
  }

  /** Extends a sliding entry without reading its value (.NET's `Refresh`). Resolves to true when the entry is live. */
  refresh(key: string): Promise<boolean> {
    return refreshEntry(this.#context, key);
  }

  /** Deletes the entry; resolves to true when a live entry was deleted. */
  delete(key: string): Promise<boolean> {
    return deleteEntry(this.#context, key);
  }

  /** True when the entry is live. Does not extend it. */
  has(key: string): Promise<boolean> {
    return hasEntry(this.#context, key);
  }

  /** Milliseconds until the entry expires unless read again (`Infinity`: never), or `undefined` when missing. Does not extend it. */
  async ttl(key: string): Promise<number | undefined> {
    return (await entryInfo(this.#context, key))?.ttl;
  }

  /** Expiry details and tags of a live entry, without extending it; `undefined` when missing or expired. */
  info(key: string): Promise<EntryInfo | undefined> {
    return entryInfo(this.#context, key);
  }

  /** The live entries among `keys` (missing ones are absent from the map), in one statement. */
  getMany(keys: Iterable<string>): Promise<Map<string, Buffer>> {
    return getEntries(this.#context, keys);
  }

  /**
   * Writes many entries with the same options, all or none: one statement, or over 5,000 entries (or 1 MiB of
   * values) several in one transaction, so that a large call does not hold the process's other calls while it is
   * sent (a later duplicate key wins).
   */
  setMany(
    entries: Map<string, EntryValue> | Record<string, EntryValue> | Iterable<readonly [string, EntryValue]>,
    options?: EntryOptions,
  ): Promise<void> {
    return setEntries(this.#context, entries, options);
  }

  /** Deletes many entries, all or none (over 5,000 keys: several statements in one transaction); resolves to the number of live entries deleted. */
  deleteMany(keys: Iterable<string>): Promise<number> {
    return deleteEntries(this.#context, keys);
  }

  /**
   * Deletes entries by tag: by default those carrying ANY of `tags`; with `{ match: 'all' }` only
   * those carrying all of them. Batched; resolves to the number of live entries deleted.
   */
  deleteTags(tags: readonly string[], options?: DeleteTagsOptions): Promise<number> {
    return deleteByTags(this.#context, tags, options);
  }

  /**
   * Yields the live keys matching a glob (`user:*`, `session:??:x`; `\` escapes; `%` and `_` are
   * literal), in key order with constant memory. A literal prefix uses the primary key index.
   */
  scan(pattern: string, options?: PatternOptions & { batchSize?: number }): AsyncGenerator<string, void> {
    return scanKeys(this.#context, pattern, options);
  }

  /** Every live entry matching the pattern (extending sliding ones, as get does). Loads all matches: prefer scan() for large sets. */
  getPattern(pattern: string, options?: PatternOptions): Promise<Map<string, Buffer>> {
    return getByPattern(this.#context, pattern, options);
  }

  /** Deletes the entries matching the pattern in batches. A pattern matching every key needs `{ all: true }`. */
  deletePattern(pattern: string, options?: DeletePatternOptions): Promise<number> {
    return deleteByPattern(this.#context, pattern, options);
  }

  /**
   * Atomically adds `by` to the counter (decimal UTF-8 text, as the Python library stores it) and returns
   * the new value: a number, or a bigint past Number.MAX_SAFE_INTEGER. A missing or expired counter
   * starts from `by`, with `options` applied.
   */
  incr(key: string, by: number | bigint = 1, options?: CounterOptions): Promise<number | bigint> {
    return increment(this.#context, key, by, options);
  }

  /** `incr(key, -by, options)`. */
  decr(key: string, by: number | bigint = 1, options?: CounterOptions): Promise<number | bigint> {
    // Negated only once it is a number or a bigint: `-'1'` would turn a string into a number.
    if (typeof by !== 'number' && typeof by !== 'bigint') return increment(this.#context, key, by, options);
    return increment(this.#context, key, -by, options);
  }

  /**
   * The value at `key`, or the factory's result stored there, with at most one factory call per key
   * at a time across processes: concurrent callers in this process share one flight, and other
   * processes (and .NET's GetOrCreateAsync and Python's get_or_create) wait on the same advisory lock.
   * A hit takes no lock. A factory that throws stores nothing and rejects every waiting caller.
   * The factory receives a context whose `setOptions()` picks the entry options from the computed value
   * (adaptive TTL); `options.isFresh` can refuse a stored value, which is then recomputed under the lock.
   */
  getOrSet(key: string, factory: Factory, options?: GetOrSetOptions): Promise<Buffer>;
  /**
   * The typed form: with a `serializer` (`'json'`, `'v8'`, or your own), the factory returns any value, it
   * is stored serialized (and compressed with `compression`), and the call resolves to the value itself.
   * JSON is stored as UTF-8 text, the form .NET and Python read; `cached()` stores the same bytes.
   * `isFresh` still receives the stored bytes.
   *
   * ```ts
   * const user = await store.ext.getOrSet<User>(`user:${id}`, () => loadUser(id), { serializer: 'json', absoluteExpirationRelative: '10m' });
   * ```
   */
  getOrSet<T>(key: string, factory: TypedFactory<T>, options: TypedGetOrSetOptions): Promise<T>;
  getOrSet<T>(key: string, factory: Factory | TypedFactory<T>, options?: GetOrSetOptions | TypedGetOrSetOptions): Promise<Buffer | T> {
    if (options && 'serializer' in options && options.serializer !== undefined) {
      return this.#wrappers.getOrSetValue(key, factory as TypedFactory<T>, options);
    }
    return this.#getOrSet.run(key, factory as Factory, options);
  }

  /** Takes the lease lock `name`, waiting up to `options.wait`; see {@link LockHandle} for the fencing token. */
  lock(name: string, options?: LockOptions): Promise<LockHandle> {
    return this.#locks.lock(name, options);
  }

  /** Takes the lease lock `name` if it is free now, else resolves to `undefined`. */
  tryLock(name: string, options?: LockOptions): Promise<LockHandle | undefined> {
    return this.#locks.tryLock(name, options);
  }

  /** Runs `fn` holding the lock, renewing its lease meanwhile and releasing it afterwards (also on throw). */
  withLock<T>(name: string, fn: (lock: LockHandle) => Promise<T> | T, options?: LockOptions): Promise<T> {
    return this.#locks.withLock(name, fn, options);
  }

  /** True when someone holds a running lease on `name`. */
  isLocked(name: string): Promise<boolean> {
    return this.#locks.isLocked(name);
  }

  /**
   * Memoizes `fn` in the cache: `key` renders each call's entry key from its arguments ('user:{0}'),
   * hits take no lock, misses go through getOrSet (one computation across processes). Values go
   * through a serializer (JSON by default), optionally compressed.
   */
  cached<A extends unknown[], R>(fn: (...args: A) => R | Promise<R>, options: CachedOptions<A>): (...args: A) => Promise<R> {
    return this.#wrappers.cached(fn, options);
  }

  /**
   * Like `cached`, but when `fn` fails with one of `errors`, serves the last value, even expired, up
   * to `maxStale` (as stale: it is not stored again as fresh). Without one, the original error.
   */
  failover<A extends unknown[], R>(fn: (...args: A) => R | Promise<R>, options: FailoverOptions<A>): (...args: A) => Promise<R> {
    return this.#wrappers.failover(fn, options);
  }

  /**
   * Like `cached` with an absolute `ttl`, but once an entry is older than `earlyTtl`, callers get it
   * at once while one background refresh (one across all processes) replaces it.
   */
  early<A extends unknown[], R>(fn: (...args: A) => R | Promise<R>, options: EarlyOptions<A>): (...args: A) => Promise<R> {
    return this.#wrappers.early(fn, options);
  }

  /**
   * The cache writes of `ext` (set, setMany, delete, deleteMany, deleteTags, deletePattern, incr, decr)
   * and get, run on `client`, the connection your transaction is open on: they commit or roll back with
   * your own changes. Every process's local tier hears of them at commit, and only then. getOrSet is not
   * offered there (it rejects with NotInTransactionError). See {@link CacheTransaction}.
   *
   * ```ts
   * const client = await pool.connect();
   * await client.query('BEGIN');
   * await client.query('UPDATE products SET price = $1 WHERE id = $2', [12, 42]);
   * await store.ext.in(client).delete('product:42');
   * await client.query('COMMIT');
   * ```
   * @throws {InvalidValueError} when `client` has no `query` method, or is a pool
   */
  in(client: CallerClient): CacheTransaction {
    checkCallerClient(client);
    return new CacheTransaction(this.#context, client);
  }

  /**
   * Installs (or replaces) statement-level triggers on an application table that delete the cache
   * entries carrying the tags its written rows render, in the writing transaction: any writer, in any
   * language, psql included, then invalidates, atomically with its write. A bulk UPDATE costs one DELETE.
   *
   * ```ts
   * await store.ext.invalidateOn({ table: 'products', tags: ['product:{id}', 'products'] });
   * ```
   * @throws {InvalidValueError} for a malformed template or an unknown column; {@link SchemaError} when the table does not exist
   */
  invalidateOn(options: InvalidateOnOptions): Promise<InvalidationStatus> {
    return invalidateOn(this.#context, options);
  }

  /** Removes what {@link CacheExt.invalidateOn} installed on the table; resolves to true when something was removed. */
  dropInvalidation(target: InvalidationTarget): Promise<boolean> {
    return dropInvalidation(this.#context, target);
  }

  /** The invalidations installed for this cache table, each checked: a dropped or disabled trigger is in its `problems`. */
  invalidations(): Promise<InvalidationStatus[]> {
    return listInvalidations(this.#context);
  }

  /** Removes the cache table's notify trigger (`localCache.notifyTrigger`, which installs it); true when it was there. */
  dropNotifyTrigger(): Promise<boolean> {
    return dropNotifyTrigger(this.#context);
  }

  /** `@cached(...)`, `@failover(...)` and `@early(...)` as standard (TC39) method decorators. */
  get decorators(): Decorators {
    return (this.#decorators ??= createDecorators(this.#wrappers));
  }
}

/** Every call of `store.ext` is a span (tracing.ts); a method missing here fails at load. */
traceMethods(CacheExt.prototype, {
  get: { name: 'ext.get', keys: 'one' },
  getString: { name: 'ext.getString', keys: 'one' },
  set: { name: 'ext.set', keys: 'one' },
  refresh: { name: 'ext.refresh', keys: 'one' },
  delete: { name: 'ext.delete', keys: 'one' },
  has: { name: 'ext.has', keys: 'one' },
  ttl: { name: 'ext.ttl', keys: 'one' },
  info: { name: 'ext.info', keys: 'one' },
  getMany: { name: 'ext.getMany', keys: 'many' },
  setMany: { name: 'ext.setMany', keys: 'many' },
  deleteMany: { name: 'ext.deleteMany', keys: 'many' },
  deleteTags: { name: 'ext.deleteTags', keys: 'none' },
  scan: { name: 'ext.scan', keys: 'none' },
  getPattern: { name: 'ext.getPattern', keys: 'none' },
  deletePattern: { name: 'ext.deletePattern', keys: 'none' },
  incr: { name: 'ext.incr', keys: 'one' },
  decr: { name: 'ext.decr', keys: 'one' },
  getOrSet: { name: 'ext.getOrSet', keys: 'one' },
  lock: { name: 'ext.lock', keys: 'one' },
  tryLock: { name: 'ext.tryLock', keys: 'one' },
  withLock: { name: 'ext.withLock', keys: 'one' },
  isLocked: { name: 'ext.isLocked', keys: 'one' },
  // Each hands out something whose calls are spans: the wrapped function (wrappers.ts), the transaction's methods.
  cached: 'product',
  failover: 'product',
  early: 'product',
  in: 'product',
  invalidateOn: { name: 'ext.invalidateOn', keys: 'none' },
  dropInvalidation: { name: 'ext.dropInvalidation', keys: 'none' },
  invalidations: { name: 'ext.invalidations', keys: 'none' },
  dropNotifyTrigger: { name: 'ext.dropNotifyTrigger', keys: 'none' },
});
