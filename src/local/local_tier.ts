import { randomUUID } from 'node:crypto';
import type { Front, Writing } from '../batching/front.js';
import { CALLER_SENDER_PREFIX, decodeInvalidation, encodeInvalidation } from '../notices.js';
import type { Observer } from '../observer.js';
import type { RowWrite, Slide } from '../row.js';
import { HeldBack } from './held_back.js';
import { KeySender } from './key_sender.js';
import { LocalCache } from './local_cache.js';

/** Least time between two invalidation notices (and two touch statements) of one store. */
const SEND_GAP_MS = 2;

/** What the tier needs of its store: no SQL, only these. */
export interface LocalTierPorts {
  /** Sends a notice (a payload of encodeInvalidation) on the table's channel. */
  readonly notify: (payload: string) => Promise<void>;
  /** Slides the rows of `keys` as reads at `at` (epoch ms) would. */
  readonly touch: (keys: readonly string[], at: number) => Promise<void>;
  /** Listens on the table's channel until stopped, reconnecting (`state` says when it listens, or no longer does). */
  readonly listen: (handlers: {
    message(payload: string): void;
    state(listening: boolean): void;
    error(error: unknown): void;
  }) => { stop(): Promise<void> };
  readonly observer: Observer;
  /** Application clock (epoch ms). */
  readonly clock: () => number;
  /** The store's `slidingWriteThreshold`. */
  readonly slidingWriteThreshold: number;
}

/**
 * The in-process tier of one store, and everything around its memory ({@link LocalCache}): listening to
 * the other stores' invalidations, telling them of this store's writes, touching the rows of sliding
 * entries it serves, and the `set`s on their way whose values later reads of their keys answer with.
 * Rows calls it at each step of a read or a write; it sends and listens on its own.
 */
export class LocalTier implements Front {
  readonly #ports: LocalTierPorts;
  readonly #cache: LocalCache;
  /** Tells the in-process tiers of other stores which keys changed. */
  readonly #notices: KeySender;
  /** Sliding rows read from memory, to slide in PostgreSQL as their reads would have. */
  readonly #touches: KeySender;
  /** This store's name on the channel: it skips its own notifications. */
  readonly #sender = randomUUID();
  #listener: { stop(): Promise<void> } | undefined;
  /** This store's `set`s on their way, by key (the latest of each key). */
  readonly #writing = new Map<string, Writing>();
  /** Keys written in callers' transactions by this process, until their commits are heard (or the tier's ttl passes). */
  readonly #heldBack = new HeldBack();
  readonly #ttlMs: number;

  /** The table's trigger notifies every change (`localCache.notifyTrigger`): this store sends no notices of its own. */
  readonly #tableNotifies: boolean;

  constructor(
    ports: LocalTierPorts,
    options: { readonly maxEntries: number; readonly ttlMs: number; readonly maxBytes: number; readonly notifyTrigger: boolean },
  ) {
    this.#ports = ports;
    this.#tableNotifies = options.notifyTrigger;
    this.#ttlMs = options.ttlMs;
    const onError = (error: unknown) => ports.observer.error(error);
    this.#notices = new KeySender((keys) => ports.notify(encodeInvalidation(this.#sender, keys)), SEND_GAP_MS, onError);
    this.#touches = new KeySender((keys) => this.#touch(keys), SEND_GAP_MS, onError);
    this.#cache = new LocalCache(options.maxEntries, options.ttlMs, options.maxBytes, ports.slidingWriteThreshold, (key) => this.#touches.tell([key]));
  }

  /** Starts listening for other stores' invalidations (until it listens, the tier serves nothing). */
  start(): void {
    if (this.#listener) return;
    const cache = this.#cache;
    this.#listener = this.#ports.listen({
      message: (payload) => {
        // This store's own notices come back too: told apart before their key list is parsed.
        if (payload.startsWith(`${this.#sender}\n`)) return;
        const message = decodeInvalidation(payload);
        if (!message) return;
        if (message.keys === 'all') cache.flush();
        else cache.heard(message.keys);
        // Any notice of a caller's transaction means it committed (they are delivered at commit only).
        if (message.sender.startsWith(CALLER_SENDER_PREFIX)) this.#heldBack.heard(message.sender);
      },
      state: (listening) => cache.setEnabled(listening),
      error: (error) => this.#ports.observer.error(error),
    });
  }

  /** Stops listening and waits for the notices and touches already asked for. */
  async close(): Promise<void> {
    await this.#listener?.stop();
    await Promise.all([this.#notices.settled(), this.#touches.settled()]);
  }

  /** Entries held. */
  get size(): number {
    return this.#cache.size;
  }

  /** The value held for `id` as the caller wants it (text: shared string; bytes: a copy), or undefined. */
  held(id: string, text: boolean, now: number): string | Buffer | undefined {
    if (!this.#heldBack.empty && this.#heldBack.has(id, now)) return undefined;
    return text ? this.#cache.getText(id, now) : this.#cache.get(id, now);
  }

  /** Taken when a read starts, for {@link LocalTier.keep}. */
  stamp(): number {
    return this.#cache.stamp();
  }

  /** Keeps what a read begun at `stamp` found (see {@link LocalCache.keep}). */
  keep(id: string, value: Buffer | string, expiresAt: number | null, stamp: number, now: number, slide?: Slide): void {
    if (!this.#heldBack.empty && this.#heldBack.has(id, now)) return;
    this.#cache.keep(id, value, expiresAt, stamp, now, slide);
  }

  /**
   * Rows were written (or may have been) by this store: dropped here, and the other stores told (after
   * the writes landed: callers call this then).
   */
  written(ids: readonly string[] | 'all'): void {
    if (ids === 'all') {
      this.#cache.flush();
      if (!this.#tableNotifies) this.#notices.tellAll();
      return;
    }
    this.#cache.invalidate(ids);
    if (!this.#tableNotifies) this.#notices.tell(ids);
  }

  /**
   * A write of `ids` by the caller's transaction `sender` (see Rows.noticeOf): dropped here and held back
   * until that transaction's notice is heard. Its notice is sent with the table's trigger on too: the
   * trigger's notices say nothing of which transaction wrote.
   */
  holdBack(ids: readonly string[] | 'all', sender: string): void {
    const now = this.#ports.clock();
    if (ids === 'all') this.#cache.flush();
    else this.#cache.invalidate(ids);
    this.#heldBack.hold(sender, ids, now + this.#ttlMs, now);
  }

  /** A `set` of `row` was issued, settling with `done`: later reads of its key answer with its value. */
  setIssued(row: RowWrite, done: Promise<void>): void {
    const writing: Writing = { row, done };
    this.#writing.set(row.id, writing);
    const forget = () => {
      if (this.#writing.get(row.id) === writing) this.#writing.delete(row.id);
    };
    done.then(forget, forget);
  }

  /** The `set` of `id` issued last and still on its way, if any (taken when a read is issued). */
  setOnItsWay(id: string): Writing | undefined {
    return this.#writing.get(id);
  }

  /**
   * Another write of `ids` (or, without ids, of any key) was issued: a read issued after it must not be
   * answered with the value of a `set` issued before it.
   */
  otherWrite(ids?: Iterable<string>): void {
    if (this.#writing.size === 0) return;
    if (!ids) this.#writing.clear();
    else for (const id of ids) this.#writing.delete(id);
  }

  /**
   * A `set` starts (its statement is about to be sent): the stamp {@link LocalTier.setEnded} checks other
   * stores' writes heard meanwhile against. Nothing is dropped here: a read issued after the set never
   * asks memory before it lands (it answers with the set's value, see {@link LocalTier.setOnItsWay}, or
   * waits for it in issue order), and reads begun before it are refused when it ends.
   */
  setStarting(): number {
    return this.#cache.stamp();
  }

  /**
   * The `set` of `row` begun at `stamp` ended: landed, its value is kept (written through) and the other
   * stores are told; failed (it may or may not have landed), the key is dropped and they are told too.
   */
  setEnded(row: RowWrite, stamp: number, landed: boolean, value: Buffer | string, expiresAt: number, slide: Slide | undefined): void {
    if (!landed) {
      this.written([row.id]);
      return;
    }
    this.#cache.replace(row.id, value, expiresAt, stamp, this.#ports.clock(), slide);
    if (!this.#tableNotifies) this.#notices.tell([row.id]);
  }

  /** Slides the rows of sliding entries served from memory (one statement for the keys gathered). */
  async #touch(keys: readonly string[] | 'all'): Promise<void> {
    if (keys === 'all') return; // never asked for: touches are per key
    const sentAt = this.#ports.clock();
    try {
      await this.#ports.touch(keys, sentAt);
      this.#cache.touched(keys, sentAt, true);
    } catch (error) {
      this.#cache.touched(keys, sentAt, false);
      throw error;
    }
  }
}
