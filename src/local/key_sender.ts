/**
 * Keys to send to PostgreSQL in the background, gathered while a statement is on its way and sent
 * together in the next one, one at a time and at least `gapMs` apart. Two uses: the invalidation
 * notices a store sends to the local tiers of the other stores (each a NOTIFY, which PostgreSQL commits
 * under one lock shared by every session: one per batch of writes cost a write-heavy mix a fifth of its
 * throughput), and the touches of sliding entries read from the local tier.
 *
 * No promise per key: a caller adds its keys to a set, and one loop sends what the set holds.
 */
export class KeySender {
  readonly #send: (keys: readonly string[] | 'all') => Promise<void>;
  readonly #gapMs: number;
  readonly #onError: (error: unknown) => void;
  #keys = new Set<string>();
  #all = false;
  /** The loop sending notices, while there is something to send. */
  #sending: Promise<void> | undefined;

  /**
   * @param send sends one statement for the keys (or 'all')
   * @param gapMs least time between two statements
   * @param onError receives a statement's failure (the loop goes on with the next)
   */
  constructor(send: (keys: readonly string[] | 'all') => Promise<void>, gapMs: number, onError: (error: unknown) => void) {
    this.#send = send;
    this.#gapMs = gapMs;
    this.#onError = onError;
  }

  /** Sends `ids` in the next statement. */
  tell(ids: readonly string[]): void {
    for (const id of ids) this.#keys.add(id);
    this.#start();
  }

  /** Sends "everything" in the next statement (`send('all')`). */
  tellAll(): void {
    this.#all = true;
    this.#start();
  }

  /** Resolves once everything asked for so far has been sent (or has failed). */
  async settled(): Promise<void> {
    while (this.#sending) await this.#sending;
  }

  #start(): void {
    this.#sending ??= this.#loop().finally(() => {
      this.#sending = undefined;
      // Asked for while the loop was finishing: a new one sends it.
      if (this.#all || this.#keys.size > 0) this.#start();
    });
  }

  async #loop(): Promise<void> {
    // Sent after the current tick: the keys added in it share the first statement.
    await Promise.resolve();
    while (this.#all || this.#keys.size > 0) {
      const keys = this.#all ? 'all' : [...this.#keys];
      this.#all = false;
      this.#keys = new Set();
      try {
        await this.#send(keys);
      } catch (error) {
        this.#onError(error);
      }
      if (this.#gapMs > 0) await new Promise((resolve) => setTimeout(resolve, this.#gapMs).unref());
    }
  }
}
