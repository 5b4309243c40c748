/**
 * Counters, typed events and OpenTelemetry in one place: every module reports through an Observer,
 * the store turns reports into events (listeners are optional and cheap when absent), `stats()`
 * reads the counters, and the same reports feed OpenTelemetry metrics through `@opentelemetry/api`, which
 * does nothing until the application registers an SDK. The spans of calls are tracing.ts's.
 */
import { type Attributes, type Counter, metrics, type ObservableResult } from '@opentelemetry/api';
import { noteLocal } from './tracing.js';

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
  /** The cap's sweeper evicted `count` entries of `bytes` bytes (keys and values) in one pass. */
  evicted: [info: { count: number; bytes: number }];
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
  /** Hits answered by the local tier (also counted in `hits`). */
  localHits: number;
  /** Entries this store's sweeper evicted to keep the table under its cap. */
  evicted: number;
  /** Their bytes (keys and values). */
  evictedBytes: number;
}

/** What the cap's sweeper last read of its table: its usage and its cap (null: none of that kind). */
export interface UsageReading {
  readonly bytes: number;
  readonly entries: number;
  readonly maxBytes: number | null;
  readonly maxEntries: number | null;
}

type Emit = <K extends keyof PgStoreEvents>(event: K, ...args: PgStoreEvents[K]) => void;
type Warn = (message: string) => void;

/** OpenTelemetry counter names, one per entry of {@link Counters}. */
const METRICS: Record<keyof Counters, string> = {
  hits: 'cache_postgres.hits',
  misses: 'cache_postgres.misses',
  staleServed: 'cache_postgres.stale_served',
  factoryCalls: 'cache_postgres.factory.calls',
  factoryErrors: 'cache_postgres.factory.errors',
  lockWaits: 'cache_postgres.lock.waits',
  refreshes: 'cache_postgres.refreshes',
  expiredDeleted: 'cache_postgres.expired_deleted',
  localHits: 'cache_postgres.local.hits',
  evicted: 'cache_postgres.evicted',
  evictedBytes: 'cache_postgres.evicted.bytes',
};

export class Observer {
  readonly counters: Counters = {
    hits: 0, misses: 0, staleServed: 0, factoryCalls: 0, factoryErrors: 0, lockWaits: 0, refreshes: 0, expiredDeleted: 0, localHits: 0, evicted: 0, evictedBytes: 0,
  };
  /** The table's usage as the sweeper last read it (only where this store's sweeper ran a pass). */
  #usage: UsageReading | undefined;
  /** Told of every key a read found (the cap's LRU record). */
  #onHit: ((key: string) => void) | undefined;
  readonly #emit: Emit;
  readonly #warn: Warn;
  /** Warnings already given: each is given once per store, however many calls repeat its cause. */
  readonly #warned = new Set<string>();
  readonly #metrics: Record<keyof Counters, Counter>;
  readonly #attributes: Attributes;
  #spanAttributes: Attributes;

  /**
   * @param table `schema.table`, the `cache_postgres.table` attribute of every metric and span
   * @param warn receives a configuration warning (once per distinct message)
   */
  constructor(emit: Emit, table: string, warn: Warn) {
    this.#emit = emit;
    this.#warn = warn;
    this.#attributes = { 'cache_postgres.table': table };
    this.#spanAttributes = spanAttributes(table, undefined);
    // Taken from the global provider now: an SDK registered before the store is created is used.
    const meter = metrics.getMeter('cache-postgres');
    this.#metrics = Object.fromEntries(
      Object.entries(METRICS).map(([counter, name]) => [counter, meter.createCounter(name)]),
    ) as Record<keyof Counters, Counter>;
  }

  /**
   * What every span of this store's calls carries (tracing.ts): the database client conventions' `db.system`,
   * `db.collection.name` (the table), `db.namespace` (`database|schema`, once known) and `cache_postgres.table`.
   */
  get spanAttributes(): Attributes {
    return this.#spanAttributes;
  }

  /** The database the store's connections open, when its options name it: spans then carry `db.namespace`. */
  inDatabase(database: string | undefined): void {
    this.#spanAttributes = spanAttributes(this.#attributes['cache_postgres.table'] as string, database);
  }

  /**
   * OpenTelemetry gauges of the table's usage and cap, as this store's sweeper last read them (a store with a cap
   * calls it once). Returns what removes their callbacks, so a closed store is not kept by the meter.
   */
  usageGauges(): () => void {
    const meter = metrics.getMeter('cache-postgres');
    if (typeof meter.createObservableGauge !== 'function') return () => {};
    const removers = (
      [
        ['cache_postgres.capacity.bytes', 'Bytes of the entries in the cache table (keys and values)', (usage) => usage.bytes],
        ['cache_postgres.capacity.entries', 'Entries in the cache table', (usage) => usage.entries],
        ['cache_postgres.capacity.max_bytes', "The table's maxSize", (usage) => usage.maxBytes],
        ['cache_postgres.capacity.max_entries', "The table's maxEntries", (usage) => usage.maxEntries],
      ] as const satisfies ReadonlyArray<readonly [string, string, (usage: UsageReading) => number | null]>
    ).map(([name, description, read]) => {
      const gauge = meter.createObservableGauge(name, { description });
      const callback = (result: ObservableResult) => {
        const value = this.#usage && read(this.#usage);
        if (value !== undefined && value !== null) result.observe(value, this.#attributes);
      };
      gauge.addCallback(callback);
      return () => gauge.removeCallback(callback);
    });
    return () => removers.forEach((remove) => remove());
  }

  /** Calls `fn` with the key of every read that finds an entry (one listener: the store's LRU record). */
  onHit(fn: (key: string) => void): void {
    this.#onHit = fn;
  }

  /** The sweeper read the table's usage. */
  usage(reading: UsageReading): void {
    this.#usage = reading;
  }

  /** The sweeper evicted `rows` entries of `bytes` bytes. */
  evicted(rows: number, bytes: number): void {
    this.#count('evicted', rows);
    this.#count('evictedBytes', bytes);
    this.#emit('evicted', { count: rows, bytes });
  }

  #count(counter: keyof Counters, by = 1): void {
    this.counters[counter] += by;
    this.#metrics[counter].add(by, this.#attributes);
  }

  /** A setting that works until it quietly does not (e.g. stale values the scan will delete): said once. */
  warnOnce(message: string): void {
    if (this.#warned.has(message)) return;
    this.#warned.add(message);
    this.#warn(message);
  }

  read(key: string, found: boolean): void {
    if (found) {
      this.#onHit?.(key);
      this.#count('hits');
      this.#emit('hit', { key });
    } else {
      this.#count('misses');
      this.#emit('miss', { key });
    }
  }

  /** A read the local tier answered: a hit, and a local one. */
  localHit(key: string): void {
    noteLocal();
    this.#onHit?.(key);
    this.#count('hits');
    this.#count('localHits');
    this.#emit('hit', { key });
  }

  staleServed(key: string, reason: 'grace' | 'soft-timeout' | 'failover', expiredMsAgo: number): void {
    this.#count('staleServed');
    this.#emit('stale-served', { key, reason, expiredMsAgo });
  }

  factoryCall(): void {
    this.#count('factoryCalls');
  }

  factoryError(key: string, error: unknown, background: boolean): void {
    this.#count('factoryErrors');
    this.#emit('factory-error', { key, error, background });
  }

  lockWait(key: string, waitedMs: number): void {
    this.#count('lockWaits');
    this.#emit('lock-wait', { key, waitedMs });
  }

  refreshed(key: string): void {
    this.#count('refreshes');
    this.#emit('refresh', { key });
  }

  expiredDeleted(count: number): void {
    this.#count('expiredDeleted', count);
    this.#emit('expired-deleted', { count });
  }

  /** A background failure: reported as an 'error' event (or a process warning when nobody listens). */
  error(error: unknown): void {
    this.#emit('error', error instanceof Error ? error : new Error(String(error)));
  }
}

/** The span attributes of table `display` (`schema.table`) in `database`. */
function spanAttributes(display: string, database: string | undefined): Attributes {
  const dot = display.indexOf('.');
  return Object.freeze({
    'db.system': 'postgresql',
    'db.collection.name': display.slice(dot + 1),
    ...(database ? { 'db.namespace': `${database}|${display.slice(0, dot)}` } : {}),
    'cache_postgres.table': display,
  });
}
