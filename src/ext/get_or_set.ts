import { isoNow, type StoreContext } from '../context.js';
import type { Duration } from '../duration.js';
import { InvalidOptionError, InvalidValueError, LockTimeoutError, QueryError } from '../errors.js';
import { validateKey } from '../keys.js';
import { getEntry, setEntry } from './entries.js';
import { duration, type EntryOptions, resolveEntryOptions } from './entry_options.js';
import { type EntryValue, toBytes } from './values.js';

/** Options of `getOrSet`: the entry options of `set`, plus how long to wait for another computation. */
export interface GetOrSetOptions extends EntryOptions {
  /**
   * Longest wait for the key's lock while another process (or a .NET or Python service) computes the
   * value. Without it, a caller waits as long as that computation takes.
   */
  lockTimeout?: Duration;
  /**
   * When `lockTimeout` passes: `'throw'` a {@link LockTimeoutError}, or `'run'` the factory without the
   * lock and store its result (the stampede protection gives way to latency).
   * @default 'throw'
   */
  onLockTimeout?: 'throw' | 'run';
}

/** Computes a value on a miss: bytes, or a string stored as UTF-8. */
export type Factory = () => EntryValue | Promise<EntryValue>;

/** SQLSTATE lock_not_available: lock_timeout elapsed. */
const LOCK_NOT_AVAILABLE = '55P03';

/**
 * Stampede-proof get-or-set, in two levels. In this process, concurrent callers for a key share one
 * flight (one read, one factory call, one connection). Across processes and languages, a miss takes
 * `pg_advisory_xact_lock(hashtextextended(key, 0))`, the lock .NET's GetOrCreateAsync and Python's
 * get_or_create take, so all three serialize on the same key; the holder re-reads with `now` taken
 * after the lock, runs the factory, upserts and commits. A hit takes no lock and no transaction.
 */
export class GetOrSet {
  readonly #context: StoreContext;
  readonly #flights = new Map<string, Promise<Buffer>>();

  constructor(context: StoreContext) {
    this.#context = context;
  }

  async run(key: string, factory: Factory, options: GetOrSetOptions = {}): Promise<Buffer> {
    validateKey(key);
    if (typeof factory !== 'function') throw new InvalidValueError(`getOrSet needs a factory function, got ${typeof factory}.`);
    const { lockTimeout, onLockTimeout = 'throw', ...entryOptions } = options ?? {};
    const lockTimeoutMs = lockTimeout === undefined ? undefined : duration(lockTimeout, 'lockTimeout');
    if (onLockTimeout !== 'throw' && onLockTimeout !== 'run') {
      throw new InvalidOptionError('onLockTimeout', `must be 'throw' or 'run', got ${JSON.stringify(onLockTimeout)}.`);
    }
    // Validate the entry options before any work, so a bad call never runs the factory.
    resolveEntryOptions(entryOptions, this.#context.options.clock(), this.#context.options.defaultSlidingExpirationMs);

    const flight = this.#flights.get(key);
    // Joiners get their own copy: a Buffer shared between callers could be mutated under another one.
    if (flight) return Buffer.from(await flight);
    const started = this.#fetch(key, factory, entryOptions, lockTimeoutMs, onLockTimeout).finally(() => this.#flights.delete(key));
    this.#flights.set(key, started);
    return started;
  }

  async #fetch(key: string, factory: Factory, options: EntryOptions, lockTimeoutMs: number | undefined, onTimeout: 'throw' | 'run'): Promise<Buffer> {
    const hit = await getEntry(this.#context, key);
    if (hit) return hit;
    try {
      return await this.#computeUnderLock(key, factory, options, lockTimeoutMs);
    } catch (error) {
      if (!(error instanceof QueryError && error.sqlState === LOCK_NOT_AVAILABLE)) throw error;
      if (onTimeout === 'throw') throw new LockTimeoutError(key, lockTimeoutMs ?? 0, 'key lock', { cause: error });
      const value = toBytes(await factory(), 'the factory result');
      await setEntry(this.#context, key, value, options);
      return value;
    }
  }

  #computeUnderLock(key: string, factory: Factory, options: EntryOptions, lockTimeoutMs: number | undefined): Promise<Buffer> {
    const { exec, sql } = this.#context;
    return exec.transaction(async (query) => {
      if (lockTimeoutMs !== undefined) await query(sql.setLockTimeout, [`${Math.max(1, Math.ceil(lockTimeoutMs))}ms`]);
      await query(sql.keyLock, [key]);
      // Only the wait for the key lock is bounded, not the upsert's row lock below.
      if (lockTimeoutMs !== undefined) await query(sql.setLockTimeout, ['0']);
      // `now` after the lock: a long wait must not shorten the new entry's life or miss a fresh hit.
      const [hit] = await query<{ value: Buffer }>(sql.get, [key, isoNow(this.#context)]);
      if (hit) return hit.value;
      const value = toBytes(await factory(), 'the factory result');
      const row = resolveEntryOptions(options, this.#context.options.clock(), this.#context.options.defaultSlidingExpirationMs);
      await query(sql.upsert, [key, value, row.expires, row.sliding, row.absolute, row.tags]);
      return value;
    });
  }
}
