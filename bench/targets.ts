/**
 * The caches compared by `npm run bench`, behind one small interface. Peers are used the way their
 * users use them: through Keyv, with get-then-set where Keyv has no atomic counter or getOrSet.
 */
import KeyvPostgres from '@keyv/postgres';
import KeyvRedis from '@keyv/redis';
import Keyv from 'keyv';
import { PgStore, type PgStoreOptions } from '../src/index.js';

export interface BenchOps {
  get(key: string): Promise<unknown>;
  set(key: string, value: string): Promise<unknown>;
  /** Adds 1; `atomic` says whether concurrent callers can lose updates. */
  incr(key: string): Promise<unknown>;
  /** Read `key`, computing it with `factory` on a miss. */
  getOrSet(key: string, factory: () => Promise<string>): Promise<unknown>;
  /** Hits the local tier answered and reads so far (targets with a local tier). */
  localStats?(): Promise<{ hits: number; reads: number }>;
  /** Removes every key the bench wrote. */
  clear(): Promise<void>;
  close(): Promise<void>;
}

export interface Target {
  name: string;
  /** True when incr is atomic (no lost updates). */
  atomicIncr: boolean;
  /** True when getOrSet is stampede-safe across processes. */
  stampedeSafe: boolean;
  /** Connects; rejects when the target cannot run here (then it is reported as skipped). */
  open(): Promise<BenchOps>;
}

/** get-then-set, the only way to count or memoize through Keyv's interface. */
function keyvOps(keyv: Keyv, close: () => Promise<void>): BenchOps {
  return {
    get: (key) => keyv.get(key),
    set: (key, value) => keyv.set(key, value),
    incr: async (key) => {
      const current = ((await keyv.get(key)) as number | undefined) ?? 0;
      await keyv.set(key, current + 1);
    },
    getOrSet: async (key, factory) => {
      const hit = await keyv.get(key);
      if (hit !== undefined) return hit;
      const value = await factory();
      await keyv.set(key, value);
      return value;
    },
    clear: () => keyv.clear(),
    close,
  };
}

function pgStoreTarget(name: string, url: string, options: { useWal?: boolean; poolMax: number; table: string; localCache?: PgStoreOptions['localCache'] }): Target {
  return {
    name,
    atomicIncr: true,
    stampedeSafe: true,
    async open() {
      const store = new PgStore({
        uri: url,
        table: options.table,
        useWal: options.useWal ?? false,
        poolMax: options.poolMax,
        localCache: options.localCache ?? false,
      });
      const keyv = new Keyv({ store, namespace: 'bench' });
      const ops = keyvOps(keyv, () => keyv.disconnect());
      return {
        ...ops,
        incr: (key) => store.ext.incr(`bench:${key}`),
        getOrSet: (key, factory) => store.ext.getOrSet(`bench:${key}`, factory, { absoluteExpirationRelative: '1h' }),
        clear: async () => {
          await store.ext.deletePattern('bench:*');
        },
        ...(options.localCache
          ? {
              localStats: async () => {
                const { localHits, hits, misses } = await store.stats();
                return { hits: localHits, reads: hits + misses };
              },
            }
          : {}),
      };
    },
  };
}

function extTarget(url: string): Target {
  return {
    name: 'store.ext (pool 10)',
    atomicIncr: true,
    stampedeSafe: true,
    async open() {
      const store = new PgStore({ uri: url, table: 'bench_ext', poolMax: 10 });
      const payload = new Map<string, Buffer>();
      return {
        get: (key) => store.ext.get(key),
        set: (key, value) => {
          let bytes = payload.get(value);
          if (!bytes) payload.set(value, (bytes = Buffer.from(value)));
          return store.ext.set(key, bytes, { absoluteExpirationRelative: '1h' });
        },
        incr: (key) => store.ext.incr(key),
        getOrSet: (key, factory) => store.ext.getOrSet(key, factory, { absoluteExpirationRelative: '1h' }),
        clear: async () => {
          await store.ext.deletePattern('*', { all: true });
        },
        close: () => store.disconnect(),
      };
    },
  };
}

/** Every table the targets write, so a run can start them fresh and vacuum them between rounds. */
export const BENCH_TABLES = ['bench_unlogged', 'bench_logged', 'bench_pool1', 'bench_local', 'bench_local_trigger', 'bench_ext', 'bench_keyv_postgres'];

export function targets(pgUrl: string, redisUrl: string): Target[] {
  return [
    pgStoreTarget('PgStore/Keyv unlogged pool 10', pgUrl, { poolMax: 10, table: 'bench_unlogged' }),
    pgStoreTarget('PgStore/Keyv logged pool 10', pgUrl, { poolMax: 10, table: 'bench_logged', useWal: true }),
    pgStoreTarget('PgStore/Keyv pool 1', pgUrl, { poolMax: 1, table: 'bench_pool1' }),
    // The opt-in in-process tier: reads served from memory between writes (see README, localCache).
    pgStoreTarget('PgStore/Keyv + localCache', pgUrl, { poolMax: 10, table: 'bench_local', localCache: true }),
    // The same with the cache table's notify trigger (every writer's changes reach the tiers): its cost on writes.
    pgStoreTarget('PgStore/Keyv + localCache notifyTrigger', pgUrl, { poolMax: 10, table: 'bench_local_trigger', localCache: { notifyTrigger: true } }),
    extTarget(pgUrl),
    {
      name: '@keyv/postgres',
      atomicIncr: false,
      stampedeSafe: false,
      async open() {
        const store = new KeyvPostgres({ uri: pgUrl, table: 'bench_keyv_postgres', useUnloggedTable: true });
        const keyv = new Keyv({ store, namespace: 'bench' });
        return keyvOps(keyv, () => keyv.disconnect());
      },
    },
    {
      // Not a cache anyone shares: Keyv's own in-process Map, the ceiling of any local tier reached through Keyv.
      name: 'Keyv in-memory Map (ceiling)',
      atomicIncr: false,
      stampedeSafe: false,
      async open() {
        const keyv = new Keyv({ namespace: 'bench' });
        return keyvOps(keyv, () => keyv.disconnect());
      },
    },
    {
      name: '@keyv/redis',
      atomicIncr: false,
      stampedeSafe: false,
      async open() {
        const store = new KeyvRedis(redisUrl, { throwOnConnectError: true, connectionTimeout: 1000 });
        await store.getClient(); // rejects when no Redis answers: the target is then reported as skipped
        const keyv = new Keyv({ store, namespace: 'bench' });
        return keyvOps(keyv, () => keyv.disconnect());
      },
    },
  ];
}
