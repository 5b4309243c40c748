/**
 * Property: calls on a few keys issued in one tick without awaiting each other give the results of a
 * sequential model (each read sees the latest write or delete issued before it, whatever the batching),
 * and leave the table as the model's last state.
 */
import { expect } from 'chai';
import fc from 'fast-check';
import type { PgStore, PgStoreOptions } from '../../src/index.js';
import { sql } from '../helpers/db.js';
import { useCacheTable } from '../helpers/fixture.js';
import { fcParams, propertyTimeout } from './fc-config.js';

const KEYS = ['k0', 'k1', 'k2'];
const key = fc.constantFrom(...KEYS);
/** Well-formed strings; backslashes and NUL stress the text read path (values in `escape` form). */
const value = fc.string({ unit: fc.oneof(fc.string({ unit: 'binary', minLength: 1, maxLength: 1 }), fc.constantFrom('\\', '\0', '\\000', 'é', '😀')), maxLength: 8 });

type Op =
  | { op: 'ext.set' | 'store.set'; key: string; value: string }
  | { op: 'ext.delete' | 'ext.getString' | 'ext.get' | 'ext.has' | 'store.get' | 'store.delete' | 'store.has'; key: string }
  | { op: 'ext.getMany' | 'ext.deleteMany'; keys: string[] }
  | { op: 'ext.setMany'; entries: Array<[string, string]> };

/** The calls of the brief: store.ext set / delete / getString / has. */
const basicOp: fc.Arbitrary<Op> = fc.oneof(
  fc.record({ op: fc.constant('ext.set' as const), key, value }),
  fc.record({ op: fc.constantFrom('ext.delete' as const, 'ext.getString' as const, 'ext.has' as const), key }),
);

/** Those, the Keyv store's get / set / delete / has, bytes reads, and the bulk calls. */
const mixedOp: fc.Arbitrary<Op> = fc.oneof(
  basicOp,
  fc.record({ op: fc.constant('store.set' as const), key, value }),
  fc.record({ op: fc.constantFrom('ext.get' as const, 'store.get' as const, 'store.delete' as const, 'store.has' as const), key }),
  fc.record({ op: fc.constantFrom('ext.getMany' as const, 'ext.deleteMany' as const), keys: fc.uniqueArray(key, { minLength: 1, maxLength: 3 }) }),
  fc.record({ op: fc.constant('ext.setMany' as const), entries: fc.array(fc.tuple(key, value), { minLength: 1, maxLength: 3 }) }),
);

/** Runs `op` on the store. */
function issue(store: PgStore, op: Op): Promise<unknown> {
  switch (op.op) {
    case 'ext.set': return store.ext.set(op.key, op.value);
    case 'store.set': return store.set(op.key, op.value);
    case 'ext.delete': return store.ext.delete(op.key);
    case 'ext.getString': return store.ext.getString(op.key);
    case 'ext.get': return store.ext.get(op.key).then((bytes) => bytes?.toString('utf8'));
    case 'ext.has': return store.ext.has(op.key);
    case 'store.get': return store.get(op.key);
    case 'store.delete': return store.delete(op.key);
    case 'store.has': return store.has(op.key);
    case 'ext.getMany': return store.ext.getMany(op.keys).then((found) => new Map([...found].map(([k, v]) => [k, v.toString('utf8')])));
    case 'ext.deleteMany': return store.ext.deleteMany(op.keys);
    case 'ext.setMany': return store.ext.setMany(op.entries);
  }
}

/** Applies `op` to the model and returns what the call should resolve to. */
function apply(model: Map<string, string>, op: Op): unknown {
  switch (op.op) {
    case 'ext.set':
      model.set(op.key, op.value);
      return undefined;
    case 'store.set':
      model.set(op.key, op.value);
      return true;
    case 'ext.delete':
    case 'store.delete':
      return model.delete(op.key);
    case 'ext.getString':
    case 'ext.get':
    case 'store.get':
      return model.get(op.key);
    case 'ext.has':
    case 'store.has':
      return model.has(op.key);
    case 'ext.getMany':
      return new Map(op.keys.filter((k) => model.has(k)).map((k) => [k, model.get(k)!]));
    case 'ext.deleteMany':
      return op.keys.filter((k) => model.delete(k)).length;
    case 'ext.setMany':
      for (const [k, v] of op.entries) model.set(k, v);
      return undefined;
  }
}

const scenario = (ops: fc.Arbitrary<Op>) =>
  fc.record({
    initial: fc.array(fc.option(value, { nil: undefined }), { minLength: KEYS.length, maxLength: KEYS.length }),
    ops: fc.array(ops, { minLength: 1, maxLength: 12 }),
  });

const CONFIGS: Array<{ name: string; options: Omit<PgStoreOptions, 'pool' | 'table'> }> = [
  { name: 'batching on (default)', options: {} },
  { name: 'batching: false', options: { batching: false } },
  { name: 'batching on, pipelining: false', options: { pipelining: false } },
  { name: 'batching on, maxBatchSize: 2', options: { maxBatchSize: 2 } },
  { name: 'localCache: true', options: { localCache: true } },
];

describe('Property: issue order in one tick', function () {
  this.timeout(propertyTimeout());
  const t = useCacheTable('prop_order');

  for (const config of CONFIGS) {
    for (const [name, ops] of [['ext set / delete / getString / has', basicOp], ['with Keyv store calls, bytes reads and bulk calls', mixedOp]] as const) {
      if (config.options.localCache && ops === basicOp) continue; // store.ext entries slide: the local tier never keeps them
      it(`${config.name}: ${name} give the sequential model's results`, async () => {
        const store = t.make(config.options);
        await store.has('warm-up');
        await fc.assert(
          fc.asyncProperty(scenario(ops), async ({ initial, ops: list }) => {
            await sql(`DELETE FROM public.${t.table}`);
            // The initial rows go in through the store, so a local tier hears of them.
            await Promise.all(KEYS.map((k) => store.delete(k)));
            const model = new Map<string, string>();
            for (const [i, v] of initial.entries()) {
              if (v === undefined) continue;
              await store.ext.set(KEYS[i]!, v);
              model.set(KEYS[i]!, v);
            }
            const expected = list.map((op) => apply(model, op));
            // All issued in one tick.
            const results = await Promise.all(list.map((op) => issue(store, op)));
            results.forEach((result, i) => {
              expect(result, `call ${i}: ${JSON.stringify(list[i])}`).to.deep.equal(expected[i]);
            });
            const stored = new Map((await sql<{ id: string; value: Buffer }>(`SELECT id, value FROM public.${t.table}`)).map((r) => [r.id, r.value.toString('utf8')]));
            expect(stored, 'rows after the tick').to.deep.equal(model);
          }),
          fcParams,
        );
      });
    }
  }
});
