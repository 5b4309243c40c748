import { expect } from 'chai';
import { LISTENER_NAME } from '../../src/execution/executor.js';
import { PgStore, type PgStoreOptions } from '../../src/index.js';
import { manualClock } from '../helpers/assert.js';
import { sql, testUrl, waitFor } from '../helpers/db.js';
import { useCacheTable } from '../helpers/fixture.js';

describe('localCache (the in-process tier)', () => {
  const fx = useCacheTable('cp_local');
  const own: PgStore[] = [];
  afterEach(async () => {
    await Promise.all(own.splice(0).map((store) => store.disconnect()));
  });

  /** A store on its own pool (as in another process), its tier listening. */
  async function make(options: Omit<PgStoreOptions, 'table'> = {}): Promise<PgStore> {
    const store = new PgStore({ uri: testUrl(), table: fx.table, enableExpirationScan: false, localCache: { ttl: '1h' }, ...options });
    own.push(store);
    store.on('error', () => {}); // a terminated listener is reported; these tests provoke it
    await listening(store);
    return store;
  }

  /** Reads `key` and tells whether PostgreSQL was asked. */
  async function read(store: PgStore, key: string): Promise<{ value: unknown; fromMemory: boolean }> {
    const before = store.roundTrips;
    const value = await store.get(key);
    return { value, fromMemory: store.roundTrips === before };
  }

  /** The tier serves only while it listens: wait until a read of a stored key is answered from memory. */
  async function listening(store: PgStore): Promise<void> {
    await store.set('probe:listening', 'yes');
    await waitFor(async () => (await read(store, 'probe:listening')).fromMemory, 5000, 'the tier to listen');
  }

  /**
   * Reads `key` and tells whether the local tier answered, by its counter (a hit of a sliding entry may
   * send a touch in the background, so round trips cannot tell).
   */
  async function readCounted(store: PgStore, key: string): Promise<{ value: unknown; fromMemory: boolean }> {
    const { localHits } = await store.stats();
    const value = await store.get(key);
    return { value, fromMemory: (await store.stats()).localHits === localHits + 1 };
  }

  const listeners = async () =>
    (await sql<{ n: number }>(`SELECT count(*)::int AS n FROM pg_stat_activity WHERE application_name = $1`, [LISTENER_NAME]))[0]!.n;

  it('answers a repeated get from memory, handing each caller a copy of its own', async () => {
    const store = await make();
    await store.ext.set('k', 'value', { absoluteExpirationRelative: '1h' });
    expect((await store.ext.get('k'))!.toString()).to.equal('value');
    // A round trip: by its end the set's notice to other stores has been sent too.
    const { hits, localHits } = await store.stats();
    const before = store.roundTrips;
    const copy = (await store.ext.get('k'))!;
    copy[0] = 0x58;
    expect((await store.ext.getString('k'))).to.equal('value');
    expect(store.roundTrips - before).to.equal(0);
    const after = await store.stats();
    expect(after.hits).to.equal(hits + 2); // answers from memory count as hits, and as local hits
    expect(after.localHits).to.equal(localHits + 2);
    expect((await store.stats()).localEntries).to.be.greaterThan(0);
  });

  it("sees its own writes, deletes, increments, clears, pattern and tag deletes, and getOrSet's writes at once", async () => {
    const store = await make();
    const warm = async (key: string) => {
      await store.get(key);
      expect((await read(store, key)).fromMemory, `${key} held`).to.equal(true);
    };
    await store.set('a', '1');
    await warm('a');
    await store.set('a', '2');
    expect(await store.get('a')).to.equal('2');
    await warm('a');
    await store.delete('a');
    expect(await store.get('a')).to.equal(undefined);

    await store.ext.incr('n');
    await store.ext.get('n');
    await store.ext.incr('n');
    expect(await store.ext.getString('n')).to.equal('2');

    await store.ext.set('p:1', 'x', { tags: ['t'], absoluteExpirationRelative: '1h' });
    await store.ext.get('p:1');
    await store.ext.deleteTags(['t']);
    expect(await store.ext.get('p:1')).to.equal(undefined);

    await store.ext.set('p:2', 'x', { absoluteExpirationRelative: '1h' });
    await store.ext.get('p:2');
    await store.ext.deletePattern('p:*');
    expect(await store.ext.get('p:2')).to.equal(undefined);

    await store.set('c', 'x');
    await warm('c');
    await store.clear();
    expect(await store.get('c')).to.equal(undefined);

    await store.ext.set('g', 'old', { absoluteExpirationRelative: '1h' });
    await store.ext.get('g');
    await store.ext.getOrSet('g', async () => 'new', { forceFresh: true, absoluteExpirationRelative: '1h' });
    expect(await store.ext.getString('g')).to.equal('new');
  });

  it("hears another store's writes and deletes through NOTIFY (its ttl is an hour: only the notification explains it)", async () => {
    const reader = await make();
    const writer = await make();
    await writer.set('shared', 'v1');
    expect(await reader.get('shared')).to.equal('v1');
    // The writer's notification of v1 may land after this read and drop it once: wait until held.
    await waitFor(async () => (await read(reader, 'shared')).fromMemory, 5000, 'v1 to be held');
    await writer.set('shared', 'v2');
    await waitFor(async () => (await reader.get('shared')) === 'v2', 5000, 'the notification');
    await writer.delete('shared');
    await waitFor(async () => (await reader.get('shared')) === undefined, 5000, 'the notification');
  });

  it('serves a write it hears nothing of (SQL by hand, .NET, Python) until ttl, never longer', async () => {
    const clock = manualClock();
    const store = await make({ clock, localCache: { ttl: '10s' } });
    await store.set('foreign', 'old');
    await store.get('foreign');
    await sql(`UPDATE public.${fx.table} SET value = convert_to('new', 'UTF8') WHERE id = 'foreign'`);
    clock.advance(9_000);
    expect(await store.get('foreign')).to.equal('old');
    clock.advance(1_000);
    expect(await store.get('foreign')).to.equal('new');
  });

  it("keeps sliding entries, sliding their rows in the background as their reads would, and never serves one past its row's known expiry", async () => {
    const clock = manualClock();
    const store = await make({ clock });
    const expiry = async () => ((await fx.row('sliding'))!.expiresattime as Date).getTime();
    await store.ext.set('sliding', 'v', { slidingExpiration: '100s' }); // written through: kept, expiring at +100 s
    clock.advance(50_000);
    // Answered from memory; the read would have slid the row to +150 s: a touch does it in the background.
    expect(await readCounted(store, 'sliding')).to.deep.equal({ value: 'v', fromMemory: true });
    await waitFor(async () => (await expiry()) === clock() + 100_000, 5000, 'the touch to slide the row');
    // Known here: the row lives until at least +140 s (the touch's time + the window, less the threshold's share).
    clock.advance(89_000); // +139 s
    expect((await readCounted(store, 'sliding')).fromMemory).to.equal(true);
    await waitFor(async () => (await expiry()) === clock() + 100_000, 5000, 'the second touch'); // +239 s
    // Known here now: +229 s. Past it PostgreSQL is asked, and slides the row itself.
    clock.advance(91_000); // +230 s
    expect(await readCounted(store, 'sliding')).to.deep.equal({ value: 'v', fromMemory: false });
    expect(await expiry()).to.equal(clock() + 100_000);
    // Not read for longer than its window: expired, in memory as in PostgreSQL.
    clock.advance(100_001);
    expect(await store.get('sliding')).to.equal(undefined);

    await store.set('short', 'v', 1000);
    await store.get('short');
    expect((await read(store, 'short')).fromMemory).to.equal(true);
    clock.advance(1001);
    expect(await store.get('short')).to.equal(undefined);
  });

  it('keeps what this store writes (its next read costs no round trip), and holds values by bytes', async () => {
    const store = await make({ localCache: { ttl: '1h', maxBytes: 3200 } });
    await store.set('w', 'written');
    expect(await read(store, 'w')).to.deep.equal({ value: 'written', fromMemory: true });
    // A read issued right after the write (same tick) waits for it and is answered from memory too.
    const { localHits } = await store.stats();
    const [, value] = await Promise.all([store.set('w', 'again'), store.get('w')]);
    expect(value).to.equal('again');
    expect((await store.stats()).localHits).to.equal(localHits + 1);
    // 1,000-character values (about 1,500 bytes each with their key and bookkeeping): two fit in 3,200
    // bytes, the least recently used goes.
    for (const key of ['a', 'b', 'c']) await store.set(key, key.repeat(1000));
    expect((await read(store, 'a')).fromMemory).to.equal(false);
    expect((await read(store, 'c')).fromMemory).to.equal(true);
    expect((await store.stats()).localEntries).to.be.at.most(3);
  });

  it('never puts back the old value a read found when a write to its key was issued beside it', async () => {
    const store = await make();
    await store.set('raced', 'old');
    // One tick, in issue order: the read issued after the write answers 'new', and neither it nor the
    // batch's own reads leave 'old' in the tier.
    const [seenBefore, , seen] = await Promise.all([store.get('raced'), store.set('raced', 'new'), store.get('raced')]);
    expect(seenBefore).to.equal('old');
    expect(seen).to.equal('new');
    expect(await store.get('raced')).to.equal('new');
  });

  it('keeps and serves nothing while it cannot hear other stores, and serves again once listening', async () => {
    const store = await make();
    await store.set('k', 'v');
    await store.get('k');
    expect((await store.stats()).localEntries).to.be.greaterThan(0);
    await sql(`SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = $1`, [LISTENER_NAME]);
    await waitFor(async () => (await store.stats()).localEntries === 0, 5000, 'the tier to drop everything');
    expect((await read(store, 'k')).fromMemory).to.equal(false);
    await waitFor(async () => (await read(store, 'k')).fromMemory, 10_000, 'the listener to come back');
  });

  it('holds at most maxEntries, and leaves no listening connection behind after disconnect', async () => {
    const before = await listeners();
    const store = await make({ localCache: { maxEntries: 2, ttl: '1h' } });
    expect(await listeners()).to.equal(before + 1);
    await store.setMany(['x', 'y', 'z'].map((key) => ({ key, value: key })));
    for (const key of ['x', 'y', 'z']) await store.get(key);
    expect((await store.stats()).localEntries).to.equal(2);
    await store.disconnect();
    expect(await listeners()).to.equal(before);
  });
});
