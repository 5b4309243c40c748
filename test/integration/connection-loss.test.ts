/**
 * Connections lost under the store, on a PostgreSQL this suite owns (never the shared one): backends
 * terminated, a fast restart, a crash. The process must live (mocha fails a test on an uncaught
 * exception), every call must settle with a typed error, and the store must work again afterwards.
 */
import { expect } from 'chai';
import pg from 'pg';
import { CachePostgresError, ConnectionError, PgStore, type PgStoreOptions, StatementTimeoutError } from '../../src/index.js';
import { waitFor } from '../helpers/db.js';
import { type PrivateServer, startPrivateServer } from '../helpers/private-server.js';
import { rejection, within } from '../helpers/settle.js';

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

/** Codes a call may fail with while its connection is cut: the connection's, or a statement cut by it. */
const LOST_CODES = new Set(['E_CONNECTION', 'E_STATEMENT_TIMEOUT']);

describe('connection loss (a private PostgreSQL)', function () {
  this.timeout(60_000);
  let server: PrivateServer;
  const stores: PgStore[] = [];

  before(async function () {
    this.timeout(120_000);
    server = await startPrivateServer();
  });
  after(async () => {
    await server?.dispose();
  });
  afterEach(async () => {
    await Promise.all(stores.splice(0).map((store) => within(store.disconnect(), 15_000, 'disconnect')));
  });

  function make(options: Omit<PgStoreOptions, 'uri'> = {}): PgStore {
    const store = new PgStore({ uri: server.url, table: 'loss', enableExpirationScan: false, ...options });
    stores.push(store);
    return store;
  }

  /** Runs `workers` loops of `step` until `stop()`; collects every error. */
  function load(workers: number, step: (i: number) => Promise<unknown>) {
    let running = true;
    const errors: unknown[] = [];
    let done = 0;
    const loops = Array.from({ length: workers }, async (_, w) => {
      for (let i = w; running; i += workers) {
        try {
          await step(i);
          done++;
        } catch (error) {
          errors.push(error);
          await sleep(5);
        }
      }
    });
    return {
      errors,
      get done() {
        return done;
      },
      async stop() {
        running = false;
        await within(Promise.all(loops), 20_000, 'the load loops');
      },
    };
  }

  function expectTyped(errors: unknown[]): void {
    const untyped = errors.filter((error) => !(error instanceof CachePostgresError));
    expect(untyped.map(String), 'errors that are not CachePostgresError').to.deep.equal([]);
    const codes = new Set(errors.map((error) => (error as CachePostgresError).code));
    for (const code of codes) expect(LOST_CODES, `error code ${code}`).to.include(code);
  }

  it("a getOrSet whose connection is terminated while its factory runs rejects with E_CONNECTION; the process lives", async () => {
    const store = make();
    await store.ext.set('warm', 'x');
    let entered!: () => void;
    const inFactory = new Promise<void>((resolve) => (entered = resolve));
    const call = store.ext.getOrSet('slow', async () => {
      entered();
      await sleep(1000);
      return 'computed';
    });
    await inFactory;
    expect(await server.terminate()).to.be.greaterThan(0);
    const error = await rejection(call, 10_000, 'getOrSet');
    expect(error).to.be.instanceOf(ConnectionError);
    expect((error as ConnectionError).retryable).to.equal(true);
    expect((await store.ext.getOrSet('slow', () => 'again')).toString()).to.equal('again');
  });

  it('a large setMany whose connection is terminated between its statements writes nothing, fails typed, and the store goes on', async () => {
    const store = make();
    await store.ext.set('warm', 'x');
    const keys = Array.from({ length: 40_000 }, (_, i) => `big:${i}`);
    const value = Buffer.alloc(1024, 7); // 40 MB: about 40 statements in one transaction (chunked.ts)
    const before = store.roundTrips;
    const call = store.ext.setMany(keys.map((key) => [key, value] as const));
    const failed = rejection(call, 20_000, 'the setMany'); // handled from the start: it may fail while terminate() runs
    await waitFor(() => store.roundTrips >= before + 4, 20_000, 'BEGIN and a few statements of the setMany');
    expect(await server.terminate()).to.be.greaterThan(0);
    const error = await failed;
    expect(error).to.be.instanceOf(ConnectionError);
    const admin = new pg.Client({ connectionString: server.url });
    await admin.connect();
    try {
      const { rows } = await admin.query<{ n: number }>(`SELECT count(*)::int AS n FROM public.loss WHERE id LIKE 'big:%'`);
      expect(rows[0]!.n, 'rows of the cut setMany').to.equal(0);
    } finally {
      await admin.end();
    }
    await store.ext.setMany(keys.slice(0, 6000).map((key) => [key, value] as const));
    expect((await store.ext.getMany(keys.slice(0, 6000))).size).to.equal(6000);
  });

  for (const pipelining of [true, false]) {
    it(`ext.get/ext.set loops while backends are terminated again and again (pipelining ${pipelining})`, async () => {
      const store = make({ pipelining });
      const events: unknown[] = [];
      store.on('error', (error) => events.push(error));
      await store.ext.set('k0', 'v');
      const running = load(10, (i) => (i % 3 === 0 ? store.ext.set(`k${i % 50}`, `v${i}`) : store.ext.get(`k${i % 50}`)));
      // Five terminations, and more until one has cut a call in flight: on a busy machine a termination can land
      // while every call is still queued in this process (the connections idle), and then nothing fails.
      for (let round = 0; round < 5 || (running.errors.length === 0 && round < 30); round++) {
        const done = running.done;
        await waitFor(() => running.done > done + 200, 10_000, 'progress');
        await server.terminate();
      }
      const before = running.done;
      await waitFor(() => running.done > before + 200, 10_000, 'progress after the last termination');
      await running.stop();
      expect(running.errors.length, 'calls failed by the terminations').to.be.greaterThan(0);
      expectTyped(running.errors);
      expectTyped(events);
      expect(await store.ext.getString('k0')).to.be.a('string');
    });
  }

  it('a capped table: writes and the sweeper while backends are terminated; the count stays exact and the cap is kept after', async () => {
    const store = make({ table: 'loss_cap', maxSize: '1MB', evictionInterval: '100ms' });
    const events: unknown[] = [];
    store.on('error', (error) => events.push(error));
    const value = 'x'.repeat(8_000);
    await store.ext.set('k0', value);
    const running = load(8, (i) => store.ext.set(`k${i % 400}`, `${i}${value}`));
    for (let round = 0; round < 5 || (running.errors.length === 0 && round < 30); round++) {
      const done = running.done;
      await waitFor(() => running.done > done + 100, 10_000, 'progress');
      await server.terminate();
    }
    await running.stop();
    expectTyped(running.errors);
    expectTyped(events);
    const used = async () => (await store.stats()).capacity!.usedBytes;
    await waitFor(async () => (await used()) <= 1024 * 1024, 10_000, 'the sweeper to bring the table under its cap');
    const stats = await store.stats();
    const client = new pg.Client({ connectionString: server.url });
    await client.connect();
    try {
      const { rows } = await client.query<{ bytes: string; entries: string }>(
        "SELECT COALESCE(sum(octet_length(id) + octet_length(value)), 0)::text AS bytes, count(*)::text AS entries FROM public.loss_cap",
      );
      expect({ bytes: stats.capacity!.usedBytes, entries: stats.capacity!.usedEntries }).to.deep.equal({ bytes: Number(rows[0]!.bytes), entries: Number(rows[0]!.entries) });
    } finally {
      await client.end();
    }
  });

  it("an idle pooled connection that dies is reported as a typed 'error' event, not a crash", async () => {
    const store = make();
    const events: unknown[] = [];
    store.on('error', (error) => events.push(error));
    await Promise.all(Array.from({ length: 5 }, (_, i) => store.ext.set(`idle${i}`, 'v')));
    const killed = await server.terminate();
    expect(killed).to.be.greaterThan(0);
    // One event per idle connection: until each has said so, the pool may still hand out a dead one.
    await waitFor(() => events.length >= killed, 5000, "an 'error' event per terminated connection");
    expect(events.every((error) => error instanceof ConnectionError)).to.equal(true);
    expect(await store.ext.getString('idle0')).to.equal('v');
  });

  it('a backend that stops answering mid-call (SIGSTOP): StatementTimeoutError after statementTimeout + 2 s, and the store goes on', async () => {
    const store = make({ poolMax: 1, statementTimeout: '300ms', poolConfig: { application_name: 'frozen-store' } });
    await store.ext.set('f', 'v');
    const [backend] = await server.sql<{ pid: number }>("SELECT pid FROM pg_stat_activity WHERE application_name = 'frozen-store'");
    expect(backend, 'the store has one backend').to.not.equal(undefined);
    process.kill(backend!.pid, 'SIGSTOP');
    try {
      const started = performance.now();
      const error = await rejection(store.ext.get('f'), 10_000, 'a get on a frozen backend');
      expect(error).to.be.instanceOf(StatementTimeoutError);
      expect(error.message).to.match(/no answer within 2300 ms/);
      expect(performance.now() - started).to.be.within(2000, 5000);
    } finally {
      process.kill(backend!.pid, 'SIGCONT');
    }
    expect(await within(store.ext.getString('f'), 5000, 'a get on a new connection')).to.equal('v');
  });

  it('a fast restart and a crash under load: every call settles with a typed error, and the store works after', async () => {
    const store = make({ useWal: true, table: 'loss_wal' }); // WAL-logged: an UNLOGGED table is emptied by a crash
    const events: unknown[] = [];
    store.on('error', (error) => events.push(error));
    await store.set('a', 'b');
    const running = load(10, (i) =>
      i % 4 === 0 ? store.ext.incr(`n${i % 5}`) : i % 4 === 1 ? store.set(`s${i % 20}`, `v${i}`) : store.get(`s${i % 20}`),
    );
    await waitFor(() => running.done > 300, 10_000, 'progress');
    await server.restart('fast');
    const afterRestart = running.done;
    await waitFor(() => running.done > afterRestart + 300, 15_000, 'progress after the restart');
    await server.crash();
    const afterCrash = running.done;
    await waitFor(() => running.done > afterCrash + 300, 15_000, 'progress after the crash');
    await running.stop();
    // A restart refuses connections while it runs (57P03, ECONNREFUSED): those are connection errors too.
    expectTyped(running.errors);
    expectTyped(events);
    expect(await store.get('a')).to.equal('b');
  });
});
