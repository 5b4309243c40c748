/**
 * The size cap (`maxSize`, `maxEntries`): what it adds to a cache table, and the sweeper's statements.
 *
 * - `lastaccess`, a column every writer fills without knowing it: its DEFAULT on insert, a row trigger on
 *   overwrite, and the store's reads (LRU only) when it has moved by more than the resolution. An index on it
 *   gives the sweeper the oldest rows first, without a scan.
 * - `<table>_usage`, the exact bytes and entries of the table, kept by triggers that fire for every writer
 *   (.NET's and Python's too): each write statement appends one delta row (no row is updated, so writers never
 *   wait on each other), and the sweeper folds the deltas into one row. Bytes are the key's and the value's
 *   octet_length, as stored.
 * - `<table>_cap`, one row: the cap the table holds (the last capped store to start wrote it) and what the
 *   sweepers evicted.
 * The triggers run SECURITY DEFINER, as the role that installed them: a writer with no right on the two side
 * tables (a .NET service's role) still writes the cache table as before.
 */
import pg from 'pg';
import { derivedName, dollarQuoted, hash, indexName, LOCK_CLASS, type Statement, statementFactory, type TableNames } from './statement.js';
import { NEW_ROWS, OLD_ROWS } from './triggers.js';

/** Bumped when the functions' text changes: an installed one of another version is replaced (and the usage recounted). */
export const CAPACITY_VERSION = 2;

/** The eviction orders: by last read or write (reads recorded at a resolution), or by last write only. */
export type EvictionPolicy = 'lru' | 'fifo';

/**
 * A row of this shape is a lock (Python's `lock()`/`set_lock()`, and `lockProtocol: 'python'`): no sliding
 * and no absolute expiry, and a finite expiry less than this far away. Never evicted while live. (Python's
 * entries with no expiry at all have the same columns and an expiry 100 years away; .NET always sets one of
 * the two, Keyv entries with a ttl an absolute expiry.)
 */
export const LOCK_ROW_HORIZON_MS = 24 * 3600_000;

/** What the capacity functions' comments of table `display` start with, whatever their version. */
export function capacityMark(display: string): string {
  return `cache-postgres capacity of ${display}`;
}

export interface CapacitySql {
  readonly usageTable: string;
  readonly capTable: string;
  /** What exists: the column, its index, the two tables, the functions' comment and the enabled triggers. */
  readonly inspect: Statement;
  /** The installation, in one transaction under the DDL lock; `parts` says which of the optional steps to run. */
  readonly install: (parts: { column: boolean; index: boolean; unlogged: boolean }) => readonly string[];
  /** The comment install puts on the functions: another one means another version. */
  readonly comment: string;
  /** The comments install puts on the usage and cap tables: a table found under their names without it is not ours. */
  readonly usageComment: string;
  readonly capComment: string;
  /** How many triggers install creates. */
  readonly triggerCount: number;
  /** Writes this store's cap ($1 max bytes, $2 max entries, $3 policy, $4 who) and returns the one it replaced. */
  readonly setCap: Statement;
  /**
   * The sweeper's first step, under its try-lock ($1 name): folds the usage deltas into one row and returns the
   * total, with the table's cap. Without the lock: `locked` false and nothing else.
   */
  readonly fold: Statement;
  /** The total without folding (for stats()), with the cap row. */
  readonly usage: Statement;
  /**
   * Evicts up to $2 live rows, least recent `lastaccess` first, skipping rows someone holds locked and live lock
   * rows ($1 now, $3 the lock rows' horizon), under the sweeper's try-lock ($4 name). Returns rows and bytes.
   */
  readonly evict: Statement;
  /** Adds an eviction pass ($1 rows, $2 bytes) to the cap row's record. */
  readonly recordEviction: Statement;
  /** Records a read of ids $1 when their lastaccess is older than $2 seconds (LRU). */
  readonly touch: Statement;
  /** VACUUM of the usage table (its folded deltas are dead rows; run by the sweeper, not left to autovacuum). */
  readonly vacuumUsage: string;
  /** VACUUM of the cache table, by the sweeper after it evicted much. */
  readonly vacuumTable: string;
}

export function capacitySql(names: TableNames): CapacitySql {
  const { schema, table, qualified: t, display } = names;
  const named = statementFactory(t);
  const q = (name: string) => `${pg.escapeIdentifier(schema)}.${pg.escapeIdentifier(name)}`;
  const usageTable = derivedName(table, 'usage');
  const capTable = derivedName(table, 'cap');
  const u = q(usageTable);
  const c = q(capTable);
  const countFnName = derivedName(table, 'usage_count');
  const writeFnName = derivedName(table, 'usage_write');
  const countFn = q(countFnName);
  const writeFn = q(writeFnName);
  const size = (row: string) => `octet_length(${row}.id) + octet_length(${row}.value)`;
  const comment = `${capacityMark(display)} (v${CAPACITY_VERSION})`;
  const usageComment = `cache-postgres: usage of ${display}`;
  const capComment = `cache-postgres: cap of ${display}`;
  const triggers = {
    insert: derivedName(table, 'usage_ins'),
    delete: derivedName(table, 'usage_del'),
    truncate: derivedName(table, 'usage_trunc'),
    write: derivedName(table, 'usage_upd'),
    flush: derivedName(table, 'usage_flush'),
  };

  // Overwrites (below) add their size changes to this transaction-local setting, which the statement's end adds to
  // the usage in one row: an INSERT of a delta row per overwritten row cost more than the overwrite itself.
  const pending = pg.escapeLiteral(`cache_postgres.u${hash(t)}`);
  const takePending = `pend := COALESCE(NULLIF(current_setting(${pending}, true), ''), '0')::int8;
  IF pend <> 0 THEN PERFORM set_config(${pending}, '0', true); END IF;`;
  const countBody = `DECLARE
  pend int8;
BEGIN
  ${takePending}
  IF TG_OP = 'INSERT' THEN
    INSERT INTO ${u} (bytes, entries) SELECT COALESCE(sum(${size('n')}), 0) + pend, count(*) FROM ${NEW_ROWS} n HAVING count(*) > 0 OR pend <> 0;
  ELSIF TG_OP = 'UPDATE' THEN
    IF pend <> 0 THEN INSERT INTO ${u} (bytes, entries) VALUES (pend, 0); END IF;
  ELSIF TG_OP = 'DELETE' THEN
    INSERT INTO ${u} (bytes, entries) SELECT -sum(${size('o')}) + pend, -count(*) FROM ${OLD_ROWS} o HAVING count(*) > 0 OR pend <> 0;
  ELSE
    DELETE FROM ${u};
  END IF;
  RETURN NULL;
END`;
  // A row whose value is rewritten: by a store of ours, which sets lastaccess itself (then this runs only when the size
  // changed), or by anyone else (.NET, Python, psql), for whom it sets lastaccess.
  const writeBody = `DECLARE
  delta int8 := ${size('NEW')} - (${size('OLD')});
BEGIN
  IF NEW.lastaccess = OLD.lastaccess THEN NEW.lastaccess := now(); END IF;
  IF delta <> 0 THEN
    PERFORM set_config(${pending}, (COALESCE(NULLIF(current_setting(${pending}, true), ''), '0')::int8 + delta)::text, true);
  END IF;
  RETURN NEW;
END`;
  const fn = (name: string, returns: string, body: string) => [
    `CREATE OR REPLACE FUNCTION ${name}() RETURNS ${returns} LANGUAGE plpgsql SECURITY DEFINER
  SET search_path = pg_catalog, pg_temp AS ${dollarQuoted(body)}`,
    // Nobody attaches it to a table of theirs to run it as its owner (EXECUTE is checked when a trigger is created).
    `REVOKE ALL ON FUNCTION ${name}() FROM PUBLIC`,
    `COMMENT ON FUNCTION ${name}() IS ${pg.escapeLiteral(comment)}`,
  ];
  const ourTriggers = Object.values(triggers).map((name) => pg.escapeLiteral(name)).join(', ');

  return {
    usageTable,
    capTable,
    comment,
    usageComment,
    capComment,
    triggerCount: Object.keys(triggers).length,
    inspect: named('capacity_inspect', `SELECT c.relpersistence::text AS persistence,
  EXISTS (SELECT 1 FROM pg_attribute a WHERE a.attrelid = c.oid AND a.attname = 'lastaccess' AND NOT a.attisdropped) AS has_column,
  EXISTS (SELECT 1 FROM pg_index i JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = i.indkey[0]
          WHERE i.indrelid = c.oid AND a.attname = 'lastaccess') AS has_index,
  to_regclass(${pg.escapeLiteral(u)}) IS NOT NULL AS usage_exists,
  to_regclass(${pg.escapeLiteral(c)}) IS NOT NULL AS cap_exists,
  obj_description(to_regclass(${pg.escapeLiteral(u)}), 'pg_class') AS usage_comment,
  obj_description(to_regclass(${pg.escapeLiteral(c)}), 'pg_class') AS cap_comment,
  (SELECT array_agg(DISTINCT obj_description(p.oid, 'pg_proc')) FROM pg_proc p
     WHERE p.pronamespace = c.relnamespace AND p.proname IN (${pg.escapeLiteral(countFnName)}, ${pg.escapeLiteral(writeFnName)})) AS comments,
  (SELECT count(*) FROM pg_trigger g WHERE g.tgrelid = c.oid AND g.tgname IN (${ourTriggers}) AND g.tgenabled <> 'D')::int AS triggers,
  pg_get_userbyid(c.relowner) = current_user OR pg_has_role(c.relowner, 'USAGE') AS owner
FROM pg_class c WHERE c.oid = to_regclass(${pg.escapeLiteral(t)})`, false),

    install: ({ column, index, unlogged }) => [
      // Writers wait for the few statements below: the recount is then exact. Adding the column needs the strongest
      // lock: taken first, not by an upgrade halfway (which deadlocks with a reader waiting to write).
      `LOCK TABLE ${t} IN ${column ? 'ACCESS EXCLUSIVE' : 'SHARE ROW EXCLUSIVE'} MODE`,
      // A constant default on ADD COLUMN is only a catalog change (no rewrite): existing rows read it as now.
      ...(column ? [`ALTER TABLE ${t} ADD COLUMN IF NOT EXISTS lastaccess TIMESTAMPTZ NOT NULL DEFAULT now()`] : []),
      ...(index ? [`CREATE INDEX IF NOT EXISTS ${pg.escapeIdentifier(indexName(table, 'lastaccess'))} ON ${t} (lastaccess)`] : []),
      // As durable as the cache table: after a crash an unlogged table is emptied, and so must its count be.
      `CREATE ${unlogged ? 'UNLOGGED ' : ''}TABLE IF NOT EXISTS ${u} (bytes BIGINT NOT NULL, entries BIGINT NOT NULL)`,
      `CREATE TABLE IF NOT EXISTS ${c} (
  id INT PRIMARY KEY CHECK (id = 1),
  max_bytes BIGINT NULL,
  max_entries BIGINT NULL,
  policy TEXT NOT NULL DEFAULT 'lru',
  set_by TEXT NULL,
  set_at TIMESTAMPTZ NULL,
  evicted_rows BIGINT NOT NULL DEFAULT 0,
  evicted_bytes BIGINT NOT NULL DEFAULT 0,
  last_evicted_at TIMESTAMPTZ NULL,
  last_evicted_rows BIGINT NULL,
  last_evicted_bytes BIGINT NULL
)`,
      `COMMENT ON TABLE ${u} IS ${pg.escapeLiteral(usageComment)}`,
      `COMMENT ON TABLE ${c} IS ${pg.escapeLiteral(capComment)}`,
      `INSERT INTO ${c} (id) VALUES (1) ON CONFLICT (id) DO NOTHING`,
      ...fn(countFn, 'trigger', countBody),
      ...fn(writeFn, 'trigger', writeBody),
      ...Object.values(triggers).map((name) => `DROP TRIGGER IF EXISTS ${pg.escapeIdentifier(name)} ON ${t}`),
      `CREATE TRIGGER ${pg.escapeIdentifier(triggers.insert)} AFTER INSERT ON ${t} REFERENCING NEW TABLE AS ${NEW_ROWS} FOR EACH STATEMENT EXECUTE FUNCTION ${countFn}()`,
      `CREATE TRIGGER ${pg.escapeIdentifier(triggers.delete)} AFTER DELETE ON ${t} REFERENCING OLD TABLE AS ${OLD_ROWS} FOR EACH STATEMENT EXECUTE FUNCTION ${countFn}()`,
      `CREATE TRIGGER ${pg.escapeIdentifier(triggers.truncate)} AFTER TRUNCATE ON ${t} FOR EACH STATEMENT EXECUTE FUNCTION ${countFn}()`,
      // Row-level, only for writes that set the value, and only when there is something to do (tested in C, no call):
      // a read's slide (an UPDATE of expiresattime) or a touch fires nothing.
      `CREATE TRIGGER ${pg.escapeIdentifier(triggers.write)} BEFORE UPDATE OF value, id ON ${t} FOR EACH ROW
  WHEN (OLD.lastaccess = NEW.lastaccess OR octet_length(OLD.value) <> octet_length(NEW.value) OR OLD.id <> NEW.id) EXECUTE FUNCTION ${writeFn}()`,
      // An UPDATE statement's size changes, added at its end (an INSERT ... ON CONFLICT's are added by the INSERT trigger).
      `CREATE TRIGGER ${pg.escapeIdentifier(triggers.flush)} AFTER UPDATE ON ${t} FOR EACH STATEMENT
  WHEN (COALESCE(current_setting(${pending}, true), '') NOT IN ('', '0')) EXECUTE FUNCTION ${countFn}()`,
      // With the triggers in place and writers held off, the count starts exact.
      `DELETE FROM ${u}`,
      `INSERT INTO ${u} (bytes, entries) SELECT COALESCE(sum(${size('r')}), 0), count(*) FROM ${t} r`,
    ],

    setCap: named('capacity_set', `WITH old AS (SELECT max_bytes, max_entries, policy, set_by FROM ${c} WHERE id = 1 FOR UPDATE)
UPDATE ${c} AS c SET max_bytes = $1::int8, max_entries = $2::int8, policy = $3, set_by = $4, set_at = now()
FROM old WHERE c.id = 1 RETURNING old.max_bytes::text, old.max_entries::text, old.policy, old.set_by`, false),

    fold: named('capacity_fold', `WITH lock AS (
  SELECT pg_try_advisory_xact_lock(${LOCK_CLASS}, hashtext($1)) AS ok
), total AS (
  SELECT count(*) AS n, COALESCE(sum(bytes), 0) AS bytes, COALESCE(sum(entries), 0) AS entries FROM ${u}
), folded AS (
  DELETE FROM ${u} WHERE (SELECT ok FROM lock) AND (SELECT n FROM total) > 1 RETURNING bytes, entries
), kept AS (
  INSERT INTO ${u} (bytes, entries) SELECT sum(bytes), sum(entries) FROM folded HAVING count(*) > 0 RETURNING 1
)
SELECT lock.ok AS locked, total.bytes::text, total.entries::text, (SELECT count(*) FROM kept)::int AS rewritten,
  cap.max_bytes::text, cap.max_entries::text, cap.policy
FROM lock, total, ${c} cap WHERE cap.id = 1`),

    usage: named('capacity_usage', `SELECT (SELECT COALESCE(sum(bytes), 0) FROM ${u})::text AS bytes, (SELECT COALESCE(sum(entries), 0) FROM ${u})::text AS entries,
  cap.max_bytes::text, cap.max_entries::text, cap.policy, cap.evicted_rows::text, cap.evicted_bytes::text,
  cap.last_evicted_at, cap.last_evicted_rows::text, cap.last_evicted_bytes::text
FROM ${c} cap WHERE cap.id = 1`),

    evict: named('capacity_evict', `WITH lock AS (
  SELECT pg_try_advisory_xact_lock(${LOCK_CLASS}, hashtext($4)) AS ok
), victims AS (
  SELECT id FROM ${t}
  WHERE (SELECT ok FROM lock)
    AND NOT (slidingexpirationinseconds IS NULL AND absoluteexpiration IS NULL
             AND expiresattime >= $1::timestamptz AND expiresattime < $3::timestamptz)
  ORDER BY lastaccess LIMIT $2 FOR UPDATE SKIP LOCKED
), gone AS (
  DELETE FROM ${t} AS c USING victims WHERE c.id = victims.id RETURNING ${size('c')} AS size
)
SELECT (SELECT ok FROM lock) AS locked, (SELECT count(*) FROM victims)::int AS selected,
  (SELECT count(*) FROM gone)::int AS rows, (SELECT COALESCE(sum(size), 0) FROM gone)::text AS bytes`),

    recordEviction: named('capacity_record', `UPDATE ${c} SET evicted_rows = evicted_rows + $1::int8, evicted_bytes = evicted_bytes + $2::int8,
  last_evicted_at = now(), last_evicted_rows = $1::int8, last_evicted_bytes = $2::int8 WHERE id = 1`),

    touch: named('capacity_touch', `UPDATE ${t} SET lastaccess = now()
WHERE id = ANY($1::text[]) AND lastaccess < now() - $2::float8 * INTERVAL '1 second'`),

    vacuumUsage: `VACUUM ${u}`,
    vacuumTable: `VACUUM ${t}`,
  };
}
