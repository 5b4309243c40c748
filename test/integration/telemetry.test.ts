import { AsyncLocalStorage } from 'node:async_hooks';
import { type Context, context, metrics, ROOT_CONTEXT, trace } from '@opentelemetry/api';
import { expect } from 'chai';
import type pg from 'pg';
import { manualClock } from '../helpers/assert.js';
import { useCacheTable } from '../helpers/fixture.js';
import { PgStore } from '../../src/index.js';
import { CacheExt, CacheTransaction } from '../../src/ext/index.js';
import { sql, testDistributed, testUrl, uniqueTable, waitFor } from '../helpers/db.js';

interface RecordedSpan {
  name: string;
  kind: number | undefined;
  attributes: Record<string, unknown>;
  links: Array<{ context: { spanId: string } }>;
  spanId: string;
  parentSpanId: string | undefined;
  root: boolean;
  status?: number;
  exceptions: unknown[];
  ended: boolean;
}

/**
 * A recording OpenTelemetry provider: the smallest objects the API accepts, standing in for an SDK so
 * the test sees exactly which spans and metric points the store produces; and a context manager on
 * AsyncLocalStorage, as the SDK's for Node (spans become active across awaits).
 */
function recordingProviders() {
  const spans: RecordedSpan[] = [];
  const points: Array<{ name: string; value: number; attributes: Record<string, unknown> }> = [];
  let ids = 0;
  const span = (record: RecordedSpan) => ({
    spanContext: () => ({ traceId: '1'.repeat(32), spanId: record.spanId, traceFlags: 1 }),
    setAttribute(key: string, value: unknown) {
      record.attributes[key] = value;
      return this;
    },
    setAttributes(attributes: Record<string, unknown>) {
      Object.assign(record.attributes, attributes);
      return this;
    },
    addEvent: () => {},
    addLink: () => {},
    addLinks: () => {},
    setStatus: (status: { code: number }) => void (record.status = status.code),
    updateName: () => {},
    end: () => void (record.ended = true),
    isRecording: () => true,
    recordException: (exception: unknown) => void record.exceptions.push(exception),
  });
  type Options = { kind?: number; attributes?: Record<string, unknown>; links?: RecordedSpan['links']; root?: boolean };
  const tracer = {
    startSpan: (name: string, options: Options = {}, parent: Context = context.active()) => {
      const record: RecordedSpan = {
        name,
        kind: options.kind,
        attributes: { ...options.attributes },
        links: options.links ?? [],
        spanId: (++ids).toString(16).padStart(16, '0'),
        parentSpanId: options.root ? undefined : trace.getSpan(parent)?.spanContext().spanId,
        root: options.root === true,
        exceptions: [],
        ended: false,
      };
      spans.push(record);
      return span(record);
    },
    startActiveSpan: (name: string, options: Options, fn: (s: unknown) => unknown) => {
      const started = tracer.startSpan(name, options);
      return context.with(trace.setSpan(context.active(), started as never), () => fn(started));
    },
  };
  const storage = new AsyncLocalStorage<Context>();
  const contextManager = {
    active: () => storage.getStore() ?? ROOT_CONTEXT,
    with: (ctx: Context, fn: (...args: unknown[]) => unknown, thisArg?: unknown, ...args: unknown[]) => storage.run(ctx, () => fn.apply(thisArg, args)),
    bind: <T>(_ctx: Context, target: T) => target,
    enable() {
      return this;
    },
    disable() {
      return this;
    },
  };
  type Observe = (result: { observe: (value: number, attributes?: Record<string, unknown>) => void }) => void;
  const gauges = new Map<string, Set<Observe>>();
  const meter = {
    createCounter: (name: string) => ({ add: (value: number, attributes: Record<string, unknown> = {}) => points.push({ name, value, attributes }) }),
    createObservableGauge: (name: string) => {
      const callbacks = gauges.get(name) ?? new Set<Observe>();
      gauges.set(name, callbacks);
      return { addCallback: (fn: Observe) => callbacks.add(fn), removeCallback: (fn: Observe) => callbacks.delete(fn) };
    },
  };
  /** What an SDK's collection would read of the gauges now. */
  const collect = () => {
    const read: Array<{ name: string; value: number; attributes: Record<string, unknown> }> = [];
    for (const [name, callbacks] of gauges) for (const fn of callbacks) fn({ observe: (value, attributes = {}) => read.push({ name, value, attributes }) });
    return read;
  };
  return { spans, points, collect, gauges, contextManager, tracerProvider: { getTracer: () => tracer }, meterProvider: { getMeter: () => meter } };
}

describe('OpenTelemetry', () => {
  const fx = useCacheTable('cp_otel');
  const recorder = recordingProviders();

  before(() => {
    context.setGlobalContextManager(recorder.contextManager as never);
    trace.setGlobalTracerProvider(recorder.tracerProvider as never);
    metrics.setGlobalMeterProvider(recorder.meterProvider as never);
  });
  after(() => {
    trace.disable();
    metrics.disable();
    context.disable();
  });

  it('records a span per getOrSet and a metric point per counted event, tagged with the table', async () => {
    const ext = fx.make().ext; // created after the SDK: uses it
    await ext.getOrSet('traced', () => 'v');
    await ext.getOrSet('traced', () => 'v');
    await ext.getOrSet('broken', () => {
      throw new Error('boom');
    }).catch(() => {});
    const table = `public.${fx.table}`;
    const getOrSets = recorder.spans.filter((s) => s.name === 'cache-postgres ext.getOrSet');
    expect(getOrSets.map((s) => [s.attributes['cache_postgres.key'], s.ended, s.status])).to.deep.equal([
      ['traced', true, undefined],
      ['traced', true, undefined],
      ['broken', true, 2], // SpanStatusCode.ERROR
    ]);
    const count = (name: string) => recorder.points.filter((p) => p.name === name).reduce((sum, p) => sum + p.value, 0);
    expect(count('cache_postgres.misses')).to.equal(2);
    expect(count('cache_postgres.hits')).to.equal(1);
    expect(count('cache_postgres.factory.calls')).to.equal(2);
    expect(count('cache_postgres.factory.errors')).to.equal(1);
    expect(recorder.points.every((p) => p.attributes['cache_postgres.table'] === table)).to.equal(true);
  });

  /** What a call recorded: the spans started while it ran, and the call spans among them (those not under another of them, batches aside). */
  async function recorded(run: () => Promise<unknown>) {
    const from = recorder.spans.length;
    await run();
    const during = recorder.spans.slice(from);
    const ids = new Set(during.map((s) => s.spanId));
    return { during, calls: during.filter((s) => !s.name.startsWith('cache-postgres batch ') && !ids.has(s.parentSpanId ?? '')) };
  }

  /** One call of every public method, by operation name: a method added without its entry here fails the enumeration. */
  function everyCall(store: PgStore, client: pg.PoolClient, appTable: string): Record<string, () => Promise<unknown>> {
    const ext = store.ext;
    return {
      // PgStore (Keyv's methods and ours)
      ready: () => store.ready(),
      get: () => store.get('k'),
      getMany: () => store.getMany(['k', 'k2']),
      set: () => store.set('k', 'v'),
      setMany: () => store.setMany([{ key: 'k', value: 'v' }, { key: 'k2', value: 'v' }]),
      delete: () => store.delete('k'),
      deleteMany: () => store.deleteMany(['k', 'k2']),
      clear: () => store.clear(),
      has: () => store.has('k'),
      hasMany: () => store.hasMany(['k', 'k2']),
      iterator: async () => {
        for await (const _ of store.iterator()) void _;
      },
      clearExpired: () => store.clearExpired(),
      stats: () => store.stats(),
      evict: () => store.evict(),
      disconnect: () => Promise.resolve(), // run last, below
      // store.ext
      'ext.get': () => ext.get('k'),
      'ext.getString': () => ext.getString('k'),
      'ext.set': () => ext.set('k', 'v', { tags: ['t'] }),
      'ext.refresh': () => ext.refresh('k'),
      'ext.delete': () => ext.delete('k'),
      'ext.has': () => ext.has('k'),
      'ext.ttl': () => ext.ttl('k'),
      'ext.info': () => ext.info('k'),
      'ext.getMany': () => ext.getMany(['k', 'k2']),
      'ext.setMany': () => ext.setMany({ k: 'v', k2: 'v' }),
      'ext.deleteMany': () => ext.deleteMany(['k', 'k2']),
      'ext.deleteTags': () => ext.deleteTags(['t']),
      'ext.scan': async () => {
        for await (const _ of ext.scan('k*')) void _;
      },
      'ext.getPattern': () => ext.getPattern('k*'),
      'ext.deletePattern': () => ext.deletePattern('k*'),
      'ext.incr': () => ext.incr('n'),
      'ext.decr': () => ext.decr('n'),
      'ext.getOrSet': () => ext.getOrSet('g', () => 'v'),
      'ext.lock': async () => (await ext.lock('L')).release(),
      'ext.tryLock': async () => (await ext.tryLock('L'))?.release(),
      'ext.withLock': () => ext.withLock('L', () => 1),
      'ext.isLocked': () => ext.isLocked('L'),
      'ext.cached': () => ext.cached(async () => 1, { key: 'c' })(),
      'ext.failover': () => ext.failover(async () => 1, { key: 'f', maxStale: '1s' })(),
      'ext.early': () => ext.early(async () => 1, { key: 'e', ttl: '1m', earlyTtl: '30s' })(),
      'ext.invalidateOn': () => ext.invalidateOn({ table: appTable, tags: ['p:{id}'] }),
      'ext.invalidations': () => ext.invalidations(),
      'ext.dropInvalidation': () => ext.dropInvalidation({ table: appTable }),
      'ext.dropNotifyTrigger': () => ext.dropNotifyTrigger(),
      // store.ext.in(client)
      'ext.in.get': () => ext.in(client).get('k'),
      'ext.in.set': () => ext.in(client).set('k', 'v'),
      'ext.in.setMany': () => ext.in(client).setMany({ k: 'v', k2: 'v' }),
      'ext.in.delete': () => ext.in(client).delete('k'),
      'ext.in.deleteMany': () => ext.in(client).deleteMany(['k', 'k2']),
      'ext.in.deleteTags': () => ext.in(client).deleteTags(['t']),
      'ext.in.deletePattern': () => ext.in(client).deletePattern('k*'),
      'ext.in.incr': () => ext.in(client).incr('n'),
      'ext.in.decr': () => ext.in(client).decr('n'),
      'ext.in.getOrSet': () => ext.in(client).getOrSet('g', () => 'v').catch(() => {}), // refused there: a span all the same
    };
  }

  /** The operations of a class's public methods; a method that hands out traced functions stands for them. */
  function operationsOf(prototype: object, prefix: string): string[] {
    const products: Record<string, string[]> = { in: [] }; // `in`: the transaction's methods, enumerated below
    return Object.getOwnPropertyNames(prototype)
      .filter((name) => name !== 'constructor' && typeof Object.getOwnPropertyDescriptor(prototype, name)!.value === 'function')
      .flatMap((name) => products[name] ?? [`${prefix}${name}`]);
  }

  it('every method of PgStore, store.ext and ext.in(client) (and every wrapped function) is one CLIENT span with the conventions\' attributes', async function () {
    if (testDistributed()) this.skip(); // the cap and invalidation triggers are refused or differ on Citus
    const store = fx.make({ maxEntries: 1000, evictionInterval: '1h', retainExpiredFor: '1m' });
    const appTable = uniqueTable('cp_otel_app');
    await sql(`CREATE TABLE public.${appTable} (id int PRIMARY KEY)`);
    const client = await fx.pool.connect();
    try {
      await client.query('BEGIN');
      await store.ready();
      const calls = everyCall(store, client, appTable);
      const operations = [
        ...operationsOf(PgStore.prototype, ''),
        ...operationsOf(Object.getPrototypeOf(PgStore.prototype), ''),
        ...operationsOf(CacheExt.prototype, 'ext.'),
        ...operationsOf(CacheTransaction.prototype, 'ext.in.'),
      ];
      expect(operations.filter((operation) => !(operation in calls)), 'a public method this test does not call').to.deep.equal([]);
      const seen: string[] = [];
      for (const [operation, run] of Object.entries(calls)) {
        if (operation === 'disconnect') continue;
        const { calls: spans } = await recorded(run);
        const own = spans.filter((s) => s.name === `cache-postgres ${operation}`);
        expect(own.length, `${operation}: ${spans.map((s) => s.name).join(', ')}`).to.equal(1);
        const [span] = own as [RecordedSpan];
        expect(span.ended, operation).to.equal(true);
        expect(span.kind, operation).to.equal(2); // SpanKind.CLIENT
        expect(span.attributes, operation).to.include({
          'db.system': 'postgresql',
          'db.operation.name': operation,
          'db.collection.name': fx.table,
          'db.namespace': `${new URL(testUrl()).pathname.slice(1)}|public`,
          'cache_postgres.table': `public.${fx.table}`,
        });
        if (operation !== 'ext.in.getOrSet') expect(span.status, operation).to.equal(undefined);
        seen.push(operation);
      }
      await client.query('ROLLBACK');
      const { calls: closing } = await recorded(() => store.disconnect());
      expect(closing.map((s) => s.name)).to.deep.equal(['cache-postgres disconnect']);
      expect(seen.length + 1).to.equal(Object.keys(calls).length);
    } finally {
      client.release();
      await sql(`DROP TABLE IF EXISTS public.${appTable}`);
    }
  });

  it('the conventions\' key and batch size, and the statements that carried a call', async () => {
    const store = fx.make();
    const { calls: [first] } = await recorded(() => store.ext.get('one'));
    expect(first!.attributes['cache_postgres.statement'], 'the readiness work the first call waited for').to.match(/^clock /);
    const { calls: [get] } = await recorded(() => store.ext.get('one'));
    expect(get!.attributes).to.include({ 'cache_postgres.key': 'one', 'cache_postgres.tier': 'direct' });
    expect(get!.attributes['cache_postgres.statement']).to.match(/^(select_many|get_many)$/);
    expect(get!.attributes).not.to.have.property('db.operation.batch.size');
    const { calls: [many] } = await recorded(() => store.ext.getMany(['a', 'b', 'c']));
    expect(many!.attributes).to.include({ 'db.operation.batch.size': 3, 'cache_postgres.tier': 'direct' });
    expect(many!.attributes).not.to.have.property('cache_postgres.key');
    const { calls: [set] } = await recorded(() => store.ext.setMany(new Map([['a', 'v'], ['b', 'v']])));
    expect(set!.attributes).to.include({ 'db.operation.batch.size': 2 });
  });

  it('a read sends its select alone, and a slide only for the rows it finds due one', async () => {
    const clock = manualClock(Date.parse('2032-06-01T00:00:00.000Z'));
    const store = fx.make({ clock, slidingWriteThreshold: 0.1 });
    await store.ext.set('sliding', 'v', { slidingExpiration: '100s' });
    clock.advance(5_000); // a 5 s move: not due (under 10% of the window)
    const { calls: [notDue] } = await recorded(() => store.ext.get('sliding'));
    expect(notDue!.attributes['cache_postgres.statement']).to.match(/^(select_many|get_many)$/);
    clock.advance(20_000);
    const { calls: [due] } = await recorded(() => store.ext.get('sliding'));
    expect(due!.attributes['cache_postgres.statement']).to.match(/^(select_many slide_many_fail_fast|get_many)$/);
  });

  it('tiers: local (the in-process tier answered), batched (the tick\'s statement, its span linked to the calls it carried), direct', async () => {
    const local = fx.make({ localCache: true });
    await local.ext.set('held', 'v');
    const { calls: [first] } = await recorded(() => local.ext.get('held'));
    expect(first!.attributes['cache_postgres.tier']).to.be.oneOf(['direct', 'local']);
    // The tier serves once it listens for other stores' writes.
    await waitFor(async () => (await local.ext.get('held'), (await local.stats()).localHits > 0), 10_000, 'the local tier to serve');
    const { calls: [fromMemory] } = await recorded(() => local.ext.get('held'));
    expect(fromMemory!.attributes['cache_postgres.tier']).to.equal('local');
    expect(fromMemory!.attributes).not.to.have.property('cache_postgres.statement');

    const store = fx.make();
    await store.ext.setMany({ a: '1', b: '2', c: '3' });
    const { during, calls } = await recorded(() => Promise.all(['a', 'b', 'c', 'x'].map((key) => store.ext.get(key))));
    expect(calls.map((s) => s.attributes['cache_postgres.tier'])).to.deep.equal(['batched', 'batched', 'batched', 'batched']);
    const batches = during.filter((s) => s.name === 'cache-postgres batch readWrite');
    expect(batches.length).to.equal(1);
    const [batch] = batches as [RecordedSpan];
    expect(batch.root).to.equal(true);
    expect(batch.ended).to.equal(true);
    expect(batch.attributes).to.include({ 'db.operation.name': 'BATCH readWrite', 'db.operation.batch.size': 4, 'cache_postgres.tier': 'batched', 'db.system': 'postgresql' });
    expect(batch.links.map((link) => link.context.spanId)).to.have.members(calls.map((s) => s.spanId));
    expect(batch.attributes['cache_postgres.statement']).to.match(/^(select_many|get_many)$/);
    for (const call of calls) expect(call.attributes['cache_postgres.statement']).to.equal(batch.attributes['cache_postgres.statement']);
    const misses = calls.filter((s) => s.attributes['cache_postgres.key'] === 'x');
    expect(misses.map((s) => s.status)).to.deep.equal([undefined]); // a miss is no error

    const unbatched = fx.make({ batching: false });
    const { during: alone, calls: direct } = await recorded(() => Promise.all([unbatched.ext.get('a'), unbatched.ext.get('b')]));
    expect(direct.map((s) => s.attributes['cache_postgres.tier'])).to.deep.equal(['direct', 'direct']);
    expect(alone.filter((s) => s.name.startsWith('cache-postgres batch'))).to.deep.equal([]);
  });

  it('a failed call: exception recorded, status ERROR, error.type; the span ends, also for input refused before anything runs', async () => {
    const store = fx.make();
    const { calls: [refused] } = await recorded(() => store.ext.get('').catch(() => {}));
    expect(refused).to.include({ ended: true, status: 2 });
    expect(refused!.attributes['error.type']).to.equal('InvalidKeyError');
    expect(refused!.exceptions).to.have.length(1);
    const { calls: [keyv] } = await recorded(() => store.set('k', 'v', Number.NaN).catch(() => {}));
    expect(keyv).to.include({ ended: true, status: 2 });
    const { calls: [factory] } = await recorded(() =>
      store.ext.getOrSet('f', () => {
        throw new TypeError('boom');
      }).catch(() => {}),
    );
    expect(factory).to.include({ ended: true, status: 2 });
    expect(factory!.attributes['error.type']).to.equal('TypeError');
    const { calls: [broken] } = await recorded(async () => {
      const iterator = store.ext.scan('k*', { batchSize: -1 });
      await iterator.next().catch(() => {});
    });
    expect(broken).to.include({ ended: true, status: 2 });
  });

  it('an iteration is one span from the call to its end, and its statements run in it', async () => {
    const store = fx.make();
    await store.ext.setMany({ i1: 'v', i2: 'v', i3: 'v' });
    let iterator: AsyncGenerator<string, void> | undefined;
    const { calls: [scan] } = await recorded(async () => void (await (iterator = store.ext.scan('i*', { batchSize: 2 })).next()));
    expect(scan!.ended).to.equal(false);
    for await (const _ of iterator!) void _;
    expect(scan!.ended).to.equal(true);
    expect(scan!.attributes['cache_postgres.tier']).to.equal('direct');
  });

  it('no provider registered: no span, and the active context is the caller\'s inside the call', async () => {
    const store = fx.make();
    trace.disable();
    try {
      const outer = context.active();
      const before = recorder.spans.length;
      let inside: Context | undefined;
      await store.ext.getOrSet('quiet', () => ((inside = context.active()), 'v'));
      await Promise.all([store.get('a'), store.get('b'), store.ext.set('c', 'v'), store.ext.getMany(['a', 'b'])]);
      for await (const _ of store.iterator()) void _;
      expect(inside).to.equal(outer);
      expect(trace.getActiveSpan()).to.equal(undefined);
      expect(recorder.spans.length).to.equal(before);
    } finally {
      trace.setGlobalTracerProvider(recorder.tracerProvider as never);
    }
  });

  it('a capped store: eviction counters, and gauges of the usage and cap that its sweeper read (removed when it closes)', async function () {
    if (testDistributed()) this.skip(); // the cap is refused on a distributed table (capacity.test.ts)
    const table = uniqueTable('cp_otel_cap');
    const store = new PgStore({ uri: testUrl(), table, enableExpirationScan: false, maxEntries: 10, evictionInterval: '1h' });
    try {
      await Promise.all(Array.from({ length: 30 }, (_, i) => store.set(`k${i}`, 'v')));
      const { rows } = await store.evict();
      const named = (name: string) => recorder.collect().filter((p) => p.name === name).map((p) => [p.value, p.attributes['cache_postgres.table']]);
      expect(named('cache_postgres.capacity.entries')).to.deep.equal([[9, `public.${table}`]]);
      expect(named('cache_postgres.capacity.max_entries')).to.deep.equal([[10, `public.${table}`]]);
      expect(named('cache_postgres.capacity.max_bytes')).to.deep.equal([]);
      const evicted = recorder.points.filter((p) => p.name === 'cache_postgres.evicted' && p.attributes['cache_postgres.table'] === `public.${table}`);
      expect(evicted.reduce((sum, p) => sum + p.value, 0)).to.equal(rows).and.equal(21);
    } finally {
      await store.disconnect();
      await sql(`DROP TABLE IF EXISTS public.${table}, public.${table}_usage, public.${table}_cap`);
      await sql(`DROP FUNCTION IF EXISTS public.${table}_usage_count(), public.${table}_usage_write()`);
    }
    expect(recorder.collect().filter((p) => p.attributes['cache_postgres.table'] === `public.${table}`)).to.deep.equal([]);
  });
});
