/**
 * Every error this library throws on purpose is a {@link CachePostgresError} with a stable `code`,
 * so callers can branch on `err.code` (or `instanceof errors.E_INVALID_KEY`) instead of parsing
 * messages. Database failures keep the original `pg` error as `cause`, so its SQLSTATE stays
 * reachable through {@link QueryError.sqlState}.
 */

/** Base class of every error thrown by cache-postgres. */
/**
 * A value as an error message shows it: JSON where it can be (strings quoted), else something readable.
 * A BigInt, a Symbol, a function or a circular object must never turn the error into a TypeError.
 */
export function show(value: unknown): string {
  if (typeof value === 'bigint') return `${value}n`;
  if (typeof value === 'symbol' || typeof value === 'function') return String(value);
  try {
    return JSON.stringify(value) ?? String(value);
  } catch {
    return Object.prototype.toString.call(value);
  }
}

export class CachePostgresError extends Error {
  /** A stable, machine-readable code such as `E_INVALID_KEY`. */
  readonly code: string;

  constructor(code: string, message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.code = code;
    this.name = new.target.name;
  }
}

/** An option passed to a constructor or factory is missing, of the wrong type or out of range. */
export class InvalidOptionError extends CachePostgresError {
  static readonly code = 'E_INVALID_OPTION';
  /** The name of the offending option, e.g. `expirationScanInterval`. */
  readonly option: string;

  constructor(option: string, message: string, options?: { cause?: unknown }) {
    super(InvalidOptionError.code, `Invalid option "${option}": ${message}`, options);
    this.option = option;
  }
}

/** A duration (ms number or a string such as `'1h30m'`) could not be understood. */
export class InvalidDurationError extends CachePostgresError {
  static readonly code = 'E_INVALID_DURATION';
  constructor(message: string) {
    super(InvalidDurationError.code, message);
  }
}

/** A cache key is empty, too long, or contains characters PostgreSQL cannot store. */
export class InvalidKeyError extends CachePostgresError {
  static readonly code = 'E_INVALID_KEY';
  /** The rejected key, cut to 80 characters so logs stay readable. */
  readonly key: string;

  constructor(key: string, message: string) {
    super(InvalidKeyError.code, message);
    this.key = typeof key === 'string' && key.length > 80 ? `${key.slice(0, 80)}…` : String(key);
  }
}

/** A value (or TTL) handed to the store is of a type or range it cannot store faithfully. */
export class InvalidValueError extends CachePostgresError {
  static readonly code = 'E_INVALID_VALUE';
  constructor(message: string, options?: { cause?: unknown }) {
    super(InvalidValueError.code, message, options);
  }
}

/** The cache table is missing (with `createIfNotExists: false`) or does not have the shape of the contract. */
export class SchemaError extends CachePostgresError {
  static readonly code = 'E_SCHEMA';
  constructor(message: string, options?: { cause?: unknown }) {
    super(SchemaError.code, message, options);
  }
}

/** The store was used after `disconnect()`. */
export class StoreClosedError extends CachePostgresError {
  static readonly code = 'E_STORE_CLOSED';
  /** @param detail replaces the default message's reason (e.g. for calls cut short by disconnect()) */
  constructor(operation: string, detail?: string) {
    super(StoreClosedError.code, detail ? `${operation}: ${detail}` : `Cannot call ${operation}() on a PgStore after disconnect().`);
  }
}

/** A statement failed in PostgreSQL or on the way to it. The `pg` error is the `cause`. */
export class QueryError extends CachePostgresError {
  static readonly code: string = 'E_QUERY_FAILED';
  /** The name of the statement that failed, e.g. `get`. */
  readonly statement: string;
  /** The SQLSTATE reported by PostgreSQL (e.g. `42P01`), or a Node error code such as `ECONNREFUSED`. */
  readonly sqlState: string | undefined;

  /** @param detail replaces the cause's message as the reason given */
  constructor(statement: string, table: string, cause: unknown, detail?: string) {
    const reason = detail ?? (cause instanceof Error ? cause.message : String(cause));
    // Each subclass has its own static code; `new.target` picks it.
    super((new.target as typeof QueryError).code, `Statement "${statement}" on ${table} failed: ${reason}`, { cause });
    this.statement = statement;
    const causeCode = (cause as { code?: unknown } | null)?.code;
    this.sqlState = typeof causeCode === 'string' ? causeCode : undefined;
  }

  /**
   * True when running the same call again may succeed: the connection was lost or refused
   * ({@link ConnectionError}), the statement ran out of time ({@link StatementTimeoutError}), or
   * PostgreSQL chose it as a deadlock or serialization victim.
   */
  get retryable(): boolean {
    return this.code !== QueryError.code || this.sqlState === '40P01' || this.sqlState === '40001';
  }
}

/**
 * No connection, or it was lost: refused, reset, terminated by the server (shutdown, restart,
 * `pg_terminate_backend`), not established within `connectTimeout`, or no pooled connection free
 * within it. The call may not have run, or may have run without its answer arriving: retry only
 * what is safe to repeat (every cache write of this library is).
 */
export class ConnectionError extends QueryError {
  static override readonly code = 'E_CONNECTION';
}

/**
 * A statement ran longer than `statementTimeout`: PostgreSQL cancelled it (nothing it would have
 * written was written), or the server did not answer at all and the connection was closed.
 */
export class StatementTimeoutError extends QueryError {
  static override readonly code = 'E_STATEMENT_TIMEOUT';
}

/** SQLSTATEs of a connection the server ended or refused (admin shutdown, crash, startup, class 08). */
const CONNECTION_STATES = new Set(['57P01', '57P02', '57P03', '53300', '08000', '08001', '08003', '08004', '08006', '08P01']);
/** Node's codes for a socket that failed. */
const SOCKET_CODES = new Set([
  'ECONNREFUSED', 'ECONNRESET', 'ECONNABORTED', 'EPIPE', 'ETIMEDOUT', 'EHOSTUNREACH', 'EHOSTDOWN', 'ENETUNREACH', 'ENETDOWN',
  'ENOTFOUND', 'EAI_AGAIN', 'ENOENT',
]);
/** node-postgres' words for a connection that went away without a code. */
const LOST = /Connection terminated|not queryable|timeout exceeded when trying to connect|timeout expired|Connection ended|socket hang up/i;

/**
 * The typed error for a failure of `statement`: a {@link ConnectionError} for a lost or refused
 * connection, a {@link StatementTimeoutError} for a statement PostgreSQL cancelled for its time, else
 * a {@link QueryError}. A CachePostgresError passes through unchanged.
 */
export function queryError(statement: string, table: string, cause: unknown): CachePostgresError {
  if (cause instanceof CachePostgresError) return cause;
  const code = (cause as { code?: unknown } | null)?.code;
  const message = cause instanceof Error ? cause.message : String(cause);
  if (typeof code === 'string' && (CONNECTION_STATES.has(code) || SOCKET_CODES.has(code))) return new ConnectionError(statement, table, cause);
  if (code === '57014' && /statement timeout/.test(message)) return new StatementTimeoutError(statement, table, cause);
  if (code === undefined && LOST.test(message)) return new ConnectionError(statement, table, cause);
  return new QueryError(statement, table, cause);
}

/** `incr`/`decr` met an entry whose value is not a decimal integer; the entry was left unchanged. */
export class NotACounterError extends CachePostgresError {
  static readonly code = 'E_NOT_A_COUNTER';
  readonly key: string;
  constructor(key: string, cause: unknown) {
    super(NotACounterError.code, `The value of ${show(key)} is not a decimal integer, so it cannot be incremented; it was left unchanged.`, { cause });
    this.key = key;
  }
}

/** `incr`/`decr` would leave the 64-bit signed range; the entry was left unchanged. */
export class CounterOverflowError extends CachePostgresError {
  static readonly code = 'E_COUNTER_OVERFLOW';
  readonly key: string;
  constructor(key: string, cause: unknown) {
    super(CounterOverflowError.code, `Incrementing ${show(key)} would leave the 64-bit signed integer range; it was left unchanged.`, { cause });
    this.key = key;
  }
}

/** A lock (or getOrSet's key lock) was not obtained within the time allowed. */
export class LockTimeoutError extends CachePostgresError {
  static readonly code = 'E_LOCK_TIMEOUT';
  /** The lock name, or the cache key for getOrSet. */
  readonly lockName: string;
  constructor(name: string, waitedMs: number, what = 'lock', options?: { cause?: unknown }) {
    super(LockTimeoutError.code, `Timed out after ${Math.round(waitedMs)} ms waiting for the ${what} ${show(name)}.`, options);
    this.lockName = name;
  }
}

/** Release or extend of a lock by someone who no longer holds it (its lease ran out, or another holder took it). */
export class LockNotHeldError extends CachePostgresError {
  static readonly code = 'E_LOCK_NOT_HELD';
  readonly lockName: string;
  readonly token: bigint;
  constructor(name: string, token: bigint, operation: string) {
    super(
      LockNotHeldError.code,
      `Cannot ${operation} lock ${show(name)} (token ${token}): this holder no longer holds it; its lease ran out or another holder took it.`,
    );
    this.lockName = name;
    this.token = token;
  }
}

/** A factory did not finish within `hardTimeout` (it goes on in the background and stores its result). */
export class FactoryTimeoutError extends CachePostgresError {
  static readonly code = 'E_FACTORY_HARD_TIMEOUT';
  readonly key: string;
  constructor(key: string, timeoutMs: number) {
    super(FactoryTimeoutError.code, `The factory for ${show(key)} did not finish within ${Math.round(timeoutMs)} ms (hardTimeout).`);
    this.key = key;
  }
}

/** A value too large for a wrapper's `maxValueSize`; nothing was stored. */
export class ValueTooLargeError extends CachePostgresError {
  static readonly code = 'E_VALUE_TOO_LARGE';
  readonly size: number;
  readonly limit: number;
  constructor(size: number, limit: number, setBy = 'maxValueSize') {
    super(ValueTooLargeError.code, `The value takes ${size} bytes once stored; ${setBy} allows ${limit}.`);
    this.size = size;
    this.limit = limit;
  }
}

/**
 * True for the errors that mean the call itself was wrong (a bad key, value, option or duration, a value
 * over its limit, a closed store): a fallback (failover, grace) must never hide them as an outage.
 */
export function isCallerError(error: unknown): boolean {
  return (
    error instanceof InvalidKeyError ||
    error instanceof InvalidValueError ||
    error instanceof InvalidOptionError ||
    error instanceof InvalidDurationError ||
    error instanceof ValueTooLargeError ||
    error instanceof StoreClosedError
  );
}

/** Every error class by code, for `err instanceof errors.E_INVALID_KEY` checks. */
/** `getOrSet` (and the wrappers built on it) was called on `ext.in(client)`. */
export class NotInTransactionError extends CachePostgresError {
  static readonly code = 'E_NOT_IN_TRANSACTION';
  constructor(method: string) {
    super(
      NotInTransactionError.code,
      `${method} cannot run in your transaction: it holds a lock other processes wait on while the factory runs, and the ` +
        'value it stores would be invisible to them until you commit (they would wait for your whole transaction, or compute it ' +
        `again). Call store.ext.${method} outside the transaction, or write the value with in(client).set.`,
    );
  }
}

/**
 * A statement's answer the store cannot read, or one that cannot be true: most often from a client given to
 * `ext.in(client)` that answers otherwise than node-postgres does by default (rows as arrays, as in
 * `rowMode: 'array'`; a missing column; a number as a string; no rows at all), or a batch delete whose answers say
 * there is always one more full batch. `ran` says whether anything was sent that could have written.
 */
export class UnreadableResultError extends CachePostgresError {
  static readonly code = 'E_UNREADABLE_RESULT';
  /** The statement whose answer could not be read (its label, e.g. `incr`), or `probe` for the up-front check. */
  readonly statement: string;
  /**
   * False when nothing was written: the client was refused by the read-only check made before its first
   * statement. True when the statement ran first: with `ext.in(client)`, what it wrote is part of your
   * transaction (roll it back, or back to a savepoint taken before the call).
   */
  readonly ran: boolean;
  constructor(statement: string, ran: boolean, message: string) {
    super(UnreadableResultError.code, message);
    this.statement = statement;
    this.ran = ran;
  }
}

export const errors = {
  E_INVALID_OPTION: InvalidOptionError,
  E_INVALID_DURATION: InvalidDurationError,
  E_INVALID_KEY: InvalidKeyError,
  E_INVALID_VALUE: InvalidValueError,
  E_SCHEMA: SchemaError,
  E_STORE_CLOSED: StoreClosedError,
  E_QUERY_FAILED: QueryError,
  E_CONNECTION: ConnectionError,
  E_STATEMENT_TIMEOUT: StatementTimeoutError,
  E_NOT_A_COUNTER: NotACounterError,
  E_COUNTER_OVERFLOW: CounterOverflowError,
  E_LOCK_TIMEOUT: LockTimeoutError,
  E_LOCK_NOT_HELD: LockNotHeldError,
  E_FACTORY_HARD_TIMEOUT: FactoryTimeoutError,
  E_VALUE_TOO_LARGE: ValueTooLargeError,
  E_NOT_IN_TRANSACTION: NotInTransactionError,
  E_UNREADABLE_RESULT: UnreadableResultError,
} as const;
