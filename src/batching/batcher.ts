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
 */
export interface BatcherOptions {
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
}

/**
 * Handles one batch: resolves to one result per item, in order. A result that is an `Error` instance
 * rejects that caller only.
 */
export type DispatchFn<I, R> = (items: I[]) => Promise<Array<R | Error>>;

interface Batch<I, R> {
  items: I[];
  callbacks: Array<{ resolve: (value: R) => void; reject: (error: unknown) => void }>;
}

export class Batcher<I, R> {
  readonly #dispatch: DispatchFn<I, R>;
  readonly #options: BatcherOptions;
  /** The batch new calls join. */
  #open: Batch<I, R> | undefined;
  /** Full batches waiting for a free slot, oldest first. */
  readonly #full: Array<Batch<I, R>> = [];
  #inFlight = 0;
  #scheduled = false;

  constructor(dispatch: DispatchFn<I, R>, options: BatcherOptions) {
    this.#dispatch = dispatch;
    this.#options = options;
  }

  /** Queues `item` and resolves with its own result. */
  load(item: I): Promise<R> {
    const batch = (this.#open ??= { items: [], callbacks: [] });
    batch.items.push(item);
    const promise = new Promise<R>((resolve, reject) => batch.callbacks.push({ resolve, reject }));
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

  /** Starts waiting batches while slots are free: full ones first, then the open one. */
  #pump(): void {
    while (this.#inFlight < this.#options.maxInFlight) {
      const batch = this.#full.shift() ?? this.#open;
      if (!batch) return;
      if (batch === this.#open) this.#open = undefined;
      const split = this.#options.splitWhenIdle ?? 0;
      if (split > 0 && this.#inFlight === 0 && this.#options.maxInFlight >= 2 && batch.items.length >= split) {
        const half = Math.ceil(batch.items.length / 2);
        this.#full.unshift({ items: batch.items.splice(half), callbacks: batch.callbacks.splice(half) });
      }
      this.#run(batch);
    }
  }

  #run(batch: Batch<I, R>): void {
    this.#inFlight++;
    let pending: Promise<Array<R | Error>>;
    try {
      pending = this.#dispatch(batch.items);
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
          batch.callbacks.forEach((callback, i) => {
            const result = results[i] as R | Error;
            if (result instanceof Error) callback.reject(result);
            else callback.resolve(result);
          });
        },
        (error: unknown) => {
          for (const callback of batch.callbacks) callback.reject(error);
        },
      )
      .finally(() => {
        this.#inFlight--;
        if (this.#open || this.#full.length > 0) this.#schedule();
      });
  }
}
