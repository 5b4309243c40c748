import { metrics, trace } from '@opentelemetry/api';
import { expect } from 'chai';
import { useCacheTable } from '../helpers/fixture.js';
import { PgStore } from '../../src/index.js';
import { sql, testDistributed, testUrl, uniqueTable } from '../helpers/db.js';

/**
 * A recording OpenTelemetry provider: the smallest objects the API accepts, standing in for an SDK so
 * the test sees exactly which spans and metric points the store produces.
 */
function recordingProviders() {
  const spans: Array<{ name: string; attributes: Record<string, unknown>; status?: number; ended: boolean }> = [];
  const points: Array<{ name: string; value: number; attributes: Record<string, unknown> }> = [];
  const span = (record: (typeof spans)[number]) => ({
    spanContext: () => ({ traceId: '0'.repeat(32), spanId: '0'.repeat(16), traceFlags: 1 }),
    setAttribute: () => {},
    setAttributes: () => {},
    addEvent: () => {},
    addLink: () => {},
    addLinks: () => {},
    setStatus: (status: { code: number }) => void (record.status = status.code),
    updateName: () => {},
    end: () => void (record.ended = true),
    isRecording: () => true,
    recordException: () => {},
  });
  const tracer = {
    startSpan: (name: string, options: { attributes?: Record<string, unknown> } = {}) => {
      const record = { name, attributes: options.attributes ?? {}, ended: false };
      spans.push(record);
      return span(record);
    },
    startActiveSpan: (name: string, options: { attributes?: Record<string, unknown> }, fn: (s: unknown) => unknown) =>
      fn(tracer.startSpan(name, options)),
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
  return { spans, points, collect, gauges, tracerProvider: { getTracer: () => tracer }, meterProvider: { getMeter: () => meter } };
}

describe('OpenTelemetry', () => {
  const fx = useCacheTable('cp_otel');
  const recorder = recordingProviders();

  before(() => {
    trace.setGlobalTracerProvider(recorder.tracerProvider as never);
    metrics.setGlobalMeterProvider(recorder.meterProvider as never);
  });
  after(() => {
    trace.disable();
    metrics.disable();
  });

  it('records a span per getOrSet and a metric point per counted event, tagged with the table', async () => {
    const ext = fx.make().ext; // created after the SDK: uses it
    await ext.getOrSet('traced', () => 'v');
    await ext.getOrSet('traced', () => 'v');
    await ext.getOrSet('broken', () => {
      throw new Error('boom');
    }).catch(() => {});
    const table = `public.${fx.table}`;
    expect(recorder.spans.map((s) => [s.name, s.attributes['cache_postgres.key'], s.ended])).to.deep.equal([
      ['cache-postgres getOrSet', 'traced', true],
      ['cache-postgres getOrSet', 'traced', true],
      ['cache-postgres getOrSet', 'broken', true],
    ]);
    expect(recorder.spans[2]!.status).to.equal(2); // SpanStatusCode.ERROR
    const count = (name: string) => recorder.points.filter((p) => p.name === name).reduce((sum, p) => sum + p.value, 0);
    expect(count('cache_postgres.misses')).to.equal(2);
    expect(count('cache_postgres.hits')).to.equal(1);
    expect(count('cache_postgres.factory.calls')).to.equal(2);
    expect(count('cache_postgres.factory.errors')).to.equal(1);
    expect(recorder.points.every((p) => p.attributes['cache_postgres.table'] === table)).to.equal(true);
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
