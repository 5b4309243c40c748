/**
 * Correct from the first call: every public method, called first on a store whose table does not exist
 * yet, works (the table is created on the way) and keeps working. The methods are listed from the API
 * objects themselves, so a method added later without a call here fails the "every method is covered"
 * test instead of being silently skipped.
 */
import { expect } from 'chai';
import Keyv from 'keyv';
import { createPgCache } from '../../src/cache_manager/index.js';
import { pgStore } from '../../src/cache_manager/v5.js';
import pg from 'pg';
import { type CacheTransaction, PgStore } from '../../src/index.js';
import type { MethodDecorator } from '../../src/ext/decorators.js';
import { dropTables, sql, testUrl, uniqueTable } from '../helpers/db.js';

type Call = (target: never) => Promise<unknown>;

/** Drains an async iterable (scan, iterator), so that its statements run. */
async function drain(iterable: AsyncIterable<unknown>): Promise<unknown[]> {
  const seen: unknown[] = [];
  for await (const item of iterable) seen.push(item);
  return seen;
}

/** Own methods of an object's class chain up to (not including) `stop`, or of a plain object. */
function methodsOf(object: object, stop: object = Object.prototype): string[] {
  const names = new Set<string>();
  if (Object.getPrototypeOf(object) === Object.prototype) {
    for (const [name, value] of Object.entries(object)) if (typeof value === 'function') names.add(name);
    return [...names].sort();
  }
  for (let proto = Object.getPrototypeOf(object); proto && proto !== stop; proto = Object.getPrototypeOf(proto)) {
    for (const name of Object.getOwnPropertyNames(proto)) {
      if (name === 'constructor') continue;
      const descriptor = Object.getOwnPropertyDescriptor(proto, name);
      if (typeof descriptor?.value === 'function') names.add(name);
    }
  }
  return [...names].sort();
}

const wrapperOptions = { key: (...args: unknown[]) => `w:${String(args[0])}`, ttl: '1m' as const };

/** A first call for each method of PgStore (inherited EventEmitter methods are not the store's API). */
const STORE_CALLS: Record<string, Call> = {
  get: (s: PgStore) => s.get('k'),
  getMany: (s: PgStore) => s.getMany(['k']),
  set: (s: PgStore) => s.set('k', 'v'),
  setMany: (s: PgStore) => s.setMany([{ key: 'k', value: 'v' }]),
  delete: (s: PgStore) => s.delete('k'),
  deleteMany: (s: PgStore) => s.deleteMany(['k']),
  clear: (s: PgStore) => s.clear(),
  has: (s: PgStore) => s.has('k'),
  hasMany: (s: PgStore) => s.hasMany(['k']),
  iterator: (s: PgStore) => drain(s.iterator('ns')),
  clearExpired: (s: PgStore) => s.clearExpired(),
  evict: (s: PgStore) => s.evict(),
  stats: (s: PgStore) => s.stats(),
  ready: (s: PgStore) => s.ready(),
  disconnect: (s: PgStore) => s.disconnect(),
};

const EXT_CALLS: Record<string, Call> = {
  get: (s: PgStore) => s.ext.get('k'),
  getString: (s: PgStore) => s.ext.getString('k'),
  set: (s: PgStore) => s.ext.set('k', 'v'),
  refresh: (s: PgStore) => s.ext.refresh('k'),
  delete: (s: PgStore) => s.ext.delete('k'),
  has: (s: PgStore) => s.ext.has('k'),
  ttl: (s: PgStore) => s.ext.ttl('k'),
  info: (s: PgStore) => s.ext.info('k'),
  getMany: (s: PgStore) => s.ext.getMany(['k']),
  setMany: (s: PgStore) => s.ext.setMany({ k: 'v' }),
  deleteMany: (s: PgStore) => s.ext.deleteMany(['k']),
  deleteTags: (s: PgStore) => s.ext.deleteTags(['t']),
  scan: (s: PgStore) => drain(s.ext.scan('k*')),
  getPattern: (s: PgStore) => s.ext.getPattern('k*'),
  deletePattern: (s: PgStore) => s.ext.deletePattern('k*'),
  incr: (s: PgStore) => s.ext.incr('n'),
  decr: (s: PgStore) => s.ext.decr('n'),
  getOrSet: (s: PgStore) => s.ext.getOrSet('k', async () => 'v'),
  lock: async (s: PgStore) => (await s.ext.lock('l', { ttl: '5s' })).release(),
  tryLock: async (s: PgStore) => (await s.ext.tryLock('l', { ttl: '5s' }))?.release(),
  withLock: (s: PgStore) => s.ext.withLock('l', async () => 1, { ttl: '5s' }),
  isLocked: (s: PgStore) => s.ext.isLocked('l'),
  cached: (s: PgStore) => s.ext.cached(async (id: string) => id, wrapperOptions)('a'),
  failover: (s: PgStore) => s.ext.failover(async (id: string) => id, { ...wrapperOptions, maxStale: '1m' })('a'),
  early: (s: PgStore) => s.ext.early(async (id: string) => id, { ...wrapperOptions, earlyTtl: '30s' })('a'),
  in: (s: PgStore) => s.ext.in(caller()).set('k', 'v'),
  // Removed again at once: a trigger left behind would delete from this test's table after it is dropped.
  invalidateOn: async (s: PgStore) => {
    await s.ext.invalidateOn({ table: APP_TABLE, tags: ['p:{id}'] });
    await s.ext.dropInvalidation({ table: APP_TABLE });
  },
  dropInvalidation: (s: PgStore) => s.ext.dropInvalidation({ table: APP_TABLE }),
  invalidations: (s: PgStore) => s.ext.invalidations(),
  dropNotifyTrigger: (s: PgStore) => s.ext.dropNotifyTrigger(),
};

/** The application table invalidateOn is tried on. */
const APP_TABLE = uniqueTable('first_app');
/** A connection of the application's (autocommit), for ext.in(); connected in the suite's before hook. */
let callerClient: pg.Client | undefined;
const caller = (): pg.Client => callerClient!;

/** Each method of ext.in(client), on a store whose table does not exist yet. */
const TX_CALLS: Record<string, Call> = {
  get: (t: CacheTransaction) => t.get('k'),
  set: (t: CacheTransaction) => t.set('k', 'v'),
  setMany: (t: CacheTransaction) => t.setMany({ k: 'v' }),
  delete: (t: CacheTransaction) => t.delete('k'),
  deleteMany: (t: CacheTransaction) => t.deleteMany(['k']),
  deleteTags: (t: CacheTransaction) => t.deleteTags(['t']),
  deletePattern: (t: CacheTransaction) => t.deletePattern('k*'),
  incr: (t: CacheTransaction) => t.incr('n'),
  decr: (t: CacheTransaction) => t.decr('n'),
  // Always refused (NotInTransactionError), on a first call too; the get after it creates the table.
  getOrSet: async (t: CacheTransaction) => {
    const refused = await t.getOrSet('k', () => 'v').then(() => undefined, (error: Error) => error);
    if (refused?.name !== 'NotInTransactionError') throw new Error(`getOrSet in a transaction was not refused: ${String(refused)}`);
    return t.get('k');
  },
};

/** The decorators, applied to a method and called (what a decorated class does). */
const DECORATOR_CALLS: Record<string, Call> = {
  cached: (s: PgStore) => decorated(s.ext.decorators.cached(wrapperOptions)),
  failover: (s: PgStore) => decorated(s.ext.decorators.failover({ ...wrapperOptions, maxStale: '1m' })),
  early: (s: PgStore) => decorated(s.ext.decorators.early({ ...wrapperOptions, earlyTtl: '30s' })),
};

function decorated(decorator: MethodDecorator): Promise<unknown> {
  const load = async (id: string) => id;
  const context = { kind: 'method', name: 'load', static: false, private: false } as unknown as ClassMethodDecoratorContext;
  return (decorator as unknown as (m: typeof load, c: ClassMethodDecoratorContext) => typeof load)(load, context)('a');
}

/** cache-manager 7 (createPgCache): the storage calls; event and identity methods touch no table. */
const CACHE_V7_CALLS: Record<string, Call> = {
  get: (c: ReturnType<typeof createPgCache>) => c.get('k'),
  mget: (c: ReturnType<typeof createPgCache>) => c.mget(['k']),
  set: (c: ReturnType<typeof createPgCache>) => c.set('k', 'v'),
  mset: (c: ReturnType<typeof createPgCache>) => c.mset([{ key: 'k', value: 'v' }]),
  del: (c: ReturnType<typeof createPgCache>) => c.del('k'),
  mdel: (c: ReturnType<typeof createPgCache>) => c.mdel(['k']),
  clear: (c: ReturnType<typeof createPgCache>) => c.clear(),
  wrap: (c: ReturnType<typeof createPgCache>) => c.wrap('k', async () => 'v'),
  ttl: (c: ReturnType<typeof createPgCache>) => c.ttl('k'),
  disconnect: (c: ReturnType<typeof createPgCache>) => c.disconnect(),
};
const CACHE_V7_NOT_STORAGE = ['on', 'off', 'cacheId'];

type V5 = Awaited<ReturnType<typeof pgStore>>;
const CACHE_V5_CALLS: Record<string, Call> = {
  get: (c: V5) => c.get('k'),
  set: (c: V5) => c.set('k', 'v'),
  del: (c: V5) => c.del('k'),
  reset: (c: V5) => c.reset(),
  mset: (c: V5) => c.mset([['k', 'v']]),
  mget: (c: V5) => c.mget('k'),
  mdel: (c: V5) => c.mdel('k'),
  keys: (c: V5) => c.keys(),
  ttl: (c: V5) => c.ttl('k'),
  disconnect: (c: V5) => c.disconnect(),
};

describe('First call on a table that does not exist yet', function () {
  this.timeout(60_000);
  const made: PgStore[] = [];
  const tables: string[] = [];

  function fresh(): PgStore {
    const table = uniqueTable('first');
    tables.push(table);
    const store = new PgStore({ uri: testUrl(), table, enableExpirationScan: false, retainExpiredFor: '1h' });
    made.push(store);
    return store;
  }

  async function tableExists(table: string): Promise<boolean> {
    const [row] = await sql<{ found: boolean }>('SELECT to_regclass($1) IS NOT NULL AS found', [`public.${table}`]);
    return row!.found;
  }

  before(async () => {
    await sql(`CREATE TABLE public.${APP_TABLE} (id int PRIMARY KEY)`);
    callerClient = new pg.Client({ connectionString: testUrl() });
    await callerClient.connect();
  });
  after(async () => {
    await callerClient?.end();
    await dropTables(APP_TABLE);
  });
  afterEach(async () => {
    await Promise.all(made.splice(0).map((store) => store.disconnect()));
    for (const table of tables.splice(0)) await dropTables(`${table}_locks`, table);
  });

  it('every method is covered: the call tables list exactly the methods of the API objects', async () => {
    const store = fresh();
    expect(methodsOf(store, Object.getPrototypeOf(PgStore.prototype)).sort()).to.deep.equal(Object.keys(STORE_CALLS).sort());
    expect(methodsOf(store.ext)).to.deep.equal(Object.keys(EXT_CALLS).sort());
    expect(methodsOf(store.ext.decorators)).to.deep.equal(Object.keys(DECORATOR_CALLS).sort());
    expect(methodsOf(store.ext.in(caller()))).to.deep.equal(Object.keys(TX_CALLS).sort());
    const v7 = createPgCache({ store });
    expect(methodsOf(v7)).to.deep.equal([...Object.keys(CACHE_V7_CALLS), ...CACHE_V7_NOT_STORAGE].sort());
    const v5 = await pgStore({ store });
    expect(methodsOf(v5)).to.deep.equal(Object.keys(CACHE_V5_CALLS).sort());
  });

  it('ext.failover whose function fails on the first call rejects with that error, not a missing table', async () => {
    const store = fresh();
    const outage = new Error('downstream is down');
    const guarded = store.ext.failover(async (_id: string): Promise<string> => Promise.reject(outage), { ...wrapperOptions, maxStale: '1m' });
    for (let i = 0; i < 2; i++) {
      const failure = await guarded('a').then(
        () => undefined,
        (error: unknown) => error,
      );
      expect(failure).to.equal(outage);
    }
  });

  const surfaces: Array<[string, Record<string, Call>, (store: PgStore) => Promise<unknown> | unknown]> = [
    ['PgStore', STORE_CALLS, (store) => store],
    ['PgStore through Keyv', { get: (k: Keyv) => k.get('k'), set: (k: Keyv) => k.set('k', 'v') }, (store) => new Keyv({ store })],
    ['store.ext', EXT_CALLS, (store) => store],
    ['store.ext.decorators', DECORATOR_CALLS, (store) => store],
    ['store.ext.in(client)', TX_CALLS, (store) => store.ext.in(caller())],
    ['cache-manager 7 (createPgCache)', CACHE_V7_CALLS, (store) => createPgCache({ store })],
    ['cache-manager 5 (pgStore)', CACHE_V5_CALLS, (store) => pgStore({ store })],
  ];
  for (const [surface, calls, open] of surfaces) {
    for (const [name, call] of Object.entries(calls)) {
      it(`${surface}: ${name} works as the first call, and again`, async () => {
        const store = fresh();
        const target = await open(store);
        await call(target as never);
        if (name === 'disconnect') return; // the store is closed now; that it resolved is the point
        expect(await tableExists(store.tableName.split('.')[1]!), 'the table was created').to.equal(true);
        await call(target as never);
      });
    }
  }
});
