import type pg from 'pg';
import { type Duration, durationOption, MAX_WAIT_MS } from '../duration.js';
import { InvalidOptionError, show } from '../errors.js';
import { capacity, type ResolvedCapacity, storageSettings } from './capacity.js';
import { DatabaseClock } from './clock.js';
import { fromKeyvPostgres, KEYV_POSTGRES_NAMES } from './keyv_postgres.js';
import { localCache, type ResolvedLocalCache } from './local_cache.js';
import type { CacheLogger, DistributedOptions, PgStoreOptions } from './types.js';

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
  readonly localCache: ResolvedLocalCache | undefined;
  readonly clock: () => number;
  /** The database's clock that `clock` reads, unless a clock was given: the store takes its readings. */
  readonly databaseClock: DatabaseClock | undefined;
  readonly logger: CacheLogger | undefined;
  readonly lockProtocol: 'lease-table' | 'python';
  /** Undefined: no size cap. */
  readonly capacity: ResolvedCapacity | undefined;
  /** See {@link PgStoreOptions.storageSettings}. */
  readonly storageSettings: boolean | undefined;
}

const KNOWN = new Set<string>([
  'uri', 'connectionString', 'pool', 'poolMax', 'poolConfig', 'connectTimeout', 'statementTimeout', 'schema', 'table', 'createIfNotExists', 'useWal', 'distributed',
  'enableExpirationScan', 'expirationScanInterval', 'retainExpiredFor', 'deleteBatchSize', 'defaultSlidingExpiration', 'slidingWriteThreshold',
  'iterationLimit', 'batching', 'maxBatchSize', 'preparedStatements', 'pipelining', 'localCache', 'clock', 'logger', 'lockProtocol',
  'maxSize', 'maxEntries', 'eviction', 'evictionInterval', 'lruResolution', 'storageSettings',
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
    capacity: capacity(raw),
    storageSettings: storageSettings(raw.storageSettings),
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
