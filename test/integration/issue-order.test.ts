/**
 * Calls on the same key from one store take effect in the order they were issued, as with a Redis
 * client, even when issued in one tick without awaiting each other (batched or not).
 */
import { expect } from 'chai';
import Keyv from 'keyv';
import type { PgStore } from '../../src/index.js';
import { TAGGED_KEYS_READ } from '../../src/ext/tags.js';
import { adminPool, sql } from '../helpers/db.js';
import { useCacheTable } from '../helpers/fixture.js';

const RUNS = 30;

describe('Issue order on one key', function () {
  const t = useCacheTable('order');

  for (const batching of [true, false]) {
    describe(`batching: ${batching}`, () => {
      const make = (): PgStore => t.make({ batching });

      it('set, then get, in one tick: the get sees the set', async () => {
        const store = make();
        for (let i = 0; i < RUNS; i++) {
          await store.ext.set('k', `old${i}`);
          void store.ext.set('k', `new${i}`);
          expect(await store.ext.getString('k')).to.equal(`new${i}`);
        }
      });

      it('set, then delete, in one tick: the key is gone', async () => {
        const store = make();
        for (let i = 0; i < RUNS; i++) {
          const set = store.ext.set('k', 'v');
          const deleted = store.ext.delete('k');
          await set;
          expect(await deleted).to.equal(true);
          expect(await store.ext.has('k')).to.equal(false);
        }
      });

      it('delete, then set, in one tick: the key holds the new value', async () => {
        const store = make();
        for (let i = 0; i < RUNS; i++) {
          await store.ext.set('k', 'old');
          const deleted = store.ext.delete('k');
          const set = store.ext.set('k', `new${i}`);
          expect(await deleted).to.equal(true);
          await set;
          expect(await store.ext.getString('k')).to.equal(`new${i}`);
        }
      });

      it('set, then has / getMany / deletePattern, in one tick', async () => {
        const store = make();
        for (let i = 0; i < 10; i++) {
          await store.ext.delete('p:1');
          void store.ext.set('p:1', `v${i}`);
          expect(await store.ext.has('p:1')).to.equal(true);
          void store.ext.set('p:1', `w${i}`);
          expect((await store.ext.getMany(['p:1'])).get('p:1')?.toString()).to.equal(`w${i}`);
          void store.ext.set('p:1', 'x');
          expect(await store.ext.deletePattern('p:*')).to.equal(1);
          expect(await store.ext.has('p:1')).to.equal(false);
        }
      });

      it('a deletePattern in flight holds the calls on keys it may delete, and no call on another key', async () => {
        const store = make();
        await store.ext.setMany({ 'p:1': 'a', 'p:2': 'b', other: 'o' });
        // Someone's transaction holds p:1: the pattern delete waits for it, as long as the test says.
        const holder = await adminPool().connect();
        await holder.query('BEGIN');
        await holder.query(`SELECT 1 FROM public.${t.table} WHERE id = 'p:1' FOR UPDATE`);
        const deleting = store.ext.deletePattern('p:*');
        const matching = store.ext.get('p:2'); // issued after it, on a key it deletes: must see the deletion
        // Issued after it, on keys it cannot touch: answered while it is still held (before: held as long).
        const others = Promise.all([store.ext.get('other'), store.ext.set('q:1', 'q').then(() => store.ext.has('q:1'))]);
        let first: string;
        try {
          first = await Promise.race([
            others.then(() => 'others'),
            deleting.then(() => 'deletePattern'),
            new Promise<string>((resolve) => setTimeout(() => resolve('neither within 5 s'), 5_000).unref()),
          ]);
        } finally {
          await holder.query('COMMIT');
          holder.release();
        }
        expect(first).to.equal('others');
        const [other, hasQ] = await others;
        expect(other?.toString()).to.equal('o');
        expect(hasQ).to.equal(true);
        expect(await deleting).to.equal(2);
        expect(await matching).to.equal(undefined);
      });

      it('deleteTags and clear() see the calls issued before them and none issued after', async () => {
        const store = make();
        for (let i = 0; i < 10; i++) {
          void store.ext.set('t:1', 'before', { tags: ['x'] });
          const deleted = store.ext.deleteTags(['x']);
          const after = store.ext.set('t:2', 'after', { tags: ['x'] });
          expect(await deleted).to.equal(1);
          await after;
          expect(await store.ext.has('t:1')).to.equal(false);
          expect(await store.ext.getString('t:2')).to.equal('after');
          void store.set('keyv:c', 'before');
          const cleared = store.clear();
          const kept = store.set('keyv:c2', 'after');
          await Promise.all([cleared, kept]);
          expect(await store.has('keyv:c')).to.equal(false);
          expect(await store.get('keyv:c2')).to.equal('after');
          await store.ext.deleteMany(['t:2', 'keyv:c2']);
        }
      });

      it('deleteTags holds the calls issued after it only until it knows its keys: others run while it deletes', async () => {
        // 4,000 tagged rows in batches of 40: a hundred statements one after the other. A call on a key the tag
        // does not hold, issued in the same tick, answers long before; one on a tagged key waits for the end.
        const store = t.make({ batching, deleteBatchSize: 40 });
        const ids = Array.from({ length: 4000 }, (_, i) => `many:${i}`);
        await store.ext.setMany(ids.map((key) => [key, 'v'] as const), { tags: ['many'] });
        await store.ext.set('plain', 'p');
        const order: string[] = [];
        const deleting = store.ext.deleteTags(['many']).then((n) => (order.push('deleteTags'), n));
        const other = store.ext.getString('plain').then((v) => (order.push('other get'), v));
        const written = store.ext.set('fresh', 'f', { tags: ['many'] }).then(() => order.push('untagged key set'));
        const tagged = store.ext.getString('many:3999').then((v) => (order.push('tagged get'), v));
        const rewritten = store.ext.set('many:0', 'again', { tags: ['many'] }).then(() => order.push('tagged key set'));
        expect(await deleting).to.equal(4000);
        await Promise.all([other, written, tagged, rewritten]);
        expect(order.indexOf('other get')).to.be.below(order.indexOf('deleteTags'), order.join(', '));
        expect(order.indexOf('untagged key set')).to.be.below(order.indexOf('deleteTags'), order.join(', '));
        expect(await tagged).to.equal(undefined);
        expect(await other).to.equal('p');
        // Issued after the deleteTags: both survive it, the key it did not hold and the one it did.
        expect(await store.ext.getString('fresh')).to.equal('f');
        expect(await store.ext.getString('many:0')).to.equal('again');
        expect(await store.ext.getString('many:1')).to.equal(undefined);
      });

      it('incr, then get, in one tick: the get sees the increment', async () => {
        const store = make();
        for (let i = 1; i <= 10; i++) {
          void store.ext.incr('n');
          expect(await store.ext.getString('n')).to.equal(String(i));
        }
      });

      // Not through Keyv: keyv.set() awaits its serializer before it calls the store, so a keyv.get() or
      // keyv.delete() issued after it in the same tick reaches the store first; the store cannot see the
      // order in which they were issued to Keyv (README, "Issue order").
      it('through Keyv, once the set has reached the store: get and delete follow it', async () => {
        const keyv = new Keyv({ store: make() });
        for (let i = 0; i < 10; i++) {
          await keyv.set('k', `v${i}`);
          const deleted = keyv.delete('k');
          const read = keyv.get('k');
          expect(await deleted).to.equal(true);
          expect(await read).to.equal(undefined);
        }
      });
    });
  }

  it(`deleteTags on more than ${TAGGED_KEYS_READ.toLocaleString('en')} entries holds every call issued after it until it ends (it does not keep that many keys)`, async function () {
    this.timeout(120_000);
    await sql(`INSERT INTO public.${t.table} (id, value, expiresattime, tags)
      SELECT 'big:' || g, '\\x00', 'infinity', ARRAY['big'] FROM generate_series(1, ${TAGGED_KEYS_READ + 1}) g`);
    await sql(`INSERT INTO public.${t.table} (id, value, expiresattime) VALUES ('plain', '\\x70', 'infinity')`);
    const store = t.make({ deleteBatchSize: 20_000 });
    const order: string[] = [];
    const deleting = store.ext.deleteTags(['big']).then((n) => (order.push('deleteTags'), n));
    const other = store.ext.getString('plain').then((v) => (order.push('other get'), v));
    expect(await deleting).to.equal(TAGGED_KEYS_READ + 1);
    expect(await other).to.equal('p');
    expect(order).to.deep.equal(['deleteTags', 'other get']);
    expect(await t.count()).to.equal(1);
  });
});
