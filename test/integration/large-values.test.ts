/**
 * A documented maximum value size (64 MiB), checked on write; and read paths that cannot build an
 * over-long string from a bigger value another writer stored (a crash of the whole process before).
 */
import { expect } from 'chai';
import Keyv from 'keyv';
import { MAX_VALUE_BYTES, ValueTooLargeError } from '../../src/index.js';
import { rejects } from '../helpers/assert.js';
import { sql } from '../helpers/db.js';
import { useCacheTable } from '../helpers/fixture.js';

describe('Large values', function () {
  this.timeout(120_000);
  const t = useCacheTable('large');

  it('is 64 MiB, and a value of exactly that size is stored', async () => {
    expect(MAX_VALUE_BYTES).to.equal(64 * 1024 * 1024);
    const store = t.make();
    await store.ext.set('max', Buffer.alloc(MAX_VALUE_BYTES, 7));
    expect((await store.ext.get('max'))?.length).to.equal(MAX_VALUE_BYTES);
  });

  it('refuses a bigger value on every write path, before anything is sent', async () => {
    const store = t.make();
    const big = Buffer.alloc(MAX_VALUE_BYTES + 1, 1);
    await rejects(store.ext.set('big', big), ValueTooLargeError, /67108865 bytes/);
    await rejects(store.ext.setMany({ big }), ValueTooLargeError);
    await rejects(store.ext.getOrSet('big', () => big), ValueTooLargeError);
    await rejects(store.set('big', 'x'.repeat(MAX_VALUE_BYTES + 1)), ValueTooLargeError);
    await rejects(store.setMany([{ key: 'big', value: 'é'.repeat(MAX_VALUE_BYTES / 2 + 1) }]), ValueTooLargeError);
    const [row] = await sql<{ n: string }>(`SELECT count(*) AS n FROM public.${t.table}`);
    expect(row!.n).to.equal('0');
  });

  it('reads a bigger value stored by another writer as a ValueTooLargeError for its caller only, never a crash', async () => {
    const store = t.make();
    // 140 MiB of non-ASCII bytes: in escape form that is over 500 million characters, past V8's limit.
    await sql(`INSERT INTO public.${t.table} (id, value, expiresattime) VALUES ('keyv:huge', decode(repeat('ff', 140 * 1024 * 1024), 'hex'), 'infinity')`);
    const keyv = new Keyv({ store, throwOnErrors: true });
    await keyv.set('small', 'ok');
    const [huge, small] = await Promise.allSettled([keyv.get('huge'), keyv.get('small')]);
    expect(huge.status).to.equal('rejected');
    expect((huge as PromiseRejectedResult).reason).to.be.instanceOf(ValueTooLargeError);
    expect(small).to.deep.equal({ status: 'fulfilled', value: 'ok' });
    await rejects(store.ext.get('keyv:huge'), ValueTooLargeError);
    await rejects(store.getMany(['keyv:huge']), ValueTooLargeError);
    await rejects(store.ext.getPattern('keyv:h*'), ValueTooLargeError);
  });
});
