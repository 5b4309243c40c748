import { createHash } from 'node:crypto';
import pg from 'pg';
import { ValueTooLargeError } from './errors.js';
import { keyDigestSql } from './key_digest.js';

/**
 * Every SQL text of the library lives here, built once per (schema, table) from escaped identifiers.
 * Statements that run on hot paths are named, so node-postgres prepares them once per connection
 * and later calls send only Bind/Execute. Names embed a hash of the text: two stores on different
 * tables sharing one pool never clash on a statement name.
 *
 * Conventions shared with .NET and Python (see the table contract):
 * - `now` is always a parameter carrying the application clock, never NOW();
 * - a row is live iff `expiresattime >= now`;
 * - a read slides `expiresattime` to LEAST(now + sliding, absolute) in the same statement, and only for
 *   rows that have a sliding expiration; rows without one are read with no write at all.
 *
 * One form serves plain PostgreSQL and a table distributed by Citus, except for a few statements that
 * carry a `citus` alternative (see {@link Statement.citus}). What the common form avoids for Citus:
 * STABLE functions over columns in writes (timestamptz + interval, convert_from), which Citus cannot
 * push to the shards; the expiry arithmetic goes through to_timestamp and timestamptz differences, which
 * are IMMUTABLE, and counters are read and written with encode/decode 'escape' (ASCII digits either way).
 */

/**
 * A statement: `name` is what node-postgres prepares it under, `label` is what errors show. A statement
 * with `prepared: false` is sent unnamed and planned for its actual parameters at every run: right for
 * rare bulk operations whose best plan depends on the values (how common a tag is), wrong for hot paths.
 */
export interface Statement {
  readonly name: string;
  readonly label: string;
  readonly text: string;
  readonly prepared: boolean;
  /**
   * The statement to run instead when the table is distributed by Citus, where the common form cannot
   * run or runs badly: batch deletes and the expiry scan lock their victims FOR UPDATE (refused in a
   * multi-shard query); the pipelined lane's fail-fast statements call set_config (VOLATILE) in a write's
   * WHERE, which Citus refuses and would not pass to the shards anyway; stats measure the coordinator's
   * empty shell; a pattern page would ship its values between nodes. The executor picks it; nothing else
   * needs to know.
   */
  readonly citus?: Statement;
}

/** Key space of our own advisory locks (`pg_*_advisory_*(int4, int4)`): the two-int form never collides with
 *  the bigint locks `hashtextextended(key, 0)` that .NET, Python and getOrSet take on cache keys. */
export const LOCK_CLASS = 0x43504731; // 'CPG1'

export interface Sql {
  readonly schema: string;
  readonly table: string;
  /** `"schema"."table"`, quoted. */
  readonly qualified: string;
  /** `schema.table`, for messages and lock names. */
  readonly display: string;
  readonly get: Statement;
  readonly getMany: Statement;
  readonly refresh: Statement;
  /** Pipelined reads: slide the sliding rows among ids $1 at now $2, then select them (same parameters). */
  readonly slideMany: Statement;
  /**
   * slideMany and upsertRows for a shared pipelined connection: they wait at most
   * {@link LANE_LOCK_TIMEOUT} for a row lock held elsewhere (then fail with 55P03, writing nothing),
   * so one locked row cannot hold the pipelines queued behind them; the caller runs the plain form.
   */
  readonly slideManyFailFast: Statement;
  readonly upsertRowsFailFast: Statement;
  /** The LISTEN/NOTIFY channel of the in-process tiers of this table (an identifier). */
  readonly channel: string;
  /** pg_notify($1 channel, $2 payload). */
  readonly notify: Statement;
  readonly selectMany: Statement;
  /** selectMany for text: the value in `escape` form as `esc` (decode with textOfEscaped). */
  readonly selectManyText: Statement;
  readonly has: Statement;
  readonly hasMany: Statement;
  readonly info: Statement;
  readonly upsert: Statement;
  readonly upsertRows: Statement;
  /** One tick's gets and sets in one statement: the read's ids and now as $1, $2, then upsertRows' parameters. */
  readonly readWrite: Statement;
  readonly delete: Statement;
  readonly deleteMany: Statement;
  readonly deleteRangeBatch: Statement;
  readonly iterateRange: Statement;
  readonly scanPattern: Statement;
  readonly getPatternPage: Statement;
  readonly deletePatternBatch: Statement;
  readonly deleteTagsAnyBatch: Statement;
  readonly deleteTagsAllBatch: Statement;
  readonly incr: Statement;
  /** getOrSet: the advisory lock .NET's GetOrCreateAsync and Python's get_or_create take on a key. */
  readonly keyLock: Statement;
  readonly tryKeyLock: Statement;
  /**
   * getOrSet, before waiting for the key lock: `lock_timeout` ($1, such as '1500ms'; '0' for none)
   * bounds the wait, and `statement_timeout` is off, so the store's statement limit cannot cut the
   * wait a caller allowed. Returns the `statement_timeout` in force before, for {@link Sql.restoreTimeouts}.
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
  readonly deleteExpiredBatch: Statement;
  /** Counts and size for stats(). */
  readonly stats: Statement;
  /** A value even if expired, when it expired no earlier than $2 (grace and failover). Never slides. */
  readonly getStale: Statement;
  /** get, plus the row's absolute expiry (for early refresh). */
  readonly getWithExpiry: Statement;
  readonly inspect: Statement;
  /**
   * Citus only (run when `inspect` found the extension): how the table is distributed ($1, the
   * qualified name) and whether this connection is on the coordinator.
   */
  readonly citusInspect: Statement;
  /** Citus: distributes the cache table by id ($1 shard count or NULL, $2 colocate_with or 'default'). */
  readonly distributeTable: string;
  /** Citus: distributes the lock table by name, beside the cache table's shards. */
  readonly distributeLocksTable: string;
  readonly ddlLock: Statement;
  /** The server's clock (`clock_timestamp()`), in epoch milliseconds, as `ms`: see DatabaseClock. */
  readonly clock: Statement;
  /** The columns of table $1 (a regclass text: quoted schema.table), and whether it exists; for invalidateOn. */
  readonly tableColumns: Statement;
  /**
   * For invalidateOn: each column of table $1 named in $2 (text[]), its declared type, and the types its
   * text is made of, outermost first (a domain's base, an array's element, a range's subtype), as JSON
   * `[{ type, kind, output_builtin, schema, name }]`: see renderableProblem in ext/invalidation.ts.
   */
  readonly columnTypes: Statement;
  /** This cache table's invalidation functions (invalidateOn): each one's comment (marker and JSON). */
  readonly listInvalidations: Statement;
  /** DDL pieces, run only when the inspection says they are missing. */
  readonly ddl: {
    readonly createSchema: string;
    readonly createTable: (useWal: boolean) => string;
    readonly addTagsColumn: string;
    readonly createExpiryIndex: string;
    readonly createTagsIndex: string;
    readonly createLocksTable: string;
    readonly commentLocksTable: string;
  };
}

const COLUMNS = 'id, value, expiresattime, slidingexpirationinseconds, absoluteexpiration, tags';
/**
 * The largest value the store writes, and reads: 64 MiB. A bigger value read as text would build a
 * string past V8's limit (about 512 MiB of characters; `escape` form takes up to 4 per byte) inside
 * node-postgres, which ends the process. PostgreSQL's own limit for bytea is 1 GB.
 */
export const MAX_VALUE_BYTES = 64 * 1024 * 1024;

/**
 * Values are read as base64 text, decoded by {@link bytesOf}. The text format's hex for bytea is
 * twice the size and cost node-postgres 0.21 ms of CPU per 20 rows of 1 KiB against 0.12 ms for
 * base64 (its binary mode is no way out: it decodes every field as UTF-8 first, corrupting bytes).
 * A value over {@link MAX_VALUE_BYTES} (stored by another writer) is not sent: `!` and its size come
 * instead, which {@link oversize} recognises (`!` is not a base64 character).
 */
const VALUE = `CASE WHEN octet_length(value) <= ${MAX_VALUE_BYTES} THEN encode(value, 'base64') ELSE '!' || octet_length(value) END AS b64`;
const SET_ALL = `value = EXCLUDED.value, expiresattime = EXCLUDED.expiresattime,
  slidingexpirationinseconds = EXCLUDED.slidingexpirationinseconds,
  absoluteexpiration = EXCLUDED.absoluteexpiration, tags = EXCLUDED.tags`;

/** Builds every statement for one table. Identifiers must already be validated lower-case names. */
/**
 * @param slidingWriteThreshold a read extends a sliding row only when that moves its expiry by at least
 *   this fraction of the sliding window, so a hot key is not rewritten on every read (0: every read)
 */
/**
 * @param withExpiry reads also return `until` (the row's expiry in epoch ms) and, for a sliding row,
 *   `sw` and `absms`: what the in-process tier keeps, for how long, and how it touches the row
 */
/**
 * How long a statement on a shared pipelined connection waits for a row lock held elsewhere. Far
 * above a row lock's usual life (one statement of another writer); a lock held longer is someone's
 * transaction, and the statement is retried on a connection of its own.
 */
export const LANE_LOCK_TIMEOUT = '20ms';

/** Sets `lock_timeout` for the rest of its statement (is_local: the statement's own implicit transaction). */
const SET_LANE_LOCK_TIMEOUT = `set_config('lock_timeout', '${LANE_LOCK_TIMEOUT}', true)`;

/**
 * A filter that is always true and sets the lane's `lock_timeout`. As an uncorrelated subquery it is
 * planned as a one-time filter: it runs once, before the first row is read (and so locked), not per row.
 */
const FAIL_FAST = `(SELECT ${SET_LANE_LOCK_TIMEOUT}) IS NOT NULL`;

export function buildSql(schema: string, table: string, slidingWriteThreshold = 0, withExpiry = false): Sql {
  if (!(slidingWriteThreshold >= 0 && slidingWriteThreshold <= 1)) throw new RangeError('slidingWriteThreshold must be in [0, 1]');
  const t = qualifiedName(schema, table);
  const display = `${schema}.${table}`;
  const locksTable = derivedName(table, 'locks');
  const l = `${pg.escapeIdentifier(schema)}.${pg.escapeIdentifier(locksTable)}`;
  // With the local tier: the row's expiry (`until`, epoch ms), and for a sliding row its window (`sw`,
  // seconds) and absolute expiry (`absms`, epoch ms; NULL for none).
  const epochMs = (column: string) =>
    `CASE WHEN ${column} = 'infinity' THEN 'Infinity'::float8 ELSE (extract(epoch FROM ${column}) * 1000)::float8 END`; // spelled out: before 14, extract gave no Infinity
  const until = (sliding: string, expires: string, abs: string) =>
    withExpiry ? `, ${epochMs(expires)} AS until, ${sliding} AS sw, CASE WHEN ${sliding} IS NULL THEN NULL ELSE ${epochMs(abs)} END AS absms` : '';
  const readColumns = `id, ${VALUE}${until('hit.sliding', 'hit.expires', 'hit.abs')}`;
  const named = (label: string, text: string, prepared = true, citusText?: string): Statement =>
    Object.freeze({
      label,
      text,
      prepared,
      name: `cp_${label}_${hash(`${t}\n${text}`)}`,
      ...(citusText === undefined ? {} : { citus: named(label, citusText, prepared) }),
    });

  /**
   * A read that slides in the same round trip: `hit` selects the live rows matching `where`; the
   * data-modifying CTE `slid` writes only rows that have a sliding expiration, to
   * LEAST(now + sliding, absolute), so rows without one are read with no write at all, and only when
   * that moves the expiry forward by more than the threshold's share of the window (a hot key is not
   * rewritten on every read; an expiry is never moved back). `now` is the application clock's placeholder.
   */
  // now + sliding seconds, IMMUTABLE all the way (timestamptz + interval is STABLE): the seconds since the
  // epoch of now (a timestamptz difference), plus the window, back through to_timestamp (microseconds).
  const slideTo = (now: string, sliding = 'hit.sliding', abs = 'hit.abs') =>
    `LEAST(to_timestamp(extract(epoch FROM ${now}::timestamptz - 'epoch'::timestamptz)::float8 + ${sliding}), COALESCE(${abs}, 'infinity'::timestamptz))`;
  /**
   * The slide's second condition: it moves the expiry by more than the threshold's share of the window.
   * Only a finite expiry below the target is subtracted (a difference with an infinity is an error).
   */
  const movesEnough = (target: string, expires: string, sliding: string) =>
    `CASE WHEN ${expires} < ${target} THEN ${target} - ${expires} > ${sliding} * ${Number(slidingWriteThreshold)} * INTERVAL '1 second' ELSE false END`;
  const readSliding = (where: string, now: string, select: string, tail = '', alsoRequire = '') => `WITH hit AS (
  SELECT id, value, slidingexpirationinseconds AS sliding, absoluteexpiration AS abs, expiresattime AS expires
  FROM ${t} WHERE ${where} AND expiresattime >= ${now}::timestamptz${tail}
), slid AS (
  UPDATE ${t} AS c SET expiresattime = ${slideTo(now)}
  FROM hit WHERE c.id = hit.id AND hit.sliding IS NOT NULL AND c.expiresattime >= ${now}::timestamptz${alsoRequire && ` AND ${alsoRequire}`}
    AND ${movesEnough(slideTo(now), 'hit.expires', 'hit.sliding')}
)
SELECT ${select} FROM hit`;

  /**
   * One batch of a large delete. Victims are locked in one order that every concurrent batch delete
   * shares (key order; for tags byte order, COLLATE "C", as invalidateOn's triggers take them), so they
   * never deadlock each other; a row changed meanwhile is re-checked against `where`. "selected" (not
   * "deleted") tells whether another batch is needed: rows someone else deleted meanwhile must not end
   * the loop early. "live" counts rows that had not expired.
   */
  const deleteBatch = (where: string, limit: string, now: string, order = ' ORDER BY id') => `WITH victims AS (
  SELECT id FROM ${t} WHERE ${where}${order} LIMIT ${limit} FOR UPDATE
), gone AS (
  DELETE FROM ${t} AS c USING victims WHERE c.id = victims.id RETURNING c.expiresattime >= ${now}::timestamptz AS live
)
SELECT (SELECT count(*) FROM victims)::int AS selected, (SELECT count(*) FROM gone WHERE live)::int AS deleted`;
  /**
   * The same batch on a distributed table: the victims are read without a lock (Citus refuses FOR UPDATE
   * across shards) and the delete checks `where` again, so a row changed meanwhile is kept as the locked
   * form keeps it. Concurrent batches may then wait on each other's rows; Citus' distributed deadlock
   * detection cancels one of a cycle, which is retried (40P01).
   */
  const deleteBatchCitus = (where: string, limit: string, now: string, order = ' ORDER BY id') => `WITH victims AS (
  SELECT id FROM ${t} WHERE ${where}${order} LIMIT ${limit}
), gone AS (
  DELETE FROM ${t} AS c WHERE c.id IN (SELECT id FROM victims) AND ${where}
  RETURNING c.expiresattime >= ${now}::timestamptz AS live
)
SELECT (SELECT count(*) FROM victims)::int AS selected, (SELECT count(*) FROM gone WHERE live)::int AS deleted`;
  const batchDelete = (label: string, where: string, limit: string, now: string, order?: string, prepared = true) =>
    named(label, deleteBatch(where, limit, now, order), prepared, deleteBatchCitus(where, limit, now, order));

  /**
   * A multi-row upsert whose parameters are numbered from $b: ids, all values concatenated into one
   * bytea (sent as raw bytes: a bytea[] parameter is hex-encoded in JS, which cost a third of a
   * write-heavy run's CPU), expiries, sliding seconds, absolute expiries, tags as JSON text (a text[][]
   * parameter would have to be rectangular), then each value's offset and length in the bytea.
   */
  const insertRows = (b: number, where = '') => `INSERT INTO ${t} (${COLUMNS})
SELECT u.id, substring($${b + 1}::bytea FROM u.off FOR u.len), u.expires, u.sliding, u.abs,
  CASE WHEN u.tags IS NULL THEN NULL ELSE ARRAY(SELECT json_array_elements_text(u.tags::json)) END
FROM UNNEST($${b}::text[], $${b + 2}::timestamptz[], $${b + 3}::bigint[], $${b + 4}::timestamptz[], $${b + 5}::text[],
  $${b + 6}::int[], $${b + 7}::int[]) AS u(id, expires, sliding, abs, tags, off, len)${where}
ON CONFLICT (id) DO UPDATE SET ${SET_ALL}`;

  // Prefix operations use a key range, not LIKE alone: a prepared statement's generic plan cannot
  // turn `LIKE $1` into index bounds, but `id >= $1 AND id < $2` on the COLLATE "C" key always is
  // (the whole table is the range ['', ABOVE_ALL_KEYS)). Patterns add their LIKE as a filter.
  // The fail-fast form sets lock_timeout only for a row that will be updated (CASE fixes the order), so
  // a read of rows that do not slide, the common case, pays nothing for it.
  const slideRows = (failFast: boolean) => {
    const slides = `expiresattime >= $2::timestamptz AND slidingexpirationinseconds IS NOT NULL
  AND ${movesEnough(slideTo('$2', 'slidingexpirationinseconds', 'absoluteexpiration'), 'expiresattime', 'slidingexpirationinseconds')}`;
    return `UPDATE ${t} SET expiresattime = ${slideTo('$2', 'slidingexpirationinseconds', 'absoluteexpiration')}
WHERE id = ANY($1::text[]) AND ${failFast ? `CASE WHEN ${slides} THEN ${SET_LANE_LOCK_TIMEOUT} IS NOT NULL END` : slides}`;
  };

  // Compared as text on both sides: the upper bound is longer than the column allows (ABOVE_ALL_KEYS), and
  // Citus, pruning shards on the distribution column, casts a bound to the column's type, which fails.
  // The key index still serves the range (varchar's btree opclass is text's; the cast is a relabel).
  const inRange = 'id::text >= $1::text AND id::text < $2::text';
  const inPattern = `${inRange} AND id LIKE $3 ESCAPE '\\'`;

  return Object.freeze({
    schema,
    table,
    qualified: t,
    display,

    // The single-key reads name the key in the slide too (`c.id = $1`): then every part of the statement is
    // on one key, which Citus routes whole to the key's shard (without it: a read, an UPDATE joined on
    // every shard, and a read of the result, as three distributed steps).
    get: named('get', readSliding('id = $1', '$2', VALUE, '', 'c.id = $1')),
    getMany: named('get_many', readSliding('id = ANY($1::text[])', '$2', readColumns)),
    refresh: named('refresh', readSliding('id = $1', '$2', 'count(*)::int AS live', '', 'c.id = $1')),

    // A pipelined read is these two plain statements in one round trip (see the `pipelining` option):
    // the slide first, then the read. PostgreSQL runs the pair in about half the time of getMany, whose
    // data-modifying CTE costs as much when it writes nothing (measured with pgbench on 20-key reads).
    slideMany: named('slide_many', slideRows(false)),
    slideManyFailFast: named('slide_many_fail_fast', slideRows(true), true, slideRows(false)),
    // The read for callers that want text (Keyv's JSON): `escape` form, which carries plain ASCII as
    // itself (see textOfEscaped); base64 would cost a decode and a Buffer per row.
    // Over MAX_VALUE_BYTES: a backslash, `!` and the size, which no escape-form text starts with (a backslash
    // there is followed by another or by three octal digits).
    selectManyText: named('select_many_text', `SELECT id, CASE WHEN octet_length(value) <= ${MAX_VALUE_BYTES} THEN encode(value, 'escape')
  ELSE '\\!' || octet_length(value) END AS esc${until('slidingexpirationinseconds', 'expiresattime', 'absoluteexpiration')}
FROM ${t} WHERE id = ANY($1::text[]) AND expiresattime >= $2::timestamptz`),
    selectMany: named('select_many', `SELECT id, ${VALUE}${until('slidingexpirationinseconds', 'expiresattime', 'absoluteexpiration')}
FROM ${t} WHERE id = ANY($1::text[]) AND expiresattime >= $2::timestamptz`),

    channel: `cp_${hash(`${t}`)}`,
    notify: named('notify', 'SELECT pg_notify($1, $2)'),

    has: named('has', `SELECT 1 AS live FROM ${t} WHERE id = $1 AND expiresattime >= $2::timestamptz`),

    hasMany: named('has_many', `SELECT id FROM ${t} WHERE id = ANY($1::text[]) AND expiresattime >= $2::timestamptz`),

    info: named('info', `SELECT expiresattime, slidingexpirationinseconds AS sliding, absoluteexpiration AS abs, tags
FROM ${t} WHERE id = $1 AND expiresattime >= $2::timestamptz`),

    upsert: named('upsert', `INSERT INTO ${t} (${COLUMNS})
VALUES ($1, $2::bytea, $3::timestamptz, $4::bigint, $5::timestamptz, $6::text[])
ON CONFLICT (id) DO UPDATE SET ${SET_ALL}`),

    // One statement for any number of rows, each with its own expiry and tags. Callers remove duplicate
    // ids first: ON CONFLICT cannot touch one row twice in a statement.
    upsertRows: named('upsert_rows', insertRows(1)),
    upsertRowsFailFast: named('upsert_rows_fail_fast', insertRows(1, `\nWHERE ${FAIL_FAST}`), true, insertRows(1)),

    // The reads see the table as it was before this statement's writes (one snapshot): as if the tick's
    // gets ran just before its sets. Rows being written are not slid, so no row is modified twice.
    readWrite: named(
      'read_write',
      `WITH written AS (\n${insertRows(3)}\nRETURNING 1\n), ${readSliding('id = ANY($1::text[])', '$2', readColumns, '', 'c.id <> ALL($3::text[])').slice('WITH '.length)}`,
    ),

    delete: named('delete', `DELETE FROM ${t} WHERE id = $1 RETURNING expiresattime >= $2::timestamptz AS live`),

    deleteMany: named('delete_many', `DELETE FROM ${t} WHERE id = ANY($1::text[]) RETURNING id, expiresattime >= $2::timestamptz AS live`),

    deleteRangeBatch: batchDelete('delete_range_batch', inRange, '$3', '$4'),

    // Keyset pagination: $4 is the last key of the previous page ('' on the first, below every key).
    iterateRange: named('iterate_range', `SELECT id, ${VALUE} FROM ${t}
WHERE ${inRange} AND id > $4 AND expiresattime >= $3::timestamptz ORDER BY id LIMIT $5`),

    scanPattern: named('scan_pattern', `SELECT id FROM ${t}
WHERE ${inPattern} AND id > $4 AND expiresattime >= $5::timestamptz ORDER BY id LIMIT $6`),

    getPatternPage: named(
      'get_pattern_page',
      `${readSliding(`${inPattern} AND id > $4`, '$5', `id, ${VALUE}`, ' ORDER BY id LIMIT $6')} ORDER BY id`,
      true,
      // Citus runs each CTE as a step of its own and ships its result between nodes: the page's rows
      // travel without their values (which can be megabytes each), then the values are read where they are.
      `WITH hit AS (
  SELECT id, slidingexpirationinseconds AS sliding, absoluteexpiration AS abs, expiresattime AS expires
  FROM ${t} WHERE ${inPattern} AND id > $4 AND expiresattime >= $5::timestamptz ORDER BY id LIMIT $6
), slid AS (
  UPDATE ${t} AS c SET expiresattime = ${slideTo('$5')}
  FROM hit WHERE c.id = hit.id AND hit.sliding IS NOT NULL AND c.expiresattime >= $5::timestamptz
    AND ${movesEnough(slideTo('$5'), 'hit.expires', 'hit.sliding')}
)
SELECT id, ${VALUE} FROM ${t} WHERE id IN (SELECT id FROM hit) ORDER BY id`,
    ),

    deletePatternBatch: batchDelete('delete_pattern_batch', inPattern, '$4', '$5'),

    // && (any tag) and @> (all tags) are both served by the GIN index on tags, but only a plan made for
    // the actual tags knows that a rare tag wants the index: a generic plan guesses 1% and scans the table.
    // Victims in key order, byte for byte, as invalidateOn's triggers lock them: a tag delete and an application
    // write invalidating the same entries cannot deadlock (the plan for the actual tags sorts the index's few hits).
    deleteTagsAnyBatch: batchDelete('delete_tags_any_batch', 'tags && $1::text[]', '$2', '$3', ' ORDER BY id COLLATE "C"', false),
    deleteTagsAllBatch: batchDelete('delete_tags_all_batch', 'tags @> $1::text[]', '$2', '$3', ' ORDER BY id COLLATE "C"', false),

    // The Python library's counter, fixed: an expired row restarts from $2 with fresh expiry columns
    // and tags (Python keeps the old sliding/absolute columns, so its "infinite" counter slides again).
    // Stored as decimal UTF-8 text, which .NET's GetString and Python's incr read. Digits are ASCII, so
    // encode/decode 'escape' (IMMUTABLE, which Citus needs) read and write the same bytes as UTF-8 would;
    // any other byte comes out escaped and fails the bigint cast (22P02), as invalid UTF-8 did (22021).
    incr: named('incr', `INSERT INTO ${t} AS c (${COLUMNS})
VALUES ($1, decode($2::bigint::text, 'escape'), $3::timestamptz, NULL, $4::timestamptz, $5::text[])
ON CONFLICT (id) DO UPDATE SET
  value = CASE WHEN c.expiresattime < $6::timestamptz THEN EXCLUDED.value
    ELSE decode((encode(c.value, 'escape')::bigint + $2::bigint)::text, 'escape') END,
  expiresattime = CASE WHEN c.expiresattime < $6::timestamptz THEN EXCLUDED.expiresattime ELSE c.expiresattime END,
  slidingexpirationinseconds = CASE WHEN c.expiresattime < $6::timestamptz THEN NULL ELSE c.slidingexpirationinseconds END,
  absoluteexpiration = CASE WHEN c.expiresattime < $6::timestamptz THEN EXCLUDED.absoluteexpiration ELSE c.absoluteexpiration END,
  tags = CASE WHEN c.expiresattime < $6::timestamptz THEN EXCLUDED.tags ELSE c.tags END
WHERE c.expiresattime < $6::timestamptz OR encode(c.value, 'escape')::bigint BETWEEN $7::bigint AND $8::bigint
RETURNING encode(c.value, 'escape') AS value`),

    // A try-lock per batch: one instance deletes at a time across processes, the others skip, and the
    // lock lives only as long as the statement (safe behind PgBouncer in transaction mode).
    deleteExpiredBatch: named('delete_expired_batch', `WITH lock AS (
  SELECT pg_try_advisory_xact_lock(${LOCK_CLASS}, hashtext($3)) AS ok
), victims AS (
  SELECT id FROM ${t}
  WHERE expiresattime < $1::timestamptz AND (SELECT ok FROM lock)
  ORDER BY expiresattime LIMIT $2 FOR UPDATE SKIP LOCKED
), gone AS (
  DELETE FROM ${t} AS c USING victims WHERE c.id = victims.id AND c.expiresattime < $1::timestamptz RETURNING 1
)
SELECT (SELECT ok FROM lock) AS locked, (SELECT count(*) FROM victims)::int AS selected,
  (SELECT count(*) FROM gone)::int AS deleted`,
      true,
      // Distributed: no SKIP LOCKED (no FOR UPDATE across shards); a row locked elsewhere is waited for.
      `WITH lock AS (
  SELECT pg_try_advisory_xact_lock(${LOCK_CLASS}, hashtext($3)) AS ok
), victims AS (
  SELECT id FROM ${t}
  WHERE expiresattime < $1::timestamptz AND (SELECT ok FROM lock)
  ORDER BY expiresattime LIMIT $2
), gone AS (
  DELETE FROM ${t} AS c WHERE c.id IN (SELECT id FROM victims) AND c.expiresattime < $1::timestamptz RETURNING 1
)
SELECT (SELECT ok FROM lock) AS locked, (SELECT count(*) FROM victims)::int AS selected,
  (SELECT count(*) FROM gone)::int AS deleted`,
    ),

    stats: named('stats', `SELECT count(*)::int8 AS rows, count(*) FILTER (WHERE expiresattime >= $1::timestamptz)::int8 AS live,
  pg_total_relation_size($2::regclass)::int8 AS bytes FROM ${t}`,
      true,
      // The coordinator's table is an empty shell: the shards' size is citus_total_relation_size's.
      `SELECT count(*)::int8 AS rows, count(*) FILTER (WHERE expiresattime >= $1::timestamptz)::int8 AS live,
  citus_total_relation_size($2::regclass)::int8 AS bytes FROM ${t}`,
    ),

    getStale: named('get_stale', `SELECT ${VALUE}, expiresattime FROM ${t} WHERE id = $1 AND expiresattime >= $2::timestamptz`),

    getWithExpiry: named('get_with_expiry', readSliding('id = $1', '$2', `${VALUE}, abs`, '', 'c.id = $1')),

    // What exists, read from the catalog (never by name: rule 19 of the contract).
    inspect: named('inspect', `SELECT EXISTS (SELECT 1 FROM pg_namespace WHERE nspname = $1) AS schema_exists,
  current_setting('server_encoding') AS encoding, EXISTS (SELECT 1 FROM pg_extension WHERE extname = 'citus') AS citus, t.*
FROM (SELECT 1) AS one LEFT JOIN LATERAL (
  SELECT c.oid::int8 AS oid,
    (SELECT json_object_agg(a.attname, format_type(a.atttypid, a.atttypmod))
       FROM pg_attribute a WHERE a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped) AS columns,
    EXISTS (SELECT 1 FROM pg_index i JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = i.indkey[0]
            WHERE i.indrelid = c.oid AND a.attname = 'expiresattime') AS has_expiry_index,
    EXISTS (SELECT 1 FROM pg_index i JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = i.indkey[0]
            JOIN pg_class ic ON ic.oid = i.indexrelid JOIN pg_am am ON am.oid = ic.relam
            WHERE i.indrelid = c.oid AND a.attname = 'tags' AND am.amname = 'gin') AS has_tags_index
  FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
  WHERE n.nspname = $1 AND c.relname = $2 AND c.relkind IN ('r', 'p')
) AS t ON true`),

    // Unprepared: these names exist only where Citus is installed.
    citusInspect: named('citus_inspect', `SELECT p.partmethod::text AS method, column_to_column_name(p.logicalrelid, p.partkey) AS column,
  citus_is_coordinator() AS coordinator
FROM (SELECT 1) AS one LEFT JOIN pg_dist_partition p ON p.logicalrelid = to_regclass($1)`, false),
    distributeTable: `SELECT create_distributed_table(${pg.escapeLiteral(t)}, 'id', shard_count => $1::int, colocate_with => $2)`,
    distributeLocksTable: `SELECT create_distributed_table(${pg.escapeLiteral(l)}, 'name', colocate_with => ${pg.escapeLiteral(t)})`,

    keyLock: named('key_lock', `SELECT pg_advisory_xact_lock(hashtextextended($1, 0))`),
    tryKeyLock: named('try_key_lock', `SELECT pg_try_advisory_xact_lock(hashtextextended($1, 0)) AS locked`),

    setWaitTimeouts: named(
      'set_wait_timeouts',
      `SELECT current_setting('statement_timeout') AS previous, set_config('lock_timeout', $1, true), set_config('statement_timeout', '0', true)`,
    ),
    restoreTimeouts: named('restore_timeouts', `SELECT set_config('lock_timeout', '0', true), set_config('statement_timeout', $1, true)`),

    locksDisplay: `${schema}.${locksTable}`,

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

    clock: named('clock', `SELECT (extract(epoch FROM clock_timestamp()) * 1000)::float8 AS ms`),

    ddlLock: named('ddl_lock', `SELECT pg_advisory_xact_lock(${LOCK_CLASS}, hashtext($1))`),

    tableColumns: named('table_columns', `SELECT to_regclass($1) IS NOT NULL AS exists, c.relkind::text AS kind,
  (SELECT json_agg(a.attname ORDER BY a.attnum) FROM pg_attribute a WHERE a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped) AS columns
FROM (SELECT 1) AS one LEFT JOIN pg_class c ON c.oid = to_regclass($1)`, false),
    columnTypes: named('column_types', `WITH RECURSIVE walk(col, typ, depth) AS (
  SELECT a.attname::text, a.atttypid, 0 FROM pg_attribute a
  WHERE a.attrelid = to_regclass($1) AND a.attname = ANY($2::text[]) AND a.attnum > 0 AND NOT a.attisdropped
  UNION ALL
  SELECT w.col, inner_type.typ, w.depth + 1 FROM walk w JOIN pg_type t ON t.oid = w.typ
  CROSS JOIN LATERAL (SELECT CASE
      WHEN t.typtype = 'd' THEN t.typbasetype
      WHEN t.typtype = 'r' THEN (SELECT rngsubtype FROM pg_range WHERE rngtypid = t.oid)
      WHEN t.typtype = 'm' THEN (SELECT rngsubtype FROM pg_range WHERE rngmultitypid = t.oid)
      WHEN t.typcategory = 'A' AND t.typelem <> 0 THEN t.typelem END AS typ) AS inner_type
  WHERE inner_type.typ IS NOT NULL AND w.depth < 16
)
SELECT w.col AS column, (SELECT format_type(a.atttypid, a.atttypmod) FROM pg_attribute a
    WHERE a.attrelid = to_regclass($1) AND a.attname = w.col AND NOT a.attisdropped) AS declared,
  json_agg(json_build_object('type', format_type(t.oid, NULL), 'kind', t.typtype::text, 'output_builtin', t.typoutput::oid < 16384,
    'schema', n.nspname, 'name', t.typname) ORDER BY w.depth) AS walk
FROM walk w JOIN pg_type t ON t.oid = w.typ JOIN pg_namespace n ON n.oid = t.typnamespace
GROUP BY w.col ORDER BY w.col`, false),
    listInvalidations: named('list_invalidations', `SELECT d.description AS comment FROM pg_proc p
JOIN pg_namespace n ON n.oid = p.pronamespace
JOIN pg_description d ON d.objoid = p.oid AND d.classoid = 'pg_proc'::regclass
WHERE n.nspname = ${pg.escapeLiteral(schema)} AND d.description LIKE ${pg.escapeLiteral(`${INVALIDATION_MARK}%`)}
ORDER BY 1`, false),

    ddl: Object.freeze({
      createSchema: `CREATE SCHEMA IF NOT EXISTS ${pg.escapeIdentifier(schema)}`,
      // Exactly the .NET DDL, plus the nullable tags column of the Python library.
      createTable: (useWal: boolean) => `CREATE ${useWal ? '' : 'UNLOGGED '}TABLE IF NOT EXISTS ${t} (
  id VARCHAR(449) COLLATE "C" PRIMARY KEY,
  value BYTEA NOT NULL,
  expiresattime TIMESTAMPTZ NOT NULL,
  slidingexpirationinseconds BIGINT NULL,
  absoluteexpiration TIMESTAMPTZ NULL,
  tags TEXT[] NULL
)`,
      addTagsColumn: `ALTER TABLE ${t} ADD COLUMN IF NOT EXISTS tags TEXT[] NULL`,
      createExpiryIndex: `CREATE INDEX IF NOT EXISTS ${pg.escapeIdentifier(indexName(table, 'expiresattime'))}
  ON ${t} (expiresattime) WITH (deduplicate_items = True)`,
      createTagsIndex: `CREATE INDEX IF NOT EXISTS ${pg.escapeIdentifier(indexName(table, 'tags'))} ON ${t} USING GIN (tags)`,
      // Always WAL-logged: a crash must not reset the fencing tokens.
      createLocksTable: `CREATE TABLE IF NOT EXISTS ${l} (
  name VARCHAR(449) COLLATE "C" PRIMARY KEY,
  owner TEXT NOT NULL,
  token BIGINT NOT NULL,
  expiresat TIMESTAMPTZ NOT NULL
)`,
      // Which cache table the lock table serves: a second cache table whose derived name comes out the
      // same is refused rather than sharing its locks (see checkLocksTable).
      commentLocksTable: `COMMENT ON TABLE ${l} IS ${pg.escapeLiteral(locksComment(display))}`,
    }),
  });
}

/** The bytes of a value read by one of the statements above (which send it as base64 text). */
/**
 * The bytes of a value read in PostgreSQL's `escape` form: bytes 1-127 as themselves, a backslash
 * doubled, NUL and bytes 128-255 as a backslash and three octal digits.
 */
export function bytesOfEscaped(text: string): Buffer {
  if (text.indexOf('\\') === -1) return Buffer.from(text, 'latin1');
  const out = Buffer.allocUnsafe(text.length);
  let length = 0;
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i);
    if (c !== 0x5c) out[length++] = c;
    else if (text.charCodeAt(i + 1) === 0x5c) {
      out[length++] = 0x5c;
      i += 1;
    } else {
      out[length++] = ((text.charCodeAt(i + 1) - 48) << 6) | ((text.charCodeAt(i + 2) - 48) << 3) | (text.charCodeAt(i + 3) - 48);
      i += 3;
    }
  }
  return out.subarray(0, length);
}

/**
 * The UTF-8 text of a value read in `escape` form. Without a backslash every byte is ASCII and the
 * text is already the answer: no decoding, no copy (the common case for the JSON Keyv stores).
 */
export function textOfEscaped(text: string): string {
  return text.indexOf('\\') === -1 ? text : bytesOfEscaped(text).toString('utf8');
}

/**
 * The size of a value over {@link MAX_VALUE_BYTES} that a read sent in its place (base64 reads: `!`
 * and the size; `escape` reads: a backslash, `!` and the size), or undefined for a value sent.
 */
export function oversize(row: { b64: string } | { esc: string }): number | undefined {
  if ('b64' in row) return row.b64.charCodeAt(0) === 33 /* ! */ ? Number(row.b64.slice(1)) : undefined;
  return row.esc.startsWith('\\!') ? Number(row.esc.slice(2)) : undefined;
}

/**
 * The bytes of a value read in base64.
 * @throws {ValueTooLargeError} for a value over {@link MAX_VALUE_BYTES}, which was not sent
 */
export function bytesOf(row: { b64: string }): Buffer {
  const size = oversize(row);
  if (size !== undefined) throw tooLarge(size);
  return Buffer.from(row.b64, 'base64');
}

/** The error for a stored value of `size` bytes, over {@link MAX_VALUE_BYTES}. */
export function tooLarge(size: number): ValueTooLargeError {
  return new ValueTooLargeError(size, MAX_VALUE_BYTES, 'the store (MAX_VALUE_BYTES)');
}

/**
 * Index names are per schema, so ours carry the table name (.NET's fixed `ix_expiresattime` makes a
 * second cache table in a schema silently go without one).
 */
export function indexName(table: string, column: string): string {
  return derivedName(`ix_${table}`, column);
}

/**
 * `${base}_${suffix}`, kept within PostgreSQL's 63 bytes: a longer name would be truncated, and two
 * long names could then collide, so those keep the head of the base and 64 bits of its SHA-256 (a
 * 32-bit hash was brute-forced into a collision in seconds). The objects found under a derived name
 * are checked to be ours all the same (schema.ts).
 */
export function derivedName(base: string, suffix: string): string {
  const name = `${base}_${suffix}`;
  if (name.length <= 63) return name;
  const digest = createHash('sha256').update(base).digest('hex').slice(0, 16);
  const tail = suffix.slice(0, 13);
  return `${base.slice(0, 63 - tail.length - digest.length - 2)}_${digest}_${tail}`;
}

/** The comment that marks a lock table as the one of cache table `display` (schema.table). */
export function locksComment(display: string): string {
  return `cache-postgres: leases of ${display}`;
}

/** FNV-1a, 32 bits, as 8 hex digits: short stable names, not security. */
function hash(text: string): string {
  let h = 0x811c9dc5;
  for (let i = 0; i < text.length; i++) {
    h ^= text.charCodeAt(i);
    h = Math.imul(h, 0x01000193);
  }
  return (h >>> 0).toString(16).padStart(8, '0');
}

/** The sender named in the notices of the table's triggers (neither a store's id nor a caller's transaction). */
export const TRIGGER_SENDER = 'table';

/** Longest key list a trigger's notice carries (what fits beside its sender in a payload); past it, "everything". */
const TRIGGER_KEYS_MAX = 7900 - TRIGGER_SENDER.length - 1;

/**
 * The transition tables of the triggers below: the rows a statement inserted (new) and deleted (old),
 * for an UPDATE both. Named apart from anything an application calls its tables.
 */
const NEW_ROWS = 'cache_postgres_new_rows';
const OLD_ROWS = 'cache_postgres_old_rows';

/** plpgsql: tells the local tiers (channel `channel`) of the keys in json text variable `keys`, if any. */
function notifyKeys(channel: string, keys: string): string {
  return `IF ${keys} IS NOT NULL THEN
    PERFORM pg_notify(${pg.escapeLiteral(channel)}, ${pg.escapeLiteral(`${TRIGGER_SENDER}\n`)} ||
      CASE WHEN octet_length(${keys}) <= ${TRIGGER_KEYS_MAX} THEN ${keys} ELSE '*' END);
  END IF;`;
}

/** A statement-level trigger for one event, with the transition tables that event has. */
function statementTrigger(name: string, event: 'INSERT' | 'UPDATE' | 'DELETE' | 'TRUNCATE', table: string, fn: string): string {
  const referencing = { INSERT: `NEW TABLE AS ${NEW_ROWS}`, UPDATE: `OLD TABLE AS ${OLD_ROWS} NEW TABLE AS ${NEW_ROWS}`, DELETE: `OLD TABLE AS ${OLD_ROWS}`, TRUNCATE: '' }[event];
  return `CREATE TRIGGER ${pg.escapeIdentifier(name)} AFTER ${event} ON ${table}${referencing ? ` REFERENCING ${referencing}` : ''} FOR EACH STATEMENT EXECUTE FUNCTION ${fn}()`;
}

const TRIGGER_EVENTS = ['INSERT', 'UPDATE', 'DELETE', 'TRUNCATE'] as const;
/** pg_trigger.tgtype's bit of each event. */
export const TRIGGER_EVENT_BITS: Readonly<Record<(typeof TRIGGER_EVENTS)[number], number>> = { INSERT: 4, UPDATE: 16, DELETE: 8, TRUNCATE: 32 };

/** Statements of a set of triggers: installed (replacing any), inspected, dropped. */
export interface TriggerSql {
  /** Replaces the function and its triggers (run in one transaction, under the DDL lock). */
  readonly install: readonly string[];
  /** Drops the triggers and the function (IF EXISTS); with `tableGone`, only the function. */
  readonly drop: (tableGone: boolean) => readonly string[];
  /** Whether the table and function exist, the function's comment, and (type, enabled) of its triggers on the table. */
  readonly inspect: Statement;
  /** The comment `install` puts on the function: an installed one with another comment is replaced. */
  readonly comment: string;
}

/**
 * `localCache.notifyTrigger`: statement-level triggers on the cache table that notify the local tiers of
 * every key whose entry changed, whoever changed it. What is not a change for a tier is left out: an
 * UPDATE that only moves a row's expiry later (a read sliding it), and the deletion of rows already
 * expired (the expiry scan). A TRUNCATE, or more keys than a notice holds, tells them "everything".
 */
export function notifyTriggerSql(sql: Sql): TriggerSql {
  const fnName = derivedName(sql.table, 'notify');
  const fn = `${pg.escapeIdentifier(sql.schema)}.${pg.escapeIdentifier(fnName)}`;
  const body = `DECLARE
  keys text;
BEGIN
  IF TG_OP = 'TRUNCATE' THEN
    PERFORM pg_notify(${pg.escapeLiteral(sql.channel)}, ${pg.escapeLiteral(`${TRIGGER_SENDER}\n*`)});
    RETURN NULL;
  ELSIF TG_OP = 'INSERT' THEN
    SELECT json_agg(${DIGEST})::text INTO keys FROM ${NEW_ROWS};
  ELSIF TG_OP = 'DELETE' THEN
    SELECT json_agg(${DIGEST})::text INTO keys FROM ${OLD_ROWS} WHERE expiresattime >= now();
  ELSE
    SELECT json_agg(${DIGEST})::text INTO keys FROM (
      SELECT n.id FROM ${NEW_ROWS} n LEFT JOIN ${OLD_ROWS} o ON o.id = n.id
      WHERE o.id IS NULL OR n.expiresattime < o.expiresattime OR o.value IS DISTINCT FROM n.value
        OR o.tags IS DISTINCT FROM n.tags OR o.slidingexpirationinseconds IS DISTINCT FROM n.slidingexpirationinseconds
        OR o.absoluteexpiration IS DISTINCT FROM n.absoluteexpiration
      UNION
      SELECT o.id FROM ${OLD_ROWS} o LEFT JOIN ${NEW_ROWS} n ON n.id = o.id WHERE n.id IS NULL
    ) AS changed;
  END IF;
  ${notifyKeys(sql.channel, 'keys')}
  RETURN NULL;
END`;
  const triggers = TRIGGER_EVENTS.map((event) => [event, derivedName(sql.table, `notify_${event.toLowerCase().slice(0, 5)}`)] as const);
  // SECURITY INVOKER: it reads only the transition tables and calls pg_notify, which need no privilege, so it
  // runs as each writer (who can write the cache table, or it would not fire) and never as its installer.
  return triggerSet(sql.qualified, fn, fnName, sql.schema, body, triggers, `cache-postgres notify trigger of ${sql.display} (v${TRIGGER_VERSION})`, { definer: false });
}

/** An `invalidateOn` spec, checked: the application table, and each tag as literal text and column parts. */
export interface InvalidationSpec {
  readonly schema: string;
  readonly table: string;
  /** Each tag template as parts: a string is literal text, `{ column }` a column's value as text. */
  readonly tags: ReadonlyArray<ReadonlyArray<string | { readonly column: string }>>;
  /** The templates as given (kept in the function's comment, for `invalidations()`). */
  readonly templates: readonly string[];
  /**
   * Columns whose text a cast to text wrote otherwise than their type's output function (boolean: `true`
   * not `t`; character(n): without its padding; inet: always with its mask), rendered as the cast did,
   * from the output's text: tags stay those the former `(column)::text` rendered.
   */
  readonly castText?: ReadonlyMap<string, CastText>;
}

/** The built-in types whose cast to text differs from their output function (see InvalidationSpec.castText). */
export type CastText = 'boolean' | 'character' | 'inet';

/** Bumped when the trigger functions' text changes: an installed one of another version is replaced. */
export const TRIGGER_VERSION = 4;

/** What the triggers' notices carry for a key: its digest (key_digest.ts), never the key itself. */
const DIGEST = keyDigestSql('id');

/**
 * Every setting that changes how a value of a built-in type is written as text, pinned on the invalidation
 * functions so that every writer renders one tag whatever its session says: timestamps and dates (TimeZone,
 * DateStyle), intervals (IntervalStyle), floats and the geometric types made of them (extra_float_digits),
 * bytea (bytea_output) and money (lc_monetary). Types whose text depends on anything else (the catalog, for
 * the reg* types; an extension's own output function) are refused by invalidateOn (see renderableColumns).
 */
export const RENDER_SETTINGS: ReadonlyArray<readonly [string, string]> = [
  ['TimeZone', 'UTC'],
  ['DateStyle', 'ISO, MDY'],
  ['IntervalStyle', 'postgres'],
  ['extra_float_digits', '1'],
  ['bytea_output', 'hex'],
  ['lc_monetary', 'C'],
];

/** The comment that marks an invalidation function (followed by its JSON description). */
export const INVALIDATION_MARK = 'cache-postgres invalidation ';

/**
 * `invalidateOn`: statement-level triggers on an application table that delete, in the writing
 * transaction, the cache entries carrying the tags its inserted, updated (old and new) and deleted rows
 * render, in one DELETE per statement, and tell the local tiers which keys went. A TRUNCATE deletes the
 * entries with a tag any template could render (its literal prefix). Every name and text a caller gave
 * is quoted here (escapeIdentifier, escapeLiteral).
 */
export function invalidationSql(sql: Sql, spec: InvalidationSpec): TriggerSql {
  const target = `${spec.schema}.${spec.table}`;
  const fnName = derivedName(sql.table, `inv_${createHash('sha256').update(JSON.stringify([sql.schema, sql.table, spec.schema, spec.table])).digest('hex').slice(0, 12)}`);
  const fn = `${pg.escapeIdentifier(sql.schema)}.${pg.escapeIdentifier(fnName)}`;
  // A column's text through its type's output function (format's %s), never a cast: a cast to text may be any
  // function its type's owner wrote (CREATE CAST ... WITH FUNCTION), which this SECURITY DEFINER body would run
  // as its installer. An output function is C, which only a superuser (or an extension's script) can create.
  // NULL renders no tag (format would give '').
  // The text of the few built-in types whose cast to text writes otherwise is made from the output's, in text.
  const asCast: Record<CastText, (out: string) => string> = {
    boolean: (out) => `CASE ${out} WHEN 't' THEN 'true' ELSE 'false' END`,
    character: (out) => `rtrim(${out}, ' ')`,
    inet: (out) => `(SELECT CASE WHEN strpos(o.s, '/') > 0 THEN o.s WHEN strpos(o.s, ':') > 0 THEN o.s || '/128' ELSE o.s || '/32' END FROM (SELECT ${out} AS s) AS o)`,
  };
  const columnText = (name: string) => {
    const column = pg.escapeIdentifier(name);
    const out = `format('%s', r.${column})`;
    const cast = spec.castText?.get(name);
    return `CASE WHEN r.${column} IS NULL THEN NULL ELSE ${cast ? asCast[cast](out) : out} END`;
  };
  const rendered = spec.tags.map((parts) =>
    parts.length === 0 ? "''" : parts.map((part) => (typeof part === 'string' ? pg.escapeLiteral(part) : columnText(part.column))).join(' || '),
  );
  const columns = [...new Set(spec.tags.flatMap((parts) => parts.flatMap((part) => (typeof part === 'string' ? [] : [pg.escapeIdentifier(part.column)]))))];
  const only = (rows: string) => `(SELECT ${columns.length ? columns.join(', ') : '1'} FROM ${rows})`;
  // Tags compared byte for byte (COLLATE "C"): a column's nondeterministic collation must not merge two tags.
  const tagsOf = (rows: string) => `SELECT array_agg(DISTINCT tag COLLATE "C") INTO wanted FROM (SELECT unnest(ARRAY[${rendered.join(', ')}]::text[]) AS tag FROM ${rows} AS r) AS t WHERE tag IS NOT NULL;`;
  const prefixes = spec.tags.map((parts) => {
    const literal: string[] = [];
    for (const part of parts) {
      if (typeof part !== 'string') return { prefix: literal.join(''), exact: false };
      literal.push(part);
    }
    return { prefix: literal.join(''), exact: true };
  });
  const exact = prefixes.filter((p) => p.exact).map((p) => pg.escapeLiteral(p.prefix));
  const like = prefixes.filter((p) => !p.exact).map((p) => `g LIKE ${pg.escapeLiteral(`${escapeLikeText(p.prefix)}%`)}`);
  // Victims are locked in key order (FOR UPDATE after ORDER BY), one order every deleter shares: two writers
  // whose tags reach the same entries in different tag orders cannot deadlock on them.
  const deleteOrdered = (from: string, where: string) => `WITH victims AS (
      SELECT c.id FROM ${sql.qualified} AS c${from} WHERE ${where} ORDER BY c.id COLLATE "C" FOR UPDATE OF c
    ), gone AS (
      DELETE FROM ${sql.qualified} AS c WHERE c.id IN (SELECT id FROM victims) RETURNING c.id
    )
    SELECT json_agg(${DIGEST})::text INTO keys FROM gone;`;
  const truncated = [
    ...(exact.length ? [`c.tags && ARRAY[${exact.join(', ')}]::text[]`] : []),
    ...(like.length ? [`EXISTS (SELECT 1 FROM unnest(c.tags) AS g WHERE ${like.join(' OR ')})`] : []),
  ].join(' OR ');
  const body = `DECLARE
  wanted text[];
  keys text;
BEGIN
  IF TG_OP = 'TRUNCATE' THEN
    ${deleteOrdered('', truncated)}
  ELSE
    IF TG_OP = 'INSERT' THEN
      ${tagsOf(only(NEW_ROWS))}
    ELSIF TG_OP = 'DELETE' THEN
      ${tagsOf(only(OLD_ROWS))}
    ELSE
      ${tagsOf(`(${only(NEW_ROWS).slice(1, -1)} UNION ALL ${only(OLD_ROWS).slice(1, -1)})`)}
    END IF;
    IF wanted IS NULL THEN
      RETURN NULL;
    END IF;
    -- One GIN probe per tag: a single \`tags && wanted\` probe with thousands of tags costs quadratic time in the
    -- GIN scan (measured: 630 ms against 40 ms for a 10,000-row UPDATE's tags).
    ${deleteOrdered(', unnest(wanted) AS w(tag)', 'c.tags @> ARRAY[w.tag]')}
  END IF;
  ${notifyKeys(sql.channel, 'keys')}
  RETURN NULL;
END`;
  const table = qualifiedName(spec.schema, spec.table);
  const triggers = TRIGGER_EVENTS.map((event) => [event, derivedName(fnName, event.toLowerCase().slice(0, 5))] as const);
  const comment = `${INVALIDATION_MARK}${JSON.stringify({ v: TRIGGER_VERSION, cache: sql.display, schema: spec.schema, table: spec.table, tags: spec.templates })}`;
  // The settings a column's text depends on, pinned so that every writer renders the same tag. Only here: each
  // SET costs every call, and the notify trigger renders ids only.
  const settings = RENDER_SETTINGS.map(([name, value]) => ` SET ${pg.escapeIdentifier(name)} = ${pg.escapeLiteral(value)}`).join('');
  // Owned by the cache table's owner: the DELETE above fires the cache table's own triggers, rules and policies,
  // which that owner (or a role it let) controls; run as anyone else (a superuser who installed it), they would
  // run that role's code as the installer. As its owner, they run as themselves. (A no-op when the owner installs.)
  // An installer that cannot act as that owner (not a member of its role) keeps the function: it then runs that
  // table's triggers as itself, which docs/security.md says to avoid by installing as the owner.
  const owner = `DO ${dollarQuoted(`DECLARE
  owner name := (SELECT pg_get_userbyid(relowner) FROM pg_class WHERE oid = ${pg.escapeLiteral(sql.qualified)}::regclass);
BEGIN
  IF owner <> current_user AND pg_has_role(current_user, owner, 'MEMBER') THEN
    EXECUTE format('ALTER FUNCTION %s() OWNER TO %I', ${pg.escapeLiteral(fn)}, owner);
  END IF;
END`)}`;
  return triggerSet(table, fn, fnName, sql.schema, body, triggers, comment, { definer: true, settings, owner });
}

/** `"schema"."table"`, each part quoted: for SQL text, and for to_regclass() (which parses quoted names). */
export function qualifiedName(schema: string, table: string): string {
  return `${pg.escapeIdentifier(schema)}.${pg.escapeIdentifier(table)}`;
}

/** `%`, `_` and `\` of `text` as literals of a LIKE pattern (ESCAPE '\', the default). */
function escapeLikeText(text: string): string {
  return text.replace(/[\\%_]/g, '\\$&');
}

function triggerSet(
  table: string,
  fn: string,
  fnName: string,
  fnSchema: string,
  body: string,
  triggers: ReadonlyArray<readonly [(typeof TRIGGER_EVENTS)[number], string]>,
  comment: string,
  { definer, settings = '', owner }: { definer: boolean; settings?: string; owner?: string },
): TriggerSql {
  const dropTriggers = triggers.map(([, name]) => `DROP TRIGGER IF EXISTS ${pg.escapeIdentifier(name)} ON ${table}`);
  return Object.freeze({
    install: Object.freeze([
      // SECURITY DEFINER (invalidateOn): it runs as the role that installed it (the store's), so a writer with no
      // privilege on the cache table (a reporting role, psql as another user) still invalidates; it must then reach
      // no function a less trusted role could write (see invalidationSql). Every name in it is qualified, and
      // search_path is pinned, so the writer's own search_path cannot redirect it (and `settings`, for what else
      // the body's results depend on).
      `CREATE OR REPLACE FUNCTION ${fn}() RETURNS trigger LANGUAGE plpgsql ${definer ? 'SECURITY DEFINER' : 'SECURITY INVOKER'}
  SET search_path = pg_catalog, pg_temp${settings}
  AS ${dollarQuoted(body)}`,
      // Nobody attaches it to a table of theirs (a temporary one included) to run it as its owner: EXECUTE is
      // checked when a trigger is created, not when it fires, so the triggers installed here fire for every writer.
      `REVOKE ALL ON FUNCTION ${fn}() FROM PUBLIC`,
      ...(owner ? [owner] : []),
      `COMMENT ON FUNCTION ${fn}() IS ${pg.escapeLiteral(comment)}`,
      ...dropTriggers,
      ...triggers.map(([event, name]) => statementTrigger(name, event, table, fn)),
    ]),
    drop: (tableGone: boolean) => Object.freeze([...(tableGone ? [] : dropTriggers), `DROP FUNCTION IF EXISTS ${fn}()`]),
    comment,
    inspect: Object.freeze({
      name: `cp_trigger_inspect_${createHash('sha256').update(`${fnSchema}.${fnName}`).digest('hex').slice(0, 16)}`,
      label: 'trigger inspect',
      prepared: false,
      text: `SELECT to_regclass(${pg.escapeLiteral(table)}) IS NOT NULL AS table_exists, p.oid IS NOT NULL AS function_exists,
  obj_description(p.oid, 'pg_proc') AS comment,
  (SELECT json_agg(json_build_object('type', t.tgtype, 'enabled', t.tgenabled <> 'D'))
     FROM pg_trigger t WHERE t.tgfoid = p.oid AND t.tgrelid = to_regclass(${pg.escapeLiteral(table)})) AS triggers
FROM (SELECT 1) AS one LEFT JOIN pg_proc p
  ON p.proname = ${pg.escapeLiteral(fnName)} AND p.pronamespace = (SELECT oid FROM pg_namespace WHERE nspname = ${pg.escapeLiteral(fnSchema)})`,
    }),
  });
}

/** `text` as a dollar-quoted literal whose tag does not occur in it. */
function dollarQuoted(text: string): string {
  let tag = 'cp';
  for (let i = 0; text.includes(`$${tag}$`); i++) tag = `cp${i}`;
  return `$${tag}$${text}$${tag}$`;
}
