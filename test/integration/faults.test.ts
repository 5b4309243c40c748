/**
 * A misbehaving database, short of a lost server (connection-loss.test.ts kills and restarts one of
 * its own): a row lock that stalls one key, disconnect() under load, joiners with their own lock
 * timeout, nested getOrSet on a full pool, a server that never answers, statements past their time.
 * Every call here must settle: a hang fails the test through `within`, never stalls the suite.
 */
import { createServer, type Server, type Socket } from 'node:net';
import { expect } from 'chai';
import pg from 'pg';
import { CachePostgresError, PgStore, type PgStoreOptions } from '../../src/index.js';
import { manualClock } from '../helpers/assert.js';
import { testUrl, waitFor, testDistributed } from '../helpers/db.js';
import { useCacheTable } from '../helpers/fixture.js';
import { rejection, track, within } from '../helpers/settle.js';

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

// On a distributed table the store does not pipeline (a lane cannot give up a row lock on a Citus worker
// in time, see Executor.pipelining): what only the pipelined lane guarantees is skipped there, and the
// README's "Scaling out" says a row lock held elsewhere delays the reads batched with its key's write.
const pipelinedOnly = testDistributed() ? it.skip : it;

describe('faults: stalls, timeouts, disconnect under load', () => {
  const fx = useCacheTable('cp_fault');
  const stores: PgStore[] = [];
  const clients: pg.Client[] = [];

  /** A store with a pool of its own, as an application creates it. */
  function own(options: Omit<PgStoreOptions, 'pool' | 'table'> = {}): PgStore {
    const store = new PgStore({ uri: testUrl(), table: fx.table, enableExpirationScan: false, ...options });
    stores.push(store);
    return store;
  }

  /** Another session that holds `FOR UPDATE` on the row `id` until `release()`. */
  async function lockRow(id: string) {
    const client = new pg.Client(testUrl());
    clients.push(client);
    await client.connect();
    await client.query('BEGIN');
    const { rowCount } = await client.query(`SELECT 1 FROM public.${fx.table} WHERE id = $1 FOR UPDATE`, [id]);
    expect(rowCount, `row ${id} exists`).to.equal(1);
    return { release: () => client.query('ROLLBACK') };
  }

  /** Another session that holds the cross-language key lock of getOrSet (session-level, until unlocked). */
  async function holdKeyLock(key: string) {
    const client = new pg.Client(testUrl());
    clients.push(client);
    await client.connect();
    await client.query('SELECT pg_advisory_lock(hashtextextended($1, 0))', [key]);
    return { release: () => client.query('SELECT pg_advisory_unlock(hashtextextended($1, 0))', [key]) };
  }

  afterEach(async () => {
    // Sessions holding locks go first, so a failed test cannot leave a store waiting on them.
    await Promise.all(clients.splice(0).map((client) => client.end().catch(() => {})));
    await Promise.all(stores.splice(0).map((store) => within(store.disconnect(), 15_000, 'disconnect')));
  });

  describe('one row lock does not stall the store', () => {
    for (const pipelining of [true, false]) {
      it(`gets and sets of other keys complete while one key's write waits (pipelining ${pipelining})`, async () => {
        const store = own({ pipelining });
        await store.set('locked', 'before');
        await Promise.all(Array.from({ length: 20 }, (_, i) => store.set(`other:${i}`, `v${i}`)));
        const lock = await lockRow('locked');
        const stuck = track(store.set('locked', 'after'));
        await sleep(20);
        const started = performance.now();
        const others = await within(
          Promise.all(Array.from({ length: 20 }, (_, i) => store.get(`other:${i}`))),
          3000,
          'gets of other keys while one key is locked',
        );
        const tookMs = performance.now() - started;
        expect(others).to.deep.equal(Array.from({ length: 20 }, (_, i) => `v${i}`));
        await within(store.set('other:new', 'x'), 3000, 'a set of another key');
        expect(stuck.outcome.state, 'the locked write still waits').to.equal('pending');
        await lock.release();
        await within(stuck.promise, 3000, 'the locked write once the lock goes');
        expect(await store.get('locked')).to.equal('after');
        expect(tookMs).to.be.below(1000);
      });
    }

    it('keeps the order of calls on the stalled key: a read issued after its write sees that write', async () => {
      const store = own();
      await store.set('locked', 'before');
      const lock = await lockRow('locked');
      const write = track(store.set('locked', 'after'));
      await sleep(100); // the write's batch is late: later batches go ahead without it
      const read = track(store.get('locked'));
      const unrelated = await within(store.get('absent'), 3000, 'an unrelated read');
      expect(unrelated).to.equal(undefined);
      expect(read.outcome.state, 'the read waits behind the write of its key').to.equal('pending');
      await lock.release();
      await within(write.promise, 3000, 'the write');
      expect(await within(read.promise, 3000, 'the read')).to.equal('after');
    });

    pipelinedOnly('answers the reads batched in the same tick as a write that waits for a row lock (pipelining)', async () => {
      const store = own();
      await store.set('locked', 'before');
      await store.set('neighbour', 'n');
      const lock = await lockRow('locked');
      // One tick: the write and the reads share a batch (and its pipeline). In issue order, the read of
      // the locked key issued before the write answers at once, the one issued after it waits for it.
      const readBefore = store.get('locked');
      const write = track(store.set('locked', 'after'));
      const readAfter = track(store.get('locked'));
      const reads = Promise.all([store.get('neighbour'), readBefore]);
      expect(await within(reads, 3000, 'the reads of the same tick')).to.deep.equal(['n', 'before']);
      expect(write.outcome.state, 'the write waits for the lock').to.equal('pending');
      expect(readAfter.outcome.state, 'the read issued after the write waits for it').to.equal('pending');
      await lock.release();
      await within(write.promise, 3000, 'the write once the lock goes');
      expect(await within(readAfter.promise, 3000, 'the read after the write')).to.equal('after');
      expect(await store.get('locked')).to.equal('after');
    });

    pipelinedOnly('answers a read of a locked sliding entry at once; its slide lands once the lock goes', async () => {
      const T0 = Date.UTC(2030, 0, 1);
      const clock = manualClock(T0);
      const store = own({ clock });
      await store.ext.set('sliding', 'v', { slidingExpiration: '10m' });
      clock.advance(5 * 60_000); // a read now moves the expiry by 5 minutes: past the write threshold
      const lock = await lockRow('sliding');
      const value = await within(store.ext.get('sliding'), 3000, 'the read of a locked sliding row');
      expect(value?.toString()).to.equal('v');
      expect((await fx.row('sliding'))!.expiresattime).to.deep.equal(new Date(T0 + 10 * 60_000));
      await lock.release();
      await waitFor(
        async () => ((await fx.row('sliding'))!.expiresattime as Date).getTime() === T0 + 15 * 60_000,
        5000,
        'the slide to land',
      );
    });

    it('counters and deletes of other keys complete while one counter waits', async () => {
      const store = own();
      await store.ext.incr('locked');
      await store.ext.set('gone', 'x');
      const lock = await lockRow('locked');
      const stuck = track(store.ext.incr('locked'));
      await sleep(20);
      expect(await within(store.ext.incr('free'), 3000, 'another counter')).to.equal(1);
      expect(await within(store.ext.delete('gone'), 3000, 'a delete')).to.equal(true);
      expect(await within(store.ext.has('free'), 3000, 'a has')).to.equal(true);
      await lock.release();
      expect(await within(stuck.promise, 3000, 'the locked counter')).to.equal(2);
    });
  });

  describe('disconnect() settles every call', () => {
    it('50 getOrSet on a pool of 2: each resolves or rejects with a typed error by the time disconnect resolves', async () => {
      const store = own({ poolMax: 2 });
      await store.has('warm-up');
      const calls = Array.from({ length: 50 }, (_, i) =>
        track(store.ext.getOrSet(`k${i}`, async () => (await sleep(30), `v${i}`))),
      );
      await sleep(20);
      await within(store.disconnect(), 10_000, 'disconnect');
      const pending = calls.filter((call) => call.outcome.state === 'pending');
      expect(pending.length, 'calls still pending after disconnect() resolved').to.equal(0);
      for (const call of calls) {
        if (call.outcome.state === 'rejected') expect(call.outcome.reason).to.be.instanceOf(CachePostgresError);
      }
      await Promise.allSettled(calls.map((call) => call.promise));
    });

    it('500 mixed calls (get, set, incr, getOrSet, withLock) settle by the time disconnect resolves', async () => {
      const store = own({ poolMax: 3 });
      await store.has('warm-up');
      const calls = Array.from({ length: 500 }, (_, i) => {
        const key = `m${i % 37}`;
        switch (i % 5) {
          case 0: return track(store.get(key));
          case 1: return track(store.set(key, `v${i}`));
          case 2: return track(store.ext.incr(`n${i % 7}`));
          case 3: return track(store.ext.getOrSet(`g${i % 11}`, async () => (await sleep(10), 'x')));
          default: return track(store.ext.withLock(`l${i % 3}`, async () => sleep(5), { wait: '10s' }));
        }
      });
      await sleep(15);
      await within(store.disconnect(), 15_000, 'disconnect');
      const pending = calls.filter((call) => call.outcome.state === 'pending');
      expect(pending.length, 'calls still pending after disconnect() resolved').to.equal(0);
      const untyped = calls.filter((call) => call.outcome.state === 'rejected' && !(call.outcome.reason instanceof CachePostgresError));
      expect(untyped.map((call) => String((call.outcome as { reason: unknown }).reason))).to.deep.equal([]);
      await Promise.allSettled(calls.map((call) => call.promise));
    });
    it('cuts a statement still running after the drain with StoreClosedError, and still resolves', async function () {
      this.timeout(20_000);
      const store = own();
      await store.set('locked', 'before');
      const lock = await lockRow('locked');
      const stuck = track(store.set('locked', 'after'));
      await sleep(50);
      const started = performance.now();
      await within(store.disconnect(), 12_000, 'disconnect');
      expect(performance.now() - started).to.be.within(4500, 9000); // the 5 s drain, then the cut
      expect(stuck.outcome.state).to.equal('rejected');
      expect((stuck.outcome as { reason: { code: string } }).reason.code).to.equal('E_STORE_CLOSED');
      await lock.release();
      // On Citus the cut reaches the coordinator, while the write waits for the row lock on a worker, where it
      // may still land once the lock goes (the README's "Scaling out"; failed once in CI's Citus pass).
      if (!testDistributed()) expect((await fx.row('locked'))!.value.toString()).to.equal('before');
    });
  });

  describe('getOrSet waits are bounded', () => {
    it("a joining caller's lockTimeout bounds its own wait", async () => {
      const store = own();
      const lock = await holdKeyLock('joined');
      const first = track(store.ext.getOrSet('joined', () => 'first'));
      await sleep(20);
      const started = performance.now();
      const error = await rejection(store.ext.getOrSet('joined', () => 'second', { lockTimeout: '300ms' }), 3000, 'the joiner');
      expect(error.code).to.equal('E_LOCK_TIMEOUT');
      expect(performance.now() - started).to.be.within(250, 2000);
      // 'run' gives way to latency: the joiner computes without the lock.
      const ran = await within(store.ext.getOrSet('joined', () => 'ran', { lockTimeout: '100ms', onLockTimeout: 'run' }), 3000, 'run');
      expect(ran.toString()).to.equal('ran');
      expect(first.outcome.state).to.equal('pending');
      await lock.release();
      await within(first.promise, 3000, 'the first caller');
    });

    it('nested getOrSet on a pool with no free connection fails with a typed error in bounded time, and the key lock is freed', async () => {
      const store = own({ poolMax: 1, connectTimeout: '500ms' });
      const outer = store.ext.getOrSet('outer', async () => (await store.ext.getOrSet('inner', () => 'i')).toString() + 'o');
      const error = await rejection(outer, 5000, 'the nested getOrSet');
      expect(error.code).to.equal('E_CONNECTION');
      expect(error.message).to.match(/all 1 connection/);
      // The store still works, and another session can take the outer key's lock.
      expect(await within(store.ext.getOrSet('after', () => 'a'), 3000, 'a later call')).to.deep.equal(Buffer.from('a'));
      const probe = new pg.Client(testUrl());
      clients.push(probe);
      await probe.connect();
      const { rows } = await probe.query('SELECT pg_try_advisory_lock(hashtextextended($1, 0)) AS free', ['outer']);
      expect(rows[0].free).to.equal(true);
    });
  });

  describe('timeouts', () => {
    let silent: Server | undefined;
    const sockets: Socket[] = [];
    afterEach(async () => {
      for (const socket of sockets.splice(0)) socket.destroy();
      await new Promise((resolve) => (silent ? silent.close(resolve) : resolve(undefined)));
      silent = undefined;
    });

    /** A TCP server that accepts connections and never says a word. */
    async function silentServer(): Promise<number> {
      silent = createServer((socket) => sockets.push(socket));
      await new Promise<void>((resolve) => silent!.listen(0, '127.0.0.1', resolve));
      return (silent.address() as { port: number }).port;
    }

    it('a backend terminated in the same read as the end of its startup fails the call, not the process', async () => {
      // A minimal server: startup accepted, then ReadyForQuery and a FATAL 57P01 in one write, as a backend
      // killed right after startup sends them. pg-pool hands such a connection over with no 'error' listener.
      const frame = (type: string, body: Buffer) => {
        const length = Buffer.alloc(4);
        length.writeInt32BE(body.length + 4);
        return Buffer.concat([Buffer.from(type), length, body]);
      };
      const fields = Buffer.from('SFATAL\0VFATAL\0C57P01\0Mterminating connection due to administrator command\0\0');
      silent = createServer((socket) => {
        sockets.push(socket);
        socket.once('data', () => {
          socket.write(Buffer.concat([frame('R', Buffer.from([0, 0, 0, 0])), frame('Z', Buffer.from('I')), frame('E', fields)]));
          socket.end();
        });
      });
      await new Promise<void>((resolve) => silent!.listen(0, '127.0.0.1', resolve));
      const port = (silent.address() as { port: number }).port;
      const store = new PgStore({ uri: `postgres://nobody@127.0.0.1:${port}/db` });
      stores.push(store);
      for (let i = 0; i < 5; i++) {
        const error = await rejection(store.get('k'), 5000, 'get on a connection terminated at once');
        expect(error.code).to.equal('E_CONNECTION');
      }
    });

    it('a server that accepts TCP and never answers: calls fail with E_CONNECTION after connectTimeout', async () => {
      const port = await silentServer();
      const store = new PgStore({ uri: `postgres://nobody@127.0.0.1:${port}/db`, connectTimeout: '300ms' });
      stores.push(store);
      const started = performance.now();
      const error = await rejection(store.get('k'), 5000, 'get on a silent server');
      expect(error.code).to.equal('E_CONNECTION');
      expect(performance.now() - started).to.be.below(3000);
    });

    // Not on a distributed table: statement_timeout cancels the coordinator's statement, and a write waiting for a
    // row lock on a worker may still land there once the lock goes (README, "Scaling out": set statement_timeout on
    // the workers too).
    (testDistributed() ? it.skip : it)('a statement past statementTimeout is cancelled on the server: the call fails and the write never lands', async () => {
      const store = own({ statementTimeout: '400ms' });
      await store.set('locked', 'before');
      const lock = await lockRow('locked');
      const started = performance.now();
      const error = await rejection(store.set('locked', 'late'), 5000, 'the stalled write');
      expect(error.code).to.equal('E_STATEMENT_TIMEOUT');
      expect(performance.now() - started).to.be.within(300, 3000);
      await lock.release();
      await sleep(200);
      expect(await store.get('locked')).to.equal('before');
    });

    it("getOrSet's lockTimeout is honoured whatever the statement timeout", async () => {
      const store = own({ statementTimeout: '300ms' });
      const lock = await holdKeyLock('slow-lock');
      const started = performance.now();
      const error = await rejection(store.ext.getOrSet('slow-lock', () => 'x', { lockTimeout: '1200ms' }), 5000, 'getOrSet');
      expect(error.code).to.equal('E_LOCK_TIMEOUT');
      expect(performance.now() - started).to.be.within(1100, 3000);
      await lock.release();
      // And without a lockTimeout, the wait is not cut by the statement timeout either.
      const lock2 = await holdKeyLock('slow-lock');
      const waiting = track(store.ext.getOrSet('slow-lock', () => 'computed'));
      await sleep(700);
      expect(waiting.outcome.state).to.equal('pending');
      await lock2.release();
      expect((await within(waiting.promise, 3000, 'getOrSet after the lock')).toString()).to.equal('computed');
    });

    it('disconnect() settles calls waiting on a silent server', async () => {
      const port = await silentServer();
      const store = new PgStore({ uri: `postgres://nobody@127.0.0.1:${port}/db`, connectTimeout: '20s' });
      stores.push(store);
      const call = track(store.get('k'));
      await sleep(50);
      await within(store.disconnect(), 10_000, 'disconnect');
      expect(call.outcome.state).to.equal('rejected');
      await call.promise.catch(() => {});
    });
  });
});
