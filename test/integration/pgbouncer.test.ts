import { expect } from 'chai';
import Keyv from 'keyv';
import { PgStore } from '../../src/index.js';
import { dropTables, testUrl, uniqueTable } from '../helpers/db.js';
import { pgbouncerBinary, startPgBouncer } from '../helpers/pgbouncer.js';

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

describe('through PgBouncer in transaction pooling mode', function () {
  this.timeout(60_000);
  const table = uniqueTable('cp_bouncer');
  let bouncer: Awaited<ReturnType<typeof startPgBouncer>> | undefined;
  const stores: PgStore[] = [];
  const make = () => {
    const store = new PgStore({ uri: bouncer!.url, table, preparedStatements: false, enableExpirationScan: false, poolMax: 4 });
    stores.push(store);
    return store;
  };

  before(async function () {
    const binary = pgbouncerBinary();
    if (!binary) {
      // Reason: the pgbouncer binary is missing (.ci/run installs Debian's package; on a developer machine
      // `apt-get install pgbouncer` enables these tests). Everything else runs without it.
      console.log('    pgbouncer is not installed: skipping the PgBouncer tests');
      this.skip();
    }
    bouncer = await startPgBouncer(binary, testUrl());
  });
  after(async () => {
    await Promise.all(stores.map((s) => s.disconnect()));
    await bouncer?.stop();
    await dropTables(table, `${table}_locks`);
  });

  it('serves Keyv, batched reads and writes', async () => {
    const keyv = new Keyv({ store: make(), namespace: 'pgb' });
    await Promise.all(Array.from({ length: 20 }, (_, i) => keyv.set(`k${i}`, { i })));
    expect(await Promise.all(Array.from({ length: 20 }, (_, i) => keyv.get(`k${i}`)))).to.deep.equal(Array.from({ length: 20 }, (_, i) => ({ i })));
    expect(await keyv.delete('k1')).to.equal(true);
  });

  it('keeps getOrSet stampede-safe: its advisory lock is transaction-scoped', async () => {
    const [a, b] = [make(), make()];
    let calls = 0;
    const factory = async () => {
      calls++;
      await sleep(100);
      return 'once';
    };
    const values = await Promise.all([...Array(5)].flatMap(() => [a.ext.getOrSet('stampede', factory), b.ext.getOrSet('stampede', factory)]));
    expect(values.map(String)).to.deep.equal(Array(10).fill('once'));
    expect(calls).to.equal(1);
  });

  it('keeps lease locks exclusive, with increasing tokens', async () => {
    const [a, b] = [make(), make()];
    const first = (await a.ext.tryLock('job'))!;
    expect(await b.ext.tryLock('job')).to.equal(undefined);
    await first.release();
    const second = (await b.ext.tryLock('job'))!;
    expect(second.token > first.token).to.equal(true);
    await second.release();
  });
});
