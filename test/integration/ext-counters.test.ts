import { expect } from 'chai';
import { CounterOverflowError, InvalidOptionError, InvalidValueError, NotACounterError, PgStore } from '../../src/index.js';
import { manualClock, rejects } from '../helpers/assert.js';
import { sql, testUrl } from '../helpers/db.js';
import { useCacheTable } from '../helpers/fixture.js';

describe('store.ext counters', () => {
  const fx = useCacheTable('cp_counter');

  it('creates a never-expiring counter stored as decimal text, then adds atomically', async () => {
    const ext = fx.make().ext;
    expect(await ext.incr('hits')).to.equal(1);
    expect(await ext.incr('hits', 41)).to.equal(42);
    expect(await ext.decr('hits', 2)).to.equal(40);
    expect(await ext.decr('hits')).to.equal(39);
    const row = (await fx.row('hits'))!;
    expect(row.value.toString('utf8')).to.equal('39'); // what .NET's GetString and Python's incr read
    expect(row.expiresattime).to.equal(Number.POSITIVE_INFINITY);
  });

  it('is exact under 20 concurrent callers, each getting a distinct value', async () => {
    const store = new PgStore({ uri: testUrl(), table: fx.table, poolMax: 20, enableExpirationScan: false });
    const ext = store.ext;
    await ext.has('warm'); // so the 20 calls race on the row, not on the first schema check
    const results = await Promise.all(Array.from({ length: 20 }, () => ext.incr('race', 5)));
    expect(await ext.getString('race')).to.equal('100');
    await store.disconnect();
    expect([...results].sort((a, b) => Number(a) - Number(b))).to.deep.equal(Array.from({ length: 20 }, (_, i) => (i + 1) * 5));
  });

  it('applies a ttl only when it creates the counter', async () => {
    const clock = manualClock(Date.parse('2033-01-01T00:00:00.000Z'));
    const ext = fx.make({ clock }).ext;
    await ext.incr('rate', 1, { ttl: '1m', tags: ['limits'] });
    clock.advance(10_000);
    await ext.incr('rate', 1, { ttl: '1h' });
    const row = (await fx.row('rate'))!;
    expect(row.expiresattime).to.deep.equal(new Date('2033-01-01T00:01:00.000Z'));
    expect(row.tags).to.deep.equal(['limits']);
  });

  it('restarts an expired counter from `by` and clears its old sliding, absolute and tags', async () => {
    const clock = manualClock();
    const ext = fx.make({ clock }).ext;
    await ext.set('old', '500', { slidingExpiration: '1m', absoluteExpirationRelative: '1h', tags: ['x'] });
    clock.advance(61_000);
    expect(await ext.incr('old', 3)).to.equal(3);
    const row = (await fx.row('old'))!;
    expect(row.slidingexpirationinseconds).to.equal(null);
    expect(row.absoluteexpiration).to.equal(null);
    expect(row.tags).to.equal(null);
    expect(row.expiresattime).to.equal(Number.POSITIVE_INFINITY);
  });

  it('keeps a live sliding entry sliding (the counter adds, the expiry stays)', async () => {
    const ext = fx.make().ext;
    await ext.set('views', '10', { slidingExpiration: '5m' });
    expect(await ext.incr('views')).to.equal(11);
    expect((await fx.row('views'))!.slidingexpirationinseconds).to.equal('300');
  });

  it('returns bigint past Number.MAX_SAFE_INTEGER, never a rounded number', async () => {
    const ext = fx.make().ext;
    await ext.incr('big', BigInt(Number.MAX_SAFE_INTEGER));
    const value = await ext.incr('big', 2);
    expect(value).to.equal(BigInt(Number.MAX_SAFE_INTEGER) + 2n);
    expect(await ext.getString('big')).to.equal('9007199254740993');
  });

  it('refuses a non-numeric value and overflow with typed errors, leaving the row unchanged', async () => {
    const ext = fx.make().ext;
    await ext.set('text', 'abc');
    await rejects(ext.incr('text'), NotACounterError, /not a decimal integer/);
    expect(await ext.getString('text')).to.equal('abc');
    await ext.set('binary', Buffer.from([0xff, 0xfe]));
    await rejects(ext.incr('binary'), NotACounterError);
    await ext.incr('max', 2n ** 63n - 1n);
    await rejects(ext.incr('max'), CounterOverflowError, /64-bit/);
    expect(await ext.getString('max')).to.equal('9223372036854775807');
  });

  it('refuses bad increments and ttls before writing', async () => {
    const ext = fx.make().ext;
    for (const by of [1.5, Number.NaN, '1' as never, 2n ** 63n]) {
      await rejects(ext.incr('k', by), InvalidValueError, /safe integer or a 64-bit bigint/);
    }
    await rejects(ext.incr('k', 1, { ttl: 0 }), InvalidOptionError, /greater than zero/);
    expect((await sql(`SELECT 1 FROM public.${fx.table}`)).length).to.equal(0);
  });
});
