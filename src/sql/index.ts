/**
 * Every SQL text of the library lives in this folder, built once per (schema, table) from escaped identifiers.
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
 *
 * The families, each a part of {@link Sql}: statement.ts (Statement, naming, quoting), rows.ts (Keyv's
 * rows, sliding reads), values.ts (decoding what reads send), bulk.ts (ranges, patterns, tags, expiry
 * scan), counters.ts, locks.ts, schema.ts (catalog, DDL, Citus), triggers.ts with notify_trigger.ts and
 * invalidation.ts (trigger sets).
 */
import { type BulkSql, bulkSql } from './bulk.js';
import { type CountersSql, countersSql } from './counters.js';
import { type LocksSql, locksSql } from './locks.js';
import { type RowsSql, rowsSql } from './rows.js';
import { type SchemaSql, schemaSql } from './schema.js';
import { sqlContext, type TableNames } from './statement.js';
import { type NotifySql, notifySql } from './triggers.js';

export type { BulkSql, CountersSql, LocksSql, NotifySql, RowsSql, SchemaSql, TableNames };
export { LANE_LOCK_TIMEOUT } from './rows.js';
export { CACHE_STORAGE } from './schema.js';
export { derivedName, indexName, LOCK_CLASS, locksComment, qualifiedName, type Statement } from './statement.js';
export { bytesOf, bytesOfEscaped, MAX_VALUE_BYTES, oversize, textOfEscaped, tooLarge } from './values.js';
export { TRIGGER_EVENT_BITS, TRIGGER_SENDER, TRIGGER_VERSION, type TriggerSql } from './triggers.js';
export { notifyTriggerSql } from './notify_trigger.js';
export { type CastText, INVALIDATION_MARK, type InvalidationSpec, invalidationSql, RENDER_SETTINGS } from './invalidation.js';

/** Every statement of one table: one flat, frozen object made of the families' parts. */
export interface Sql extends TableNames, RowsSql, NotifySql, BulkSql, CountersSql, LocksSql, SchemaSql {}

/**
 * Builds every statement for one table. Identifiers must already be validated lower-case names.
 * @param slidingWriteThreshold a read extends a sliding row only when that moves its expiry by at least
 *   this fraction of the sliding window, so a hot key is not rewritten on every read (0: every read)
 * @param withExpiry reads also return `until` (the row's expiry in epoch ms) and, for a sliding row,
 *   `sw` and `absms`: what the in-process tier keeps, for how long, and how it touches the row
 * @param capped the table has a size cap (sql/capacity.ts): writes stamp `lastaccess` themselves, so its row
 *   trigger runs only for other writers
 */
export function buildSql(schema: string, table: string, slidingWriteThreshold = 0, withExpiry = false, capped = false): Sql {
  if (!(slidingWriteThreshold >= 0 && slidingWriteThreshold <= 1)) throw new RangeError('slidingWriteThreshold must be in [0, 1]');
  const ctx = sqlContext(schema, table, slidingWriteThreshold, withExpiry, capped);
  return Object.freeze({
    schema,
    table,
    qualified: ctx.qualified,
    display: ctx.display,
    ...rowsSql(ctx),
    ...notifySql(ctx),
    ...bulkSql(ctx),
    ...countersSql(ctx),
    ...locksSql(ctx),
    ...schemaSql(ctx),
  });
}
