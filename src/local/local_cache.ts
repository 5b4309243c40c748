import { keyDigest } from '../key_digest.js';
import type { Slide } from '../row.js';

/**
 * The in-process tier's memory: recently read values by key, least recently used first out, each
 * with the moment it stops being served (its row's expiry or the tier's ttl, whichever is first).
 *
 * A read must not put back a value that a write has replaced meanwhile: a read that left before a
 * write and answers after it carries the old value. So every read takes a stamp when it starts, every
 * invalidation advances a counter and remembers it per key, and a value is kept only when its key
 * (and the whole tier) was not invalidated since its read's stamp.
 */
export class LocalCache {
  readonly #maxEntries: number;
  readonly #threshold: number;
  readonly #touch: (key: string) => void;
  readonly #maxBytes: number;
  readonly #ttlMs: number;
  readonly #entries = new Map<string, Entry>();
  /**
   * Recency order, least recently used first, as a linked list through the entries: a hit moves its entry
   * to the end in O(1). (Map order with delete-and-set is O(1) per hit too, but evicting from the front
   * then walks the holes deletions leave at the front of V8's table: 10% of a write-heavy run's CPU.)
   */
  readonly #recency = new Recency();
  /** The sizes of the entries held, summed (see Entry.size). */
  #bytes = 0;
  #tick = 0;
  readonly #invalidatedAt = new Map<string, number>();
  /**
   * The same marks for invalidations heard from other stores, by key digest: notices name digests, never
   * keys (see key_digest.ts).
   */
  readonly #heardAt = new Map<string, number>();
  /** The entries held, by their key's digest (one a digest: a notice for it drops whichever is held). */
  readonly #byDigest = new Map<string, Entry>();
  #flushedAt = 0;
  /** Off while invalidations from other processes cannot be heard. */
  #enabled = false;

  /**
   * @param maxEntries most entries held
   * @param ttlMs longest time a value is served from memory
   * @param maxBytes most bytes the entries held cost (see {@link entryCost}: values, keys and bookkeeping)
   * @param slidingThreshold a hit of a sliding entry asks for a touch once it would move the row's expiry
   *   by more than this fraction of its window (the store's `slidingWriteThreshold`)
   * @param touch asks for the row of `key` to be slid in PostgreSQL; the answer comes as {@link LocalCache.touched}
   */
  constructor(
    maxEntries: number,
    ttlMs: number,
    maxBytes = Number.POSITIVE_INFINITY,
    slidingThreshold = 0,
    touch: (key: string) => void = () => {},
  ) {
    this.#maxEntries = maxEntries;
    this.#ttlMs = ttlMs;
    this.#maxBytes = maxBytes;
    this.#threshold = slidingThreshold;
    this.#touch = touch;
  }

  /** Whether values are served and kept (only while notifications from other processes arrive). */
  get enabled(): boolean {
    return this.#enabled;
  }

  /**
   * Turns the tier on (notifications are heard) or off (they are not: everything kept is dropped).
   * Either way reads that started before are refused: a read that left while nothing was heard may
   * carry a value another process replaced meanwhile, and no notification will ever say so.
   */
  setEnabled(enabled: boolean): void {
    this.flush();
    this.#enabled = enabled;
  }

  /** Entries kept now. */
  get size(): number {
    return this.#entries.size;
  }

  /** What the entries kept now cost, in bytes (see {@link entryCost} and the constructor's `maxBytes`). */
  get bytes(): number {
    return this.#bytes;
  }

  /** A copy of the live value of `key` at `now` as bytes (callers own what they get), or undefined. */
  get(key: string, now: number): Buffer | undefined {
    const entry = this.#live(key, now);
    if (!entry) return undefined;
    if (!entry.bytes) this.#grow(entry, (entry.bytes = Buffer.from(entry.text!, 'utf8')).length);
    return Buffer.from(entry.bytes);
  }

  /** The live value of `key` at `now` as UTF-8 text (a string: shared, never copied), or undefined. */
  getText(key: string, now: number): string | undefined {
    const entry = this.#live(key, now);
    if (!entry) return undefined;
    if (entry.text === undefined) this.#grow(entry, (entry.text = entry.bytes!.toString('utf8')).length);
    return entry.text;
  }

  #live(key: string, now: number): Entry | undefined {
    if (!this.#enabled) return undefined;
    const entry = this.#entries.get(key);
    if (!entry) return undefined;
    // Served only while the row surely lives in PostgreSQL: before the expiry it is known to have there.
    if (entry.until <= now || entry.expires <= now) {
      this.#drop(key);
      return undefined;
    }
    this.#recency.remove(entry);
    this.#recency.append(entry);
    const slide = entry.slide;
    if (slide && !entry.touching && Math.min(now + slide.windowMs, slide.absMs) - entry.expires > this.#threshold * slide.windowMs) {
      // The read a hit stands for would have slid the row: have it slid, in the background.
      entry.touching = true;
      this.#touch(key);
    }
    return entry;
  }

  /**
   * The touches of `keys` asked for by hits were sent at `sentAt` (`ok`: and PostgreSQL took them): their
   * rows' expiries moved to at least `sentAt + window` (short of the threshold's share, which the slide
   * leaves unwritten), capped by their absolute expiry.
   */
  touched(keys: readonly string[], sentAt: number, ok: boolean): void {
    for (const key of keys) {
      const entry = this.#entries.get(key);
      // Only the entry that asked: one kept since (a write of this store, a read) knows its own expiry.
      if (!entry?.slide || !entry.touching) continue;
      entry.touching = false;
      if (!ok) continue;
      const { windowMs, absMs } = entry.slide;
      entry.expires = Math.max(entry.expires, Math.min(sentAt + windowMs * (1 - this.#threshold), absMs));
    }
  }

  /** Taken when a read (or a write) starts; given back to {@link LocalCache.keep} (or {@link LocalCache.replace}). */
  stamp(): number {
    return this.#tick;
  }

  /**
   * Keeps what a read that started at `stamp` found, unless the key was invalidated since.
   * @param value bytes (copied), or the UTF-8 text of the value
   * @param expiresAt the row's expiry in epoch ms (Infinity for never), as read; null: not kept
   * @param slide the row's sliding expiration, when it has one (its hits then touch the row)
   */
  keep(key: string, value: Buffer | string, expiresAt: number | null, stamp: number, now: number, slide?: Slide): void {
    if (!this.#enabled || expiresAt === null || stamp < this.#flushedAt) return;
    const invalidated = this.#invalidatedAt.get(key);
    if (invalidated !== undefined && invalidated > stamp) return;
    const digest = keyDigest(key);
    const heard = this.#heardAt.get(digest);
    if (heard !== undefined && heard > stamp) return;
    this.#hold(key, digest, value, expiresAt, now, slide);
  }

  /**
   * This store wrote `value` at `key` (a write that started at `stamp` and is now acknowledged): reads
   * still in flight are refused, as by {@link LocalCache.invalidate}, and the written value is kept in
   * their place, unless another store's write of the key (or a flush) was heard since the write began:
   * then which write PostgreSQL ordered last is unknown here, and nothing is kept. (This store's own
   * writes of one key land in issue order: each replaces the one before.)
   */
  replace(key: string, value: Buffer | string, expiresAt: number | null, stamp: number, now: number, slide?: Slide): void {
    const digest = keyDigest(key);
    const heardAt = this.#heardAt.get(digest);
    const heard = stamp < this.#flushedAt || (heardAt !== undefined && heardAt > stamp);
    this.invalidate([key]);
    if (this.#enabled && !heard && expiresAt !== null) this.#hold(key, digest, value, expiresAt, now, slide);
  }

  #hold(key: string, digest: string, value: Buffer | string, expires: number, now: number, slide: Slide | undefined): void {
    const until = now + this.#ttlMs;
    if (expires <= now) return;
    this.#drop(key);
    const size = entryCost(key, value.length);
    if (size > this.#maxBytes) return;
    const sharing = this.#byDigest.get(digest);
    if (sharing) this.#drop(sharing.key); // another key of the same digest: a notice for either must drop what is held
    const entry: Entry = { key, digest, until, expires, slide, touching: false, size, older: undefined, newer: undefined };
    if (typeof value === 'string') entry.text = value;
    else entry.bytes = Buffer.from(value);
    this.#entries.set(key, entry);
    this.#byDigest.set(digest, entry);
    this.#recency.append(entry);
    this.#bytes += size;
    while (this.#recency.oldest && (this.#entries.size > this.#maxEntries || this.#bytes > this.#maxBytes)) this.#drop(this.#recency.oldest.key);
  }

  /** `entry` now holds its value in a second form too, of `length` more bytes: counted, and the least recently used go. */
  #grow(entry: Entry, length: number): void {
    entry.size += length;
    this.#bytes += length;
    while (this.#recency.oldest && this.#recency.oldest !== entry && this.#bytes > this.#maxBytes) this.#drop(this.#recency.oldest.key);
  }

  #drop(key: string): void {
    const entry = this.#entries.get(key);
    if (!entry) return;
    this.#entries.delete(key);
    if (this.#byDigest.get(entry.digest) === entry) this.#byDigest.delete(entry.digest);
    this.#recency.remove(entry);
    this.#bytes -= entry.size;
  }

  /** Drops `keys` (written by this store) and refuses values of reads that started before now. */
  invalidate(keys: Iterable<string>): void {
    const tick = ++this.#tick;
    for (const key of keys) {
      this.#drop(key);
      this.#invalidatedAt.set(key, tick);
    }
    this.#boundMarks(tick);
  }

  /**
   * Another store wrote the keys of these digests (a notice): what is held under them is dropped, and
   * values of reads, and of this store's writes, that started before now are refused (a write in flight
   * can no longer tell whether its own is the last).
   */
  heard(digests: Iterable<string>): void {
    const tick = ++this.#tick;
    for (const digest of digests) {
      const entry = this.#byDigest.get(digest);
      if (entry) this.#drop(entry.key);
      this.#heardAt.set(digest, tick);
    }
    this.#boundMarks(tick);
  }

  /**
   * The per-key marks only matter to calls in flight; when they pile up, one mark refusing every call
   * begun before now replaces them. The entries held stay: each is as fresh as the marks made it.
   */
  #boundMarks(tick: number): void {
    if (this.#invalidatedAt.size + this.#heardAt.size > this.#maxEntries) {
      this.#flushedAt = tick;
      this.#invalidatedAt.clear();
      this.#heardAt.clear();
    }
  }

  /** Drops everything and refuses values of reads that started before now. */
  flush(): void {
    this.#flushedAt = ++this.#tick;
    this.#entries.clear();
    this.#byDigest.clear();
    this.#recency.clear();
    this.#bytes = 0;
    this.#invalidatedAt.clear();
    this.#heardAt.clear();
  }
}

/** The entries in recency order, oldest first: a doubly linked list through the entries themselves. */
class Recency {
  oldest: Entry | undefined;
  newest: Entry | undefined;

  /** Appends `entry` as the most recently used. */
  append(entry: Entry): void {
    entry.older = this.newest;
    entry.newer = undefined;
    if (this.newest) this.newest.newer = entry;
    else this.oldest = entry;
    this.newest = entry;
  }

  remove(entry: Entry): void {
    if (entry.older) entry.older.newer = entry.newer;
    else this.oldest = entry.newer;
    if (entry.newer) entry.newer.older = entry.older;
    else this.newest = entry.older;
    entry.older = undefined;
    entry.newer = undefined;
  }

  clear(): void {
    this.oldest = undefined;
    this.newest = undefined;
  }
}

/**
 * What an entry costs beside its value, in bytes: the entry object, its two map slots, its digest and the
 * Buffer object of a value held as bytes (measured: 30,000 entries of 1 KiB values with 8-character keys
 * took 490 B each of V8's heap beyond their values).
 */
export const ENTRY_OVERHEAD = 480;

/**
 * What an entry of `key` and a value of `length` costs against `maxBytes`: the value (bytes, or a text's
 * UTF-16 code units, one byte each in V8 for Latin-1 text such as Keyv's JSON of ASCII), the key (two
 * bytes a character, an upper bound) and {@link ENTRY_OVERHEAD}.
 */
export function entryCost(key: string, length: number): number {
  return ENTRY_OVERHEAD + 2 * key.length + length;
}

/**
 * A value held: as bytes, as text, or both once asked for in the other form. `size` is what counts
 * against `maxBytes` ({@link entryCost}), with the second form's length added when it is made.
 */
interface Entry {
  readonly key: string;
  /** keyDigest(key): what notices name it by. */
  readonly digest: string;
  /** Neighbours in recency order. */
  older: Entry | undefined;
  newer: Entry | undefined;
  bytes?: Buffer;
  text?: string;
  /** When the tier stops serving it (kept + ttl): the bound on staleness for writes not heard of. */
  readonly until: number;
  /** The row's expiry in PostgreSQL, as known here (moved by touches of a sliding row). */
  expires: number;
  readonly slide: Slide | undefined;
  /** A touch was asked for and has not been answered. */
  touching: boolean;
  size: number;
}
