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
  readonly #ttlMs: number;
  /** Map order is recency order: a hit moves its key to the end. */
  readonly #entries = new Map<string, { value: Buffer; until: number }>();
  #tick = 0;
  readonly #invalidatedAt = new Map<string, number>();
  #flushedAt = 0;
  /** Off while invalidations from other processes cannot be heard. */
  #enabled = false;

  constructor(maxEntries: number, ttlMs: number) {
    this.#maxEntries = maxEntries;
    this.#ttlMs = ttlMs;
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

  /** A copy of the live value of `key` at `now` (callers own what they get), or undefined. */
  get(key: string, now: number): Buffer | undefined {
    if (!this.#enabled) return undefined;
    const entry = this.#entries.get(key);
    if (!entry) return undefined;
    this.#entries.delete(key);
    if (entry.until <= now) return undefined;
    this.#entries.set(key, entry);
    return Buffer.from(entry.value);
  }

  /** Taken when a read starts; given back to {@link LocalCache.keep}. */
  stamp(): number {
    return this.#tick;
  }

  /**
   * Keeps what a read that started at `stamp` found, unless the key was invalidated since.
   * @param expiresAt the row's expiry in epoch ms (Infinity for never); null for a row that is not
   *   kept (it has a sliding expiration)
   */
  keep(key: string, value: Buffer, expiresAt: number | null, stamp: number, now: number): void {
    if (!this.#enabled || expiresAt === null || stamp < this.#flushedAt) return;
    const invalidated = this.#invalidatedAt.get(key);
    if (invalidated !== undefined && invalidated > stamp) return;
    const until = Math.min(expiresAt, now + this.#ttlMs);
    if (until <= now) return;
    this.#entries.delete(key);
    this.#entries.set(key, { value: Buffer.from(value), until });
    if (this.#entries.size > this.#maxEntries) this.#entries.delete(this.#entries.keys().next().value!);
  }

  /** Drops `keys` and refuses values of reads that started before now. */
  invalidate(keys: Iterable<string>): void {
    const tick = ++this.#tick;
    for (const key of keys) {
      this.#entries.delete(key);
      this.#invalidatedAt.set(key, tick);
    }
    // The per-key marks only matter to reads in flight; when they pile up, one flush mark replaces them.
    if (this.#invalidatedAt.size > this.#maxEntries) this.flush();
  }

  /** Drops everything and refuses values of reads that started before now. */
  flush(): void {
    this.#flushedAt = ++this.#tick;
    this.#entries.clear();
    this.#invalidatedAt.clear();
  }
}

/** NOTIFY payloads are limited to 8000 bytes; a longer key list becomes "everything". */
const MAX_PAYLOAD = 7900;

/**
 * The invalidation message between stores: the sender's id (a store ignores its own messages, it has
 * already invalidated) and the keys as a JSON array, or `*` for everything.
 */
export function encodeInvalidation(sender: string, keys: readonly string[] | 'all'): string {
  if (keys !== 'all') {
    const payload = `${sender}\n${JSON.stringify(keys)}`;
    if (Buffer.byteLength(payload) <= MAX_PAYLOAD) return payload;
  }
  return `${sender}\n*`;
}

/** Reads a payload of {@link encodeInvalidation}; undefined for anything else on the channel. */
export function decodeInvalidation(payload: string): { sender: string; keys: string[] | 'all' } | undefined {
  const newline = payload.indexOf('\n');
  if (newline < 0) return undefined;
  const sender = payload.slice(0, newline);
  const body = payload.slice(newline + 1);
  if (body === '*') return { sender, keys: 'all' };
  try {
    const keys: unknown = JSON.parse(body);
    return Array.isArray(keys) && keys.every((key) => typeof key === 'string') ? { sender, keys } : undefined;
  } catch {
    return undefined;
  }
}
