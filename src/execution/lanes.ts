import type pg from 'pg';
import type { Connections, Lease } from './connections.js';
import type { CachePostgresError } from '../errors.js';
import { send, type Sendable } from './send.js';

/**
 * A batch (or pipeline) that has not answered after this long is late: later batches stop waiting
 * behind it and go ahead on other connections (Batcher's `lateAfterMs`, and the executor's lanes).
 * Far above a batch's usual time (well under 5 ms on loopback), so under normal load nothing changes;
 * one row lock held elsewhere delays calls on other keys by about this much, not by the lock's time.
 */
export const LATE_AFTER_MS = 30;

/** A pipeline's outcome: each part's rows or its typed error (a QueryError, or StoreClosedError after disconnect()). */
export type Settled = Array<unknown[] | CachePostgresError>;

/**
 * The connections pipelines share. The first pipeline checks one out (a lane); pipelines issued
 * while any is in flight are written behind it on the same connection, and the last one to finish
 * returns it. So two batches in flight overlap (PostgreSQL runs one while Node handles the other's
 * rows) on a single backend, in the order they were issued. Two exceptions:
 * - when other work waits for a pooled connection, new pipelines wait for the lane to drain and
 *   queue behind that work, so a pool of one is never monopolized;
 * - when the lane's oldest pipeline is late ({@link LATE_AFTER_MS}: a row lock, a slow statement),
 *   new pipelines open another lane on another connection instead of queueing behind it; the late
 *   lane returns its connection once its own pipelines finish.
 */
export class Lanes {
  readonly #pool: pg.Pool;
  readonly #connections: Connections;
  readonly #answerMs: number;
  #current: Lane | undefined;

  constructor(pool: pg.Pool, connections: Connections, answerMs: number) {
    this.#pool = pool;
    this.#connections = connections;
    this.#answerMs = answerMs;
  }

  /**
   * @param alone on a connection of its own that no later pipeline joins: a large read, which would hold
   *   every pipeline written behind it for its whole round trip
   */
  async run(labels: string[], configs: Sendable[], alone = false): Promise<Settled> {
    if (alone) return new Lane(this.#connections.acquire(labels[0] ?? 'pipeline'), this.#answerMs, () => {}).run(labels, configs);
    let lane = this.#current;
    if (lane?.late()) lane = undefined;
    // Only once connected: until then the pool's waiting count includes the lane's own checkout.
    while (lane?.connected && this.#pool.waitingCount > 0) {
      await lane.drained();
      lane = this.#current;
      if (lane?.late()) lane = undefined;
    }
    if (!lane) {
      const fresh = new Lane(this.#connections.acquire(labels[0] ?? 'pipeline'), this.#answerMs, () => {
        if (this.#current === fresh) this.#current = undefined;
      });
      lane = this.#current = fresh;
    }
    return lane.run(labels, configs);
  }
}

/** One connection's pipelines: see {@link Lanes}. */
class Lane {
  readonly #lease: Promise<Lease>;
  readonly #answerMs: number;
  readonly #onDone: () => void;
  connected = false;
  /** Start times of the pipelines in flight, oldest first (they finish in order). */
  readonly #started: number[] = [];
  #broken: unknown;
  #done = false;
  readonly #waiters: Array<() => void> = [];

  constructor(lease: Promise<Lease>, answerMs: number, onDone: () => void) {
    this.#lease = lease;
    this.#answerMs = answerMs;
    this.#onDone = onDone;
    lease.then(
      () => void (this.connected = true),
      () => {},
    );
  }

  /** True when its oldest pipeline has been out longer than {@link LATE_AFTER_MS}. */
  late(): boolean {
    const oldest = this.#started[0];
    return oldest !== undefined && performance.now() - oldest > LATE_AFTER_MS;
  }

  /** Resolves when this lane has returned its connection. */
  drained(): Promise<void> {
    return this.#done ? Promise.resolve() : new Promise((resolve) => this.#waiters.push(resolve));
  }

  async run(labels: string[], configs: Sendable[]): Promise<Settled> {
    this.#started.push(performance.now());
    let lease: Lease;
    try {
      lease = await this.#lease;
    } catch (error) {
      this.#finish(error);
      return configs.map(() => error as CachePostgresError);
    }
    const client = lease.client;
    // One socket write for the whole pipeline, not one per statement: on loopback each write costs
    // about as much CPU as a small statement. node-postgres corks around each statement; corks nest.
    const stream = (client as { connection?: { stream?: { cork?: () => void; uncork?: () => void } } }).connection?.stream;
    stream?.cork?.();
    let pending: Array<Promise<unknown[]>>;
    try {
      pending = configs.map((config) => send(client, config));
    } finally {
      stream?.uncork?.();
    }
    // allSettled never rejects: a watchdog that closes the connection fails the parts, which settles it.
    const outcomes = await lease.watch(this.#answerMs, Promise.allSettled(pending));
    const failed = outcomes.find((outcome) => outcome.status === 'rejected');
    const settled = outcomes.map((outcome, i) =>
      outcome.status === 'fulfilled' ? outcome.value : lease.failure(labels[i] ?? 'pipeline', outcome.reason),
    );
    this.#finish(failed?.reason, lease);
    return settled;
  }

  /** A pipeline finished; the last one out returns the connection (destroyed after any error, as pool.query does). */
  #finish(error: unknown, lease?: Lease): void {
    this.#started.shift();
    this.#broken ??= error;
    if (this.#started.length > 0) return;
    this.#done = true;
    this.#onDone();
    if (lease) lease.release(this.#broken);
    for (const wake of this.#waiters.splice(0)) wake();
  }
}
