/**
 * Property: for random entries (live and expired) with random tag sets, a random deleteTags call
 * (`match: 'any'`, the default, or `'all'`) deletes exactly the rows a model picks (an entry carrying
 * any / all of the tags; expired rows too), keeps every other row, and resolves to the number of live
 * entries it deleted.
 */
import { expect } from 'chai';
import fc from 'fast-check';
import type { DeleteTagsOptions, PgStore } from '../../src/index.js';
import { manualClock } from '../helpers/assert.js';
import { sql } from '../helpers/db.js';
import { useCacheTable } from '../helpers/fixture.js';
import { fcParams, propertyTimeout } from './fc-config.js';

/** Few tags, so that entries share them; some need quoting in an array literal. */
const tag = fc.constantFrom('a', 'b', 'c', 'd', 'é', 'x y', 'with,comma', '{brace}', '"quoted"', 'back\\slash', 'NULL', '😀');

const entry = fc.record({
  // undefined: no tags option; []: explicitly none. Duplicates are allowed (the store drops them).
  tags: fc.option(fc.array(tag, { maxLength: 4 }), { nil: undefined }),
  expired: fc.boolean(),
});

const scenario = fc.record({
  entries: fc.array(entry, { maxLength: 10 }),
  query: fc.array(tag, { minLength: 1, maxLength: 3 }),
  match: fc.constantFrom<DeleteTagsOptions['match'] | 'omitted'>('any', 'all', 'omitted'),
  store: fc.nat({ max: 2 }),
});

describe('Property: tags', function () {
  this.timeout(propertyTimeout());
  const t = useCacheTable('prop_tags');

  it('deleteTags deletes exactly the entries a model picks and returns how many were live', async () => {
    const clock = manualClock(Date.parse('2031-05-01T00:00:00.000Z'));
    const stores: PgStore[] = [t.make({ clock }), t.make({ clock, deleteBatchSize: 1 }), t.make({ clock, deleteBatchSize: 2 })];
    await fc.assert(
      fc.asyncProperty(scenario, async ({ entries, query, match, store: which }) => {
        await sql(`DELETE FROM public.${t.table}`);
        const ext = stores[which]!.ext;
        const rows = entries.map((e, i) => ({ ...e, key: `e${i}` }));
        const dead = rows.filter((r) => r.expired);
        const live = rows.filter((r) => !r.expired);
        if (dead.length > 0) {
          await Promise.all(dead.map((r) => ext.set(r.key, 'x', { absoluteExpirationRelative: 1_000, ...(r.tags ? { tags: r.tags } : {}) })));
          clock.advance(1_001);
        }
        await Promise.all(live.map((r) => ext.set(r.key, 'x', r.tags ? { tags: r.tags } : undefined)));

        const all = match === 'all';
        const picked = (r: (typeof rows)[number]) => {
          const own = r.tags ?? [];
          return all ? query.every((q) => own.includes(q)) : query.some((q) => own.includes(q));
        };
        const deleted = await ext.deleteTags(query, match === 'omitted' ? undefined : { match });
        const what = `deleteTags(${JSON.stringify(query)}, match ${match})`;
        expect(deleted, `${what}: live entries deleted`).to.equal(live.filter(picked).length);
        expect(await t.ids(), `${what}: rows left`).to.have.members(rows.filter((r) => !picked(r)).map((r) => r.key));
        expect(await t.count()).to.equal(rows.filter((r) => !picked(r)).length);
      }),
      fcParams,
    );
  });
});
