import { expect } from 'chai';
import { DatabaseClock, RESYNC_MS } from '../../src/options/clock.js';
import pg from 'pg';
import { sql, testUrl } from '../helpers/db.js';
import { useCacheTable } from '../helpers/fixture.js';

/**
 * Runs `fn` with this process's wall clock (`Date.now`) moved by `ms`: what a store on an application server
 * whose clock is off sees. Every store here shares the process, so the others are given no call meanwhile.
 */
async function skewed<T>(ms: number, fn: () => Promise<T>): Promise<T> {
  const real = Date.now;
  Date.now = () => real() + ms;
  try {
    return await fn();
  } finally {
    Date.now = real;
  }
}

/** Seconds from the database's now() to the row's expiry. */
async function secondsLeft(table: string, id: string): Promise<number> {
  const [row] = await sql<{ s: number }>(`SELECT extract(epoch FROM expiresattime - now())::float8 AS s FROM public.${table} WHERE id = $1`, [id]);
  return row!.s;
}

describe('one clock: expiry, leases and lock takeovers decided on the database\'s', () => {
  const fx = useCacheTable('cp_clock');

  it('a store whose host clock runs 60 s ahead cannot take a 30 s lock another holds', async () => {
    const holder = fx.make();
    const handle = await holder.ext.tryLock('job', { ttl: '30s' });
    expect(handle).to.not.equal(undefined);
    const ahead = fx.make();
    expect(await skewed(60_000, () => ahead.ext.tryLock('job', { ttl: '30s' }))).to.equal(undefined);
    expect(await skewed(60_000, () => ahead.ext.isLocked('job'))).to.equal(true);
    await handle!.release();
  });

  it('a holder whose host clock runs 60 s behind is not taken over by a store on time', async () => {
    const behind = fx.make();
    const handle = await skewed(-60_000, () => behind.ext.tryLock('job', { ttl: '30s' }));
    expect(handle).to.not.equal(undefined);
    const onTime = fx.make();
    expect(await onTime.ext.tryLock('job', { ttl: '30s' })).to.equal(undefined);
    await skewed(-60_000, () => handle!.release());
  });

  it('an entry written by a store whose host clock runs 60 s behind lives its ttl for the others (Keyv set and ext.set, first call and later)', async () => {
    const behind = fx.make();
    await skewed(-60_000, async () => {
      await behind.set('first', 'v', 30_000); // its first call: timed once the database's clock is read
      await behind.set('later', 'v', 30_000);
      await behind.setMany([{ key: 'many', value: 'v', ttl: 30_000 }]);
    });
    const other = fx.make();
    await skewed(-60_000, () => other.ext.set('ext-first', 'v', { absoluteExpirationRelative: '30s' }));
    await skewed(-60_000, () => other.ext.setMany({ 'ext-many': 'v' }, { absoluteExpirationRelative: '30s' }));
    await skewed(-60_000, () => other.ext.incr('counter', 1, { ttl: '30s' }));
    // In the caller's transaction, as a store's first call too.
    const client = new pg.Client({ connectionString: testUrl() });
    await client.connect();
    try {
      await client.query('BEGIN');
      const tx = fx.make().ext.in(client);
      await skewed(-60_000, () => tx.set('tx-first', 'v', { absoluteExpirationRelative: '30s' }));
      await skewed(-60_000, () => tx.incr('tx-counter', 1, { ttl: '30s' }));
      await client.query('COMMIT');
    } finally {
      await client.end();
    }
    const reader = fx.make();
    for (const key of ['first', 'later', 'many']) expect(await reader.get(key)).to.equal('v');
    for (const key of ['first', 'later', 'many', 'ext-first', 'ext-many', 'counter', 'tx-first', 'tx-counter']) {
      expect(await secondsLeft(fx.table, key), key).to.be.within(20, 31);
    }
  });

  it('an injected clock is still what the store decides on (tests move time with it)', async () => {
    const later = fx.make({ clock: () => Date.now() + 3_600_000 });
    await later.set('k', 'v', 30_000);
    expect(await secondsLeft(fx.table, 'k')).to.be.within(3_600 + 20, 3_600 + 31);
  });
});

describe('DatabaseClock', () => {
  it('follows the server\'s time on the monotonic clock: a step of the host\'s wall clock changes nothing', async () => {
    const clock = new DatabaseClock();
    expect(clock.synced).to.equal(false);
    const server = Date.now() + 123_456;
    await clock.sync(async () => server);
    const read = await skewed(-3_600_000, async () => clock.now());
    expect(read - server).to.be.within(0, 1_000);
  });

  it('keeps a precise reading over a later one delayed by a busy machine, and the one in force when a reading fails', async () => {
    const clock = new DatabaseClock();
    await clock.sync(async () => Date.now());
    const before = clock.now();
    // A reading whose round trip took 200 ms, half of it the error: refused against one of under a millisecond.
    await clock.sync(
      () =>
        new Promise((resolve) => {
          setTimeout(() => resolve(Date.now() + 50_000), 200);
        }),
    );
    expect(clock.now() - before).to.be.within(0, 1_000);
    let threw = false;
    try {
      await clock.sync(async () => {
        throw new Error('connection lost');
      });
    } catch {
      threw = true;
    }
    expect(threw).to.equal(true);
    expect(clock.now() - before).to.be.within(0, 1_000);
  });

  it('reads again on the way of a call once its reading is older than resyncMs (never on a timer), and not after stop()', async () => {
    expect(RESYNC_MS).to.equal(30_000);
    let reads = 0;
    const clock = new DatabaseClock(0);
    await clock.sync(async () => {
      reads++;
      return Date.now();
    });
    expect(reads).to.equal(1);
    clock.now();
    clock.now(); // one reading in flight at a time
    await new Promise((resolve) => setImmediate(resolve));
    expect(reads).to.equal(2);
    clock.stop();
    clock.now();
    await new Promise((resolve) => setImmediate(resolve));
    expect(reads).to.equal(2);
  });
});
