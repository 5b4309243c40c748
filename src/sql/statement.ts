import { createHash } from 'node:crypto';
import pg from 'pg';

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

/** The names of one cache table: part of every `Sql`, and (with its channel) all that the trigger sets need of it. */
export interface TableNames {
  readonly schema: string;
  readonly table: string;
  /** `"schema"."table"`, quoted. */
  readonly qualified: string;
  /** `schema.table`, for messages and lock names. */
  readonly display: string;
}

/** Makes a statement on one table: prepared unless told, with a Citus alternative when given its text. */
export type StatementFactory = (label: string, text: string, prepared?: boolean, citusText?: string) => Statement;

/**
 * The statement factory of table `qualified` (quoted `"schema"."table"`). Names embed a hash of the table
 * and the text: two stores on different tables sharing one pool never clash on a statement name.
 */
export function statementFactory(qualified: string): StatementFactory {
  const named: StatementFactory = (label, text, prepared = true, citusText) =>
    Object.freeze({
      label,
      text,
      prepared,
      name: `cp_${label}_${hash(`${qualified}\n${text}`)}`,
      ...(citusText === undefined ? {} : { citus: named(label, citusText, prepared) }),
    });
  return named;
}

/** What every family builds its statements from: one table's names and the options that shape the texts. */
export interface SqlContext extends TableNames {
  /** The lock table's name (`table_locks`, see {@link derivedName}), unquoted. */
  readonly locksTable: string;
  /** The lock table, quoted `"schema"."table_locks"`. */
  readonly locksQualified: string;
  /** See buildSql. */
  readonly slidingWriteThreshold: number;
  /** See buildSql. */
  readonly withExpiry: boolean;
  /** See buildSql. */
  readonly capped: boolean;
  readonly named: StatementFactory;
}

/** The context of table `schema`.`table` (identifiers already validated lower-case names). */
export function sqlContext(schema: string, table: string, slidingWriteThreshold: number, withExpiry: boolean, capped = false): SqlContext {
  const qualified = qualifiedName(schema, table);
  const locksTable = derivedName(table, 'locks');
  return {
    schema,
    table,
    qualified,
    display: `${schema}.${table}`,
    locksTable,
    locksQualified: `${pg.escapeIdentifier(schema)}.${pg.escapeIdentifier(locksTable)}`,
    slidingWriteThreshold,
    withExpiry,
    capped,
    named: statementFactory(qualified),
  };
}

/** `"schema"."table"`, each part quoted: for SQL text, and for to_regclass() (which parses quoted names). */
export function qualifiedName(schema: string, table: string): string {
  return `${pg.escapeIdentifier(schema)}.${pg.escapeIdentifier(table)}`;
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
export function hash(text: string): string {
  let h = 0x811c9dc5;
  for (let i = 0; i < text.length; i++) {
    h ^= text.charCodeAt(i);
    h = Math.imul(h, 0x01000193);
  }
  return (h >>> 0).toString(16).padStart(8, '0');
}

/** `%`, `_` and `\` of `text` as literals of a LIKE pattern (ESCAPE '\', the default). */
export function escapeLikeText(text: string): string {
  return text.replace(/[\\%_]/g, '\\$&');
}

/** `text` as a dollar-quoted literal whose tag does not occur in it. */
export function dollarQuoted(text: string): string {
  let tag = 'cp';
  for (let i = 0; text.includes(`$${tag}$`); i++) tag = `cp${i}`;
  return `$${tag}$${text}$${tag}$`;
}
