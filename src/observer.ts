/**
 * Counters and typed events in one place: every module reports through an Observer, the store turns
 * reports into events (listeners are optional and cheap when absent) and `stats()` reads the counters.
 */

/** The events of a PgStore, with their payloads. */
export interface PgStoreEvents {
  /** A failure nobody awaited (background refresh, scan, idle connection), or a failed get (Keyv drops those). */
  error: [error: Error];
  /** A read found a live entry. */
  hit: [info: { key: string }];
  /** A read found nothing live. */
  miss: [info: { key: string }];
  /** A stale value was served instead of a fresh one. */
  'stale-served': [info: { key: string; reason: 'grace' | 'soft-timeout' | 'failover'; expiredMsAgo: number }];
  /** A background refresh stored a new value. */
  refresh: [info: { key: string }];
  /** A factory (getOrSet, cached, failover, early) threw or timed out. */
  'factory-error': [info: { key: string; error: unknown; background: boolean }];
  /** getOrSet waited for the key lock another process held. */
  'lock-wait': [info: { key: string; waitedMs: number }];
  /** The expiration scan (or `clearExpired()`) physically deleted `count` expired rows. */
  'expired-deleted': [info: { count: number }];
}

/** Counters since the store was created. */
export interface Counters {
  hits: number;
  misses: number;
  staleServed: number;
  factoryCalls: number;
  factoryErrors: number;
  lockWaits: number;
  refreshes: number;
  expiredDeleted: number;
}

type Emit = <K extends keyof PgStoreEvents>(event: K, ...args: PgStoreEvents[K]) => void;

export class Observer {
  readonly counters: Counters = {
    hits: 0, misses: 0, staleServed: 0, factoryCalls: 0, factoryErrors: 0, lockWaits: 0, refreshes: 0, expiredDeleted: 0,
  };
  readonly #emit: Emit;

  constructor(emit: Emit) {
    this.#emit = emit;
  }

  read(key: string, found: boolean): void {
    if (found) {
      this.counters.hits++;
      this.#emit('hit', { key });
    } else {
      this.counters.misses++;
      this.#emit('miss', { key });
    }
  }

  staleServed(key: string, reason: 'grace' | 'soft-timeout' | 'failover', expiredMsAgo: number): void {
    this.counters.staleServed++;
    this.#emit('stale-served', { key, reason, expiredMsAgo });
  }

  factoryCall(): void {
    this.counters.factoryCalls++;
  }

  factoryError(key: string, error: unknown, background: boolean): void {
    this.counters.factoryErrors++;
    this.#emit('factory-error', { key, error, background });
  }

  lockWait(key: string, waitedMs: number): void {
    this.counters.lockWaits++;
    this.#emit('lock-wait', { key, waitedMs });
  }

  refreshed(key: string): void {
    this.counters.refreshes++;
    this.#emit('refresh', { key });
  }

  expiredDeleted(count: number): void {
    this.counters.expiredDeleted += count;
    this.#emit('expired-deleted', { count });
  }

  /** A background failure: reported as an 'error' event (or a process warning when nobody listens). */
  error(error: unknown): void {
    this.#emit('error', error instanceof Error ? error : new Error(String(error)));
  }
}
