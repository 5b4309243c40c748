import { movesEnough, readSliding, slideTo, VALUE } from './rows.js';
import { LOCK_CLASS, type SqlContext, type Statement } from './statement.js';

/** Statements over many rows: key ranges and patterns (pages, batch deletes), tags, the expiry scan. */
export interface BulkSql {
  readonly deleteRangeBatch: Statement;
  readonly iterateRange: Statement;
  readonly scanPattern: Statement;
  readonly getPatternPage: Statement;
  readonly deletePatternBatch: Statement;
  readonly deleteTagsAnyBatch: Statement;
  readonly deleteTagsAllBatch: Statement;
  readonly taggedAny: Statement;
  readonly taggedAll: Statement;
  readonly deleteTaggedAnyListed: Statement;
  readonly deleteTaggedAllListed: Statement;
  readonly deleteExpiredBatch: Statement;
}

export function bulkSql(ctx: SqlContext): BulkSql {
  const { qualified: t, named } = ctx;

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

  // Prefix operations use a key range, not LIKE alone: a prepared statement's generic plan cannot
  // turn `LIKE $1` into index bounds, but `id >= $1 AND id < $2` on the COLLATE "C" key always is
  // (the whole table is the range ['', ABOVE_ALL_KEYS)). Patterns add their LIKE as a filter.
  // Compared as text on both sides: the upper bound is longer than the column allows (ABOVE_ALL_KEYS), and
  // Citus, pruning shards on the distribution column, casts a bound to the column's type, which fails.
  // The key index still serves the range (varchar's btree opclass is text's; the cast is a relabel).
  const inRange = 'id::text >= $1::text AND id::text < $2::text';
  const inPattern = `${inRange} AND id LIKE $3 ESCAPE '\\'`;

  return {
    deleteRangeBatch: batchDelete('delete_range_batch', inRange, '$3', '$4'),

    // Keyset pagination: $4 is the last key of the previous page ('' on the first, below every key).
    iterateRange: named('iterate_range', `SELECT id, ${VALUE} FROM ${t}
WHERE ${inRange} AND id > $4 AND expiresattime >= $3::timestamptz ORDER BY id LIMIT $5`),

    scanPattern: named('scan_pattern', `SELECT id FROM ${t}
WHERE ${inPattern} AND id > $4 AND expiresattime >= $5::timestamptz ORDER BY id LIMIT $6`),

    getPatternPage: named(
      'get_pattern_page',
      `${readSliding(ctx, `${inPattern} AND id > $4`, '$5', `id, ${VALUE}`, ' ORDER BY id LIMIT $6')} ORDER BY id`,
      true,
      // Citus runs each CTE as a step of its own and ships its result between nodes: the page's rows
      // travel without their values (which can be megabytes each), then the values are read where they are.
      `WITH hit AS (
  SELECT id, slidingexpirationinseconds AS sliding, absoluteexpiration AS abs, expiresattime AS expires
  FROM ${t} WHERE ${inPattern} AND id > $4 AND expiresattime >= $5::timestamptz ORDER BY id LIMIT $6
), slid AS (
  UPDATE ${t} AS c SET expiresattime = ${slideTo('$5')}
  FROM hit WHERE c.id = hit.id AND hit.sliding IS NOT NULL AND c.expiresattime >= $5::timestamptz
    AND ${movesEnough(ctx, slideTo('$5'), 'hit.expires', 'hit.sliding')}
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

    // A tag delete's first step: the keys carrying the tags (expired or not), so that the calls issued after
    // it wait only if they are on one of them ($2 is one more than it takes: past it, the batches above).
    // Planned per call, for the GIN index, as above.
    taggedAny: named('tagged_any', `SELECT id FROM ${t} WHERE tags && $1::text[] LIMIT $2`, false),
    taggedAll: named('tagged_all', `SELECT id FROM ${t} WHERE tags @> $1::text[] LIMIT $2`, false),
    // Then a batch of those keys ($4) at a time, each still carrying the tags: a key rewritten since without
    // them is kept, and a key tagged since is not among them. Planned per call: the key index, not the tags'.
    deleteTaggedAnyListed: batchDelete('delete_tagged_any_listed', 'id = ANY($4::text[]) AND tags && $1::text[]', '$2', '$3', ' ORDER BY id COLLATE "C"', false),
    deleteTaggedAllListed: batchDelete('delete_tagged_all_listed', 'id = ANY($4::text[]) AND tags @> $1::text[]', '$2', '$3', ' ORDER BY id COLLATE "C"', false),

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
  };
}
