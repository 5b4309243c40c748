/**
 * Property: with a clock moved by hand, random sequences of writes (store.ext.set with sliding and / or
 * absolute expiry, or none; the Keyv store's set with a ttl), clock advances and reads agree with a
 * model of .NET's semantics (src/ext/entry_options.ts, README "Entry options"):
 * - sliding S is stored in whole seconds (truncated); absolute A = now + relative (or the Date given);
 * - with no expiry option the store's defaultSlidingExpiration applies;
 * - a write's first expiry is A without S, else min(now + S, A); the Keyv store's ttl is an absolute
 *   expiry (0 or none: never; negative: already expired);
 * - an entry is live while expiry >= now;
 * - get / getString / getMany / refresh / the Keyv store's get extend a live sliding entry to
 *   min(now + S, A), never back, and only when that moves it by more than slidingWriteThreshold × S;
 *   has and ttl never extend.
 * With `slidingWriteThreshold: 0` every read that moves the expiry writes it; other thresholds are
 * modelled exactly too (S is whole seconds, so threshold × S is whole milliseconds).
 */
import { expect } from 'chai';
import fc from 'fast-check';
import type { EntryOptions, PgStoreOptions } from '../../src/index.js';
import { manualClock } from '../helpers/assert.js';
import { sql } from '../helpers/db.js';
import { useCacheTable } from '../helpers/fixture.js';
import { fcParams, propertyTimeout } from './fc-config.js';

const START = Date.parse('2031-05-01T00:00:00.000Z');
const DEFAULT_SLIDING_MS = 3_000;
const KEYS = ['x', 'y'];
const key = fc.constantFrom(...KEYS);

/** Durations near the whole seconds (where truncation and the inclusive `>=` matter) and in between. */
const ms = (max: number) => fc.oneof(fc.constantFrom(1, 999, 1_000, 1_001, 1_500, 1_999, 2_000, 3_000), fc.integer({ min: 1, max }));

type Op =
  | { op: 'ext.set'; key: string; value: string; sliding?: number; absolute?: number; asDate: boolean }
  | { op: 'store.set'; key: string; value: string; ttl?: number }
  | { op: 'advance'; ms: number }
  | { op: 'ext.getString' | 'store.get' | 'ext.has' | 'ext.ttl' | 'ext.refresh'; key: string }
  | { op: 'ext.getMany' };

const opArb: fc.Arbitrary<Op> = fc.oneof(
  {
    weight: 3,
    arbitrary: fc.record(
      {
        op: fc.constant('ext.set' as const),
        key,
        value: fc.string({ maxLength: 3 }),
        sliding: fc.integer({ min: 1_000, max: 5_999 }), // at least 1 s: fractions of a second are truncated
        absolute: ms(8_000),
        asDate: fc.boolean(), // absoluteExpiration (a Date) rather than absoluteExpirationRelative
      },
      { requiredKeys: ['op', 'key', 'value', 'asDate'] },
    ),
  },
  {
    weight: 1,
    arbitrary: fc.record(
      { op: fc.constant('store.set' as const), key, value: fc.string({ maxLength: 3 }), ttl: fc.oneof(ms(6_000), fc.constantFrom(0, -1, -1_000)) },
      { requiredKeys: ['op', 'key', 'value'] },
    ),
  },
  { weight: 4, arbitrary: fc.record({ op: fc.constant('advance' as const), ms: fc.oneof(fc.constantFrom(0, 1, 250, 300, 500, 999, 1_000, 1_001), fc.integer({ min: 1, max: 3_000 })) }) },
  // Reads that extend.
  { weight: 4, arbitrary: fc.record({ op: fc.constantFrom('ext.getString' as const, 'store.get' as const, 'ext.refresh' as const), key }) },
  { weight: 1, arbitrary: fc.constant({ op: 'ext.getMany' as const }) },
  // Observations that do not: ttl tells the exact expiry.
  { weight: 4, arbitrary: fc.record({ op: fc.constantFrom('ext.ttl' as const, 'ext.ttl' as const, 'ext.has' as const), key }) },
);

interface Entry {
  value: string;
  /** Sliding window in ms (whole seconds), or null. */
  sliding: number | null;
  absolute: number | null;
  /** Infinity: never. */
  expires: number;
}

class Model {
  now = START;
  readonly entries = new Map<string, Entry>();

  constructor(readonly threshold: number) {}

  live(key: string): Entry | undefined {
    const entry = this.entries.get(key);
    return entry && entry.expires >= this.now ? entry : undefined;
  }

  /** A read that extends: to LEAST(now + sliding, absolute), when that moves it by more than threshold × sliding. */
  read(key: string): Entry | undefined {
    const entry = this.live(key);
    if (entry && entry.sliding !== null) {
      const target = Math.min(this.now + entry.sliding, entry.absolute ?? Number.POSITIVE_INFINITY);
      if (target > entry.expires + Math.round(entry.sliding * this.threshold)) entry.expires = target;
    }
    return entry;
  }

  /** Applies `op`; returns what the call resolves to. */
  apply(op: Op): unknown {
    switch (op.op) {
      case 'ext.set': {
        let slidingMs = op.sliding;
        const absolute = op.absolute === undefined ? null : this.now + op.absolute;
        if (slidingMs === undefined && absolute === null) slidingMs = DEFAULT_SLIDING_MS;
        const sliding = slidingMs === undefined ? null : Math.trunc(slidingMs / 1000) * 1000;
        const expires = sliding === null ? absolute! : Math.min(this.now + sliding, absolute ?? Number.POSITIVE_INFINITY);
        this.entries.set(op.key, { value: op.value, sliding, absolute, expires });
        return undefined;
      }
      case 'store.set': {
        const absolute = op.ttl === undefined || op.ttl === 0 ? null : this.now + op.ttl;
        this.entries.set(op.key, { value: op.value, sliding: null, absolute, expires: absolute ?? Number.POSITIVE_INFINITY });
        return true;
      }
      case 'advance':
        this.now += op.ms;
        return undefined;
      case 'ext.getString':
      case 'store.get':
        return this.read(op.key)?.value;
      case 'ext.refresh':
        return this.read(op.key) !== undefined;
      case 'ext.getMany':
        return new Map(
          KEYS.flatMap((k) => {
            const entry = this.read(k);
            return entry ? [[k, entry.value] as const] : [];
          }),
        );
      case 'ext.has':
        return this.live(op.key) !== undefined;
      case 'ext.ttl': {
        const entry = this.live(op.key);
        return entry === undefined ? undefined : entry.expires === Number.POSITIVE_INFINITY ? Number.POSITIVE_INFINITY : entry.expires - this.now;
      }
    }
  }
}

const CONFIGS: Array<{ name: string; threshold: number; options: Omit<PgStoreOptions, 'pool' | 'table'> }> = [
  { name: 'slidingWriteThreshold: 0', threshold: 0, options: {} },
  { name: 'slidingWriteThreshold: 0, batching: false', threshold: 0, options: { batching: false } },
  { name: 'slidingWriteThreshold: 0, pipelining: false', threshold: 0, options: { pipelining: false } },
  { name: 'slidingWriteThreshold: 0.1 (default)', threshold: 0.1, options: {} },
  { name: 'slidingWriteThreshold: 0.5', threshold: 0.5, options: {} },
];

describe('Property: expiry model', function () {
  this.timeout(propertyTimeout());
  const t = useCacheTable('prop_expiry');

  for (const config of CONFIGS) {
    it(`${config.name}: sliding and absolute expiry under a manual clock agree with a model of .NET semantics`, async () => {
      const clock = manualClock(START);
      const store = t.make({ clock, defaultSlidingExpiration: DEFAULT_SLIDING_MS, ...config.options, slidingWriteThreshold: config.threshold });
      await store.has('warm-up');
      await fc.assert(
        fc.asyncProperty(fc.array(opArb, { minLength: 4, maxLength: 30, size: 'max' }), async (ops) => {
          await sql(`DELETE FROM public.${t.table}`);
          clock.set(START);
          const model = new Model(config.threshold);
          for (const [i, op] of ops.entries()) {
            const now = clock();
            const expected = model.apply(op);
            let actual: unknown;
            switch (op.op) {
              case 'ext.set': {
                const options: EntryOptions = {
                  ...(op.sliding === undefined ? {} : { slidingExpiration: op.sliding }),
                  ...(op.absolute === undefined
                    ? {}
                    : op.asDate
                      ? { absoluteExpiration: new Date(now + op.absolute) }
                      : { absoluteExpirationRelative: op.absolute }),
                };
                actual = await store.ext.set(op.key, op.value, options);
                break;
              }
              case 'store.set':
                actual = await store.set(op.key, op.value, op.ttl);
                break;
              case 'advance':
                clock.advance(op.ms);
                break;
              case 'ext.getString':
                actual = await store.ext.getString(op.key);
                break;
              case 'store.get':
                actual = await store.get(op.key);
                break;
              case 'ext.refresh':
                actual = await store.ext.refresh(op.key);
                break;
              case 'ext.getMany':
                actual = new Map([...(await store.ext.getMany(KEYS))].map(([k, v]) => [k, v.toString('utf8')]));
                break;
              case 'ext.has':
                actual = await store.ext.has(op.key);
                break;
              case 'ext.ttl':
                actual = await store.ext.ttl(op.key);
                break;
            }
            expect(actual, `step ${i}: ${JSON.stringify(op)} at +${model.now - START} ms`).to.deep.equal(expected);
          }
        }),
        fcParams,
      );
    });
  }
});
