/**
 * PgStore under Keyv 6 (installed here as `keyv6`, beside Keyv 5): the contract Keyv 6 asks of a store it
 * uses as such (capabilities.expires), checked through Keyv 6 itself. Keyv 6's own test suite runs in
 * the packed-package tests, under the Node it supports (test/package).
 */
import { expect } from 'chai';
import Keyv5 from 'keyv';
import Keyv6, { KeyvBridgeAdapter } from 'keyv6';
import { PgStore } from '../../src/index.js';
import { dropTables, sql, testDistributed, testUrl, uniqueTable, waitFor } from '../helpers/db.js';

describe('Keyv 6', function () {
  this.timeout(30_000);
  const table = uniqueTable('cp_keyv6');
  const stores: PgStore[] = [];
  const make = () => {
    const store = new PgStore({ uri: testUrl(), table, distributed: testDistributed(), enableExpirationScan: false });
    stores.push(store);
    return store;
  };
  afterEach(async () => {
    await Promise.all(stores.splice(0).map((store) => store.disconnect()));
    await sql(`DELETE FROM public.${table}`).catch(() => {});
  });
  after(() => dropTables(table));

  it('uses the store as a v6 adapter (absolute expires), not through its bridge for legacy stores', () => {
    const store = make();
    const keyv = new Keyv6({ store });
    expect(keyv.store).to.equal(store);
    expect(keyv.store).not.to.be.instanceOf(KeyvBridgeAdapter);
    expect(store.capabilities.expires).to.equal(true);
  });

  it('scopes keys by namespace itself (Keyv 6 no longer prefixes them): two namespaces, one key, two entries', async () => {
    const [a, b] = [new Keyv6({ store: make(), namespace: 'a' }), new Keyv6({ store: make(), namespace: 'b' })];
    await a.set('k', 'A');
    await b.set('k', 'B');
    expect(await a.get('k')).to.equal('A');
    expect(await b.get('k')).to.equal('B');
    const ids = (await sql<{ id: string }>(`SELECT id FROM public.${table} ORDER BY id`)).map((row) => row.id);
    expect(ids).to.deep.equal(['a:k', 'b:k']);
    await a.clear();
    expect(await a.get('k')).to.equal(undefined);
    expect(await b.get('k')).to.equal('B');
  });

  it('writes the row Keyv 5 writes for the same namespace and key: a Keyv 5 and a Keyv 6 application share entries', async () => {
    const five = new Keyv5({ store: make(), namespace: 'shared' });
    const six = new Keyv6({ store: make(), namespace: 'shared' });
    await five.set('from5', { n: 5 });
    await six.set('from6', { n: 6 });
    expect(await six.get('from5')).to.deep.equal({ n: 5 });
    expect(await five.get('from6')).to.deep.equal({ n: 6 });
    // Keyv 5's default namespace is 'keyv'; Keyv 6 given it reads those entries.
    await new Keyv5({ store: make() }).set('default', 1);
    expect(await new Keyv6({ store: make(), namespace: 'keyv' }).get('default')).to.equal(1);
  });

  it('takes an absolute expires: an entry lives its ttl, one already past is not kept', async () => {
    const store = make();
    const keyv = new Keyv6({ store, namespace: 'ttl' });
    await keyv.set('short', 'v', 300);
    await keyv.set('long', 'v', 3_600_000);
    const [row] = await sql<{ left: number }>(`SELECT extract(epoch FROM expiresattime - now()) AS left FROM public.${table} WHERE id = 'ttl:long'`);
    expect(Number(row!.left)).to.be.within(3590, 3601);
    await waitFor(async () => (await store.get('short')) === undefined, 5_000, 'the short entry to expire');
    expect(await keyv.get('long')).to.equal('v');
    await store.set('past', 'x', Date.now() - 1000);
    expect(await store.get('past')).to.equal(undefined);
    expect(await store.has('past')).to.equal(false);
    await store.setMany([
      { key: 'm1', value: 'x', expires: Date.now() - 1 },
      { key: 'm2', value: 'y', expires: Date.now() + 60_000 },
      { key: 'm3', value: 'z' },
    ]);
    expect(await store.getMany(['m1', 'm2', 'm3'])).to.deep.equal([undefined, 'y', 'z']);
  });

  it('deleteMany resolves to one boolean per key; getMany and hasMany keep the order', async () => {
    const store = make();
    const keyv = new Keyv6({ store, namespace: 'many' });
    await keyv.setMany([
      { key: 'a', value: 1 },
      { key: 'b', value: 2 },
    ]);
    expect(await keyv.getMany(['b', 'x', 'a'])).to.deep.equal([2, undefined, 1]);
    expect(await keyv.hasMany(['x', 'a'])).to.deep.equal([false, true]);
    expect(await store.deleteMany(['a', 'x', 'b'])).to.deep.equal([true, false, true]);
    expect(await store.deleteMany([])).to.deep.equal([]);
  });

  it("an empty namespace is none, as in Keyv 5 and the store's clear(): keys are stored as written", async () => {
    const store = make();
    await store.set('otherapp', 'theirs'); // another application's row, before Keyv 6 adopts the store
    const keyv = new Keyv6({ store, namespace: '' });
    await keyv.set('a', 1);
    const ids = (await sql<{ id: string }>(`SELECT id FROM public.${table} ORDER BY id`)).map((row) => row.id);
    expect(ids).to.deep.equal(['a', 'otherapp']);
    const keys: string[] = [];
    for await (const [key] of store.iterator()) keys.push(key);
    expect(keys).to.deep.equal(['a', 'otherapp']);
  });

  it("iterates its own namespace, yielding keys as the application wrote them", async () => {
    const store = make();
    const keyv = new Keyv6({ store, namespace: 'it' });
    await keyv.set('x', 1);
    await keyv.set('it:y', 2); // a key that itself begins like the prefix
    await new Keyv6({ store: make(), namespace: 'other' }).set('z', 3);
    const seen: Array<[string, unknown]> = [];
    for await (const [key, value] of keyv.iterator()) seen.push([key, value]);
    expect(seen.sort()).to.deep.equal([
      ['it:y', 2],
      ['x', 1],
    ]);
  });

  it("a failure with no 'error' listener on Keyv rejects the call (Keyv 6's rule)", async () => {
    const store = new PgStore({ uri: 'postgres://nobody@127.0.0.1:1/none', connectTimeout: '1s', enableExpirationScan: false });
    stores.push(store);
    const keyv = new Keyv6({ store });
    let rejected: unknown;
    await keyv.get('k').catch((error: unknown) => (rejected = error));
    expect(rejected).to.be.instanceOf(Error);
  });

  it("a background failure with no 'error' listener on Keyv goes to the logger, and the process lives on", async () => {
    const name = `cp-keyv6-${Date.now()}`;
    const errors: Error[] = [];
    const store = new PgStore({
      uri: testUrl(),
      table,
      distributed: testDistributed(),
      enableExpirationScan: false,
      poolConfig: { application_name: name },
      logger: { error: (error) => void errors.push(error), warn: () => {} },
    });
    stores.push(store);
    const keyv = new Keyv6({ store }); // Keyv 6 forwards the store's 'error' events, and throws with no listener of its own
    await keyv.set('k', 'v');
    // The pool's idle connection is cut: pg reports it on the pool, the store in the background.
    await sql('SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = $1', [name]);
    await waitFor(() => errors.length > 0, 10_000, 'the idle connection error to reach the logger');
    expect(errors[0]!.message).to.match(/idle connection/);
    expect(await keyv.get('k')).to.equal('v');
  });
});
