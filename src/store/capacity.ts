/**
 * The size cap at run time: the sweeper's pass (fold the usage, and while over the cap delete expired rows, then
 * evict in `lastaccess` order, in small batches, down to {@link LOW_WATER} of it) and, for LRU, the record of
 * reads ({@link Touches}). The SQL is in sql/capacity.ts, its statements in execution/capacity.ts.
 */
import type { CapacityStatements, Usage } from '../execution/capacity.js';
import type { TableStatements } from '../execution/table_statements.js';
import type { Observer } from '../observer.js';
import type { ResolvedCapacity } from '../options/capacity.js';

/** A pass evicts down to this share of the cap, so the next second's writes do not cross it again at once. */
export const LOW_WATER = 0.95;
/** Most rows one eviction statement deletes: each is a short transaction that holds few row locks. */
export const EVICT_BATCH = 500;
/**
 * Most of the cap one eviction statement frees: a batch is sized from the usage read just before it, and a delete
 * by someone else in between (a clear, a tag invalidation) makes it free more than needed, by at most this much.
 */
export const EVICT_SHARE = 0.1;
/** The wait between passes while the table keeps crossing its cap. */
export const PRESSED_INTERVAL_MS = 100;
/** Ids per touch statement. */
const TOUCH_BATCH = 5000;
/** The touch record kept in memory: past this many keys, those recorded longest ago are forgotten. */
const TOUCH_MEMORY = 100_000;
/** The usage table's folded deltas are vacuumed by the sweeper this often (autovacuum may be off). */
const VACUUM_EVERY_MS = 60_000;
/**
 * The cache table is vacuumed by the sweeper once it has evicted this share of the cap since the last time, at most
 * every {@link TABLE_VACUUM_MIN_MS}: evicting churns through the table faster than autovacuum's rounds (a minute
 * apart by default) clean it, and the dead rows in between made a 64 MB cap's table 1 GB (bench:churn).
 */
const TABLE_VACUUM_SHARE = 0.25;
const TABLE_VACUUM_MIN_MS = 5_000;

export interface EvictionResult {
  readonly rows: number;
  readonly bytes: number;
}

interface SweepOptions {
  readonly capacity: ResolvedCapacity;
  readonly clock: () => number;
  readonly retainExpiredForMs: number;
  readonly deleteBatchSize: number;
}

/** The amounts over the low water mark of the table's cap (0 when under it). */
function excess(usage: Usage, lowWater: number): { bytes: number; entries: number } {
  return {
    bytes: usage.maxBytes === null ? 0 : Math.max(0, usage.bytes - Math.floor(usage.maxBytes * lowWater)),
    entries: usage.maxEntries === null ? 0 : Math.max(0, usage.entries - Math.floor(usage.maxEntries * lowWater)),
  };
}

function over(usage: Usage): boolean {
  return (usage.maxBytes !== null && usage.bytes > usage.maxBytes) || (usage.maxEntries !== null && usage.entries > usage.maxEntries);
}

/** One store's part in keeping its table under the cap. */
export class Sweeper {
  readonly #statements: CapacityStatements;
  readonly #table: TableStatements;
  readonly #options: SweepOptions;
  readonly #observer: Observer;
  readonly #stopped: () => boolean;
  #vacuumedAt = 0;
  /** The store's role owns the table (else VACUUM would only warn and skip it, so the sweeper leaves it to autovacuum). */
  #owner = true;
  /** Passes of this store run one after another (the background one and `evict()`). */
  #chain: Promise<unknown> = Promise.resolve();
  /** The last pass found the table over its cap: the writes outrun the interval, so the next check comes sooner. */
  #pressed = false;
  /** What passes evicted since the cache table's last vacuum, and that vacuum (running in the background, if any). */
  #sinceVacuum = { rows: 0, bytes: 0, at: 0 };
  #tableVacuum: Promise<void> | undefined;

  constructor(statements: CapacityStatements, table: TableStatements, options: SweepOptions, observer: Observer, stopped: () => boolean) {
    this.#statements = statements;
    this.#table = table;
    this.#options = options;
    this.#observer = observer;
    this.#stopped = stopped;
  }

  /**
   * One pass: nothing when another process's sweeper holds the lock or the table is under its cap; else expired
   * rows first, then the least recently used (or written) rows, a batch at a time, each batch sized from the
   * usage read just before it, until the table is at {@link LOW_WATER} of its cap.
   */
  pass(): Promise<EvictionResult> {
    const run = this.#chain.then(() => this.#pass());
    this.#chain = run.catch(() => {});
    return run;
  }

  /**
   * The wait before the next background pass: the interval, or {@link PRESSED_INTERVAL_MS} while the table was over
   * its cap at the last pass (writes faster than the interval allows would otherwise carry it past the cap by what
   * a whole interval writes).
   */
  waitMs(intervalMs: number): number {
    return this.#pressed ? Math.min(intervalMs, PRESSED_INTERVAL_MS) : intervalMs;
  }

  async #pass(): Promise<EvictionResult> {
    let usage = await this.#statements.fold();
    if (!usage) return { rows: 0, bytes: 0 };
    this.#observer.usage(usage);
    await this.#vacuum();
    this.#pressed = over(usage);
    if (!this.#pressed) return { rows: 0, bytes: 0 };
    const { clock, retainExpiredForMs, deleteBatchSize } = this.#options;
    const expired = await this.#table.deleteExpired(() => clock() - retainExpiredForMs, deleteBatchSize, this.#stopped, this.#statements.lockName);
    if (expired > 0) this.#observer.expiredDeleted(expired);
    let rows = 0;
    let bytes = 0;
    while (!this.#stopped()) {
      usage = await this.#statements.fold();
      if (!usage) break;
      const need = excess(usage, LOW_WATER);
      if (need.bytes === 0 && need.entries === 0) break;
      const average = usage.entries > 0 ? usage.bytes / usage.entries : 1;
      const wanted = Math.max(1, need.entries, Math.ceil(need.bytes / Math.max(1, average)));
      const share = Math.max(1, Math.min(
        usage.maxEntries === null ? Infinity : Math.floor(usage.maxEntries * EVICT_SHARE),
        usage.maxBytes === null ? Infinity : Math.floor((usage.maxBytes * EVICT_SHARE) / Math.max(1, average)),
      ));
      const limit = Math.min(EVICT_BATCH, wanted, share);
      const batch = await this.#statements.evict(clock(), limit);
      if (!batch) break;
      rows += batch.rows;
      bytes += batch.bytes;
      if (batch.selected === 0) break; // nothing left that may be evicted (live lock rows)
    }
    if (usage) this.#observer.usage(usage);
    if (rows > 0) {
      await this.#statements.record(rows, bytes);
      this.#observer.evicted(rows, bytes);
      if (usage) this.#vacuumTable(rows, bytes, usage);
    }
    return { rows, bytes };
  }

  /** Starts a VACUUM of the cache table once passes evicted {@link TABLE_VACUUM_SHARE} of the cap since the last. */
  #vacuumTable(rows: number, bytes: number, usage: Usage): void {
    const since = this.#sinceVacuum;
    since.rows += rows;
    since.bytes += bytes;
    const due = (usage.maxBytes !== null && since.bytes >= usage.maxBytes * TABLE_VACUUM_SHARE) ||
      (usage.maxEntries !== null && since.rows >= usage.maxEntries * TABLE_VACUUM_SHARE);
    if (!due || this.#tableVacuum || !this.#owner || this.#stopped() || Date.now() - since.at < TABLE_VACUUM_MIN_MS) return;
    this.#sinceVacuum = { rows: 0, bytes: 0, at: Date.now() };
    // A failure (a timeout on a huge table, a lost connection) is reported; the next quarter of the cap tries again.
    this.#tableVacuum = this.#statements
      .vacuumTable()
      .catch((error: unknown) => this.#observer.error(error))
      .finally(() => {
        this.#tableVacuum = undefined;
      });
  }

  /** Waits for a VACUUM of the cache table under way (before the store's connections close). */
  async close(): Promise<void> {
    await this.#tableVacuum;
  }

  /**
   * The store's role does not own the table: PostgreSQL's VACUUM would skip it with a notice, so the sweeper does not
   * send one and says so once.
   */
  notOwner(): void {
    this.#owner = false;
    this.#observer.warnOnce(
      "This store's role does not own the cache table, so its sweeper does not VACUUM it or the cap's usage table: a store whose role owns it does, else autovacuum must keep up with the evictions (docs/operations.md).",
    );
  }

  /** VACUUM of the usage table now and then: its folded deltas are dead rows. A failure is reported, and retried a minute later. */
  async #vacuum(): Promise<void> {
    const now = Date.now();
    if (!this.#owner || now - this.#vacuumedAt < VACUUM_EVERY_MS) return;
    this.#vacuumedAt = now;
    await this.#statements.vacuumUsage().catch((error: unknown) => this.#observer.error(error));
  }
}

/**
 * LRU's record of reads: a key read is written back (its `lastaccess`) once its last record by this store is
 * `resolutionMs` old, in one statement per flush for every key due, at most once a second: reads stay reads.
 */
export class Touches {
  readonly #statements: CapacityStatements;
  readonly #resolutionMs: number;
  readonly #clock: () => number;
  readonly #report: (error: unknown) => void;
  /** Key to when this store last recorded a read of it; in that order (a re-record moves the key to the end). */
  readonly #recorded = new Map<string, number>();
  readonly #due = new Set<string>();
  #timer: NodeJS.Timeout | undefined;
  #running: Promise<void> | undefined;
  #closed = false;

  constructor(statements: CapacityStatements, resolutionMs: number, clock: () => number, report: (error: unknown) => void) {
    this.#statements = statements;
    this.#resolutionMs = resolutionMs;
    this.#clock = clock;
    this.#report = report;
  }

  /** A read found `id` (here or in the local tier). */
  read(id: string): void {
    if (this.#closed) return;
    const now = this.#clock();
    const last = this.#recorded.get(id);
    if (last !== undefined && now - last < this.#resolutionMs) return;
    this.#recorded.delete(id);
    this.#recorded.set(id, now);
    this.#due.add(id);
    if (this.#recorded.size > TOUCH_MEMORY) this.#forget();
    this.#schedule();
  }

  /** Forgets the keys recorded longest ago, down to half the memory (their next read is recorded again). */
  #forget(): void {
    for (const id of this.#recorded.keys()) {
      if (this.#recorded.size <= TOUCH_MEMORY / 2) break;
      this.#recorded.delete(id);
    }
  }

  #schedule(): void {
    if (this.#timer || this.#running) return;
    this.#timer = setTimeout(() => {
      this.#timer = undefined;
      this.#running = this.#flush().finally(() => {
        this.#running = undefined;
        if (this.#due.size > 0 && !this.#closed) this.#schedule();
      });
    }, Math.min(this.#resolutionMs, 1000));
    this.#timer.unref();
  }

  async #flush(): Promise<void> {
    const ids = [...this.#due];
    this.#due.clear();
    for (let i = 0; i < ids.length && !this.#closed; i += TOUCH_BATCH) {
      try {
        await this.#statements.touch(ids.slice(i, i + TOUCH_BATCH), this.#resolutionMs);
      } catch (error) {
        this.#report(error);
        return;
      }
    }
  }

  /** Stops recording; waits for a flush under way (the reads not yet sent are dropped: they only order eviction). */
  async close(): Promise<void> {
    this.#closed = true;
    clearTimeout(this.#timer);
    this.#timer = undefined;
    await this.#running;
  }
}
