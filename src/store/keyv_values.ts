import { MAX_TIME_MS } from '../duration.js';
import { InvalidValueError } from '../errors.js';
import type { CacheLogger, ResolvedOptions } from '../options/index.js';
import { MAX_VALUE_BYTES, tooLarge } from '../sql/values.js';
import { asError } from './reporter.js';

// What Keyv passes a store, checked and converted before anything runs (values, ttls), and what a store with a logger logs.

/** The store methods Keyv calls and whose failures it turns into `undefined` / `false`. */
const KEYV_METHODS = ['get', 'getMany', 'set', 'setMany', 'delete', 'deleteMany', 'clear', 'has', 'hasMany'] as const;

type KeyvMethods = Record<(typeof KEYV_METHODS)[number], (...args: never[]) => Promise<unknown>>;

/**
 * With a logger, each of them also logs its failure (and still rejects): a Keyv user sees a broken cache in
 * the log instead of only a low hit rate. Own properties of this store, set once: nothing is added to the
 * calls of a store without a logger.
 */
export function logKeyvFailures(store: KeyvMethods, logger: CacheLogger): void {
  for (const name of KEYV_METHODS) {
    const method = store[name] as (...args: unknown[]) => Promise<unknown>;
    Object.defineProperty(store, name, {
      configurable: true,
      writable: true,
      value: (...args: unknown[]) =>
        method.apply(store, args).catch((error: unknown) => {
          logger.error(asError(error));
          throw error;
        }),
    });
  }
}

/** The bytes of the string Keyv serialized. @throws {InvalidValueError} for anything else, a lone surrogate or a value too large */
export function toBytes(value: unknown): Buffer {
  if (typeof value === 'string') {
    // Buffer.from would store a lone surrogate as U+FFFD: a value must never change silently.
    if (!value.isWellFormed()) throw new InvalidValueError('value must be well-formed Unicode to be stored as UTF-8 (it contains a lone surrogate).');
    // Checked before encoding: a string too long to store is not copied first.
    if (value.length > MAX_VALUE_BYTES) throw tooLarge(Buffer.byteLength(value, 'utf8'));
    const bytes = Buffer.from(value, 'utf8');
    if (bytes.length > MAX_VALUE_BYTES) throw tooLarge(bytes.length);
    return bytes;
  }
  throw new InvalidValueError(
    `PgStore stores the strings Keyv serializes; got ${value === null ? 'null' : typeof value}. Keep Keyv's default serializer, or use store.ext for raw bytes.`,
  );
}

/**
 * Keyv's ttl (ms) to an ISO expiry, or null for "never" (Keyv uses 0/undefined for that). A negative
 * ttl is an entry expired at once, as Keyv over memory keeps it (its expiry is then in the past).
 */
export function expiry(ttl: unknown, now: number): string | null {
  if (ttl === undefined || ttl === null || ttl === 0) return null;
  if (typeof ttl !== 'number' || !Number.isFinite(ttl) || now + ttl > MAX_TIME_MS || now + ttl < 0) {
    throw new InvalidValueError(
      `ttl must be a finite number of milliseconds (0 or undefined: never expires; negative: expired at once) whose expiry falls between 1970 and year 9999, got ${String(ttl)}.`,
    );
  }
  return new Date(now + ttl).toISOString();
}

/** A target description for Keyv's `opts.url` with the password removed. */
export function describe(options: ResolvedOptions): string {
  if (options.pool) return 'postgres://(shared pool)';
  const url = options.connectionString;
  if (!url) return 'postgres://(PG* environment)';
  try {
    const parsed = new URL(url);
    if (parsed.password) parsed.password = '***';
    // libpq (and node-postgres) also take the password, and the TLS key's, as parameters.
    for (const name of ['password', 'sslpassword']) if (parsed.searchParams.has(name)) parsed.searchParams.set(name, '***');
    return parsed.toString();
  } catch {
    return 'postgres://(connection string)';
  }
}

/**
 * The database the store's connections open, as its options (or the pool's, or `PGDATABASE`) name it, for the
 * spans' `db.namespace`; undefined when only the server's default (the user's name) would tell.
 */
export function databaseOf(options: ResolvedOptions): string | undefined {
  const config = (options.pool?.options ?? { ...options.poolConfig, connectionString: options.connectionString }) as {
    database?: unknown;
    connectionString?: unknown;
  };
  // node-postgres lets the connection string's database win over `database`.
  if (typeof config.connectionString === 'string') {
    try {
      const name = decodeURIComponent(new URL(config.connectionString).pathname.slice(1));
      if (name) return name;
    } catch {
      // not a URL (libpq's key=value form): the other sources
    }
  }
  if (typeof config.database === 'string' && config.database) return config.database;
  return process.env.PGDATABASE || undefined;
}
