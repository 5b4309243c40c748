/**
 * The caches compared by `npm run bench`, behind one small interface. Peers are used the way their
 * users use them: through Keyv, with get-then-set where Keyv has no atomic counter or getOrSet.
 */
import KeyvPostgres from '@keyv/postgres';
import KeyvRedis from '@keyv/redis';
import Keyv from 'keyv';
import pg from 'pg';
import path from 'node:path';
import { pathToFileURL } from 'node:url';
import { PgStore, type PgStoreOptions } from '../src/index.js';

/** PgStore's constructor: this version's, or a baseline's (`--baseline`). */
type PgStoreClass = new (options: PgStoreOptions) => PgStore;

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

interface PgStoreTargetOptions {
  useWal?: boolean;
  poolMax: number;
  table: string;
  localCache?: PgStoreOptions['localCache'];
  maxSize?: PgStoreOptions['maxSize'];
}

function pgStoreTarget(name: string, url: string, options: PgStoreTargetOptions, Store: PgStoreClass = PgStore): Target {
  return {
    name,
    atomicIncr: true,
    stampedeSafe: true,
    async open() {
      const store = new Store({
        uri: url,
        table: options.table,
        useWal: options.useWal ?? false,
        poolMax: options.poolMax,
        localCache: options.localCache ?? false,
        ...(options.maxSize === undefined ? {} : { maxSize: options.maxSize }),
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

function extTarget(url: string, Store: PgStoreClass = PgStore, suffix = ''): Target {
  return {
    name: `store.ext (pool 10)${suffix}`,
    atomicIncr: true,
    stampedeSafe: true,
    async open() {
      const store = new Store({ uri: url, table: `bench_ext${suffix && '_base'}`, poolMax: 10 });
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
const PG_STORE_TARGETS: ReadonlyArray<readonly [string, PgStoreTargetOptions]> = [
  ['PgStore/Keyv unlogged pool 10', { poolMax: 10, table: 'bench_unlogged' }],
  ['PgStore/Keyv logged pool 10', { poolMax: 10, table: 'bench_logged', useWal: true }],
  ['PgStore/Keyv pool 1', { poolMax: 1, table: 'bench_pool1' }],
  // The opt-in in-process tier: reads served from memory between writes (see README, localCache).
  ['PgStore/Keyv + localCache', { poolMax: 10, table: 'bench_local', localCache: true }],
  // The same with the cache table's notify trigger (every writer's changes reach the tiers): its cost on writes.
  ['PgStore/Keyv + localCache notifyTrigger', { poolMax: 10, table: 'bench_local_trigger', localCache: { notifyTrigger: true } }],
  // A size cap never reached here: what its accounting triggers and LRU's read records cost every call.
  ['PgStore/Keyv + maxSize (LRU)', { poolMax: 10, table: 'bench_capped', maxSize: '1GB' }],
];

/** What a baseline target's name ends with (`--baseline`); its tables end with `_base`. */
export const BASELINE = ' (baseline)';

/** Calls made in one tick share one run of `send` (given their inputs in order, answering each in order). */
function tickBatch<I, O>(send: (inputs: I[]) => Promise<O[]>): (input: I) => Promise<O> {
  let queued: Array<{ input: I; settle: (outcome: O | Error, failed: boolean) => void }> = [];
  const flush = () => {
    const batch = queued;
    queued = [];
    send(batch.map((call) => call.input)).then(
      (outputs) => batch.forEach((call, i) => call.settle(outputs[i] as O, false)),
      (error: Error) => batch.forEach((call) => call.settle(error, true)),
    );
  };
  return (input) =>
    new Promise<O>((resolve, reject) => {
      if (queued.push({ input, settle: (outcome, failed) => (failed ? reject(outcome as Error) : resolve(outcome as O)) }) === 1) queueMicrotask(flush);
    });
}

/** The table of the ceiling target: the cache's two essential columns, nothing else. */
const CEILING_TABLE = 'bench_ceiling';

/** The ceiling targets' statements: the simplest a plain client would send (named: prepared once per connection). */
const CEILING = {
  get: { name: 'ceiling_get', text: `SELECT value FROM ${CEILING_TABLE} WHERE id = $1` },
  set: { name: 'ceiling_set', text: `INSERT INTO ${CEILING_TABLE} VALUES ($1, $2) ON CONFLICT (id) DO UPDATE SET value = EXCLUDED.value` },
  incr: {
    name: 'ceiling_incr',
    text: `INSERT INTO ${CEILING_TABLE} VALUES ($1, '1') ON CONFLICT (id) DO UPDATE
  SET value = convert_to((convert_from(${CEILING_TABLE}.value, 'UTF8')::int8 + 1)::text, 'UTF8') RETURNING value`,
  },
};

export const BENCH_TABLES = [...PG_STORE_TARGETS.map(([, options]) => options.table), 'bench_ext']
  .flatMap((table) => [table, `${table}_base`])
  .concat('bench_keyv_postgres', CEILING_TABLE);

/**
 * The PgStore targets of another version of this library: `dir` is its checkout, built (dist/esm/index.js).
 * Named as this version's with {@link BASELINE} after, on tables of their own.
 */
export async function baselineTargets(pgUrl: string, dir: string): Promise<Target[]> {
  const Store = await builtPgStore(dir);
  return [
    ...PG_STORE_TARGETS.map(([name, options]) => pgStoreTarget(name + BASELINE, pgUrl, { ...options, table: `${options.table}_base` }, Store)),
    extTarget(pgUrl, Store, BASELINE),
  ];
}

/** PgStore of the build of checkout `dir` (dist/esm/index.js). */
export async function builtPgStore(dir: string): Promise<PgStoreClass> {
  return ((await import(pathToFileURL(path.join(dir, 'dist/esm/index.js')).href)) as { PgStore: PgStoreClass }).PgStore;
}

/** @param Store this version's PgStore: from the sources (default), or from its build (`--from-dist`) */
export function targets(pgUrl: string, redisUrl: string, Store: PgStoreClass = PgStore): Target[] {
  return [
    ...PG_STORE_TARGETS.map(([name, options]) => pgStoreTarget(name, pgUrl, options, Store)),
    extTarget(pgUrl, Store),
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
      // The server's ceiling: the same rows through the simplest statements a plain client would send, one
      // named statement per call on a pool of 10 (an unlogged table of the same columns, no expiry, no
      // batching). Its server CPU per op says what our statements add; its client CPU is node-postgres' per
      // statement, which batching amortizes.
      name: 'pg, simplest statements (ceiling)',
      atomicIncr: true,
      stampedeSafe: false,
      async open() {
        const pool = new pg.Pool({ connectionString: pgUrl, max: 10 });
        await pool.query(`CREATE UNLOGGED TABLE IF NOT EXISTS ${CEILING_TABLE} (id text COLLATE "C" PRIMARY KEY, value bytea NOT NULL)`);
        const payload = new Map<string, Buffer>();
        const bytes = (value: string) => payload.get(value) ?? (payload.set(value, Buffer.from(value)), payload.get(value)!);
        return {
          get: (key) => pool.query({ ...CEILING.get, values: [key] }),
          set: (key, value) =>
            pool.query({ ...CEILING.set, values: [key, bytes(value)] }),
          incr: (key) =>
            pool.query({ ...CEILING.incr, values: [`counter:${key}`] }),
          getOrSet: async (key, factory) => {
            const { rows } = await pool.query({ ...CEILING.get, values: [key] });
            if (rows.length > 0) return rows[0];
            const value = await factory();
            await pool.query({ ...CEILING.set, values: [key, bytes(value)] });
            return value;
          },
          clear: async () => {
            await pool.query(`TRUNCATE ${CEILING_TABLE}`);
          },
          close: () => pool.end(),
        };
      },
    },
    {
      // The same simplest statements, batched as our store batches: each tick's gets in one `= ANY($1)` select,
      // its sets in one multi-row upsert, on one pipelined connection (node-postgres' pipeline mode, as ours).
      // What our statements (expiry, tags) and our batching machinery add to the server's and the client's
      // cost is the gap to this one.
      name: 'pg, simplest statements batched (ceiling)',
      atomicIncr: true,
      stampedeSafe: false,
      async open() {
        const client = new pg.Client({ connectionString: pgUrl, pipeline: true } as pg.ClientConfig);
        await client.connect();
        await client.query(`CREATE UNLOGGED TABLE IF NOT EXISTS ${CEILING_TABLE} (id text COLLATE "C" PRIMARY KEY, value bytea NOT NULL)`);
        const gets = tickBatch<string, unknown>(async (keys) => {
          const { rows } = await client.query<{ id: string; value: Buffer }>({ name: 'ceiling_get_many', text: `SELECT id, value FROM ${CEILING_TABLE} WHERE id = ANY($1::text[])`, values: [keys] });
          const found = new Map(rows.map((row) => [row.id, row.value]));
          return keys.map((key) => found.get(key));
        });
        const sets = tickBatch<[string, string], unknown>(async (writes) => {
          const last = new Map(writes); // one row per key in a statement: the last write wins, as in ours
          await client.query({
            name: 'ceiling_set_many',
            text: `INSERT INTO ${CEILING_TABLE} SELECT * FROM unnest($1::text[], $2::bytea[]) ON CONFLICT (id) DO UPDATE SET value = EXCLUDED.value`,
            values: [[...last.keys()], [...last.values()].map((value) => Buffer.from(value))],
          });
          return writes.map(() => undefined);
        });
        return {
          get: (key) => gets(key),
          set: (key, value) => sets([key, value]),
          incr: (key) =>
            client.query({ ...CEILING.incr, values: [`counter:${key}`] }),
          getOrSet: async (key, factory) => (await gets(key)) ?? (await sets([key, await factory()])),
          clear: async () => {
            await client.query(`TRUNCATE ${CEILING_TABLE}`);
          },
          close: () => client.end(),
        };
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
      // Counters as a Redis user counts: INCR (atomic, one round trip), not Keyv's get-then-set, which
      // loses updates under concurrency and would flatter any atomic counter compared with it.
      name: '@keyv/redis',
      atomicIncr: true,
      stampedeSafe: false,
      async open() {
        const store = new KeyvRedis(redisUrl, { throwOnConnectError: true, connectionTimeout: 1000 });
        const client = await store.getClient(); // rejects when no Redis answers: the target is then reported as skipped
        const keyv = new Keyv({ store, namespace: 'bench' });
        return { ...keyvOps(keyv, () => keyv.disconnect()), incr: (key) => client.incr(`bench:counter:${key}`) };
      },
    },
  ];
}
