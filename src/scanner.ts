/**
 * Runs a pass (the store's `clearExpired`) now and then at a fixed interval, in the background.
 * The timer is unref'd: a scanner never keeps a process alive. `stop()` waits for a pass under way,
 * so `disconnect()` never ends the pool under a running DELETE.
 */
export class ExpirationScanner {
  readonly #pass: () => Promise<number>;
  readonly #intervalMs: number;
  readonly #onError: (error: unknown) => void;
  #timer: NodeJS.Timeout | undefined;
  #running: Promise<void> | undefined;
  #stopped = false;

  constructor(pass: () => Promise<number>, intervalMs: number, onError: (error: unknown) => void) {
    this.#pass = pass;
    this.#intervalMs = intervalMs;
    this.#onError = onError;
  }

  /** Schedules a first pass right away (like .NET's first operation), then one per interval. */
  start(): void {
    if (this.#stopped || this.#timer) return;
    this.#timer = setTimeout(() => this.#tick(), 0);
    this.#timer.unref();
  }

  #tick(): void {
    if (this.#stopped) return;
    this.#running = this.#pass()
      .then(() => undefined, this.#onError)
      .finally(() => {
        this.#running = undefined;
        if (this.#stopped) return;
        this.#timer = setTimeout(() => this.#tick(), this.#intervalMs);
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
