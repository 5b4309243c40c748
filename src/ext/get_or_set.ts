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
  /**
   * Decides whether a stored value may be served. A value for which it returns false is treated as
   * a miss and recomputed under the key lock (so only one process recomputes it): use it for values
   * that are live but too old, or no longer valid for the caller.
   */
  isFresh?: (value: Buffer) => boolean;
}

/** Passed to a factory: lets it choose the entry options from the value it computed (adaptive TTL). */
export interface FactoryContext {
  /** Replaces the entry options used to store this computation's result. */
  setOptions(options: EntryOptions): void;
}

/** Computes a value on a miss: bytes, or a string stored as UTF-8. */
export type Factory = (context: FactoryContext) => EntryValue | Promise<EntryValue>;

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
    const { lockTimeout, onLockTimeout = 'throw', isFresh = always, ...entryOptions } = options ?? {};
    if (typeof isFresh !== 'function') throw new InvalidOptionError('isFresh', 'must be a function of the stored value.');
    const lockTimeoutMs = lockTimeout === undefined ? undefined : duration(lockTimeout, 'lockTimeout');
    if (onLockTimeout !== 'throw' && onLockTimeout !== 'run') {
      throw new InvalidOptionError('onLockTimeout', `must be 'throw' or 'run', got ${JSON.stringify(onLockTimeout)}.`);
    }
    // Validate the entry options before any work, so a bad call never runs the factory.
    resolveEntryOptions(entryOptions, this.#context.options.clock(), this.#context.options.defaultSlidingExpirationMs);

    const flight = this.#flights.get(key);
    // Joiners get their own copy: a Buffer shared between callers could be mutated under another one.
    if (flight) return Buffer.from(await flight);
    const started = this.#fetch(key, factory, { entry: entryOptions, lockTimeoutMs, onLockTimeout, isFresh }).finally(() =>
      this.#flights.delete(key),
    );
    this.#flights.set(key, started);
    return started;
  }

  async #fetch(key: string, factory: Factory, call: Call): Promise<Buffer> {
    const hit = await getEntry(this.#context, key);
    if (hit && call.isFresh(hit)) return hit;
    try {
      return await this.#computeUnderLock(key, factory, call);
    } catch (error) {
      if (!(error instanceof QueryError && error.sqlState === LOCK_NOT_AVAILABLE)) throw error;
      if (call.onLockTimeout === 'throw') throw new LockTimeoutError(key, call.lockTimeoutMs ?? 0, 'key lock', { cause: error });
      const { value, options } = await produce(factory, call.entry);
      await setEntry(this.#context, key, value, options);
      return value;
    }
  }

  #computeUnderLock(key: string, factory: Factory, call: Call): Promise<Buffer> {
    const { exec, sql } = this.#context;
    return exec.transaction(async (query) => {
      if (call.lockTimeoutMs !== undefined) await query(sql.setLockTimeout, [`${Math.max(1, Math.ceil(call.lockTimeoutMs))}ms`]);
      await query(sql.keyLock, [key]);
      // Only the wait for the key lock is bounded, not the upsert's row lock below.
      if (call.lockTimeoutMs !== undefined) await query(sql.setLockTimeout, ['0']);
      // `now` after the lock: a long wait must not shorten the new entry's life or miss a fresh hit.
      const [hit] = await query<{ value: Buffer }>(sql.get, [key, isoNow(this.#context)]);
      if (hit && call.isFresh(hit.value)) return hit.value;
      const { value, options } = await produce(factory, call.entry);
      const row = resolveEntryOptions(options, this.#context.options.clock(), this.#context.options.defaultSlidingExpirationMs);
      await query(sql.upsert, [key, value, row.expires, row.sliding, row.absolute, row.tags]);
      return value;
    });
  }
}

interface Call {
  entry: EntryOptions;
  lockTimeoutMs: number | undefined;
  onLockTimeout: 'throw' | 'run';
  isFresh: (value: Buffer) => boolean;
}

const always = () => true;

/** Runs the factory with a context that may replace the entry options; checks the result and the options. */
async function produce(factory: Factory, entry: EntryOptions): Promise<{ value: Buffer; options: EntryOptions }> {
  let options = entry;
  const value = toBytes(await factory({ setOptions: (chosen) => void (options = chosen) }), 'the factory result');
  return { value, options };
}
