/**
 * Bad input is refused up front with a typed error that names what was wrong, before anything runs:
 * nothing is written, no lock is taken, no timer runs away, and the other callers of the same tick are
 * not affected. (docs/reliability.md lists each input tried and what it gets.)
 */
import { expect } from 'chai';
import Keyv from 'keyv';
import { CounterOverflowError, InvalidOptionError, InvalidValueError, PgStore, QueryError } from '../../src/index.js';
import { rejects } from '../helpers/assert.js';
import { sql, testUrl } from '../helpers/db.js';
import { useCacheTable } from '../helpers/fixture.js';

const YEAR_10000 = new Date(Date.UTC(10000, 0, 1));
const INT64_MAX = 2n ** 63n - 1n;

describe('Bad input', function () {
  const t = useCacheTable('badin');

  async function rowCount(): Promise<number> {
    const [row] = await sql<{ n: string }>(`SELECT count(*) AS n FROM public.${t.table}`);
    return Number(row!.n);
  }

  describe('is refused before anything runs, naming the option', () => {
    const cases: Array<[string, (store: PgStore) => unknown, new (...args: never[]) => Error, string | undefined]> = [
      ['an absolute expiration past year 9999', (s) => s.ext.set('k', 'v', { absoluteExpiration: YEAR_10000 }), InvalidOptionError, 'absoluteExpiration'],
      ['a sliding expiration of 10,000 years', (s) => s.ext.set('k', 'v', { slidingExpiration: 10_000 * 366 * 86_400_000 }), InvalidOptionError, 'slidingExpiration'],
      ['a tag over the index key limit', (s) => s.ext.set('k', 'v', { tags: ['x'.repeat(4000)] }), InvalidOptionError, 'tags'],
      ['a Keyv ttl past year 9999', (s) => s.set('k', 'v', 3e14), InvalidValueError, undefined],
      ['a lone surrogate in a Keyv value', (s) => s.set('k', 'a\uD800b'), InvalidValueError, undefined],
      ['a counter ttl of 1e300 ms', (s) => s.ext.incr('n', 1, { ttl: 1e300 }), InvalidOptionError, 'ttl'],
      ['an unknown counter option', (s) => s.ext.incr('n', 1, { tll: 5 } as never), InvalidOptionError, 'tll'],
      ['a decrement given as a string', (s) => s.ext.decr('n', '1' as never), InvalidValueError, undefined],
      ['a decrement given as null', (s) => s.ext.decr('n', null as never), InvalidValueError, undefined],
      ['a decrement given as true', (s) => s.ext.decr('n', true as never), InvalidValueError, undefined],
      ['a decrement given as [5]', (s) => s.ext.decr('n', [5] as never), InvalidValueError, undefined],
      ['a lock ttl of 1e300 ms', (s) => s.ext.tryLock('l', { ttl: 1e300 }), InvalidOptionError, 'ttl'],
      ['a lock ttl of 90 days (its renewal timer would overflow)', (s) => s.ext.withLock('l', async () => 1, { ttl: '90d' }), InvalidOptionError, 'ttl'],
      ['an unknown lock option', (s) => s.ext.tryLock('l', { wiat: 1 } as never), InvalidOptionError, 'wiat'],
      ['an unknown lock option on lock()', (s) => s.ext.lock('l', { bogus: true } as never), InvalidOptionError, 'bogus'],
      ['an unknown deletePattern option', (s) => s.ext.deletePattern('a*', { al: true } as never), InvalidOptionError, 'al'],
      ['deleteTags(undefined)', (s) => s.ext.deleteTags(undefined as never), InvalidOptionError, 'tags'],
      // A BigInt, a Symbol or a circular object in an option: the message cannot be JSON, the error must still be typed.
      ['a lock ttl given as a BigInt', (s) => s.ext.lock('l', { ttl: 5000n as never }), InvalidOptionError, 'ttl'],
      ['a lock wait given as a Symbol', (s) => s.ext.lock('l', { wait: Symbol('w') as never }), InvalidOptionError, 'wait'],
      ['a sliding expiration given as a BigInt', (s) => s.ext.set('k', 'v', { slidingExpiration: 60n as never }), InvalidOptionError, 'slidingExpiration'],
      ['a tag given as a BigInt', (s) => s.ext.set('k', 'v', { tags: [1n as never] }), InvalidOptionError, 'tags'],
      ['an onLockTimeout given as a BigInt', (s) => s.ext.getOrSet('k', async () => 'v', { onLockTimeout: 1n as never }), InvalidOptionError, 'onLockTimeout'],
      ['a deleteTags match given as a Symbol', (s) => s.ext.deleteTags(['t'], { match: Symbol('any') as never }), InvalidOptionError, 'match'],
      // The shape one writes by analogy with other caches' bulk APIs: refused with what setMany takes, not a TypeError.
      ['setMany given entry objects, not [key, value] pairs', (s) => s.ext.setMany([{ key: 'a', value: 'v' }] as never), InvalidValueError, undefined],
      ['setMany given a good pair, then a bare key', (s) => s.ext.setMany([['a', 'v'], 'b'] as never), InvalidValueError, undefined],
      ['setMany given null', (s) => s.ext.setMany(null as never), InvalidValueError, undefined],
      ['a pattern given as a BigInt', (s) => s.ext.deletePattern(1n as never), InvalidValueError, undefined],
      [
        'a decorator on something that is not a method',
        (s) => (s.ext.decorators.cached({ key: () => 'k' }) as unknown as (v: unknown, c: { kind: string }) => unknown)(undefined, { kind: 'field' }),
        InvalidOptionError,
        'decorator',
      ],
      ['a getOrSet lockTimeout of 4 weeks', (s) => s.ext.getOrSet('k', async () => 'v', { lockTimeout: '4w' }), InvalidOptionError, 'lockTimeout'],
      ['a getOrSet hardTimeout of 30 days', (s) => s.ext.getOrSet('k', async () => 'v', { hardTimeout: '30d' }), InvalidOptionError, 'hardTimeout'],
      [
        'a getOrSet grace.maxStale of 1e300 ms (not replacing the factory error later)',
        (s) => s.ext.getOrSet('k', async () => Promise.reject(new Error('factory')), { grace: { maxStale: 1e300 } }),
        InvalidOptionError,
        'grace.maxStale',
      ],
    ];
    for (const [what, call, type, option] of cases) {
      it(what, async () => {
        const store = t.make();
        const error = await rejects(async () => call(store), type);
        if (option !== undefined) expect((error as InvalidOptionError).option).to.equal(option);
        expect(await rowCount(), 'nothing written').to.equal(0);
      });
    }

    const constructorCases: Array<[string, Record<string, unknown>, string]> = [
      ['retainExpiredFor of 1e16 ms', { retainExpiredFor: 1e16 }, 'retainExpiredFor'],
      ['expirationScanInterval of 4 weeks (a timer holds at most 24.8 days)', { expirationScanInterval: '4w' }, 'expirationScanInterval'],
      ['statementTimeout of 4 weeks', { statementTimeout: '4w' }, 'statementTimeout'],
      ['poolConfig.max that contradicts poolMax', { poolConfig: { max: 3 }, poolMax: 5 }, 'poolConfig.max'],
      ['poolMax given as a BigInt', { poolMax: 5n }, 'poolMax'],
      ['useWal given as a BigInt', { useWal: 1n }, 'useWal'],
      ['table given as a Symbol', { table: Symbol('t') }, 'table'],
      ['slidingWriteThreshold given as a BigInt', { slidingWriteThreshold: 1n }, 'slidingWriteThreshold'],
      ['localCache.maxEntries given as a BigInt', { localCache: { maxEntries: 10n } }, 'localCache'],
      ['distributed.shardCount given as a BigInt', { distributed: { shardCount: 4n } }, 'distributed'],
      ['distributed with shardCount and colocateWith', { distributed: { shardCount: 4, colocateWith: 'other' } }, 'distributed'],
      ['distributed.colocateWith that is not a table name', { distributed: { colocateWith: 'a; drop table x' } }, 'distributed'],
      ['distributed with an unknown field', { distributed: { shards: 4 } }, 'distributed'],
      ['retainExpiredFor given as a circular object', { retainExpiredFor: (() => { const o: Record<string, unknown> = {}; o['self'] = o; return o; })() }, 'retainExpiredFor'],
    ];
    for (const [what, options, option] of constructorCases) {
      it(`new PgStore with ${what}`, () => {
        const error = (() => {
          try {
            new PgStore({ uri: testUrl(), ...options });
          } catch (thrown) {
            return thrown;
          }
          return undefined;
        })();
        expect(error).to.be.instanceOf(InvalidOptionError);
        expect((error as InvalidOptionError).option).to.equal(option);
      });
    }

  });

  describe('in a batch, only the bad call fails', () => {
    it('a bad option among good writes of the same tick', async () => {
      const store = t.make();
      const keyv = new Keyv({ store, namespace: undefined as never });
      const outcomes = await Promise.allSettled([
        store.ext.set('g1', 'v'),
        store.ext.set('bad', 'v', { absoluteExpiration: YEAR_10000 }),
        store.ext.set('bad2', 'v', { tags: ['x'.repeat(4000)] }),
        store.set('g2', 'v'),
        keyv.set('g3', 'v'),
      ]);
      expect(outcomes.map((o) => o.status)).to.deep.equal(['fulfilled', 'rejected', 'rejected', 'fulfilled', 'fulfilled']);
      expect(await store.ext.getString('g1')).to.equal('v');
      expect(await store.get('g2')).to.equal('v');
      expect(await store.has('bad')).to.equal(false);
    });

    for (const preparedStatements of [true, false]) {
      it(`a row PostgreSQL refuses fails its own caller only (preparedStatements: ${preparedStatements})`, async () => {
        await sql(`ALTER TABLE public.${t.table} ADD CONSTRAINT no_poison CHECK (id <> 'poison')`);
        try {
          const store = t.make({ preparedStatements });
          await store.set('r', 'before');
          const outcomes = await Promise.allSettled([
            store.ext.set('g1', 'v'),
            store.ext.set('poison', 'v'),
            store.set('g2', 'v'),
            store.get('r'),
          ]);
          expect(outcomes.map((o) => o.status)).to.deep.equal(['fulfilled', 'rejected', 'fulfilled', 'fulfilled']);
          expect((outcomes[1] as PromiseRejectedResult).reason).to.be.instanceOf(QueryError);
          expect((outcomes[3] as PromiseFulfilledResult<unknown>).value).to.equal('before');
          expect(await store.ext.getString('g1')).to.equal('v');
          expect(await store.get('g2')).to.equal('v');
        } finally {
          await sql(`ALTER TABLE public.${t.table} DROP CONSTRAINT no_poison`);
        }
      });
    }

    it('same-tick increments give the results of running them in issue order, never a value outside int64', async () => {
      const store = t.make();
      await store.ext.incr('c', INT64_MAX - 1n);
      const outcomes = await Promise.allSettled([store.ext.incr('c', 1), store.ext.incr('c', 1), store.ext.incr('c', -1)]);
      expect(outcomes[0]).to.deep.equal({ status: 'fulfilled', value: INT64_MAX });
      expect(outcomes[1]!.status).to.equal('rejected');
      expect((outcomes[1] as PromiseRejectedResult).reason).to.be.instanceOf(CounterOverflowError);
      expect(outcomes[2]).to.deep.equal({ status: 'fulfilled', value: INT64_MAX - 1n });
      expect(await store.ext.incr('c', 0)).to.equal(INT64_MAX - 1n);
    });
  });
});
