import { expect } from 'chai';
import { InvalidOptionError, InvalidValueError } from '../../src/index.js';
import { manualClock, rejects } from '../helpers/assert.js';
import { useCacheTable } from '../helpers/fixture.js';

describe('store.ext key patterns', () => {
  const fx = useCacheTable('cp_pattern');
  // Keys full of LIKE metacharacters: only an escaped translation keeps them apart.
  const keys = ['user_1:a', 'userX1:a', 'user_1', 'user%1', 'user%x', 'user\\1', 'user\\\\1', 'users', 'u', 'session:ab:x', 'session:abc:x'];
  const seed = async () => {
    const ext = fx.make().ext;
    await ext.setMany(keys.map((key) => [key, key] as const));
    return ext;
  };
  const scan = async (ext: Awaited<ReturnType<typeof seed>>, pattern: string, options = {}) => {
    const found: string[] = [];
    for await (const key of ext.scan(pattern, options)) found.push(key);
    return found;
  };

  it('matches globs literally except for * and ?', async () => {
    const ext = await seed();
    expect(await scan(ext, 'user_1*')).to.deep.equal(['user_1', 'user_1:a']);
    expect(await scan(ext, 'user%*')).to.deep.equal(['user%1', 'user%x']);
    expect(await scan(ext, 'user\\\\1')).to.deep.equal(['user\\1']);
    expect(await scan(ext, 'user\\\\\\\\1')).to.deep.equal(['user\\\\1']);
    expect(await scan(ext, 'session:??:x')).to.deep.equal(['session:ab:x']);
    expect(await scan(ext, 'session:*:x')).to.deep.equal(['session:ab:x', 'session:abc:x']);
    expect(await scan(ext, '*:a')).to.deep.equal(['userX1:a', 'user_1:a']);
    expect(await scan(ext, 'u')).to.deep.equal(['u']);
  });

  it('offers raw LIKE only on request (the Python library\'s get_pattern)', async () => {
    const ext = await seed();
    // Raw LIKE: _ is any one character, so user%1, userX1:a and user\1 match too.
    expect(await scan(ext, 'user_1%', { like: true })).to.deep.equal(['user%1', 'userX1:a', 'user\\1', 'user_1', 'user_1:a']);
    expect(await scan(ext, 'user\\_1%', { like: true })).to.deep.equal(['user_1', 'user_1:a']);
  });

  it('pages with constant memory: one query per batchSize keys', async () => {
    const store = fx.make();
    await store.ext.setMany(Array.from({ length: 10 }, (_, i) => [`p:${i}`, 'x'] as const));
    const before = store.roundTrips;
    const found: string[] = [];
    for await (const key of store.ext.scan('p:*', { batchSize: 3 })) found.push(key);
    expect(found).to.have.length(10);
    expect(store.roundTrips - before).to.equal(4);
  });

  it('skips expired keys, and getPattern slides what it returns', async () => {
    const clock = manualClock();
    const ext = fx.make({ clock }).ext;
    await ext.set('g:short', 's', { absoluteExpirationRelative: '1s' });
    await ext.set('g:slide', 'l', { slidingExpiration: '1m' });
    clock.advance(30_000);
    const found = await ext.getPattern('g:*');
    expect([...found.keys()]).to.deep.equal(['g:slide']);
    expect(found.get('g:slide')!.toString()).to.equal('l');
    expect(await ext.ttl('g:slide')).to.equal(60_000);
  });

  it('deletes matches in batches and counts live entries; deleting everything needs { all: true }', async () => {
    const store = fx.make({ deleteBatchSize: 4 });
    await store.ext.setMany(Array.from({ length: 10 }, (_, i) => [`d:${i}`, 'x'] as const));
    await store.ext.set('keep', 'x');
    const before = store.roundTrips;
    expect(await store.ext.deletePattern('d:*')).to.equal(10);
    expect(store.roundTrips - before).to.equal(3);
    expect(await fx.ids()).to.deep.equal(['keep']);
    await rejects(store.ext.deletePattern('*'), InvalidValueError, /pass \{ all: true \}/);
    await rejects(store.ext.deletePattern('%', { like: true }), InvalidValueError, /matches every key/);
    expect(await store.ext.deletePattern('*', { all: true })).to.equal(1);
    expect(await fx.count()).to.equal(0);
  });

  it('refuses malformed patterns before querying', async () => {
    const store = fx.make();
    await rejects(store.ext.getPattern(''), InvalidValueError, /non-empty/);
    await rejects(store.ext.deletePattern('x\\'), InvalidValueError, /lone/);
    await rejects(scan(store.ext, 'x*', { batchSize: 0 }), InvalidValueError, /batchSize/);
    expect(store.roundTrips).to.equal(0);
  });
});

describe('store.ext tags', () => {
  const fx = useCacheTable('cp_tags');
  const seed = async () => {
    const ext = fx.make().ext;
    await ext.set('p1', 'x', { tags: ['products', 'category:books'] });
    await ext.set('p2', 'x', { tags: ['products', 'category:games'] });
    await ext.set('c1', 'x', { tags: ['category:books'] });
    await ext.set('none', 'x');
    return ext;
  };

  it('deletes entries carrying any of the tags by default', async () => {
    const ext = await seed();
    expect(await ext.deleteTags(['category:games', 'category:books'])).to.equal(3);
    expect(await fx.ids()).to.deep.equal(['none']);
  });

  it('deletes only entries carrying all the tags with { match: "all" }', async () => {
    const ext = await seed();
    expect(await ext.deleteTags(['products', 'category:books'], { match: 'all' })).to.equal(1);
    expect(await fx.ids()).to.deep.equal(['c1', 'none', 'p2']);
  });

  it('stores tags without duplicates and replaces them on overwrite', async () => {
    const ext = fx.make().ext;
    await ext.set('k', 'x', { tags: ['a', 'b', 'a'] });
    expect((await ext.info('k'))!.tags).to.deep.equal(['a', 'b']);
    await ext.set('k', 'y');
    expect((await fx.row('k'))!.tags).to.equal(null);
  });

  it('deletes in batches, counting only live entries', async () => {
    const clock = manualClock();
    const store = fx.make({ clock, deleteBatchSize: 3 });
    await store.ext.setMany(Array.from({ length: 7 }, (_, i) => [`t${i}`, 'x'] as const), { tags: ['t'], absoluteExpirationRelative: '1m' });
    await store.ext.set('later', 'x', { tags: ['t'], absoluteExpirationRelative: '1h' });
    clock.advance(120_000);
    expect(await store.ext.deleteTags(['t'])).to.equal(1);
    expect(await fx.count()).to.equal(0);
  });

  it('refuses an empty tag list and unknown match modes', async () => {
    const ext = fx.make().ext;
    await rejects(ext.deleteTags([]), InvalidOptionError, /at least one tag/);
    await rejects(ext.deleteTags(['a'], { match: 'some' as never }), InvalidOptionError, /'any' or 'all'/);
  });
});
