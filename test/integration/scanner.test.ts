import { expect } from 'chai';
import { LOCK_CLASS } from '../../src/sql/index.js';
import { manualClock } from '../helpers/assert.js';
import { sql } from '../helpers/db.js';
import { useCacheTable } from '../helpers/fixture.js';

describe('expiration scan', () => {
  const fx = useCacheTable('cp_scan');
  const table = fx.table;
  const make = (options: Parameters<typeof fx.make>[0] = {}) => fx.make({ enableExpirationScan: true, ...options });
  const ids = () => fx.ids();

  /** Rows whose expiry is `ms` from the real now: negative for already expired. */
  async function seed(prefix: string, count: number, ms: number) {
    await sql(
      `INSERT INTO public.${table} (id, value, expiresattime)
       SELECT $1 || g, '\\x00'::bytea, $2::timestamptz FROM generate_series(1, $3) AS g`,
      [prefix, new Date(Date.now() + ms), count],
    );
  }

  it('physically deletes expired rows in the background once the store is used, and only those', async () => {
    await seed('old', 25, -60_000);
    await seed('live', 3, 60_000);
    const store = make({ deleteBatchSize: 10 });
    const deleted = new Promise<number>((resolve) => store.once('expired-deleted', ({ count }) => resolve(count)));
    await store.has('start'); // the first operation readies the store and starts the scan
    expect(await deleted).to.equal(25);
    expect(await ids()).to.deep.equal(['live1', 'live2', 'live3']);
  });

  it('clearExpired() works in batches and returns how many rows it deleted', async () => {
    await seed('old', 23, -1000);
    const store = make({ enableExpirationScan: false, deleteBatchSize: 5 });
    await store.has('warm');
    const before = store.roundTrips;
    expect(await store.clearExpired()).to.equal(23);
    expect(store.roundTrips - before).to.equal(5); // 5 + 5 + 5 + 5 + 3
    expect(await ids()).to.deep.equal([]);
  });

  it('uses the application clock: rows expired by that clock go, others stay', async () => {
    await seed('soon', 4, 30_000);
    const clock = manualClock();
    const store = make({ enableExpirationScan: false, clock });
    expect(await store.clearExpired()).to.equal(0);
    clock.advance(31_000);
    expect(await store.clearExpired()).to.equal(4);
  });

  it('runs in one instance at a time: while another holds the scan lock this instance deletes nothing', async () => {
    await seed('old', 5, -1000);
    const store = make({ enableExpirationScan: false });
    await store.has('warm');
    const holder = await fx.pool.connect();
    try {
      await holder.query('BEGIN');
      await holder.query('SELECT pg_advisory_xact_lock($1, hashtext($2))', [LOCK_CLASS, `scan:public.${table}`]);
      expect(await store.clearExpired()).to.equal(0);
      expect(await ids()).to.have.length(5);
    } finally {
      await holder.query('ROLLBACK');
      holder.release();
    }
    expect(await store.clearExpired()).to.equal(5);
  });
});
