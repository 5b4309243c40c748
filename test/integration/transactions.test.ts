import { expect } from 'chai';
import pg from 'pg';
import { CacheTransaction, ConnectionError, InvalidValueError, NotACounterError, NotInTransactionError, PgStore, type PgStoreOptions, UnreadableResultError } from '../../src/index.js';
import { manualClock, rejects } from '../helpers/assert.js';
import { dropTables, sql, testDistributed, testUrl, uniqueTable, waitFor } from '../helpers/db.js';
import { useCacheTable } from '../helpers/fixture.js';
import { fromMemory, tieredStore } from '../helpers/local-tier.js';
import { within } from '../helpers/settle.js';
import { startWorker } from '../helpers/worker-process.js';

describe('ext.in(client): cache writes in the caller\'s transaction', function () {
  this.timeout(60_000);
  const fx = useCacheTable('cp_tx');
  const data = uniqueTable('cp_tx_products');
  const own: PgStore[] = [];
  const tiered = (options: Omit<PgStoreOptions, 'table'> = {}) => tieredStore(fx.table, own, options);
  let client: pg.Client;

  before(() => sql(`CREATE TABLE public.${data} (id int PRIMARY KEY, price int NOT NULL)`));
  beforeEach(async () => {
    await sql(`TRUNCATE public.${data}`);
    await sql(`INSERT INTO public.${data} VALUES (1, 10)`);
    client = new pg.Client({ connectionString: testUrl() });
    await client.connect();
  });
  afterEach(async () => {
    await client.end();
    await Promise.all(own.splice(0).map((store) => store.disconnect()));
  });
  after(() => dropTables(data));



  const committed = async (key: string) => (await fx.row(key))?.value.toString();
  const price = async () => (await sql<{ price: number }>(`SELECT price FROM public.${data} WHERE id = 1`))[0]!.price;

  it('commits every write with the data, and none of them is visible to others before', async () => {
    const store = fx.make();
    await store.ext.setMany({ gone: 'x', alsoGone: 'y', tagged: 't', 'p:1': '1', 'p:2': '2' }, { absoluteExpirationRelative: '1h' });
    await store.ext.set('tagged', 't', { absoluteExpirationRelative: '1h', tags: ['t1'] });
    await client.query('BEGIN');
    await client.query(`UPDATE public.${data} SET price = 12 WHERE id = 1`);
    const tx = store.ext.in(client);
    expect(tx).to.be.instanceOf(CacheTransaction);
    await tx.set('product:1', '{"price":12}', { absoluteExpirationRelative: '1h' });
    await tx.setMany([['a', 'A'], ['b', 'B']], { slidingExpiration: '10m' });
    expect(await tx.delete('gone')).to.equal(true);
    expect(await tx.deleteMany(['alsoGone', 'never'])).to.equal(1);
    expect(await tx.deleteTags(['t1'])).to.equal(1);
    expect(await tx.deletePattern('p:*')).to.equal(2);
    expect(await tx.incr('hits', 5)).to.equal(5);
    expect(await tx.decr('hits', 2)).to.equal(3);
    // The transaction sees its own writes; nobody else does yet.
    expect((await tx.get('product:1'))!.toString()).to.equal('{"price":12}');
    expect(await committed('product:1')).to.equal(undefined);
    expect(await store.ext.getString('gone')).to.equal('x');
    expect(await store.ext.has('p:1')).to.equal(true);
    await client.query('COMMIT');
    expect(await price()).to.equal(12);
    expect(await store.ext.getString('product:1')).to.equal('{"price":12}');
    expect(await store.ext.getMany(['a', 'b', 'gone', 'alsoGone', 'tagged', 'p:1', 'p:2'])).to.have.keys('a', 'b');
    expect(await store.ext.getString('hits')).to.equal('3');
    expect((await store.ext.info('a'))!.slidingExpiration).to.equal(600_000);
  });

  it('rolls every write back with the data', async () => {
    const store = fx.make();
    await store.ext.set('product:1', 'old', { absoluteExpirationRelative: '1h', tags: ['products'] });
    await client.query('BEGIN');
    await client.query(`UPDATE public.${data} SET price = 99 WHERE id = 1`);
    const tx = store.ext.in(client);
    await tx.set('product:1', 'new');
    await tx.set('other', 'new');
    await tx.incr('n');
    await tx.deleteTags(['products']);
    await client.query('ROLLBACK');
    expect(await price()).to.equal(10);
    expect(await store.ext.getString('product:1')).to.equal('old');
    expect(await fx.ids()).to.deep.equal(['product:1']);
  });

  it('follows savepoints: a rolled-back savepoint undoes the cache writes made after it, and only those', async () => {
    const store = fx.make();
    await client.query('BEGIN');
    const tx = store.ext.in(client);
    await tx.set('before', '1', { absoluteExpirationRelative: '1h' });
    await client.query('SAVEPOINT s1');
    await tx.set('after', '2', { absoluteExpirationRelative: '1h' });
    await tx.delete('before');
    await client.query('ROLLBACK TO SAVEPOINT s1');
    await client.query('COMMIT');
    expect(await fx.ids()).to.deep.equal(['before']);
  });

  it('local tiers of every store, this one included, drop the key when the transaction commits and only then', async () => {
    const writer = await tiered();
    const watcher = await tiered();
    await writer.ext.set('product:1', 'v0', { absoluteExpirationRelative: '1h' });
    for (const store of [writer, watcher]) await waitFor(async () => (await fromMemory(store, 'product:1')).fromMemory, 5000, 'the tier to hold v0');

    await client.query('BEGIN');
    await writer.ext.in(client).set('product:1', 'v1', { absoluteExpirationRelative: '1h' });
    // A read of this process while the write is uncommitted gets the committed value, from memory or not,
    // and nothing here keeps the uncommitted one.
    expect(await writer.ext.getString('product:1')).to.equal('v0');
    expect(await watcher.ext.getString('product:1')).to.equal('v0');
    // A sentinel committed on another connection after the uncommitted write: once the tiers have heard
    // it, they would have heard a notice sent before it, had there been one; they still hold v0.
    await writer.ext.set('sentinel', 's0', { absoluteExpirationRelative: '1h' });
    await waitFor(async () => (await fromMemory(watcher, 'sentinel')).value === 's0', 5000, 'the watcher to hold the sentinel');
    const other = new pg.Client({ connectionString: testUrl() });
    await other.connect();
    try {
      await writer.ext.in(other).set('sentinel', 's1', { absoluteExpirationRelative: '1h' }); // autocommit
    } finally {
      await other.end();
    }
    for (const store of [writer, watcher]) await waitFor(async () => (await store.ext.getString('sentinel')) === 's1', 5000, 'the sentinel to reach the tier');
    expect(await fromMemory(watcher, 'product:1')).to.deep.equal({ value: 'v0', fromMemory: true });
    // The writing process holds the key back until it hears the commit: it asks PostgreSQL meanwhile.
    expect(await fromMemory(writer, 'product:1')).to.deep.equal({ value: 'v0', fromMemory: false });
    expect(await fromMemory(writer, 'product:1')).to.deep.equal({ value: 'v0', fromMemory: false });
    await client.query('COMMIT');
    // This process reads the committed value at once, without waiting for the notice...
    expect(await writer.ext.getString('product:1')).to.equal('v1');
    // ...and every tier, this one included, holds it again once the notice is heard.
    for (const store of [writer, watcher]) {
      await waitFor(async () => (await fromMemory(store, 'product:1')).value === 'v1', 5000, 'the commit to reach the tier');
      await waitFor(async () => (await fromMemory(store, 'product:1')).fromMemory, 5000, 'the tier to hold v1');
    }
  });

  it('a rolled-back write sends no notice: the tiers keep serving the committed value from memory', async () => {
    const writer = await tiered();
    const watcher = await tiered();
    await writer.ext.set('k', 'v0', { absoluteExpirationRelative: '1h' });
    await waitFor(async () => (await fromMemory(watcher, 'k')).fromMemory, 5000, 'the watcher to hold k');
    await fromMemory(writer, 'k');
    await client.query('BEGIN');
    await writer.ext.in(client).set('k', 'rolled back');
    await client.query('ROLLBACK');
    // A later committed write of another key reaches both tiers; the rollback's notice, had it been sent,
    // would have arrived before it.
    await client.query('BEGIN');
    await writer.ext.in(client).set('sentinel', 'later', { absoluteExpirationRelative: '1h' });
    await client.query('COMMIT');
    for (const store of [writer, watcher]) await waitFor(async () => (await fromMemory(store, 'sentinel')).fromMemory, 5000, 'the sentinel to be held');
    expect(await fromMemory(watcher, 'k')).to.deep.equal({ value: 'v0', fromMemory: true });
    // The writing process never hears a commit of k: it asks PostgreSQL for it until its tier's ttl passes.
    expect(await fromMemory(writer, 'k')).to.deep.equal({ value: 'v0', fromMemory: false });
  });

  it('the writing process holds a key written in a rolled-back transaction back for its tier\'s ttl, then serves it again', async () => {
    const clock = manualClock();
    const writer = await tiered({ clock, localCache: { ttl: '2s' } });
    await writer.ext.set('k', 'v0', { absoluteExpirationRelative: '1h' });
    await client.query('BEGIN');
    await writer.ext.in(client).set('k', 'rolled back');
    await client.query('ROLLBACK');
    expect(await fromMemory(writer, 'k')).to.deep.equal({ value: 'v0', fromMemory: false });
    clock.advance(1999);
    expect(await fromMemory(writer, 'k')).to.deep.equal({ value: 'v0', fromMemory: false });
    clock.advance(1);
    await fromMemory(writer, 'k'); // asks PostgreSQL, and keeps the answer
    expect(await fromMemory(writer, 'k')).to.deep.equal({ value: 'v0', fromMemory: true });
  });

  it("another store's notice, even one for every key, does not release a held-back key: only the writing transaction's commit does", async () => {
    const writer = await tiered();
    const other = await tiered();
    await writer.ext.set('k', 'v0', { absoluteExpirationRelative: '1h' });
    await writer.ext.set('sentinel', 's', { absoluteExpirationRelative: '1h' });
    await waitFor(async () => (await fromMemory(writer, 'sentinel')).fromMemory, 5000, 'the sentinel to be held');
    await client.query('BEGIN');
    await writer.ext.in(client).set('k', 'mine', { absoluteExpirationRelative: '1h' });
    // Another store's tag delete tells every tier "everything changed": heard once the writer's sentinel is dropped.
    await other.ext.deleteTags(['unrelated']);
    await waitFor(async () => !(await fromMemory(writer, 'sentinel')).fromMemory, 5000, "the other store's notice to be heard");
    for (let i = 0; i < 2; i++) expect(await fromMemory(writer, 'k')).to.deep.equal({ value: 'v0', fromMemory: false });
    await client.query('COMMIT');
    expect(await writer.ext.getString('k')).to.equal('mine');
  });

  it('two other OS processes watching a key see the committed value, never the rolled-back one', async function () {
    this.timeout(90_000);
    const store = fx.make();
    await store.ext.set('watched', 'v0', { absoluteExpirationRelative: '1h' });
    const workers = [0, 1].map(() => startWorker(['watch', testUrl(), fx.table, 'watched', 'v2']));
    await Promise.all(workers.map((worker) => worker.ready));
    for (const worker of workers) worker.child.stdin.write('go\n');
    await client.query('BEGIN');
    await store.ext.in(client).set('watched', 'v1', { absoluteExpirationRelative: '1h' });
    await client.query('ROLLBACK');
    await client.query('BEGIN');
    await store.ext.in(client).set('watched', 'v2', { absoluteExpirationRelative: '1h' });
    await client.query('COMMIT');
    // Their tiers keep a copy an hour: they are told by the commit's notice (the writing store has no local tier).
    try {
      const results = (await within(Promise.all(workers.map((worker) => worker.result)), 10_000, 'the watchers to see v2')) as Array<{ seen: string[] }>;
      // v0 until the commit's notice (a watcher may first read after it has come), then v2; never v1.
      for (const result of results) expect(result.seen.filter((value) => value !== 'v0')).to.deep.equal(['v2']);
    } finally {
      for (const worker of workers) worker.child.kill('SIGKILL');
    }
  });

  it('a process that dies between its data write and its commit leaves the data and the cache as they were', async function () {
    this.timeout(90_000);
    const store = fx.make();
    await store.ext.set('product:1', 'v0', { absoluteExpirationRelative: '1h' });
    const worker = startWorker(['crash-in-transaction', testUrl(), fx.table, 'product:1', 'never committed', `public.${data}`]);
    await worker.ready;
    worker.child.stdin.write('go\n');
    const { pid } = (await worker.result) as { pid: number };
    // Its uncommitted write holds the row: a write of ours would wait. Then the process dies.
    worker.child.kill('SIGKILL');
    await waitFor(
      async () => (await sql<{ n: number }>('SELECT count(*)::int AS n FROM pg_stat_activity WHERE application_name = $1', [`cp-crash-${pid}`]))[0]!.n === 0,
      10_000,
      'the dead process\'s backend to end',
    );
    expect(await price()).to.equal(10);
    expect(await store.ext.getString('product:1')).to.equal('v0');
  });

  it('a caller\'s connection lost under it fails the call with a typed ConnectionError, and nothing was written', async () => {
    const store = fx.make();
    await store.ext.set('k', 'v0', { absoluteExpirationRelative: '1h' });
    await client.query('BEGIN');
    const tx = store.ext.in(client);
    await tx.set('k', 'v1');
    // The socket goes (a network failure, a pooler restart): PostgreSQL rolls the transaction back. The
    // client's own 'error' event is the application's to listen to (a pg.Pool listens for its clients).
    client.on('error', () => {});
    (client as unknown as { connection: { stream: { destroy(): void } } }).connection.stream.destroy();
    const error = await rejects(tx.set('other', 'v'), ConnectionError);
    expect(error.code).to.equal('E_CONNECTION');
    await waitFor(async () => (await store.ext.getString('k')) === 'v0' && (await fx.ids()).join() === 'k', 5000, 'the rollback');
    client = new pg.Client({ connectionString: testUrl() }); // afterEach ends it
    await client.connect();
  });

  it('refuses getOrSet with a typed error that says why and what to do', async () => {
    const store = fx.make();
    const error = await rejects(store.ext.in(client).getOrSet('k', () => 'v'), NotInTransactionError);
    expect(error.code).to.equal('E_NOT_IN_TRANSACTION');
    expect(error.message).to.match(/outside the transaction/);
    expect(await fx.count()).to.equal(0);
  });

  it('refuses what is not one connection before anything runs: no client, a pool, an answer without rows', async () => {
    const store = fx.make();
    for (const bad of [undefined, null, 'postgres://', {}, { query: 1 }]) {
      expect(() => store.ext.in(bad as never), String(bad)).to.throw(InvalidValueError, /connection your transaction runs on/);
    }
    expect(() => store.ext.in(fx.pool)).to.throw(InvalidValueError, /pg\.Pool/);
    // Answers it cannot read: refused by the check sent before its first statement (in-client-shapes.test.ts).
    const weird = store.ext.in({ query: async () => 42 });
    await rejects(weird.set('k', 'v'), UnreadableResultError, /42, not rows/);
  });

  it('checks its input as ext does, before anything runs, and types failures of the statement', async () => {
    const store = fx.make();
    await store.ext.set('text', 'not a number', { absoluteExpirationRelative: '1h' });
    const tx = store.ext.in(client);
    await rejects(tx.set('', 'v'), Error);
    await rejects(tx.set('k', 'v', { slidingExpiration: '-1s' }), Error);
    await rejects(tx.deletePattern('*'), InvalidValueError);
    await rejects(tx.deleteMany('one' as never), InvalidValueError);
    await rejects(tx.incr('k', 1.5), InvalidValueError);
    await client.query('BEGIN');
    await rejects(store.ext.in(client).incr('text'), NotACounterError);
    await client.query('ROLLBACK');
    expect(await fx.ids()).to.deep.equal(['text']);
  });

  it('works through a query-shaped adapter (rows as an array), such as one over a query builder\'s transaction', async () => {
    const store = fx.make();
    const adapter = { query: async (text: string, values: unknown[]) => (await client.query(text, values)).rows };
    await client.query('BEGIN');
    await store.ext.in(adapter).set('via-adapter', 'yes', { absoluteExpirationRelative: '1h' });
    expect(await committed('via-adapter')).to.equal(undefined);
    await client.query('COMMIT');
    expect(await committed('via-adapter')).to.equal('yes');
  });

  it('waits for the table on a fresh store before its first statement', async () => {
    const table = uniqueTable('cp_tx_fresh');
    const store = new PgStore({ uri: testUrl(), table, enableExpirationScan: false, distributed: testDistributed() });
    try {
      await client.query('BEGIN');
      await store.ext.in(client).set('first', 'call', { absoluteExpirationRelative: '1h' });
      await client.query('COMMIT');
      expect(await store.ext.getString('first')).to.equal('call');
    } finally {
      await store.disconnect();
      await dropTables(table, `${table}_locks`);
    }
  });
});
