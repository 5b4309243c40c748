import { CachePostgresError, QueryError } from '../errors.js';
import type { CounterCreate, RowWrite } from '../row.js';
import type { Sql, Statement } from '../sql/index.js';
import { forEachInTurns, LARGE_CALL } from '../in_turns.js';
import { chunksOf, inOneTransaction } from './chunked.js';
import type { Executor } from './executor.js';
import { type BytesRow, type EscapedRow, type Found, foundById, foundByIdInTurns } from './found.js';
import { incrValues, rowArrays } from './row_params.js';
import type { ListenHandlers, Subscription } from './listener.js';
import type { PipelinePart } from './types.js';

/** A row of the pipelined reads: `slide` tells that it is due a slide (see selectMany in sql/rows.ts). */
type SelectedRow = (BytesRow | EscapedRow) & { slide?: boolean };

/** SQLSTATE lock_not_available: a fail-fast statement met a row lock held elsewhere, and wrote nothing. */
const LOCK_NOT_AVAILABLE = '55P03';

function liveOf(rows: ReadonlyArray<{ id: string; live: boolean }>): Set<string> {
  return new Set(rows.filter((row) => row.live).map((row) => row.id));
}

function lockedOut(result: unknown): boolean {
  return result instanceof QueryError && result.sqlState === LOCK_NOT_AVAILABLE;
}

/** What a write of a batch gets, by id: nothing (it landed), its error, or a promise of either (written later). */
export type WriteOutcome = (id: string) => Error | undefined | Promise<undefined>;

const succeeded: WriteOutcome = () => undefined;

/** The outcome of writes whose failures are known (a map) or will be (a promise of one). */
function outcomeOf(failures: Map<string, Error> | Promise<Map<string, Error>>): WriteOutcome {
  if (failures instanceof Map) return (id) => failures.get(id);
  return (id) =>
    failures.then((known) => {
      const failure = known.get(id);
      if (failure) throw failure;
      return undefined;
    });
}

/**
 * A failure that is the data's, not the connection's: PostgreSQL refused a statement (a constraint, a
 * value out of range), so running its rows one by one tells which caller's row it was. A lost
 * connection, a timeout or a deadlock is `retryable` instead.
 */
function isolatable(error: unknown): boolean {
  return error instanceof QueryError && !error.retryable;
}

/** What one round trip of a tick's reads and writes found, and what became of each write. */
export interface ReadWriteOutcome {
  readonly found: Map<string, Found>;
  /** The reads' failure (the writes may still have landed). */
  readonly readError?: Error;
  readonly written: WriteOutcome;
}

/**
 * The statements of single rows and their bulk forms, run on the executor: the one place that chooses
 * between the forms a call can take (pipelined slide + select, or one statement; a batch upsert, or on a
 * distributed table the single-row INSERT Citus routes), waits out a row lock held elsewhere on a
 * connection of its own, and tells which of a batch's writes PostgreSQL refused. Knows nothing of ticks,
 * ordering or the local tier (batching/ above it does).
 */
export class RowStatements {
  readonly #exec: Executor;
  readonly #sql: Sql;
  readonly #clock: () => number;
  readonly #onError: (error: unknown) => void;

  /**
   * @param clock application clock (epoch ms): every statement's `now`
   * @param onError failures nobody awaits (a slide run again later)
   */
  constructor(exec: Executor, sql: Sql, clock: () => number, onError: (error: unknown) => void) {
    this.#exec = exec;
    this.#sql = sql;
    this.#clock = clock;
    this.#onError = onError;
  }

  /** True when two batches can overlap on one connection (see Executor.pipelining). */
  get pipelining(): boolean {
    return this.#exec.pipelining;
  }

  /**
   * The live rows among `ids`, sliding rows extended, in one round trip. A large read goes on a connection of its
   * own: a pipelined batch written behind it would wait for its whole answer (100,000 keys: 0.6 s).
   */
  async read(ids: string[]): Promise<Map<string, Found>> {
    if (!this.#exec.splitReads) return foundById(await this.#exec.query<BytesRow>(this.#sql.getMany, [ids, this.#now()]));
    const { found, readError } = await this.readAndWrite(ids, [], [], ids.length >= LARGE_CALL);
    if (readError) throw readError;
    return found;
  }

  /**
   * One tick's reads and writes in one round trip; the reads see the table as it was before the
   * writes (as if the tick's gets ran just before its sets). Pipelined, reads and writes fail apart,
   * and text reads come in `escape` form. A key read both ways is answered once, as bytes.
   */
  async readAndWrite(byteIds: string[], textIds: string[], writes: RowWrite[], alone = false): Promise<ReadWriteOutcome> {
    const now = this.#now();
    // `byteIds` are distinct (a tick's Set, a getMany's distinct keys); a text read of one of them is answered
    // by the byte read. Without text reads (every getMany) no Set is built: 100,000 ids cost one 40 ms block.
    const asBytes = textIds.length === 0 ? undefined : new Set(byteIds);
    const asText = asBytes ? textIds.filter((id) => !asBytes.has(id)) : textIds;
    const ids = asText.length === 0 ? byteIds : [...byteIds, ...asText];
    if (this.#exec.splitReads) {
      const reads = [
        ...(byteIds.length > 0 ? [{ statement: this.#sql.selectMany, values: [byteIds, now] }] : []),
        ...(asText.length > 0 ? [{ statement: this.#sql.selectManyText, values: [asText, now] }] : []),
      ];
      // The upsert waits only briefly for a row lock held elsewhere (see LANE_LOCK_TIMEOUT): the
      // pipelines behind it on this connection must not wait for someone's transaction.
      const upsert = writes.length > 0 ? [this.#upsertOf(writes, this.#sql.upsertRowsFailFast)] : [];
      const results = await this.#exec.pipeline([...reads, ...upsert], alone);
      const upserted = upsert.length > 0 ? results[reads.length] : undefined;
      // Any error: a part refused after disconnect() is a StoreClosedError, not a QueryError.
      let readError = results.slice(0, reads.length).find((result): result is CachePostgresError => result instanceof CachePostgresError);
      const rows = readError ? [] : (results.slice(0, reads.length).flat() as SelectedRow[]);
      readError ??= await this.#slideDue(rows, now, alone);
      return {
        found: readError ? new Map() : alone ? await foundByIdInTurns(rows) : foundById(rows),
        ...(readError ? { readError } : {}),
        written: lockedOut(upserted)
          ? outcomeOf(this.#writeLater(writes))
          : upserted instanceof Error
            ? outcomeOf(await this.#isolate(writes, upserted))
            : succeeded,
      };
    }
    if (writes.length === 0) return { found: foundById(await this.#exec.query<BytesRow>(this.#sql.getMany, [ids, now])), written: succeeded };
    try {
      if (ids.length === 0) {
        await this.#exec.query(this.#sql.upsertRows, rowArrays(writes));
        return { found: new Map(), written: succeeded };
      }
      return { found: foundById(await this.#exec.query<BytesRow>(this.#sql.readWrite, [ids, now, ...rowArrays(writes)])), written: succeeded };
    } catch (error) {
      if (!isolatable(error)) throw error;
      // One statement for reads and writes: the reads run again on their own, the writes one by one.
      const failures = await this.#isolate(writes, error);
      if (ids.length === 0) return { found: new Map(), written: outcomeOf(failures) };
      try {
        return { found: foundById(await this.#exec.query<BytesRow>(this.#sql.getMany, [ids, now])), written: outcomeOf(failures) };
      } catch (readError) {
        return { found: new Map(), readError: readError as Error, written: outcomeOf(failures) };
      }
    }
  }

  /** Upserts `rows` (all columns replaced): one statement, or for many rows several in one transaction (chunked.ts). */
  async write(rows: readonly RowWrite[]): Promise<void> {
    const chunks = chunksOf(rows, (row) => row.value.length);
    if (chunks.length <= 1) {
      const { statement, values } = this.#upsertOf(rows, this.#sql.upsertRows);
      await this.#exec.query(statement, values);
      return;
    }
    await inOneTransaction(this.#exec, async (query) => {
      for (const chunk of chunks) {
        const { statement, values } = this.#upsertOf(chunk, this.#sql.upsertRows);
        await query(statement, values);
      }
    });
  }

  /** Deletes `ids` (distinct) as {@link RowStatements.write} writes; resolves to those that were live. */
  async deleteMany(ids: string[]): Promise<Set<string>> {
    const now = this.#now();
    const chunks = chunksOf(ids);
    type Deleted = { id: string; live: boolean };
    if (chunks.length <= 1) return liveOf(await this.#exec.query<Deleted>(this.#sql.deleteMany, [ids, now]));
    return inOneTransaction(this.#exec, async (query) => {
      const live = new Set<string>();
      for (const chunk of chunks) await forEachInTurns(await query<Deleted>(this.#sql.deleteMany, [chunk, now]), (row) => row.live && live.add(row.id));
      return live;
    });
  }

  /** Deletes `id`; true when it was live. */
  async delete(id: string): Promise<boolean> {
    const rows = await this.#exec.query<{ live: boolean }>(this.#sql.delete, [id, this.#now()]);
    return rows[0]?.live === true;
  }

  /** True when `id` is live. */
  async has(id: string): Promise<boolean> {
    return (await this.#exec.query(this.#sql.has, [id, this.#now()])).length > 0;
  }

  /** The live ids among `ids`, in one statement. */
  async hasMany(ids: string[]): Promise<Set<string>> {
    const rows = await this.#exec.query<{ id: string }>(this.#sql.hasMany, [ids, this.#now()]);
    return new Set(rows.map((row) => row.id));
  }

  /**
   * Adds `delta`; `highest` and `lowest` are the running totals the stored value must stay in int64
   * with. Undefined when it would not (nothing was changed).
   */
  async increment(id: string, delta: bigint, create: CounterCreate, highest = delta, lowest = delta): Promise<bigint | undefined> {
    const rows = await this.#exec.query<{ value: string }>(this.#sql.incr, incrValues(id, delta, create, this.#now(), highest, lowest));
    return rows[0] === undefined ? undefined : BigInt(rows[0].value.trim());
  }

  /** Slides the sliding rows among `keys` as reads at `at` (epoch ms) would (the local tier's touches). */
  async slide(keys: readonly string[], at: number): Promise<void> {
    await this.#exec.query(this.#sql.slideMany, [keys, new Date(at).toISOString()]);
  }

  /** The NOTIFY of `payload` on the table's channel, as a statement to send on any connection. */
  notice(payload: string): PipelinePart {
    return { statement: this.#sql.notify, values: [this.#sql.channel, payload] };
  }

  /** Sends `payload` on the table's channel. */
  async notify(payload: string): Promise<void> {
    await this.#exec.query(this.#sql.notify, [this.#sql.channel, payload]);
  }

  /** Listens on the table's channel (see Executor.listen). */
  listen(handlers: ListenHandlers): Subscription {
    return this.#exec.listen(this.#sql.channel, handlers);
  }

  #now(): string {
    return new Date(this.#clock()).toISOString();
  }

  /**
   * A batch's upsert failed: when the failure is the data's (PostgreSQL refused a row), each write runs
   * again on its own, so that only the callers whose row is refused fail. A lost connection or a timeout
   * fails them all: running them again would not tell them apart.
   * @returns each failed write's error, by id
   */
  async #isolate(writes: RowWrite[], error: unknown): Promise<Map<string, Error>> {
    if (writes.length === 1 || !isolatable(error)) return new Map(writes.map((row) => [row.id, error as Error]));
    const failures = new Map<string, Error>();
    await Promise.all(
      writes.map((row) =>
        this.write([row]).catch((failure: unknown) => {
          failures.set(row.id, failure as Error);
        }),
      ),
    );
    return failures;
  }

  /**
   * A batch's upsert that met a row lock held elsewhere, on a connection of its own: it waits for the
   * lock (up to statementTimeout), apart from the pipelines. Its callers wait for it (and announce it,
   * as every write's caller does), and later calls on its keys wait behind it (the batch stays in flight).
   */
  async #writeLater(writes: RowWrite[]): Promise<Map<string, Error>> {
    try {
      await this.write(writes);
      return new Map();
    } catch (error) {
      return await this.#isolate(writes, error);
    }
  }

  /**
   * Slides the rows a read found due (their `slide` column: sliding, and moved by more than the
   * threshold), before the read answers; a read of rows that are not due sends nothing more. A slide
   * that meets a row lock held elsewhere runs again later, without holding up the values read. The rows'
   * `until` becomes the expiry the slide wrote.
   */
  async #slideDue(rows: SelectedRow[], now: string, alone: boolean): Promise<CachePostgresError | undefined> {
    let due: string[] | undefined;
    for (const row of rows) if (row.slide) (due ??= []).push(row.id);
    if (!due) return undefined;
    const [slid] = await this.#exec.pipeline([{ statement: this.#sql.slideManyFailFast, values: [due, now] }], alone);
    if (lockedOut(slid)) this.#slideLater(due, now);
    else if (slid instanceof CachePostgresError) return slid;
    else {
      const at = Date.parse(now);
      for (const row of rows) if (row.slide && typeof row.until === 'number') row.until = Math.min(at + Number(row.sw) * 1000, row.absms ?? Number.POSITIVE_INFINITY);
    }
    return undefined;
  }

  /**
   * A slide that met a row lock held elsewhere runs again on a connection of its own, without holding
   * up the values already read. A late slide never shortens a row's life (slideMany only moves an
   * expiry forward), so it may land after later writes of the same keys.
   */
  #slideLater(ids: string[], now: string): void {
    this.#exec.query(this.#sql.slideMany, [ids, now]).catch((error: unknown) => this.#onError(error));
  }

  /**
   * The statement that writes `rows`. On a distributed table one row is a plain INSERT ... VALUES, which
   * Citus routes to the row's shard; the many-row form (INSERT ... SELECT FROM UNNEST) is gathered on the
   * coordinator first and costs several times as much there (measured: npm run bench:citus).
   */
  #upsertOf(rows: readonly RowWrite[], many: Statement): PipelinePart {
    const [row] = rows;
    if (this.#exec.forms.distributed && rows.length === 1 && row) {
      return { statement: this.#sql.upsert, values: [row.id, row.value, row.expires, row.sliding, row.absolute, row.tags] };
    }
    return { statement: many, values: rowArrays(rows) };
  }
}
