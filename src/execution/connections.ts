import pg from 'pg';
import { type CachePostgresError, ConnectionError, queryError, StatementTimeoutError, StoreClosedError } from '../errors.js';

/**
 * After `statementTimeout`, how much longer a statement's answer may take before its connection is
 * closed: PostgreSQL cancels the statement itself at `statementTimeout` (pools the store creates), and
 * its answer needs a moment to arrive. Only a server that stopped answering reaches this.
 */
export const NO_ANSWER_GRACE_MS = 2000;

/** How long `close()` lets calls in progress finish before it closes their connections. */
export const DRAIN_MS = 5000;

/** What `close()` gives connections it destroyed, so the pool can end without waiting for them. */
const AFTER_DESTROY_MS = 1000;

/**
 * How often the deadlines (connectTimeout, the statement watchdog) are checked: one unref'd interval
 * while connections are waited for or in use, instead of a timer per call (their precision).
 */
const SWEEP_MS = 50;

interface Waiter {
  readonly label: string;
  /** performance.now() past which the wait fails. */
  readonly until: number;
  fail(error: CachePostgresError): void;
}

/**
 * Every connection the store uses passes through here, so every path gets the same handling:
 * - a bounded wait for a connection (`connectTimeout`), with a message that tells a pool held by
 *   slow work (or by a factory calling the store) from a server that does not answer;
 * - an `'error'` listener while the connection is checked out: a connection lost then (server
 *   restart, `pg_terminate_backend`, reset) fails the calls on it instead of crashing the process;
 * - a watchdog per piece of work: no answer within its time, and the connection is closed;
 * - typed errors ({@link queryError}) that say why a connection was closed by us;
 * - `close()`: waiting callers are refused, work in progress gets {@link DRAIN_MS}, then its
 *   connections are closed, so every call has settled when it resolves.
 */
export class Connections {
  readonly #pool: pg.Pool;
  readonly #table: string;
  readonly #connectTimeoutMs: number;
  readonly #waiting = new Set<Waiter>();
  readonly #leases = new Set<Lease>();
  #released: (() => void) | undefined;
  #closed = false;
  #sweeper: NodeJS.Timeout | undefined;

  constructor(pool: pg.Pool, table: string, connectTimeoutMs: number) {
    this.#pool = pool;
    this.#table = table;
    this.#connectTimeoutMs = connectTimeoutMs;
    // Once per pool, however many stores share it, and left on it: it only ever catches an error that
    // would otherwise have crashed the process.
    if (!pool.listeners('connect').includes(guardHandOver)) pool.on('connect', guardHandOver);
  }

  /** `schema.table`, for error messages. */
  get table(): string {
    return this.#table;
  }

  /** True once {@link Connections.close} was called. */
  get closed(): boolean {
    return this.#closed;
  }

  /**
   * A connection of the pool, for `label` (the statement or operation, named in errors).
   * @throws {ConnectionError} when none is had within `connectTimeout`, or connecting fails
   * @throws {StoreClosedError} after close()
   */
  acquire(label: string): Promise<Lease> {
    if (this.#closed) return Promise.reject(new StoreClosedError(label, 'the store was disconnected.'));
    this.#sweeper ??= setInterval(this.#sweep, SWEEP_MS).unref();
    return new Promise<Lease>((resolve, reject) => {
      let done = false;
      const waiter: Waiter = {
        label,
        until: performance.now() + this.#connectTimeoutMs,
        fail: (error) => {
          if (done) return;
          done = true;
          this.#waiting.delete(waiter);
          this.#released?.();
          reject(error);
        },
      };
      this.#waiting.add(waiter);
      this.#pool.connect().then(
        (client) => {
          if (done) {
            client.release(); // the caller gave up (timeout or close): the pool gets it back
            return;
          }
          done = true;
          this.#waiting.delete(waiter);
          const lease = new Lease(client, this);
          this.#leases.add(lease);
          resolve(lease);
        },
        (error: unknown) => waiter.fail(queryError(label, this.#table, error) as CachePostgresError),
      );
    });
  }

  /** Fails the waits past connectTimeout and closes the connections whose answer is overdue; stops when idle. */
  readonly #sweep = (): void => {
    const now = performance.now();
    for (const waiter of this.#waiting) {
      if (waiter.until <= now) waiter.fail(new ConnectionError(waiter.label, this.#table, undefined, this.#noConnection()));
    }
    for (const lease of this.#leases) lease.expire(now);
    if (this.#waiting.size === 0 && this.#leases.size === 0) {
      clearInterval(this.#sweeper);
      this.#sweeper = undefined;
    }
  };

  /** @internal Called by {@link Lease.release}. */
  returned(lease: Lease): void {
    this.#leases.delete(lease);
    this.#released?.();
  }

  /**
   * Refuses new callers; lets the calls in progress (waiting for a connection, or using one) finish
   * for up to `drainMs`; then refuses those still waiting and closes the connections still in use
   * (their calls fail with StoreClosedError). Resolves once every connection has come back, or a
   * second after closing them.
   */
  async close(drainMs = DRAIN_MS): Promise<void> {
    this.#closed = true;
    await this.#allReturned(drainMs);
    for (const waiter of [...this.#waiting]) waiter.fail(new StoreClosedError('connect', 'the store was disconnected while this call waited for a connection.'));
    // Waits for the cancels to be delivered: a statement still waiting for a lock must not land after
    // disconnect() resolved.
    await Promise.all([...this.#leases].map((lease) => lease.destroy('closed')));
    await this.#allReturned(AFTER_DESTROY_MS);
  }

  /** Waits until no call waits for or uses a connection, or `ms` passed. */
  async #allReturned(ms: number): Promise<void> {
    const deadline = performance.now() + ms;
    while (this.#leases.size > 0 || this.#waiting.size > 0) {
      const left = deadline - performance.now();
      if (left <= 0) return;
      let timer: NodeJS.Timeout | undefined;
      await new Promise<void>((resolve) => {
        this.#released = resolve;
        timer = setTimeout(resolve, left);
      });
      clearTimeout(timer);
      this.#released = undefined;
    }
  }

  /** Why no connection came: a full pool, or a server that did not complete the connection. */
  #noConnection(): string {
    const pool = this.#pool;
    const max = pool.options?.max ?? 10;
    if (pool.totalCount >= max && pool.idleCount === 0) {
      return (
        `no free connection within ${this.#connectTimeoutMs} ms: all ${max} connection${max === 1 ? '' : 's'} of the pool are in use` +
        `${pool.waitingCount > 0 ? ` and ${pool.waitingCount} calls wait` : ''}. A getOrSet factory or a withLock function that calls the ` +
        'store holds a connection while it needs another: raise poolMax, or call the store outside it (connectTimeout).'
      );
    }
    return `could not connect within ${this.#connectTimeoutMs} ms: the server did not complete the connection (connectTimeout).`;
  }
}

/** Errors a connection raised while the pool handed it over, before a Lease listened (see {@link guardHandOver}). */
const lostInHandOver = new WeakMap<pg.PoolClient, Error>();

/**
 * pg-pool removes its own `'error'` listener from a connection before it hands it over, and the
 * caller's promise resolves a microtask later. A new connection is handed over from inside the socket
 * callback that read its ReadyForQuery: when the same read also holds a FATAL message (the backend
 * terminated right after startup), the connection emits `'error'` with no listener, which crashes the
 * process. This listener (added on pg-pool's `'connect'`, which comes first) covers that gap and is
 * gone at the next microtask, before any other I/O: the Lease then learns of what it caught.
 */
function guardHandOver(client: pg.PoolClient): void {
  const guard = (error: Error) => lostInHandOver.set(client, error);
  client.on('error', guard);
  queueMicrotask(() => client.removeListener('error', guard));
}

/** Why the store itself closed a connection: its answer did not come in time, or disconnect() cut it. */
type Cut = { kind: 'timeout'; ms: number } | { kind: 'closed' };

/** A connection checked out of the pool; give it back with {@link Lease.release}. */
export class Lease {
  readonly client: pg.PoolClient;
  readonly #owner: Connections;
  /** The connection failed (an `'error'` event): it is not returned to the pool. */
  #lost: Error | undefined;
  #cut: Cut | undefined;
  #released = false;
  /** Deadlines of the work in flight on this connection (see {@link Lease.watch}), oldest first. */
  readonly #watched: Array<{ until: number; ms: number }> = [];
  readonly #onError = (error: Error) => {
    this.#lost ??= error;
  };

  constructor(client: pg.PoolClient, owner: Connections) {
    this.client = client;
    this.#owner = owner;
    client.on('error', this.#onError);
    this.#lost = lostInHandOver.get(client);
  }

  /**
   * `work` (statements sent on this connection), watched: when it has not settled within `timeoutMs`,
   * the owner's sweep cancels it and closes the connection, which fails it. Infinity: no limit.
   */
  watch<T>(timeoutMs: number, work: Promise<T>): Promise<T> {
    if (!Number.isFinite(timeoutMs)) return work;
    const entry = { until: performance.now() + timeoutMs, ms: timeoutMs };
    this.#watched.push(entry);
    return work.finally(() => this.#watched.splice(this.#watched.indexOf(entry), 1));
  }

  /** Called by the owner's sweep: closes the connection when its oldest watched work is overdue. */
  expire(now: number): void {
    const oldest = this.#watched[0];
    if (oldest && oldest.until <= now && !this.#cut) void this.destroy({ kind: 'timeout', ms: oldest.ms });
  }

  /** The typed error for `error` of statement `label` on this connection (saying why the store closed it, if it did). */
  failure(label: string, error: unknown): CachePostgresError {
    const table = this.#owner.table;
    const cut = this.#cut;
    if (cut?.kind === 'timeout') {
      return new StatementTimeoutError(label, table, error, `no answer within ${cut.ms} ms (statementTimeout plus a grace period); the connection was closed.`);
    }
    if (cut?.kind === 'closed') return new StoreClosedError(label, 'disconnect() closed the connection while this statement ran.');
    return queryError(label, table, error);
  }

  /**
   * Cancels the statement running on the connection (PostgreSQL rolls it back, so a write cut here
   * never lands later) and closes the connection now: every statement on it fails, and it is not
   * returned to the pool.
   */
  destroy(cut: Cut | 'closed'): Promise<void> {
    this.#cut ??= cut === 'closed' ? { kind: 'closed' } : cut;
    this.#lost ??= new Error('closed by cache-postgres');
    const cancelled = cancelRunning(this.client);
    const stream = (this.client as { connection?: { stream?: { destroy?: () => void } } }).connection?.stream;
    if (stream?.destroy) stream.destroy();
    else void this.client.end().catch(() => {});
    return cancelled;
  }

  /**
   * Gives the connection back: to the pool when it is sound, destroyed when it failed, was closed,
   * or `error` says a statement on it failed (as pool.query does). Idempotent.
   */
  release(error?: unknown): void {
    if (this.#released) return;
    this.#released = true;
    this.client.removeListener('error', this.#onError);
    // pg-pool destroys a client released with a truthy argument.
    const broken = this.#lost ?? (error ? (error as Error) : undefined);
    if (broken) this.client.on('error', () => {}); // late socket errors of a destroyed connection
    this.client.release(broken);
    this.#owner.returned(this);
  }
}

/** How long a cancel request may take before its socket is dropped (a server that does not answer). */
const CANCEL_MS = 2000;

/**
 * Asks the server to cancel what `client`'s backend runs, as PostgreSQL's protocol does it: a
 * CancelRequest with the backend's key on a connection of its own. A closed socket alone does not stop
 * a statement waiting for a lock, which would otherwise run on (and write) once the lock goes.
 * Resolves once the server has taken the request (it then closes that connection), or after
 * {@link CANCEL_MS} without an answer; best effort, it never rejects.
 */
function cancelRunning(client: pg.PoolClient): Promise<void> {
  const { processID, secretKey, host, port } = client as unknown as { processID?: number; secretKey?: number; host?: string; port?: number };
  if (processID === undefined || secretKey === undefined || port === undefined) return Promise.resolve();
  const connection = new pg.Connection();
  type Socket = { setTimeout(ms: number, fn: () => void): void; destroy(): void; unref?(): void; once(event: 'close', fn: () => void): void };
  const socket = (connection as unknown as { stream: Socket }).stream;
  connection.on('error', () => {}); // nothing to report: the statement is cut either way
  socket.unref?.();
  socket.setTimeout(CANCEL_MS, () => socket.destroy());
  // The server closes the connection once it has signalled the backend.
  const delivered = new Promise<void>((resolve) => socket.once('close', resolve));
  connection.once('connect', () => (connection as unknown as { cancel(pid: number, key: number): void }).cancel(processID, secretKey));
  const unixSocket = host?.startsWith('/');
  (connection as unknown as { connect(portOrPath: number | string, host?: string): void }).connect(
    unixSocket ? `${host}/.s.PGSQL.${port}` : port,
    unixSocket ? undefined : host,
  );
  return delivered;
}
