import { randomUUID } from 'node:crypto';
import { isoNow, type StoreContext } from '../context.js';
import { traceFunction } from '../tracing.js';
import { type Duration, MAX_WAIT_MS } from '../duration.js';
import { InvalidOptionError, InvalidValueError, LockNotHeldError, LockTimeoutError } from '../errors.js';
import { validateKey } from '../keys.js';
import { ensureLocksTable } from '../execution/schema.js';
import { checkOptions, duration } from './entry_options.js';

/** Options of `lock`, `tryLock` and `withLock`. */
export interface LockOptions {
  /** How long the lease lasts unless extended; a crashed holder's lock frees itself after it. @default '30s' */
  ttl?: Duration | undefined;
  /** `lock` and `withLock`: longest wait for the lock before a LockTimeoutError. @default no limit */
  wait?: Duration | undefined;
  /** Pause between two attempts while waiting (randomised by ±50% so waiters spread out). @default '50ms' */
  retryInterval?: Duration | undefined;
}

/**
 * A held lease lock. `token` is a fencing token: it strictly increases for each new holder of the
 * name, so a resource that remembers the largest token it has seen can refuse a write from a holder
 * whose lease ran out while it was paused (the case a lease alone cannot prevent).
 */
export interface LockHandle {
  readonly name: string;
  readonly token: bigint;
  /** Aborted (with a LockNotHeldError as reason) when `withLock` fails to renew the lease. */
  readonly signal: AbortSignal;
  /** Ends the lease. Rejects with LockNotHeldError when this holder no longer holds it. */
  release(): Promise<void>;
  /** Sets the lease to end `ttl` from now (default: the lock's ttl). Rejects with LockNotHeldError when no longer held. */
  extend(ttl?: Duration): Promise<void>;
  /** True while this holder's lease is running (asks the database). */
  held(): Promise<boolean>;
}

interface ResolvedLockOptions {
  ttlMs: number;
  waitMs: number;
  retryMs: number;
}

/** How locks are taken, given up and checked: see the store's `lockProtocol`. Timestamps as ISO strings. */
interface LockBackend {
  /** The new holder's fencing token, or undefined when the name is held. */
  acquire(name: string, owner: string, leaseEnd: string, now: string): Promise<bigint | undefined>;
  /** False when the holder no longer held the lease. */
  release(name: string, owner: string, token: bigint, now: string): Promise<boolean>;
  extend(name: string, owner: string, token: bigint, now: string, leaseEnd: string): Promise<boolean>;
  held(name: string, owner: string, token: bigint, now: string): Promise<boolean>;
  isLocked(name: string, now: string): Promise<boolean>;
}

/** `'lease-table'`: leases in `<table>_locks`, never a cache row, never seen by Keyv, patterns or bulk reads. */
function leaseTable(context: StoreContext): LockBackend {
  const { exec, sql } = context;
  const changed = async (statement: typeof sql.lockRelease, values: unknown[]) => (await exec.query(statement, values)).length > 0;
  return {
    async acquire(name, owner, leaseEnd, now) {
      const [row] = await exec.query<{ token: string }>(sql.lockAcquire, [name, owner, leaseEnd, now]);
      return row ? BigInt(row.token) : undefined;
    },
    release: (name, owner, token, now) => changed(sql.lockRelease, [name, owner, token.toString(), now]),
    extend: (name, owner, token, now, leaseEnd) => changed(sql.lockExtend, [name, owner, token.toString(), now, leaseEnd]),
    held: (name, owner, token, now) => changed(sql.lockHeld, [name, owner, token.toString(), now]),
    isLocked: (name, now) => changed(sql.lockIsLocked, [name, now]),
  };
}

/**
 * `'python'`: the Python library's row locks (`set_lock`, `unlock`, `is_locked`): a row of the cache table
 * under the lock's name whose value is the owner's token. Each acquisition also takes the name's lease and
 * next fencing token in `<table>_locks` (owner `python:<token>`, the same lease end), in the same
 * transaction: Node holders keep strictly increasing tokens (a Python holder has none), a running
 * 'lease-table' lease keeps it out, and 'lease-table' stores see its lease. Release and extend act only
 * while that lease runs, and only on the lock row it wrote (no sliding, absolute or tags, its lease's end
 * as expiry): a row written under the name after the lease ran out is someone else's. Each transaction
 * locks the lock table's row, then the cache row, so none deadlocks another. The rows are cache rows: the
 * local tier is told of each change.
 */
function pythonRows(context: StoreContext): LockBackend {
  const { exec, sql, rows } = context;
  const bytes = (owner: string) => Buffer.from(owner, 'utf8');
  const touched = <T>(name: string, result: T): T => {
    rows.written([name]);
    return result;
  };
  return {
    async acquire(name, owner, leaseEnd, now) {
      let token: bigint | undefined;
      try {
        token = await exec.transaction(async (query) => {
          const [lease] = await query<{ token: string }>(sql.rowLockToken, [name, owner, leaseEnd, now]);
          if (!lease) return undefined; // a 'lease-table' holder's lease runs: nothing was written
          const [taken] = await query(sql.rowLockAcquire, [name, bytes(owner), leaseEnd, now]);
          if (!taken) throw new RowHeld(); // the row is someone's: the lease taken above is rolled back
          return BigInt(lease.token);
        });
      } catch (error) {
        if (error instanceof RowHeld) return undefined;
        throw error;
      }
      return token === undefined ? undefined : touched(name, token);
    },
    async release(name, owner, token, now) {
      const released = await exec.transaction(async (query) => {
        const [lease] = await query<{ lease_end: string }>(sql.rowLockLeaseForUpdate, [name, owner, token.toString(), now]);
        if (!lease) return false;
        const deleted = (await query(sql.rowLockRelease, [name, bytes(owner), lease.lease_end])).length > 0;
        // Held or not (a deleted row ended it), the lease in the lock table ends here.
        await query(sql.rowLockSetLease, [name, owner, token.toString(), '-infinity']);
        return deleted;
      });
      return touched(name, released);
    },
    async extend(name, owner, token, now, leaseEnd) {
      const extended = await exec.transaction(async (query) => {
        const [lease] = await query<{ lease_end: string }>(sql.rowLockLeaseForUpdate, [name, owner, token.toString(), now]);
        if (!lease) return false;
        const moved = (await query(sql.rowLockExtend, [name, bytes(owner), lease.lease_end, leaseEnd])).length > 0;
        await query(sql.rowLockSetLease, [name, owner, token.toString(), moved ? leaseEnd : '-infinity']);
        return moved;
      });
      return touched(name, extended);
    },
    async held(name, owner, token, now) {
      const [lease] = await exec.query<{ lease_end: string }>(sql.rowLockLease, [name, owner, token.toString(), now]);
      return lease !== undefined && (await exec.query(sql.rowLockHeld, [name, bytes(owner), lease.lease_end])).length > 0;
    },
    async isLocked(name, now) {
      const [row, lease] = await Promise.all([exec.query(sql.rowLockIsLocked, [name, now]), exec.query(sql.rowLockLeased, [name, now])]);
      return row.length > 0 || lease.length > 0;
    },
  };
}

/** Rolls back an acquisition that found the cache row held; never leaves this module. */
class RowHeld extends Error {}

/** The locks of `store.ext`, by the store's `lockProtocol`. */
export class Locks {
  readonly #context: StoreContext;
  readonly #backend: LockBackend;

  constructor(context: StoreContext) {
    this.#context = context;
    this.#backend = context.options.lockProtocol === 'python' ? pythonRows(context) : leaseTable(context);
  }

  /** Takes the lock if it is free now; `undefined` when someone holds it. */
  async tryLock(name: string, options: LockOptions = {}): Promise<LockHandle | undefined> {
    validateKey(name);
    return this.#attempt(name, resolve(options, 0), randomUUID());
  }

  /** Takes the lock, waiting up to `wait` (polling every `retryInterval`). */
  async lock(name: string, options: LockOptions = {}): Promise<LockHandle> {
    validateKey(name);
    const resolved = resolve(options, Number.POSITIVE_INFINITY);
    const owner = randomUUID();
    const started = performance.now();
    for (;;) {
      const handle = await this.#attempt(name, resolved, owner);
      if (handle) return handle;
      const waited = performance.now() - started;
      if (waited >= resolved.waitMs) throw new LockTimeoutError(name, waited);
      const between = resolved.retryMs * (0.5 + Math.random());
      await pause(Math.min(between, resolved.waitMs - waited), this.#context.closing);
    }
  }

  /**
   * Runs `fn` holding the lock: waits for it like `lock`, renews the lease every third of its ttl
   * while `fn` runs, and releases it afterwards, also when `fn` throws. If a renewal finds the lease
   * lost, `lock.signal` is aborted; if `fn` then completes, the LockNotHeldError is thrown instead of
   * its result, since mutual exclusion was not guaranteed.
   */
  async withLock<T>(name: string, fn: (lock: LockHandle) => Promise<T> | T, options: LockOptions = {}): Promise<T> {
    if (typeof fn !== 'function') throw new InvalidValueError(`withLock needs a function, got ${typeof fn}.`);
    const handle = await this.lock(name, options);
    const ttlMs = resolve(options, 0).ttlMs;
    const renewal = setInterval(() => {
      handle.extend().catch(() => {});
    }, Math.max(1, ttlMs / 3));
    renewal.unref();
    let result: T;
    try {
      result = await fn(handle);
    } catch (error) {
      clearInterval(renewal);
      await handle.release().catch(() => {});
      throw error;
    }
    clearInterval(renewal);
    await handle.release();
    return result;
  }

  /**
   * True when someone holds a running lease on the name (with `lockProtocol: 'python'`: any live row under it,
   * or a running 'lease-table' lease).
   */
  async isLocked(name: string): Promise<boolean> {
    validateKey(name);
    await this.#ready();
    return this.#backend.isLocked(name, isoNow(this.#context));
  }

  async #ready(): Promise<void> {
    const preparing = this.#context.prepare('lock');
    if (preparing) await preparing;
    await ensureLocksTable(this.#context.exec, this.#context.sql, this.#context.options);
  }

  async #attempt(name: string, options: ResolvedLockOptions, owner: string): Promise<LockHandle | undefined> {
    await this.#ready();
    const backend = this.#backend;
    const context = this.#context;
    const clock = context.options.clock;
    const now = clock();
    const token = await backend.acquire(name, owner, new Date(now + options.ttlMs).toISOString(), new Date(now).toISOString());
    if (token === undefined) return undefined;
    const controller = new AbortController();
    const check = (done: boolean, operation: string) => {
      if (done) return;
      const error = new LockNotHeldError(name, token, operation);
      if (!controller.signal.aborted) controller.abort(error);
      throw error;
    };
    // The handle's calls are spans too (tracing.ts), named by the lock.
    const spans = context.observer.spanAttributes;
    const traced = <F extends (...args: never[]) => Promise<unknown>>(operation: string, fn: F) =>
      traceFunction(fn, { name: `ext.lock.${operation}`, keys: 'none' }, { ...spans, 'cache_postgres.key': name });
    return {
      name,
      token,
      signal: controller.signal,
      release: traced('release', async () => check(await backend.release(name, owner, token, isoNow(context)), 'release')),
      extend: traced('extend', async (ttl?: Duration) => {
        const ms = ttl === undefined ? options.ttlMs : positive(ttl, 'ttl');
        check(await backend.extend(name, owner, token, isoNow(context), new Date(clock() + ms).toISOString()), 'extend');
      }),
      held: traced('held', () => backend.held(name, owner, token, isoNow(context))),
    };
  }
}

/** Sleeps `ms`, or less when `signal` aborts (the next attempt then finds the store closed). */
function pause(ms: number, signal: AbortSignal): Promise<void> {
  if (signal.aborted) return Promise.resolve();
  return new Promise((resolvePause) => {
    const done = () => {
      clearTimeout(timer);
      signal.removeEventListener('abort', done);
      resolvePause();
    };
    const timer = setTimeout(done, ms);
    signal.addEventListener('abort', done, { once: true });
  });
}

function resolve(options: LockOptions, defaultWait: number): ResolvedLockOptions {
  if (typeof options !== 'object' || options === null) throw new InvalidOptionError('options', 'lock options must be an object.');
  checkOptions(options, ['ttl', 'wait', 'retryInterval'], 'lock');
  // Each is a timer (a lease's renewal runs at a third of its ttl): at most MAX_WAIT_MS.
  return {
    ttlMs: options.ttl === undefined ? 30_000 : positive(options.ttl, 'ttl'),
    waitMs: options.wait === undefined ? defaultWait : duration(options.wait, 'wait', MAX_WAIT_MS),
    retryMs: options.retryInterval === undefined ? 50 : positive(options.retryInterval, 'retryInterval'),
  };
}

function positive(value: Duration, option: string): number {
  const ms = duration(value, option, MAX_WAIT_MS);
  if (ms <= 0) throw new InvalidOptionError(option, 'must be greater than zero.');
  return ms;
}
