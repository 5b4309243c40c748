import { COLUMNS } from './rows.js';
import type { SqlContext, Statement } from './statement.js';

/** Counters (incr/decr): numbers stored as decimal text in the value, as .NET and Python read them. */
export interface CountersSql {
  readonly incr: Statement;
}

export function countersSql(ctx: SqlContext): CountersSql {
  const { qualified: t, named } = ctx;
  return {
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
  tags = CASE WHEN c.expiresattime < $6::timestamptz THEN EXCLUDED.tags ELSE c.tags END${ctx.capped ? ', lastaccess = now()' : ''}
WHERE c.expiresattime < $6::timestamptz OR encode(c.value, 'escape')::bigint BETWEEN $7::bigint AND $8::bigint
RETURNING encode(c.value, 'escape') AS value`),
  };
}
