import { expect } from 'chai';
import { InvalidKeyError, InvalidOptionError, InvalidValueError } from '../../src/index.js';
import { manualClock, rejects } from '../helpers/assert.js';
import { readRoundTrips, testDistributed } from '../helpers/db.js';
import { useCacheTable } from '../helpers/fixture.js';

const T0 = Date.parse('2032-06-01T00:00:00.000Z');
const at = (ms: number) => new Date(T0 + ms);

describe('store.ext entries', () => {
  const fx = useCacheTable('cp_ext');

  // Both ways a read can slide: pipelined (a select, then a slide of the rows due one) and one statement.
  for (const pipelining of [true, false]) describe(`expiry semantics (pipelining: ${pipelining})`, () => {
    const make = (options: Parameters<typeof fx.make>[0] = {}) => fx.make({ ...options, pipelining });
    it('applies the default sliding expiration when no expiry is given, even with tags', async () => {
      const ext = make({ clock: manualClock(T0), defaultSlidingExpiration: '20m' }).ext;
      await ext.set('plain', 'v');
      await ext.set('tagged', 'v', { tags: ['t'] });
      for (const id of ['plain', 'tagged']) {
        const row = (await fx.row(id))!;
        expect(row.slidingexpirationinseconds).to.equal('1200');
        expect(row.absoluteexpiration).to.equal(null);
        expect(row.expiresattime).to.deep.equal(at(1_200_000));
      }
    });

    it('caps the first expiry and every slide at the absolute expiry', async () => {
      const clock = manualClock(T0);
      const ext = make({ clock }).ext;
      await ext.set('k', 'v', { slidingExpiration: '10m', absoluteExpirationRelative: '15m' });
      expect((await fx.row('k'))!.expiresattime).to.deep.equal(at(600_000));
      clock.advance(540_000);
      expect(await ext.getString('k')).to.equal('v');
      expect((await fx.row('k'))!.expiresattime).to.deep.equal(at(900_000)); // LEAST(9m + 10m, 15m)
      clock.advance(360_001);
      expect(await ext.get('k')).to.equal(undefined);
    });

    it('truncates sliding expirations to whole seconds, as the column stores them', async () => {
      const ext = make({ clock: manualClock(T0) }).ext;
      await ext.set('k', 'v', { slidingExpiration: 1999 });
      expect((await fx.row('k'))!.slidingexpirationinseconds).to.equal('1');
    });

    it('slides on get, getMany and refresh; never on has, info or ttl', async () => {
      const clock = manualClock(T0);
      const ext = make({ clock }).ext;
      await ext.setMany({ a: '1', b: '2' }, { slidingExpiration: '1m' });
      clock.advance(30_000);
      const xmin = (await fx.row('a'))!.xmin;
      expect(await ext.has('a')).to.equal(true);
      expect(await ext.ttl('a')).to.equal(30_000);
      expect((await ext.info('a'))!.expiresAt).to.deep.equal(at(60_000));
      expect((await fx.row('a'))!.xmin).to.equal(xmin);

      expect(await ext.refresh('a')).to.equal(true);
      expect((await fx.row('a'))!.expiresattime).to.deep.equal(at(90_000));
      clock.advance(10_000);
      expect([...(await ext.getMany(['a', 'b', 'zz'])).keys()].sort()).to.deep.equal(['a', 'b']);
      expect((await fx.row('b'))!.expiresattime).to.deep.equal(at(100_000));
      expect(await ext.refresh('missing')).to.equal(false);
    });

    it('rewrites a hot sliding entry only when the slide moves it by more than slidingWriteThreshold of its window', async () => {
      const clock = manualClock(T0);
      const ext = make({ clock, slidingWriteThreshold: 0.1 }).ext;
      await ext.set('hot', 'v', { slidingExpiration: '100s' });
      const written = (await fx.row('hot'))!.xmin;
      clock.advance(9_000); // a 9 s move: under 10% of the window
      expect(await ext.getString('hot')).to.equal('v');
      expect(await ext.refresh('hot')).to.equal(true);
      expect((await fx.row('hot'))!.xmin).to.equal(written);
      expect((await fx.row('hot'))!.expiresattime).to.deep.equal(at(100_000));
      clock.advance(2_000); // 11 s: over it
      await ext.get('hot');
      expect((await fx.row('hot'))!.expiresattime).to.deep.equal(at(111_000));
    });

    it('sends a slide only for the rows a read finds due one, and answers after it landed', async () => {
      const clock = manualClock(T0);
      const store = make({ clock, slidingWriteThreshold: 0.1 });
      await store.ext.setMany({ s1: 'a', s2: 'b' }, { slidingExpiration: '100s' });
      await store.ext.set('plain', 'p', { absoluteExpirationRelative: '1h' });
      const trips = async (fn: () => Promise<unknown>) => {
        const before = store.roundTrips;
        await fn();
        return store.roundTrips - before;
      };
      clock.advance(5_000); // not due: a 5 s move is under 10% of the window
      expect(await trips(() => store.ext.getMany(['s1', 's2', 'plain']))).to.equal(1);
      clock.advance(20_000); // due: the read is followed by one slide of the due rows, before it answers
      // Without pipelining, one statement reads and slides (getMany's CTE); on a distributed table reads are
      // always split (Executor.splitReads).
      expect(await trips(() => store.ext.getMany(['s1', 'plain']))).to.equal(pipelining || testDistributed() ? 2 : 1);
      expect((await fx.row('s1'))!.expiresattime).to.deep.equal(at(125_000));
      expect((await fx.row('s2'))!.expiresattime).to.deep.equal(at(100_000)); // not read: not slid
    });

    it('reads an entry without sliding expiration without writing it', async () => {
      const ext = make().ext;
      await ext.set('abs', 'v', { absoluteExpirationRelative: '1h' });
      const xmin = (await fx.row('abs'))!.xmin;
      await ext.get('abs');
      await ext.getMany(['abs']);
      await ext.refresh('abs');
      await ext.getPattern('ab*');
      expect((await fx.row('abs'))!.xmin).to.equal(xmin);
    });

    it('tells never-expiring entries apart in info and ttl', async () => {
      const store = make();
      await store.set('keyv:forever', '1'); // Keyv without TTL: expiresattime = infinity
      expect(await store.ext.ttl('keyv:forever')).to.equal(Number.POSITIVE_INFINITY);
      expect(await store.ext.info('keyv:forever')).to.deep.equal({
        expiresAt: null, ttl: Number.POSITIVE_INFINITY, slidingExpiration: undefined, absoluteExpiration: undefined, tags: [],
      });
      expect(await store.ext.ttl('missing')).to.equal(undefined);
    });

    it('uses exact row ids: no Keyv namespace prefix', async () => {
      const store = make();
      store.namespace = 'keyv';
      await store.ext.set('user:1', 'raw');
      expect(await fx.ids()).to.deep.equal(['user:1']);
    });
  });

  describe('values', () => {
    it('stores Buffers, Uint8Array views (only the viewed bytes), strings as UTF-8, and empty values', async () => {
      const ext = fx.make().ext;
      const backing = new Uint8Array([9, 1, 2, 3, 9]);
      await ext.set('buffer', Buffer.from([0, 1, 254, 255]));
      await ext.set('view', backing.subarray(1, 4));
      await ext.set('text', 'Grüße 😀');
      await ext.set('empty', Buffer.alloc(0));
      expect([...(await ext.get('buffer'))!]).to.deep.equal([0, 1, 254, 255]);
      expect([...(await ext.get('view'))!]).to.deep.equal([1, 2, 3]);
      expect((await fx.row('text'))!.value.equals(Buffer.from('Grüße 😀', 'utf8'))).to.equal(true);
      expect((await ext.get('empty'))!.length).to.equal(0);
    });
  });

  describe('bulk', () => {
    it('does getMany, setMany and deleteMany in one statement each, and nothing for empty input', async () => {
      const store = fx.make();
      await store.has('warm');
      const count = async (fn: () => Promise<unknown>) => {
        const before = store.roundTrips;
        await fn();
        return store.roundTrips - before;
      };
      const entries = new Map(Array.from({ length: 50 }, (_, i) => [`k${i}`, `v${i}`] as const));
      expect(await count(() => store.ext.setMany(entries, { tags: ['bulk'] }))).to.equal(1);
      expect(await count(async () => expect((await store.ext.getMany(entries.keys())).size).to.equal(50))).to.equal(readRoundTrips());
      expect(await count(async () => expect(await store.ext.deleteMany(['k1', 'k2', 'nope'])).to.equal(2))).to.equal(1);
      expect(await count(() => store.ext.getMany([]))).to.equal(0);
      expect(await count(() => store.ext.setMany([]))).to.equal(0);
      expect(await count(() => store.ext.deleteMany([]))).to.equal(0);
      expect((await fx.row('k3'))!.tags).to.deep.equal(['bulk']);
    });

    it('accepts a Map, an object or pairs for setMany; a later duplicate wins', async () => {
      const ext = fx.make().ext;
      await ext.setMany([['a', '1'], ['a', '2'], ['b', '3']]);
      await ext.setMany({ c: '4' });
      const found = await ext.getMany(['a', 'b', 'c']);
      expect(Object.fromEntries([...found].map(([k, v]) => [k, v.toString()]))).to.deep.equal({ a: '2', b: '3', c: '4' });
    });
  });

  describe('bad input', () => {
    it('refuses it with a typed error and writes nothing', async () => {
      const clock = manualClock(T0);
      const ext = fx.make({ clock }).ext;
      await rejects(ext.set('', 'v'), InvalidKeyError, /empty/);
      await rejects(ext.set('k'.repeat(450), 'v'), InvalidKeyError, /449/);
      await rejects(ext.set('a\0', 'v'), InvalidKeyError, /NUL/);
      await rejects(ext.set('k', 42 as never), InvalidValueError, /Buffer, a Uint8Array or a string; got number/);
      await rejects(ext.set('k', { a: 1 } as never), InvalidValueError, /Serialize objects first/);
      await rejects(ext.set('k', 'bad \ud800'), InvalidValueError, /lone surrogate/);
      await rejects(ext.set('k', 'v', { slidingExpiration: -1 }), InvalidOptionError, /slidingExpiration/);
      await rejects(ext.set('k', 'v', { slidingExpiration: Number.NaN }), InvalidOptionError, /slidingExpiration/);
      await rejects(ext.set('k', 'v', { slidingExpiration: 'ten minutes' }), InvalidOptionError, /Invalid duration/);
      await rejects(ext.set('k', 'v', { slidingExpiration: 500 }), InvalidOptionError, /at least 1 second/);
      await rejects(ext.set('k', 'v', { absoluteExpiration: new Date(T0 - 1) }), InvalidOptionError, /must be in the future/);
      await rejects(ext.set('k', 'v', { absoluteExpiration: new Date(T0) }), InvalidOptionError, /must be in the future/);
      await rejects(ext.set('k', 'v', { absoluteExpiration: 'tomorrow' as never }), InvalidOptionError, /valid Date/);
      await rejects(ext.set('k', 'v', { absoluteExpirationRelative: 0 }), InvalidOptionError, /greater than zero/);
      await rejects(
        ext.set('k', 'v', { absoluteExpiration: new Date(T0 + 1000), absoluteExpirationRelative: '1m' }),
        InvalidOptionError,
        /not both/,
      );
      await rejects(ext.set('k', 'v', { tags: [''] }), InvalidOptionError, /non-empty string/);
      await rejects(ext.set('k', 'v', { tags: 'a' as never }), InvalidOptionError, /array of strings/);
      await rejects(ext.set('k', 'v', { ttl: '1m' } as never), InvalidOptionError, /unknown entry option/);
      await rejects(ext.setMany([['ok', '1'], ['bad', 5 as never]]), InvalidValueError, /value of "bad"/);
      await rejects(ext.getMany('abc' as never), InvalidValueError, /not a single string/);
      expect(await fx.count()).to.equal(0);
    });
  });
});
