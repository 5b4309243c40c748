import { type Cache, type CreateCacheOptions, createCache } from 'cache-manager';
import Keyv from 'keyv';
import type { Duration } from '../duration.js';
import type { PgStoreOptions } from '../options/index.js';
import { PgStore } from '../store/pg_store.js';

/** Options of {@link createPgCache}. */
export interface PgCacheOptions extends Omit<CreateCacheOptions, 'stores'> {
  /** The PostgreSQL tier: a PgStore to use, or its options (a URL string works too). @default new PgStore() */
  store?: PgStore | PgStoreOptions | string | undefined;
  /** Keyv namespace of the PostgreSQL tier (keys are stored as `namespace:key`). @default 'keyv' */
  namespace?: string | undefined;
  /** An in-process first tier (a Keyv, e.g. `new Keyv()` in memory) tried before PostgreSQL. */
  primary?: Keyv | undefined;
  /** Longest wait in `wrap` for another process computing the same key; then the caller computes it too. */
  lockTimeout?: Duration | undefined;
}

/** A cache-manager 7 Cache whose `wrap` is stampede-safe across processes, plus its PostgreSQL store. */
export type PgCache = Cache & { readonly pgStore: PgStore };

type Ttl<T> = number | ((value: T) => number) | undefined;
type WrapArgs<T> = [ttl?: Ttl<T> | { ttl?: Ttl<T>; refreshThreshold?: Ttl<T>; raw?: boolean }, refreshThreshold?: Ttl<T>];

/**
 * A cache-manager 7 `Cache` on PostgreSQL in one line:
 *
 * ```ts
 * const cache = createPgCache({ ttl: 60_000 });
 * const user = await cache.wrap(`user:${id}`, () => loadUser(id));
 * ```
 *
 * Everything is cache-manager's own behaviour (tiers, events, `refreshThreshold` background refresh),
 * except that the function given to `wrap` runs under the key's PostgreSQL advisory lock: across
 * every process sharing the table, one computes a missing value (or refreshes one that is about to
 * expire) and the others receive it.
 */
export function createPgCache(options: PgCacheOptions = {}): PgCache {
  const { store: given, namespace, primary, lockTimeout, ...cacheOptions } = options;
  const store = given instanceof PgStore ? given : new PgStore(given);
  const keyv = new Keyv({ store, ...(namespace === undefined ? {} : { namespace }) });
  const cache = createCache({ ...cacheOptions, stores: primary ? [primary, keyv] : [keyv] });
  const wrap = cache.wrap as <T>(key: string, fn: () => T | Promise<T>, ...args: WrapArgs<T>) => Promise<T>;

  const stampedeSafe = <T>(key: string, fn: () => T | Promise<T>, args: WrapArgs<T>) => async (): Promise<T> => {
    const [ttlOrOptions, thresholdArgument] = args;
    const asOptions = typeof ttlOrOptions === 'object' && ttlOrOptions !== null ? ttlOrOptions : undefined;
    const ttl = asOptions ? asOptions.ttl : (ttlOrOptions as Ttl<T>);
    const threshold = asOptions ? asOptions.refreshThreshold : thresholdArgument;
    const resolve = (value: T, choice: Ttl<T>, fallback: number | undefined) =>
      (typeof choice === 'function' ? choice(value) : choice) ?? fallback;
    const bytes = await store.ext.getOrSet(
      keyv.namespace && !key.startsWith(`${keyv.namespace}:`) ? `${keyv.namespace}:${key}` : key,
      async (ctx) => {
        const value = await fn();
        const ms = resolve(value, ttl, cacheOptions.ttl);
        // A negative ttl is expired at once (cache-manager over Keyv stores it past its expiry): kept for
        // a millisecond, so the callers waiting on this computation still get it. 0 or none: no expiry.
        ctx.setOptions({ absoluteExpirationRelative: ms === undefined || ms === 0 ? '36500d' : Math.max(ms, 1) });
        return String(await keyv.serialize!({ value, expires: ms && ms > 0 ? Date.now() + ms : undefined }));
      },
      {
        ...(lockTimeout === undefined ? {} : { lockTimeout, onLockTimeout: 'run' as const }),
        // A value inside its refresh threshold is what cache-manager's background refresh replaces:
        // under the lock it counts as a miss, so exactly one process refreshes it.
        isFresh: (stored) => {
          const envelope = keyv.deserialize!(stored.toString('utf8')) as { value: T; expires?: number } | undefined;
          const limit = envelope ? resolve(envelope.value, threshold, cacheOptions.refreshThreshold) : undefined;
          return typeof envelope?.expires !== 'number' || !limit || envelope.expires - Date.now() >= limit;
        },
      },
    );
    return (keyv.deserialize!(bytes.toString('utf8')) as { value: T }).value;
  };

  cache.wrap = (<T>(key: string, fn: () => T | Promise<T>, ...args: WrapArgs<T>) => {
    const given = typeof args[0] === 'object' && args[0] !== null ? args[0].ttl : args[0];
    // Nothing to share when the value is expired as soon as it is stored: cache-manager computes it.
    if (typeof given === 'number' && given < 0) return wrap(key, fn, ...args);
    return wrap(key, stampedeSafe(key, fn, args), ...args);
  }) as Cache['wrap'];
  return Object.assign(cache, { pgStore: store });
}
