import pg from 'pg';
import { INVALIDATION_MARK } from './invalidation.js';
import { indexName, LOCK_CLASS, locksComment, type SqlContext, type Statement } from './statement.js';

/** The catalog, the DDL and Citus: what exists, what to create, the server's clock, and stats. */
export interface SchemaSql {
  /** Counts and size for stats(). */
  readonly stats: Statement;
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
    /** The storage settings of a cache ({@link CACHE_STORAGE}), on the table and its TOAST table. */
    readonly storageSettings: string;
    readonly createLocksTable: string;
    readonly commentLocksTable: string;
  };
}

/**
 * The storage settings of a cache table (docs/operations.md, "Vacuum and bloat"): every write of a cache is an
 * update or a delete, so its dead rows are vacuumed after 2% of the table changed rather than PostgreSQL's 20%
 * (and its TOAST table's, where values over 2 kB go, alike), without the cost-based pauses meant for tables a
 * vacuum must not disturb; a tenth of each page is left free, so a row rewritten in place (same expiry, a touch)
 * can stay on its page (a HOT update, no index entry). As reloptions' text: 'name=value'.
 */
export const CACHE_STORAGE: readonly string[] = Object.freeze([
  'fillfactor=90',
  'autovacuum_vacuum_scale_factor=0.02',
  'autovacuum_vacuum_insert_scale_factor=0.02',
  'autovacuum_analyze_scale_factor=0.05',
  'autovacuum_vacuum_cost_delay=0',
  'toast.autovacuum_vacuum_scale_factor=0.02',
  'toast.autovacuum_vacuum_cost_delay=0',
]);

export function schemaSql(ctx: SqlContext): SchemaSql {
  const { schema, table, display, qualified: t, locksQualified: l, named } = ctx;
  return {
    stats: named('stats', `SELECT count(*)::int8 AS rows, count(*) FILTER (WHERE expiresattime >= $1::timestamptz)::int8 AS live,
  pg_total_relation_size($2::regclass)::int8 AS bytes, pg_table_size($2::regclass)::int8 AS table_bytes,
  pg_indexes_size($2::regclass)::int8 AS index_bytes,
  (SELECT n_dead_tup FROM pg_stat_all_tables WHERE relid = $2::regclass)::int8 AS dead FROM ${t}`,
      true,
      // The coordinator's table is an empty shell: the shards' sizes are Citus' (their dead rows are the workers').
      `SELECT count(*)::int8 AS rows, count(*) FILTER (WHERE expiresattime >= $1::timestamptz)::int8 AS live,
  citus_total_relation_size($2::regclass)::int8 AS bytes, citus_table_size($2::regclass)::int8 AS table_bytes,
  (citus_total_relation_size($2::regclass) - citus_table_size($2::regclass))::int8 AS index_bytes, NULL::int8 AS dead FROM ${t}`,
    ),

    // What exists, read from the catalog (never by name: rule 19 of the contract).
    inspect: named('inspect', `SELECT EXISTS (SELECT 1 FROM pg_namespace WHERE nspname = $1) AS schema_exists,
  current_setting('server_encoding') AS encoding, EXISTS (SELECT 1 FROM pg_extension WHERE extname = 'citus') AS citus, t.*
FROM (SELECT 1) AS one LEFT JOIN LATERAL (
  SELECT c.oid::int8 AS oid, c.reloptions AS options,
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
      storageSettings: `ALTER TABLE ${t} SET (${CACHE_STORAGE.map((setting) => setting.replace('=', ' = ')).join(', ')})`,
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
  };
}
