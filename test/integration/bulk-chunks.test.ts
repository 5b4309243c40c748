/**
 * Bulk writes larger than one statement (src/execution/chunked.ts): several statements of a few thousand rows
 * in one transaction, so that building and sending them does not hold the process's other calls in one block,
 * while the call stays what one statement was: all rows or none.
 */
import { expect } from 'chai';
import { QueryError } from '../../src/index.js';
import { CHUNK_ROWS } from '../../src/execution/chunked.js';
import { rejects } from '../helpers/assert.js';
import { sql, testDistributed } from '../helpers/db.js';
import { useCacheTable } from '../helpers/fixture.js';

describe('bulk writes larger than one statement', () => {
  const fx = useCacheTable('cp_chunks');
  const N = 2 * CHUNK_ROWS + 1234;
  const keys = Array.from({ length: N }, (_, i) => `bulk:${i}`);

  // Row triggers on a distributed table need citus.enable_unsafe_triggers; the statements are the same there.
  (testDistributed() ? it.skip : it)(`a setMany or deleteMany of ${N} keys runs as statements of at most ${CHUNK_ROWS} rows, in one transaction`, async () => {
    const log = `${fx.table}_log`;
    await sql(`CREATE TABLE public.${log} (op text, stmt timestamptz, tx xid8)`);
    await sql(`CREATE FUNCTION public.${log}_f() RETURNS trigger LANGUAGE plpgsql AS $$
      BEGIN INSERT INTO public.${log} VALUES (TG_OP, statement_timestamp(), pg_current_xact_id()); RETURN NULL; END $$`);
    await sql(`CREATE TRIGGER ${log}_t AFTER INSERT OR DELETE ON public.${fx.table} FOR EACH ROW EXECUTE FUNCTION public.${log}_f()`);
    try {
      const store = fx.make();
      await store.ext.setMany(keys.map((key) => [key, 'v'] as const));
      expect(await fx.count()).to.equal(N);
      expect(await store.ext.deleteMany(keys)).to.equal(N);
      const statements = await sql<{ op: string; rows: number; txs: number }>(
        `SELECT op, count(*)::int AS rows, count(DISTINCT tx)::int AS txs FROM public.${log} GROUP BY op, stmt ORDER BY op, stmt`,
      );
      for (const op of ['INSERT', 'DELETE']) {
        const of = statements.filter((statement) => statement.op === op);
        expect(of.map((statement) => statement.rows), op).to.deep.equal([CHUNK_ROWS, CHUNK_ROWS, 1234]); // before: [N]
        expect((await sql<{ n: number }>(`SELECT count(DISTINCT tx)::int AS n FROM public.${log} WHERE op = $1`, [op]))[0]!.n, `${op}: one transaction`).to.equal(1);
      }
    } finally {
      await sql(`DROP TABLE public.${log}`);
      await sql(`DROP TRIGGER ${log}_t ON public.${fx.table}`);
      await sql(`DROP FUNCTION public.${log}_f()`);
    }
  });

  it('stays all-or-nothing: a row refused in its last statement leaves no row written, and the rows it would replace as they were', async () => {
    const store = fx.make();
    await store.ext.setMany(keys.slice(0, 10).map((key) => [key, 'old'] as const));
    await sql(`ALTER TABLE public.${fx.table} ADD CONSTRAINT ${fx.table}_poison CHECK (id <> 'poison')`);
    try {
      const err = await rejects(store.ext.setMany([...keys.map((key) => [key, 'new'] as const), ['poison', 'x'] as const]), QueryError);
      expect(err.sqlState).to.equal('23514');
      expect(await fx.count()).to.equal(10);
      expect((await store.ext.getMany(keys.slice(0, 10))).get(keys[0]!)?.toString()).to.equal('old');
      await store.ext.setMany(keys.map((key) => [key, 'new'] as const));
      expect(await fx.count()).to.equal(N);
    } finally {
      await sql(`ALTER TABLE public.${fx.table} DROP CONSTRAINT ${fx.table}_poison`);
    }
  });

  it('a large deleteMany answers how many were live, across its statements', async () => {
    const store = fx.make();
    await store.ext.setMany(keys.filter((_, i) => i % 3 === 0).map((key) => [key, 'v'] as const));
    const live = keys.filter((_, i) => i % 3 === 0).length;
    expect(await store.ext.deleteMany(keys)).to.equal(live);
    expect(await fx.count()).to.equal(0);
  });

  it('keeps issue order with calls on its keys issued in the same tick: a read before it sees the old value, a read and a write after it see and keep the new', async () => {
    const store = fx.make();
    await store.ext.set(keys[7000]!, 'old');
    const before = store.ext.get(keys[7000]!);
    const write = store.ext.setMany(keys.map((key) => [key, 'new'] as const));
    const after = store.ext.get(keys[7000]!);
    const overwrite = store.ext.set(keys[9000]!, 'later');
    const [seenBefore, , seenAfter] = await Promise.all([before, write, after, overwrite]);
    expect(seenBefore?.toString()).to.equal('old');
    expect(seenAfter?.toString()).to.equal('new');
    expect((await store.ext.get(keys[9000]!))?.toString(), 'a set issued after the setMany lands after it').to.equal('later');
    expect(await fx.count()).to.equal(N);
  });

  it('two stores writing the same keys in opposite orders: a deadlock between their transactions is retried, and both land', async () => {
    const [a, b] = [fx.make(), fx.make()];
    const deadlocks = async () => (await sql<{ n: number }>('SELECT deadlocks::int AS n FROM pg_stat_database WHERE datname = current_database()'))[0]!.n;
    const before = await deadlocks();
    // Until PostgreSQL has chosen a victim at least once (the statistics lag by up to a second), so the retry is exercised.
    for (let attempt = 0; attempt < 5; attempt++) {
      await Promise.all([
        a.ext.setMany(keys.map((key) => [key, 'a'] as const)),
        b.ext.setMany(keys.slice().reverse().map((key) => [key, 'b'] as const)),
      ]);
      expect(await fx.count()).to.equal(N);
      // On Citus the two writers did not deadlock in 5 of 5 tries (each statement's rows go shard by shard): both
      // landing is what is checked there.
      if (testDistributed()) return;
      await sql('SELECT pg_stat_clear_snapshot()');
      if ((await deadlocks()) > before) return;
    }
    expect.fail('no deadlock between the two writers in 5 attempts: the retry was not exercised');
  });
});
