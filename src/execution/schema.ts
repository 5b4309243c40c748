import { SchemaError } from '../errors.js';
import type { Executor, SetupExecutor, TransactionQuery } from './executor.js';
import { CACHE_STORAGE, indexName, locksComment, notifyTriggerSql, type Sql, TRIGGER_EVENT_BITS, type TriggerSql } from '../sql/index.js';

/** The contract's columns and their exact types (format_type spelling). */
const EXPECTED_COLUMNS: Readonly<Record<string, string>> = {
  id: 'character varying(449)',
  value: 'bytea',
  expiresattime: 'timestamp with time zone',
  slidingexpirationinseconds: 'bigint',
  absoluteexpiration: 'timestamp with time zone',
  tags: 'text[]',
};

interface Inspection {
  schema_exists: boolean;
  /** The citus extension is installed in this database. */
  citus: boolean;
  /** The database's encoding (server_encoding). */
  encoding: string;
  oid: string | null;
  /** pg_class.reloptions ('name=value'), or null. */
  options: string[] | null;
  columns: Record<string, string> | null;
  has_expiry_index: boolean | null;
  has_tags_index: boolean | null;
}

interface CitusInspection {
  /** pg_dist_partition's partmethod: 'h' hash-distributed, 'n' reference or Citus-local; null: a plain table. */
  method: string | null;
  column: string | null;
  coordinator: boolean;
}

/** What the schema check found out about the table that changes how it is used. */
export interface TableShape {
  /** Distributed by Citus (or otherwise in its metadata): the executor runs the Citus forms of statements. */
  readonly distributed: boolean;
}

export interface SchemaOptions {
  createIfNotExists: boolean;
  useWal: boolean;
  distributed: { readonly shardCount: number | undefined; readonly colocateWith: string | undefined } | undefined;
  /** `localCache.notifyTrigger`: the cache table's notify triggers are installed when missing. */
  notifyTrigger?: boolean | undefined;
  /** See PgStoreOptions.storageSettings: undefined, on a table it creates; true, also on one it finds; false, never. */
  storageSettings?: boolean | undefined;
}

/**
 * Schema work already done or under way, per scope and table (see {@link Executor.schemaScope}): many
 * stores on one application pool check once; a store on a pool shared by settings checks for itself.
 */
const done = new WeakMap<object, Map<string, Promise<unknown>>>();

/**
 * Makes sure the cache table exists with the contract's shape. Cheap when it does: one catalog read,
 * no lock. Otherwise the missing pieces are created under an advisory lock, so ten processes starting
 * at once do not trip over PostgreSQL's `CREATE ... IF NOT EXISTS` races; a table created by .NET
 * gains the `tags` column and GIN index of the Python library. A failed attempt is forgotten so the
 * next operation retries.
 */
export async function ensureSchema(executor: SetupExecutor, sql: Sql, options: SchemaOptions): Promise<TableShape> {
  const shape = await once(executor, sql.qualified, () => run(executor, sql, options));
  if (options.notifyTrigger) {
    if (shape.distributed) {
      throw new SchemaError(`localCache.notifyTrigger is not available on ${sql.display}, a table distributed by Citus (a trigger there runs on each shard, on the workers, whose notifications the coordinator's listeners never hear). Turn notifyTrigger off.`);
    }
    await once(executor, `${sql.qualified}:notify`, () => ensureTriggers(executor, sql, notifyTriggerSql(sql), options.createIfNotExists, 'the notify trigger of'));
  }
  return shape;
}

/** What a trigger set's `inspect` statement reads. */
export interface TriggerState {
  table_exists: boolean;
  function_exists: boolean;
  comment: string | null;
  triggers: Array<{ type: number; enabled: boolean }> | null;
}

/** The events (INSERT, UPDATE, DELETE, TRUNCATE) for which the set has no enabled trigger, and those whose trigger is disabled. */
export function triggerProblems(state: TriggerState | undefined): { missing: string[]; disabled: string[] } {
  const missing: string[] = [];
  const disabled: string[] = [];
  for (const [event, bit] of Object.entries(TRIGGER_EVENT_BITS)) {
    const found = (state?.triggers ?? []).filter((trigger) => (trigger.type & bit) !== 0);
    if (found.length === 0) missing.push(event);
    else if (!found.some((trigger) => trigger.enabled)) disabled.push(event);
  }
  return { missing, disabled };
}

/** True when the set is installed as `set` would install it (same function version and text), with no trigger missing. */
function triggersCurrent(state: TriggerState | undefined, set: TriggerSql): boolean {
  return Boolean(state?.function_exists && state.comment === set.comment && triggerProblems(state).missing.length === 0);
}

/**
 * Installs a trigger set (function and statement-level triggers) when any of it is missing or outdated, under the
 * DDL lock; one catalog read when nothing is. A disabled trigger is left as it is: someone disabled it.
 */
export async function ensureTriggers(
  executor: Pick<SetupExecutor, 'query' | 'transaction'>,
  sql: Sql,
  set: TriggerSql,
  createIfNotExists: boolean,
  what: string,
): Promise<void> {
  const [state] = await executor.query<TriggerState>(set.inspect, []);
  if (triggersCurrent(state, set)) return;
  if (!createIfNotExists) {
    throw new SchemaError(`${what} ${sql.display} is not installed and createIfNotExists is false. Run:\n${set.install.join(';\n')};`);
  }
  await executor.transaction(async (query) => {
    await query(sql.ddlLock, [`ddl:${sql.display}`]);
    for (const statement of set.install) await query(statement);
  });
}

/**
 * Makes sure the lease-lock table beside the cache table exists (created on first use of a lock, under
 * the same advisory lock as the cache table's DDL).
 */
export function ensureLocksTable(executor: Executor, sql: Sql, options: { createIfNotExists: boolean }): Promise<void> {
  // Beside a distributed cache table, the lock table is distributed by name on the same shards: each lock
  // call is one row, so it runs on one worker. (A reference table would copy every lock write to every
  // node, in a two-phase commit.)
  return once(executor, `${sql.qualified}:locks`, async () => {
    const [state] = await executor.query<LocksInspection>(sql.locksInspect, [sql.locksDisplay]);
    if (state?.exists) return checkLocksTable(state, sql);
    if (!options.createIfNotExists) {
      throw new SchemaError(`Lock table ${sql.locksDisplay} does not exist and createIfNotExists is false. Run: ${sql.ddl.createLocksTable}`);
    }
    // Under the DDL lock, CREATE ... IF NOT EXISTS cannot race another instance of ours.
    await executor.transaction(async (query) => {
      await query(sql.ddlLock, [`ddl:${sql.display}`]);
      const [found] = await query<LocksInspection>(sql.locksInspect, [sql.locksDisplay]);
      if (found?.exists) return checkLocksTable(found, sql);
      await query(sql.ddl.createLocksTable);
      await query(sql.ddl.commentLocksTable);
      if (executor.forms.distributed) await query(sql.distributeLocksTable);
    });
  });
}

interface LocksInspection {
  exists: boolean;
  comment: string | null;
  columns: Record<string, string> | null;
}

const LOCK_COLUMNS: Readonly<Record<string, string>> = {
  name: 'character varying(449)',
  owner: 'text',
  token: 'bigint',
  expiresat: 'timestamp with time zone',
};

/**
 * The lock table found under the derived name must be a lock table, and this cache table's: one that
 * another cache table created (its comment names it) would make the two share their locks.
 */
function checkLocksTable(state: LocksInspection, sql: Sql): void {
  const expected = locksComment(sql.display);
  if (state.comment !== null && state.comment !== expected) {
    throw new SchemaError(`Table ${sql.locksDisplay} is not the lock table of ${sql.display}: its comment says "${state.comment}". Rename one of the cache tables.`);
  }
  const wrong = columnDifferences(LOCK_COLUMNS, state.columns);
  if (wrong) throw new SchemaError(`Table ${sql.locksDisplay} is not a cache-postgres lock table: ${wrong}.`);
}

/** Runs `work` once per pool and key; a failure is forgotten so the next call retries. */
function once<T>(executor: Pick<Executor, 'schemaScope'>, key: string, work: () => Promise<T>): Promise<T> {
  let perPool = done.get(executor.schemaScope);
  if (!perPool) done.set(executor.schemaScope, (perPool = new Map()));
  const existing = perPool.get(key);
  if (existing) return existing as Promise<T>;
  const attempt = work().catch((error: unknown) => {
    perPool.delete(key);
    throw error;
  });
  perPool.set(key, attempt);
  return attempt;
}

async function run(executor: SetupExecutor, sql: Sql, options: SchemaOptions): Promise<TableShape> {
  const [first] = await executor.query<Inspection>(sql.inspect, [sql.schema, sql.table]);
  if (first) checkEncoding(first, sql);
  if (options.distributed && !first?.citus) {
    throw new SchemaError(
      `distributed is set, but the database of ${sql.display} has no citus extension. Connect to a Citus coordinator (CREATE EXTENSION citus there), or leave distributed unset.`,
    );
  }
  // A table of another shape is reported before anything is added to it.
  if (first?.oid) checkColumns(first, sql, ['tags']);
  const citus = first?.oid && first.citus ? await inspectCitus(executor, sql) : undefined;
  const wanted = options.distributed !== undefined && !citus?.method;
  const retune = options.storageSettings === true && Boolean(first?.oid) && !hasCacheStorage(first);
  if (first && isComplete(first) && !wanted && !retune) return shape(citus, sql);
  if (!options.createIfNotExists) {
    if (!first?.oid) {
      throw new SchemaError(`Table ${sql.display} does not exist and createIfNotExists is false. Create it (docs/interop.md has the DDL) or allow the store to.`);
    }
    if (!first.columns?.tags) {
      throw new SchemaError(`Table ${sql.display} has no "tags" column and createIfNotExists is false. Run: ${sql.ddl.addTagsColumn}`);
    }
    if (wanted) {
      throw new SchemaError(`Table ${sql.display} is not distributed, distributed is set and createIfNotExists is false. Run: SELECT create_distributed_table('${sql.display}', 'id')`);
    }
    // Asked for explicitly: the settings, even where nothing may be created.
    if (retune) await executor.query({ name: '', label: 'storage settings', text: sql.ddl.storageSettings, prepared: false }, []);
    return shape(citus, sql); // Missing indexes only cost speed; with createIfNotExists false we do not add them.
  }
  await executor.transaction(async (query) => {
    await query(sql.ddlLock, [`ddl:${sql.display}`]);
    const [state] = await query<Inspection>(sql.inspect, [sql.schema, sql.table]);
    await createMissing(query, sql, state, options.useWal);
    // A cache's storage settings on a table created just now (unless told never), or on one found, when asked.
    const created = !state?.oid;
    if ((created && options.storageSettings !== false) || (!created && options.storageSettings === true && !hasCacheStorage(state))) {
      await query(sql.ddl.storageSettings);
    }
    if (options.distributed) {
      const [now] = await query<CitusInspection>(sql.citusInspect, [sql.qualified]);
      if (!now?.method) await query(sql.distributeTable, [options.distributed.shardCount ?? null, options.distributed.colocateWith ?? 'default']);
    }
    const [after] = await query<Inspection>(sql.inspect, [sql.schema, sql.table]);
    if (!after?.oid) throw new SchemaError(`Table ${sql.display} is still missing after CREATE TABLE.`);
    checkColumns(after, sql);
    // CREATE INDEX IF NOT EXISTS does nothing when another relation has the name: say so, rather than
    // leave the table without its index (the expiry scan would read the whole table).
    for (const [column, present] of [['expiresattime', after.has_expiry_index], ['tags', after.has_tags_index]] as const) {
      if (present) continue;
      const name = indexName(sql.table, column);
      throw new SchemaError(
        `Table ${sql.display} has no index on ${column}, and "${name}" is taken by another relation in schema ${sql.schema}; rename that relation, or create an index on ${sql.display} (${column}) yourself.`,
      );
    }
  });
  return shape(first?.citus || options.distributed ? await inspectCitus(executor, sql) : undefined, sql);
}

/**
 * Whether the table is distributed now: asked again when Citus refuses a statement of a store that found
 * it on one server (see Executor.watchDistribution). Rejects with the SchemaError of a table the store
 * cannot use distributed (by another column, or this connection on a worker).
 */
export async function isDistributedNow(executor: SetupExecutor, sql: Sql): Promise<boolean> {
  return shape(await inspectCitus(executor, sql), sql).distributed;
}

function inspectCitus(executor: SetupExecutor, sql: Sql): Promise<CitusInspection | undefined> {
  return executor.query<CitusInspection>(sql.citusInspect, [sql.qualified]).then(([row]) => row);
}

/**
 * A distributed table must be distributed by id (every single-key statement then runs on one shard),
 * and used from the coordinator: getOrSet's advisory locks and the local tier's LISTEN/NOTIFY live on
 * the node a connection is on, so clients on different nodes would neither exclude nor hear each other.
 */
function shape(citus: CitusInspection | undefined, sql: Sql): TableShape {
  if (!citus?.method) return { distributed: false };
  if (citus.method === 'h' && citus.column !== 'id') {
    throw new SchemaError(`Table ${sql.display} is distributed by ${citus.column}; cache-postgres needs it distributed by id. Run: SELECT undistribute_table('${sql.display}'); SELECT create_distributed_table('${sql.display}', 'id')`);
  }
  if (!citus.coordinator) {
    throw new SchemaError(
      `Table ${sql.display} is distributed by Citus and this connection is on a worker node. Connect every cache client to the coordinator: getOrSet's locks and the local cache's notifications are per node, so clients on different nodes would neither exclude nor hear each other.`,
    );
  }
  return { distributed: true };
}

async function createMissing(query: TransactionQuery, sql: Sql, state: Inspection | undefined, useWal: boolean): Promise<void> {
  // Each step only when the catalog says it is missing: ALTER TABLE ... IF NOT EXISTS would still take
  // an ACCESS EXCLUSIVE lock on a busy table, and CREATE SCHEMA IF NOT EXISTS needs a privilege that
  // users of an existing schema may not have.
  if (!state?.schema_exists) await query(sql.ddl.createSchema);
  if (!state?.oid) await query(sql.ddl.createTable(useWal));
  else if (!state.columns?.tags) await query(sql.ddl.addTagsColumn);
  if (!state?.has_expiry_index) await query(sql.ddl.createExpiryIndex);
  if (!state?.has_tags_index) await query(sql.ddl.createTagsIndex);
}

/**
 * The contract's keys are text of up to 449 characters, shared with .NET and Python: in a UTF8
 * database varchar(449) counts characters. In SQL_ASCII it counts bytes (a key of 449 multibyte
 * characters fails) and stores whatever bytes it is given; in a single-byte encoding most characters
 * cannot be stored at all. Refused before anything is created or read.
 */
function checkEncoding(state: Inspection, sql: Sql): void {
  if (state.encoding === 'UTF8') return;
  throw new SchemaError(
    `The database of ${sql.display} is encoded ${state.encoding}; cache-postgres needs a UTF8 database (keys are text of up to 449 ` +
      `characters, shared with .NET and Python, and ${state.encoding} ${state.encoding === 'SQL_ASCII' ? 'counts them in bytes' : 'cannot hold every character'}). ` +
      "Create the database with ENCODING 'UTF8' (initdb --encoding=UTF8, or CREATE DATABASE ... ENCODING 'UTF8' TEMPLATE template0).",
  );
}

/** The table already has the storage settings of a cache (its own; its TOAST table's are set with them). */
function hasCacheStorage(state: Inspection | undefined): boolean {
  const found = new Set(state?.options ?? []);
  return CACHE_STORAGE.filter((setting) => !setting.startsWith('toast.')).every((setting) => found.has(setting));
}

function isComplete(state: Inspection): boolean {
  return Boolean(state.oid && state.columns?.tags && state.has_expiry_index && state.has_tags_index);
}

function checkColumns(state: Inspection, sql: Sql, optional: string[] = []): void {
  const wrong = columnDifferences(EXPECTED_COLUMNS, state.columns, optional);
  if (wrong) {
    const keyvPostgres = state.columns && 'key' in state.columns && 'value' in state.columns && !('id' in state.columns);
    const advice = keyvPostgres
      ? ' It looks like a @keyv/postgres table (key, value). PgStore uses the .NET/Python layout and does not read or change that table: give PgStore another table name (the default is "cache"), and drop the old table when nothing uses it. docs/keyv.md, "Migrating from @keyv/postgres".'
      : ' Give PgStore a table name of its own (it creates the table), or see docs/interop.md for the expected layout.';
    throw new SchemaError(`Table ${sql.display} is not a cache table of the .NET/Python layout: ${wrong}.${advice}`);
  }
}

/** How `found` columns differ from `expected` (names to format_type spelling), or '' when they do not. */
function columnDifferences(expected: Readonly<Record<string, string>>, found: Record<string, string> | null, optional: string[] = []): string {
  const columns = found ?? {};
  const wrong: string[] = [];
  for (const [name, type] of Object.entries(expected)) {
    if (columns[name] === undefined && optional.includes(name)) continue;
    if (columns[name] !== type) wrong.push(`${name} should be ${type} but is ${columns[name] ?? 'missing'}`);
  }
  return wrong.join('; ');
}
