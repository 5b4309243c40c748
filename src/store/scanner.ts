/**
 * Runs a pass (the store's `clearExpired`) now and then at a fixed interval, in the background.
 * The timer is unref'd: a scanner never keeps a process alive. `stop()` waits for a pass under way,
 * so `disconnect()` never ends the pool under a running DELETE.
 */
export class ExpirationScanner {
  readonly #pass: () => Promise<number>;
  readonly #intervalMs: () => number;
  readonly #onError: (error: unknown) => void;
  #timer: NodeJS.Timeout | undefined;
  #running: Promise<void> | undefined;
  #stopped = false;
  readonly #firstAfterInterval: boolean;

  /**
   * @param intervalMs the time between passes, or a function read before each wait
   * @param firstAfterInterval the first pass waits an interval too (else it runs at once)
   */
  constructor(pass: () => Promise<number>, intervalMs: number | (() => number), onError: (error: unknown) => void, firstAfterInterval = false) {
    this.#pass = pass;
    this.#intervalMs = typeof intervalMs === 'number' ? () => intervalMs : intervalMs;
    this.#onError = onError;
    this.#firstAfterInterval = firstAfterInterval;
  }

  /** Schedules a first pass right away (like .NET's first operation) unless told to wait, then one per interval. */
  start(): void {
    if (this.#stopped || this.#timer) return;
    this.#timer = setTimeout(() => this.#tick(), this.#firstAfterInterval ? this.#intervalMs() : 0);
    this.#timer.unref();
  }

  #tick(): void {
    if (this.#stopped) return;
    this.#running = this.#pass()
      .then(() => undefined, this.#onError)
      .finally(() => {
        this.#running = undefined;
        if (this.#stopped) return;
        this.#timer = setTimeout(() => this.#tick(), this.#intervalMs());
        this.#timer.unref();
      });
  }

  /** Cancels future passes and waits for the current one, if any. Idempotent. */
  async stop(): Promise<void> {
    this.#stopped = true;
    clearTimeout(this.#timer);
    this.#timer = undefined;
    await this.#running;
  }
}

/** A store taking part in a table's shared scan: its pass, its interval and where its failures go. */
interface Member {
  readonly pass: () => Promise<number>;
  readonly intervalMs: number;
  readonly onError: (error: unknown) => void;
}

/**
 * The scan of one table, shared by every store of a pool on it: one pass per interval for all of them,
 * not one per store (each would take a connection for a pass that finds nothing the first one left).
 * The pass is that of the longest-standing member still present (its settings: retainExpiredFor,
 * deleteBatchSize); the wait between passes is the shortest interval a present member asks for, read
 * before each wait.
 */
class SharedScan {
  readonly #members = new Set<Member>();
  readonly #scanner: ExpirationScanner;
  /** The member whose pass is running, if any. */
  #runner: Member | undefined;
  #running: Promise<void> | undefined;
  readonly #onEmpty: () => void;

  constructor(onEmpty: () => void, firstAfterInterval: boolean) {
    this.#onEmpty = onEmpty;
    this.#scanner = new ExpirationScanner(
      () => {
        const [first] = this.#members;
        if (!first) return Promise.resolve(0);
        this.#runner = first;
        const pass = first.pass();
        this.#running = pass.then(
          () => undefined,
          () => undefined,
        );
        return pass.catch((error: unknown) => {
          first.onError(error);
          return 0;
        }).finally(() => {
          this.#runner = undefined;
          this.#running = undefined;
        });
      },
      () => Math.min(...[...this.#members].map((member) => member.intervalMs)),
      () => {},
      firstAfterInterval,
    );
  }

  join(member: Member): () => Promise<void> {
    this.#members.add(member);
    this.#scanner.start();
    return async () => {
      if (!this.#members.delete(member)) return;
      if (this.#members.size === 0) {
        this.#onEmpty();
        await this.#scanner.stop();
      } else if (this.#runner === member) {
        await this.#running; // its pass uses its connections: they close after it
      }
    };
  }
}

const scans = new WeakMap<object, Map<string, SharedScan>>();

/**
 * Joins the expiration scan of `table` on `pool` (started by the first store to join). Returns the leave
 * function: it waits for the member's pass if it is running, and the last member to leave stops the scan
 * (waiting for a pass under way).
 */
export function joinScan(pool: object, table: string, member: Member, firstAfterInterval = false): () => Promise<void> {
  let tables = scans.get(pool);
  if (!tables) scans.set(pool, (tables = new Map()));
  let scan = tables.get(table);
  if (!scan) {
    const created = new SharedScan(() => {
      if (tables.get(table) === created) tables.delete(table);
    }, firstAfterInterval);
    tables.set(table, (scan = created));
  }
  return scan.join(member);
}
