import { CounterOverflowError } from '../errors.js';
import { bytesOfFound, type Found, textOfFound } from '../execution/found.js';
import type { RowStatements } from '../execution/row_statements.js';
import type { PipelinePart } from '../execution/types.js';
import { encodeInvalidation } from '../notices.js';
import type { Observer } from '../observer.js';
import { checkEntrySize, type CounterCreate, entrySizeError, expiresAtOf, type RowWrite, slideOf } from '../row.js';
import type { Front, Writing } from './front.js';
import { type Covers, type KeyLookup, KeyOrder, type Narrow } from './key_order.js';
import { forEachFor } from '../in_turns.js';
import { TickBatches } from './tick_batches.js';

/** Options of {@link Rows}. */
export interface RowsOptions {
  /** Fold the single-key calls of one tick into few statements (gets and sets share one). */
  readonly batching: boolean;
  /** Most keys per batched statement. */
  readonly maxBatchSize: number;
  /** Most batched statements of one kind running at once. */
  readonly maxInFlight: number;
  /** Application clock (epoch ms). */
  readonly clock: () => number;
  /** Counts hits and misses. */
  readonly observer: Observer;
  /** The cache in front (the local tier; undefined: off). Reads must then return their rows' expiry (buildSql's withExpiry). */
  readonly front?: Front | undefined;
  /** The table's byte cap: a larger entry is refused before it is queued (see checkEntrySize). */
  readonly maxEntryBytes?: number | null | undefined;
}

/**
 * The one place where single-key reads and writes of PgStore and store.ext pass, in issue order per key
 * ({@link KeyOrder}): each call asks the cache in front ({@link Front}) in its turn, then goes to the table
 * folded with the other calls of its tick ({@link TickBatches}) or, with batching off, as its own statement
 * ({@link RowStatements}). Operations on other statements (bulk, patterns, tags, locks) take their place in
 * the same order through {@link Rows.ordered} and {@link Rows.barrier}.
 */
export class Rows {
  readonly #statements: RowStatements;
  readonly #options: RowsOptions;
  readonly #batches: TickBatches | undefined;
  readonly #front: Front | undefined;
  readonly #order: KeyOrder;

  constructor(statements: RowStatements, options: RowsOptions) {
    this.#statements = statements;
    this.#options = options;
    this.#front = options.front;
    this.#batches = options.batching ? new TickBatches(statements, { ...options, written: (ids) => this.written(ids) }) : undefined;
    // With batching off, every call is ordered here; with it, each batcher keeps its own calls in order.
    this.#order = new KeyOrder(this.#batches?.trackers);
  }

  /** Starts the cache in front (called once the table is ready; until then it serves nothing). */
  start(): void {
    this.#front?.start();
  }

  /** Stops the cache in front and waits for the notices and touches already asked for. */
  async close(): Promise<void> {
    await this.#front?.close();
  }

  /** Entries held by the in-process tier (0 when it is off). */
  get localSize(): number {
    return this.#front?.size ?? 0;
  }

  /**
   * Drops written rows from the in-process tier here and tells the other stores (after the writes
   * landed). Called after this class's own writes, and by writes that bypass it (bulk deletes,
   * getOrSet's transaction).
   */
  written(ids: readonly string[] | 'all'): void {
    this.#front?.written(ids);
  }

  /**
   * The NOTIFY telling every in-process tier (this store's too) that `ids` changed, for a write of the
   * caller's transaction `sender` run on its connection: sent there, it is delivered when that
   * transaction commits and dropped when it rolls back. Sent whether or not this store has a tier (other
   * processes' stores may); this store's drops the keys and holds them back until that commit is heard.
   */
  noticeOf(ids: readonly string[] | 'all', sender: string): PipelinePart {
    this.#front?.holdBack(ids, sender);
    return this.#statements.notice(encodeInvalidation(sender, ids));
  }

  /** The live value of `id` (a sliding row is extended in the same round trip), or undefined. */
  async get(id: string): Promise<Buffer | undefined> {
    const found = await this.#readInOrder(id, false);
    return found && bytesOfFound(found);
  }

  /** {@link Rows.get} as UTF-8 text (what Keyv stores), read without a detour through bytes when it can. */
  async getText(id: string): Promise<string | undefined> {
    const found = await this.#readInOrder(id, true);
    return found && textOfFound(found);
  }

  #readInOrder(id: string, text: boolean): Promise<Found | undefined> {
    const writing = this.#front?.setOnItsWay(id);
    return writing ? this.#readWritten(id, text, writing) : this.#order.run([id], 'read', this.#batchedAs('rw'), () => this.#read(id, text));
  }

  /**
   * A read issued while this store's write of the key (the last one issued) is on its way, with the local
   * tier: once the write lands, the read answers what it wrote, with no round trip. That is the answer
   * issue order gives (the read comes after the write, and nothing issued after the read can change it), so
   * the read needs no place in the order. If the write fails, whether it landed is unknown: the read then
   * asks PostgreSQL, as a read issued at that moment (calls on the key issued after it may be seen).
   */
  async #readWritten(id: string, text: boolean, writing: Writing): Promise<Found | undefined> {
    try {
      await writing.done;
    } catch {
      return this.#order.run([id], 'read', this.#batchedAs('rw'), () => this.#read(id, text));
    }
    const { row } = writing;
    if (expiresAtOf(row) <= this.#options.clock()) {
      this.#options.observer.read(id, false);
      return undefined;
    }
    this.#options.observer.localHit(id);
    return text ? { text: row.text ?? row.value.toString('utf8'), until: null } : { value: Buffer.from(row.value), until: null };
  }

  async #read(id: string, text: boolean): Promise<Found | undefined> {
    const front = this.#front;
    if (front) {
      // Held as the caller wants it: Keyv's string is shared, never decoded again; bytes are a copy.
      const held = front.held(id, text, this.#options.clock());
      if (held !== undefined) {
        this.#options.observer.localHit(id);
        return typeof held === 'string' ? { text: held, until: null } : { value: held, until: null };
      }
    }
    const stamp = front?.stamp() ?? 0;
    let found = this.#batches ? await this.#batches.read(id, text) : (await this.#statements.read([id])).get(id);
    if (found && front && found.until !== null && !('tooLarge' in found)) {
      // Converted once, to the form the caller asked for, and kept in that form.
      const { until, slide } = found;
      found = text ? { text: textOfFound(found), until } : { value: bytesOfFound(found), until };
      front.keep(id, 'text' in found ? found.text : bytesOfFound(found), until, stamp, this.#options.clock(), slide);
    }
    this.#options.observer.read(id, found !== undefined);
    return found;
  }

  /** The live values among `ids` (one round trip, sliding rows extended), by id. */
  async getMany(ids: readonly string[], known?: ReadonlySet<string>): Promise<Map<string, Buffer>> {
    const unique = known ? (ids as string[]) : [...new Set(ids)];
    if (unique.length === 0) return new Map();
    return this.#order.run(unique, 'read', undefined, () => this.#getMany(unique), known);
  }

  async #getMany(unique: string[]): Promise<Map<string, Buffer>> {
    const front = this.#front;
    const now = this.#options.clock();
    const values = new Map<string, Buffer>();
    const missing: string[] = [];
    const heldIds = new Set<string>();
    for (const id of unique) {
      const held = front?.held(id, false, now) as Buffer | undefined;
      if (held) {
        values.set(id, held);
        heldIds.add(id);
      } else missing.push(id);
    }
    const each = forEachFor(unique.length); // a large read's answer in turns (in_turns.ts)
    if (missing.length > 0) {
      const stamp = front?.stamp() ?? 0;
      const found = await this.#statements.read(missing);
      const after = this.#options.clock();
      await each(found, ([id, hit]) => {
        const value = bytesOfFound(hit);
        values.set(id, value);
        front?.keep(id, value, hit.until, stamp, after, hit.slide);
      });
    }
    const observer = this.#options.observer;
    await each(unique, (id) => (heldIds.has(id) ? observer.localHit(id) : observer.read(id, values.has(id))));
    return values;
  }

  /** Upserts one row (all columns replaced). */
  set(row: RowWrite): Promise<void> {
    const refused = entrySizeError(row.id, row.value, this.#options.maxEntryBytes);
    if (refused) return Promise.reject(refused);
    const done = this.#order.run([row.id], 'write', this.#batchedAs('rw'), () => this.#set(row));
    this.#front?.setIssued(row, done);
    return done;
  }

  async #set(row: RowWrite): Promise<void> {
    const front = this.#front;
    const stamp = front?.setStarting() ?? 0;
    let landed = false;
    try {
      if (this.#batches) await this.#batches.write(row);
      else await this.#statements.write([row]);
      landed = true;
    } finally {
      // Written through: the next read of the key is answered from memory (unless another store's
      // write of it was heard meanwhile). A failed write may or may not have landed: dropped.
      front?.setEnded(row, stamp, landed, row.text ?? row.value, expiresAtOf(row), slideOf(row));
    }
  }

  /** Writes many rows, all or none (RowStatements.write); a later duplicate id wins. `known`: their ids, distinct. */
  async setMany(rows: readonly RowWrite[], known?: KeyLookup): Promise<void> {
    for (const row of rows) checkEntrySize(row.id, row.value, this.#options.maxEntryBytes);
    const unique = known ? rows : [...new Map(rows.map((row) => [row.id, row])).values()];
    if (unique.length === 0) return;
    await this.#writeInOrder(unique.map((row) => row.id), () => this.#statements.write(unique), undefined, known);
  }

  /** Deletes every id in one statement; resolves to the ids of the live entries deleted. */
  async deleteMany(ids: readonly string[], known?: ReadonlySet<string>): Promise<Set<string>> {
    const unique = known ? (ids as string[]) : [...new Set(ids)];
    if (unique.length === 0) return new Set();
    return this.#writeInOrder(unique, () => this.#statements.deleteMany(unique), undefined, known);
  }

  /** Deletes `id`; true when a live entry was deleted. */
  delete(id: string): Promise<boolean> {
    // Batched, through the tick's delete statement, which announces it.
    if (this.#batches) {
      const batches = this.#batches;
      this.#front?.otherWrite([id]);
      return this.#order.run([id], 'write', 'delete', () => batches.delete(id));
    }
    return this.#writeInOrder([id], () => this.#statements.delete(id));
  }

  /** True when `id` is live. */
  has(id: string): Promise<boolean> {
    return this.#order.run([id], 'read', this.#batchedAs('has'), () => (this.#batches ? this.#batches.has(id) : this.#statements.has(id)));
  }

  /** The live ids among `ids`, from one statement, in issue order with this class's calls on them. */
  hasMany(ids: string[]): Promise<Set<string>> {
    return this.#order.run([...new Set(ids)], 'read', undefined, () => this.#statements.hasMany(ids));
  }

  /**
   * Adds `delta` atomically; resolves to the new value. A missing or expired counter starts from
   * `delta` with `create`'s expiry and tags (for coalesced calls: the first caller's).
   */
  incr(id: string, delta: bigint, create: CounterCreate): Promise<bigint> {
    return this.#writeInOrder([id], async () => {
      if (this.#batches) return this.#batches.increment(id, delta, create);
      const total = await this.#statements.increment(id, delta, create);
      if (total === undefined) throw new CounterOverflowError(id, undefined);
      return total;
    }, 'incr');
  }

  /**
   * Runs `op`, which reads (`'read'`) or changes (`'write'`) the rows `ids` by other statements than this
   * class's, in issue order with this class's calls on the same keys (see {@link KeyOrder}).
   */
  ordered<T>(ids: readonly string[], kind: 'read' | 'write', op: () => Promise<T>): Promise<T> {
    if (kind === 'write') this.#front?.otherWrite(ids);
    return this.#order.run([...new Set(ids)], kind, undefined, op);
  }

  /**
   * Runs `op`, which touches keys not known in advance (a pattern, tags, every key), after every call in
   * flight; calls issued meanwhile wait for it (only those on keys it `covers`, when given, or once `op` narrows it: key_order.ts).
   */
  barrier<T>(op: (narrow: Narrow) => Promise<T>, covers?: Covers): Promise<T> {
    this.#front?.otherWrite(); // a barrier may write any key
    return this.#order.barrier(op, covers);
  }

  /**
   * A write of this class that is not a `set`, in issue order: a read issued after it is not answered with
   * the value of a `set` issued before it (see #readWritten), and the rows are announced once it settled.
   */
  #writeInOrder<T>(ids: string[], op: () => Promise<T>, group?: string, known?: KeyLookup): Promise<T> {
    this.#front?.otherWrite(ids);
    const ordered = async () => {
      try {
        return await op();
      } finally {
        this.written(ids);
      }
    };
    return this.#order.run(ids, 'write', group && this.#batchedAs(group), ordered, known);
  }

  /** The batcher a call goes through (see {@link KeyOrder.run}), or none with batching off. */
  #batchedAs(group: string): string | undefined {
    return this.#batches ? group : undefined;
  }
}
