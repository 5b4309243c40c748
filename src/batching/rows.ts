import { CachePostgresError, CounterOverflowError, QueryError } from '../errors.js';
import { type Executor, LATE_AFTER_MS, type PipelinePart } from '../executor.js';
import { encodeInvalidation, type Slide } from '../local/local_cache.js';
import { LocalTier } from '../local/local_tier.js';
import type { Observer } from '../observer.js';
import { bytesOf, bytesOfEscaped, oversize, type Sql, type Statement, textOfEscaped, tooLarge } from '../sql.js';
import { Batcher } from './batcher.js';
import { KeyOrder, type Tracker } from './key_order.js';

/** One row to write: the five contract columns plus tags, timestamps as ISO strings (or 'infinity'). */
export interface RowWrite {
  readonly id: string;
  readonly value: Buffer;
  /** The value as the text it was given as (Keyv's string): what the local tier keeps, if it keeps it. */
  readonly text?: string;
  readonly expires: string;
  readonly sliding: number | null;
  readonly absolute: string | null;
  readonly tags: readonly string[] | null;
}

/** What a counter gets when an increment creates it (or restarts it after expiry). */
export interface CounterCreate {
  readonly expires: string;
  readonly absolute: string | null;
  readonly tags: readonly string[] | null;
}

/** A read (`text`: the caller wants UTF-8 text, not bytes) or a write of one tick. */
type ReadOrWrite = { read: string; text: boolean } | { write: RowWrite };

/**
 * Smallest idle batch cut in two overlapping halves. Small batches come from light load, where the
 * second statement only adds work (a chosen threshold, not a measured optimum; 20 callers: halves of 10).
 */
const SPLIT_WHEN_IDLE = 8;

/** With the in-process tier, what a read returns of a row's expiry (see buildSql's withExpiry). */
type ExpiryColumns = { until?: number | null; sw?: string | null; absms?: number | null };

/** A row of the reads: the key, its value as base64 text, and (with the in-process tier) its expiry. */
type BytesRow = { id: string; b64: string } & ExpiryColumns;

/** A row of the text reads: the value in PostgreSQL's `escape` form. */
type EscapedRow = { id: string; esc: string } & ExpiryColumns;

/**
 * A value read, as bytes or (for text reads) in `escape` form, and until when the in-process tier may
 * keep it (null: never, it slides).
 */
/** A value read: its bytes, its `escape` text, its text (from the local tier), or (over MAX_VALUE_BYTES, not sent) its size. */
type Found = ({ value: Buffer } | { escaped: string } | { text: string } | { tooLarge: number }) & {
  /** The row's expiry (epoch ms) as read, with the in-process tier; null: not kept there. */
  until: number | null;
  /** A sliding row's window and absolute expiry (with the in-process tier). */
  slide?: Slide;
};

/** Rows by id; a value over MAX_VALUE_BYTES becomes its size, an error for its own caller only. */
function foundById(rows: ReadonlyArray<BytesRow | EscapedRow>): Map<string, Found> {
  return new Map(rows.map((row) => [row.id, found(row)]));
}

function found(row: BytesRow | EscapedRow): Found {
  const until = row.until ?? null;
  const size = oversize(row);
  if (size !== undefined) return { tooLarge: size, until };
  const value = 'esc' in row ? { escaped: row.esc, until } : { value: bytesOf(row), until };
  if (row.sw === null || row.sw === undefined) return value;
  return { ...value, slide: { windowMs: Number(row.sw) * 1000, absMs: row.absms ?? Number.POSITIVE_INFINITY } };
}

/** The bytes of a value read (a Buffer the caller owns). */
function bytesOfFound(found: Found): Buffer {
  if ('tooLarge' in found) throw tooLarge(found.tooLarge);
  if ('text' in found) return Buffer.from(found.text, 'utf8');
  return 'value' in found ? found.value : bytesOfEscaped(found.escaped);
}

/** The UTF-8 text of a value read. */
function textOfFound(found: Found): string {
  if ('tooLarge' in found) throw tooLarge(found.tooLarge);
  if ('text' in found) return found.text;
  return 'value' in found ? found.value.toString('utf8') : textOfEscaped(found.escaped);
}

/** When a written row expires, in epoch ms, for the local tier. */
function expiresAtOf(row: RowWrite): number {
  return row.expires === 'infinity' ? Number.POSITIVE_INFINITY : Date.parse(row.expires);
}

/** A written row's sliding expiration, for the local tier. */
function slideOf(row: RowWrite): Slide | undefined {
  if (row.sliding === null) return undefined;
  return { windowMs: row.sliding * 1000, absMs: row.absolute === null ? Number.POSITIVE_INFINITY : Date.parse(row.absolute) };
}

/** SQLSTATE lock_not_available: a fail-fast statement met a row lock held elsewhere, and wrote nothing. */
const LOCK_NOT_AVAILABLE = '55P03';

function lockedOut(result: unknown): boolean {
  return result instanceof QueryError && result.sqlState === LOCK_NOT_AVAILABLE;
}

/**
 * What a read finds right after `row` was written: its value, or nothing when it was written already
 * expired. Not kept by the in-process tier (`until` null): the tier keeps only what it read.
 */
function storedBy(row: RowWrite, now: number): Found | undefined {
  if (row.expires !== 'infinity' && Date.parse(row.expires) <= now) return undefined;
  return { value: Buffer.from(row.value), until: null };
}

/** 2^63: an int64 lies in [-2^63, 2^63). */
const INT64_BOUND = 2n ** 63n;

/** What a write of a batch gets, by id: nothing (it landed), its error, or a promise of either (written later). */
type WriteOutcome = (id: string) => Error | undefined | Promise<undefined>;

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

interface Increment {
  id: string;
  delta: bigint;
  create: CounterCreate;
}

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
  /** A read slides a row only when that moves its expiry by more than this fraction of its window. */
  readonly slidingWriteThreshold: number;
  /** Counts hits and misses. */
  readonly observer: Observer;
  /** The in-process tier (undefined: off); reads must then return their rows' expiry (buildSql's withExpiry). */
  readonly localCache?: { readonly maxEntries: number; readonly ttlMs: number; readonly maxBytes: number; readonly notifyTrigger: boolean } | undefined;
}

/**
 * The one place where single-key reads and writes become SQL, for PgStore and store.ext alike.
 * With batching on, concurrent calls issued in the same tick share statements: the tick's gets and
 * sets one statement (an `= ANY($1)` read, sliding in the same statement, beside a multi-row upsert;
 * measured: the same throughput as a statement per kind, with half the statements), deletes and
 * has-checks one statement each, and increments of the same key one statement whose total each
 * caller sees split as if the calls had run one after another. Each caller keeps its own result.
 */
export class Rows {
  readonly #exec: Executor;
  readonly #sql: Sql;
  readonly #options: RowsOptions;
  /** Gets and sets share a batch: a tick's mix is one statement. */
  readonly #readsAndWrites: Batcher<ReadOrWrite, Found | undefined>;
  readonly #deletes: Batcher<string, boolean>;
  readonly #hases: Batcher<string, boolean>;
  readonly #increments: Batcher<Increment, bigint>;
  /** The in-process tier (undefined: off). */
  readonly #tier: LocalTier | undefined;
  /** Issue order per key across every method of this class (and of callers that use {@link Rows.ordered}). */
  readonly #order: KeyOrder;

  constructor(exec: Executor, sql: Sql, options: RowsOptions) {
    this.#exec = exec;
    this.#sql = sql;
    this.#options = options;
    // A late batch (a row lock held elsewhere) lets the next ones go ahead; calls on its keys wait for it.
    const batch = { maxBatchSize: options.maxBatchSize, maxInFlight: options.maxInFlight, lateAfterMs: LATE_AFTER_MS };
    const byId = <I extends string>(id: I) => id;
    // Pipelined, two batches overlap on one connection (the executor's lane), in issue order.
    this.#readsAndWrites = new Batcher((items) => this.#readWriteBatch(items), {
      ...batch,
      keyOf: (item: ReadOrWrite) => ('read' in item ? item.read : item.write.id),
      kindOf: (item: ReadOrWrite) => ('read' in item ? 'read' : 'write'),
      ...(exec.pipelining ? { maxInFlight: Math.max(2, options.maxInFlight), splitWhenIdle: SPLIT_WHEN_IDLE } : {}),
    });
    this.#deletes = new Batcher((ids) => this.#deleteBatch(ids), { ...batch, keyOf: byId, kindOf: () => 'write' });
    this.#hases = new Batcher((ids) => this.#hasBatch(ids), { ...batch, keyOf: byId, kindOf: () => 'read' });
    this.#increments = new Batcher((items) => this.#incrementBatch(items), { ...batch, keyOf: (item: Increment) => item.id, kindOf: () => 'write' });
    // With batching off, every call is ordered here; with it, each batcher keeps its own calls in order.
    this.#order = new KeyOrder(
      options.batching
        ? new Map<string, Tracker>([['rw', this.#readsAndWrites], ['delete', this.#deletes], ['has', this.#hases], ['incr', this.#increments]])
        : new Map(),
    );
    if (options.localCache) {
      const ports = { exec, sql, observer: options.observer, clock: options.clock, slidingWriteThreshold: options.slidingWriteThreshold };
      this.#tier = new LocalTier(ports, options.localCache);
    }
  }

  /**
   * Starts listening for other stores' invalidations (with the in-process tier on; until it listens,
   * the tier serves nothing). Called once the table is ready.
   */
  start(): void {
    this.#tier?.start();
  }

  /** Stops listening and waits for the notices and touches already asked for. */
  async close(): Promise<void> {
    await this.#tier?.close();
  }

  /** Entries held by the in-process tier (0 when it is off). */
  get localSize(): number {
    return this.#tier?.size ?? 0;
  }

  /**
   * Drops written rows from the in-process tier here and tells the other stores (after the writes
   * landed). Called after this class's own writes, and by writes that bypass it (bulk deletes,
   * getOrSet's transaction).
   */
  written(ids: readonly string[] | 'all'): void {
    this.#tier?.written(ids);
  }

  /**
   * The NOTIFY telling every in-process tier (this store's too) that `ids` changed, for a write of the
   * caller's transaction `sender` run on its connection: sent there, it is delivered when that
   * transaction commits and dropped when it rolls back. Sent whether or not this store has a tier (other
   * processes' stores may).
   */
  noticeOf(ids: readonly string[] | 'all', sender: string): PipelinePart {
    if (this.#tier) return this.#tier.noticeOf(ids, sender);
    return { statement: this.#sql.notify, values: [this.#sql.channel, encodeInvalidation(sender, ids)] };
  }

  /** The live value of `id` (a sliding row is extended in the same round trip), or undefined. */
  async get(id: string): Promise<Buffer | undefined> {
    const writing = this.#tier?.setOnItsWay(id);
    const found = await (writing ? this.#readWritten(id, false, writing) : this.#order.run([id], 'read', this.#batchedAs('rw'), () => this.#read(id, false)));
    return found && bytesOfFound(found);
  }

  /** {@link Rows.get} as UTF-8 text (what Keyv stores), read without a detour through bytes when it can. */
  async getText(id: string): Promise<string | undefined> {
    const writing = this.#tier?.setOnItsWay(id);
    const found = await (writing ? this.#readWritten(id, true, writing) : this.#order.run([id], 'read', this.#batchedAs('rw'), () => this.#read(id, true)));
    return found && textOfFound(found);
  }

  /**
   * A read issued while this store's write of the key (the last one issued) is on its way, with the local
   * tier: once the write lands, the read answers what it wrote, with no round trip. That is the answer
   * issue order gives (the read comes after the write, and nothing issued after the read can change it), so
   * the read needs no place in the order. If the write fails, whether it landed is unknown: the read then
   * asks PostgreSQL, as a read issued at that moment (calls on the key issued after it may be seen).
   */
  async #readWritten(id: string, text: boolean, writing: { readonly row: RowWrite; readonly done: Promise<void> }): Promise<Found | undefined> {
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
    const local = this.#tier;
    if (local) {
      // Held as the caller wants it: Keyv's string is shared, never decoded again; bytes are a copy.
      const held = local.held(id, text, this.#options.clock());
      if (held !== undefined) {
        this.#options.observer.localHit(id);
        return typeof held === 'string' ? { text: held, until: null } : { value: held, until: null };
      }
    }
    const stamp = local?.stamp() ?? 0;
    let found: Found | undefined;
    if (this.#options.batching) found = await this.#readsAndWrites.load({ read: id, text });
    else if (this.#exec.splitReads) found = (await this.#readPipelined([id])).get(id);
    else found = foundById(await this.#exec.query<BytesRow>(this.#sql.getMany, [[id], this.#now()])).get(id);
    if (found && local && found.until !== null && !('tooLarge' in found)) {
      // Converted once, to the form the caller asked for, and kept in that form.
      const { until, slide } = found;
      found = text ? { text: textOfFound(found), until } : { value: bytesOfFound(found), until };
      local.keep(id, 'text' in found ? found.text : bytesOfFound(found), until, stamp, this.#options.clock(), slide);
    }
    this.#options.observer.read(id, found !== undefined);
    return found;
  }

  /** The live values among `ids` (one round trip, sliding rows extended), by id. */
  async getMany(ids: readonly string[]): Promise<Map<string, Buffer>> {
    const unique = [...new Set(ids)];
    if (unique.length === 0) return new Map();
    return this.#order.run(unique, 'read', undefined, () => this.#getMany(unique));
  }

  async #getMany(unique: string[]): Promise<Map<string, Buffer>> {
    const local = this.#tier;
    const now = this.#options.clock();
    const values = new Map<string, Buffer>();
    const missing: string[] = [];
    const heldIds = new Set<string>();
    for (const id of unique) {
      const held = local?.held(id, false, now) as Buffer | undefined;
      if (held) {
        values.set(id, held);
        heldIds.add(id);
      } else missing.push(id);
    }
    if (missing.length > 0) {
      const stamp = local?.stamp() ?? 0;
      const found = this.#exec.splitReads
        ? await this.#readPipelined(missing)
        : foundById(await this.#exec.query<BytesRow>(this.#sql.getMany, [missing, this.#now()]));
      const after = this.#options.clock();
      for (const [id, hit] of found) {
        const value = bytesOfFound(hit);
        values.set(id, value);
        local?.keep(id, value, hit.until, stamp, after, hit.slide);
      }
    }
    for (const id of unique) {
      if (heldIds.has(id)) this.#options.observer.localHit(id);
      else this.#options.observer.read(id, values.has(id));
    }
    return values;
  }

  /**
   * A write that is not a `set` was issued on `ids`: a read issued after it must not be answered with the
   * value of a `set` issued before it (see #readWritten); it takes the ordered path instead.
   */
  #otherWrite(ids: Iterable<string>): void {
    this.#tier?.otherWrite(ids);
  }

  /** Upserts one row (all columns replaced). */
  set(row: RowWrite): Promise<void> {
    const done = this.#order.run([row.id], 'write', this.#batchedAs('rw'), () => this.#set(row));
    this.#tier?.setIssued(row, done);
    return done;
  }

  async #set(row: RowWrite): Promise<void> {
    const tier = this.#tier;
    const stamp = tier?.setStarting() ?? 0;
    let landed = false;
    try {
      if (this.#options.batching) await this.#readsAndWrites.load({ write: row });
      else await this.#writeRows([row]);
      landed = true;
    } finally {
      // Written through: the next read of the key is answered from memory (unless another store's
      // write of it was heard meanwhile). A failed write may or may not have landed: dropped.
      tier?.setEnded(row, stamp, landed, row.text ?? row.value, expiresAtOf(row), slideOf(row));
    }
  }

  /** Writes many rows in one statement; a later duplicate id wins. */
  async setMany(rows: readonly RowWrite[]): Promise<void> {
    const byId = new Map<string, RowWrite>();
    for (const row of rows) byId.set(row.id, row);
    if (byId.size === 0) return;
    this.#otherWrite(byId.keys());
    await this.#order.run([...byId.keys()], 'write', undefined, async () => {
      try {
        await this.#writeRows([...byId.values()]);
      } finally {
        this.written([...byId.keys()]);
      }
    });
  }

  /** Deletes every id in one statement; resolves to the ids of the live entries deleted. */
  async deleteMany(ids: readonly string[]): Promise<Set<string>> {
    const unique = [...new Set(ids)];
    if (unique.length === 0) return new Set();
    this.#otherWrite(unique);
    return this.#order.run(unique, 'write', undefined, () => this.#deleteMany(unique));
  }

  async #deleteMany(unique: string[]): Promise<Set<string>> {
    try {
      const rows = await this.#exec.query<{ id: string; live: boolean }>(this.#sql.deleteMany, [unique, this.#now()]);
      return new Set(rows.filter((row) => row.live).map((row) => row.id));
    } finally {
      this.written(unique);
    }
  }

  /** Deletes `id`; true when a live entry was deleted. */
  delete(id: string): Promise<boolean> {
    this.#otherWrite([id]);
    return this.#order.run([id], 'write', this.#batchedAs('delete'), () => this.#delete(id));
  }

  async #delete(id: string): Promise<boolean> {
    if (this.#options.batching) return this.#deletes.load(id); // through deleteMany, which announces it
    try {
      const rows = await this.#exec.query<{ live: boolean }>(this.#sql.delete, [id, this.#now()]);
      return rows[0]?.live === true;
    } finally {
      this.written([id]);
    }
  }

  /** True when `id` is live. */
  has(id: string): Promise<boolean> {
    return this.#order.run([id], 'read', this.#batchedAs('has'), () => this.#has(id));
  }

  async #has(id: string): Promise<boolean> {
    if (this.#options.batching) return this.#hases.load(id);
    return (await this.#exec.query(this.#sql.has, [id, this.#now()])).length > 0;
  }

  /**
   * Adds `delta` atomically; resolves to the new value. A missing or expired counter starts from
   * `delta` with `create`'s expiry and tags (for coalesced calls: the first caller's).
   */
  incr(id: string, delta: bigint, create: CounterCreate): Promise<bigint> {
    this.#otherWrite([id]);
    return this.#order.run([id], 'write', this.#batchedAs('incr'), () => this.#incr(id, delta, create));
  }

  /**
   * Runs `op`, which reads (`'read'`) or changes (`'write'`) the rows `ids` by other statements than this
   * class's, in issue order with this class's calls on the same keys (see {@link KeyOrder}).
   */
  ordered<T>(ids: readonly string[], kind: 'read' | 'write', op: () => Promise<T>): Promise<T> {
    if (kind === 'write') this.#otherWrite(ids);
    return this.#order.run([...new Set(ids)], kind, undefined, op);
  }

  /**
   * Runs `op`, which touches keys not known in advance (a pattern, tags, every key), after every call in
   * flight; calls issued meanwhile wait for it.
   */
  barrier<T>(op: () => Promise<T>): Promise<T> {
    this.#tier?.otherWrite(); // a barrier may write any key
    return this.#order.barrier(op);
  }

  async #incr(id: string, delta: bigint, create: CounterCreate): Promise<bigint> {
    try {
      if (this.#options.batching) return await this.#increments.load({ id, delta, create });
      const total = await this.#incrementOne(id, delta, create);
      if (total === undefined) throw new CounterOverflowError(id, undefined);
      return total;
    } finally {
      this.written([id]);
    }
  }

  /** The batcher a call goes through (see {@link KeyOrder.run}), or none with batching off. */
  #batchedAs(group: string): string | undefined {
    return this.#options.batching ? group : undefined;
  }

  #now(): string {
    return new Date(this.#options.clock()).toISOString();
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
    const { found, readError, written } = await this.#readAndWrite([...bytes], [...texts], [...writes.values()]);
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
    const now = this.#options.clock();
    return items.map((item, i) => {
      if (!('read' in item)) return written(item.write.id);
      const earlier = afterWrite.get(i);
      if (!earlier) return fromTable(item.read);
      const outcome = written(item.read);
      if (outcome instanceof Error) return fromTable(item.read);
      return outcome ? outcome.then(() => storedBy(earlier, now), () => fromTable(item.read) as Found | undefined) : storedBy(earlier, now);
    });
  }

  /**
   * One tick's reads and writes in one round trip; the reads see the table as it was before the
   * writes (as if the tick's gets ran just before its sets). Pipelined, reads and writes fail apart,
   * and text reads come in `escape` form. A key read both ways is answered once, as bytes.
   */
  async #readAndWrite(
    byteIds: string[],
    textIds: string[],
    writes: RowWrite[],
  ): Promise<{ found: Map<string, Found>; readError?: Error; written: WriteOutcome }> {
    const now = this.#now();
    const asBytes = new Set(byteIds);
    const asText = textIds.filter((id) => !asBytes.has(id));
    const ids = [...asBytes, ...asText];
    if (this.#exec.splitReads) {
      const selects = [
        ...(asBytes.size > 0 ? [{ statement: this.#sql.selectMany, values: [[...asBytes], now] }] : []),
        ...(asText.length > 0 ? [{ statement: this.#sql.selectManyText, values: [asText, now] }] : []),
      ];
      // The slide and the upsert wait only briefly for a row lock held elsewhere (see LANE_LOCK_TIMEOUT):
      // the pipelines behind them on this connection must not wait for someone's transaction.
      const reads = ids.length > 0 ? [{ statement: this.#sql.slideManyFailFast, values: [ids, now] }, ...selects] : [];
      const upsert = writes.length > 0 ? [this.#upsertOf(writes, this.#sql.upsertRowsFailFast)] : [];
      const results = await this.#exec.pipeline([...reads, ...upsert]);
      const readResults = results.slice(0, reads.length);
      const upserted = upsert.length > 0 ? results[reads.length] : undefined;
      if (lockedOut(readResults[0])) this.#slideLater(ids, now);
      // Any error: a part refused after disconnect() is a StoreClosedError, not a QueryError.
      const readError = readResults.find((result, i): result is CachePostgresError => result instanceof CachePostgresError && !(i === 0 && lockedOut(result)));
      return {
        found: readError ? new Map() : foundById(readResults.slice(1).flat() as Array<BytesRow | EscapedRow>),
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
        this.#writeRows([row]).catch((failure: unknown) => {
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
      await this.#writeRows(writes);
      return new Map();
    } catch (error) {
      return await this.#isolate(writes, error);
    }
  }

  /**
   * A slide that met a row lock held elsewhere runs again on a connection of its own, without holding
   * up the values already read. A late slide never shortens a row's life (slideMany only moves an
   * expiry forward), so it may land after later writes of the same keys.
   */
  #slideLater(ids: string[], now: string): void {
    this.#exec.query(this.#sql.slideMany, [ids, now]).catch((error: unknown) => this.#options.observer.error(error));
  }

  /** The live rows among `ids`, sliding rows extended: two statements, one round trip. */
  async #readPipelined(ids: string[]): Promise<Map<string, Found>> {
    const { found, readError } = await this.#readAndWrite(ids, [], []);
    if (readError) throw readError;
    return found;
  }

  async #writeRows(rows: readonly RowWrite[]): Promise<void> {
    const { statement, values } = this.#upsertOf(rows, this.#sql.upsertRows);
    await this.#exec.query(statement, values);
  }

  /**
   * The statement that writes `rows`. On a distributed table one row is a plain INSERT ... VALUES, which
   * Citus routes to the row's shard; the many-row form (INSERT ... SELECT FROM UNNEST) is gathered on the
   * coordinator first and costs several times as much there (measured: npm run bench:citus).
   */
  #upsertOf(rows: readonly RowWrite[], many: Statement): { statement: Statement; values: unknown[] } {
    const [row] = rows;
    if (this.#exec.distributed && rows.length === 1 && row) {
      return { statement: this.#sql.upsert, values: [row.id, row.value, row.expires, row.sliding, row.absolute, row.tags] };
    }
    return { statement: many, values: rowArrays(rows) };
  }

  async #deleteBatch(ids: string[]): Promise<boolean[]> {
    const live = await this.#deleteMany([...new Set(ids)]);
    // As if one after another: only the first delete of a key in the batch found it.
    return ids.map((id) => live.delete(id));
  }

  async #hasBatch(ids: string[]): Promise<boolean[]> {
    const rows = await this.#exec.query<{ id: string }>(this.#sql.hasMany, [[...new Set(ids)], this.#now()]);
    const live = new Set(rows.map((row) => row.id));
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
          total = await this.#incrementOne(id, sum, group[0]!.create, highest, lowest);
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
        const total = await this.#incrementOne(id, item.delta, item.create);
        results.set(item, total ?? new CounterOverflowError(id, undefined));
      } catch (error) {
        results.set(item, error as Error);
      }
    }
  }

  /**
   * Adds `delta`; `highest` and `lowest` are the running totals the stored value must stay in int64
   * with. Undefined when it would not (nothing was changed).
   */
  async #incrementOne(id: string, delta: bigint, create: CounterCreate, highest = delta, lowest = delta): Promise<bigint | undefined> {
    const rows = await this.#exec.query<{ value: string }>(this.#sql.incr, incrValues(id, delta, create, this.#now(), highest, lowest));
    return rows[0] === undefined ? undefined : BigInt(rows[0].value.trim());
  }
}

/** upsertRows' parameters: the values travel as one binary bytea with offsets and lengths. */
export function rowArrays(rows: readonly RowWrite[]): unknown[] {
  const offsets: number[] = [];
  const lengths: number[] = [];
  let offset = 1; // substring() counts from 1
  for (const row of rows) {
    offsets.push(offset);
    lengths.push(row.value.length);
    offset += row.value.length;
  }
  return [
    rows.map((r) => r.id),
    Buffer.concat(rows.map((r) => r.value), offset - 1),
    rows.map((r) => r.expires),
    rows.map((r) => r.sliding),
    rows.map((r) => r.absolute),
    rows.map((r) => (r.tags === null ? null : JSON.stringify(r.tags))),
    offsets,
    lengths,
  ];
}

/**
 * The parameters of the `incr` statement adding `delta`; `highest` and `lowest` are the running totals
 * the stored value must stay in int64 with.
 */
export function incrValues(id: string, delta: bigint, create: CounterCreate, now: string, highest = delta, lowest = delta): unknown[] {
  // The stored value v may take them when MIN <= v + lowest and v + highest <= MAX: bounds on v itself,
  // computed here in int64, so that PostgreSQL compares bigints (numeric arithmetic cost it 5-10%).
  const lower = lowest < 0n ? -INT64_BOUND - lowest : -INT64_BOUND;
  const upper = highest > 0n ? INT64_BOUND - 1n - highest : INT64_BOUND - 1n;
  return [id, delta.toString(), create.expires, create.absolute, create.tags, now, lower.toString(), upper.toString()];
}
