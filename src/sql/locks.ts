import { COLUMNS } from './rows.js';
import type { SqlContext, Statement } from './statement.js';

/** Locks: getOrSet's key locks and timeouts, the lease-table locks, and the Python library's row locks. */
export interface LocksSql {
  /** getOrSet: the advisory lock .NET's GetOrCreateAsync and Python's get_or_create take on a key. */
  readonly keyLock: Statement;
  readonly tryKeyLock: Statement;
  /**
   * getOrSet, before waiting for the key lock: `lock_timeout` ($1, such as '1500ms'; '0' for none)
   * bounds the wait, and `statement_timeout` is off, so the store's statement limit cannot cut the
   * wait a caller allowed. Returns the `statement_timeout` in force before, for {@link LocksSql.restoreTimeouts}.
   */
  readonly setWaitTimeouts: Statement;
  /** getOrSet, after the wait: no lock_timeout, and `statement_timeout` back to $1. */
  readonly restoreTimeouts: Statement;
  /** `schema.table_locks`: lease locks, apart from cache rows. */
  readonly locksDisplay: string;
  readonly lockAcquire: Statement;
  readonly lockRelease: Statement;
  readonly lockExtend: Statement;
  readonly lockHeld: Statement;
  readonly lockIsLocked: Statement;
  /**
   * `lockProtocol: 'python'`: the Python library's row locks, rows of the cache table itself (id the
   * lock name, value the owner's token as UTF-8, expiresattime the lease's end, no sliding, absolute or
   * tags). Acquire ($1 name, $2 owner bytes, $3 lease end, $4 now) takes the row when absent or expired.
   * A Node holder also holds the name's lease in the lock table (owner `python:<owner>`, the same end), so
   * that 'lease-table' stores and it exclude each other; every statement on both takes the lock table's
   * row first, then the cache row.
   */
  readonly rowLockAcquire: Statement;
  /**
   * In the acquiring transaction, first: the name's lease and next fencing token in the lock table ($1 name,
   * $2 owner, $3 lease end, $4 now), when the lease there ended or is another python-protocol holder's
   * (the cache row, taken next, decides between those). No row: a 'lease-table' holder's lease is running.
   */
  readonly rowLockToken: Statement;
  /** The holder's running lease ($1 name, $2 owner, $3 token, $4 now): its end (`lease_end`, ISO 8601 UTC). */
  readonly rowLockLease: Statement;
  /** {@link rowLockLease}, locking the lease's row until the transaction ends (release and extend). */
  readonly rowLockLeaseForUpdate: Statement;
  /** Sets the holder's lease end ($1 name, $2 owner, $3 token) to $4 ('-infinity' ends it). */
  readonly rowLockSetLease: Statement;
  /**
   * Deletes the holder's lock row ($1 name, $2 owner bytes): a row without sliding, absolute or tags
   * whose expiresattime is still its lease's end $3 (from {@link rowLockLease}); an entry is never one.
   */
  readonly rowLockRelease: Statement;
  /** Moves the lease's end to $4 when the holder's lock row is as in {@link rowLockRelease}. */
  readonly rowLockExtend: Statement;
  /** The holder's lock row, as in {@link rowLockRelease}. */
  readonly rowLockHeld: Statement;
  /** Python's is_locked: any live row under the name ($1) at $2, a lock or an entry. */
  readonly rowLockIsLocked: Statement;
  /** A running 'lease-table' lease on the name ($1) at $2 (not a python-protocol holder's). */
  readonly rowLockLeased: Statement;
  readonly locksInspect: Statement;
}

export function locksSql(ctx: SqlContext): LocksSql {
  const { qualified: t, locksQualified: l, named } = ctx;
  return {
    keyLock: named('key_lock', `SELECT pg_advisory_xact_lock(hashtextextended($1, 0))`),
    tryKeyLock: named('try_key_lock', `SELECT pg_try_advisory_xact_lock(hashtextextended($1, 0)) AS locked`),

    setWaitTimeouts: named(
      'set_wait_timeouts',
      `SELECT current_setting('statement_timeout') AS previous, set_config('lock_timeout', $1, true), set_config('statement_timeout', '0', true)`,
    ),
    restoreTimeouts: named('restore_timeouts', `SELECT set_config('lock_timeout', '0', true), set_config('statement_timeout', $1, true)`),

    locksDisplay: `${ctx.schema}.${ctx.locksTable}`,

    // Take the lease when the name is free or its lease has run out. The token is a per-name counter
    // bumped under the row lock, so each new holder gets a strictly larger one; rows are never deleted
    // (release only ends the lease), which keeps the counter. $4 = now, $3 = now + ttl.
    lockAcquire: named('lock_acquire', `INSERT INTO ${l} AS l (name, owner, token, expiresat) VALUES ($1, $2, 1, $3::timestamptz)
ON CONFLICT (name) DO UPDATE SET owner = EXCLUDED.owner, token = l.token + 1, expiresat = EXCLUDED.expiresat
WHERE l.expiresat < $4::timestamptz
RETURNING token::text AS token`),

    // Release and extend succeed only for the holder whose lease is still running.
    lockRelease: named('lock_release', `UPDATE ${l} SET expiresat = '-infinity'
WHERE name = $1 AND owner = $2 AND token = $3::bigint AND expiresat >= $4::timestamptz RETURNING 1`),

    lockExtend: named('lock_extend', `UPDATE ${l} SET expiresat = $5::timestamptz
WHERE name = $1 AND owner = $2 AND token = $3::bigint AND expiresat >= $4::timestamptz RETURNING 1`),

    lockHeld: named('lock_held', `SELECT 1 FROM ${l}
WHERE name = $1 AND owner = $2 AND token = $3::bigint AND expiresat >= $4::timestamptz`),

    lockIsLocked: named('lock_is_locked', `SELECT 1 FROM ${l} WHERE name = $1 AND expiresat >= $2::timestamptz`),

    // The Python library's set_lock, unlock and is_locked, so that both exclude each other. A takeover also
    // clears the columns a former entry under the name may have left (a sliding window would let a read move
    // the lease); Python leaves them, which changes nothing for its own calls.
    rowLockAcquire: named('row_lock_acquire', `INSERT INTO ${t} AS c (${COLUMNS}) VALUES ($1, $2::bytea, $3::timestamptz, NULL, NULL, NULL)
ON CONFLICT (id) DO UPDATE SET value = EXCLUDED.value, expiresattime = EXCLUDED.expiresattime,
  slidingexpirationinseconds = NULL, absoluteexpiration = NULL, tags = NULL
WHERE c.expiresattime < $4::timestamptz
RETURNING 1 AS acquired`),
    // The lease beside the row: a running 'lease-table' lease is never taken over nor changed here (no row
    // comes back, and the transaction writes nothing). Another python-protocol holder's lease is taken when
    // the row is (it is then gone or expired), or rolled back with the row's failed takeover.
    rowLockToken: named('row_lock_token', `INSERT INTO ${l} AS l (name, owner, token, expiresat) VALUES ($1, 'python:' || $2, 1, $3::timestamptz)
ON CONFLICT (name) DO UPDATE SET owner = EXCLUDED.owner, token = l.token + 1, expiresat = EXCLUDED.expiresat
WHERE l.expiresat < $4::timestamptz OR l.owner LIKE 'python:%'
RETURNING token::text AS token`),
    // The end as ISO 8601 in UTC, which reads back the same under any DateStyle and TimeZone.
    rowLockLease: named('row_lock_lease', `SELECT to_char(expiresat AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"') AS lease_end FROM ${l}
WHERE name = $1 AND owner = 'python:' || $2 AND token = $3::bigint AND expiresat >= $4::timestamptz`),
    rowLockLeaseForUpdate: named('row_lock_lease_for_update', `SELECT to_char(expiresat AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"') AS lease_end FROM ${l}
WHERE name = $1 AND owner = 'python:' || $2 AND token = $3::bigint AND expiresat >= $4::timestamptz FOR UPDATE`),
    rowLockSetLease: named('row_lock_set_lease', `UPDATE ${l} SET expiresat = $4::timestamptz
WHERE name = $1 AND owner = 'python:' || $2 AND token = $3::bigint`),
    // Only the lock row the holder wrote: a row someone wrote after the lease ran out (an entry, or a lock whose
    // value happens to be the same bytes) has sliding, absolute or tags, or another expiry, and is left alone.
    rowLockRelease: named('row_lock_release', `DELETE FROM ${t} WHERE id = $1 AND value = $2::bytea AND expiresattime = $3::timestamptz
  AND slidingexpirationinseconds IS NULL AND absoluteexpiration IS NULL AND tags IS NULL RETURNING 1`),
    rowLockExtend: named('row_lock_extend', `UPDATE ${t} SET expiresattime = $4::timestamptz
WHERE id = $1 AND value = $2::bytea AND expiresattime = $3::timestamptz
  AND slidingexpirationinseconds IS NULL AND absoluteexpiration IS NULL AND tags IS NULL RETURNING 1`),
    rowLockHeld: named('row_lock_held', `SELECT 1 FROM ${t} WHERE id = $1 AND value = $2::bytea AND expiresattime = $3::timestamptz
  AND slidingexpirationinseconds IS NULL AND absoluteexpiration IS NULL AND tags IS NULL`),
    rowLockIsLocked: named('row_lock_is_locked', `SELECT 1 FROM ${t} WHERE id = $1 AND expiresattime >= $2::timestamptz`),
    rowLockLeased: named('row_lock_leased', `SELECT 1 FROM ${l} WHERE name = $1 AND expiresat >= $2::timestamptz AND owner NOT LIKE 'python:%'`),

    locksInspect: named('locks_inspect', `SELECT to_regclass($1) IS NOT NULL AS exists,
  obj_description(to_regclass($1), 'pg_class') AS comment,
  (SELECT json_object_agg(attname, format_type(atttypid, atttypmod)) FROM pg_attribute
    WHERE attrelid = to_regclass($1) AND attnum > 0 AND NOT attisdropped) AS columns`),
  };
}
