import type { KeyRange } from '../keys.js';
import type { Sql } from '../sql/index.js';
import { bytesOf } from '../sql/values.js';
import { deleteInBatches } from './batch_delete.js';
import type { Executor } from './executor.js';

/** What stats() reads of the table. */
export interface TableStats {
  readonly rows: number;
  readonly liveRows: number;
  /** The table with its indexes and TOAST table, in bytes. */
  readonly bytes: number;
  /** The table and its TOAST table, in bytes. */
  readonly tableBytes: number;
  readonly indexBytes: number;
  /** Dead row versions waiting for a vacuum (PostgreSQL's statistics; null on Citus). */
  readonly deadRows: number | null;
}

/**
 * The statements over many rows of the table that Keyv's interface asks for: a key range deleted in
 * batches (`clear()`), read page by page (`iterator()`), the expired rows swept, and the table's counts.
 * Ordering against single-key calls is the caller's (Rows.barrier); these only run the statements.
 */
export class TableStatements {
  readonly #exec: Executor;
  readonly #sql: Sql;
  readonly #clock: () => number;

  /** @param clock application clock (epoch ms): every statement's `now` */
  constructor(exec: Executor, sql: Sql, clock: () => number) {
    this.#exec = exec;
    this.#sql = sql;
    this.#clock = clock;
  }

  /** Deletes the keys of `range`, `batch` rows per statement, so no statement holds many locks for long. */
  async deleteRange(range: KeyRange, batch: number): Promise<number> {
    return deleteInBatches((statement, values) => this.#exec.query(statement, values), this.#sql.deleteRangeBatch, batch, () => [
      range.lower,
      range.upper,
      batch,
      this.#now(),
    ]);
  }

  /**
   * Yields the live entries of `range` in key order, values as UTF-8 text, `limit` rows per statement
   * (keyset pagination: memory stays constant), until the range ends or `stop()` says so after a page.
   */
  async *entries(range: KeyRange, limit: number, stop: () => boolean): AsyncGenerator<[string, string], void> {
    let after: string | undefined;
    for (;;) {
      // '' sorts below every key: the first page starts at the range's lower bound.
      const rows = await this.#exec.query<{ id: string; b64: string }>(this.#sql.iterateRange, [range.lower, range.upper, this.#now(), after ?? '', limit]);
      for (const row of rows) yield [row.id, bytesOf(row).toString('utf8')];
      if (rows.length < limit || stop()) return;
      after = rows[rows.length - 1]!.id;
    }
  }

  /**
   * Deletes rows expired before `before` (epoch ms), `batch` per statement, while no other instance holds
   * the sweep's try-lock (then it deletes nothing) and `stop()` says go on.
   * @param lockName the try-lock: the expiration scan's, or the cap's sweeper's
   * @returns the rows deleted
   */
  async deleteExpired(before: () => number, batch: number, stop: () => boolean, lockName = `scan:${this.#sql.display}`): Promise<number> {
    let total = 0;
    for (;;) {
      const [row] = await this.#exec.query<{ locked: boolean; selected: number; deleted: number }>(this.#sql.deleteExpiredBatch, [
        new Date(before()).toISOString(),
        batch,
        lockName,
      ]);
      if (!row?.locked) break;
      total += row.deleted;
      if (row.selected < batch || stop()) break;
    }
    return total;
  }

  /** The table's rows, live rows and bytes (the counts scan the table). */
  async stats(): Promise<TableStats> {
    const [row] = await this.#exec.query<{ rows: string; live: string; bytes: string; table_bytes: string; index_bytes: string; dead: string | null }>(
      this.#sql.stats,
      [this.#now(), this.#sql.qualified],
    );
    return {
      rows: Number(row!.rows),
      liveRows: Number(row!.live),
      bytes: Number(row!.bytes),
      tableBytes: Number(row!.table_bytes),
      indexBytes: Number(row!.index_bytes),
      deadRows: row!.dead === null ? null : Number(row!.dead),
    };
  }

  #now(): string {
    return new Date(this.#clock()).toISOString();
  }
}
