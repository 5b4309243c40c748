/**
 * npm run bench:scale [-- --url postgres://... --only keyspace,values,bulk,processes,memory --seed N --out docs/scale.png]
 *
 * How the store's cost grows (issue 30): with the number of entries, the size of a value, the size of a bulk
 * call, the number of processes, and the length of a run. Without --url (or PG_URL / DATABASE_URL) it runs on a
 * throw-away embedded PostgreSQL (src/testing). The seed (printed first; `--seed N` repeats a run) draws every key
 * and every operation; values are random bytes or text (incompressible), never a pattern that flatters the cache.
 *
 * Full run (the defaults; about an hour here, half of it the memory section; ~16 GB of disk at the peak, the 10^7 table):
 *   npm run bench:scale -- --url postgres://...
 * Smoke run (about 2 minutes):
 *   npm run bench:scale -- --url postgres://... --sizes 1e3,1e4 --ops 2000 --rounds 1 --value-mb 16
 *     --bulk-sizes 10,1000,10000 --tag-entries 1e4 --pattern-keys 1e4 --expired-rows 1e4 --procs 1,4 --proc-seconds 5
 *     --proc-keys 1e4 --idle-wait 2 --memory-ops 2e4 --memory-keys 1e4 --local-max-bytes 4MiB --out /tmp/scale.png
 *
 * Sections (--only, comma-separated; all by default), each printing a table:
 *
 * 1. keyspace (--sizes 1e3,1e5,1e6,1e7): one table grown to each size in turn with live entries of 1 KiB, filled on
 *    the server (INSERT ... SELECT generate_series, in the row format a Keyv write makes: id `scale:<i>`, value
 *    Keyv's JSON envelope `{"value":"..."}` as UTF-8 bytes, expiresattime 'infinity', no expiry columns; checked
 *    once: a filled row reads back through Keyv and store.ext, and a row Keyv writes with the same value is equal
 *    to it column by column). Reported per size: fill time, VACUUM ANALYZE time, pg_table_size and
 *    pg_indexes_size. Then, at each size, 16 cells: Zipf (s = --zipf, ranks scattered over the keys) and uniform
 *    key draws x read-heavy (90% get / 10% set) and write-heavy (10/90) x through Keyv and through store.ext x
 *    without and with the local tier (`localCache: { maxBytes: --local-max-bytes, maxEntries: --local-max-entries }`,
 *    entries large enough that maxBytes is the bound), --workers (20) concurrent callers, --ops per cell after a
 *    tenth of that as warm-up, a fresh store per cell (its expiry scan off: section 3 measures the sweep), cells in
 *    another order each round (--rounds), the table vacuumed before each round, medians over the rounds. Per cell:
 *    ops/s, p50/p99 latency, CPU µs per operation of the client (this process) and of the server (every postgres
 *    process on this machine, as bench/run.ts; and `own`: the backends of this process's connections alone, found
 *    by their client ports, which leaves out other users of a shared server), and for the local tier its hit share
 *    (localHits / (hits + misses), warm-up included, from the first round: store.stats() counts the whole table)
 *    and its size (localEntries x 1 KiB: every value is 1 KiB, and the tier counts a value's bytes or characters)
 *    against maxBytes. The ratio of each cell to the same cell at the smallest size, and the goal: at the largest
 *    size, at least 80% of the smallest size's throughput on the PostgreSQL path (tier off).
 * 2. values (--value-sizes 100,10KiB,1MiB,16MiB): write then read MB/s through store.ext (Buffers) and Keyv (a
 *    string of that many characters), and the ceiling: a plain `pg` pool of the same size writing and reading the
 *    same bytes on a plain UNLOGGED table of the same columns (primary key only) with the simplest statements
 *    (`INSERT ... ON CONFLICT (id) DO UPDATE SET value = EXCLUDED.value`, `SELECT value FROM t WHERE id = $1`; MB: 2^20 B).
 *    --value-workers (4) callers; about --value-mb (64) MB written and read per target and round (8 to 20,000
 *    operations) over at most 256 keys; targets interleaved, in another order each round; ratio to the ceiling.
 * 3. bulk: getMany/setMany/deleteMany of --bulk-sizes (10,1000,100000) random keys through store.ext and Keyv
 *    (200, 100 and 3 repetitions), deleteTags of one tag on --tag-entries (1e5) entries, deletePattern over
 *    --pattern-keys (1e6) keys, and the expiry sweep (store.clearExpired(), what the background scan runs) of
 *    --expired-rows (1e6) expired rows; the rows for the last three filled on the server. Rows/s, and meanwhile
 *    the foreground: --fg-workers (4) callers of single-key ext.get on other keys (through the same store, as one
 *    application would), each pausing --fg-pause-ms (2) between calls; every call that overlapped a bulk call (so
 *    one issued just before it and held by it counts; one overlapping two bulk calls counts for both): p50, p99,
 *    max, and how many took over 50 ms (the goal: none), beside the same callers for 2 s with nothing else running;
 *    and the longest block of this process's event loop meanwhile (a 5 ms timer that fired over 20 ms late): a held
 *    call inside such a block was held by this process's own work (the bulk call's, or GC), not by PostgreSQL.
 * 4. processes (--procs 1,8,32): that many Node processes (this script forked in a worker mode), each with its own
 *    PgStore (defaults, no local tier) and Keyv, --proc-workers (20) callers each, read-heavy uniform over
 *    --proc-keys (1e5) entries for --proc-seconds (30); aggregate ops/s, p99, and the server connections they hold
 *    (pg_stat_activity sampled every 0.5 s, told apart by client port, grouped by application_name and state).
 *    --proc-pool-max (auto,10): `auto` is the largest poolMax (at most 10) with which every process's pool fits in
 *    max_connections minus the reserved ones, the connections open at the start and --conn-margin (20) left for
 *    others; a configuration that does not fit is reported and not run (on a shared server it would refuse
 *    everyone's connections), unless --allow-overflow. Then what one idle store holds: a store with the defaults
 *    after ready(), a get, a burst of 20 concurrent gets, --idle-wait seconds idle, and the same with localCache
 *    (its listener connection); the expiry scan has no connection of its own (a pass borrows the pool's).
 * 5. memory: RSS and heapUsed, sampled every second in a process of its own, over --memory-ops (1e7) operations
 *    (80% get, 15% set, 5% delete, uniform over --memory-keys (1e5) entries of 1 KiB, 20 callers, through Keyv),
 *    with the local tier (maxBytes --local-max-bytes) and without; max RSS, heap after a full GC, the tier's size
 *    (as in 1) against maxBytes.
 *
 * Output: the tables on stdout, bench/results/scale-<time>.json (every figure, the settings and the seed), and the
 * plot --out (default docs/scale.png; --no-plot for none): ops/s and p99 against the key count (log x) per target,
 * read- and write-heavy, and write and read MB/s against the value size beside the ceiling, drawn as bench/churn.ts
 * draws its plot (bench/plot.ts: an SVG rendered by Chromium; without Chromium, the SVG is written).
 * Tables are all named scale_* and dropped before the run and after each section. Ctrl-C ends the current
 * measurement, disconnects the stores, stops the forked processes, drops the tables, writes what was measured and
 * stops an embedded server (twice: at once).
 *
 * What it cannot show:
 * - Another machine. This one has 2 shared cores: the bench, its workers and PostgreSQL compete for them, so ops/s
 *   is bounded by the CPU, not by the store or the network (loopback). CPU per operation is the steadier figure.
 *   On a shared server, "server µs/op" counts everyone's work; "own" only this bench's backends (but not
 *   PostgreSQL's background processes).
 * - Cold disks. The tables fit the machine's page cache (10^7 rows: ~15 GB beside 24 GB of RAM), so a read that
 *   misses shared_buffers costs a copy from the OS, not a disk read; a larger key space on a smaller machine would.
 * - Autovacuum at work: the table is vacuumed between rounds; a long write-heavy run without vacuum bloats it.
 * - A foreground in another process: section 3's callers share the bulk call's process, so a bulk read that keeps
 *   the event loop busy decoding its rows delays them too (as it would in one application), and its store's
 *   ordering of calls (a bulk delete holds the single-key calls issued after it) shows as foreground latency.
 * - 32 processes on 2 cores measure contention for the CPU as much as for connections.
 * - The local tier's behaviour under other processes' writes (section 4 runs without it), and any key
 *   distribution other than uniform and Zipf.
 * - Process counts beyond what max_connections allows at poolMax >= 1, or PgBouncer in front.
 */
import { fork, type ChildProcess } from 'node:child_process';
import { createHash } from 'node:crypto';
import { mkdirSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import Keyv from 'keyv';
import pg from 'pg';
import { PgStore, type PgStoreOptions } from '../src/index.js';
import { startTestDatabase, type TestDatabase } from '../src/testing/index.js';
import { serverCpuSeconds } from './cpu.js';
import { renderPng, scaleSvg, type ScalePanel, type ScaleSeries } from './plot.js';
import { seededRandom } from './random.js';
import {
  backendsOf,
  bytesText,
  countLabel,
  CpuMeter,
  drive,
  fmt,
  Foreground,
  makePlan,
  mb,
  median,
  mixSeed,
  parseCount,
  parseList,
  pct,
  percentile,
  randomBytes,
  randomText,
  sleep,
  uniformDraw,
  zipfDraw,
  type Driven,
  type KeyDraw,
  type Plan,
} from './scale_lib.js';

const { values: args } = parseArgs({
  options: {
    url: { type: 'string' },
    only: { type: 'string', default: 'keyspace,values,bulk,processes,memory' },
    seed: { type: 'string' },
    out: { type: 'string' },
    'no-plot': { type: 'boolean', default: false },
    // 1. key space
    sizes: { type: 'string', default: '1e3,1e5,1e6,1e7' },
    ops: { type: 'string', default: '20000' },
    rounds: { type: 'string', default: '3' },
    workers: { type: 'string', default: '20' },
    zipf: { type: 'string', default: '1' },
    'fill-chunk': { type: 'string', default: '250000' },
    'local-max-bytes': { type: 'string', default: '32MiB' },
    'local-max-entries': { type: 'string', default: '1000000' },
    // 2. value size
    'value-sizes': { type: 'string', default: '100,10KiB,1MiB,16MiB' },
    'value-mb': { type: 'string', default: '64' },
    'value-workers': { type: 'string', default: '4' },
    // 3. bulk
    'bulk-sizes': { type: 'string', default: '10,1000,100000' },
    'tag-entries': { type: 'string', default: '1e5' },
    'pattern-keys': { type: 'string', default: '1e6' },
    'expired-rows': { type: 'string', default: '1e6' },
    'fg-workers': { type: 'string', default: '4' },
    'fg-pause-ms': { type: 'string', default: '2' },
    'fg-keys': { type: 'string', default: '1e4' },
    // 4. processes
    procs: { type: 'string', default: '1,8,32' },
    'proc-seconds': { type: 'string', default: '30' },
    'proc-keys': { type: 'string', default: '1e5' },
    'proc-workers': { type: 'string', default: '20' },
    'proc-pool-max': { type: 'string', default: 'auto,10' },
    'conn-margin': { type: 'string', default: '20' },
    'allow-overflow': { type: 'boolean', default: false },
    'idle-wait': { type: 'string', default: '12' },
    // 5. memory
    'memory-ops': { type: 'string', default: '1e7' },
    'memory-keys': { type: 'string', default: '1e5' },
    // Internal: this script forked as a worker process.
    worker: { type: 'string' },
    table: { type: 'string' },
    'pool-max': { type: 'string' },
    tier: { type: 'string' },
  },
});

const ROOT = fileURLToPath(new URL('..', import.meta.url));
const SECTIONS = ['keyspace', 'values', 'bulk', 'processes', 'memory'] as const;
type Section = (typeof SECTIONS)[number];
const ONLY = new Set(args.only!.split(',').map((s) => s.trim()).filter(Boolean));
for (const s of ONLY) if (!(SECTIONS as readonly string[]).includes(s)) throw new Error(`--only: unknown section ${s} (choose from ${SECTIONS.join(', ')})`);
const SEED = args.seed === undefined ? Math.floor(Math.random() * 2 ** 31) : Number(args.seed);
if (!Number.isSafeInteger(SEED)) throw new Error(`--seed must be a whole number, got ${args.seed}`);

const SIZES = parseList(args.sizes!, '--sizes').sort((a, b) => a - b);
const OPS = parseCount(args.ops!, '--ops');
const WARMUP = Math.max(1, Math.ceil(OPS / 10));
const ROUNDS = parseCount(args.rounds!, '--rounds');
const WORKERS = parseCount(args.workers!, '--workers');
const ZIPF_S = Number(args.zipf);
if (!(ZIPF_S > 0)) throw new Error(`--zipf must be a positive number, got ${args.zipf}`);
const FILL_CHUNK = parseCount(args['fill-chunk']!, '--fill-chunk');
const LOCAL_MAX_BYTES = parseCount(args['local-max-bytes']!, '--local-max-bytes');
const LOCAL_MAX_ENTRIES = parseCount(args['local-max-entries']!, '--local-max-entries');
const VALUE_SIZES = parseList(args['value-sizes']!, '--value-sizes');
const VALUE_BUDGET = parseCount(args['value-mb']!, '--value-mb') * 2 ** 20;
const VALUE_WORKERS = parseCount(args['value-workers']!, '--value-workers');
const BULK_SIZES = parseList(args['bulk-sizes']!, '--bulk-sizes');
const TAG_ENTRIES = parseCount(args['tag-entries']!, '--tag-entries');
const PATTERN_KEYS = parseCount(args['pattern-keys']!, '--pattern-keys');
const EXPIRED_ROWS = parseCount(args['expired-rows']!, '--expired-rows');
const FG_WORKERS = parseCount(args['fg-workers']!, '--fg-workers');
const FG_PAUSE_MS = Number(args['fg-pause-ms']);
const FG_KEYS = parseCount(args['fg-keys']!, '--fg-keys');
const PROCS = parseList(args.procs!, '--procs');
const PROC_SECONDS = Number(args['proc-seconds']);
const PROC_KEYS = parseCount(args['proc-keys']!, '--proc-keys');
const PROC_WORKERS = parseCount(args['proc-workers']!, '--proc-workers');
const CONN_MARGIN = Number(args['conn-margin']);
const IDLE_WAIT_S = Number(args['idle-wait']);
const MEMORY_OPS = parseCount(args['memory-ops']!, '--memory-ops');
const MEMORY_KEYS = parseCount(args['memory-keys']!, '--memory-keys');
const OUT = path.resolve(args.out ?? path.join(ROOT, 'docs/scale.png'));

/** Every table this bench makes; dropped before and after (with the lock table a store may add). */
const TABLES = ['scale_ks', 'scale_values', 'scale_plain', 'scale_bulk', 'scale_proc', 'scale_mem'];
/** Far enough for any run; ext writes use it so that their rows, as Keyv's, never expire during the bench. */
const EXT_EXPIRY = { absoluteExpirationRelative: '30d' } as const;
/** 1,012 characters: with Keyv's envelope `{"value":"..."}` a row's value is 1,024 bytes. */
const KEYV_VALUE_CHARS = 1012;
const GOAL_RATIO = 0.8;
const FOREGROUND_LIMIT_MS = 50;

// ---------------------------------------------------------------------------------------------------------------
// Stop and clean up

let interrupted = false;
const stopping = () => interrupted;
const openStores = new Set<PgStore>();
const children = new Set<ChildProcess>();

function newStore(options: PgStoreOptions): PgStore {
  const store = new PgStore({ logger: { warn: (m: string) => console.log(`  [store warning] ${m}`), error: () => {} }, ...options });
  openStores.add(store);
  return store;
}
async function closeStore(store: PgStore): Promise<void> {
  openStores.delete(store);
  await store.disconnect().catch(() => {});
}

async function dropTables(admin: pg.ClientBase): Promise<void> {
  const names = TABLES.flatMap((t) => [`public.${t}`, `public.${t}_locks`]).join(', ');
  await admin.query(`DROP TABLE IF EXISTS ${names} CASCADE`);
}

// ---------------------------------------------------------------------------------------------------------------
// Server-side fills

/** The text of filled row i: what `rpad(md5(i), length, md5(i + 1))` makes in SQL (Keyv rows: 1,012 characters in the envelope). */
function filledText(i: number, length = KEYV_VALUE_CHARS): string {
  const md5 = (n: number) => createHash('md5').update(String(n)).digest('hex');
  const fill = md5(i + 1);
  let out = md5(i);
  while (out.length < length) out += fill;
  return out.slice(0, length);
}

interface FillOptions {
  /** Row ids are prefix || i. */
  prefix: string;
  from: number;
  /** Exclusive. */
  to: number;
  /** keyv: Keyv's envelope, never expiring; ext: 1 KiB raw, absolute expiry in 30 days (or an hour ago). */
  format: 'keyv' | 'ext';
  expired?: boolean;
  tags?: string[];
}

/** Inserts rows [from, to) in chunks (Ctrl-C waits for one chunk at most). Resolves to the seconds taken. */
async function fill(admin: pg.ClientBase, table: string, o: FillOptions): Promise<number> {
  const started = performance.now();
  const keyv = `INSERT INTO public.${table} (id, value, expiresattime)
    SELECT $1 || i, convert_to('{"value":"' || rpad(md5(i::text), ${KEYV_VALUE_CHARS}, md5((i + 1)::text)) || '"}', 'UTF8'), 'infinity'
    FROM generate_series($2::int8, $3::int8) AS i`;
  const ext = `INSERT INTO public.${table} (id, value, expiresattime, absoluteexpiration, tags)
    SELECT $1 || i, convert_to(rpad(md5(i::text), 1024, md5((i + 1)::text)), 'UTF8'), $4::timestamptz, $4::timestamptz, $5::text[]
    FROM generate_series($2::int8, $3::int8) AS i`;
  const at = o.expired ? new Date(Date.now() - 3_600_000) : new Date(Date.now() + 30 * 86_400_000);
  for (let from = o.from; from < o.to && !interrupted; from += FILL_CHUNK) {
    const to = Math.min(o.to, from + FILL_CHUNK) - 1;
    if (o.format === 'keyv') await admin.query(keyv, [o.prefix, from, to]);
    else await admin.query(ext, [o.prefix, from, to, at.toISOString(), o.tags ?? null]);
    if (o.to - o.from > 4 * FILL_CHUNK) process.stdout.write(`\r  filled ${fmt(to + 1 - o.from)} of ${fmt(o.to - o.from)} rows`);
  }
  if (o.to - o.from > 4 * FILL_CHUNK) process.stdout.write('\n');
  return (performance.now() - started) / 1000;
}

async function relationSizes(admin: pg.ClientBase, table: string) {
  const { rows } = await admin.query<{ t: string; i: string; all: string }>(
    `SELECT pg_table_size($1::regclass)::text AS t, pg_indexes_size($1::regclass)::text AS i, pg_total_relation_size($1::regclass)::text AS all`,
    [`public.${table}`],
  );
  const r = rows[0]!;
  return { tableBytes: Number(r.t), indexBytes: Number(r.i), totalBytes: Number(r.all) };
}

async function timed(fn: () => Promise<unknown>): Promise<number> {
  const t0 = performance.now();
  await fn();
  return (performance.now() - t0) / 1000;
}

// ---------------------------------------------------------------------------------------------------------------
// 1. Key space

type Api = 'keyv' | 'ext';
interface Cell {
  dist: 'zipf' | 'uniform';
  mix: 'read-heavy 90/10' | 'write-heavy 10/90';
  api: Api;
  local: boolean;
}
const cellName = (c: Cell) => `${c.api === 'keyv' ? 'Keyv' : 'ext'}${c.local ? ' + local' : ''}`;
const cellKey = (c: Cell) => `${c.dist}|${c.mix}|${c.api}|${c.local}`;

interface CellResult extends Cell {
  size: number;
  opsPerSec: number;
  p50Ms: number;
  p99Ms: number;
  clientUs: number;
  serverUs: number | null;
  ownServerUs: number | null;
  rounds: number[];
  failures: number;
  misses: number;
  firstFailure?: string;
  localHitRatio?: number;
  localBytes?: number;
  ratioToSmallest?: number;
}

interface FillResult {
  size: number;
  rowsAdded: number;
  fillSeconds: number;
  rowsPerSec: number;
  vacuumSeconds: number;
  tableBytes: number;
  indexBytes: number;
  totalBytes: number;
}

async function checkKeyvFormat(url: string, admin: pg.ClientBase, table: string): Promise<string> {
  const store = newStore({ uri: url, table, enableExpirationScan: false });
  const keyv = new Keyv({ store, namespace: 'scale' });
  try {
    const expected = filledText(0);
    const viaKeyv = await keyv.get<string>('0');
    if (viaKeyv !== expected) throw new Error(`a filled row read through Keyv gave ${JSON.stringify(viaKeyv)?.slice(0, 60)}..., not the filled value`);
    const viaExt = await store.ext.get('scale:0');
    if (!viaExt?.equals(Buffer.from(JSON.stringify({ value: expected })))) throw new Error('a filled row read through store.ext is not the envelope filled');
    await keyv.setMany([{ key: 'format-check', value: expected }]);
    const { rows } = await admin.query<Record<string, boolean>>(
      `SELECT a.value = b.value AS value, a.expiresattime = b.expiresattime AS expiresattime,
         a.slidingexpirationinseconds IS NOT DISTINCT FROM b.slidingexpirationinseconds AS sliding,
         a.absoluteexpiration IS NOT DISTINCT FROM b.absoluteexpiration AS absolute, a.tags IS NOT DISTINCT FROM b.tags AS tags
       FROM public.${table} a, public.${table} b WHERE a.id = 'scale:0' AND b.id = 'scale:format-check'`,
    );
    const differ = Object.entries(rows[0] ?? { row: false }).filter(([, same]) => !same).map(([column]) => column);
    if (differ.length > 0) throw new Error(`a row Keyv's setMany wrote differs from the filled row in: ${differ.join(', ')}`);
    await keyv.delete('format-check');
    return 'a filled row reads back through Keyv and store.ext; a row written by Keyv (setMany) with its value equals it in every column';
  } finally {
    await closeStore(store);
  }
}

async function keyspaceSection(url: string, admin: pg.ClientBase) {
  const table = 'scale_ks';
  const fills: FillResult[] = [];
  const results: CellResult[] = [];
  let formatCheck = '';
  const keyvValue = randomText(mixSeed(SEED, 1), KEYV_VALUE_CHARS);
  const extValue = Buffer.from(JSON.stringify({ value: keyvValue }));
  const cells: Cell[] = [];
  for (const dist of ['zipf', 'uniform'] as const)
    for (const mix of ['read-heavy 90/10', 'write-heavy 10/90'] as const)
      for (const api of ['keyv', 'ext'] as const) for (const local of [false, true]) cells.push({ dist, mix, api, local });

  // The store creates the table (its DDL and storage settings), the fill goes into it.
  const creator = newStore({ uri: url, table, enableExpirationScan: false });
  await creator.ready();
  await closeStore(creator);
  let filled = 0;
  for (const size of SIZES) {
    if (interrupted) break;
    console.log(`\n[keyspace] ${countLabel(size)} entries: filling ${fmt(size - filled)} rows on the server ...`);
    const fillSeconds = await fill(admin, table, { prefix: 'scale:', from: filled, to: size, format: 'keyv' });
    if (interrupted) break;
    const vacuumSeconds = await timed(() => admin.query(`VACUUM (ANALYZE) public.${table}`));
    const sizes = await relationSizes(admin, table);
    fills.push({ size, rowsAdded: size - filled, fillSeconds, rowsPerSec: (size - filled) / fillSeconds, vacuumSeconds, ...sizes });
    filled = size;
    console.log(
      `  filled in ${fillSeconds.toFixed(1)} s (${fmt((fills.at(-1)!.rowsAdded) / fillSeconds)} rows/s), VACUUM ANALYZE ${vacuumSeconds.toFixed(1)} s; ` +
        `table ${mb(sizes.tableBytes)}, indexes ${mb(sizes.indexBytes)} (${fmt(sizes.totalBytes / size)} B per entry in all)`,
    );
    if (!formatCheck) {
      formatCheck = await checkKeyvFormat(url, admin, table);
      console.log(`  format check: ${formatCheck}`);
    }

    const draws: Record<Cell['dist'], KeyDraw> = { zipf: zipfDraw(size, ZIPF_S, mixSeed(SEED, size, 7)), uniform: uniformDraw(size) };
    if (size === SIZES[0]) {
      // One unmeasured pass of each target first, so that the first cell measured does not pay for V8's warm-up.
      const plan = makePlan(mixSeed(SEED, size, 99), WARMUP + OPS, 0.5, draws.uniform);
      for (const cell of cells.filter((c) => c.dist === 'uniform' && c.mix.startsWith('read'))) if (!interrupted) await measureCell(url, admin, table, cell, plan, keyvValue, extValue, false);
    }
    const runs = new Map<string, Array<Driven & { clientUs: number; serverUs: number | null; ownServerUs: number | null; misses: number }>>();
    const tier = new Map<string, { hitRatio: number; bytes: number }>();
    for (let round = 0; round < ROUNDS && !interrupted; round++) {
      await admin.query(`VACUUM public.${table}`);
      const plans = new Map<string, Plan>();
      const planOf = (c: Cell) => {
        const key = `${c.dist}|${c.mix}`;
        let p = plans.get(key);
        if (!p) plans.set(key, (p = makePlan(mixSeed(SEED, size, round, c.dist === 'zipf' ? 1 : 2, c.mix.startsWith('read') ? 1 : 2), WARMUP + OPS, c.mix.startsWith('read') ? 0.9 : 0.1, draws[c.dist])));
        return p;
      };
      const shift = (round * 5) % cells.length;
      for (const cell of [...cells.slice(shift), ...cells.slice(0, shift)]) {
        if (interrupted) break;
        const measured = await measureCell(url, admin, table, cell, planOf(cell), keyvValue, extValue, round === 0);
        const key = cellKey(cell);
        runs.set(key, [...(runs.get(key) ?? []), measured.run]);
        if (measured.tier) tier.set(key, measured.tier);
      }
      console.log(`  round ${round + 1} of ${ROUNDS} done`);
    }
    for (const cell of cells) {
      const list = runs.get(cellKey(cell));
      if (!list || list.length === 0) continue;
      const smallest = results.find((r) => r.size === SIZES[0] && cellKey(r) === cellKey(cell));
      const opsPerSec = median(list.map((r) => r.opsPerSec));
      const t = tier.get(cellKey(cell));
      const own = list.map((r) => r.ownServerUs).filter((v): v is number => v !== null);
      const server = list.map((r) => r.serverUs).filter((v): v is number => v !== null);
      const firstFailure = list.find((r) => r.firstFailure)?.firstFailure;
      results.push({
        ...cell,
        size,
        opsPerSec,
        p50Ms: median(list.map((r) => r.p50Ms)),
        p99Ms: median(list.map((r) => r.p99Ms)),
        clientUs: median(list.map((r) => r.clientUs)),
        serverUs: server.length ? median(server) : null,
        ownServerUs: own.length ? median(own) : null,
        rounds: list.map((r) => Math.round(r.opsPerSec)),
        failures: list.reduce((s, r) => s + r.failures, 0),
        misses: list.reduce((s, r) => s + r.misses, 0),
        ...(firstFailure ? { firstFailure } : {}),
        ...(t ? { localHitRatio: t.hitRatio, localBytes: t.bytes } : {}),
        ...(smallest && size !== SIZES[0] ? { ratioToSmallest: opsPerSec / smallest.opsPerSec } : {}),
      });
    }
    reportKeyspace(results.filter((r) => r.size === size));
  }
  const goal = keyspaceGoal(results);
  return { fills, formatCheck, cells: results, goal };
}

async function measureCell(url: string, admin: pg.ClientBase, table: string, cell: Cell, plan: Plan, keyvValue: string, extValue: Buffer, readTier: boolean) {
  const store = newStore({
    uri: url,
    table,
    enableExpirationScan: false,
    // stats() counts the table: at 10^7 rows that can take longer than the default 15 s. The same for every cell.
    statementTimeout: '10m',
    localCache: cell.local ? { maxBytes: LOCAL_MAX_BYTES, maxEntries: LOCAL_MAX_ENTRIES } : false,
  });
  let misses = 0;
  const counting = (v: unknown) => {
    if (v === undefined) misses++;
  };
  try {
    await store.ready();
    let op: (i: number) => Promise<unknown>;
    if (cell.api === 'keyv') {
      const keyv = new Keyv({ store, namespace: 'scale' });
      op = (i) => (plan.reads[i] ? keyv.get(String(plan.keys[i])).then(counting) : keyv.set(String(plan.keys[i]), keyvValue));
    } else {
      op = (i) => (plan.reads[i] ? store.ext.get(`scale:${plan.keys[i]}`).then(counting) : store.ext.set(`scale:${plan.keys[i]}`, extValue, EXT_EXPIRY));
    }
    await drive(WORKERS, WARMUP, op, stopping, 0);
    misses = 0;
    const meter = await CpuMeter.start(admin);
    const run = await drive(WORKERS, OPS, op, stopping, WARMUP);
    const cpu = await meter.stop(admin, run.ops);
    let tier: { hitRatio: number; bytes: number } | undefined;
    if (cell.local && readTier && !interrupted) {
      try {
        const stats = await store.stats();
        tier = { hitRatio: stats.localHits / Math.max(1, stats.hits + stats.misses), bytes: stats.localEntries * 1024 };
      } catch (error) {
        console.log(`  ${cellName(cell)}: stats() failed (${(error as Error).message}): no tier figures for this cell`);
      }
    }
    return { run: { ...run, ...cpu, misses }, tier };
  } finally {
    await closeStore(store);
  }
}

function reportKeyspace(rows: CellResult[]): void {
  if (rows.length === 0) return;
  console.log(`\nKey space ${countLabel(rows[0]!.size)} entries of 1 KiB, ${WORKERS} workers, ${fmt(OPS)} ops per cell, median of ${ROUNDS} round(s)`);
  console.table(
    rows.map((r) => ({
      keys: r.dist,
      mix: r.mix,
      target: cellName(r),
      'ops/s': fmt(r.opsPerSec),
      'p50 ms': fmt(r.p50Ms, 2),
      'p99 ms': fmt(r.p99Ms, 2),
      'client µs/op': fmt(r.clientUs, 1),
      'server µs/op': r.serverUs === null ? '-' : fmt(r.serverUs, 1),
      'own µs/op': r.ownServerUs === null ? '-' : fmt(r.ownServerUs, 1),
      'tier hits': r.localHitRatio === undefined ? '-' : pct(r.localHitRatio),
      'tier / max': r.localBytes === undefined ? '-' : `${mb(r.localBytes)} / ${mb(LOCAL_MAX_BYTES)}`,
      [`x ${countLabel(SIZES[0]!)}`]: r.ratioToSmallest === undefined ? '-' : fmt(r.ratioToSmallest, 2),
      'fail/miss': `${r.failures}/${r.misses}`,
    })),
  );
  const failure = rows.find((r) => r.firstFailure);
  if (failure) console.log(`  first failure (${cellName(failure)}, ${failure.dist}, ${failure.mix}): ${failure.firstFailure}`);
}

function keyspaceGoal(results: CellResult[]) {
  const largest = Math.max(...results.map((r) => r.size));
  const smallest = SIZES[0]!;
  if (!Number.isFinite(largest) || largest === smallest) return null;
  const lines = results
    .filter((r) => r.size === largest && !r.local && r.ratioToSmallest !== undefined)
    .map((r) => ({ cell: `${r.dist} ${r.mix} ${cellName(r)}`, ratio: r.ratioToSmallest!, met: r.ratioToSmallest! >= GOAL_RATIO }));
  console.log(`\nGoal: at ${countLabel(largest)} entries, at least ${GOAL_RATIO * 100}% of the ${countLabel(smallest)} throughput on the PostgreSQL path (no local tier):`);
  for (const l of lines) console.log(`  ${l.met ? 'met   ' : 'MISSED'} ${fmt(l.ratio, 2)}  ${l.cell}`);
  return { largest, smallest, ratio: GOAL_RATIO, cells: lines, allMet: lines.every((l) => l.met) };
}

// ---------------------------------------------------------------------------------------------------------------
// 2. Value size

type ValueTarget = 'store.ext' | 'Keyv' | 'ceiling (pg)';
interface ValueResult {
  size: number;
  target: ValueTarget;
  ops: number;
  writeMBps: number;
  readMBps: number;
  writeP99Ms: number;
  readP99Ms: number;
  clientUsPerOp: number;
  serverUsPerOp: number | null;
  ownServerUsPerOp: number | null;
  writeRatio?: number;
  readRatio?: number;
  rounds: Array<[number, number]>;
  failures: number;
  firstFailure?: string;
}

async function valuesSection(url: string, admin: pg.ClientBase) {
  const store = newStore({ uri: url, table: 'scale_values', enableExpirationScan: false });
  const keyv = new Keyv({ store, namespace: 'v' });
  await store.ready();
  await admin.query(`CREATE UNLOGGED TABLE IF NOT EXISTS public.scale_plain (
    id VARCHAR(449) COLLATE "C" PRIMARY KEY, value BYTEA NOT NULL, expiresattime TIMESTAMPTZ NOT NULL,
    slidingexpirationinseconds BIGINT NULL, absoluteexpiration TIMESTAMPTZ NULL, tags TEXT[] NULL)`);
  const pool = new pg.Pool({ connectionString: url, max: 10 });
  const results: ValueResult[] = [];
  try {
    for (const size of VALUE_SIZES) {
      if (interrupted) break;
      const ops = Math.max(8, Math.min(20_000, Math.ceil(VALUE_BUDGET / size)));
      const keyCount = Math.min(ops, 256);
      const bytes = randomBytes(mixSeed(SEED, size, 11), size);
      const text = randomText(mixSeed(SEED, size, 12), size);
      const order = Uint32Array.from(makePlan(mixSeed(SEED, size, 13), ops, 0, uniformDraw(keyCount)).keys);
      const key = (i: number) => `k${order[i]}:${size}`;
      const targets: Array<{ name: ValueTarget; write: (i: number) => Promise<unknown>; read: (i: number) => Promise<number> }> = [
        { name: 'store.ext', write: (i) => store.ext.set(`x:${key(i)}`, bytes, EXT_EXPIRY), read: async (i) => (await store.ext.get(`x:${key(i)}`))?.length ?? -1 },
        { name: 'Keyv', write: (i) => keyv.set(key(i), text), read: async (i) => ((await keyv.get<string>(key(i))) ?? '').length },
        {
          name: 'ceiling (pg)',
          write: (i) =>
            pool.query(`INSERT INTO public.scale_plain (id, value, expiresattime) VALUES ($1, $2, 'infinity') ON CONFLICT (id) DO UPDATE SET value = EXCLUDED.value`, [key(i), bytes]),
          read: async (i) => ((await pool.query<{ value: Buffer }>(`SELECT value FROM public.scale_plain WHERE id = $1`, [key(i)])).rows[0]?.value.length ?? -1),
        },
      ];
      const runs = new Map<ValueTarget, Array<{ w: Driven; r: Driven; clientUs: number; serverUs: number | null; ownServerUs: number | null }>>();
      for (let round = 0; round < ROUNDS && !interrupted; round++) {
        await admin.query('VACUUM public.scale_values, public.scale_plain');
        const shift = round % targets.length;
        for (const t of [...targets.slice(shift), ...targets.slice(0, shift)]) {
          if (interrupted) break;
          const meter = await CpuMeter.start(admin);
          const w = await drive(VALUE_WORKERS, ops, t.write, stopping);
          let wrongSize = 0;
          const r = await drive(VALUE_WORKERS, ops, async (i) => {
            if ((await t.read(i)) !== size) wrongSize++;
          }, stopping);
          const cpu = await meter.stop(admin, w.ops + r.ops);
          if (wrongSize > 0) r.firstFailure ??= `${wrongSize} reads of the wrong size`;
          runs.set(t.name, [...(runs.get(t.name) ?? []), { w, r, ...cpu }]);
        }
      }
      const rowsHere: ValueResult[] = [];
      for (const t of targets) {
        const list = runs.get(t.name);
        if (!list?.length) continue;
        const mbps = (d: Driven) => (d.ops * size) / d.seconds / 2 ** 20;
        const server = list.map((x) => x.serverUs).filter((v): v is number => v !== null);
        const own = list.map((x) => x.ownServerUs).filter((v): v is number => v !== null);
        const firstFailure = list.map((x) => x.w.firstFailure ?? x.r.firstFailure).find(Boolean);
        rowsHere.push({
          size,
          target: t.name,
          ops,
          writeMBps: median(list.map((x) => mbps(x.w))),
          readMBps: median(list.map((x) => mbps(x.r))),
          writeP99Ms: median(list.map((x) => x.w.p99Ms)),
          readP99Ms: median(list.map((x) => x.r.p99Ms)),
          clientUsPerOp: median(list.map((x) => x.clientUs)),
          serverUsPerOp: server.length ? median(server) : null,
          ownServerUsPerOp: own.length ? median(own) : null,
          rounds: list.map((x) => [Number(mbps(x.w).toFixed(1)), Number(mbps(x.r).toFixed(1))]),
          failures: list.reduce((s, x) => s + x.w.failures + x.r.failures, 0),
          ...(firstFailure ? { firstFailure } : {}),
        });
      }
      const ceiling = rowsHere.find((r) => r.target === 'ceiling (pg)');
      for (const r of rowsHere) {
        if (ceiling && r !== ceiling) {
          r.writeRatio = r.writeMBps / ceiling.writeMBps;
          r.readRatio = r.readMBps / ceiling.readMBps;
        }
      }
      results.push(...rowsHere);
      reportValues(rowsHere, size);
    }
  } finally {
    await pool.end();
    await closeStore(store);
  }
  return { workers: VALUE_WORKERS, budgetBytes: VALUE_BUDGET, results };
}

function reportValues(rows: ValueResult[], size: number): void {
  if (rows.length === 0) return;
  console.log(`\nValue size ${bytesText(size)}: ${fmt(rows[0]!.ops)} writes then reads per target and round, ${VALUE_WORKERS} workers, median of ${ROUNDS} round(s)`);
  console.table(
    rows.map((r) => ({
      target: r.target,
      'write MB/s': fmt(r.writeMBps, 1),
      'read MB/s': fmt(r.readMBps, 1),
      'write x ceiling': r.writeRatio === undefined ? '-' : fmt(r.writeRatio, 2),
      'read x ceiling': r.readRatio === undefined ? '-' : fmt(r.readRatio, 2),
      'write p99 ms': fmt(r.writeP99Ms, 2),
      'read p99 ms': fmt(r.readP99Ms, 2),
      'client µs/op': fmt(r.clientUsPerOp, 1),
      'server µs/op': r.serverUsPerOp === null ? '-' : fmt(r.serverUsPerOp, 1),
      'own µs/op': r.ownServerUsPerOp === null ? '-' : fmt(r.ownServerUsPerOp, 1),
      failures: r.failures,
    })),
  );
  for (const r of rows) if (r.firstFailure) console.log(`  ${r.target}: ${r.firstFailure}`);
}

// ---------------------------------------------------------------------------------------------------------------
// 3. Bulk

interface BulkResult {
  op: string;
  api: Api | 'store';
  keys: number;
  calls: number;
  seconds: number;
  rowsPerSec: number;
  /** Rows the calls reported (deleted) or returned (found); the rows asked for otherwise. */
  rowsDone: number;
  fillSeconds?: number;
  foreground: { calls: number; p50Ms: number; p99Ms: number; maxMs: number; over: number; loopBlockMs: number };
  failures: number;
  firstFailure?: string;
}

async function bulkSection(url: string, admin: pg.ClientBase) {
  const table = 'scale_bulk';
  const store = newStore({ uri: url, table, enableExpirationScan: false });
  const keyv = new Keyv({ store, namespace: 'kb' });
  const fg = new Foreground();
  const fgRandom = seededRandom(mixSeed(SEED, 31));
  type Call = { seconds: number; rows: number; error?: string };
  /** Each bulk call measured: its repetitions, summarized once the foreground has stopped. */
  const measured: Array<{ name: string; op: string; api: BulkResult['api']; keys: number; calls: Call[]; fillSeconds?: number }> = [];
  const timedCall = async (name: string, fn: () => Promise<number>): Promise<Call> => {
    const t0 = performance.now();
    try {
      const rows = await fg.window(name, fn);
      return { seconds: (performance.now() - t0) / 1000, rows };
    } catch (error) {
      return { seconds: (performance.now() - t0) / 1000, rows: 0, error: (error as Error).message };
    }
  };
  try {
    await store.ready();
    const fgFill = await fill(admin, table, { prefix: 'f:', from: 0, to: FG_KEYS, format: 'ext' });
    await admin.query(`VACUUM (ANALYZE) public.${table}`);
    const check = await store.ext.get('f:0');
    if (check?.toString() !== filledText(0, 1024)) throw new Error('a filled store.ext row does not read back through store.ext');
    console.log(`\n[bulk] ${fmt(FG_KEYS)} foreground keys filled in ${fgFill.toFixed(1)} s; foreground: ${FG_WORKERS} callers of ext.get, ${FG_PAUSE_MS} ms pause after each`);
    fg.start(FG_WORKERS, FG_PAUSE_MS, () => store.ext.get(`f:${Math.floor(fgRandom() * FG_KEYS)}`));
    await sleep(500);
    await fg.window('idle', () => sleep(2000));

    const value = randomBytes(mixSeed(SEED, 32), 1024);
    const keyvValue = randomText(mixSeed(SEED, 33), KEYV_VALUE_CHARS);
    const names = seededRandom(mixSeed(SEED, 34));
    for (const n of BULK_SIZES) {
      for (const api of ['ext', 'keyv'] as const) {
        if (interrupted) break;
        const reps = Math.max(3, Math.min(200, Math.ceil(1e5 / n)));
        const set: Call[] = [];
        const get: Call[] = [];
        const del: Call[] = [];
        for (let rep = 0; rep < reps && !interrupted; rep++) {
          // Fresh random keys each repetition: written, read back, deleted.
          const keys = Array.from({ length: n }, (_, j) => `b:${Math.floor(names() * 2 ** 32).toString(36)}:${j}`);
          if (api === 'ext') {
            set.push(await timedCall(`${api} setMany ${n}`, async () => (await store.ext.setMany(keys.map((k) => [k, value] as const), EXT_EXPIRY), n)));
            get.push(await timedCall(`${api} getMany ${n}`, async () => (await store.ext.getMany(keys)).size));
            del.push(await timedCall(`${api} deleteMany ${n}`, () => store.ext.deleteMany(keys)));
          } else {
            set.push(await timedCall(`${api} setMany ${n}`, async () => (await keyv.setMany(keys.map((key) => ({ key, value: keyvValue }))), n)));
            get.push(await timedCall(`${api} getMany ${n}`, async () => (await keyv.getMany<string>(keys)).filter((v) => v !== undefined).length));
            del.push(await timedCall(`${api} deleteMany ${n}`, async () => ((await keyv.deleteMany(keys)) ? n : 0)));
          }
        }
        for (const [op, calls] of [['setMany', set], ['getMany', get], ['deleteMany', del]] as const) measured.push({ name: `${api} ${op} ${n}`, op, api, keys: n, calls });
      }
    }
    const serverFilled = async (prefix: string, rows: number, name: string, op: string, run: () => Promise<number>, extra: Partial<FillOptions> = {}) => {
      if (interrupted) return;
      const fillSeconds = await fill(admin, table, { prefix, from: 0, to: rows, format: 'ext', ...extra });
      await admin.query(`VACUUM (ANALYZE) public.${table}`);
      if (interrupted) return;
      measured.push({ name, op, api: name === 'sweep' ? 'store' : 'ext', keys: rows, calls: [await timedCall(name, run)], fillSeconds });
    };
    const tag = `bulk-tag-${SEED}`;
    await serverFilled('tg:', TAG_ENTRIES, 'deleteTags', 'deleteTags (1 tag)', () => store.ext.deleteTags([tag]), { tags: [tag, 'other'] });
    await serverFilled('pt:', PATTERN_KEYS, 'deletePattern', `deletePattern 'pt:*'`, () => store.ext.deletePattern('pt:*'));
    await serverFilled('ex:', EXPIRED_ROWS, 'sweep', 'expiry sweep (clearExpired)', () => store.clearExpired(), { expired: true });
  } finally {
    await fg.stop();
    await closeStore(store);
  }
  const idle = fg.summary('idle', FOREGROUND_LIMIT_MS);
  const results: BulkResult[] = measured.map(({ name, op, api, keys, calls, fillSeconds }) => {
    const seconds = calls.reduce((sum, c) => sum + c.seconds, 0);
    const firstFailure = calls.find((c) => c.error)?.error;
    return {
      op,
      api,
      keys,
      calls: calls.length,
      seconds,
      rowsPerSec: (keys * calls.length) / seconds,
      rowsDone: calls.reduce((sum, c) => sum + c.rows, 0),
      ...(fillSeconds === undefined ? {} : { fillSeconds }),
      foreground: fg.summary(name, FOREGROUND_LIMIT_MS),
      failures: calls.filter((c) => c.error).length,
      ...(firstFailure ? { firstFailure } : {}),
    };
  });
  reportBulk(results, idle);
  const worst = results.reduce((m, r) => Math.max(m, r.foreground.maxMs || 0), 0);
  const held = results.filter((r) => r.foreground.over > 0);
  console.log(
    `\nGoal: no foreground call held over ${FOREGROUND_LIMIT_MS} ms during a bulk call: ${held.length === 0 ? 'met' : `MISSED during ${held.map((r) => `${r.api} ${r.op} ${r.keys}`).join(', ')}`} ` +
      `(longest ${fmt(worst, 1)} ms; with nothing else running: p99 ${fmt(idle.p99Ms, 2)} ms, max ${fmt(idle.maxMs, 1)} ms)`,
  );
  return { foregroundWorkers: FG_WORKERS, foregroundPauseMs: FG_PAUSE_MS, idle, results, goal: { limitMs: FOREGROUND_LIMIT_MS, met: held.length === 0, worstMs: worst } };
}

function reportBulk(rows: BulkResult[], idle: BulkResult['foreground']): void {
  if (rows.length === 0) return;
  console.log(`\nBulk calls, and the foreground meanwhile (${FG_WORKERS} callers of single-key ext.get on other keys: the calls that overlapped the bulk call's repetitions; loop block: the longest time this process's event loop did not turn meanwhile, over ${Foreground.BLOCK_MS} ms, from a 5 ms timer)`);
  console.table([
    { call: '(nothing else running, 2 s)', api: '-', keys: '-', calls: '-', 's each': '-', 'rows/s': '-', 'rows done': '-', 'fill s': '-', 'fg calls': idle.calls, 'fg p50 ms': fmt(idle.p50Ms, 2), 'fg p99 ms': fmt(idle.p99Ms, 2), 'fg max ms': fmt(idle.maxMs, 1), [`fg >${FOREGROUND_LIMIT_MS}ms`]: idle.over, 'loop block ms': fmt(idle.loopBlockMs, 1), failures: '-' },
    ...rows.map((r) => ({
      call: r.op,
      api: r.api,
      keys: fmt(r.keys),
      calls: r.calls,
      's each': fmt(r.seconds / Math.max(1, r.calls), 4),
      'rows/s': fmt(r.rowsPerSec),
      'rows done': fmt(r.rowsDone),
      'fill s': r.fillSeconds === undefined ? '-' : fmt(r.fillSeconds, 1),
      'fg calls': r.foreground.calls,
      'fg p50 ms': fmt(r.foreground.p50Ms, 2),
      'fg p99 ms': fmt(r.foreground.p99Ms, 2),
      'fg max ms': fmt(r.foreground.maxMs, 1),
      [`fg >${FOREGROUND_LIMIT_MS}ms`]: r.foreground.over,
      'loop block ms': fmt(r.foreground.loopBlockMs, 1),
      failures: r.failures,
    })),
  ]);
  for (const r of rows) if (r.firstFailure) console.log(`  ${r.api} ${r.op} ${r.keys}: ${r.firstFailure}`);
}

// ---------------------------------------------------------------------------------------------------------------
// 4. Processes

type ChildMessage =
  | { type: 'ready' }
  | { type: 'done'; step: string }
  | { type: 'result'; ops: number; seconds: number; p50Ms: number; p99Ms: number; failures: number; clientCpuUs: number; firstFailure?: string }
  | { type: 'memory'; result: MemoryResult }
  | { type: 'error'; message: string };

/** Forks this script in a worker mode; its messages arrive through `onMessage`. */
function forkWorker(mode: string, extra: string[], onMessage: (m: ChildMessage) => void): ChildProcess {
  const child = fork(fileURLToPath(import.meta.url), ['--worker', mode, '--seed', String(SEED), ...extra], {
    execArgv: process.execArgv,
    stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
  });
  children.add(child);
  child.on('message', (m) => onMessage(m as ChildMessage));
  child.on('exit', (code, signal) => {
    children.delete(child);
    if (code !== 0 && !interrupted) onMessage({ type: 'error', message: `worker ${mode} exited with ${signal ?? `code ${code}`}` });
  });
  return child;
}

function waitFor<T>(predicate: () => T | undefined, timeoutMs: number, what: string): Promise<T> {
  return new Promise((resolve, reject) => {
    const started = Date.now();
    const check = () => {
      const v = predicate();
      if (v !== undefined) return resolve(v);
      if (interrupted) return reject(new Error('interrupted'));
      if (Date.now() - started > timeoutMs) return reject(new Error(`timed out waiting for ${what}`));
      setTimeout(check, 50);
    };
    check();
  });
}

async function stopChildren(): Promise<void> {
  for (const child of children) child.send?.({ type: 'stop' }, () => {});
  const deadline = Date.now() + 10_000;
  while (children.size > 0 && Date.now() < deadline) await sleep(100);
  for (const child of children) if (child.pid !== undefined) child.kill('SIGKILL');
}

interface ProcResult {
  processes: number;
  poolMax: number;
  fits: boolean;
  ran: boolean;
  note: string;
  opsPerSec?: number;
  p99Ms?: number;
  failures?: number;
  firstFailure?: string;
  serverUsPerOp?: number | null;
  clientUsPerOp?: number;
  maxConnections?: number;
  byState?: Record<string, number>;
}

async function connectionBudget(admin: pg.ClientBase) {
  const { rows } = await admin.query<{ max: number; reserved: number; used: number }>(
    `SELECT current_setting('max_connections')::int AS max, current_setting('superuser_reserved_connections')::int AS reserved,
       (SELECT count(*)::int FROM pg_stat_activity WHERE backend_type = 'client backend') AS used`,
  );
  const r = rows[0]!;
  return { ...r, available: r.max - r.reserved - r.used - CONN_MARGIN };
}

async function processesSection(url: string, admin: pg.ClientBase) {
  const table = 'scale_proc';
  const creator = newStore({ uri: url, table });
  await creator.ready();
  await closeStore(creator);
  const fillSeconds = await fill(admin, table, { prefix: 'scale:', from: 0, to: PROC_KEYS, format: 'keyv' });
  await admin.query(`VACUUM (ANALYZE) public.${table}`);
  const budget = await connectionBudget(admin);
  console.log(
    `\n[processes] ${fmt(PROC_KEYS)} entries filled in ${fillSeconds.toFixed(1)} s; max_connections ${budget.max}, ${budget.reserved} reserved, ${budget.used} in use now, ` +
      `${CONN_MARGIN} left for others: ${budget.available} for this bench`,
  );
  const results: ProcResult[] = [];
  for (const p of PROCS) {
    const pools = new Set<number>();
    for (const choice of args['proc-pool-max']!.split(',').map((s) => s.trim())) pools.add(choice === 'auto' ? Math.max(1, Math.min(10, Math.floor(budget.available / p))) : parseCount(choice, '--proc-pool-max'));
    for (const poolMax of [...pools].sort((a, b) => b - a)) {
      if (interrupted) break;
      const fits = p * poolMax <= budget.available;
      if (!fits && !args['allow-overflow']) {
        const note = `${p} x poolMax ${poolMax} = ${p * poolMax} > ${budget.available} available: not run (--allow-overflow runs it)`;
        console.log(`  ${p} processes, poolMax ${poolMax}: ${note}`);
        results.push({ processes: p, poolMax, fits, ran: false, note });
        continue;
      }
      console.log(`  ${p} processes, poolMax ${poolMax}: starting ...`);
      results.push(await runProcesses(url, admin, table, p, poolMax, fits));
    }
  }
  reportProcesses(results);
  const idle = interrupted ? [] : await idleStoreCost(url, admin, table);
  return { keys: PROC_KEYS, seconds: PROC_SECONDS, workersPerProcess: PROC_WORKERS, budget, results, idle };
}

async function runProcesses(url: string, admin: pg.ClientBase, table: string, p: number, poolMax: number, fits: boolean): Promise<ProcResult> {
  const ready = new Set<ChildProcess>();
  const results = new Map<ChildProcess, Extract<ChildMessage, { type: 'result' }>>();
  const errors: string[] = [];
  const started: ChildProcess[] = [];
  try {
    for (let i = 0; i < p; i++) {
      const child: ChildProcess = forkWorker('proc', ['--url', url, '--table', table, '--pool-max', String(poolMax), '--proc-seconds', String(PROC_SECONDS), '--proc-keys', String(PROC_KEYS), '--proc-workers', String(PROC_WORKERS), '--tier', String(i)], (m) => {
        if (m.type === 'ready') ready.add(child);
        else if (m.type === 'result') results.set(child, m);
        else if (m.type === 'error') errors.push(m.message);
      });
      started.push(child);
    }
    await waitFor(() => (ready.size + errors.length >= p ? true : undefined), 180_000, `${p} processes to start`);
    if (errors.length > 0) throw new Error(errors[0]);
    const pids = started.map((c) => c.pid!).filter(Boolean);
    const server0 = serverCpuSeconds();
    for (const child of started) child.send({ type: 'go' });
    const samples: Array<Record<string, number>> = [];
    let maxTotal = 0;
    while (results.size + errors.length < p && !interrupted) {
      const backends = await backendsOf(admin, pids);
      const byState: Record<string, number> = {};
      for (const b of backends) byState[`${b.application_name || '(pool)'} / ${b.state ?? '-'}`] = (byState[`${b.application_name || '(pool)'} / ${b.state ?? '-'}`] ?? 0) + 1;
      samples.push(byState);
      maxTotal = Math.max(maxTotal, backends.length);
      await sleep(500);
    }
    await waitFor(() => (results.size + errors.length >= p ? true : undefined), 60_000, 'the results');
    const server1 = serverCpuSeconds();
    const list = [...results.values()];
    const ops = list.reduce((s, r) => s + r.ops, 0);
    const maxByState: Record<string, number> = {};
    for (const s of samples) for (const [k, v] of Object.entries(s)) maxByState[k] = Math.max(maxByState[k] ?? 0, v);
    const firstFailure = list.find((r) => r.firstFailure)?.firstFailure ?? errors[0];
    return {
      processes: p,
      poolMax,
      fits,
      ran: true,
      note: fits ? 'fits' : 'over the budget (--allow-overflow)',
      opsPerSec: list.reduce((s, r) => s + r.ops / r.seconds, 0),
      p99Ms: Math.max(...list.map((r) => r.p99Ms)),
      failures: list.reduce((s, r) => s + r.failures, 0) + errors.length,
      ...(firstFailure ? { firstFailure } : {}),
      serverUsPerOp: server0 === undefined || server1 === undefined ? null : ((server1 - server0) * 1e6) / Math.max(1, ops),
      clientUsPerOp: list.reduce((s, r) => s + r.clientCpuUs, 0) / Math.max(1, ops),
      maxConnections: maxTotal,
      byState: maxByState,
    };
  } catch (error) {
    return { processes: p, poolMax, fits, ran: false, note: `failed: ${(error as Error).message}` };
  } finally {
    await stopChildren();
  }
}

function reportProcesses(rows: ProcResult[]): void {
  console.log(`\nProcesses: read-heavy 90/10 uniform over ${fmt(PROC_KEYS)} entries, ${PROC_WORKERS} callers per process, ${PROC_SECONDS} s (connections: the most seen in one sample)`);
  console.table(
    rows.map((r) => ({
      processes: r.processes,
      poolMax: r.poolMax,
      'pools fit': r.fits ? 'yes' : 'no',
      'ops/s (all)': r.opsPerSec === undefined ? '-' : fmt(r.opsPerSec),
      'p99 ms (worst process)': r.p99Ms === undefined ? '-' : fmt(r.p99Ms, 2),
      'client µs/op': r.clientUsPerOp === undefined ? '-' : fmt(r.clientUsPerOp, 1),
      'server µs/op': r.serverUsPerOp == null ? '-' : fmt(r.serverUsPerOp, 1),
      connections: r.maxConnections ?? '-',
      'by application_name / state (max)': r.byState ? Object.entries(r.byState).map(([k, v]) => `${k}: ${v}`).join(', ') : '-',
      failures: r.failures ?? '-',
      note: r.ran ? (r.firstFailure ? `first failure: ${r.firstFailure.slice(0, 80)}` : r.note) : r.note,
    })),
  );
}

/** What one store holds on the server: stepped by messages to a child process, counted by its client ports. */
async function idleStoreCost(url: string, admin: pg.ClientBase, table: string) {
  const done = new Set<string>();
  const errors: string[] = [];
  const child = forkWorker('idle', ['--url', url, '--table', table], (m) => {
    if (m.type === 'done') done.add(m.step);
    else if (m.type === 'error') errors.push(m.message);
  });
  const steps: Array<{ step: string; connections: number; byState: Record<string, number> }> = [];
  const count = async (step: string) => {
    await sleep(300);
    const backends = await backendsOf(admin, [child.pid!]);
    const byState: Record<string, number> = {};
    for (const b of backends) byState[`${b.application_name || '(pool)'} / ${b.state ?? '-'}`] = (byState[`${b.application_name || '(pool)'} / ${b.state ?? '-'}`] ?? 0) + 1;
    steps.push({ step, connections: backends.length, byState });
  };
  const ask = async (step: string, label: string, timeoutMs = 60_000) => {
    child.send({ type: step });
    await waitFor(() => (done.has(step) ? true : errors.length ? true : undefined), timeoutMs, step);
    if (errors.length) throw new Error(errors[0]);
    await count(label);
  };
  try {
    await waitFor(() => (done.has('started') ? true : errors.length ? true : undefined), 120_000, 'the idle-cost process');
    await ask('open', 'defaults: after ready()');
    await ask('get', 'defaults: after one get (its first call starts the expiry scan)');
    await ask('burst', 'defaults: after 20 concurrent gets');
    await ask('wait', `defaults: after ${IDLE_WAIT_S} s idle`, (IDLE_WAIT_S + 60) * 1000);
    await ask('close', 'defaults: after disconnect()');
    await ask('open-local', 'localCache: true: after ready()');
    await ask('get', 'localCache: true: after one get');
    await ask('burst', 'localCache: true: after 20 concurrent gets');
    await ask('close', 'localCache: true: after disconnect()');
  } catch (error) {
    console.log(`  idle cost: ${(error as Error).message}`);
  } finally {
    await stopChildren();
  }
  console.log(`\nOne store's connections (a process of its own; poolMax 10 default; the expiry scan borrows a pool connection for a pass)`);
  console.table(steps.map((s) => ({ after: s.step, connections: s.connections, 'by application_name / state': Object.entries(s.byState).map(([k, v]) => `${k}: ${v}`).join(', ') || '-' })));
  return steps;
}

/** Worker: one process of section 4. */
async function procWorker(): Promise<void> {
  const store = new PgStore({ uri: args.url!, table: args.table!, poolMax: Number(args['pool-max']) });
  const keyv = new Keyv({ store, namespace: 'scale' });
  let stop = false;
  let go = false;
  process.on('message', (m: { type: string }) => {
    if (m.type === 'go') go = true;
    if (m.type === 'stop') stop = true;
  });
  process.on('SIGINT', () => (stop = true));
  process.on('disconnect', () => (stop = true)); // the parent is gone
  try {
    await store.ready();
    process.send!({ type: 'ready' } satisfies ChildMessage);
    while (!go && !stop) await sleep(10);
    const random = seededRandom(mixSeed(SEED, 41, Number(args.tier)));
    const draw = uniformDraw(PROC_KEYS);
    const value = randomText(mixSeed(SEED, 42), KEYV_VALUE_CHARS);
    const latencies: number[] = [];
    let failures = 0;
    let firstFailure: string | undefined;
    const cpu = process.cpuUsage();
    const started = performance.now();
    const end = started + PROC_SECONDS * 1000;
    await Promise.all(
      Array.from({ length: PROC_WORKERS }, async () => {
        while (!stop && performance.now() < end) {
          const read = random() < 0.9;
          const key = String(draw.at(random()));
          const t0 = performance.now();
          try {
            await (read ? keyv.get(key) : keyv.set(key, value));
          } catch (error) {
            failures++;
            firstFailure ??= (error as Error).message;
          }
          latencies.push(performance.now() - t0);
        }
      }),
    );
    const seconds = (performance.now() - started) / 1000;
    const used = process.cpuUsage(cpu);
    const sorted = Float64Array.from(latencies).sort();
    process.send!({
      type: 'result',
      ops: latencies.length,
      seconds,
      p50Ms: percentile(sorted, 50),
      p99Ms: percentile(sorted, 99),
      failures,
      clientCpuUs: used.user + used.system,
      ...(firstFailure ? { firstFailure } : {}),
    } satisfies ChildMessage);
    // Connected until the parent has read the server's CPU: a backend that ends takes its CPU time with it.
    while (!stop) await sleep(20);
  } catch (error) {
    process.send!({ type: 'error', message: (error as Error).message } satisfies ChildMessage);
  } finally {
    await store.disconnect().catch(() => {});
  }
}

/** Worker: the idle-store steps of section 4. */
async function idleWorker(): Promise<void> {
  let store: PgStore | undefined;
  let keyv: Keyv | undefined;
  const steps: Record<string, () => Promise<unknown>> = {
    open: async () => {
      store = new PgStore({ uri: args.url!, table: args.table! });
      keyv = new Keyv({ store, namespace: 'scale' });
      await store.ready();
    },
    'open-local': async () => {
      store = new PgStore({ uri: args.url!, table: args.table!, localCache: true });
      keyv = new Keyv({ store, namespace: 'scale' });
      await store.ready();
    },
    get: () => keyv!.get('1'),
    burst: () => Promise.all(Array.from({ length: 20 }, (_, i) => keyv!.get(String(i * 7 + 3)))),
    wait: () => sleep(IDLE_WAIT_S * 1000),
    close: async () => {
      await store?.disconnect();
      store = undefined;
    },
  };
  const finished = new Promise<void>((resolve) => {
    process.on('message', (m: { type: string }) => {
      if (m.type === 'stop') return resolve();
      const step = steps[m.type];
      if (!step) return;
      step().then(
        () => process.send!({ type: 'done', step: m.type } satisfies ChildMessage),
        (error: Error) => process.send!({ type: 'error', message: `${m.type}: ${error.message}` } satisfies ChildMessage),
      );
    });
    process.on('SIGINT', () => resolve());
    process.on('disconnect', () => resolve());
  });
  process.send!({ type: 'done', step: 'started' } satisfies ChildMessage);
  await finished;
  await store?.disconnect().catch(() => {});
}

// ---------------------------------------------------------------------------------------------------------------
// 5. Memory

interface MemorySample {
  t: number;
  ops: number;
  rssMb: number;
  heapUsedMb: number;
  externalMb: number;
  tierMb?: number;
}
interface MemoryResult {
  tier: boolean;
  ops: number;
  seconds: number;
  opsPerSec: number;
  maxRssMb: number;
  finalRssMb: number;
  heapAfterGcMb: number;
  maxHeapUsedMb: number;
  maxTierMb: number | null;
  tierMaxBytesMb: number | null;
  withinMaxBytes: boolean | null;
  localHitRatio: number | null;
  failures: number;
  samples: MemorySample[];
}

async function memorySection(url: string, admin: pg.ClientBase) {
  const table = 'scale_mem';
  const creator = newStore({ uri: url, table, enableExpirationScan: false });
  await creator.ready();
  await closeStore(creator);
  const fillSeconds = await fill(admin, table, { prefix: 'scale:', from: 0, to: MEMORY_KEYS, format: 'keyv' });
  await admin.query(`VACUUM (ANALYZE) public.${table}`);
  console.log(`\n[memory] ${fmt(MEMORY_KEYS)} entries filled in ${fillSeconds.toFixed(1)} s; ${fmt(MEMORY_OPS)} operations per run, each run in a process of its own`);
  const results: MemoryResult[] = [];
  for (const tier of [false, true]) {
    if (interrupted) break;
    let result: MemoryResult | undefined;
    let error: string | undefined;
    forkWorker('memory', ['--url', url, '--table', table, '--workers', String(WORKERS), '--tier', tier ? 'on' : 'off', '--memory-ops', String(MEMORY_OPS), '--memory-keys', String(MEMORY_KEYS), '--local-max-bytes', String(LOCAL_MAX_BYTES), '--local-max-entries', String(LOCAL_MAX_ENTRIES)], (m) => {
      if (m.type === 'memory') result = m.result;
      else if (m.type === 'error') error = m.message;
    });
    try {
      await waitFor(() => (result || error ? true : undefined), 24 * 3_600_000, 'the memory run');
    } catch {
      // interrupted
    }
    await stopChildren();
    if (error) console.log(`  memory run (tier ${tier ? 'on' : 'off'}) failed: ${error}`);
    if (result) results.push(result);
  }
  if (results.length > 0) {
    console.log(`\nMemory: ${fmt(MEMORY_OPS)} operations (80% get, 15% set, 5% delete, uniform over ${fmt(MEMORY_KEYS)} keys of 1 KiB, ${WORKERS} callers, Keyv)`);
    console.table(
      results.map((r) => ({
        'local tier': r.tier ? `on (maxBytes ${mb(LOCAL_MAX_BYTES)})` : 'off',
        ops: fmt(r.ops),
        'ops/s': fmt(r.opsPerSec),
        'max RSS MB': fmt(r.maxRssMb, 1),
        'final RSS MB': fmt(r.finalRssMb, 1),
        'max heapUsed MB': fmt(r.maxHeapUsedMb, 1),
        'heap after GC MB': fmt(r.heapAfterGcMb, 1),
        'tier max MB': r.maxTierMb === null ? '-' : fmt(r.maxTierMb, 1),
        'within maxBytes': r.withinMaxBytes === null ? '-' : r.withinMaxBytes ? 'yes' : 'NO',
        'tier hits': r.localHitRatio === null ? '-' : pct(r.localHitRatio),
        failures: r.failures,
      })),
    );
    const [off, on] = [results.find((r) => !r.tier), results.find((r) => r.tier)];
    if (off && on) console.log(`  the tier's cost in RSS: ${fmt(on.maxRssMb - off.maxRssMb, 1)} MB at the most (max RSS on - off) for a maxBytes of ${mb(LOCAL_MAX_BYTES)}`);
  }
  return { keys: MEMORY_KEYS, ops: MEMORY_OPS, results: results.map(({ samples, ...r }) => ({ ...r, samples: samples.filter((_, i) => i % Math.max(1, Math.ceil(samples.length / 600)) === 0) })) };
}

/** Worker: one memory run of section 5. */
async function memoryWorker(): Promise<void> {
  const tier = args.tier === 'on';
  const store = new PgStore({ uri: args.url!, table: args.table!, enableExpirationScan: false, localCache: tier ? { maxBytes: LOCAL_MAX_BYTES, maxEntries: LOCAL_MAX_ENTRIES } : false });
  const keyv = new Keyv({ store, namespace: 'scale' });
  let stop = false;
  process.on('message', (m: { type: string }) => {
    if (m.type === 'stop') stop = true;
  });
  process.on('SIGINT', () => (stop = true));
  process.on('disconnect', () => (stop = true));
  try {
    await store.ready();
    const random = seededRandom(mixSeed(SEED, 51, tier ? 1 : 0));
    const draw = uniformDraw(MEMORY_KEYS);
    const value = randomText(mixSeed(SEED, 52), KEYV_VALUE_CHARS);
    let ops = 0;
    let failures = 0;
    const samples: MemorySample[] = [];
    let maxTier = 0;
    const started = performance.now();
    const sample = (tierMb?: number) => {
      const m = process.memoryUsage();
      samples.push({ t: (performance.now() - started) / 1000, ops, rssMb: m.rss / 2 ** 20, heapUsedMb: m.heapUsed / 2 ** 20, externalMb: m.external / 2 ** 20, ...(tierMb === undefined ? {} : { tierMb }) });
    };
    let ticks = 0;
    let statsBusy = false;
    const timer = setInterval(() => {
      ticks++;
      if (tier && ticks % 5 === 0 && !statsBusy) {
        statsBusy = true;
        store.stats().then(
          (s) => {
            const tierMb = (s.localEntries * 1024) / 2 ** 20;
            maxTier = Math.max(maxTier, tierMb);
            sample(tierMb);
            statsBusy = false;
          },
          () => (statsBusy = false),
        );
      } else sample();
    }, 1000);
    sample();
    await Promise.all(
      Array.from({ length: WORKERS }, async () => {
        while (!stop && ops < MEMORY_OPS) {
          ops++;
          const u = random();
          const key = String(draw.at(random()));
          try {
            if (u < 0.8) await keyv.get(key);
            else if (u < 0.95) await keyv.set(key, value);
            else await keyv.delete(key);
          } catch {
            failures++;
          }
        }
      }),
    );
    clearInterval(timer);
    const seconds = (performance.now() - started) / 1000;
    const stats = await store.stats();
    if (tier) maxTier = Math.max(maxTier, (stats.localEntries * 1024) / 2 ** 20);
    sample(tier ? (stats.localEntries * 1024) / 2 ** 20 : undefined);
    global.gc?.();
    const after = process.memoryUsage();
    const result: MemoryResult = {
      tier,
      ops,
      seconds,
      opsPerSec: ops / seconds,
      maxRssMb: Math.max(...samples.map((s) => s.rssMb)),
      finalRssMb: samples.at(-1)!.rssMb,
      heapAfterGcMb: global.gc ? after.heapUsed / 2 ** 20 : Number.NaN,
      maxHeapUsedMb: Math.max(...samples.map((s) => s.heapUsedMb)),
      maxTierMb: tier ? maxTier : null,
      tierMaxBytesMb: tier ? LOCAL_MAX_BYTES / 2 ** 20 : null,
      withinMaxBytes: tier ? maxTier * 2 ** 20 <= LOCAL_MAX_BYTES : null,
      localHitRatio: tier ? stats.localHits / Math.max(1, stats.hits + stats.misses) : null,
      failures,
      samples,
    };
    process.send!({ type: 'memory', result } satisfies ChildMessage);
  } catch (error) {
    process.send!({ type: 'error', message: (error as Error).message } satisfies ChildMessage);
  } finally {
    await store.disconnect().catch(() => {});
  }
}

// ---------------------------------------------------------------------------------------------------------------
// The plot

const TARGET_COLORS: Record<string, string> = { Keyv: '#1f77b4', 'Keyv + local': '#17becf', ext: '#d62728', 'ext + local': '#ff7f0e', 'store.ext': '#d62728', 'ceiling (pg)': '#444444' };

function plotPanels(keyspace: Awaited<ReturnType<typeof keyspaceSection>> | undefined, values: Awaited<ReturnType<typeof valuesSection>> | undefined): ScalePanel[] {
  const cells = keyspace?.cells ?? [];
  const seriesOf = (mix: Cell['mix'], y: (r: CellResult) => number): ScaleSeries[] => {
    const out: ScaleSeries[] = [];
    for (const api of ['keyv', 'ext'] as const)
      for (const local of [false, true])
        for (const dist of ['zipf', 'uniform'] as const) {
          const name = cellName({ api, local, dist, mix });
          out.push({ name: `${name}, ${dist}`, color: TARGET_COLORS[name]!, dashed: dist === 'uniform', points: cells.filter((r) => r.mix === mix && r.api === api && r.local === local && r.dist === dist).map((r) => [r.size, y(r)]) });
        }
    return out;
  };
  const valueSeries = (y: (r: ValueResult) => number): ScaleSeries[] =>
    (['store.ext', 'Keyv', 'ceiling (pg)'] as const).map((target) => ({
      name: target === 'ceiling (pg)' ? 'ceiling: plain pg, plain table' : target,
      color: TARGET_COLORS[target]!,
      dashed: target === 'ceiling (pg)',
      points: (values?.results ?? []).filter((r) => r.target === target).map((r) => [r.size, y(r)]),
    }));
  const keyAxis = { xLabel: 'live entries (1 KiB each)', xFormat: countLabel };
  const opsAxis = { yLabel: 'ops/s', yFormat: (v: number) => (v >= 1000 ? `${fmt(v / 1000)}k` : fmt(v)) };
  const msAxis = { yLabel: 'p99 ms', yFormat: (v: number) => `${v}` };
  const decimalBytes = (v: number) => (v >= 1e6 ? `${v / 1e6} MB` : v >= 1e3 ? `${v / 1e3} kB` : `${v} B`);
  const mbAxis = { xLabel: 'value size (bytes, log)', xFormat: decimalBytes, yLabel: 'MB/s (2^20 B)', yFormat: (v: number) => `${v}` };
  return [
    { title: 'Read-heavy 90/10: ops/s vs key count', ...keyAxis, ...opsAxis, series: seriesOf('read-heavy 90/10', (r) => r.opsPerSec), legend: false },
    { title: 'Read-heavy 90/10: p99 vs key count', ...keyAxis, ...msAxis, series: seriesOf('read-heavy 90/10', (r) => r.p99Ms), legend: false },
    { title: 'Write: MB/s vs value size', ...mbAxis, series: valueSeries((r) => r.writeMBps) },
    { title: 'Write-heavy 10/90: ops/s vs key count', ...keyAxis, ...opsAxis, series: seriesOf('write-heavy 10/90', (r) => r.opsPerSec), legend: false },
    { title: 'Write-heavy 10/90: p99 vs key count', ...keyAxis, ...msAxis, series: seriesOf('write-heavy 10/90', (r) => r.p99Ms), legend: false },
    { title: 'Read: MB/s vs value size', ...mbAxis, series: valueSeries((r) => r.readMBps) },
  ];
}

async function plot(heading: string, keyspace: Awaited<ReturnType<typeof keyspaceSection>> | undefined, values: Awaited<ReturnType<typeof valuesSection>> | undefined): Promise<string> {
  const panels = plotPanels(keyspace, values);
  const legend = panels[0]!.series.map(({ name, color, dashed }) => ({ name: `${name.replace(', zipf', ', Zipf')}`, color, ...(dashed ? { dashed } : {}) }));
  const svg = scaleSvg({ title: `cache-postgres: cost against scale (seed ${SEED})`, subtitle: heading, panels, legend });
  mkdirSync(path.dirname(OUT), { recursive: true });
  if (await renderPng(svg, OUT)) return OUT;
  const svgPath = OUT.replace(/\.png$/i, '') + '.svg';
  writeFileSync(svgPath, svg);
  console.log('Chromium (/usr/bin/chromium, through playwright-core) is not there: the plot is an SVG only.');
  return svgPath;
}

// ---------------------------------------------------------------------------------------------------------------

async function main(): Promise<void> {
  if (args.worker === 'proc') return procWorker();
  if (args.worker === 'idle') return idleWorker();
  if (args.worker === 'memory') return memoryWorker();
  if (args.worker !== undefined) throw new Error(`unknown --worker ${args.worker}`);

  const startedAt = performance.now();
  let database: TestDatabase | undefined;
  const onSigint = () => {
    if (interrupted) {
      console.log('stopping now');
      for (const child of children) child.kill('SIGKILL');
      void (database?.stop() ?? Promise.resolve()).finally(() => process.exit(130));
      return;
    }
    interrupted = true;
    console.log('\ninterrupted: ending the current measurement, then cleaning up and writing what was measured (Ctrl-C again to quit at once)');
  };
  process.on('SIGINT', onSigint);
  database = await startTestDatabase({ url: args.url, docker: false, log: (line) => console.log(`[db] ${line}`) });
  const admin = new pg.Client(database.url);
  await admin.connect();
  const timings: Partial<Record<Section, number>> = {};
  const out: Record<string, unknown> = {};
  try {
    const setting = async (name: string) => (await admin.query<{ v: string }>(`SELECT current_setting('${name}') AS v`)).rows[0]!.v;
    const version = await setting('server_version');
    const heading =
      `PostgreSQL ${version} (${database.source}), shared_buffers ${await setting('shared_buffers')}, autovacuum ${await setting('autovacuum')}; ` +
      `Node ${process.version}, ${os.cpus().length} cores, ${fmt(os.totalmem() / 2 ** 30, 1)} GB RAM`;
    console.log(heading);
    console.log(`seed ${SEED} (--seed ${SEED} draws the same keys, operations and values); sections: ${[...ONLY].join(', ')}`);
    await dropTables(admin);
    const run = async <T>(section: Section, fn: () => Promise<T>): Promise<T | undefined> => {
      if (!ONLY.has(section) || interrupted) return undefined;
      const t0 = performance.now();
      try {
        const result = await fn();
        out[section] = result;
        return result;
      } catch (error) {
        if (interrupted) return undefined;
        console.log(`\n[${section}] failed: ${(error as Error).stack}`);
        out[section] = { error: (error as Error).message };
        return undefined;
      } finally {
        timings[section] = (performance.now() - t0) / 1000;
        console.log(`[${section}] ${timings[section]!.toFixed(0)} s`);
        for (const store of [...openStores]) await closeStore(store);
        await stopChildren();
        // Each section's tables go with it: the 10^7-entry table alone is ~15 GB.
        await dropTables(admin).catch((error) => console.log(`could not drop the scale_* tables: ${(error as Error).message}`));
      }
    };
    const keyspace = await run('keyspace', () => keyspaceSection(database!.url, admin));
    const values = await run('values', () => valuesSection(database!.url, admin));
    await run('bulk', () => bulkSection(database!.url, admin));
    await run('processes', () => processesSection(database!.url, admin));
    await run('memory', () => memorySection(database!.url, admin));

    const total = (performance.now() - startedAt) / 1000;
    console.log(`\nTime: ${Object.entries(timings).map(([s, t]) => `${s} ${t.toFixed(0)} s`).join(', ')}; ${total.toFixed(0)} s in all`);
    const stamp = new Date().toISOString();
    const resultsDir = path.join(ROOT, 'bench/results');
    mkdirSync(resultsDir, { recursive: true });
    const file = path.join(resultsDir, `scale-${stamp.replace(/[:.]/g, '-')}.json`);
    writeFileSync(
      file,
      JSON.stringify(
        {
          finishedAt: stamp,
          interrupted,
          seed: SEED,
          heading,
          postgres: version,
          source: database.source,
          node: process.version,
          cores: os.cpus().length,
          settings: { sizes: SIZES, ops: OPS, warmup: WARMUP, rounds: ROUNDS, workers: WORKERS, zipf: ZIPF_S, localMaxBytes: LOCAL_MAX_BYTES, localMaxEntries: LOCAL_MAX_ENTRIES, valueSizes: VALUE_SIZES, valueBudgetBytes: VALUE_BUDGET, valueWorkers: VALUE_WORKERS, bulkSizes: BULK_SIZES, tagEntries: TAG_ENTRIES, patternKeys: PATTERN_KEYS, expiredRows: EXPIRED_ROWS, fgWorkers: FG_WORKERS, fgPauseMs: FG_PAUSE_MS, procs: PROCS, procSeconds: PROC_SECONDS, procKeys: PROC_KEYS, procWorkers: PROC_WORKERS, memoryOps: MEMORY_OPS, memoryKeys: MEMORY_KEYS },
          timingsSeconds: { ...timings, total },
          ...out,
        },
        null,
        1,
      ),
    );
    console.log(`Written to ${file}`);
    if (!args['no-plot'] && (keyspace || values)) console.log(`Plot: ${await plot(heading, keyspace, values)}`);
  } finally {
    process.off('SIGINT', onSigint);
    if (interrupted) process.exitCode = 130;
    await stopChildren();
    for (const store of [...openStores]) await closeStore(store);
    await dropTables(admin).catch((error) => console.log(`could not drop the scale_* tables: ${(error as Error).message}`));
    await admin.end().catch(() => {});
    await database.stop();
  }
}

main().then(
  () => {
    // A worker ends here; the parent too (a pool's idle timer must not hold it).
    if (args.worker !== undefined) process.exit(0);
  },
  (error) => {
    console.error(error);
    process.exit(1);
  },
);
