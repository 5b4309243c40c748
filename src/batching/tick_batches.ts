import { CounterOverflowError } from '../errors.js';
import { LATE_AFTER_MS } from '../execution/executor.js';
import { type Found, storedBy } from '../execution/found.js';
import { INT64_BOUND } from '../execution/row_params.js';
import type { RowStatements } from '../execution/row_statements.js';
import type { CounterCreate, RowWrite } from '../row.js';
import { Batcher } from './batcher.js';
import type { Tracker } from './key_order.js';

/** A read (`text`: the caller wants UTF-8 text, not bytes) or a write of one tick. */
type ReadOrWrite = { read: string; text: boolean } | { write: RowWrite };

interface Increment {
  id: string;
  delta: bigint;
  create: CounterCreate;
}

/**
 * Smallest idle batch cut in two overlapping halves. Small batches come from light load, where the
 * second statement only adds work (a chosen threshold, not a measured optimum; 20 callers: halves of 10).
 */
const SPLIT_WHEN_IDLE = 8;

/** Options of {@link TickBatches}. */
export interface TickBatchesOptions {
  /** Most keys per batched statement. */
  readonly maxBatchSize: number;
  /** Most batched statements of one kind running at once. */
  readonly maxInFlight: number;
  /** Application clock (epoch ms). */
  readonly clock: () => number;
  /** Told of the keys a delete batch wrote, once its statement settled and before its callers are answered. */
  readonly written: (ids: readonly string[]) => void;
}

/**
 * The single-key calls of one tick, folded into few statements: the tick's gets and sets one statement
 * (an `= ANY($1)` read, sliding in the same statement, beside a multi-row upsert; measured: the same
 * throughput as a statement per kind, with half the statements), deletes and has-checks one statement
 * each, and increments of the same key one statement whose total each caller sees split as if the calls
 * had run one after another. Each caller keeps its own result, or its own error.
 */
export class TickBatches {
  readonly #statements: RowStatements;
  readonly #clock: () => number;
  readonly #written: (ids: readonly string[]) => void;
  /** Gets and sets share a batch: a tick's mix is one statement. */
  readonly #readsAndWrites: Batcher<ReadOrWrite, Found | undefined>;
  readonly #deletes: Batcher<string, boolean>;
  readonly #hases: Batcher<string, boolean>;
  readonly #increments: Batcher<Increment, bigint>;

  constructor(statements: RowStatements, options: TickBatchesOptions) {
    this.#statements = statements;
    this.#clock = options.clock;
    this.#written = options.written;
    // A late batch (a row lock held elsewhere) lets the next ones go ahead; calls on its keys wait for it.
    const batch = { maxBatchSize: options.maxBatchSize, maxInFlight: options.maxInFlight, lateAfterMs: LATE_AFTER_MS };
    const byId = <I extends string>(id: I) => id;
    // Pipelined, two batches overlap on one connection (the executor's lane), in issue order.
    this.#readsAndWrites = new Batcher((items) => this.#readWriteBatch(items), {
      ...batch,
      name: 'readWrite',
      keyOf: (item: ReadOrWrite) => ('read' in item ? item.read : item.write.id),
      kindOf: (item: ReadOrWrite) => ('read' in item ? 'read' : 'write'),
      ...(statements.pipelining ? { maxInFlight: Math.max(2, options.maxInFlight), splitWhenIdle: SPLIT_WHEN_IDLE } : {}),
    });
    this.#deletes = new Batcher((ids) => this.#deleteBatch(ids), { ...batch, name: 'delete', keyOf: byId, kindOf: () => 'write' });
    this.#hases = new Batcher((ids) => this.#hasBatch(ids), { ...batch, name: 'has', keyOf: byId, kindOf: () => 'read' });
    this.#increments = new Batcher((items) => this.#incrementBatch(items), { ...batch, name: 'incr', keyOf: (item: Increment) => item.id, kindOf: () => 'write' });
  }

  /** The batchers by the group names Rows passes to KeyOrder.run, each keeping its own calls in issue order. */
  get trackers(): Map<string, Tracker> {
    return new Map<string, Tracker>([['rw', this.#readsAndWrites], ['delete', this.#deletes], ['has', this.#hases], ['incr', this.#increments]]);
  }

  /** Reads `id` in this tick's read-write statement (group 'rw'). */
  read(id: string, text: boolean): Promise<Found | undefined> {
    return this.#readsAndWrites.load({ read: id, text });
  }

  /** Writes `row` in this tick's read-write statement (group 'rw'). */
  write(row: RowWrite): Promise<unknown> {
    return this.#readsAndWrites.load({ write: row });
  }

  /** Deletes `id` in this tick's delete statement (group 'delete'); true when it was live. */
  delete(id: string): Promise<boolean> {
    return this.#deletes.load(id);
  }

  /** Checks `id` in this tick's has statement (group 'has'). */
  has(id: string): Promise<boolean> {
    return this.#hases.load(id);
  }

  /** Adds `delta` to `id` in this tick's increments (group 'incr'). */
  increment(id: string, delta: bigint, create: CounterCreate): Promise<bigint> {
    return this.#increments.load({ id, delta, create });
  }

  /**
   * One batch of reads and writes, in issue order: the statements read the table before the writes,
   * and a read issued after a write of its key in the batch is answered with what that write stored
   * (once it landed; the table's value when it failed).
   */
  async #readWriteBatch(items: ReadOrWrite[]): Promise<Array<Found | undefined | Error | Promise<Found | undefined>>> {
    const bytes = new Set<string>();
    const texts = new Set<string>();
    const writes = new Map<string, RowWrite>();
    /** For each read after a write of its key in this batch: that write. */
    const afterWrite = new Map<number, RowWrite>();
    items.forEach((item, i) => {
      if (!('read' in item)) writes.set(item.write.id, item.write); // a later duplicate wins
      else {
        (item.text ? texts : bytes).add(item.read);
        const earlier = writes.get(item.read);
        if (earlier) afterWrite.set(i, earlier);
      }
    });
    const { found, readError, written } = await this.#statements.readAndWrite([...bytes], [...texts], [...writes.values()]);
    // A caller asking twice for one key in a tick gets its own copy: Buffers are mutable.
    const handedOut = new Set<string>();
    const fromTable = (id: string): Found | undefined | Error => {
      if (readError) return readError;
      const hit = found.get(id);
      if (hit === undefined || !('value' in hit) || !handedOut.has(id)) {
        handedOut.add(id);
        return hit;
      }
      return { value: Buffer.from(hit.value), until: hit.until };
    };
    const now = this.#clock();
    return items.map((item, i) => {
      if (!('read' in item)) return written(item.write.id);
      const earlier = afterWrite.get(i);
      if (!earlier) return fromTable(item.read);
      const outcome = written(item.read);
      if (outcome instanceof Error) return fromTable(item.read);
      return outcome ? outcome.then(() => storedBy(earlier, now), () => fromTable(item.read) as Found | undefined) : storedBy(earlier, now);
    });
  }

  async #deleteBatch(ids: string[]): Promise<boolean[]> {
    const unique = [...new Set(ids)];
    let live: Set<string>;
    try {
      live = await this.#statements.deleteMany(unique);
    } finally {
      this.#written(unique);
    }
    // As if one after another: only the first delete of a key in the batch found it.
    return ids.map((id) => live.delete(id));
  }

  async #hasBatch(ids: string[]): Promise<boolean[]> {
    const live = await this.#statements.hasMany([...new Set(ids)]);
    return ids.map((id) => live.has(id));
  }

  /**
   * One tick's increments, as if run one after another in issue order. A key's increments are summed
   * into one statement when that gives the same results: PostgreSQL applies the sum only when no
   * intermediate value would leave int64 (the highest and lowest running totals are checked against
   * the stored value); otherwise, or when the running totals from zero would already overflow (a new
   * or expired counter), they run one by one, in order.
   */
  async #incrementBatch(items: Increment[]): Promise<Array<bigint | Error>> {
    const byId = new Map<string, Increment[]>();
    for (const item of items) {
      const group = byId.get(item.id);
      if (group) group.push(item);
      else byId.set(item.id, [item]);
    }
    const results = new Map<Increment, bigint | Error>();
    await Promise.all([...byId].map(([id, group]) => this.#incrementGroup(id, group, results)));
    return items.map((item) => results.get(item)!);
  }

  async #incrementGroup(id: string, group: Increment[], results: Map<Increment, bigint | Error>): Promise<void> {
    if (group.length > 1) {
      let sum = 0n;
      let highest = -INT64_BOUND;
      let lowest = INT64_BOUND;
      for (const item of group) {
        sum += item.delta;
        if (sum > highest) highest = sum;
        if (sum < lowest) lowest = sum;
      }
      if (highest < INT64_BOUND && lowest >= -INT64_BOUND) {
        let total: bigint | undefined;
        try {
          total = await this.#statements.increment(id, sum, group[0]!.create, highest, lowest);
        } catch (error) {
          for (const item of group) results.set(item, error as Error);
          return;
        }
        if (total !== undefined) {
          // Caller k sees the value after its own delta: the final value minus the deltas after it.
          let after = sum;
          for (const item of group) {
            after -= item.delta;
            results.set(item, total - after);
          }
          return;
        }
      }
    }
    for (const item of group) {
      try {
        const total = await this.#statements.increment(id, item.delta, item.create);
        results.set(item, total ?? new CounterOverflowError(id, undefined));
      } catch (error) {
        results.set(item, error as Error);
      }
    }
  }
}
