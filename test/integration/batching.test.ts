import { expect } from 'chai';
import pg from 'pg';
import { InvalidKeyError, NotACounterError, PgStore, QueryError } from '../../src/index.js';
import { manualClock } from '../helpers/assert.js';
import { readRoundTrips, sql, testDistributed, testUrl, waitFor } from '../helpers/db.js';
import { useCacheTable } from '../helpers/fixture.js';

describe('auto-batching of concurrent single-key calls', () => {
  const fx = useCacheTable('cp_batch');
  // On a distributed table a tick's writes follow its reads as a second statement (see readRoundTrips).
  const READ = readRoundTrips();
  const READ_AND_WRITE = testDistributed() ? 2 : 1;
  const statements = async (store: ReturnType<typeof fx.make>, calls: () => Promise<unknown>) => {
    const before = store.roundTrips;
    await calls();
    return store.roundTrips - before;
  };

  // Pipelining only: a store on a distributed table does not pipeline (see Executor.pipelining).
  (testDistributed() ? it.skip : it)('sends the gets of one tick as two overlapping halves on one connection, each caller getting its own value', async () => {
    const store = fx.make();
    await store.setMany(Array.from({ length: 30 }, (_, i) => ({ key: `k${i}`, value: `v${i}` })));
    let checkouts = 0;
    const count = () => checkouts++;
    fx.pool.on('acquire', count);
    let values: unknown[] = [];
    const n = await statements(store, async () => {
      values = await Promise.all(Array.from({ length: 30 }, (_, i) => store.get(`k${i}`)));
    });
    fx.pool.off('acquire', count);
    expect(n).to.equal(2);
    expect(checkouts).to.equal(1);
    expect(values).to.deep.equal(Array.from({ length: 30 }, (_, i) => `v${i}`));
  });

  // Pipelining only: without it every statement has a connection of its own anyway.
  (testDistributed() ? it.skip : it)('a large getMany goes on a connection of its own: a get issued while it runs is not written behind it', async () => {
    const store = fx.make();
    const keys = Array.from({ length: 20_000 }, (_, i) => `big:${i}`);
    await store.ext.setMany(keys.map((key) => [key, 'v'.repeat(200)] as const));
    await store.ext.set('small', 's');
    const trips = store.roundTrips;
    let bigDone = false;
    const big = store.ext.getMany(keys).then((found) => ((bigDone = true), found.size));
    await waitFor(() => store.roundTrips > trips, 5_000, 'the large read to be sent');
    const small = await store.ext.get('small'); // before: pipelined behind the large read, answered after it
    expect(small?.toString()).to.equal('s');
    expect(bigDone, 'the large read was still running when the small one answered').to.equal(false);
    expect(await big).to.equal(20_000);
  });

  it('a large getMany builds its answer in turns: the event loop runs between slices of its rows', async () => {
    const store = fx.make();
    const keys = Array.from({ length: 5_000 }, (_, i) => `turns:${i}`);
    await store.ext.setMany(keys.map((key) => [key, 'v'] as const));
    let hits = 0;
    const seen: number[] = [];
    store.on('hit', () => {
      if (hits++ === 0) setImmediate(() => seen.push(hits));
    });
    expect((await store.ext.getMany(keys)).size).to.equal(5_000);
    expect(hits).to.equal(5_000);
    // Before: the answer was one synchronous block, so the event loop next ran after the 5,000th hit.
    expect(seen[0], 'hits counted when the event loop first ran after the first one').to.be.below(5_000);
  });

  it('sends the gets of one tick as one statement without pipelining', async () => {
    const store = fx.make({ pipelining: false });
    await store.setMany(Array.from({ length: 30 }, (_, i) => ({ key: `k${i}`, value: `v${i}` })));
    let values: unknown[] = [];
    expect(await statements(store, async () => {
      values = await Promise.all(Array.from({ length: 30 }, (_, i) => store.get(`k${i}`)));
    })).to.equal(READ);
    expect(values).to.deep.equal(Array.from({ length: 30 }, (_, i) => `v${i}`));
  });

  it('pipelines only on a pool created with pipeline: true: a borrowed plain pool reads and slides in one statement', async () => {
    const plain = new pg.Pool({ connectionString: testUrl(), max: 2 });
    const clock = manualClock();
    const store = new PgStore({ pool: plain, table: fx.table, enableExpirationScan: false, clock });
    try {
      await store.ext.set('slides', 'v', { slidingExpiration: '100s' });
      clock.advance(50_000);
      let values: unknown[] = [];
      expect(await statements(store, async () => {
        values = await Promise.all(Array.from({ length: 10 }, () => store.ext.getString('slides')));
      })).to.equal(testDistributed() ? 2 : 1); // distributed, reads are split: the select, then the due row's slide
      expect(values).to.deep.equal(Array(10).fill('v'));
      expect(((await fx.row('slides'))!.expiresattime as Date).getTime()).to.equal(clock() + 100_000);
    } finally {
      await store.disconnect();
      await plain.end();
    }
  });

  it('keeps errors apart in a pipeline: a write the table refuses fails alone, the reads beside it succeed', async () => {
    const store = fx.make();
    await store.set('readable', 'A');
    await sql(`ALTER TABLE public.${fx.table} ADD CONSTRAINT no_poison CHECK (value <> convert_to('poison', 'UTF8'))`);
    try {
      const [read, write, other] = await Promise.allSettled([store.get('readable'), store.set('p', 'poison'), store.get('missing')]);
      expect(read).to.deep.equal({ status: 'fulfilled', value: 'A' });
      expect(other).to.deep.equal({ status: 'fulfilled', value: undefined });
      expect((write as PromiseRejectedResult).reason).to.be.instanceOf(QueryError).and.have.property('sqlState', '23514');
      expect(await store.get('readable')).to.equal('A'); // the lane's connection was replaced and works
    } finally {
      await sql(`ALTER TABLE public.${fx.table} DROP CONSTRAINT no_poison`);
    }
  });

  it('reads text (Keyv) in escape form and bytes in base64, exact for every byte value, in one tick or apart', async () => {
    const store = fx.make();
    const values: Record<string, Buffer> = {
      ascii: Buffer.from('{"value":"plain ascii"}'),
      backslashes: Buffer.from(JSON.stringify({ value: 'say "hi"\n\\ C:\\path' })),
      unicode: Buffer.from(JSON.stringify({ value: 'café, 東京, 🚀' })),
      everyByte: Buffer.from(Array.from({ length: 512 }, (_, i) => i % 256)),
      nul: Buffer.from([0, 0x5c, 0x30, 0x30, 0x30, 0]), // NUL, then a backslash followed by digits
      empty: Buffer.alloc(0),
    };
    await store.ext.setMany(values, { absoluteExpirationRelative: '1h' });
    const names = Object.keys(values);
    // Same tick: both kinds of read of every key share one pipeline.
    const [texts, bytes] = await Promise.all([
      Promise.all(names.map((name) => store.get(name))),
      Promise.all(names.map((name) => store.ext.get(name))),
    ]);
    const textsAlone = await Promise.all(names.map((name) => store.get(name)));
    names.forEach((name, i) => {
      expect(texts[i], name).to.equal(values[name]!.toString('utf8'));
      expect(textsAlone[i], name).to.equal(values[name]!.toString('utf8'));
      expect(bytes[i]!.equals(values[name]!), name).to.equal(true);
    });
  });

  it('hands a key read twice in one tick to each caller as its own Buffer', async () => {
    const store = fx.make();
    await store.ext.set('dup', 'same');
    const [a, b] = await Promise.all([store.ext.get('dup'), store.ext.get('dup')]);
    expect(a!.toString()).to.equal('same');
    expect(b!.toString()).to.equal('same');
    a![0] = 0x41;
    expect(b!.toString()).to.equal('same');
  });

  it('sends the sets of one tick as one upsert (a later duplicate wins), deletes and has-checks as one statement each', async () => {
    const store = fx.make();
    await store.has('warm');
    expect(await statements(store, () => Promise.all([
      store.set('a', '1'), store.set('b', '2'), store.ext.set('c', 'three', { tags: ['t'] }), store.set('a', 'last'),
    ]))).to.equal(1);
    expect(await store.get('a')).to.equal('last');
    expect((await fx.row('c'))!.tags).to.deep.equal(['t']);
    let found: boolean[] = [];
    expect(await statements(store, async () => {
      found = await Promise.all([store.has('a'), store.has('zz'), store.ext.has('c')]);
    })).to.equal(1);
    expect(found).to.deep.equal([true, false, true]);
    let deleted: boolean[] = [];
    expect(await statements(store, async () => {
      deleted = await Promise.all([store.delete('a'), store.delete('a'), store.delete('zz'), store.ext.delete('c')]);
    })).to.equal(1);
    expect(deleted).to.deep.equal([true, false, false, true]); // as if one after another
  });

  it('sends a tick of mixed gets and sets as one statement; each get sees the sets issued before it', async () => {
    const store = fx.make();
    await store.setMany([{ key: 'm1', value: 'old' }, { key: 'm2', value: 'two' }]);
    let results: unknown[] = [];
    expect(await statements(store, async () => {
      results = await Promise.all([store.get('m1'), store.set('m1', 'new'), store.get('m2'), store.set('m3', 'three'), store.get('m3')]);
    })).to.equal(READ_AND_WRITE);
    expect(results).to.deep.equal(['old', true, 'two', true, 'three']);
    expect(await store.getMany(['m1', 'm3'])).to.deep.equal(['new', 'three']);
  });

  it('coalesces increments of one key into one statement with distinct, sequential results', async () => {
    const store = fx.make();
    await store.has('warm');
    let results: Array<number | bigint> = [];
    expect(await statements(store, async () => {
      results = await Promise.all(Array.from({ length: 20 }, () => store.ext.incr('hits')));
    })).to.equal(1);
    expect(results).to.deep.equal(Array.from({ length: 20 }, (_, i) => i + 1));
    expect(await store.ext.incr('hits', 0)).to.equal(20);
  });

  it('keeps errors per caller: a bad key, or a key that is not a counter, fails only its own call', async () => {
    const store = fx.make();
    await store.ext.set('text', 'abc');
    const [ok, bad, alsoOk] = await Promise.allSettled([store.get('x'), store.get(''), store.ext.incr('n')]);
    expect(ok.status).to.equal('fulfilled');
    expect((bad as PromiseRejectedResult).reason).to.be.instanceOf(InvalidKeyError);
    expect(alsoOk.status).to.equal('fulfilled');
    const outcomes = await Promise.allSettled([store.ext.incr('n'), store.ext.incr('text'), store.ext.incr('n')]);
    expect(outcomes.map((o) => o.status)).to.deep.equal(['fulfilled', 'rejected', 'fulfilled']);
    expect((outcomes[1] as PromiseRejectedResult).reason).to.be.instanceOf(NotACounterError);
    expect(outcomes.map((o) => (o.status === 'fulfilled' ? o.value : 'x'))).to.deep.equal([2, 'x', 3]);
  });

  it('sends one statement per call with batching: false', async () => {
    const store = fx.make({ batching: false });
    await store.has('warm');
    expect(await statements(store, () => Promise.all(Array.from({ length: 5 }, (_, i) => store.get(`k${i}`))))).to.equal(5 * READ);
  });
});
