/**
 * The database's clock, as a store reads it: what every expiry, lease and lock takeover is decided on when
 * no `clock` option is given. PostgreSQL has one clock for every writer; application servers have one each,
 * and two stores whose clocks disagree by more than a lock's ttl would both hold the lock (measured before
 * this: a store 60 s ahead took a 30 s lock another held), and an entry written by a process whose clock
 * runs behind would expire early for the others.
 *
 * How: the store reads the server's `clock_timestamp()` in one round trip (on its first call, beside the
 * schema check, then every {@link RESYNC_MS} on the way of a call, never on a timer) and keeps the offset
 * to this process's monotonic clock (`performance.now()`), taken at the middle of the round trip. Time is
 * then that offset plus the monotonic clock: a step of the application server's wall clock (NTP, a VM
 * resumed, an operator's `date -s`) changes nothing. A reading replaces the one in force only when it is
 * at least as precise (half its round trip, against the last one's half round trip plus the drift a
 * monotonic clock may gather since, 100 ppm), so a reading delayed by a busy machine does not spoil a
 * good one.
 *
 * What it guarantees: every store reading one server agrees with it within half a round trip plus the
 * drift since its last reading (under a millisecond on a LAN). What it does not: before its first
 * reading a store has only its host's clock (nothing is decided on it: the first call waits for the
 * readiness gate, which takes the reading); .NET and Python clients still write with their own clocks.
 */
export const RESYNC_MS = 30_000;

/** The most a monotonic clock is assumed to drift from the server's: 100 ppm. */
const DRIFT = 1e-4;

/** Reads the server's time, in epoch milliseconds. */
export type ServerTime = () => Promise<number>;

export class DatabaseClock {
  /** Server epoch ms minus performance.now(), once read. */
  #offset: number | undefined;
  /** Half the round trip of the reading in force, and when it was taken (performance.now()). */
  #error = Number.POSITIVE_INFINITY;
  #takenAt = Number.NEGATIVE_INFINITY;
  /** When a reading was last tried (performance.now()): the next waits RESYNC_MS. */
  #triedAt = Number.NEGATIVE_INFINITY;
  #reading: Promise<void> | undefined;
  #serverTime: ServerTime | undefined;
  #stopped = false;
  readonly #resyncMs: number;

  /** @param resyncMs how long a reading stays in force before a call asks for another */
  constructor(resyncMs = RESYNC_MS) {
    this.#resyncMs = resyncMs;
  }

  /** Now, in epoch milliseconds, on the server's clock (the host's until the first reading). */
  readonly now = (): number => {
    const here = performance.now();
    if (this.#offset === undefined) return Date.now();
    if (here - this.#triedAt > this.#resyncMs && !this.#reading && !this.#stopped) void this.#read();
    return here + this.#offset;
  };

  /** True once the server's clock has been read. */
  get synced(): boolean {
    return this.#offset !== undefined;
  }

  /**
   * Reads the server's clock with `serverTime`, which later readings use too.
   * @throws whatever `serverTime` throws: the first reading is part of the store's readiness
   */
  async sync(serverTime: ServerTime): Promise<void> {
    this.#serverTime = serverTime;
    await this.#take(serverTime);
  }

  /** No more readings (the store disconnected). */
  stop(): void {
    this.#stopped = true;
  }

  /** A later reading: a failure keeps the one in force (and is tried again after RESYNC_MS). */
  #read(): Promise<void> {
    const serverTime = this.#serverTime;
    if (!serverTime) return Promise.resolve();
    this.#reading = this.#take(serverTime)
      .catch(() => {}) // the reading in force stays; tried again after RESYNC_MS
      .finally(() => {
        this.#reading = undefined;
      });
    return this.#reading;
  }

  async #take(serverTime: ServerTime): Promise<void> {
    const sent = performance.now();
    this.#triedAt = sent;
    const server = await serverTime();
    const received = performance.now();
    if (!Number.isFinite(server)) throw new TypeError(`the server's clock read as ${String(server)}`);
    const error = (received - sent) / 2;
    if (this.#offset !== undefined && error > this.#error + (received - this.#takenAt) * DRIFT) return; // less precise than the one in force
    this.#offset = server - (sent + received) / 2;
    this.#error = error;
    this.#takenAt = received;
  }
}
