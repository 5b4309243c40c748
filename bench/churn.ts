/**
 * npm run bench:churn [-- --writes 2000000 --cap 64MB --keys 100000 --zipf 0.9 --concurrency 16
 *                         --runs lru,lru-novac,fifo,nocap --url postgres://... --out docs/churn.png --seed 42]
 *
 * The size cap (`maxSize`) under churn: a cache-aside workload writes far more than the cap holds, and the
 * sweeper keeps the table at its cap. Measured per run, one run after another on a fresh table each:
 * live bytes and the relation's size over time (with autovacuum on and off), the hit ratio under LRU and
 * FIFO beside an exact LRU and FIFO simulated offline on the same trace, the sweeper's throughput, and the
 * foreground latency (p50/p99) with eviction and without a cap. Without --url it runs on a throw-away embedded
 * PostgreSQL (autovacuum on). Smoke test: `--writes 20000 --cap 4MB --runs lru,nocap`.
 *
 * The trace (deterministic from --seed; every run and both simulations walk the same steps):
 * - Keys `churn:<id>`, id < --keys (default 100,000). Each key's value size is a function of the key alone:
 *   log-uniform from 100 B to 64 KiB (mean ~10 KiB, median ~2.5 KiB), so 100,000 keys are ~1 GB of values,
 *   about 16 times a 64 MB cap. The cap then holds ~6,500 entries (6.5% of the keys), which under a
 *   Zipf(0.9) popularity carry about two thirds of the reads: an LRU at the cap has a hit ratio near 60%,
 *   far from both 0 and 100%, where LRU, FIFO and the ideal differ visibly. (A smaller key space fits in
 *   the cap and nothing is evicted after warm-up; a far larger one makes every policy miss alike.)
 * - Each step is, with probability 0.9, a read of a key drawn from Zipf(--zipf, default 0.9) over the key space,
 *   ranks mapped to ids by a seeded permutation (hot keys are not neighbours in the index); a miss writes the key
 *   (cache-aside). With probability 0.1 the step overwrites a key drawn uniformly: churn beyond the misses,
 *   as invalidations and refreshes of cold keys make in a real cache.
 * - Values are slices of a random printable string (incompressible: PostgreSQL's TOAST compression would
 *   otherwise shrink them, and the relation size would say little); an overwrite takes another slice of the
 *   same length.
 * - The run stops at --writes writes (misses' writes plus overwrites). The workers (--concurrency, default 16,
 *   async in this one process) take the steps in trace order from one shared cursor.
 *
 * The simulations: an exact LRU and an exact FIFO (order of last write, as the store's 'fifo') of byte
 * capacity --cap, the size of an entry being its key's and value's bytes, as the cap counts them; each walks
 * the trace until its own --writes writes (its misses differ from the store's). The store evicts down to 95%
 * of the cap once a pass finds it over, and LRU records a read at most once per lruResolution (5 s): both
 * cost it hits against the exact LRU at the full cap.
 *
 * Runs (--runs, in the order given): `lru` (LRU, autovacuum on), `lru-novac` (LRU, autovacuum off on the table
 * and its TOAST table), `fifo` (FIFO, autovacuum on), `nocap` (no cap: the foreground latency without
 * eviction; its relation just grows). Each run has a table of its own, dropped before and after it.
 *
 * Sampled every second, by a timer and a pool of one connection of its own: writes done, live bytes and
 * entries (the cap's usage table; for nocap, counted here from the writes), the relation's size (table, TOAST
 * and indexes) and its table and index parts, dead tuples of the table and of its TOAST table, autovacuum runs,
 * rows evicted so far, and the p50 and p99 of the foreground operations (get, set) that completed in that
 * second. CPU: this process's (process.cpuUsage) and the server's (every postgres process, /proc) per operation.
 *
 * Sweeper throughput, two ways: evicted rows per second from the first eviction to the end of the run (what
 * the load asked of it), and a drain after the run: a store with half the cap runs one pass (`store.evict()`),
 * timed, while nothing else runs (what it can do).
 *
 * Output: a table on stdout, JSON in bench/results/churn-<time>.json, and the plot (--out, default
 * docs/churn.png), rendered from an SVG (bench/plot.ts) by Chromium; without Chromium the SVG is written
 * instead, next to where the PNG would be.
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import pg from 'pg';
import { PgStore } from '../src/index.js';
import { startTestDatabase } from '../src/testing/index.js';
import { serverCpuSeconds } from './cpu.js';
import { churnSvg, renderPng, type PlotInput } from './plot.js';
import { rankOf, seededRandom } from './random.js';

const { values: args } = parseArgs({
  options: {
    writes: { type: 'string', default: '2000000' },
    cap: { type: 'string', default: '64MB' },
    keys: { type: 'string', default: '100000' },
    zipf: { type: 'string', default: '0.9' },
    concurrency: { type: 'string', default: '16' },
    runs: { type: 'string', default: 'lru,lru-novac,fifo,nocap' },
    url: { type: 'string' },
    out: { type: 'string' },
    seed: { type: 'string', default: '42' },
  },
});

const ROOT = fileURLToPath(new URL('..', import.meta.url));
const MIN_VALUE = 100;
const MAX_VALUE = 64 * 1024;
const OVERWRITE_SHARE = 0.1;
const EVICTION_INTERVAL = '1s';

/** `64MB`, `4MiB`, `1GB` (powers of 1024, as postgresql.conf and maxSize), or bytes. */
function parseSize(text: string): number {
  const match = /^\s*(\d+(?:\.\d+)?)\s*([a-z]*)\s*$/i.exec(text);
  const units: Record<string, number> = { '': 1, b: 1, kb: 1024, kib: 1024, mb: 1024 ** 2, mib: 1024 ** 2, gb: 1024 ** 3, gib: 1024 ** 3 };
  const factor = match ? units[match[2]!.toLowerCase()] : undefined;
  if (!match || factor === undefined) throw new Error(`--cap: expected a size such as 64MB, got ${text}`);
  return Math.floor(Number(match[1]) * factor);
}

function positiveInt(name: string, text: string | undefined): number {
  const n = Number(text);
  if (!Number.isSafeInteger(n) || n < 1) throw new Error(`--${name} must be a positive whole number, got ${text}`);
  return n;
}

const WRITES = positiveInt('writes', args.writes);
const CAP = parseSize(args.cap!);
const KEYS = positiveInt('keys', args.keys);
const ZIPF_EXPONENT = Number(args.zipf);
if (!(ZIPF_EXPONENT > 0)) throw new Error(`--zipf must be a positive number, got ${args.zipf}`);
const CONCURRENCY = positiveInt('concurrency', args.concurrency);
const SEED = Number(args.seed);
if (!Number.isSafeInteger(SEED)) throw new Error(`--seed must be a whole number, got ${args.seed}`);
const OUT = path.resolve(args.out ?? path.join(ROOT, 'docs/churn.png'));

// ---------------------------------------------------------------------------------------------------------------
// The trace

/** The key space: names, value sizes, entry sizes (as the cap counts them) and the Zipf ranks' ids. */
interface KeySpace {
  names: string[];
  valueBytes: Uint32Array;
  entryBytes: Uint32Array;
  /** Cumulative Zipf probabilities by rank. */
  cdf: Float64Array;
  /** Rank to id. */
  idOfRank: Uint32Array;
  /** The random printable text values are sliced from (twice the largest value). */
  text: string;
}

function keySpace(seed: number): KeySpace {
  const names = Array.from({ length: KEYS }, (_, id) => `churn:${id}`);
  const sizeRandom = seededRandom(seed ^ 0x5bd1e995);
  const valueBytes = new Uint32Array(KEYS);
  const entryBytes = new Uint32Array(KEYS);
  for (let id = 0; id < KEYS; id++) {
    valueBytes[id] = Math.min(MAX_VALUE, Math.round(MIN_VALUE * (MAX_VALUE / MIN_VALUE) ** sizeRandom()));
    entryBytes[id] = Buffer.byteLength(names[id]!) + valueBytes[id]!;
  }
  const cdf = new Float64Array(KEYS);
  let sum = 0;
  for (let rank = 0; rank < KEYS; rank++) cdf[rank] = sum += 1 / (rank + 1) ** ZIPF_EXPONENT;
  for (let rank = 0; rank < KEYS; rank++) cdf[rank]! /= sum;
  const idOfRank = new Uint32Array(KEYS);
  for (let i = 0; i < KEYS; i++) idOfRank[i] = i;
  const shuffle = seededRandom(seed ^ 0x27d4eb2f);
  for (let i = KEYS - 1; i > 0; i--) {
    const j = Math.floor(shuffle() * (i + 1));
    const t = idOfRank[i]!;
    idOfRank[i] = idOfRank[j]!;
    idOfRank[j] = t;
  }
  const alphabet = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_';
  const textRandom = seededRandom(seed ^ 0x165667b1);
  const chars: string[] = [];
  for (let i = 0; i < 2 * MAX_VALUE; i++) chars.push(alphabet[Math.floor(textRandom() * 64)]!);
  return { names, valueBytes, entryBytes, cdf, idOfRank, text: chars.join('') };
}

/** A value of key `id` as written at trace step `step`: its size, and bytes that differ from one write to the next. */
function valueOf(space: KeySpace, id: number, step: number): string {
  const size = space.valueBytes[id]!;
  const offset = ((Math.imul(id, 2654435761) ^ Math.imul(step, 40503)) >>> 0) % (space.text.length - size + 1);
  return space.text.slice(offset, offset + size);
}

interface Step {
  index: number;
  id: number;
  overwrite: boolean;
}

/** The steps, one after another, from the seed: the same sequence for every run and simulation. */
class Trace {
  readonly #random: () => number;
  readonly #space: KeySpace;
  #index = 0;

  constructor(space: KeySpace, seed: number) {
    this.#space = space;
    this.#random = seededRandom(seed);
  }

  next(): Step {
    const overwrite = this.#random() < OVERWRITE_SHARE;
    const u = this.#random();
    let id: number;
    if (overwrite) id = Math.min(KEYS - 1, Math.floor(u * KEYS));
    else id = this.#space.idOfRank[rankOf(this.#space.cdf, u)]!;
    return { index: this.#index++, id, overwrite };
  }
}

interface Simulated {
  steps: number;
  reads: number;
  hits: number;
  writes: number;
  hitRatio: number;
}

/** An exact cache of `capacity` bytes over the trace, until `writes` writes: LRU, FIFO (by last write), or none. */
function simulate(space: KeySpace, policy: 'lru' | 'fifo', capacity: number, writes: number): Simulated {
  const trace = new Trace(space, SEED);
  const cache = new Map<number, number>(); // id -> entry bytes, oldest first
  let used = 0;
  let reads = 0;
  let hits = 0;
  let written = 0;
  let steps = 0;
  const write = (id: number) => {
    const size = space.entryBytes[id]!;
    const old = cache.get(id);
    if (old !== undefined) {
      cache.delete(id);
      used -= old;
    }
    cache.set(id, size);
    used += size;
    while (used > capacity) {
      const oldest = cache.keys().next().value!;
      used -= cache.get(oldest)!;
      cache.delete(oldest);
    }
    written++;
  };
  while (written < writes) {
    const step = trace.next();
    steps++;
    if (step.overwrite) {
      write(step.id);
      continue;
    }
    reads++;
    const size = cache.get(step.id);
    if (size === undefined) write(step.id);
    else {
      hits++;
      if (policy === 'lru') {
        cache.delete(step.id);
        cache.set(step.id, size);
      }
    }
  }
  return { steps, reads, hits, writes: written, hitRatio: reads === 0 ? 0 : hits / reads };
}

// ---------------------------------------------------------------------------------------------------------------
// Latencies

/** Latencies in buckets 1% wide (from 1 µs to 100 s): percentiles of millions of operations in a few kB. */
class Histogram {
  static readonly #RATIO = Math.log(1.01);
  readonly #counts = new Float64Array(Math.ceil(Math.log(1e8) / Math.log(1.01)) + 2);
  count = 0;

  add(ms: number): void {
    const us = Math.max(1, ms * 1000);
    const bucket = Math.min(this.#counts.length - 1, Math.ceil(Math.log(us) / Histogram.#RATIO));
    this.#counts[bucket]!++;
    this.count++;
  }

  addAll(values: readonly number[]): void {
    for (const v of values) this.add(v);
  }

  /** The upper bound of the bucket holding the `p`th percentile, in ms; null when empty. */
  percentile(p: number): number | null {
    if (this.count === 0) return null;
    const rank = Math.ceil((p / 100) * this.count);
    let seen = 0;
    for (let i = 0; i < this.#counts.length; i++) {
      seen += this.#counts[i]!;
      if (seen >= rank) return Math.exp(i * Histogram.#RATIO) / 1000;
    }
    return null;
  }
}

/** Exact percentile of a sorted array. */
const percentileOf = (sorted: readonly number[], p: number): number | null =>
  sorted.length === 0 ? null : sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1))]!;

// ---------------------------------------------------------------------------------------------------------------
// Adapter: the store's size cap, as src/options/types.ts (maxSize, eviction, evictionInterval), PgStore.evict()
// and src/sql/capacity.ts (<table>_usage, <table>_cap) have it. Change here if that API moves.

interface RunKind {
  name: string;
  eviction: 'lru' | 'fifo' | null;
  autovacuum: boolean;
}
const RUN_KINDS: Record<string, RunKind> = {
  lru: { name: 'lru', eviction: 'lru', autovacuum: true },
  'lru-novac': { name: 'lru-novac', eviction: 'lru', autovacuum: false },
  fifo: { name: 'fifo', eviction: 'fifo', autovacuum: true },
  nocap: { name: 'nocap', eviction: null, autovacuum: true },
};

/** Warnings of the stores (a drain store replacing the table's cap says so): kept, not printed as process warnings. */
const storeWarnings: string[] = [];
const logTo = (into: string[]) => ({ warn: (message: string) => void into.push(message), error: (error: Error) => void into.push(`error: ${error.message}`) });

function openStore(url: string, table: string, eviction: 'lru' | 'fifo' | null, cap = CAP, interval = EVICTION_INTERVAL, warnings = storeWarnings): PgStore {
  return new PgStore({
    uri: url,
    table,
    logger: logTo(warnings),
    ...(eviction ? { maxSize: cap, eviction, evictionInterval: interval } : {}),
  });
}

/** The side tables the cap installs (sql/capacity.ts: derivedName(table, 'usage' | 'cap'), short names as they are). */
const capTables = (table: string) => ({ usage: `${table}_usage`, cap: `${table}_cap` });

/** Everything a run leaves: the cache table, its lock table, the cap's tables and functions. */
async function dropRunTables(admin: pg.Pool, table: string): Promise<void> {
  const { usage, cap } = capTables(table);
  await admin.query(`DROP TABLE IF EXISTS public.${table}, public.${table}_locks, public.${usage}, public.${cap} CASCADE`);
  await admin.query(`DROP FUNCTION IF EXISTS public.${table}_usage_count(), public.${table}_usage_write() CASCADE`);
}

interface Reading {
  relationBytes: number;
  tableBytes: number;
  indexBytes: number;
  deadRows: number;
  deadToastRows: number;
  autovacuums: number;
  liveBytes: number | null;
  liveEntries: number | null;
  evictedRows: number;
}

/** One cheap statement: sizes and statistics of the table, and with a cap its usage (the deltas' sum) and evictions. */
function readingSql(table: string, capped: boolean): string {
  const { usage, cap } = capTables(table);
  const capParts = capped
    ? `(SELECT COALESCE(sum(bytes), 0) FROM public.${usage})::text AS live_bytes,
       (SELECT COALESCE(sum(entries), 0) FROM public.${usage})::text AS live_entries,
       (SELECT evicted_rows FROM public.${cap} WHERE id = 1)::text AS evicted`
    : `NULL::text AS live_bytes, NULL::text AS live_entries, '0' AS evicted`;
  return `SELECT pg_total_relation_size(c.oid)::text AS relation, pg_table_size(c.oid)::text AS table_bytes, pg_indexes_size(c.oid)::text AS index_bytes,
    COALESCE((SELECT n_dead_tup FROM pg_stat_all_tables WHERE relid = c.oid), 0)::text AS dead,
    COALESCE((SELECT n_dead_tup FROM pg_stat_all_tables WHERE relid = c.reltoastrelid), 0)::text AS dead_toast,
    COALESCE((SELECT autovacuum_count FROM pg_stat_all_tables WHERE relid = c.oid), 0)
      + COALESCE((SELECT autovacuum_count FROM pg_stat_all_tables WHERE relid = c.reltoastrelid), 0) AS autovacuums,
    ${capParts}
  FROM pg_class c WHERE c.oid = 'public.${table}'::regclass`;
}

async function read(pool: pg.Pool, sql: string): Promise<Reading> {
  const { rows } = await pool.query<Record<string, string | null>>(sql);
  const row = rows[0]!;
  const n = (v: string | null | undefined) => (v === null || v === undefined ? null : Number(v));
  return {
    relationBytes: n(row['relation'])!,
    tableBytes: n(row['table_bytes'])!,
    indexBytes: n(row['index_bytes'])!,
    deadRows: n(row['dead'])!,
    deadToastRows: n(row['dead_toast'])!,
    autovacuums: n(row['autovacuums'])!,
    liveBytes: n(row['live_bytes']),
    liveEntries: n(row['live_entries']),
    evictedRows: n(row['evicted']) ?? 0,
  };
}

// ---------------------------------------------------------------------------------------------------------------
// A run

interface Sample extends Reading {
  /** Seconds since the run started. */
  t: number;
  writes: number;
  reads: number;
  hits: number;
  /** Foreground operations completed in this second, and their p50 and p99 (ms). */
  ops: number;
  p50Ms: number | null;
  p99Ms: number | null;
  /** Rows evicted since the previous sample. */
  evictedDelta: number;
  /**
   * Every fifth sample of a capped run, the alternative to the exact count, measured beside it: Solid Cache's way,
   * an estimate of the live bytes from a sample of the table's pages (TABLESAMPLE SYSTEM 5%, scaled by 20), and how
   * long it and the exact read (the usage table's sum) took.
   */
  estimate?: { bytes: number; ms: number; exactMs: number };
}

interface RunResult {
  name: string;
  table: string;
  eviction: 'lru' | 'fifo' | null;
  autovacuum: boolean;
  reloptions: string[] | null;
  wallSeconds: number;
  steps: number;
  reads: number;
  hits: number;
  writes: number;
  opsPerSec: number;
  writesPerSec: number;
  hitRatio: number;
  failures: number;
  firstFailure?: string;
  /** Hits whose value did not have its key's size (should be 0). */
  wrongValues: number;
  firstEvictionSeconds: number | null;
  /** Max over the samples from the first eviction on of (live bytes - cap) / cap, in %. */
  maxOverCapPct: number | null;
  finalLiveBytes: number | null;
  finalRelationBytes: number;
  maxRelationBytes: number;
  finalDeadRows: number;
  finalDeadToastRows: number;
  autovacuums: number;
  evictedRows: number;
  /** Evicted rows per second from the first eviction to the end of the run. */
  evictedPerSec: number | null;
  /** Seconds in which rows were evicted, and the rows per such second. */
  evictingSeconds: number;
  evictedPerEvictingSecond: number | null;
  /** This process's sweeper passes that evicted ('evicted' events): count and rows per pass. */
  passes: number;
  rowsPerPassMean: number | null;
  rowsPerPassMax: number | null;
  /** One pass of a store with half the cap after the run: rows, seconds, rows/s. */
  drain: { rows: number; bytes: number; seconds: number; rowsPerSec: number } | null;
  p50Ms: number | null;
  p99Ms: number | null;
  /** p99 of the operations completed in seconds with evictions. */
  p99EvictingMs: number | null;
  clientUsPerOp: number;
  serverUsPerOp: number | null;
  samples: Sample[];
}

let interrupted = false;

async function runOnce(kind: RunKind, url: string, admin: pg.Pool, space: KeySpace): Promise<RunResult> {
  const table = `churn_${kind.name.replace(/-/g, '_')}`;
  await dropRunTables(admin, table);
  const store = openStore(url, table, kind.eviction);
  const errors: string[] = [];
  store.on('error', (error) => void errors.push(error.message));
  const passes: number[] = [];
  store.on('evicted', ({ count }) => void passes.push(count));
  const sampler = new pg.Pool({ connectionString: url, max: 1 });
  let timer: NodeJS.Timeout | undefined;
  try {
    // The store creates the table (and the cap's parts) on its first call.
    await store.get('churn:probe');
    if (!kind.autovacuum) await admin.query(`ALTER TABLE public.${table} SET (autovacuum_enabled = false, toast.autovacuum_enabled = false)`);
    const reloptions = (
      await admin.query<{ reloptions: string[] | null }>(`SELECT reloptions FROM pg_class WHERE oid = 'public.${table}'::regclass`)
    ).rows[0]!.reloptions;
    const readSql = readingSql(table, kind.eviction !== null);
    await read(sampler, readSql); // connects the sampler's connection before the clock starts

    const trace = new Trace(space, SEED);
    const state = { steps: 0, reads: 0, hits: 0, writes: 0, writesStarted: 0, failures: 0, wrongValues: 0, firstFailure: undefined as string | undefined };
    // nocap: live bytes counted here (nothing is evicted or expires: the distinct keys written).
    const written = new Uint8Array(KEYS);
    let liveBytes = 0;
    let liveEntries = 0;
    let window: number[] = [];
    const all = new Histogram();
    const evicting = new Histogram();
    const samples: Sample[] = [];
    let previousEvicted = 0;
    let sampling: Promise<void> = Promise.resolve();
    let sampleError: string | undefined;
    const started = process.hrtime.bigint();
    const elapsed = () => Number(process.hrtime.bigint() - started) / 1e9;

    /** Takes this second's counters and latencies now, reads the database after the previous reading (one at a time). */
    const tick = () => {
      const t = elapsed();
      const latencies = window;
      window = [];
      const counters = { writes: state.writes, reads: state.reads, hits: state.hits, liveBytes, liveEntries };
      sampling = sampling.then(async () => {
        try {
          const reading = await read(sampler, readSql);
          latencies.sort((a, b) => a - b);
          all.addAll(latencies);
          let estimate: Sample['estimate'];
          if (kind.eviction !== null && samples.length % 5 === 0) {
            const t0 = process.hrtime.bigint();
            const { rows } = await sampler.query<{ bytes: string | null }>(
              `SELECT (COALESCE(sum(octet_length(id) + octet_length(value)), 0) * 20)::text AS bytes FROM public.${table} TABLESAMPLE SYSTEM (5)`,
            );
            const t1 = process.hrtime.bigint();
            await sampler.query(`SELECT sum(bytes) FROM public.${capTables(table).usage}`);
            const t2 = process.hrtime.bigint();
            estimate = { bytes: Number(rows[0]!.bytes), ms: Number(t1 - t0) / 1e6, exactMs: Number(t2 - t1) / 1e6 };
          }
          const evictedDelta = reading.evictedRows - previousEvicted;
          previousEvicted = reading.evictedRows;
          if (evictedDelta > 0) evicting.addAll(latencies);
          samples.push({
            ...reading,
            ...(kind.eviction === null ? { liveBytes: counters.liveBytes, liveEntries: counters.liveEntries } : {}),
            t: Math.round(t * 1000) / 1000,
            writes: counters.writes,
            reads: counters.reads,
            hits: counters.hits,
            ops: latencies.length,
            p50Ms: percentileOf(latencies, 50),
            p99Ms: percentileOf(latencies, 99),
            evictedDelta,
            ...(estimate ? { estimate } : {}),
          });
        } catch (error) {
          all.addAll(latencies);
          sampleError ??= (error as Error).message;
        }
      });
    };

    const timed = async <T>(op: () => Promise<T>): Promise<T> => {
      const t0 = process.hrtime.bigint();
      try {
        return await op();
      } finally {
        window.push(Number(process.hrtime.bigint() - t0) / 1e6);
      }
    };
    const failed = (error: unknown) => {
      state.failures++;
      state.firstFailure ??= (error as Error)?.message ?? String(error);
    };
    const write = async (step: Step) => {
      state.writesStarted++;
      try {
        await timed(() => store.set(space.names[step.id]!, valueOf(space, step.id, step.index)));
        state.writes++;
        if (!written[step.id]) {
          written[step.id] = 1;
          liveBytes += space.entryBytes[step.id]!;
          liveEntries++;
        }
      } catch (error) {
        failed(error);
      }
    };
    const worker = async () => {
      while (!interrupted && state.writesStarted < WRITES) {
        const step = trace.next();
        state.steps++;
        if (step.overwrite) {
          await write(step);
          continue;
        }
        state.reads++;
        let value: string | undefined;
        try {
          value = await timed(() => store.get(space.names[step.id]!));
        } catch (error) {
          failed(error);
          continue;
        }
        if (value !== undefined) {
          state.hits++;
          if (value.length !== space.valueBytes[step.id]) state.wrongValues++;
        } else if (state.writesStarted < WRITES) await write(step);
      }
    };

    global.gc?.();
    const serverBefore = serverCpuSeconds();
    const clientBefore = process.cpuUsage();
    timer = setInterval(tick, 1000);
    timer.unref();
    const progress = setInterval(() => {
      const last = samples[samples.length - 1];
      console.log(
        `  [${kind.name}] ${Math.round(elapsed())} s: ${fmt(state.writes)} writes, hit ratio ${pct(state.reads ? state.hits / state.reads : 0)}` +
          (last ? `, live ${mb(last.liveBytes)}, relation ${mb(last.relationBytes)}, evicted ${fmt(last.evictedRows)}, p99 ${last.p99Ms?.toFixed(1) ?? '-'} ms` : ''),
      );
    }, 30_000);
    progress.unref();
    try {
      await Promise.all(Array.from({ length: CONCURRENCY }, worker));
    } finally {
      clearInterval(timer);
      clearInterval(progress);
      timer = undefined;
    }
    const wallSeconds = elapsed();
    const clientCpu = process.cpuUsage(clientBefore);
    const serverAfter = serverCpuSeconds();
    tick(); // the last part second
    await sampling;
    if (sampleError) console.log(`  [${kind.name}] a sample failed: ${sampleError}`);

    await store.disconnect();
    const drain = kind.eviction ? await measureDrain(url, table, kind.eviction, admin) : null;

    const ops = state.reads + state.writes;
    const firstEviction = samples.find((s) => s.evictedRows > 0);
    const afterFirst = firstEviction ? samples.filter((s) => s.t >= firstEviction.t) : [];
    const last = samples[samples.length - 1];
    const evictingSamples = samples.filter((s) => s.evictedDelta > 0);
    const evictedRows = last?.evictedRows ?? 0;
    const result: RunResult = {
      name: kind.name,
      table,
      eviction: kind.eviction,
      autovacuum: kind.autovacuum,
      reloptions,
      wallSeconds,
      steps: state.steps,
      reads: state.reads,
      hits: state.hits,
      writes: state.writes,
      opsPerSec: ops / wallSeconds,
      writesPerSec: state.writes / wallSeconds,
      hitRatio: state.reads === 0 ? 0 : state.hits / state.reads,
      failures: state.failures,
      ...(state.firstFailure ? { firstFailure: state.firstFailure } : {}),
      wrongValues: state.wrongValues,
      firstEvictionSeconds: firstEviction?.t ?? null,
      maxOverCapPct:
        kind.eviction && afterFirst.length > 0 ? Math.max(...afterFirst.map((s) => (((s.liveBytes ?? 0) - CAP) / CAP) * 100)) : null,
      finalLiveBytes: last?.liveBytes ?? null,
      finalRelationBytes: last?.relationBytes ?? 0,
      maxRelationBytes: Math.max(0, ...samples.map((s) => s.relationBytes)),
      finalDeadRows: last?.deadRows ?? 0,
      finalDeadToastRows: last?.deadToastRows ?? 0,
      autovacuums: last?.autovacuums ?? 0,
      evictedRows,
      evictedPerSec: firstEviction && last && last.t > firstEviction.t ? evictedRows / (last.t - firstEviction.t + 1) : null,
      evictingSeconds: evictingSamples.length,
      evictedPerEvictingSecond: evictingSamples.length > 0 ? evictingSamples.reduce((sum, s) => sum + s.evictedDelta, 0) / evictingSamples.length : null,
      passes: passes.length,
      rowsPerPassMean: passes.length > 0 ? passes.reduce((a, b) => a + b, 0) / passes.length : null,
      rowsPerPassMax: passes.length > 0 ? Math.max(...passes) : null,
      drain,
      p50Ms: all.percentile(50),
      p99Ms: all.percentile(99),
      p99EvictingMs: evicting.percentile(99),
      clientUsPerOp: ((clientCpu.user + clientCpu.system) / Math.max(1, ops)),
      serverUsPerOp: serverBefore !== undefined && serverAfter !== undefined ? ((serverAfter - serverBefore) * 1e6) / Math.max(1, ops) : null,
      samples,
    };
    if (errors.length > 0) console.log(`  [${kind.name}] ${errors.length} store error event(s), the first: ${errors[0]}`);
    return result;
  } finally {
    if (timer) clearInterval(timer);
    await store.disconnect().catch(() => {}); // idempotent; after a failure mid-run
    await sampler.end();
    await dropRunTables(admin, table).catch((error) => console.log(`  could not drop ${table}: ${(error as Error).message}`));
  }
}

/**
 * The sweeper's own throughput: a store on the run's table with half its cap (its background sweeper an hour
 * away), one pass now, timed. The table is idle: what a pass can do, not what the load asked of it.
 */
async function measureDrain(url: string, table: string, eviction: 'lru' | 'fifo', admin: pg.Pool): Promise<RunResult['drain']> {
  const half = Math.max(1024 * 1024, Math.floor(CAP / 2));
  const { usage } = capTables(table);
  const before = Number((await admin.query<{ bytes: string }>(`SELECT COALESCE(sum(bytes), 0)::text AS bytes FROM public.${usage}`)).rows[0]!.bytes);
  if (before <= half) return null;
  // Its warning that it replaced the table's cap is the point here: not reported.
  const store = openStore(url, table, eviction, half, '1h', []);
  try {
    await store.get('churn:probe'); // setup (and the cap rewritten) before the clock starts
    const t0 = process.hrtime.bigint();
    const { rows, bytes } = await store.evict();
    const seconds = Number(process.hrtime.bigint() - t0) / 1e9;
    return { rows, bytes, seconds, rowsPerSec: rows / seconds };
  } finally {
    await store.disconnect();
  }
}

// ---------------------------------------------------------------------------------------------------------------
// Report

const fmt = (n: number, digits = 0) => n.toLocaleString('en-US', { maximumFractionDigits: digits, minimumFractionDigits: digits });
const pct = (ratio: number) => `${(ratio * 100).toFixed(1)}%`;
const mb = (bytes: number | null) => (bytes === null ? '-' : `${fmt(bytes / 2 ** 20, 1)} MB`);
const ms = (value: number | null) => (value === null ? '-' : value.toFixed(2));

function report(results: RunResult[], ideal: Simulated, fifo: Simulated, unbounded: Simulated): void {
  const nocapP99 = results.find((r) => r.name === 'nocap')?.p99Ms ?? null;
  console.log(
    `\nOffline on the same trace (${fmt(WRITES)} writes each): ideal LRU ${pct(ideal.hitRatio)} (${fmt(ideal.steps)} steps), ` +
      `FIFO ${pct(fifo.hitRatio)}, no cap ${pct(unbounded.hitRatio)} (only first reads miss)`,
  );
  console.table(
    Object.fromEntries(
      results.map((r) => [
        r.name,
        {
          'wall s': fmt(r.wallSeconds, 1),
          'ops/s': fmt(r.opsPerSec),
          'writes/s': fmt(r.writesPerSec),
          'hit ratio': pct(r.hitRatio),
          'ideal LRU': pct(ideal.hitRatio),
          'FIFO sim': pct(fifo.hitRatio),
          'max over cap': r.maxOverCapPct === null ? '-' : `${r.maxOverCapPct.toFixed(1)}%`,
          'relation final': mb(r.finalRelationBytes),
          'relation max': mb(r.maxRelationBytes),
          'evicted/s': r.evictedPerSec === null ? '-' : fmt(r.evictedPerSec),
          'drain rows/s': r.drain ? fmt(r.drain.rowsPerSec) : '-',
          'p50 ms': ms(r.p50Ms),
          'p99 ms': ms(r.p99Ms),
          'p99 evicting ms': ms(r.p99EvictingMs),
          'p99 / nocap p99': r.p99EvictingMs !== null && nocapP99 ? fmt(r.p99EvictingMs / nocapP99, 2) : '-',
          'client µs/op': fmt(r.clientUsPerOp, 1),
          'server µs/op': r.serverUsPerOp === null ? '-' : fmt(r.serverUsPerOp, 1),
          failures: r.failures,
        },
      ]),
    ),
  );
  for (const r of results) {
    const parts = [
      `${r.name}: ${fmt(r.steps)} steps, ${fmt(r.reads)} reads, ${fmt(r.writes)} writes`,
      `final live ${mb(r.finalLiveBytes)}`,
      `dead rows ${fmt(r.finalDeadRows)} (TOAST ${fmt(r.finalDeadToastRows)}), ${r.autovacuums} autovacuum runs`,
    ];
    if (r.eviction) {
      parts.push(
        `first eviction at ${r.firstEvictionSeconds?.toFixed(0) ?? '-'} s, ${fmt(r.evictedRows)} evicted in ${r.passes} passes of this process ` +
          `(mean ${r.rowsPerPassMean === null ? '-' : fmt(r.rowsPerPassMean)} rows, max ${r.rowsPerPassMax ?? '-'}), ` +
          `${fmt(r.evictedPerEvictingSecond ?? 0)} rows per second with evictions (${r.evictingSeconds} s)`,
      );
      const estimates = r.samples.filter((x) => x.estimate && (x.liveBytes ?? 0) > 0);
      if (estimates.length > 0) {
        const med = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;
        const errors = estimates.map((x) => Math.abs(x.estimate!.bytes - x.liveBytes!) / x.liveBytes!);
        parts.push(
          `exact usage read in ${med(estimates.map((x) => x.estimate!.exactMs)).toFixed(2)} ms (median), a 5% page sample's estimate in ` +
            `${med(estimates.map((x) => x.estimate!.ms)).toFixed(2)} ms, off by ${pct(med(errors))} (median) and ${pct(Math.max(...errors))} (max) over ${estimates.length} readings`,
        );
      }
      if (r.drain) parts.push(`drain to half the cap: ${fmt(r.drain.rows)} rows (${mb(r.drain.bytes)}) in ${r.drain.seconds.toFixed(2)} s`);
    }
    if (r.wrongValues > 0) parts.push(`${r.wrongValues} hits with a value of the wrong size`);
    if (r.firstFailure) parts.push(`first failure: ${r.firstFailure}`);
    console.log(`  ${parts.join('; ')}`);
  }
}

async function plot(results: RunResult[], ideal: Simulated, fifo: Simulated, heading: string): Promise<string> {
  const input: PlotInput = {
    title: `Size cap under churn: ${fmt(WRITES)} writes, ${mb(CAP)} cap, values 100 B to 64 KiB, ${fmt(KEYS)} keys (Zipf ${ZIPF_EXPONENT})`,
    subtitle: heading,
    capBytes: CAP,
    runs: results.map((r) => ({
      name: r.name,
      hitRatio: r.hitRatio,
      samples: r.samples.map((s) => ({ t: s.t, liveBytes: s.liveBytes, relationBytes: s.relationBytes, p99Ms: s.p99Ms })),
    })),
    idealLruHitRatio: ideal.hitRatio,
    fifoSimHitRatio: fifo.hitRatio,
  };
  const svg = churnSvg(input);
  mkdirSync(path.dirname(OUT), { recursive: true });
  if (await renderPng(svg, OUT)) return OUT;
  const svgPath = OUT.replace(/\.png$/i, '') + '.svg';
  writeFileSync(svgPath, svg);
  console.log(`Chromium (/usr/bin/chromium, through playwright-core) is not there: the plot is an SVG only.`);
  return svgPath;
}

// ---------------------------------------------------------------------------------------------------------------

async function main(): Promise<void> {
  const kinds = args.runs!.split(',').map((name) => {
    const kind = RUN_KINDS[name.trim()];
    if (!kind) throw new Error(`--runs: unknown run ${name} (choose from ${Object.keys(RUN_KINDS).join(', ')})`);
    return kind;
  });
  if (CAP < 1024 * 1024) throw new Error('--cap must be at least 1MB (the store refuses a smaller maxSize)');

  const space = keySpace(SEED);
  const totalBytes = space.entryBytes.reduce((sum, b) => sum + b, 0);
  const simStarted = performance.now();
  const ideal = simulate(space, 'lru', CAP, WRITES);
  const fifo = simulate(space, 'fifo', CAP, WRITES);
  const unbounded = simulate(space, 'lru', Number.POSITIVE_INFINITY, WRITES);
  const simSeconds = (performance.now() - simStarted) / 1000;

  const database = await startTestDatabase({ url: args.url, docker: false, log: (line) => console.log(`[db] ${line}`) });
  const onSigint = () => {
    if (interrupted) {
      console.log('stopping now');
      void database.stop().finally(() => process.exit(130));
      return;
    }
    interrupted = true;
    console.log('\ninterrupted: ending this run and writing what was measured (Ctrl-C again to quit at once)');
  };
  process.on('SIGINT', onSigint);
  const admin = new pg.Pool({ connectionString: database.url, max: 1 });
  try {
    const setting = async (name: string) => (await admin.query<{ v: string }>(`SELECT current_setting('${name}') AS v`)).rows[0]!.v;
    const version = await setting('server_version');
    const autovacuum = await setting('autovacuum');
    const heading =
      `PostgreSQL ${version} (${database.source}), Node ${process.version}, ${os.cpus().length} cores; ${CONCURRENCY} workers, seed ${SEED}; ` +
      `autovacuum ${autovacuum}, shared_buffers ${await setting('shared_buffers')}`;
    console.log(heading);
    console.log(
      `trace: ${fmt(KEYS)} keys of ${mb(totalBytes)} in all (${fmt(totalBytes / KEYS)} B per entry on average; the cap ${mb(CAP)} is ${pct(CAP / totalBytes)} of it), ` +
        `Zipf ${ZIPF_EXPONENT} reads with ${pct(OVERWRITE_SHARE)} uniform overwrites, until ${fmt(WRITES)} writes; simulated in ${simSeconds.toFixed(1)} s`,
    );
    if (autovacuum !== 'on') console.log(`note: autovacuum is off on this server: the runs "with autovacuum" have none either`);

    const results: RunResult[] = [];
    for (const kind of kinds) {
      if (interrupted) break;
      console.log(`\nrun ${kind.name}: ${kind.eviction ? `maxSize ${mb(CAP)}, eviction ${kind.eviction}` : 'no cap'}, autovacuum ${kind.autovacuum ? 'on' : 'off'} on the table`);
      results.push(await runOnce(kind, database.url, admin, space));
      global.gc?.();
    }
    if (results.length === 0) return;
    report(results, ideal, fifo, unbounded);
    if (storeWarnings.length > 0) console.log(`\nstore warnings: ${[...new Set(storeWarnings)].join(' | ')}`);

    const stamp = new Date().toISOString();
    const resultsDir = path.join(ROOT, 'bench/results');
    mkdirSync(resultsDir, { recursive: true });
    const file = path.join(resultsDir, `churn-${stamp.replace(/[:.]/g, '-')}.json`);
    writeFileSync(
      file,
      JSON.stringify(
        {
          finishedAt: stamp,
          interrupted,
          settings: { writes: WRITES, capBytes: CAP, keys: KEYS, zipf: ZIPF_EXPONENT, overwriteShare: OVERWRITE_SHARE, valueBytes: [MIN_VALUE, MAX_VALUE], concurrency: CONCURRENCY, seed: SEED, evictionInterval: EVICTION_INTERVAL },
          keySpaceBytes: totalBytes,
          postgres: version,
          source: database.source,
          autovacuum,
          node: process.version,
          cores: os.cpus().length,
          simulated: { idealLru: ideal, fifo, noCap: unbounded },
          runs: results,
          storeWarnings: [...new Set(storeWarnings)],
        },
        null,
        1,
      ),
    );
    console.log(`\nWritten to ${file}`);
    console.log(`Plot: ${await plot(results, ideal, fifo, heading)}`);
  } finally {
    process.off('SIGINT', onSigint);
    if (interrupted) process.exitCode = 130;
    await admin.end();
    await database.stop();
  }
}

main().catch((error) => {
  console.error(error);
  process.exit(1);
});
