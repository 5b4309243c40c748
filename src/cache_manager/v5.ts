import { InvalidValueError, show } from '../errors.js';
import type { PgStoreOptions } from '../options/index.js';
import { PgStore } from '../store/pg_store.js';

/** Options of {@link pgStore}: PgStore's, plus what cache-manager 5 passes to a store factory. */
export interface PgStoreV5Config extends PgStoreOptions {
  /** Default time-to-live in milliseconds (cache-manager 5's `ttl`); 0 or none: entries never expire. */
  ttl?: number | undefined;
  /** Prefix of every key this store writes; `reset()` and `keys()` then only touch keys with it. */
  prefix?: string | undefined;
  /** Use this PgStore instead of creating one. */
  store?: PgStore | undefined;
  /** cache-manager 5 options, accepted and left to cache-manager. */
  refreshThreshold?: number | undefined;
  isCacheable?: ((value: unknown) => boolean) | undefined;
  onBackgroundRefreshError?: ((error: unknown) => void) | undefined;
}

/**
 * The cache-manager 5 `Store` interface on PostgreSQL. Values are stored as JSON text (as the
 * cache-manager 5 Redis store does), under `prefix + key` with no Keyv envelope.
 */
export interface PgStoreV5 {
  readonly name: 'postgres';
  /** The underlying PgStore (for `ext`, `disconnect()`, ...). */
  readonly store: PgStore;
  get<T>(key: string): Promise<T | undefined>;
  /** `ttl` in milliseconds; without it the config's `ttl`; 0: never expires. */
  set<T>(key: string, data: T, ttl?: number): Promise<void>;
  del(key: string): Promise<void>;
  /** Deletes every key with the prefix, or the whole table when there is no prefix. */
  reset(): Promise<void>;
  mset(entries: Array<[string, unknown]>, ttl?: number): Promise<void>;
  mget(...keys: string[]): Promise<unknown[]>;
  mdel(...keys: string[]): Promise<void>;
  /** Keys matching a glob (`*`, `?`), without the prefix. */
  keys(pattern?: string): Promise<string[]>;
  /** Milliseconds left; -1 when the entry never expires, -2 when it is missing (Redis' PTTL convention). */
  ttl(key: string): Promise<number>;
  disconnect(): Promise<void>;
}

const V5_ONLY = ['ttl', 'prefix', 'store', 'refreshThreshold', 'isCacheable', 'onBackgroundRefreshError'] as const;

/**
 * A cache-manager 5 store factory: `const cache = await caching(pgStore, { ttl: 60_000 })`.
 * The connection options are PgStore's (`uri`, `table`, ...); `new PgStore()` defaults apply.
 */
export async function pgStore(config: PgStoreV5Config = {}): Promise<PgStoreV5> {
  const storeOptions: Record<string, unknown> = { ...config };
  for (const key of V5_ONLY) delete storeOptions[key];
  const store = config.store ?? new PgStore(storeOptions as PgStoreOptions);
  // This adapter calls the store as Keyv 5 does (a relative ttl): reading `opts` is how Keyv 5 adopts a store
  // (see PgStore.capabilities), so a project with Keyv 6 installed does not read the ttl as an absolute expires.
  void store.opts;
  const prefix = config.prefix ?? '';
  const defaultTtl = config.ttl;
  const id = (key: string) => prefix + key;
  const encode = (data: unknown) => {
    const text = JSON.stringify(data);
    if (text === undefined) throw new InvalidValueError(`cache-manager 5 values must be JSON-serializable; got ${typeof data}.`);
    return text;
  };
  const decode = <T>(key: string, text: string | undefined): T | undefined => {
    if (text === undefined) return undefined;
    try {
      return JSON.parse(text) as T;
    } catch (error) {
      throw new InvalidValueError(`The value at ${show(key)} is not JSON (written by another writer than this store?); cache-manager 5 values are JSON text.`, { cause: error });
    }
  };
  /** Milliseconds as cache-manager 5 means them: 0 or none, no expiry; negative, expired at once. */
  const ttlOf = (ttl: number | undefined) => {
    const ms = ttl ?? defaultTtl;
    if (ms !== undefined && (typeof ms !== 'number' || Number.isNaN(ms))) {
      throw new InvalidValueError(`ttl must be a number of milliseconds (0: no expiry), got ${String(ms)}.`);
    }
    return ms === 0 ? undefined : ms;
  };
  const escapedPrefix = prefix.replace(/[\\*?]/g, '\\$&');

  return {
    name: 'postgres',
    store,
    get: async <T>(key: string) => decode<T>(id(key), await store.get<string>(id(key))),
    set: async (key, data, ttl) => {
      await store.set(id(key), encode(data), ttlOf(ttl));
    },
    del: async (key) => {
      await store.delete(id(key));
    },
    reset: async () => {
      if (prefix) await store.ext.deletePattern(`${escapedPrefix}*`);
      else await store.ext.deletePattern('*', { all: true });
    },
    mset: async (entries, ttl) => {
      await store.setMany(entries.map(([key, data]) => ({ key: id(key), value: encode(data), ttl: ttlOf(ttl) })));
    },
    mget: async (...keys) => {
      const ids = keys.map(id);
      return (await store.getMany<string>(ids)).map((text, i) => decode(ids[i]!, text));
    },
    mdel: async (...keys) => {
      await store.deleteMany(keys.map(id));
    },
    keys: async (pattern = '*') => {
      const found: string[] = [];
      for await (const key of store.ext.scan(escapedPrefix + pattern)) found.push(key.slice(prefix.length));
      return found;
    },
    ttl: async (key) => {
      const left = await store.ext.ttl(id(key));
      if (left === undefined) return -2;
      return left === Number.POSITIVE_INFINITY ? -1 : left;
    },
    disconnect: () => store.disconnect(),
  };
}
