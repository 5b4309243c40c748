import { expect } from 'chai';
import pg from 'pg';
import { PgStore } from '../../src/index.js';
import { dropTables, sql, testUrl, uniqueTable, waitFor } from '../helpers/db.js';

describe('deadlock victims', () => {
  const table = uniqueTable('cp_deadlock');
  const applicationName = uniqueTable('cp_victim');
  let store: PgStore;
  let other: pg.Client;

  before(async () => {
    // A short deadlock_timeout makes our statement the one that detects the cycle, and so the victim.
    store = new PgStore({
      uri: testUrl(),
      table,
      enableExpirationScan: false,
      poolMax: 1,
      poolConfig: { application_name: applicationName, options: '-c deadlock_timeout=100' },
    });
    await store.setMany([{ key: 'a', value: '0' }, { key: 'b', value: '0' }]);
    other = new pg.Client(testUrl());
    await other.connect();
  });
  after(async () => {
    await store.disconnect();
    await other.end();
    await dropTables(table);
  });

  it('retries a statement that PostgreSQL rolled back to break a deadlock', async () => {
    await other.query('BEGIN');
    await other.query(`UPDATE public.${table} SET value = '\\x01' WHERE id = 'b'`);
    const before = store.roundTrips;
    const writing = store.setMany([{ key: 'a', value: '1' }, { key: 'b', value: '1' }]); // locks a, then waits for b
    await waitFor(async () => {
      const rows = await sql(`SELECT 1 FROM pg_stat_activity WHERE application_name = $1 AND wait_event_type = 'Lock'`, [applicationName]);
      return rows.length > 0;
    }, 5000, 'the store to wait for row b');
    await other.query(`UPDATE public.${table} SET value = '\\x02' WHERE id = 'a'`); // the cycle: our statement is the victim
    await other.query('COMMIT');
    expect(await writing).to.deep.equal([true, true]);
    expect(store.roundTrips - before).to.equal(2);
    expect(await store.getMany(['a', 'b'])).to.deep.equal(['1', '1']);
  });
});
