import type pg from 'pg';
import type { Duration } from '../duration.js';
import type { KeyvPostgresOptions } from './keyv_postgres.js';

/** Options of {@link PgStore}. Every field is optional: `new PgStore()` reads `DATABASE_URL` or the `PG*` variables. */
export interface PgStoreOptions extends KeyvPostgresOptions {
  /**
   * PostgreSQL connection URL, e.g. `postgres://user:pass@host:5432/db`.
   * @default process.env.DATABASE_URL, else node-postgres' own defaults (PGHOST, PGUSER, PGDATABASE, ...)
   */
  uri?: string | undefined;
  /** Alias of {@link PgStoreOptions.uri}, with node-postgres' name. */
  connectionString?: string | undefined;
  /**
   * An existing `pg.Pool` to share: many stores, one pool. `disconnect()` never ends a pool the
   * store did not create. Mutually exclusive with `uri`, `poolMax` and `poolConfig`.
   */
  pool?: pg.Pool | undefined;
  /**
   * Maximum number of connections of the pool the store creates.
   * @default 10
   */
  poolMax?: number | undefined;
  /** Extra `pg.PoolConfig` for the pool the store creates (ssl, keepAlive, application_name, ...). */
  poolConfig?: Omit<pg.PoolConfig, 'connectionString' | 'max'> | undefined;
  /**
   * Longest wait for a connection: a free one from the pool, or a new one established (TCP, TLS and
   * PostgreSQL's startup). Past it the call fails with a `ConnectionError` (`E_CONNECTION`), so a
   * server that accepts connections and never answers, or a pool held by slow work, cannot hang a call.
   * @default '5s'
   */
  connectTimeout?: Duration | undefined;
  /**
   * Longest time one statement may run. With the pool the store creates, PostgreSQL enforces it
   * (`statement_timeout`): the statement is cancelled and writes nothing. On every pool, a statement
   * whose answer has not arrived this long plus 2 seconds after it was sent is cancelled and its connection closed
   * (a server that stopped answering). Either way the call fails with a `StatementTimeoutError`
   * (`E_STATEMENT_TIMEOUT`). getOrSet's wait for a key lock is bounded by its own `lockTimeout`
   * instead. `0` turns the limit off.
   * @default '15s'
   */
  statementTimeout?: Duration | undefined;
  /**
   * Schema of the cache table. A lower-case identifier (`[a-z_][a-z0-9_]*`), the only form that names
   * the same table in .NET (which folds to lower case) and Python (which quotes).
   * @default 'public'
   */
  schema?: string | undefined;
  /**
   * Name of the cache table, a lower-case identifier like `schema`.
   * @default 'cache'
   */
  table?: string | undefined;
  /**
   * Create the schema, table and indexes when missing (serialized across processes). When false,
   * a missing table is reported as a `SchemaError` on first use.
   * @default true
   */
  createIfNotExists?: boolean | undefined;
  /**
   * Create the table WAL-logged (crash-safe, replicated) instead of UNLOGGED (faster writes; emptied
   * after a crash, not on replicas). Only used when the store creates the table.
   * @default false
   */
  useWal?: boolean | undefined;
  /**
   * Citus: create the table (and the lock table) distributed by `id` across the cluster's workers,
   * with `create_distributed_table`; an existing local table is distributed (its rows move to the
   * shards). `true` uses Citus' defaults (`citus.shard_count`, 32; colocated with other tables
   * distributed by a column of the same type); `{ shardCount }` or `{ colocateWith: 'other_table' }`
   * choose. Needs the citus extension and a connection to the coordinator. A table already distributed
   * is detected whatever this option says, and the statements adapt. docs/scaling.md.
   * @default false
   */
  distributed?: boolean | DistributedOptions | undefined;
  /**
   * Delete expired rows in the background (batched; one instance at a time across processes).
   * @default true
   */
  enableExpirationScan?: boolean | undefined;
  /**
   * Time between two expiration scans. At least 5 minutes, like .NET.
   * @default '30m'
   */
  expirationScanInterval?: Duration | undefined;
  /**
   * How long the expiration scan keeps a row after it expired. Expired rows are invisible to every
   * normal read either way; keeping them lets grace periods and `failover` serve the last value.
   * Set it to at least the largest `maxStale` you use.
   * @default 0
   */
  retainExpiredFor?: Duration | undefined;
  /**
   * Rows deleted per statement by the expiration scan and by `clear()`, so no statement holds
   * many row locks for long.
   * @default 1000
   */
  deleteBatchSize?: number | undefined;
  /**
   * A cap on the table's size: the bytes of its entries (each key's and value's bytes, as stored; the table and its
   * indexes take more on disk, see docs/operations.md). Whole bytes, or a size as in postgresql.conf: `'64MB'`,
   * `'2GB'` (powers of 1024; `'MiB'`, `'GiB'` too). At least 1MB. Past it, the sweeper (one store at a time across
   * processes) evicts entries in `eviction` order, in small batches, down to 95% of the cap; a write larger than the
   * cap is refused with ValueTooLargeError. The cap is the table's: the last store started with `maxSize` or
   * `maxEntries` writes it there, and every capped store's sweeper enforces the table's cap (a store whose options
   * differ says so once, as a warning). Not with `distributed`. docs/operations.md.
   * @default undefined (no cap)
   */
  maxSize?: number | string | undefined;
  /**
   * A cap on the number of entries, alone or beside `maxSize` (whichever is reached first evicts). Same rules as
   * `maxSize`.
   * @default undefined (no cap)
   */
  maxEntries?: number | undefined;
  /**
   * Which entries a cap evicts first: `'lru'`, the least recently read or written (a read is recorded at most once
   * per `lruResolution`, in a background batch, so reads stay reads), or `'fifo'`, the least recently written (reads
   * write nothing). Entries written by .NET and Python count by their writes. Only with a cap.
   * @default 'lru'
   */
  eviction?: 'lru' | 'fifo' | undefined;
  /**
   * How often the sweeper checks the table against its cap (one cheap statement when under it). From 100 ms to
   * 1 hour. Only with a cap.
   * @default '1s'
   */
  evictionInterval?: Duration | undefined;
  /**
   * LRU: how stale a key's recorded last read may get before a read records it again. Lower is closer to exact LRU
   * and writes more. At least 1 second. Only with `eviction: 'lru'`.
   * @default '5s'
   */
  lruResolution?: Duration | undefined;
  /**
   * Storage settings suited to a cache (fillfactor and autovacuum thresholds, docs/operations.md) on the table:
   * left out, only when the store creates the table; `true`, also on an existing table (the store's role must own
   * it); `false`, never.
   * @default undefined
   */
  storageSettings?: boolean | undefined;
  /**
   * Sliding expiration applied by `store.ext` writes that give no expiry at all (the .NET rule).
   * Must be greater than zero.
   * @default '20m'
   */
  defaultSlidingExpiration?: Duration | undefined;
  /**
   * A read extends a sliding entry only when that moves its expiry by at least this fraction of its
   * sliding window (0 to 1), so a hot key is not rewritten on every read: after any read an entry
   * still has at least (1 - this) of its window left. 0 writes on every read that moves the expiry.
   * @default 0.1
   */
  slidingWriteThreshold?: number | undefined;
  /**
   * Rows fetched per page by `iterator()` (keyset pagination: memory stays constant).
   * @default 100
   */
  iterationLimit?: number | undefined;
  /**
   * Fold the single-key calls (get, set, delete, has, incr) issued in the same tick into few statements
   * (the gets and sets in one), DataLoader-style. Each caller still gets its own result and its own error.
   * @default true
   */
  batching?: boolean | undefined;
  /**
   * Most keys in one batched statement; a full batch is sent at once.
   * @default 500
   */
  maxBatchSize?: number | undefined;
  /**
   * Send hot statements as named prepared statements (parsed and planned once per connection). Turn it
   * off behind a pooler that cannot keep them across its server connections: PgBouncer before 1.21 in
   * transaction mode, or later versions without `max_prepared_statements`.
   * @default true
   */
  preparedStatements?: boolean | undefined;
  /**
   * Send the statements of one batch back to back on one connection without waiting for each answer
   * (node-postgres' pipeline mode): a read is a plain select, and only the rows it finds due a slide
   * are slid, by a second statement sent before it answers; PostgreSQL runs these in half the time of the
   * single statement that does both (measured). Needs `preparedStatements` (a pooler that cannot keep prepared statements cannot keep
   * pipelines either) and, with a borrowed `pool`, one created with `pipeline: true`; otherwise
   * the single-statement form is used.
   * @default true
   */
  pipelining?: boolean | undefined;
  /**
   * An in-process tier in front of PostgreSQL: a get of an entry read or written recently is answered
   * from memory, with no round trip. `true` takes the defaults. Off by default: it trades freshness for speed.
   *
   * What stays true: an entry is never served past its row's expiry in PostgreSQL as known here; a sliding
   * entry served from memory has its row slid in the background, as its read would have (at most once per
   * `slidingWriteThreshold` of its window); this store's own writes, deletes and clears are seen at once; writes of other stores with `localCache` on (any process) reach this one through
   * PostgreSQL LISTEN/NOTIFY, usually within milliseconds. What does not: a write this process hears
   * nothing of (.NET, Python, a store without `localCache`, SQL by hand) is seen once the memory copy
   * is `ttl` old, unless `notifyTrigger` is on. The notifications need a session connection: not through PgBouncer in transaction mode.
   * @default false
   */
  localCache?: boolean | LocalCacheOptions | undefined;
  /**
   * How `lock`, `tryLock`, `withLock` and `isLocked` lock. `'lease-table'`: leases in `<table>_locks`,
   * apart from cache rows. `'python'`: the Python library's row locks (a row of the cache table under the
   * lock's name, holding the owner's token), so that Node and Python processes exclude each other on the
   * same names; fencing tokens, renewal and LockNotHeldError still hold for Node holders (docs/locks-and-get-or-set.md, "Locks
   * shared with Python").
   * @default 'lease-table'
   */
  lockProtocol?: 'lease-table' | 'python' | undefined;
  /**
   * Where failures and warnings go besides the events, so they are visible without wiring a listener:
   * `console`, or any object with `error(error)` and `warn(message)` (pino, winston and BentoCache-style
   * loggers have both). `error` receives each failure of a call Keyv makes on the store (Keyv turns them
   * into `undefined` / `false` unless `throwOnErrors` is set) and each background failure (expiration scan,
   * background refresh, idle connection); `warn` receives configuration warnings, each once. Without a
   * logger, background failures and warnings nobody listens to become process warnings.
   * @default none
   */
  logger?: CacheLogger | undefined;
  /**
   * A clock to decide expiry, leases and lock takeovers on, in epoch milliseconds, in place of the
   * database's: for tests that move time. Without it the store decides on PostgreSQL's clock, read on its
   * first call and every 30 s (see `DatabaseClock`), so clock skew between application servers changes
   * nothing. Every statement is passed this time as `now`, as .NET and Python pass theirs.
   * @default the database's clock
   */
  clock?: (() => number) | undefined;
}

/** Options of {@link PgStoreOptions.distributed}. */
export interface DistributedOptions {
  /** Number of shards (1 to 64,000). @default the cluster's `citus.shard_count` (32) */
  shardCount?: number | undefined;
  /** A distributed table to put each key's shard beside (same shard count and placement). Not with `shardCount`. */
  colocateWith?: string | undefined;
}

/** The logger {@link PgStoreOptions.logger} takes: `console` is one. */
export interface CacheLogger {
  error(error: Error): void;
  warn(message: string): void;
}

/** Options of the in-process tier ({@link PgStoreOptions.localCache}). */
export interface LocalCacheOptions {
  /**
   * Most entries kept; the least recently used one goes first.
   * @default 10000
   */
  maxEntries?: number | undefined;
  /**
   * Most bytes the entries kept may cost, the least recently used going first: each value (its UTF-8
   * size; a value kept as the text Keyv stores counts one per character; a value asked for both as bytes
   * and as text counts both), its key (two bytes a character) and about 480 bytes of bookkeeping per
   * entry, what V8 was measured to spend on one beyond its value. An entry larger than this is not kept.
   * @default 67108864 (64 MiB)
   */
  maxBytes?: number | undefined;
  /**
   * Longest time a copy is served from memory: the bound on staleness for writes this process
   * is not notified of.
   * @default '5s'
   */
  ttl?: Duration | undefined;
  /**
   * Install (in the store's schema step, idempotently) a trigger on the cache table that notifies the
   * local tiers of every change to it, whoever makes it: .NET, Python, psql, a store without
   * `localCache`, a migration. Those writes then reach every tier within milliseconds instead of once
   * its copy is `ttl` old. With it on, stores send no notices of their own (the trigger does), and a
   * store's own write-through copy is dropped when the trigger's notice of that write comes back, so the
   * next read of the key asks PostgreSQL once. Its cost on writes is in docs/local-cache.md. Not on a
   * table distributed by Citus. Turning it off later does not remove the trigger: `store.ext.dropNotifyTrigger()` does.
   * @default false
   */
  notifyTrigger?: boolean | undefined;
}
