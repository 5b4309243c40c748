import { currentCall, recording, type Traced, traceBatch } from '../tracing.js';

/**
 * A DataLoader-style auto-batcher: every `load(item)` made while a batch is open joins it, and the
 * batch is handed to `dispatch` once. Each caller gets its own result or its own error; a batch that
 * fails as a whole rejects every caller in it, so none hangs.
 *
 * When a batch runs: `Promise.resolve().then(() => process.nextTick(run))` queues the dispatch
 * behind every promise continuation already queued in this tick (the `.then` chains of callers
 * included) and still ahead of any I/O. Calls made from callbacks of the same tick therefore share
 * one statement, and a lone call waits for no timer. DataLoader documents the same trick.
 *
 * How many batches run at once: at most `maxInFlight`. A batch that cannot start waits, open, and
 * collects every call made meanwhile; it starts when a running batch completes (again after that
 * tick, so the callers the completion released can join it). Without this limit, callers released
 * by different batches at different times form ever smaller batches that never merge again: under a
 * mixed load batching degenerates to one statement per call.
 *
 * A late batch (one row lock held elsewhere, a slow statement): after `lateAfterMs` a batch in flight
 * stops counting against `maxInFlight`, so the calls behind it go ahead on other connections instead
 * of waiting for it. Its keys (`keyOf`) stay pinned until it completes: later calls on those keys wait
 * for it, in order, so a call never overtakes an earlier call on the same key.
 */
export interface BatcherOptions<I = never> {
  /** What its batches are called in traces (`cache-postgres batch <name>`). */
  name?: string;
  /** Largest batch; a full batch is closed and a new one opened. */
  maxBatchSize: number;
  /** Most batches dispatched and not yet completed. */
  maxInFlight: number;
  /**
   * With `maxInFlight` 2 or more: a batch of at least this many items that starts while nothing is in
   * flight is cut in two halves, dispatched one after the other. The halves then stay apart (each
   * half's callers come back together and form the next batch of their own), so one half is being
   * answered while the other is being handled. 0 never splits.
   */
  splitWhenIdle?: number;
  /** After this long in flight, a batch no longer holds back the next ones (0 or absent: never). */
  lateAfterMs?: number;
  /** The key an item touches: items of a late batch's keys wait for it. Without it, nothing is pinned. */
  keyOf?: (item: I) => string;
  /**
   * Whether an item reads or writes its key. With `keyOf`, the batcher then tracks the keys of the
   * items it holds (loaded, not settled): see {@link Batcher.whenIdle}.
   */
  kindOf?: (item: I) => 'read' | 'write';
}

/** Items held on one key: how many, how many of them write, and who waits for none to be left. */
interface Busy {
  all: number;
  writes: number;
  idle: Array<() => void> | undefined;
}

/**
 * Handles one batch: resolves to one result per item, in order. A result that is an `Error` instance
 * rejects that caller only. A result that is a promise settles its caller when it settles, and the
 * batch counts as in flight (late, pinning its keys) until it does: work that finishes apart from the
 * rest of its batch, such as a write retried on a connection of its own.
 */
export type DispatchFn<I, R> = (items: I[]) => Promise<Array<R | Error | Promise<R>>>;

interface Batch<I, R> {
  items: I[];
  /** Each item's caller, with the traced call it was loaded under (see tracing.ts). */
  callbacks: Array<{ resolve: (value: R) => void; reject: (error: unknown) => void; call: Traced | undefined }>;
}

/** A dispatched batch: late once `lateAfterMs` passed, its keys then pinned. */
interface Running<I> {
  readonly items: I[];
  /** performance.now() past which it is late. */
  readonly lateAt: number;
  late: boolean;
  keys: string[] | undefined;
}

export class Batcher<I, R> {
  readonly #dispatch: DispatchFn<I, R>;
  readonly #options: BatcherOptions<I>;
  /** The batch new calls join. */
  #open: Batch<I, R> | undefined;
  /** Full batches waiting for a free slot, oldest first. */
  readonly #full: Array<Batch<I, R>> = [];
  /** Batches in flight that are not late. */
  #inFlight = 0;
  #scheduled = false;
  /** Keys of late batches (with a count: two late batches can share a key). */
  readonly #pinned = new Map<string, number>();
  /** Items on pinned keys, in call order, waiting for their late batch. */
  #held: Batch<I, R> = { items: [], callbacks: [] };
  /** Batches in flight that are not late yet, watched by one interval (not a timer per batch). */
  readonly #watched = new Set<Running<I>>();
  #lateCheck: NodeJS.Timeout | undefined;
  /** Keys of the items held (with `keyOf` and `kindOf`). */
  readonly #busy = new Map<string, Busy>();
  #emptied: Array<() => void> | undefined;

  constructor(dispatch: DispatchFn<I, R>, options: BatcherOptions<I>) {
    this.#dispatch = dispatch;
    this.#options = options;
  }

  /** Queues `item` and resolves with its own result. */
  load(item: I): Promise<R> {
    const { keyOf, kindOf } = this.#options;
    if (keyOf && kindOf) {
      const key = keyOf(item);
      let busy = this.#busy.get(key);
      if (!busy) this.#busy.set(key, (busy = { all: 0, writes: 0, idle: undefined }));
      busy.all++;
      if (kindOf(item) === 'write') busy.writes++;
    }
    const batch = (this.#open ??= { items: [], callbacks: [] });
    batch.items.push(item);
    const call = currentCall();
    const promise = new Promise<R>((resolve, reject) => batch.callbacks.push({ resolve, reject, call }));
    if (batch.items.length >= this.#options.maxBatchSize) {
      this.#open = undefined;
      this.#full.push(batch);
    }
    this.#schedule();
    return promise;
  }

  #schedule(): void {
    if (this.#scheduled) return;
    this.#scheduled = true;
    Promise.resolve().then(() =>
      process.nextTick(() => {
        this.#scheduled = false;
        this.#pump();
      }),
    );
  }

  /** Starts waiting batches while slots are free: held-back items of unpinned keys and full ones first, then the open one. */
  #pump(): void {
    while (this.#inFlight < this.#options.maxInFlight) {
      let batch = this.#full.shift() ?? this.#open;
      if (!batch) return;
      if (batch === this.#open) this.#open = undefined;
      if (this.#pinned.size > 0) batch = this.#holdPinned(batch);
      if (batch.items.length === 0) continue;
      const split = this.#options.splitWhenIdle ?? 0;
      if (split > 0 && this.#inFlight === 0 && this.#options.maxInFlight >= 2 && batch.items.length >= split) {
        const half = Math.ceil(batch.items.length / 2);
        this.#full.unshift({ items: batch.items.splice(half), callbacks: batch.callbacks.splice(half) });
      }
      this.#run(batch);
    }
  }

  /** Moves the items of pinned keys to the held batch (after those already held); returns the rest. */
  #holdPinned(batch: Batch<I, R>): Batch<I, R> {
    const keyOf = this.#options.keyOf!;
    const rest: Batch<I, R> = { items: [], callbacks: [] };
    batch.items.forEach((item, i) => {
      const target = this.#pinned.has(keyOf(item)) ? this.#held : rest;
      target.items.push(item);
      target.callbacks.push(batch.callbacks[i]!);
    });
    return rest;
  }

  #run(batch: Batch<I, R>): void {
    this.#inFlight++;
    const lateAfter = this.#options.lateAfterMs ?? 0;
    const running: Running<I> = { items: batch.items, lateAt: performance.now() + lateAfter, late: false, keys: undefined };
    if (lateAfter > 0) {
      this.#watched.add(running);
      // Checked at a third of the delay: a batch is found late between lateAfterMs and 4/3 of it.
      this.#lateCheck ??= setInterval(this.#findLate, Math.max(1, lateAfter / 3)).unref();
    }
    let pending: Promise<Array<R | Error | Promise<R>>>;
    try {
      pending = recording() ? traceBatch(this.#options.name ?? 'batch', batch.callbacks, () => this.#dispatch(batch.items)) : this.#dispatch(batch.items);
    } catch (error) {
      pending = Promise.reject(error);
    }
    pending
      .then(
        (results) => {
          if (!Array.isArray(results) || results.length !== batch.items.length) {
            const error = new TypeError(
              `Batch dispatch must resolve to ${batch.items.length} results (one per item), got ${Array.isArray(results) ? results.length : typeof results}.`,
            );
            for (const callback of batch.callbacks) callback.reject(error);
            return;
          }
          const lingering: Array<Promise<R>> = [];
          batch.callbacks.forEach((callback, i) => {
            const result = results[i] as R | Error | Promise<R>;
            if (result instanceof Error) callback.reject(result);
            else {
              if (result instanceof Promise) lingering.push(result);
              callback.resolve(result as R);
            }
          });
          return lingering.length > 0 ? Promise.allSettled(lingering).then(() => undefined) : undefined;
        },
        (error: unknown) => {
          for (const callback of batch.callbacks) callback.reject(error);
        },
      )
      .finally(() => {
        this.#untrack(batch.items);
        this.#watched.delete(running);
        if (running.late) this.#unpin(running.keys ?? []);
        else this.#inFlight--;
        if (this.#open || this.#full.length > 0) this.#schedule();
      });
  }

  /**
   * Undefined when no item held on `key` conflicts with a `kind` call (a read conflicts with writes, a
   * write with everything); else a promise that resolves once no item is held on `key`.
   */
  whenIdle(key: string, kind: 'read' | 'write'): Promise<void> | undefined {
    const busy = this.#busy.get(key);
    if (!busy || (kind === 'read' && busy.writes === 0)) return undefined;
    return new Promise((resolve) => (busy.idle ??= []).push(resolve));
  }

  /** Undefined when no item is held; else a promise that resolves once none is. */
  whenEmpty(): Promise<void> | undefined {
    if (this.#busy.size === 0) return undefined;
    return new Promise((resolve) => (this.#emptied ??= []).push(resolve));
  }

  #untrack(items: I[]): void {
    const { keyOf, kindOf } = this.#options;
    if (!keyOf || !kindOf) return;
    for (const item of items) {
      const key = keyOf(item);
      const busy = this.#busy.get(key);
      if (!busy) continue;
      busy.all--;
      if (kindOf(item) === 'write') busy.writes--;
      if (busy.all > 0) continue;
      this.#busy.delete(key);
      for (const wake of busy.idle ?? []) wake();
    }
    if (this.#busy.size === 0 && this.#emptied) {
      const emptied = this.#emptied;
      this.#emptied = undefined;
      for (const wake of emptied) wake();
    }
  }

  /** Marks the batches past `lateAfterMs`; stops when none is in flight. */
  readonly #findLate = (): void => {
    const now = performance.now();
    for (const running of this.#watched) if (running.lateAt <= now) this.#late(running);
    if (this.#watched.size === 0) {
      clearInterval(this.#lateCheck);
      this.#lateCheck = undefined;
    }
  };

  /** A batch passed `lateAfterMs`: it frees its slot and pins its keys until it completes. */
  #late(running: Running<I>): void {
    this.#watched.delete(running);
    running.late = true;
    this.#inFlight--;
    const keyOf = this.#options.keyOf;
    if (keyOf) {
      running.keys = [...new Set(running.items.map(keyOf))];
      for (const key of running.keys) this.#pinned.set(key, (this.#pinned.get(key) ?? 0) + 1);
    }
    if (this.#open || this.#full.length > 0) this.#schedule();
  }

  /** A late batch completed: its keys are free, and the calls held for them go first. */
  #unpin(keys: string[]): void {
    for (const key of keys) {
      const count = (this.#pinned.get(key) ?? 1) - 1;
      if (count > 0) this.#pinned.set(key, count);
      else this.#pinned.delete(key);
    }
    const held = this.#held;
    if (held.items.length === 0) return;
    this.#held = { items: [], callbacks: [] };
    // Still in call order, ahead of anything newer; a key still pinned is held again by #pump.
    for (let at = held.items.length; at > 0; at -= this.#options.maxBatchSize) {
      const from = Math.max(0, at - this.#options.maxBatchSize);
      this.#full.unshift({ items: held.items.slice(from, at), callbacks: held.callbacks.slice(from, at) });
    }
    this.#schedule();
  }
}
