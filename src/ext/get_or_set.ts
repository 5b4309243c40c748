import { checkEntrySize } from '../row.js';
import { isoNow, type StoreContext } from '../context.js';
import { type Duration, MAX_WAIT_MS } from '../duration.js';
import { FactoryTimeoutError, InvalidOptionError, InvalidValueError, LockTimeoutError, QueryError, isCallerError, show } from '../errors.js';
import { validateKey } from '../keys.js';
import { bytesOf } from '../sql/values.js';
import { checkRetention, getEntry, setEntry, staleEntry } from './entries.js';
import { duration, type EntryOptions, resolveEntryOptions } from './entry_options.js';
import { type EntryValue, toBytes } from './values.js';

/** Serve stale values when the factory fails (FusionCache's fail-safe, BentoCache's grace). */
export interface GraceOptions {
  /** How long after expiry a value may still be served. Rows are kept that long only with the store's `retainExpiredFor`. */
  maxStale: Duration;
  /** After a failure, serve the stale value without calling the factory again for this long. @default '10s' */
  backoff?: Duration | undefined;
}

/** Options of `getOrSet`: the entry options of `set`, plus coordination and resilience. */
export interface GetOrSetOptions extends EntryOptions {
  /**
   * Longest wait for the key's lock while another process (or a .NET or Python service) computes the
   * value. Without it, a caller waits as long as that computation takes.
   */
  lockTimeout?: Duration | undefined;
  /**
   * When `lockTimeout` passes: `'throw'` a {@link LockTimeoutError}, or `'run'` the factory without the
   * lock and store its result (the stampede protection gives way to latency).
   * @default 'throw'
   */
  onLockTimeout?: 'throw' | 'run' | undefined;
  /**
   * Decides whether a stored value may be served. A value for which it returns false is treated as
   * a miss and recomputed under the key lock (so only one process recomputes it).
   */
  isFresh?: ((value: Buffer) => boolean) | undefined;
  /** Ignore the stored value and compute a new one (under the lock). */
  forceFresh?: boolean | undefined;
  /**
   * Spread expiries: each stored `slidingExpiration` / `absoluteExpirationRelative` is multiplied by a
   * random factor in [1 - jitter, 1 + jitter], so entries written together do not expire together.
   * @default 0
   */
  jitter?: number | undefined;
  /**
   * When the computation takes longer than this and a stale value exists (see `grace`), serve the stale
   * value at once and let the computation finish (and store) in the background.
   */
  softTimeout?: Duration | undefined;
  /** Give up waiting after this long: FactoryTimeoutError (or a stale value, with `grace`). The computation goes on in the background. */
  hardTimeout?: Duration | undefined;
  /** Serve a stale value when the factory fails or times out. */
  grace?: GraceOptions | undefined;
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

interface Call {
  entry: EntryOptions;
  lockTimeoutMs: number | undefined;
  onLockTimeout: 'throw' | 'run';
  isFresh: (value: Buffer) => boolean;
  forceFresh: boolean;
  jitter: number;
  softTimeoutMs: number | undefined;
  hardTimeoutMs: number | undefined;
  grace: { maxStaleMs: number; backoffMs: number } | undefined;
}

const KNOWN_KEYS = new Set([
  'slidingExpiration', 'absoluteExpiration', 'absoluteExpirationRelative', 'tags', 'lockTimeout', 'onLockTimeout', 'isFresh',
  'forceFresh', 'jitter', 'softTimeout', 'hardTimeout', 'grace',
]);

/**
 * Stampede-proof get-or-set, in two levels. In this process, concurrent callers for a key share one
 * flight (one read, one factory call, one connection). Across processes and languages, a miss takes
 * `pg_advisory_xact_lock(hashtextextended(key, 0))`, the lock .NET's GetOrCreateAsync and Python's
 * get_or_create take, so all three serialize on the same key; the holder re-reads with `now` taken
 * after the lock, runs the factory, upserts and commits. A hit takes no lock and no transaction.
 * Around that: timeouts, grace (stale values on failure, with a backoff) and jitter.
 */
export class GetOrSet {
  readonly #context: StoreContext;
  readonly #flights = new Map<string, Promise<Buffer>>();
  /** Keys whose factory failed recently, with the time before which it is not called again (grace backoff). */
  readonly #backoff = new Map<string, number>();

  constructor(context: StoreContext) {
    this.#context = context;
  }

  async run(key: string, factory: Factory, options: GetOrSetOptions = {}): Promise<Buffer> {
    validateKey(key);
    if (typeof factory !== 'function') throw new InvalidValueError(`getOrSet needs a factory function, got ${typeof factory}.`);
    const call = this.#resolve(options ?? {});
    const flight = this.#flights.get(key);
    // Joiners get their own copy: a Buffer shared between callers could be mutated under another one.
    if (flight) return Buffer.from(await this.#join(key, flight, factory, call));
    const started = this.#fetch(key, factory, call).finally(() => this.#flights.delete(key));
    this.#flights.set(key, started);
    return started;
  }

  #resolve(options: GetOrSetOptions): Call {
    for (const name of Object.keys(options)) {
      if (!KNOWN_KEYS.has(name)) throw new InvalidOptionError(name, `unknown getOrSet option. Known: ${[...KNOWN_KEYS].join(', ')}.`);
    }
    const {
      lockTimeout, onLockTimeout = 'throw', isFresh = always, forceFresh = false, jitter = 0, softTimeout, hardTimeout, grace,
      ...entry
    } = options;
    if (onLockTimeout !== 'throw' && onLockTimeout !== 'run') {
      throw new InvalidOptionError('onLockTimeout', `must be 'throw' or 'run', got ${show(onLockTimeout)}.`);
    }
    if (typeof isFresh !== 'function') throw new InvalidOptionError('isFresh', 'must be a function of the stored value.');
    if (typeof jitter !== 'number' || !(jitter >= 0 && jitter < 1)) throw new InvalidOptionError('jitter', 'must be a number from 0 (included) to 1 (excluded).');
    if (grace !== undefined && (typeof grace !== 'object' || grace === null)) throw new InvalidOptionError('grace', 'must be { maxStale, backoff? }.');
    // Validated before any work, so a bad call never runs the factory.
    resolveEntryOptions(entry, this.#context.options.clock(), this.#context.options.defaultSlidingExpirationMs);
    const graceOptions = grace && { maxStaleMs: duration(grace.maxStale, 'grace.maxStale'), backoffMs: duration(grace.backoff ?? '10s', 'grace.backoff', MAX_WAIT_MS) };
    if (graceOptions) checkRetention(this.#context, 'getOrSet grace.maxStale', graceOptions.maxStaleMs);
    // Without grace, softTimeout serves a row of any age the store retains: with retainExpiredFor 0, only
    // until the scan reaches it. A retention the user chose bounds it well enough.
    else if (softTimeout !== undefined && this.#context.options.retainExpiredForMs === 0) {
      checkRetention(this.#context, 'getOrSet softTimeout (without grace)', Number.POSITIVE_INFINITY);
    }
    return {
      entry,
      // Waits are timers (and lockTimeout PostgreSQL's 32-bit lock_timeout): at most MAX_WAIT_MS.
      lockTimeoutMs: lockTimeout === undefined ? undefined : duration(lockTimeout, 'lockTimeout', MAX_WAIT_MS),
      onLockTimeout,
      isFresh,
      forceFresh: forceFresh === true,
      jitter,
      softTimeoutMs: softTimeout === undefined ? undefined : duration(softTimeout, 'softTimeout', MAX_WAIT_MS),
      hardTimeoutMs: hardTimeout === undefined ? undefined : duration(hardTimeout, 'hardTimeout', MAX_WAIT_MS),
      grace: graceOptions,
    };
  }

  async #fetch(key: string, factory: Factory, call: Call): Promise<Buffer> {
    if (!call.forceFresh) {
      const hit = await getEntry(this.#context, key);
      if (hit && call.isFresh(hit)) return hit;
    }
    const { observer, options } = this.#context;
    // In backoff after a failure, the factory is not called again yet (unless the caller forces it).
    if (call.grace && !call.forceFresh && (this.#backoff.get(key) ?? 0) > options.clock()) {
      const stale = await staleEntry(this.#context, key, call.grace.maxStaleMs);
      if (stale) {
        observer.staleServed(key, 'grace', stale.expiredMsAgo);
        return stale.value;
      }
    }
    const state: ComputationState = { background: false };
    const computation = this.#compute(key, factory, call, state);
    try {
      const value = await this.#withTimeouts(key, computation, call, state);
      this.#backoff.delete(key);
      return value;
    } catch (error) {
      // A caller error (a value that cannot be stored, a closed store) is a bug to report, not an outage to ride out.
      if (!call.grace || isCallerError(error)) throw error;
      const stale = await staleEntry(this.#context, key, call.grace.maxStaleMs);
      if (!stale) throw error;
      this.#backoff.set(key, options.clock() + call.grace.backoffMs);
      observer.staleServed(key, 'grace', stale.expiredMsAgo);
      return stale.value;
    }
  }

  /**
   * Waits for this process's computation of `key` (which holds or awaits the key lock), bounded by
   * the joiner's own `lockTimeout`: then, like a wait for the lock itself, it throws or runs the
   * factory without the lock, as the joiner's `onLockTimeout` says.
   */
  async #join(key: string, flight: Promise<Buffer>, factory: Factory, call: Call): Promise<Buffer> {
    const waitMs = call.lockTimeoutMs;
    if (waitMs === undefined) return flight;
    let timer: NodeJS.Timeout | undefined;
    const timedOut = Symbol('timed out');
    const outcome = await Promise.race([flight, new Promise<typeof timedOut>((resolve) => (timer = setTimeout(() => resolve(timedOut), waitMs)))]).finally(
      () => clearTimeout(timer),
    );
    if (outcome !== timedOut) return outcome;
    if (call.onLockTimeout === 'throw') throw new LockTimeoutError(key, waitMs, 'key lock');
    return this.#withoutLock(key, factory, call, { background: false });
  }

  /** `onLockTimeout: 'run'`: the factory runs without the key lock, and its result is stored. */
  async #withoutLock(key: string, factory: Factory, call: Call, state: ComputationState): Promise<Buffer> {
    const { value, options } = await this.#produce(key, factory, call, state);
    await setEntry(this.#context, key, value, options);
    return value;
  }

  /** Waits for the computation, bounded by the soft and hard timeouts. */
  async #withTimeouts(key: string, computation: Promise<Buffer>, call: Call, state: ComputationState): Promise<Buffer> {
    if (call.softTimeoutMs === undefined && call.hardTimeoutMs === undefined) return computation;
    const { observer } = this.#context;
    // A computation that loses the race goes on alone: its factory error is reported as a background
    // one (by #produce), its success as a refresh, and its rejection must not go unhandled.
    computation.then(
      () => state.background && observer.refreshed(key),
      () => {},
    );
    const timers: NodeJS.Timeout[] = [];
    const after = <T>(ms: number, outcome: () => Promise<T>) =>
      new Promise<T>((resolve, reject) => timers.push(setTimeout(() => outcome().then(resolve, reject), ms)));
    try {
      const racers: Array<Promise<Buffer>> = [computation];
      if (call.softTimeoutMs !== undefined) {
        racers.push(
          after(call.softTimeoutMs, async () => {
            const stale = await staleEntry(this.#context, key, call.grace?.maxStaleMs ?? Number.POSITIVE_INFINITY);
            if (!stale) return computation; // nothing to serve: keep waiting
            observer.staleServed(key, 'soft-timeout', stale.expiredMsAgo);
            return stale.value;
          }),
        );
      }
      if (call.hardTimeoutMs !== undefined) {
        const hard = call.hardTimeoutMs;
        racers.push(after(hard, () => Promise.reject(new FactoryTimeoutError(key, hard))));
      }
      const winner = await Promise.race(racers.map((racer, index) => racer.then((value) => ({ value, index }))));
      if (winner.index !== 0) state.background = true;
      return winner.value;
    } catch (error) {
      if (error instanceof FactoryTimeoutError) state.background = true;
      throw error;
    } finally {
      timers.forEach(clearTimeout);
    }
  }

  /** The lock path (with `lockTimeout` handling): resolves to the value served to callers. */
  async #compute(key: string, factory: Factory, call: Call, state: ComputationState): Promise<Buffer> {
    try {
      return await this.#computeUnderLock(key, factory, call, state);
    } catch (error) {
      if (!(error instanceof QueryError && error.sqlState === LOCK_NOT_AVAILABLE)) throw error;
      if (call.onLockTimeout === 'throw') throw new LockTimeoutError(key, call.lockTimeoutMs ?? 0, 'key lock', { cause: error });
      return this.#withoutLock(key, factory, call, state);
    }
  }

  #computeUnderLock(key: string, factory: Factory, call: Call, state: ComputationState): Promise<Buffer> {
    const { exec, sql, observer, rows } = this.#context;
    return exec.transaction(async (query) => {
      // The wait for the key lock is bounded by the caller's lockTimeout (or not at all), never by the
      // store's statementTimeout; the statements after it are bounded by statementTimeout again.
      const waitMs = call.lockTimeoutMs;
      const setWait = async () =>
        (await query<{ previous: string }>(sql.setWaitTimeouts, [waitMs === undefined ? '0' : `${Math.max(1, Math.ceil(waitMs))}ms`]))[0]!.previous;
      let previous = waitMs === undefined ? undefined : await setWait();
      // Try first: only a real wait is reported as one, and the common case stays one statement.
      const [tried] = await query<{ locked: boolean }>(sql.tryKeyLock, [key]);
      if (!tried?.locked) {
        previous ??= await setWait();
        const started = performance.now();
        await query(sql.keyLock, [key], waitMs === undefined ? Number.POSITIVE_INFINITY : waitMs + exec.answerTimeoutMs);
        observer.lockWait(key, performance.now() - started);
      }
      if (previous !== undefined) await query(sql.restoreTimeouts, [previous]);
      // `now` after the lock: a long wait must not shorten the new entry's life or miss a fresh hit.
      const [found] = await query<{ b64: string }>(sql.get, [key, isoNow(this.#context)]);
      const hit = found && bytesOf(found);
      if (hit && !call.forceFresh && call.isFresh(hit)) return hit;
      const { value, options } = await this.#produce(key, factory, call, state);
      const row = resolveEntryOptions(options, this.#context.options.clock(), this.#context.options.defaultSlidingExpirationMs);
      checkEntrySize(key, value, this.#context.options.capacity?.maxBytes);
      await query(sql.upsert, [key, value, row.expires, row.sliding, row.absolute, row.tags]);
      return value;
    }).finally(() => rows.written([key])); // the in-process tiers drop what the transaction replaced
  }

  /** Runs the factory with a context that may replace the entry options; applies jitter; counts it. */
  async #produce(key: string, factory: Factory, call: Call, state: ComputationState): Promise<{ value: Buffer; options: EntryOptions }> {
    const { observer } = this.#context;
    let options = call.entry;
    observer.factoryCall();
    let produced: EntryValue;
    try {
      produced = await factory({ setOptions: (chosen) => void (options = chosen) });
    } catch (error) {
      observer.factoryError(key, error, state.background);
      throw error;
    }
    return { value: toBytes(produced, 'the factory result'), options: jittered(options, call.jitter) };
  }
}

/** Whether the caller stopped waiting (a timeout won): the computation then runs in the background. */
interface ComputationState {
  background: boolean;
}

const always = () => true;

function jittered(options: EntryOptions, jitter: number): EntryOptions {
  if (jitter === 0) return options;
  const scale = (value: Duration | undefined, name: string) =>
    value === undefined ? undefined : Math.max(1000, duration(value, name) * (1 + jitter * (2 * Math.random() - 1)));
  const sliding = scale(options.slidingExpiration, 'slidingExpiration');
  const relative = scale(options.absoluteExpirationRelative, 'absoluteExpirationRelative');
  return {
    ...options,
    ...(sliding === undefined ? {} : { slidingExpiration: sliding }),
    ...(relative === undefined ? {} : { absoluteExpirationRelative: relative }),
  };
}
