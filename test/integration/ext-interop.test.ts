import { expect } from 'chai';
import { manualClock } from '../helpers/assert.js';
import { testDistributed } from '../helpers/db.js';
import { useCacheTable } from '../helpers/fixture.js';
import { dotnet, python } from '../helpers/peers.js';

const T0 = Date.parse('2031-03-01T12:00:00.000Z');
const bytes = (text: string) => Buffer.from(text, 'utf8');

describe('store.ext interop with .NET and Python (their exact statements)', () => {
  const fx = useCacheTable('cp_interop');
  const t = () => `public.${fx.table}`;
  // Skipped on a distributed table: .NET's and Python's own reads slide with `now + interval` (a STABLE
  // function over columns), which Citus refuses in an UPDATE; test/integration/citus.test.ts asserts that
  // refusal, and the README's "Scaling out" says so. Writes by them and reads by us still run there.
  const peersRead = testDistributed() ? describe.skip : describe;

  describe('.NET writes, ext reads', () => {
    it('reads each expiry combination with the right value, details and sliding', async () => {
      const clock = manualClock(T0);
      const ext = fx.make({ clock }).ext;
      const now = new Date(T0);
      const absolute = new Date(T0 + 3_600_000);
      await dotnet.set(t(), 'sliding', bytes('s'), 60, null, now);
      await dotnet.set(t(), 'absolute', bytes('a'), null, absolute, now);
      await dotnet.set(t(), 'both', bytes('b'), 60, new Date(T0 + 90_000), now);
      await dotnet.set(t(), 'default', bytes('d'), 1200, null, now); // .NET's EnsureExpiration for "no options"

      expect(await ext.info('sliding')).to.deep.include({ slidingExpiration: 60_000, absoluteExpiration: undefined, ttl: 60_000 });
      expect(await ext.info('absolute')).to.deep.include({ slidingExpiration: undefined, ttl: 3_600_000 });
      expect((await ext.info('absolute'))!.absoluteExpiration!.getTime()).to.equal(absolute.getTime());
      expect(await ext.info('default')).to.deep.include({ slidingExpiration: 1_200_000 });

      clock.advance(50_000);
      expect((await ext.get('sliding'))!.toString()).to.equal('s');
      expect(await ext.getString('absolute')).to.equal('a');
      expect(await ext.getString('both')).to.equal('b');
      expect((await fx.row('sliding'))!.expiresattime).to.deep.equal(new Date(T0 + 50_000 + 60_000)); // slid
      expect((await fx.row('absolute'))!.expiresattime).to.deep.equal(absolute); // untouched
      expect((await fx.row('both'))!.expiresattime).to.deep.equal(new Date(T0 + 90_000)); // capped by the absolute
      clock.advance(45_000);
      expect(await ext.get('both')).to.equal(undefined); // past its absolute expiry, whatever the sliding
      expect(await ext.getString('sliding')).to.equal('s'); // 45 s after the slide: still live
    });

    it('reads a .NET SetString as the same UTF-8 text', async () => {
      const ext = fx.make().ext;
      await dotnet.set(t(), 'text', bytes('héllo, 世界 😀'), 600, null, new Date());
      expect(await ext.getString('text')).to.equal('héllo, 世界 😀');
    });
  });

  peersRead('ext writes, .NET reads', () => {
    it('is read, slid and removed by .NET\'s own statements', async () => {
      const clock = manualClock(T0);
      const ext = fx.make({ clock }).ext;
      await ext.set('sliding', 'S', { slidingExpiration: '1m' });
      await ext.set('absolute', 'A', { absoluteExpirationRelative: '1h' });
      await ext.set('both', 'B', { slidingExpiration: '1m', absoluteExpiration: new Date(T0 + 90_000) });
      await ext.set('default', 'D');

      const later = new Date(T0 + 30_000);
      expect((await dotnet.get(t(), 'sliding', later))!.toString()).to.equal('S');
      expect((await dotnet.get(t(), 'absolute', later))!.toString()).to.equal('A');
      expect((await dotnet.get(t(), 'both', later))!.toString()).to.equal('B');
      expect((await dotnet.get(t(), 'default', later))!.toString()).to.equal('D');
      expect((await fx.row('sliding'))!.expiresattime).to.deep.equal(new Date(T0 + 30_000 + 60_000));
      expect((await fx.row('default'))!.slidingexpirationinseconds).to.equal('1200');
      expect((await fx.row('absolute'))!.expiresattime).to.deep.equal(new Date(T0 + 3_600_000));

      await dotnet.remove(t(), 'sliding');
      expect(await ext.has('sliding')).to.equal(false);
      expect(await dotnet.get(t(), 'both', new Date(T0 + 91_000))).to.equal(undefined);
    });

    it('writes strings as UTF-8 without BOM and bytes untouched', async () => {
      const ext = fx.make().ext;
      await ext.set('s', 'héllo');
      await ext.set('b', Buffer.from([0, 255, 1]));
      expect([...(await dotnet.get(t(), 's', new Date()))!]).to.deep.equal([...bytes('héllo')]);
      expect([...(await dotnet.get(t(), 'b', new Date()))!]).to.deep.equal([0, 255, 1]);
    });
  });

  peersRead('Python', () => {
    it('shares entries, tags, counters and patterns both ways', async () => {
      const clock = manualClock(T0);
      const ext = fx.make({ clock }).ext;
      const now = new Date(T0);
      await python.set(t(), 'py:1', bytes('one'), 60, null, ['products', 'py'], now);
      await python.set(t(), 'py:2', bytes('two'), null, null, ['products'], now);
      await ext.set('ts:1', 'three', { tags: ['products', 'ts'] });

      expect(await ext.getString('py:1')).to.equal('one');
      expect((await python.get(t(), 'ts:1', now))!.toString()).to.equal('three');
      expect([...(await ext.getPattern('py:*')).keys()].sort()).to.deep.equal(['py:1', 'py:2']);
      expect(await python.getPattern(t(), 'ts:%', now)).to.deep.equal(['ts:1']);

      // Python's delete_tags is "all of them"; ext's default is "any of them".
      expect(await python.deleteTags(t(), ['products', 'ts'])).to.equal(1);
      expect(await ext.deleteTags(['py'])).to.equal(1);
      expect(await fx.ids()).to.deep.equal(['py:2']);

      expect(await python.incr(t(), 'hits', 5, now)).to.equal('5');
      expect(await ext.incr('hits', 2)).to.equal(7);
      expect(await python.incr(t(), 'hits', 1, now)).to.equal('8');
      expect(await ext.getString('hits')).to.equal('8');
    });
  });
});
