/** Held-back keys past which those whose deadline passed are forgotten (the bound doubles as it fills). */
const PRUNE_AT = 10_000;

/**
 * Keys written in callers' transactions (`ext.in(client)`), which the tier neither serves nor keeps until it
 * hears the notice of the very transaction that wrote them (sent on its connection, so delivered at its
 * commit) or their deadline passes (a rolled-back transaction sends none). A notice of anyone else, even of
 * the same key, releases nothing: until that commit, a value read here may be older than it.
 */
export class HeldBack {
  /** key -> writing transaction (its notices' sender) -> deadline (epoch ms). */
  readonly #keys = new Map<string, Map<string, number>>();
  /** Transactions that wrote the whole table (or more keys than a notice holds) -> deadline. */
  readonly #all = new Map<string, number>();
  #pruneAt = PRUNE_AT;

  /** True when nothing is held back (the hot path checks this first). */
  get empty(): boolean {
    return this.#keys.size === 0 && this.#all.size === 0;
  }

  /** Holds `ids` (or every key) back for transaction `sender` until `until`. */
  hold(sender: string, ids: readonly string[] | 'all', until: number, now: number): void {
    if (ids === 'all') {
      this.#all.set(sender, until);
      return;
    }
    if (this.#keys.size > this.#pruneAt) this.#prune(now);
    for (const id of ids) {
      let senders = this.#keys.get(id);
      if (!senders) this.#keys.set(id, (senders = new Map()));
      senders.set(sender, until);
    }
  }

  /**
   * A notice of transaction `sender` was heard: it committed (PostgreSQL delivers a transaction's notices
   * at its commit, never before), so everything it held back is released, whichever keys that notice
   * names (notices name digests, and a savepoint rolled back drops some of them).
   */
  heard(sender: string): void {
    if (this.empty) return;
    this.#all.delete(sender);
    for (const [id, senders] of this.#keys) if (senders.delete(sender) && senders.size === 0) this.#keys.delete(id);
  }

  /** True while `id` is held back at `now` (deadlines passed are forgotten on the way). */
  has(id: string, now: number): boolean {
    for (const [sender, until] of this.#all) {
      if (now < until) return true;
      this.#all.delete(sender);
    }
    const senders = this.#keys.get(id);
    if (!senders) return false;
    for (const [sender, until] of senders) {
      if (now < until) return true;
      senders.delete(sender);
    }
    this.#keys.delete(id);
    return false;
  }

  #prune(now: number): void {
    for (const [id, senders] of this.#keys) {
      for (const [sender, until] of senders) if (until <= now) senders.delete(sender);
      if (senders.size === 0) this.#keys.delete(id);
    }
    this.#pruneAt = Math.max(PRUNE_AT, this.#keys.size * 2);
  }
}
