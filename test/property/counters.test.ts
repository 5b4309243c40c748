/**
 * Property: increments issued in one tick without awaiting (so batched together when batching is on)
 * give exactly the results of applying them one by one in issue order: each resolves with the running
 * value, or rejects with CounterOverflowError when that value would leave int64 (and changes nothing).
 * Values within Number.MAX_SAFE_INTEGER come back as numbers, larger ones as bigint (src/ext/counters.ts).
 */
import { expect } from 'chai';
import fc from 'fast-check';
import { CounterOverflowError, InvalidValueError, type PgStore } from '../../src/index.js';
import { manualClock } from '../helpers/assert.js';
import { sql } from '../helpers/db.js';
import { useCacheTable } from '../helpers/fixture.js';
import { fcParams, propertyTimeout } from './fc-config.js';

const MAX = 2n ** 63n - 1n;
const MIN = -(2n ** 63n);
const SAFE = BigInt(Number.MAX_SAFE_INTEGER);

/** int64 values weighted towards the edges: zero, the safe-integer limits, the int64 limits. */
const int64 = fc.oneof(
  fc.bigInt({ min: -5n, max: 5n }),
  fc.bigInt({ min: SAFE - 3n, max: SAFE + 3n }),
  fc.bigInt({ min: -SAFE - 3n, max: -SAFE + 3n }),
  fc.bigInt({ min: MAX - 5n, max: MAX }),
  fc.bigInt({ min: MIN, max: MIN + 5n }),
  fc.bigInt({ min: MIN, max: MAX }),
  fc.constantFrom(2n ** 62n, -(2n ** 62n), MAX, MIN, 1n, -1n),
);

const op = fc.record({
  key: fc.nat({ max: 1 }),
  delta: int64,
  asNumber: fc.boolean(), // pass a safe delta as a number rather than a bigint
  decr: fc.boolean(),
});

const scenario = fc.record({
  // undefined: the counter does not exist yet
  starts: fc.tuple(fc.option(int64, { nil: undefined }), fc.option(int64, { nil: undefined })),
  // An expired start value is as good as none: the counter restarts from the delta.
  expired: fc.tuple(fc.boolean(), fc.boolean()),
  ops: fc.array(op, { minLength: 1, maxLength: 8 }),
  batching: fc.boolean(),
});

type Expected = { value: number | bigint } | { error: typeof CounterOverflowError | typeof InvalidValueError };

/** What a caller gets for a value: a number when it is a safe integer, else the bigint. */
const returned = (value: bigint): number | bigint => (value >= -SAFE && value <= SAFE ? Number(value) : value);

describe('Property: counters in one tick', function () {
  this.timeout(propertyTimeout());
  const t = useCacheTable('prop_counters');

  it('same-tick increments equal applying them one by one in issue order; overflow rejects and is skipped', async () => {
    const clock = manualClock(Date.parse('2031-05-01T00:00:00.000Z'));
    const stores = new Map<boolean, PgStore>([
      [true, t.make({ clock })],
      [false, t.make({ clock, batching: false })],
    ]);
    for (const store of stores.values()) await store.has('warm-up');
    await fc.assert(
      fc.asyncProperty(scenario, async ({ starts, expired, ops, batching }) => {
        await sql(`DELETE FROM public.${t.table}`);
        const ext = stores.get(batching)!.ext;
        const keys = ['c0', 'c1'];
        for (const [i, start] of starts.entries()) {
          if (start !== undefined) await ext.set(keys[i]!, String(start), expired[i] ? { absoluteExpirationRelative: 1_000 } : {});
        }
        clock.advance(1_001);

        // The model: one by one, in issue order. A missing (or expired) counter counts as 0 (it starts from the delta).
        const model = starts.map((start, i) => (expired[i] ? undefined : start));
        const expected: Expected[] = ops.map(({ key, delta, decr }) => {
          const by = decr ? -delta : delta;
          if (by < MIN || by > MAX) return { error: InvalidValueError }; // decr(-2^63): refused before the query
          const next = (model[key] ?? 0n) + by;
          if (next < MIN || next > MAX) return { error: CounterOverflowError };
          model[key] = next;
          return { value: returned(next) };
        });

        // Issued in one tick, none awaited before the last is issued.
        const settled = await Promise.allSettled(
          ops.map(({ key, delta, asNumber, decr }) => {
            const by = asNumber && delta >= -SAFE && delta <= SAFE ? Number(delta) : delta;
            return decr ? ext.decr(keys[key]!, by) : ext.incr(keys[key]!, by);
          }),
        );
        settled.forEach((outcome, i) => {
          const want = expected[i]!;
          const what = `call ${i} (${JSON.stringify(ops[i], (_, v: unknown) => (typeof v === 'bigint' ? `${v}n` : v))})`;
          if ('value' in want) {
            expect(outcome.status, `${what}: ${outcome.status === 'rejected' ? String(outcome.reason) : ''}`).to.equal('fulfilled');
            expect((outcome as PromiseFulfilledResult<number | bigint>).value, what).to.equal(want.value);
          } else {
            expect(outcome.status, what).to.equal('rejected');
            expect((outcome as PromiseRejectedResult).reason, what).to.be.instanceOf(want.error);
          }
        });
        for (const [i, value] of model.entries()) {
          expect(await ext.getString(keys[i]!), `stored value of ${keys[i]}`).to.equal(value === undefined ? undefined : String(value));
        }
      }),
      fcParams,
    );
  });
});
