import { randomUUID } from 'node:crypto';
import type { RunStatement } from '../execution/batch_delete.js';
import { deleteInBatches } from '../execution/batch_delete.js';
import { incrValues, rowArrays } from '../execution/row_params.js';
import { checkEntrySize, type RowWrite } from '../row.js';
import { SHAPES } from '../execution/caller_answers.js';
import { isoNow, type StoreContext } from '../context.js';
import { CounterOverflowError, InvalidValueError, NotInTransactionError, show, type UnreadableResultError } from '../errors.js';
import type { CallerClient } from '../execution/executor.js';
import { validateKey } from '../keys.js';
import { CALLER_SENDER_PREFIX } from '../notices.js';
import { bytesOf } from '../sql/values.js';
import { type CounterOptions, counterCall, counterError, counterValue } from './counters.js';
import { entryRow, entryRows, retimed, uniqueKeys } from './entries.js';
import type { EntryOptions } from './entry_options.js';
import { type DeletePatternOptions, patternDeletion } from './patterns.js';
import { type DeleteTagsOptions, tagDeletion } from './tags.js';
import type { EntryValue } from './values.js';
import { traceAs, traceMethods } from '../tracing.js';

/**
 * `store.ext.in(client)`: the cache writes of `store.ext`, run on a connection the application holds,
 * inside the transaction it has open there. They commit with the application's own changes, or roll
 * back with them (a savepoint rolled back undoes those made after it).
 *
 * The in-process tiers (`localCache`) of every process, this one included, are told of each write by a
 * NOTIFY sent on the same connection: PostgreSQL delivers it when the transaction commits and drops it
 * when it rolls back, so no tier forgets a value for a change that did not happen, nor keeps one past
 * the commit of a change that did (it may serve the old value until the notice arrives, usually well
 * under a millisecond after the commit on a LAN). Nothing here is kept in this process's tier: a value
 * written in a transaction is not committed when the call returns.
 *
 * Reads (`get`) see the transaction's own uncommitted writes, and so are never kept in memory either.
 * Every statement is sent unnamed, under the connection's own limits; the store's pool, batching and
 * issue order are not involved.
 *
 * The client must answer as node-postgres does by default (object rows keyed by column name, or `{ rows }` of
 * them). Before its first statement a read-only `SELECT` of constants checks that it does, once per client
 * object, so a client the store cannot read (`rowMode: 'array'`, type parsers of its own, an adapter that
 * loses columns) is refused with {@link UnreadableResultError} (`ran: false`) before anything is written. Each
 * answer is checked too: one that is still wrong fails its call with that error (`ran: true`: roll back).
 *
 * Make one per transaction: any notice of it tells this process's tier that it committed, which releases every
 * key it held back (one reused across transactions would release the next one's keys at the first's commit).
 */
export class CacheTransaction {
  readonly #context: StoreContext;
  readonly #run: RunStatement;
  /** This object's name in its notices: the writing process's tier releases what it held back on hearing it. */
  readonly #sender = `${CALLER_SENDER_PREFIX}${randomUUID()}`;

  /** @internal Built by `store.ext.in(client)`. */
  constructor(context: StoreContext, client: CallerClient) {
    this.#context = context;
    this.#run = context.exec.onClient(client);
    traceAs(this, context.observer.spanAttributes);
  }

  /** The value's bytes as this transaction sees them, or `undefined`. A sliding entry is extended, in the transaction. */
  async get(key: string): Promise<Buffer | undefined> {
    validateKey(key);
    const [row] = await this.#run<{ b64: string }>(this.#context.sql.get, [key, await this.#now('ext.in.get')], SHAPES.get);
    return row ? bytesOf(row) : undefined;
  }

  /** `store.ext.set`, in the transaction. */
  async set(key: string, value: EntryValue, options?: EntryOptions): Promise<void> {
    let rows = [entryRow(this.#context, key, value, options)];
    const preparing = this.#context.prepare('ext.in.set');
    if (preparing) rows = (await preparing, retimed(this.#context, rows, options));
    await this.#write(rows);
  }

  /** `store.ext.setMany`, in the transaction (one statement). */
  async setMany(
    entries: Map<string, EntryValue> | Record<string, EntryValue> | Iterable<readonly [string, EntryValue]>,
    options?: EntryOptions,
  ): Promise<void> {
    let rows = entryRows(this.#context, entries, options);
    if (rows.length === 0) return;
    const preparing = this.#context.prepare('ext.in.setMany');
    if (preparing) rows = (await preparing, retimed(this.#context, rows, options));
    await this.#write(rows);
  }

  /** `store.ext.delete`, in the transaction: true when a live entry was deleted. */
  async delete(key: string): Promise<boolean> {
    validateKey(key);
    const rows = await this.#run<{ live: boolean }>(this.#context.sql.delete, [key, await this.#now('ext.in.delete')], SHAPES.delete);
    await this.#notify([key]);
    return rows[0]?.live === true;
  }

  /** `store.ext.deleteMany`, in the transaction: the number of live entries deleted. */
  async deleteMany(keys: Iterable<string>): Promise<number> {
    const unique = uniqueKeys(keys);
    if (unique.length === 0) return 0;
    const rows = await this.#run<{ live: boolean }>(this.#context.sql.deleteMany, [unique, await this.#now('ext.in.deleteMany')], SHAPES.deleteMany(unique.length));
    await this.#notify(unique);
    return rows.filter((row) => row.live === true).length;
  }

  /** `store.ext.deleteTags`, in the transaction. Its row locks are held until the transaction ends. */
  async deleteTags(tags: readonly string[], options?: DeleteTagsOptions): Promise<number> {
    const { list, statement } = tagDeletion(this.#context, tags, options);
    const batch = this.#context.options.deleteBatchSize;
    await this.#now('ext.in.deleteTags');
    const deleted = await deleteInBatches(this.#run, statement, batch, () => [list, batch, isoNow(this.#context)]);
    await this.#notify('all');
    return deleted;
  }

  /** `store.ext.deletePattern`, in the transaction. Its row locks are held until the transaction ends. */
  async deletePattern(pattern: string, options?: DeletePatternOptions): Promise<number> {
    const compiled = patternDeletion(pattern, options);
    const batch = this.#context.options.deleteBatchSize;
    await this.#now('ext.in.deletePattern');
    const deleted = await deleteInBatches(this.#run, this.#context.sql.deletePatternBatch, batch, () => [
      compiled.range.lower, compiled.range.upper, compiled.like, batch, isoNow(this.#context),
    ]);
    await this.#notify('all');
    return deleted;
  }

  /** `store.ext.incr`, in the transaction. The counter's row stays locked until the transaction ends. */
  async incr(key: string, by: number | bigint = 1, options?: CounterOptions): Promise<number | bigint> {
    let { delta, create } = counterCall(this.#context, key, by, options);
    const preparing = this.#context.prepare('ext.in.incr');
    // Timed again once ready: the readiness gate reads the database's clock (options/clock.ts).
    if (preparing) ({ delta, create } = (await preparing, counterCall(this.#context, key, by, options)));
    let rows: Array<{ value: string }>;
    try {
      rows = await this.#run<{ value: string }>(this.#context.sql.incr, incrValues(key, delta, create, isoNow(this.#context)), SHAPES.incr);
    } catch (error) {
      throw counterError(key, error);
    }
    if (rows[0] === undefined) throw new CounterOverflowError(key, undefined);
    await this.#notify([key]);
    return counterValue(BigInt(rows[0].value.trim()));
  }

  /** `store.ext.decr`, in the transaction. */
  decr(key: string, by: number | bigint = 1, options?: CounterOptions): Promise<number | bigint> {
    if (typeof by !== 'number' && typeof by !== 'bigint') return this.incr(key, by, options);
    return this.incr(key, -by, options);
  }

  /** Not available in a transaction: always rejects with {@link NotInTransactionError} (see its message). */
  getOrSet(..._args: unknown[]): Promise<never> {
    return Promise.reject(new NotInTransactionError('getOrSet'));
  }

  /** `now` for a statement, once the store is ready: the readiness gate reads the database's clock (options/clock.ts). */
  async #now(operation: string): Promise<string> {
    const preparing = this.#context.prepare(operation);
    if (preparing) await preparing;
    return isoNow(this.#context);
  }

  async #write(rows: readonly RowWrite[]): Promise<void> {
    for (const each of rows) checkEntrySize(each.id, each.value, this.#context.options.capacity?.maxBytes);
    const [row] = rows;
    const { sql } = this.#context;
    if (rows.length === 1 && row) await this.#run(sql.upsert, [row.id, row.value, row.expires, row.sliding, row.absolute, row.tags]);
    else await this.#run(sql.upsertRows, rowArrays(rows));
    await this.#notify(rows.map((r) => r.id));
  }

  /** Tells the in-process tiers, at commit, that `ids` changed. */
  async #notify(ids: readonly string[] | 'all'): Promise<void> {
    const notice = this.#context.rows.noticeOf(ids, this.#sender);
    await this.#run(notice.statement, notice.values);
  }
}

/**
 * Checks what `ext.in()` was given: a client with `query`, not a pool (whose statements would each run
 * on whichever connection is free, outside the caller's transaction).
 * @throws {InvalidValueError} saying what to pass instead
 */
export function checkCallerClient(client: unknown): asserts client is CallerClient {
  if (typeof client !== 'object' || client === null || typeof (client as { query?: unknown }).query !== 'function') {
    throw new InvalidValueError(
      `ext.in() takes the connection your transaction runs on (a pg.PoolClient from pool.connect(), a pg.Client, or an object whose query(text, values) runs on one connection), got ${show(client)}.`,
    );
  }
  const maybePool = client as { totalCount?: unknown; idleCount?: unknown; connect?: unknown };
  if (typeof maybePool.totalCount === 'number' && typeof maybePool.idleCount === 'number') {
    throw new InvalidValueError(
      'ext.in() was given a pg.Pool: its statements would each run on whichever connection is free, outside your transaction. Pass the client of your transaction: const client = await pool.connect(); await client.query(\'BEGIN\'); ... store.ext.in(client).',
    );
  }
}

/** Every call of a caller's transaction is a span (tracing.ts); a method missing here fails at load. */
traceMethods(CacheTransaction.prototype, {
  get: { name: 'ext.in.get', keys: 'one' },
  set: { name: 'ext.in.set', keys: 'one' },
  setMany: { name: 'ext.in.setMany', keys: 'many' },
  delete: { name: 'ext.in.delete', keys: 'one' },
  deleteMany: { name: 'ext.in.deleteMany', keys: 'many' },
  deleteTags: { name: 'ext.in.deleteTags', keys: 'none' },
  deletePattern: { name: 'ext.in.deletePattern', keys: 'none' },
  incr: { name: 'ext.in.incr', keys: 'one' },
  decr: { name: 'ext.in.decr', keys: 'one' },
  getOrSet: { name: 'ext.in.getOrSet', keys: 'one' },
});
