import { expect } from 'chai';
import { InvalidOptionError, InvalidValueError, LockTimeoutError, PgStore } from '../../src/index.js';
import { rejects } from '../helpers/assert.js';
import { readRoundTrips, testUrl, waitFor } from '../helpers/db.js';
import { useCacheTable } from '../helpers/fixture.js';

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

describe('store.ext.getOrSet', () => {
  const fx = useCacheTable('cp_gos');

  /** Holds the cross-language key lock in another session, as .NET's GetOrCreateAsync would. */
  async function holdKeyLock(key: string) {
    const client = await fx.pool.connect();
    await client.query('BEGIN');
    await client.query('SELECT pg_advisory_xact_lock(hashtextextended($1, 0))', [key]);
    return {
      client,
      async commit() {
        await client.query('COMMIT');
        client.release();
      },
    };
  }

  it('serves a hit with one lock-free statement', async () => {
    const store = fx.make();
    await store.ext.set('hot', 'cached');
    let calls = 0;
    const before = store.roundTrips;
    const value = await store.ext.getOrSet('hot', () => {
      calls++;
      return 'computed';
    });
    expect(value.toString()).to.equal('cached');
    expect(calls).to.equal(0);
    expect(store.roundTrips - before).to.equal(readRoundTrips());
  });

  it('calls the factory once for 20 concurrent callers in a process, and stores with the entry options', async () => {
    const store = fx.make();
    let calls = 0;
    const results = await Promise.all(
      Array.from({ length: 20 }, () =>
        store.ext.getOrSet(
          'cold',
          async () => {
            calls++;
            await sleep(50);
            return 'fresh';
          },
          { slidingExpiration: '5m', tags: ['gos'] },
        ),
      ),
    );
    expect(calls).to.equal(1);
    expect(results.map(String)).to.deep.equal(Array(20).fill('fresh'));
    expect(new Set(results).size).to.equal(20); // each caller its own Buffer
    const row = (await fx.row('cold'))!;
    expect(row.slidingexpirationinseconds).to.equal('300');
    expect(row.tags).to.deep.equal(['gos']);
  });

  it('waits on the key lock another process or language holds, then serves what it stored', async () => {
    const store = fx.make();
    const holder = await holdKeyLock('shared');
    let calls = 0;
    const pending = store.ext.getOrSet('shared', () => {
      calls++;
      return 'mine';
    });
    await waitFor(async () => {
      const rows = await fx.pool.query(`SELECT 1 FROM pg_locks WHERE locktype = 'advisory' AND NOT granted`);
      return rows.rowCount! > 0;
    }, 5000, 'getOrSet to wait on the advisory lock');
    await holder.client.query(
      `INSERT INTO public.${fx.table} (id, value, expiresattime, slidingexpirationinseconds) VALUES ($1, $2, $3, 1200)`,
      ['shared', Buffer.from('theirs'), new Date(Date.now() + 1_200_000)],
    );
    await holder.commit();
    expect((await pending).toString()).to.equal('theirs');
    expect(calls).to.equal(0);
  });

  it('rejects every waiting caller with the factory error, stores nothing and frees the lock', async () => {
    const store = fx.make();
    const boom = new Error('downstream is down');
    const outcomes = await Promise.allSettled(
      Array.from({ length: 5 }, () =>
        store.ext.getOrSet('fails', async () => {
          await sleep(20);
          throw boom;
        }),
      ),
    );
    expect(outcomes.every((o) => o.status === 'rejected' && o.reason === boom)).to.equal(true);
    expect(await fx.row('fails')).to.equal(undefined);
    const [locks] = (await fx.pool.query(`SELECT count(*)::int AS n FROM pg_locks WHERE locktype = 'advisory'`)).rows;
    expect(locks.n).to.equal(0);
    expect((await store.ext.getOrSet('fails', () => 'recovered')).toString()).to.equal('recovered');
  });

  it('honours lockTimeout with a typed error, or runs the factory itself when asked', async () => {
    const store = fx.make();
    const holder = await holdKeyLock('slow');
    try {
      let calls = 0;
      const started = performance.now();
      const error = await rejects(
        store.ext.getOrSet('slow', () => {
          calls++;
          return 'x';
        }, { lockTimeout: '150ms' }),
        LockTimeoutError,
        /150 ms waiting for the key lock "slow"/,
      );
      expect(performance.now() - started).to.be.at.least(140);
      expect(error.code).to.equal('E_LOCK_TIMEOUT');
      expect(calls).to.equal(0);

      const value = await store.ext.getOrSet('slow', () => 'impatient', { lockTimeout: 100, onLockTimeout: 'run' });
      expect(value.toString()).to.equal('impatient');
      expect(await store.ext.getString('slow')).to.equal('impatient');
    } finally {
      await holder.commit();
    }
  });

  it('does not deadlock its pool: poolMax 2 and 50 different cold keys at once', async () => {
    const store = new PgStore({ uri: testUrl(), table: fx.table, poolMax: 2, enableExpirationScan: false });
    try {
      const keys = Array.from({ length: 50 }, (_, i) => `many:${i}`);
      const values = await Promise.all(keys.map((key) => store.ext.getOrSet(key, async () => {
        await sleep(5);
        return key.toUpperCase();
      })));
      expect(values.map(String)).to.deep.equal(keys.map((key) => key.toUpperCase()));
    } finally {
      await store.disconnect();
    }
  });

  it('lets the factory choose the entry options from the value it computed', async () => {
    const ext = fx.make().ext;
    await ext.getOrSet('adaptive', (ctx) => {
      ctx.setOptions({ absoluteExpirationRelative: '90s', tags: ['adaptive'] });
      return 'short-lived';
    }, { slidingExpiration: '1h' });
    const info = (await ext.info('adaptive'))!;
    expect(info.slidingExpiration).to.equal(undefined);
    expect(info.tags).to.deep.equal(['adaptive']);
    expect(info.ttl).to.be.within(85_000, 90_000);
  });

  it('recomputes a stored value that isFresh refuses, once for concurrent callers', async () => {
    const ext = fx.make().ext;
    await ext.set('versioned', 'v1');
    let calls = 0;
    const isFresh = (value: Buffer) => value.toString() !== 'v1';
    const values = await Promise.all(Array.from({ length: 5 }, () => ext.getOrSet('versioned', async () => {
      calls++;
      await sleep(20);
      return 'v2';
    }, { isFresh })));
    expect(values.map(String)).to.deep.equal(Array(5).fill('v2'));
    expect(calls).to.equal(1);
    expect((await ext.getOrSet('versioned', () => 'v3', { isFresh })).toString()).to.equal('v2');
  });

  it('checks its input before calling the factory', async () => {
    const ext = fx.make().ext;
    let calls = 0;
    const factory = () => {
      calls++;
      return 'x';
    };
    await rejects(ext.getOrSet('k', 'not a function' as never), InvalidValueError, /factory function/);
    await rejects(ext.getOrSet('k', factory, { slidingExpiration: -1 }), InvalidOptionError, /slidingExpiration/);
    await rejects(ext.getOrSet('k', factory, { lockTimeout: 'soon' }), InvalidOptionError, /lockTimeout/);
    await rejects(ext.getOrSet('k', factory, { onLockTimeout: 'wait' as never }), InvalidOptionError, /onLockTimeout/);
    await rejects(ext.getOrSet('k', factory, { isFresh: true as never }), InvalidOptionError, /isFresh/);
    expect(calls).to.equal(0);
    await rejects(ext.getOrSet('k', () => ({ not: 'bytes' }) as never), InvalidValueError, /factory result/);
    expect(await fx.row('k')).to.equal(undefined);
  });
});

describe('store.ext locks', () => {
  const fx = useCacheTable('cp_locks');

  it('hands out strictly increasing fencing tokens and refuses a second holder', async () => {
    const ext = fx.make().ext;
    const first = (await ext.tryLock('job'))!;
    expect(first.token).to.be.a('bigint');
    expect(await ext.tryLock('job')).to.equal(undefined);
    expect(await ext.isLocked('job')).to.equal(true);
    expect(await first.held()).to.equal(true);
    await first.release();
    expect(await ext.isLocked('job')).to.equal(false);
    const second = (await ext.tryLock('job'))!;
    expect(second.token > first.token).to.equal(true);
    await second.release();
  });

  it('frees a lease after its ttl, and then refuses release and extend by the old holder', async () => {
    let now = Date.now();
    const ext = fx.make({ clock: () => now }).ext;
    const old = (await ext.tryLock('lease', { ttl: '10s' }))!;
    now += 9_000;
    expect(await ext.tryLock('lease')).to.equal(undefined); // no earlier
    now += 1_001;
    const next = (await ext.tryLock('lease', { ttl: '10s' }))!;
    expect(next.token > old.token).to.equal(true);
    await rejects(old.release(), Error, /no longer holds it/);
    await rejects(old.extend(), Error, /no longer holds it/);
    expect(old.signal.aborted).to.equal(true);
    expect(await next.held()).to.equal(true);
    now += 10_001;
    await rejects(next.extend('1m'), Error, /Cannot extend lock "lease"/); // after expiry, even with nobody else
  });

  it('waits for a lock up to `wait`, then throws LockTimeoutError', async () => {
    const ext = fx.make().ext;
    const held = (await ext.tryLock('busy'))!;
    const started = performance.now();
    await rejects(ext.lock('busy', { wait: '120ms', retryInterval: '20ms' }), LockTimeoutError, /waiting for the lock "busy"/);
    expect(performance.now() - started).to.be.at.least(110);
    const waiting = ext.lock('busy', { wait: '5s', retryInterval: '10ms' });
    await held.release();
    const got = await waiting;
    expect(got.token > held.token).to.equal(true);
    await got.release();
  });

  it('withLock releases after success and after a throw', async () => {
    const ext = fx.make().ext;
    expect(await ext.withLock('w', async (lock) => `token ${lock.token}`)).to.match(/^token \d+$/);
    expect(await ext.isLocked('w')).to.equal(false);
    await rejects(ext.withLock('w', () => {
      throw new Error('inside');
    }), Error, /inside/);
    expect(await ext.isLocked('w')).to.equal(false);
  });

  it('withLock renews the lease while the function runs longer than the ttl', async () => {
    const ext = fx.make().ext;
    const other = fx.make().ext;
    await ext.withLock('renewed', async () => {
      // Three ttls pass; without renewal the lease would have run out twice.
      await sleep(600);
      expect(await other.tryLock('renewed')).to.equal(undefined);
    }, { ttl: '200ms' });
    expect(await other.isLocked('renewed')).to.equal(false);
  });

  it('withLock aborts the signal and fails when the lease is lost', async () => {
    let now = Date.now();
    const ext = fx.make({ clock: () => now }).ext;
    const error = await rejects(
      ext.withLock('lost', async (lock) => {
        now += 60_000; // the lease runs out under the holder (a long pause)
        await waitFor(() => lock.signal.aborted, 5000, 'the renewal to notice');
        return 'done';
      }, { ttl: '150ms' }),
      Error,
      /no longer holds it/,
    );
    expect((error as { code?: string }).code).to.equal('E_LOCK_NOT_HELD');
  });

  it('keeps lock rows out of the cache table: no collision with cache keys, patterns or Keyv', async () => {
    const store = fx.make();
    await store.ext.set('report', 'cached value');
    const lock = (await store.ext.tryLock('report'))!;
    expect(await store.ext.getString('report')).to.equal('cached value');
    expect([...(await store.ext.getPattern('*')).keys()]).to.deep.equal(['report']);
    expect(await fx.ids()).to.deep.equal(['report']);
    // Their own table, WAL-logged even beside an UNLOGGED cache: a crash must not reset fencing tokens.
    const [locks] = (await fx.pool.query(`SELECT relpersistence FROM pg_class WHERE oid = to_regclass($1)`, [`public.${fx.table}_locks`])).rows;
    expect(locks.relpersistence).to.equal('p');
    await lock.release();
  });
});
