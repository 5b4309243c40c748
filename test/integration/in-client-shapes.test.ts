import { expect } from 'chai';
import pg from 'pg';
import { type CacheTransaction, type CallerClient, CachePostgresError, type PgStore, UnreadableResultError } from '../../src/index.js';
import { sql, testUrl } from '../helpers/db.js';
import { useCacheTable } from '../helpers/fixture.js';
import { rejection } from '../helpers/settle.js';

/**
 * Issue 26, defect 3: `ext.in(client)` with a client whose answers the store cannot read (a pg client in
 * rowMode 'array', an adapter answering `[{}]`, `null`, counts as strings...) looped forever in deleteTags and
 * deletePattern, threw TypeError / SyntaxError elsewhere, and ran an incr before throwing. Each call here must
 * end promptly with UnreadableResultError; a client refused up front must have written nothing.
 */

/** Statements an adapter answers before it stops a runaway loop with an error of its own (even one that never yields). */
const GUARD = 200;
/** Longest a call may take to be refused. */
const PROMPTLY_MS = 5_000;

/** The calls of ext.in(client), one per statement family. */
const CALLS: Record<string, (tx: CacheTransaction) => Promise<unknown>> = {
  get: (tx) => tx.get('k'),
  set: (tx) => tx.set('k', 'v1', { absoluteExpirationRelative: '1h' }),
  setMany: (tx) => tx.setMany({ k: 'v1', other: 'o' }, { absoluteExpirationRelative: '1h' }),
  delete: (tx) => tx.delete('k'),
  deleteMany: (tx) => tx.deleteMany(['k', 'p:1']),
  deleteTags: (tx) => tx.deleteTags(['t']),
  deletePattern: (tx) => tx.deletePattern('p:*'),
  incr: (tx) => tx.incr('n', 1),
  decr: (tx) => tx.decr('n', 1),
};

/** A client that records the text of every statement it is sent and answers with `answer`. */
interface Recording extends CallerClient {
  readonly sent: string[];
}

function recording(answer: (text: string, values: unknown[]) => unknown, guard = GUARD): Recording {
  const sent: string[] = [];
  return {
    sent,
    query: async (text: string, values: unknown[]) => {
      if (sent.length >= guard) throw new Error(`runaway: ${guard} statements sent`);
      sent.push(text);
      return answer(text, values);
    },
  };
}

describe('ext.in(client): a client whose answers the store cannot read', function () {
  this.timeout(30_000);
  const fx = useCacheTable('cp_shapes');
  let client: pg.Client;
  let store: PgStore;
  let seeded: unknown[];

  const snapshot = () => sql(`SELECT id, encode(value, 'escape') AS value, tags FROM public.${fx.table} ORDER BY id`);
  /** Statements that reached the cache table, or told the tiers of a change. */
  const touching = (sent: readonly string[]) => sent.filter((text) => text.includes(fx.table) || text.includes('pg_notify'));
  /** The call's rejection, within PROMPTLY_MS: an UnreadableResultError (its code, since a regression may throw anything). */
  const refused = async (call: Promise<unknown>, what: string, withinMs = PROMPTLY_MS): Promise<UnreadableResultError> => {
    const error = await rejection(call, withinMs, what);
    expect(error, `${what}: ${error.stack}`).to.be.instanceOf(CachePostgresError);
    expect(error.code, `${what}: ${error.message}`).to.equal('E_UNREADABLE_RESULT');
    expect(error).to.be.instanceOf(UnreadableResultError);
    return error as UnreadableResultError;
  };
  /** The transaction is still usable (not aborted), and rolls back. */
  const rollBack = async () => {
    expect((await client.query<{ one: number }>('SELECT 1 AS one')).rows).to.deep.equal([{ one: 1 }]);
    await client.query('ROLLBACK');
  };

  beforeEach(async () => {
    store = fx.make();
    await store.ext.set('k', 'v0', { absoluteExpirationRelative: '1h', tags: ['t'] });
    await store.ext.setMany({ 'p:1': '1', 'p:2': '2' }, { absoluteExpirationRelative: '1h', tags: ['t'] });
    await store.ext.set('n', '5', { absoluteExpirationRelative: '1h' });
    seeded = await snapshot();
    client = new pg.Client({ connectionString: testUrl() });
    await client.connect();
    await client.query('BEGIN');
  });
  afterEach(() => client.end());

  describe('refused up front: nothing is written, nothing is sent to the table', () => {
    /** Clients whose answers are never readable, and what the error must say about them. */
    const CLIENTS: Record<string, { make: (client: pg.Client) => Recording; says: RegExp }> = {
      "a pg client in rowMode: 'array'": {
        make: (c) => recording((text, values) => c.query({ text, values, rowMode: 'array' })),
        says: /array.*rowMode: 'array'/,
      },
      'a pg client whose type parsers leave every value as text': {
        make: (c) => recording((text, values) => c.query({ text, values, types: { getTypeParser: () => (value: string) => value } } as never)),
        says: /string "1".*number/,
      },
      'an adapter answering [{}]': {
        make: (c) => recording(async (text, values) => (await c.query(text, values), [{}])),
        says: /no column "cp_count"/,
      },
      "an adapter answering { rows: [{ selected: '1' }] }": {
        make: (c) => recording(async (text, values) => (await c.query(text, values), { rows: [{ selected: '1' }] })),
        says: /no column "cp_count"/,
      },
      'an adapter answering null': {
        make: (c) => recording(async (text, values) => (await c.query(text, values), null)),
        says: /null, not rows/,
      },
      'an adapter answering a number': {
        make: (c) => recording(async (text, values) => (await c.query(text, values), 42)),
        says: /42, not rows/,
      },
      "an adapter answering { rows: 'x' }": {
        make: (c) => recording(async (text, values) => (await c.query(text, values), { rows: 'x' })),
        says: /not rows/,
      },
      'an adapter answering no rows': {
        make: (c) => recording(async (text, values) => (await c.query(text, values), [])),
        says: /0 rows/,
      },
    };

    for (const [name, { make, says }] of Object.entries(CLIENTS)) {
      for (const [method, call] of Object.entries(CALLS)) {
        it(`${name}: ${method}`, async () => {
          const caller = make(client);
          const error = await refused(call(store.ext.in(caller)), method);
          expect(error.ran).to.equal(false);
          expect(error.statement).to.equal('probe');
          expect(error.message).to.match(says);
          expect(error.message).to.match(/object rows keyed by column name/);
          expect(error.message).to.match(/Nothing was written/);
          expect(touching(caller.sent)).to.deep.equal([]);
          // The transaction wrote nothing at all: it has not even been given a transaction id.
          expect((await client.query<{ xid: string | null }>('SELECT txid_current_if_assigned()::text AS xid')).rows[0]!.xid).to.equal(null);
          await rollBack();
          expect(await snapshot()).to.deep.equal(seeded);
        });
      }
    }

    it('refuses the same client again on its next call, before anything is sent to the table', async () => {
      const caller = CLIENTS["a pg client in rowMode: 'array'"]!.make(client);
      for (const method of ['incr', 'set', 'deleteTags'] as const) await refused(CALLS[method]!(store.ext.in(caller)), method);
      expect(touching(caller.sent)).to.deep.equal([]);
      await rollBack();
      expect(await snapshot()).to.deep.equal(seeded);
    });
  });

  describe('an answer that goes wrong after the client was accepted: a typed error after that one statement', () => {
    /**
     * The adapter answers the up-front check (and every other statement) from the real client, and `answer` for
     * the statements matching `on`: each statement runs, in the transaction, before its answer is read.
     */
    const CASES: Array<{ method: string; answer: unknown; statement: string; says: RegExp; on?: RegExp }> = [
      { method: 'get', answer: { rows: [{ b64: 42 }] }, statement: 'get', says: /"b64" is the number 42, not a string/ },
      { method: 'get', answer: [['djA=']], statement: 'get', says: /rows came as arrays \(row 0 is \[/ },
      { method: 'get', answer: [{ b64: 'djA=' }, { b64: 'djE=' }], statement: 'get', says: /2 rows came back, where it returns at most 1/ },
      { method: 'set', answer: null, statement: 'upsert', says: /null, not rows/ },
      { method: 'set', answer: undefined, statement: 'notify', says: /undefined, not rows/, on: /pg_notify/ },
      { method: 'setMany', answer: 42, statement: 'upsert_rows', says: /42, not rows/ },
      { method: 'delete', answer: [{ live: 't' }], statement: 'delete', says: /"live" is the string "t", not a boolean/ },
      { method: 'delete', answer: [{}], statement: 'delete', says: /no column "live"/ },
      { method: 'deleteMany', answer: { rows: [{ id: 'k', live: 1 }] }, statement: 'delete_many', says: /"live" is the number 1, not a boolean/ },
      { method: 'deleteMany', answer: [{ live: true }, { live: true }, { live: false }], statement: 'delete_many', says: /3 rows came back, where it returns at most 2/ },
      { method: 'deleteTags', answer: { rows: [{ selected: '1' }] }, statement: 'delete_tags_any_batch', says: /"selected" is the string "1", not a number/ },
      { method: 'deleteTags', answer: [{}], statement: 'delete_tags_any_batch', says: /no column "selected"/ },
      { method: 'deleteTags', answer: [], statement: 'delete_tags_any_batch', says: /0 rows came back, where it returns 1/ },
      { method: 'deleteTags', answer: [{ selected: -1, deleted: 0 }], statement: 'delete_tags_any_batch', says: /"selected" is -1, not a whole number/ },
      { method: 'deleteTags', answer: [{ selected: 2.5, deleted: 0 }], statement: 'delete_tags_any_batch', says: /"selected" is 2.5, not a whole number/ },
      { method: 'deleteTags', answer: [{ selected: 5000, deleted: 0 }], statement: 'delete_tags_any_batch', says: /selected 5000 rows in a batch of at most 1000/ },
      { method: 'deleteTags', answer: [{ selected: 1, deleted: 2 }], statement: 'delete_tags_any_batch', says: /deleted 2 of the 1 rows it selected/ },
      { method: 'deletePattern', answer: { rows: [[2, 2]] }, statement: 'delete_pattern_batch', says: /rows came as arrays \(row 0 is \[/ },
      { method: 'deletePattern', answer: [{ selected: Number.NaN, deleted: 0 }], statement: 'delete_pattern_batch', says: /"selected" is NaN/ },
      { method: 'incr', answer: [{ value: 6 }], statement: 'incr', says: /"value" is the number 6, not a string/ },
      { method: 'incr', answer: [{ value: 'six' }], statement: 'incr', says: /"value" is "six", not a decimal integer/ },
      { method: 'incr', answer: { rows: [['6']] }, statement: 'incr', says: /rows came as arrays \(row 0 is \[/ },
      { method: 'decr', answer: [{}], statement: 'incr', says: /no column "value"/ },
    ];

    for (const { method, answer, statement, says, on } of CASES) {
      it(`${method}, answered ${JSON.stringify(answer) ?? 'undefined'}${on ? ` for ${on.source}` : ''}`, async () => {
        const corrupted = on ?? new RegExp(fx.table);
        const caller = recording(async (text, values) => {
          const result = await client.query(text, values);
          return corrupted.test(text) ? answer : result;
        });
        const error = await refused(CALLS[method]!(store.ext.in(caller)), method);
        expect(error.statement).to.equal(statement);
        expect(error.ran).to.equal(true);
        expect(error.message).to.match(says);
        expect(error.message).to.match(/object rows keyed by column name/);
        expect(error.message).to.match(/ran in your transaction.*roll/);
        // One statement ran whose answer was refused: no second batch, and no notice after it.
        const sentThere = touching(caller.sent);
        expect(sentThere.filter((text) => corrupted.test(text))).to.have.length(1);
        expect(sentThere.at(-1)).to.match(corrupted);
        await rollBack();
        expect(await snapshot()).to.deep.equal(seeded);
      });
    }
  });

  it('a batch delete whose answers always say "one more full batch" ends with a typed error, and lets timers run meanwhile', async function () {
    this.timeout(60_000);
    const lying = fx.make({ deleteBatchSize: 1 });
    const limit = 1_000_000;
    // Answers at once, without running anything: the loop never waits for I/O.
    const caller = recording(async (text, values) => (text.includes(fx.table) ? [{ selected: 1, deleted: 0 }] : (await client.query(text, values)).rows), limit + 10);
    let ticks = 0;
    const ticking = setInterval(() => ticks++, 1);
    try {
      // A million answered statements are CPU work: 5 s idle is ~1 s of it, a machine with four CPU-bound
      // processes beside the suite took over 5 s. The promise here is the bound (it ends), not its speed.
      const error = await refused(lying.ext.in(caller).deleteTags(['t']), 'deleteTags', 50_000);
      expect(error.statement).to.equal('delete_tags_any_batch');
      expect(error.ran).to.equal(true);
      expect(error.message).to.match(/1,000,000 full batches/);
    } finally {
      clearInterval(ticking);
    }
    expect(touching(caller.sent)).to.have.length(limit);
    expect(ticks).to.be.greaterThan(0);
    await rollBack();
    expect(await snapshot()).to.deep.equal(seeded);
  });

  describe('a readable client', () => {
    it('is checked once per client object, before its first statement, then never again', async () => {
      const caller = recording((text, values) => client.query(text, values));
      const first = store.ext.in(caller);
      for (const call of Object.values(CALLS)) await call(first);
      await CALLS['get']!(store.ext.in(caller));
      await CALLS['set']!(fx.make().ext.in(caller));
      const checks = caller.sent.filter((text) => !touching([text]).length);
      expect(checks).to.have.length(1);
      expect(caller.sent[0]).to.equal(checks[0]);
      await client.query('ROLLBACK');
    });

    it('a check that failed (an aborted transaction) is not remembered: the next call checks again', async () => {
      const caller = recording((text, values) => client.query(text, values));
      await client.query('SELECT 1/0').catch(() => {});
      const error = await rejection(store.ext.in(caller).set('k', 'v'), PROMPTLY_MS, 'set in an aborted transaction');
      expect((error as { sqlState?: string }).sqlState).to.equal('25P02');
      await client.query('ROLLBACK');
      await client.query('BEGIN');
      await store.ext.in(caller).set('k', 'v1', { absoluteExpirationRelative: '1h' });
      await client.query('COMMIT');
      expect(caller.sent.filter((text) => !touching([text]).length)).to.have.length(2);
      expect(await store.ext.getString('k')).to.equal('v1');
    });
  });
});
