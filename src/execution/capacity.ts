import { SchemaError } from '../errors.js';
import { type CapacitySql, capacityMark, type EvictionPolicy, LOCK_ROW_HORIZON_MS } from '../sql/capacity.js';
import type { Sql } from '../sql/index.js';
import type { Executor, SetupExecutor } from './executor.js';

interface CapacityInspection {
  persistence: string;
  has_column: boolean;
  has_index: boolean;
  usage_exists: boolean;
  cap_exists: boolean;
  usage_comment: string | null;
  cap_comment: string | null;
  comments: string[] | null;
  triggers: number;
  owner: boolean;
}

/** The table's cap as stored in it, and what it holds now. */
export interface Usage {
  readonly bytes: number;
  readonly entries: number;
  readonly maxBytes: number | null;
  readonly maxEntries: number | null;
  readonly policy: EvictionPolicy;
}

/** Usage, with the sweepers' record (for stats()). */
export interface CapacityRecord extends Usage {
  readonly evictedRows: number;
  readonly evictedBytes: number;
  readonly lastEviction: { readonly at: Date; readonly rows: number; readonly bytes: number } | null;
}

/** The cap this store was given, to write into the table. */
export interface CapWanted {
  readonly maxBytes: number | null;
  readonly maxEntries: number | null;
  readonly policy: EvictionPolicy;
}

const numberOrNull = (text: string | null): number | null => (text === null ? null : Number(text));

/**
 * Installs what a cap needs on the table (sql/capacity.ts) when any of it is missing or of another version, under
 * the DDL lock; one catalog read when nothing is. Then writes this store's cap into the table.
 * @returns the cap it replaced, when another store had written a different one, and whether the store's role owns
 *   the table (and so may vacuum it)
 */
export async function ensureCapacity(
  executor: SetupExecutor,
  sql: Sql,
  capacity: CapacitySql,
  wanted: CapWanted,
  options: { createIfNotExists: boolean; distributed: boolean; who: string },
): Promise<{ replaced: CapWanted | undefined; owner: boolean }> {
  if (options.distributed) {
    throw new SchemaError(`maxSize and maxEntries are not available on ${sql.display}, a table distributed by Citus (the triggers that count its bytes would run on each shard). Leave the cap out.`);
  }
  const [state] = await executor.query<CapacityInspection>(capacity.inspect, []);
  if (!state) throw new SchemaError(`Table ${sql.display} is missing.`);
  checkOurs(state, sql, capacity);
  if (!isCurrent(state, capacity)) {
    const install = capacity.install({ column: !state.has_column, index: !state.has_index, unlogged: state.persistence === 'u' });
    if (!options.createIfNotExists) {
      throw new SchemaError(`The size cap of ${sql.display} is not installed and createIfNotExists is false. Run, as the table's owner:\n${install.join(';\n')};`);
    }
    if (!state.owner) {
      throw new SchemaError(`The size cap of ${sql.display} needs a column, an index and triggers on it, which only its owner can add. Connect as the owner once, or run as the owner:\n${install.join(';\n')};`);
    }
    // A transaction of someone else's that read the table and then writes it (getOrSet's) can deadlock with the
    // install's lock: the install is the victim at worst, and is tried again.
    for (let attempt = 1; ; attempt++) {
      try {
        await executor.transaction(async (query) => {
          await query(sql.ddlLock, [`ddl:${sql.display}`]);
          // Another process may have installed it while this one waited for the lock.
          const [again] = await query<CapacityInspection>(capacity.inspect, []);
          if (!again) throw new SchemaError(`Table ${sql.display} is missing.`);
          checkOurs(again, sql, capacity);
          if (isCurrent(again, capacity)) return;
          for (const statement of capacity.install({ column: !again.has_column, index: !again.has_index, unlogged: again.persistence === 'u' })) {
            await query(statement);
          }
        });
        break;
      } catch (error) {
        if (attempt >= 5 || (error as { sqlState?: string }).sqlState !== '40P01') throw error;
      }
    }
  }
  const [old] = await executor.query<{ max_bytes: string | null; max_entries: string | null; policy: EvictionPolicy; set_by: string | null }>(capacity.setCap, [
    wanted.maxBytes,
    wanted.maxEntries,
    wanted.policy,
    options.who,
  ]);
  if (!old || (old.max_bytes === null && old.max_entries === null)) return { replaced: undefined, owner: state.owner };
  const before = { maxBytes: numberOrNull(old.max_bytes), maxEntries: numberOrNull(old.max_entries), policy: old.policy };
  const same = before.maxBytes === wanted.maxBytes && before.maxEntries === wanted.maxEntries && before.policy === wanted.policy;
  return { replaced: same ? undefined : before, owner: state.owner };
}

/** Everything the cap needs is there, of this version. */
function isCurrent(state: CapacityInspection, capacity: CapacitySql): boolean {
  return state.has_column && state.has_index && state.usage_exists && state.cap_exists && state.triggers === capacity.triggerCount &&
    (state.comments ?? []).length === 1 && state.comments?.[0] === capacity.comment;
}

/**
 * The names the cap would use must be free or the cap's own: a table or function of someone else's under them would
 * be emptied or replaced.
 */
function checkOurs(state: CapacityInspection, sql: Sql, capacity: CapacitySql): void {
  const schema = sql.schema;
  for (const [exists, comment, name, expected] of [
    [state.usage_exists, state.usage_comment, capacity.usageTable, capacity.usageComment],
    [state.cap_exists, state.cap_comment, capacity.capTable, capacity.capComment],
  ] as const) {
    if (exists && comment !== expected) {
      throw new SchemaError(`Table ${schema}.${name} exists and is not the size cap's table of ${sql.display} (its comment says ${comment === null ? 'nothing' : `"${comment}"`}). Rename it, or the cache table.`);
    }
  }
  const foreign = (state.comments ?? []).find((comment) => comment === null || !comment.startsWith(capacityMark(sql.display)));
  if (foreign !== undefined) {
    throw new SchemaError(`A function named like the size cap's triggers of ${sql.display} exists in schema ${schema} and is not theirs (its comment says ${foreign === null ? 'nothing' : `"${foreign}"`}). Rename it, or the cache table.`);
  }
}

/** The sweeper's statements and the LRU touch, on one table that has a cap installed. */
export class CapacityStatements {
  readonly #exec: Executor;
  readonly #sql: CapacitySql;
  readonly #lockName: string;

  constructor(exec: Executor, sql: CapacitySql, display: string) {
    this.#exec = exec;
    this.#sql = sql;
    this.#lockName = `evict:${display}`;
  }

  /** The sweeper's lock name: the expiry deletes of a pass take it too. */
  get lockName(): string {
    return this.#lockName;
  }

  /** Folds the usage deltas and reads the total, if no other sweeper holds the lock (then undefined). */
  async fold(): Promise<Usage | undefined> {
    const [row] = await this.#exec.query<{ locked: boolean; bytes: string; entries: string; max_bytes: string | null; max_entries: string | null; policy: EvictionPolicy }>(
      this.#sql.fold,
      [this.#lockName],
    );
    if (!row?.locked) return undefined;
    return { bytes: Number(row.bytes), entries: Number(row.entries), maxBytes: numberOrNull(row.max_bytes), maxEntries: numberOrNull(row.max_entries), policy: row.policy };
  }

  /** Evicts up to `limit` rows, oldest `lastaccess` first; undefined when another sweeper holds the lock. */
  async evict(now: number, limit: number): Promise<{ selected: number; rows: number; bytes: number } | undefined> {
    const [row] = await this.#exec.query<{ locked: boolean; selected: number; rows: number; bytes: string }>(this.#sql.evict, [
      new Date(now).toISOString(),
      limit,
      new Date(now + LOCK_ROW_HORIZON_MS).toISOString(),
      this.#lockName,
    ]);
    if (!row?.locked) return undefined;
    return { selected: row.selected, rows: row.rows, bytes: Number(row.bytes) };
  }

  async record(rows: number, bytes: number): Promise<void> {
    await this.#exec.query(this.#sql.recordEviction, [rows, bytes]);
  }

  /** Records reads of `ids` whose last record is older than `resolutionMs`. */
  async touch(ids: readonly string[], resolutionMs: number): Promise<void> {
    await this.#exec.query(this.#sql.touch, [ids, resolutionMs / 1000]);
  }

  /** VACUUM of the cache table (the sweeper's, after evicting much). */
  async vacuumTable(): Promise<void> {
    await this.#exec.query({ name: '', label: 'vacuum', text: this.#sql.vacuumTable, prepared: false }, []);
  }

  async vacuumUsage(): Promise<void> {
    await this.#exec.query({ name: '', label: 'vacuum usage', text: this.#sql.vacuumUsage, prepared: false }, []);
  }

  /** The table's usage and cap, and the sweepers' record. */
  async snapshot(): Promise<CapacityRecord | undefined> {
    const [row] = await this.#exec.query<{
      bytes: string; entries: string; max_bytes: string | null; max_entries: string | null; policy: EvictionPolicy;
      evicted_rows: string; evicted_bytes: string; last_evicted_at: Date | null; last_evicted_rows: string | null; last_evicted_bytes: string | null;
    }>(this.#sql.usage, []);
    if (!row) return undefined;
    return {
      bytes: Number(row.bytes),
      entries: Number(row.entries),
      maxBytes: numberOrNull(row.max_bytes),
      maxEntries: numberOrNull(row.max_entries),
      policy: row.policy,
      evictedRows: Number(row.evicted_rows),
      evictedBytes: Number(row.evicted_bytes),
      lastEviction: row.last_evicted_at ? { at: row.last_evicted_at, rows: Number(row.last_evicted_rows), bytes: Number(row.last_evicted_bytes) } : null,
    };
  }
}
