import type { SqlContext, Statement } from './statement.js';
import { MAX_VALUE_BYTES } from './values.js';

/** Keyv's row statements: reads (sliding in the same round trip), writes and deletes of keys. */
export interface RowsSql {
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
  /** A value even if expired, when it expired no earlier than $2 (grace and failover). Never slides. */
  readonly getStale: Statement;
  /** get, plus the row's absolute expiry (for early refresh). */
  readonly getWithExpiry: Statement;
}

export const COLUMNS = 'id, value, expiresattime, slidingexpirationinseconds, absoluteexpiration, tags';

/**
 * Values are read as base64 text, decoded by {@link bytesOf}. The text format's hex for bytea is
 * twice the size and cost node-postgres 0.21 ms of CPU per 20 rows of 1 KiB against 0.12 ms for
 * base64 (its binary mode is no way out: it decodes every field as UTF-8 first, corrupting bytes).
 * A value over {@link MAX_VALUE_BYTES} (stored by another writer) is not sent: `!` and its size come
 * instead, which {@link oversize} recognises (`!` is not a base64 character).
 */
export const VALUE = `CASE WHEN octet_length(value) <= ${MAX_VALUE_BYTES} THEN encode(value, 'base64') ELSE '!' || octet_length(value) END AS b64`;
/** An upsert's update of an existing row: every column; on a capped table, its last access too (see buildSql). */
const setAll = (ctx: SqlContext) => `value = EXCLUDED.value, expiresattime = EXCLUDED.expiresattime,
  slidingexpirationinseconds = EXCLUDED.slidingexpirationinseconds,
  absoluteexpiration = EXCLUDED.absoluteexpiration, tags = EXCLUDED.tags${ctx.capped ? ', lastaccess = now()' : ''}`;

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

// now + sliding seconds, IMMUTABLE all the way (timestamptz + interval is STABLE): the seconds since the
// epoch of now (a timestamptz difference), plus the window, back through to_timestamp (microseconds).
export const slideTo = (now: string, sliding = 'hit.sliding', abs = 'hit.abs') =>
  `LEAST(to_timestamp(extract(epoch FROM ${now}::timestamptz - 'epoch'::timestamptz)::float8 + ${sliding}), COALESCE(${abs}, 'infinity'::timestamptz))`;

/**
 * The slide's second condition: it moves the expiry by more than the threshold's share of the window.
 * Only a finite expiry below the target is subtracted (a difference with an infinity is an error).
 */
export const movesEnough = (ctx: SqlContext, target: string, expires: string, sliding: string) =>
  `CASE WHEN ${expires} < ${target} THEN ${target} - ${expires} > ${sliding} * ${Number(ctx.slidingWriteThreshold)} * INTERVAL '1 second' ELSE false END`;

/**
 * A read that slides in the same round trip: `hit` selects the live rows matching `where`; the
 * data-modifying CTE `slid` writes only rows that have a sliding expiration, to
 * LEAST(now + sliding, absolute), so rows without one are read with no write at all, and only when
 * that moves the expiry forward by more than the threshold's share of the window (a hot key is not
 * rewritten on every read; an expiry is never moved back). `now` is the application clock's placeholder.
 */
export const readSliding = (ctx: SqlContext, where: string, now: string, select: string, tail = '', alsoRequire = '') => `WITH hit AS (
  SELECT id, value, slidingexpirationinseconds AS sliding, absoluteexpiration AS abs, expiresattime AS expires
  FROM ${ctx.qualified} WHERE ${where} AND expiresattime >= ${now}::timestamptz${tail}
), slid AS (
  UPDATE ${ctx.qualified} AS c SET expiresattime = ${slideTo(now)}
  FROM hit WHERE c.id = hit.id AND hit.sliding IS NOT NULL AND c.expiresattime >= ${now}::timestamptz${alsoRequire && ` AND ${alsoRequire}`}
    AND ${movesEnough(ctx, slideTo(now), 'hit.expires', 'hit.sliding')}
)
SELECT ${select} FROM hit`;

export function rowsSql(ctx: SqlContext): RowsSql {
  const { qualified: t, named, withExpiry } = ctx;
  // With the local tier: the row's expiry (`until`, epoch ms), and for a sliding row its window (`sw`,
  // seconds) and absolute expiry (`absms`, epoch ms; NULL for none).
  const epochMs = (column: string) =>
    `CASE WHEN ${column} = 'infinity' THEN 'Infinity'::float8 ELSE (extract(epoch FROM ${column}) * 1000)::float8 END`; // spelled out: before 14, extract gave no Infinity
  const until = (sliding: string, expires: string, abs: string) =>
    withExpiry ? `, ${epochMs(expires)} AS until, ${sliding} AS sw, CASE WHEN ${sliding} IS NULL THEN NULL ELSE ${epochMs(abs)} END AS absms` : '';
  const readColumns = `id, ${VALUE}${until('hit.sliding', 'hit.expires', 'hit.abs')}`;

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
ON CONFLICT (id) DO UPDATE SET ${setAll(ctx)}`;

  // The fail-fast form sets lock_timeout only for a row that will be updated (CASE fixes the order), so
  // a read of rows that do not slide, the common case, pays nothing for it.
  const slides = `expiresattime >= $2::timestamptz AND slidingexpirationinseconds IS NOT NULL
  AND ${movesEnough(ctx, slideTo('$2', 'slidingexpirationinseconds', 'absoluteexpiration'), 'expiresattime', 'slidingexpirationinseconds')}`;
  const slideRows = (failFast: boolean) => {
    return `UPDATE ${t} SET expiresattime = ${slideTo('$2', 'slidingexpirationinseconds', 'absoluteexpiration')}
WHERE id = ANY($1::text[]) AND ${failFast ? `CASE WHEN ${slides} THEN ${SET_LANE_LOCK_TIMEOUT} IS NOT NULL END` : slides}`;
  };

  return {
    // The single-key reads name the key in the slide too (`c.id = $1`): then every part of the statement is
    // on one key, which Citus routes whole to the key's shard (without it: a read, an UPDATE joined on
    // every shard, and a read of the result, as three distributed steps).
    get: named('get', readSliding(ctx, 'id = $1', '$2', VALUE, '', 'c.id = $1')),
    getMany: named('get_many', readSliding(ctx, 'id = ANY($1::text[])', '$2', readColumns)),
    refresh: named('refresh', readSliding(ctx, 'id = $1', '$2', 'count(*)::int AS live', '', 'c.id = $1')),

    // A pipelined read is a plain select that also tells which rows are due a slide (`slide`: the slide's
    // own condition); only those are then slid, in a second statement, before the read answers. Rows that
    // do not slide, or moved less than the threshold, the common case, cost no write and no second
    // statement (a slide sent with every read cost the client a fifth of its CPU per read). getMany's
    // data-modifying CTE costs PostgreSQL twice as much, even when it writes nothing (pgbench, 20-key reads).
    slideMany: named('slide_many', slideRows(false)),
    slideManyFailFast: named('slide_many_fail_fast', slideRows(true), true, slideRows(false)),
    // The read for callers that want text (Keyv's JSON): `escape` form, which carries plain ASCII as
    // itself (see textOfEscaped); base64 would cost a decode and a Buffer per row.
    // Over MAX_VALUE_BYTES: a backslash, `!` and the size, which no escape-form text starts with (a backslash
    // there is followed by another or by three octal digits).
    selectManyText: named('select_many_text', `SELECT id, CASE WHEN octet_length(value) <= ${MAX_VALUE_BYTES} THEN encode(value, 'escape')
  ELSE '\\!' || octet_length(value) END AS esc${until('slidingexpirationinseconds', 'expiresattime', 'absoluteexpiration')},
  ${slides} AS slide
FROM ${t} WHERE id = ANY($1::text[]) AND expiresattime >= $2::timestamptz`),
    selectMany: named('select_many', `SELECT id, ${VALUE}${until('slidingexpirationinseconds', 'expiresattime', 'absoluteexpiration')},
  ${slides} AS slide
FROM ${t} WHERE id = ANY($1::text[]) AND expiresattime >= $2::timestamptz`),

    has: named('has', `SELECT 1 AS live FROM ${t} WHERE id = $1 AND expiresattime >= $2::timestamptz`),

    hasMany: named('has_many', `SELECT id FROM ${t} WHERE id = ANY($1::text[]) AND expiresattime >= $2::timestamptz`),

    info: named('info', `SELECT expiresattime, slidingexpirationinseconds AS sliding, absoluteexpiration AS abs, tags
FROM ${t} WHERE id = $1 AND expiresattime >= $2::timestamptz`),

    upsert: named('upsert', `INSERT INTO ${t} (${COLUMNS})
VALUES ($1, $2::bytea, $3::timestamptz, $4::bigint, $5::timestamptz, $6::text[])
ON CONFLICT (id) DO UPDATE SET ${setAll(ctx)}`),

    // One statement for any number of rows, each with its own expiry and tags. Callers remove duplicate
    // ids first: ON CONFLICT cannot touch one row twice in a statement.
    upsertRows: named('upsert_rows', insertRows(1)),
    upsertRowsFailFast: named('upsert_rows_fail_fast', insertRows(1, `\nWHERE ${FAIL_FAST}`), true, insertRows(1)),

    // The reads see the table as it was before this statement's writes (one snapshot): as if the tick's
    // gets ran just before its sets. Rows being written are not slid, so no row is modified twice.
    readWrite: named(
      'read_write',
      `WITH written AS (\n${insertRows(3)}\nRETURNING 1\n), ${readSliding(ctx, 'id = ANY($1::text[])', '$2', readColumns, '', 'c.id <> ALL($3::text[])').slice('WITH '.length)}`,
    ),

    delete: named('delete', `DELETE FROM ${t} WHERE id = $1 RETURNING expiresattime >= $2::timestamptz AS live`),

    deleteMany: named('delete_many', `DELETE FROM ${t} WHERE id = ANY($1::text[]) RETURNING id, expiresattime >= $2::timestamptz AS live`),

    getStale: named('get_stale', `SELECT ${VALUE}, expiresattime FROM ${t} WHERE id = $1 AND expiresattime >= $2::timestamptz`),

    getWithExpiry: named('get_with_expiry', readSliding(ctx, 'id = $1', '$2', `${VALUE}, abs`, '', 'c.id = $1')),
  };
}
