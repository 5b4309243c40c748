import type pg from 'pg';
import { type Duration, durationOption, MAX_WAIT_MS, parseDuration } from './duration.js';
import { CachePostgresError, InvalidOptionError, show } from './errors.js';
import { DatabaseClock } from './clock.js';
import { fromKeyvPostgres, KEYV_POSTGRES_NAMES, type KeyvPostgresOptions } from './keyv_postgres_options.js';

/** Options of {@link PgStore}. Every field is optional: `new PgStore()` reads `DATABASE_URL` or the `PG*` variables. */
export interface PgStoreOptions extends KeyvPostgresOptions {
  /**
   * PostgreSQL connection URL, e.g. `postgres://user:pass@host:5432/db`.
   * @default process.env.DATABASE_URL, else node-postgres' own defaults (PGHOST, PGUSER, PGDATABASE, ...)
   */
  uri?: string | undefined;
  /** Alias of {@link PgStoreOptions.uri}, with node-postgres' name. */
  connectionString?: string | undefined;
  /**
   * An existing `pg.Pool` to share: many stores, one pool. `disconnect()` never ends a pool the
   * store did not create. Mutually exclusive with `uri`, `poolMax` and `poolConfig`.
   */
  pool?: pg.Pool | undefined;
  /**
   * Maximum number of connections of the pool the store creates.
   * @default 10
   */
  poolMax?: number | undefined;
  /** Extra `pg.PoolConfig` for the pool the store creates (ssl, keepAlive, application_name, ...). */
  poolConfig?: Omit<pg.PoolConfig, 'connectionString' | 'max'> | undefined;
  /**
   * Longest wait for a connection: a free one from the pool, or a new one established (TCP, TLS and
   * PostgreSQL's startup). Past it the call fails with a `ConnectionError` (`E_CONNECTION`), so a
   * server that accepts connections and never answers, or a pool held by slow work, cannot hang a call.
   * @default '5s'
   */
  connectTimeout?: Duration | undefined;
  /**
   * Longest time one statement may run. With the pool the store creates, PostgreSQL enforces it
   * (`statement_timeout`): the statement is cancelled and writes nothing. On every pool, a statement
   * whose answer has not arrived this long plus 2 seconds after it was sent is cancelled and its connection closed
   * (a server that stopped answering). Either way the call fails with a `StatementTimeoutError`
   * (`E_STATEMENT_TIMEOUT`). getOrSet's wait for a key lock is bounded by its own `lockTimeout`
   * instead. `0` turns the limit off.
   * @default '15s'
   */
  statementTimeout?: Duration | undefined;
  /**
   * Schema of the cache table. A lower-case identifier (`[a-z_][a-z0-9_]*`), the only form that names
   * the same table in .NET (which folds to lower case) and Python (which quotes).
   * @default 'public'
   */
  schema?: string | undefined;
  /**
   * Name of the cache table, a lower-case identifier like `schema`.
   * @default 'cache'
   */
  table?: string | undefined;
  /**
   * Create the schema, table and indexes when missing (serialized across processes). When false,
   * a missing table is reported as a `SchemaError` on first use.
   * @default true
   */
  createIfNotExists?: boolean | undefined;
  /**
   * Create the table WAL-logged (crash-safe, replicated) instead of UNLOGGED (faster writes; emptied
   * after a crash, not on replicas). Only used when the store creates the table.
   * @default false
   */
  useWal?: boolean | undefined;
  /**
   * Citus: create the table (and the lock table) distributed by `id` across the cluster's workers,
   * with `create_distributed_table`; an existing local table is distributed (its rows move to the
   * shards). `true` uses Citus' defaults (`citus.shard_count`, 32; colocated with other tables
   * distributed by a column of the same type); `{ shardCount }` or `{ colocateWith: 'other_table' }`
   * choose. Needs the citus extension and a connection to the coordinator. A table already distributed
   * is detected whatever this option says, and the statements adapt. docs/scaling.md.
   * @default false
   */
  distributed?: boolean | DistributedOptions | undefined;
  /**
   * Delete expired rows in the background (batched; one instance at a time across processes).
   * @default true
   */
  enableExpirationScan?: boolean | undefined;
  /**
   * Time between two expiration scans. At least 5 minutes, like .NET.
   * @default '30m'
   */
  expirationScanInterval?: Duration | undefined;
  /**
   * How long the expiration scan keeps a row after it expired. Expired rows are invisible to every
   * normal read either way; keeping them lets grace periods and `failover` serve the last value.
   * Set it to at least the largest `maxStale` you use.
   * @default 0
   */
  retainExpiredFor?: Duration | undefined;
  /**
   * Rows deleted per statement by the expiration scan and by `clear()`, so no statement holds
   * many row locks for long.
   * @default 1000
   */
  deleteBatchSize?: number | undefined;
  /**
   * Sliding expiration applied by `store.ext` writes that give no expiry at all (the .NET rule).
   * Must be greater than zero.
   * @default '20m'
   */
  defaultSlidingExpiration?: Duration | undefined;
  /**
   * A read extends a sliding entry only when that moves its expiry by at least this fraction of its
   * sliding window (0 to 1), so a hot key is not rewritten on every read: after any read an entry
   * still has at least (1 - this) of its window left. 0 writes on every read that moves the expiry.
   * @default 0.1
   */
  slidingWriteThreshold?: number | undefined;
  /**
   * Rows fetched per page by `iterator()` (keyset pagination: memory stays constant).
   * @default 100
   */
  iterationLimit?: number | undefined;
  /**
   * Fold the single-key calls (get, set, delete, has, incr) issued in the same tick into few statements
   * (the gets and sets in one), DataLoader-style. Each caller still gets its own result and its own error.
   * @default true
   */
  batching?: boolean | undefined;
  /**
   * Most keys in one batched statement; a full batch is sent at once.
   * @default 500
   */
  maxBatchSize?: number | undefined;
  /**
   * Send hot statements as named prepared statements (parsed and planned once per connection). Turn it
   * off behind a pooler that cannot keep them across its server connections: PgBouncer before 1.21 in
   * transaction mode, or later versions without `max_prepared_statements`.
   * @default true
   */
  preparedStatements?: boolean | undefined;
  /**
   * Send the statements of one batch back to back on one connection without waiting for each answer
   * (node-postgres' pipeline mode): a read and the slide of its sliding rows go as two plain statements
   * in one round trip, which PostgreSQL runs in half the time of the single statement that does both
   * (measured). Needs `preparedStatements` (a pooler that cannot keep prepared statements cannot keep
   * pipelines either) and, with a borrowed `pool`, one created with `pipeline: true`; otherwise
   * the single-statement form is used.
   * @default true
   */
  pipelining?: boolean | undefined;
  /**
   * An in-process tier in front of PostgreSQL: a get of an entry read or written recently is answered
   * from memory, with no round trip. `true` takes the defaults. Off by default: it trades freshness for speed.
   *
   * What stays true: an entry is never served past its row's expiry in PostgreSQL as known here; a sliding
   * entry served from memory has its row slid in the background, as its read would have (at most once per
   * `slidingWriteThreshold` of its window); this store's own writes, deletes and clears are seen at once; writes of other stores with `localCache` on (any process) reach this one through
   * PostgreSQL LISTEN/NOTIFY, usually within milliseconds. What does not: a write this process hears
   * nothing of (.NET, Python, a store without `localCache`, SQL by hand) is seen once the memory copy
   * is `ttl` old, unless `notifyTrigger` is on. The notifications need a session connection: not through PgBouncer in transaction mode.
   * @default false
   */
  localCache?: boolean | LocalCacheOptions | undefined;
  /**
   * How `lock`, `tryLock`, `withLock` and `isLocked` lock. `'lease-table'`: leases in `<table>_locks`,
   * apart from cache rows. `'python'`: the Python library's row locks (a row of the cache table under the
   * lock's name, holding the owner's token), so that Node and Python processes exclude each other on the
   * same names; fencing tokens, renewal and LockNotHeldError still hold for Node holders (docs/locks-and-get-or-set.md, "Locks
   * shared with Python").
   * @default 'lease-table'
   */
  lockProtocol?: 'lease-table' | 'python' | undefined;
  /**
   * Where failures and warnings go besides the events, so they are visible without wiring a listener:
   * `console`, or any object with `error(error)` and `warn(message)` (pino, winston and BentoCache-style
   * loggers have both). `error` receives each failure of a call Keyv makes on the store (Keyv turns them
   * into `undefined` / `false` unless `throwOnErrors` is set) and each background failure (expiration scan,
   * background refresh, idle connection); `warn` receives configuration warnings, each once. Without a
   * logger, background failures and warnings nobody listens to become process warnings.
   * @default none
   */
  logger?: CacheLogger | undefined;
  /**
   * A clock to decide expiry, leases and lock takeovers on, in epoch milliseconds, in place of the
   * database's: for tests that move time. Without it the store decides on PostgreSQL's clock, read on its
   * first call and every 30 s (see `DatabaseClock`), so clock skew between application servers changes
   * nothing. Every statement is passed this time as `now`, as .NET and Python pass theirs.
   * @default the database's clock
   */
  clock?: (() => number) | undefined;
}

/** Options of {@link PgStoreOptions.distributed}. */
export interface DistributedOptions {
  /** Number of shards (1 to 64,000). @default the cluster's `citus.shard_count` (32) */
  shardCount?: number | undefined;
  /** A distributed table to put each key's shard beside (same shard count and placement). Not with `shardCount`. */
  colocateWith?: string | undefined;
}

/** The logger {@link PgStoreOptions.logger} takes: `console` is one. */
export interface CacheLogger {
  error(error: Error): void;
  warn(message: string): void;
}

/** Options of the in-process tier ({@link PgStoreOptions.localCache}). */
export interface LocalCacheOptions {
  /**
   * Most entries kept; the least recently used one goes first.
   * @default 10000
   */
  maxEntries?: number | undefined;
  /**
   * Most bytes of values kept (their UTF-8 size; a value kept as the text Keyv stores counts one per
   * character), the least recently used going first. A value larger than this is not kept.
   * @default 67108864 (64 MiB)
   */
  maxBytes?: number | undefined;
  /**
   * Longest time a copy is served from memory: the bound on staleness for writes this process
   * is not notified of.
   * @default '5s'
   */
  ttl?: Duration | undefined;
  /**
   * Install (in the store's schema step, idempotently) a trigger on the cache table that notifies the
   * local tiers of every change to it, whoever makes it: .NET, Python, psql, a store without
   * `localCache`, a migration. Those writes then reach every tier within milliseconds instead of once
   * its copy is `ttl` old. With it on, stores send no notices of their own (the trigger does), and a
   * store's own write-through copy is dropped when the trigger's notice of that write comes back, so the
   * next read of the key asks PostgreSQL once. Its cost on writes is in docs/local-cache.md. Not on a
   * table distributed by Citus. Turning it off later does not remove the trigger: `store.ext.dropNotifyTrigger()` does.
   * @default false
   */
  notifyTrigger?: boolean | undefined;
}

/** Options after defaults and validation: built once per store and frozen. */
export interface ResolvedOptions {
  /** Not enumerable: a password in it must not show up in logs or `console.log(store)`. */
  readonly connectionString: string | undefined;
  readonly pool: pg.Pool | undefined;
  readonly poolMax: number;
  readonly poolConfig: Readonly<Omit<pg.PoolConfig, 'connectionString' | 'max'>>;
  readonly connectTimeoutMs: number;
  /** 0: no limit. */
  readonly statementTimeoutMs: number;
  readonly schema: string;
  readonly table: string;
  readonly createIfNotExists: boolean;
  readonly useWal: boolean;
  /** Undefined: do not distribute (a distributed table is still detected). */
  readonly distributed: { readonly shardCount: number | undefined; readonly colocateWith: string | undefined } | undefined;
  readonly enableExpirationScan: boolean;
  readonly expirationScanIntervalMs: number;
  readonly retainExpiredForMs: number;
  readonly deleteBatchSize: number;
  readonly defaultSlidingExpirationMs: number;
  readonly slidingWriteThreshold: number;
  readonly iterationLimit: number;
  readonly batching: boolean;
  readonly maxBatchSize: number;
  readonly preparedStatements: boolean;
  readonly pipelining: boolean;
  /** Undefined when the in-process tier is off. */
  readonly localCache: { readonly maxEntries: number; readonly ttlMs: number; readonly maxBytes: number; readonly notifyTrigger: boolean } | undefined;
  readonly clock: () => number;
  /** The database's clock that `clock` reads, unless a clock was given: the store takes its readings. */
  readonly databaseClock: DatabaseClock | undefined;
  readonly logger: CacheLogger | undefined;
  readonly lockProtocol: 'lease-table' | 'python';
}

const KNOWN = new Set<string>([
  'uri', 'connectionString', 'pool', 'poolMax', 'poolConfig', 'connectTimeout', 'statementTimeout', 'schema', 'table', 'createIfNotExists', 'useWal', 'distributed',
  'enableExpirationScan', 'expirationScanInterval', 'retainExpiredFor', 'deleteBatchSize', 'defaultSlidingExpiration', 'slidingWriteThreshold',
  'iterationLimit', 'batching', 'maxBatchSize', 'preparedStatements', 'pipelining', 'localCache', 'clock', 'logger', 'lockProtocol',
]);
const IDENTIFIER = /^[a-z_][a-z0-9_]*$/;
const MIN_SCAN_INTERVAL_MS = 5 * 60_000;

/**
 * Applies defaults and validates, once, so the hot path never re-checks options.
 * @throws {InvalidOptionError} naming the first offending option
 */
export function resolveOptions(input: PgStoreOptions | string | undefined): ResolvedOptions {
  const given: PgStoreOptions = typeof input === 'string' ? { uri: input } : (input ?? {});
  if (typeof given !== 'object' || given === null || Array.isArray(given)) {
    throw new InvalidOptionError('options', 'expected a connection URL string or an options object.');
  }
  for (const name of Object.keys(given)) {
    if (!KNOWN.has(name) && !KEYV_POSTGRES_NAMES.includes(name)) {
      throw new InvalidOptionError(name, `unknown option. Known options: ${[...KNOWN].join(', ')} (and @keyv/postgres's: ${KEYV_POSTGRES_NAMES.join(', ')}).`);
    }
  }
  const { options: raw, writtenAs } = fromKeyvPostgres(given as PgStoreOptions & Record<string, unknown>);
  try {
    return validate(raw);
  } catch (error) {
    // An option the caller wrote in @keyv/postgres's spelling is named as written.
    if (!(error instanceof InvalidOptionError) || !writtenAs[error.option]) throw error;
    const written = writtenAs[error.option]!;
    const detail = error.message.slice(`Invalid option "${error.option}": `.length);
    throw new InvalidOptionError(written, `${detail} (${written} is PgStore's ${error.option})`, { cause: error });
  }
}

/** Applies defaults and validates options already in PgStore's names. */
function validate(raw: PgStoreOptions): ResolvedOptions {
  if (raw.uri !== undefined && raw.connectionString !== undefined && raw.uri !== raw.connectionString) {
    throw new InvalidOptionError('uri', 'give either "uri" or "connectionString", not two different URLs.');
  }
  const url = optionalString(raw, 'uri') ?? optionalString(raw, 'connectionString');
  if (raw.pool !== undefined) {
    if (typeof (raw.pool as { query?: unknown }).query !== 'function' || typeof raw.pool.connect !== 'function') {
      throw new InvalidOptionError('pool', 'expected a pg.Pool instance.');
    }
    for (const conflicting of ['uri', 'connectionString', 'poolMax', 'poolConfig'] as const) {
      if (raw[conflicting] !== undefined) {
        throw new InvalidOptionError(conflicting, 'cannot be combined with "pool": the shared pool is already configured.');
      }
    }
  }
  const resolved = {
    pool: raw.pool,
    poolMax: poolSize(raw),
    poolConfig: Object.freeze({ ...(objectOption(raw, 'poolConfig') ?? {}) }),
    connectTimeoutMs: duration(raw, 'connectTimeout', '5s'),
    statementTimeoutMs: duration(raw, 'statementTimeout', '15s'),
    schema: identifier(raw, 'schema', 'public'),
    table: identifier(raw, 'table', 'cache'),
    createIfNotExists: boolean(raw, 'createIfNotExists', true),
    useWal: boolean(raw, 'useWal', false),
    distributed: distributed(raw.distributed),
    enableExpirationScan: boolean(raw, 'enableExpirationScan', true),
    expirationScanIntervalMs: duration(raw, 'expirationScanInterval', '30m'),
    retainExpiredForMs: duration(raw, 'retainExpiredFor', 0),
    deleteBatchSize: positiveInteger(raw, 'deleteBatchSize', 1000),
    defaultSlidingExpirationMs: duration(raw, 'defaultSlidingExpiration', '20m'),
    slidingWriteThreshold: fraction(raw, 'slidingWriteThreshold', 0.1),
    iterationLimit: positiveInteger(raw, 'iterationLimit', 100),
    batching: boolean(raw, 'batching', true),
    maxBatchSize: positiveInteger(raw, 'maxBatchSize', 500),
    preparedStatements: boolean(raw, 'preparedStatements', true),
    pipelining: boolean(raw, 'pipelining', true),
    localCache: localCache(raw.localCache),
    ...clock(raw),
    logger: logger(raw),
    lockProtocol: lockProtocol(raw.lockProtocol),
  };
  if (resolved.expirationScanIntervalMs < MIN_SCAN_INTERVAL_MS) {
    throw new InvalidOptionError('expirationScanInterval', 'must be at least 5 minutes (the .NET minimum).');
  }
  if (resolved.connectTimeoutMs <= 0) throw new InvalidOptionError('connectTimeout', 'must be greater than zero.');
  if (resolved.defaultSlidingExpirationMs < 1000) {
    throw new InvalidOptionError('defaultSlidingExpiration', 'must be at least 1 second (the column stores whole seconds).');
  }
  const connectionString = raw.pool ? undefined : (url ?? nonEmpty(process.env.DATABASE_URL));
  Object.defineProperty(resolved, 'connectionString', { value: connectionString, enumerable: false });
  return Object.freeze(resolved) as ResolvedOptions;
}

function nonEmpty(value: string | undefined): string | undefined {
  return value === undefined || value === '' ? undefined : value;
}

function optionalString(raw: PgStoreOptions, name: 'uri' | 'connectionString'): string | undefined {
  const value = raw[name];
  if (value === undefined) return undefined;
  if (typeof value !== 'string' || value === '') throw new InvalidOptionError(name, 'expected a non-empty connection URL string.');
  return value;
}

function objectOption(raw: PgStoreOptions, name: 'poolConfig'): object | undefined {
  const value = raw[name];
  if (value === undefined) return undefined;
  if (typeof value !== 'object' || value === null) throw new InvalidOptionError(name, 'expected an object of pg.PoolConfig fields.');
  return value;
}

function identifier(raw: PgStoreOptions, name: 'schema' | 'table', fallback: string): string {
  const value = raw[name] ?? fallback;
  if (typeof value !== 'string' || !IDENTIFIER.test(value) || Buffer.byteLength(value) > 63) {
    throw new InvalidOptionError(
      name,
      `${show(value)} is not allowed. Use a lower-case identifier of at most 63 characters matching [a-z_][a-z0-9_]* (the only names .NET, which folds case, and Python, which quotes, resolve to the same table).`,
    );
  }
  return value;
}

function boolean(
  raw: PgStoreOptions,
  name: 'createIfNotExists' | 'useWal' | 'enableExpirationScan' | 'batching' | 'preparedStatements' | 'pipelining',
  fallback: boolean,
): boolean {
  const value = raw[name] ?? fallback;
  if (typeof value !== 'boolean') throw new InvalidOptionError(name, `expected true or false, got ${show(value)}.`);
  return value;
}

function distributed(value: PgStoreOptions['distributed']): ResolvedOptions['distributed'] {
  if (value === undefined || value === false) return undefined;
  const given: DistributedOptions = value === true ? {} : value;
  if (typeof given !== 'object' || given === null || Array.isArray(given)) {
    throw new InvalidOptionError('distributed', 'expected true, false or { shardCount } or { colocateWith }.');
  }
  const unknown = Object.keys(given).find((name) => name !== 'shardCount' && name !== 'colocateWith');
  if (unknown) throw new InvalidOptionError('distributed', `unknown field "${unknown}". Known fields: shardCount, colocateWith.`);
  const { shardCount, colocateWith } = given;
  if (shardCount !== undefined && (!Number.isSafeInteger(shardCount) || shardCount < 1 || shardCount > 64_000)) {
    throw new InvalidOptionError('distributed', `shardCount must be a whole number from 1 to 64000, got ${show(shardCount)}.`);
  }
  if (colocateWith !== undefined && (typeof colocateWith !== 'string' || !/^([a-z_][a-z0-9_]{0,62}\.)?[a-z_][a-z0-9_]{0,62}$/.test(colocateWith))) {
    throw new InvalidOptionError('distributed', `colocateWith must name a table ("table" or "schema.table", lower-case identifiers), got ${show(colocateWith)}.`);
  }
  if (shardCount !== undefined && colocateWith !== undefined) {
    throw new InvalidOptionError('distributed', 'give shardCount or colocateWith, not both: a colocated table has the shard count of the table it follows.');
  }
  return Object.freeze({ shardCount, colocateWith });
}

function lockProtocol(value: unknown): ResolvedOptions['lockProtocol'] {
  if (value === undefined) return 'lease-table';
  if (value === 'lease-table' || value === 'python') return value;
  throw new InvalidOptionError('lockProtocol', `must be 'lease-table' (the default) or 'python', got ${show(value)}.`);
}

function localCache(value: PgStoreOptions['localCache']): ResolvedOptions['localCache'] {
  if (value === undefined || value === false) return undefined;
  const given: LocalCacheOptions = value === true ? {} : value;
  if (typeof given !== 'object' || given === null || Array.isArray(given)) {
    throw new InvalidOptionError('localCache', 'expected true, false or { maxEntries, maxBytes, ttl, notifyTrigger }.');
  }
  const unknown = Object.keys(given).find((name) => !LOCAL_CACHE_FIELDS.includes(name));
  if (unknown) throw new InvalidOptionError('localCache', `unknown field "${unknown}". Known fields: ${LOCAL_CACHE_FIELDS.join(', ')}.`);
  const notifyTrigger = given.notifyTrigger ?? false;
  if (typeof notifyTrigger !== 'boolean') throw new InvalidOptionError('localCache', `notifyTrigger must be true or false, got ${show(given.notifyTrigger)}.`);
  const maxBytes = given.maxBytes ?? 64 * 2 ** 20;
  if (!Number.isSafeInteger(maxBytes) || maxBytes < 1) {
    throw new InvalidOptionError('localCache', `maxBytes must be a positive whole number of bytes, got ${show(given.maxBytes)}.`);
  }
  const maxEntries = given.maxEntries ?? 10_000;
  if (!Number.isSafeInteger(maxEntries) || maxEntries < 1) {
    throw new InvalidOptionError('localCache', `maxEntries must be a positive integer, got ${show(given.maxEntries)}.`);
  }
  let ttlMs: number;
  try {
    ttlMs = parseDuration(given.ttl ?? '5s', 'localCache.ttl', MAX_WAIT_MS);
  } catch (error) {
    throw new InvalidOptionError('localCache', error instanceof CachePostgresError ? error.message : String(error), { cause: error });
  }
  if (ttlMs <= 0) throw new InvalidOptionError('localCache', 'ttl must be greater than zero.');
  return Object.freeze({ maxEntries, ttlMs, maxBytes, notifyTrigger });
}

const LOCAL_CACHE_FIELDS = ['maxEntries', 'maxBytes', 'ttl', 'notifyTrigger'];

function positiveInteger(
  raw: PgStoreOptions,
  name: 'poolMax' | 'deleteBatchSize' | 'iterationLimit' | 'maxBatchSize',
  fallback: number,
): number {
  const value = raw[name] ?? fallback;
  if (typeof value !== 'number' || !Number.isSafeInteger(value) || value < 1) {
    throw new InvalidOptionError(name, `expected a positive whole number, got ${show(value)}.`);
  }
  return value;
}

/** `poolMax`, or `poolConfig.max` when only it is given; both and different is a contradiction. */
function poolSize(raw: PgStoreOptions): number {
  const fromConfig = (raw.poolConfig as { max?: unknown } | undefined)?.max;
  if (fromConfig === undefined) return positiveInteger(raw, 'poolMax', 10);
  if (typeof fromConfig !== 'number' || !Number.isSafeInteger(fromConfig) || fromConfig < 1) {
    throw new InvalidOptionError('poolConfig.max', `expected a positive whole number, got ${show(fromConfig)}.`);
  }
  if (raw.poolMax !== undefined && raw.poolMax !== fromConfig) {
    throw new InvalidOptionError('poolConfig.max', `contradicts poolMax (${String(raw.poolMax)} against ${fromConfig}): give the pool size once, as poolMax.`);
  }
  return fromConfig;
}

function duration(
  raw: PgStoreOptions,
  name: 'expirationScanInterval' | 'defaultSlidingExpiration' | 'retainExpiredFor' | 'connectTimeout' | 'statementTimeout',
  fallback: Duration,
): number {
  // Waits and intervals run on timers (and statementTimeout on PostgreSQL's 32-bit setting); lifetimes do not.
  const max = name === 'defaultSlidingExpiration' || name === 'retainExpiredFor' ? undefined : MAX_WAIT_MS;
  return durationOption(raw[name] ?? fallback, name, max);
}

function fraction(raw: PgStoreOptions, name: 'slidingWriteThreshold', fallback: number): number {
  const value = raw[name] ?? fallback;
  if (typeof value !== 'number' || !(value >= 0 && value <= 1)) {
    throw new InvalidOptionError(name, `expected a fraction from 0 to 1, got ${show(value)}.`);
  }
  return value;
}

function logger(raw: PgStoreOptions): CacheLogger | undefined {
  const value = raw.logger;
  if (value === undefined) return undefined;
  if (typeof value !== 'object' || value === null || typeof value.error !== 'function' || typeof value.warn !== 'function') {
    throw new InvalidOptionError('logger', 'expected an object with error(error) and warn(message) methods, such as console.');
  }
  // Called from background paths (timers, pool events): a logger that throws must not take the process down.
  return Object.freeze({
    error: (error: Error) => {
      try {
        value.error(error);
      } catch {
        // the failure was already reported to the caller or as an event
      }
    },
    warn: (message: string) => {
      try {
        value.warn(message);
      } catch {
        // a warning is advice: losing it loses nothing else
      }
    },
  });
}

function clock(raw: PgStoreOptions): Pick<ResolvedOptions, 'clock' | 'databaseClock'> {
  if (raw.clock === undefined) {
    const databaseClock = new DatabaseClock();
    return { clock: databaseClock.now, databaseClock };
  }
  if (typeof raw.clock !== 'function') throw new InvalidOptionError('clock', 'expected a function returning epoch milliseconds.');
  return { clock: raw.clock, databaseClock: undefined };
}
