/**
 * npm run chaos [-- --duration 60 --workers 20 --seed 42]
 *
 * A bounded chaos run: `--workers` async workers in this process keep calling a PgStore (Keyv get/set,
 * store.ext.incr, store.ext.getOrSet) on a private PostgreSQL (test/helpers/private-server.ts) while
 * faults are injected between load-only gaps: backends terminated, a fast restart, a crash (stop -m
 * immediate) and a 3 s row-lock stall on one key. It does not work around failures, it reports them:
 * every call's outcome and error code, calls that never settle (hung), uncaught exceptions and
 * unhandled rejections, acknowledged writes missing afterwards, latency during the stall against
 * latency outside faults, and how long the store takes to recover from each fault.
 *
 * Exit code 1 when a call hung, an exception or rejection went unhandled, or an acknowledged write was
 * lost (or could not be checked). Results are printed and written to bench/results/chaos-<time>.json.
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import { setTimeout as sleep } from 'node:timers/promises';
import { parseArgs } from 'node:util';
import Keyv from 'keyv';
import pg from 'pg';
import { CachePostgresError, PgStore } from '../src/index.js';
import { type PrivateServer, startPrivateServer } from '../test/helpers/private-server.js';
import { seededRandom } from './random.js';

const { values: args } = parseArgs({
  options: {
    duration: { type: 'string', default: '60' },
    workers: { type: 'string', default: '20' },
    seed: { type: 'string' },
  },
});

const DURATION_MS = numberArg('duration', (value) => value > 0) * 1000;
const WORKERS = numberArg('workers', (value) => Number.isInteger(value) && value > 0);
const SEED = args.seed === undefined ? Math.floor(Math.random() * 2 ** 31) : numberArg('seed', Number.isInteger);

const TABLE = 'chaos';
/** application_name of the store's connections: what the terminate fault aims at. */
const STORE_APP = 'chaos-store';
const KEY_SPACE = 1000;
/** Keyv prefixes every key with its namespace (`keyv` by default): the row the store writes for the stalled key. */
const STALLED_KEY = 'stalled';
const STALLED_ROW = `keyv:${STALLED_KEY}`;
const DURABLE_KEYS_PER_WORKER = 5;
const HUNG_AFTER_MS = 30_000;
const STRAGGLER_WAIT_MS = 30_000;
const DISCONNECT_WAIT_MS = 10_000;
const STALL_MS = 3_000;
/** Load-only time after each fault before the next one may start. */
const MIN_GAP_MS = 1_000;
/** Longest a fault action may take (pg_ctl itself gives up after 30 s). */
const FAULT_LIMIT_MS = 45_000;
/** Past this the script gives up, whatever is stuck: it disposes the server and exits 1. */
const OVERALL_LIMIT_MS = DURATION_MS + 85_000;

const KINDS = ['get', 'set', 'durableSet', 'stalledSet', 'incr', 'getOrSet', 'disconnect'] as const;
type Kind = (typeof KINDS)[number];

/** Operations a worker picks from, with their weights (stalled-key writes come on top, from worker 0). */
const MIX: ReadonlyArray<readonly [Kind, number]> = [
  ['get', 35],
  ['set', 20],
  ['durableSet', 10],
  ['incr', 15],
  ['getOrSet', 20],
];

const started = performance.now();
/** Milliseconds since the script started: every time below is on this clock. */
const now = () => performance.now() - started;

function numberArg(name: 'duration' | 'workers' | 'seed', valid: (value: number) => boolean): number {
  const value = Number(args[name]);
  if (!Number.isFinite(value) || !valid(value)) throw new Error(`Invalid --${name}: ${args[name]}`);
  return value;
}


/** The code an error is counted under: the typed error's `code`, else `untyped:<name>`. */
function errorCode(error: unknown): string {
  if (error instanceof CachePostgresError && typeof error.code === 'string') return error.code;
  return `untyped:${error instanceof Error ? error.name : typeof error}`;
}

/**
 * The code plus what the error says of its cause: a QueryError's SQLSTATE (or Node error code such as
 * ECONNREFUSED), or the `code` of an untyped error (pg's errors carry the SQLSTATE there), e.g.
 * `E_QUERY_FAILED 57P01`, `E_QUERY_FAILED (no SQLSTATE)`, `untyped:error 57P01`.
 */
function errorCause(error: unknown): string {
  const code = errorCode(error);
  if (typeof error !== 'object' || error === null) return code;
  const state = error instanceof CachePostgresError ? (error as { sqlState?: unknown }).sqlState : (error as { code?: unknown }).code;
  if (typeof state === 'string') return `${code} ${state}`;
  return 'sqlState' in error ? `${code} (no SQLSTATE)` : code;
}

function message(error: unknown): string {
  return (error instanceof Error ? error.message : String(error)).slice(0, 300);
}

/** The first stack frames say where a process-level failure came from (the JSON keeps them). */
function failure(error: unknown): ProcessFailure {
  const stack = error instanceof Error ? error.stack?.split('\n').slice(1, 8).join('\n') : undefined;
  return { atMs: Math.round(now()), message: message(error), ...(stack ? { stack } : {}) };
}

function increment(counts: Record<string, number>, name: string): void {
  counts[name] = (counts[name] ?? 0) + 1;
}

type Outcome<T> = { ok: true; value: T } | { ok: false; code: string };

interface PendingCall {
  kind: Kind;
  key: string;
  start: number;
  hung: boolean;
}

/**
 * Every call goes through {@link Calls.track}: it is pending until it settles, then logged in columns
 * (a long run settles a million calls; arrays of numbers keep that to a few tens of MB).
 */
class Calls {
  readonly pending = new Map<number, PendingCall>();
  readonly hung: Array<{ kind: Kind; key: string; startedAtMs: number }> = [];
  readonly errors: Record<string, number> = {};
  readonly causes: Record<string, number> = {};
  readonly samples: Record<string, string> = {};
  readonly byKind = Object.fromEntries(KINDS.map((kind) => [kind, { calls: 0, ok: 0, errors: {} as Record<string, number> }]));
  // Settled calls, one index per call.
  readonly starts: number[] = [];
  readonly ends: number[] = [];
  readonly kinds: number[] = [];
  readonly oks: boolean[] = [];
  #next = 0;

  /** Runs `call`, records its outcome, never rejects. */
  async track<T>(kind: Kind, key: string, call: () => Promise<T>): Promise<Outcome<T>> {
    const id = this.#next++;
    const entry: PendingCall = { kind, key, start: now(), hung: false };
    this.pending.set(id, entry);
    try {
      const value = await call();
      this.#settled(entry, undefined);
      return { ok: true, value };
    } catch (error) {
      this.#settled(entry, error);
      return { ok: false, code: errorCode(error) };
    } finally {
      this.pending.delete(id);
    }
  }

  /** Flags pending calls older than `olderThanMs` as hung (each once), so a hang is counted even if the call settles later. */
  flagHung(olderThanMs = HUNG_AFTER_MS): void {
    const limit = now() - olderThanMs;
    for (const call of this.pending.values()) {
      if (call.hung || call.start > limit) continue;
      call.hung = true;
      this.hung.push({ kind: call.kind, key: call.key, startedAtMs: Math.round(call.start) });
    }
  }

  get settled(): number {
    return this.starts.length;
  }

  #settled(entry: PendingCall, error: unknown): void {
    const stats = this.byKind[entry.kind]!;
    stats.calls++;
    this.starts.push(entry.start);
    this.ends.push(now());
    this.kinds.push(KINDS.indexOf(entry.kind));
    this.oks.push(error === undefined);
    if (error === undefined) {
      stats.ok++;
      return;
    }
    const code = errorCode(error);
    increment(stats.errors, code);
    increment(this.errors, code);
    increment(this.causes, errorCause(error));
    this.samples[code] ??= message(error);
  }
}

/** An uncaught exception or unhandled rejection, and when it happened. */
interface ProcessFailure {
  atMs: number;
  message: string;
  stack?: string;
}

/** What went wrong outside the calls: the process-level failures the store must never cause. */
class ProcessWatch {
  readonly uncaught: ProcessFailure[] = [];
  readonly unhandled: ProcessFailure[] = [];
  readonly warnings: Record<string, number> = {};
  readonly warningSamples: string[] = [];

  /** Counts instead of crashing: a crash would hide every other finding of the run. */
  install(): void {
    process.on('uncaughtException', (error) => this.uncaught.push(failure(error)));
    process.on('unhandledRejection', (reason) => this.unhandled.push(failure(reason)));
    process.on('warning', (warning) => {
      increment(this.warnings, (warning as { code?: string }).code ?? warning.name);
      if (this.warningSamples.length < 5) this.warningSamples.push(message(warning));
    });
  }
}

/** Last value of each durable key whose set resolved true, and the last one attempted. */
interface DurableState {
  acked: number | undefined;
  attempted: number;
}

interface Load {
  keyv: Keyv<string>;
  store: PgStore;
  calls: Calls;
  durable: Map<string, DurableState>;
  endAt: number;
}

/** A worker: random operations until the run ends; worker 0 also writes the stalled key every other call. */
async function worker(index: number, load: Load): Promise<void> {
  const random = seededRandom(SEED + index * 0x9e3779b9);
  const ownKeys = Array.from({ length: DURABLE_KEYS_PER_WORKER }, (_, j) => `durable:${index}:${j}`);
  for (const key of ownKeys) load.durable.set(key, { acked: undefined, attempted: 0 });
  for (let turn = 0; now() < load.endAt; turn++) {
    const outcome =
      index === 0 && turn % 2 === 0
        ? await load.calls.track('stalledSet', STALLED_ROW, () => load.keyv.set(STALLED_KEY, `w0-${turn}`))
        : await randomOperation(load, random, ownKeys);
    // A down server fails calls at once: pausing after a failure keeps the workers from turning into a
    // busy loop that starves the fault driver (same 2 cores) and inflates the error counts.
    if (!outcome.ok) await sleep(5 + random() * 15);
  }
}

function randomOperation(load: Load, random: () => number, ownKeys: string[]): Promise<Outcome<unknown>> {
  const n = Math.floor(random() * KEY_SPACE);
  // One prefix per kind on the same 1,000 indexes: a counter must not meet a Keyv JSON value (E_NOT_A_COUNTER).
  switch (pick(random)) {
    case 'get':
      return load.calls.track('get', `k:${n}`, () => load.keyv.get(`k:${n}`));
    case 'set':
      return load.calls.track('set', `k:${n}`, () => load.keyv.set(`k:${n}`, `value ${n} ${random()}`));
    case 'incr':
      return load.calls.track('incr', `c:${n}`, () => load.store.ext.incr(`c:${n}`));
    case 'getOrSet':
      return load.calls.track('getOrSet', `g:${n}`, () =>
        load.store.ext.getOrSet(
          `g:${n}`,
          async () => {
            await sleep(random() * 20);
            return `computed ${n}`;
          },
          // Short expiry: misses keep coming, so the lock-and-compute path is exercised, not only hits.
          { absoluteExpirationRelative: '2s', lockTimeout: '5s' },
        ),
      );
    case 'durableSet':
      return durableSet(load, ownKeys[Math.floor(random() * ownKeys.length)]!);
    default:
      throw new Error('MIX lists an operation randomOperation does not know');
  }
}

function pick(random: () => number): Kind {
  const total = MIX.reduce((sum, [, weight]) => sum + weight, 0);
  let roll = random() * total;
  for (const [kind, weight] of MIX) if ((roll -= weight) < 0) return kind;
  return MIX[0]![0];
}

/** A write to a key only this worker writes, with an increasing sequence number, remembered once acknowledged. */
async function durableSet(load: Load, key: string): Promise<Outcome<unknown>> {
  const state = load.durable.get(key)!;
  const seq = ++state.attempted;
  const outcome = await load.calls.track('durableSet', key, () => load.keyv.set(key, String(seq)));
  if (outcome.ok && outcome.value === true && (state.acked ?? 0) < seq) state.acked = seq;
  return outcome;
}

interface FaultRecord {
  name: string;
  startedAtMs?: number;
  /** When the server was back (or the termination done, or the row lock released). */
  backAtMs?: number;
  detail?: string;
  error?: string;
  skipped?: string;
  /** From `backAt` to the end of the first successful call started after it. */
  recoveryMs?: number | null;
  /** Calls that failed between the fault's start and its recovery. */
  failedCalls?: number;
  /** The row-lock stall only: when the lock was held. */
  lockedFromMs?: number;
  lockedToMs?: number;
}

interface Fault {
  name: string;
  /** Injects the fault; resolves when the server is back (or the lock released). */
  run(server: PrivateServer, record: FaultRecord): Promise<void>;
}

const terminate = (n: number): Fault => ({
  name: `terminate#${n}`,
  run: async (server, record) => {
    record.detail = `${await server.terminate(STORE_APP)} backends terminated`;
  },
});

/** Faults in the order they are injected, spread evenly over the run. */
const FAULTS: Fault[] = [
  terminate(1),
  { name: 'restart-fast', run: (server) => server.restart('fast') },
  terminate(2),
  { name: 'row-lock-stall', run: rowLockStall },
  { name: 'crash', run: (server) => server.crash() },
  terminate(3),
];

/** Holds `SELECT ... FOR UPDATE` on the stalled key's row for STALL_MS in a transaction of another client. */
async function rowLockStall(server: PrivateServer, record: FaultRecord): Promise<void> {
  const client = new pg.Client({ connectionString: server.url, application_name: 'chaos-stall', connectionTimeoutMillis: 10_000 });
  client.on('error', (error) => (record.error ??= `stall client: ${message(error)}`));
  try {
    await client.connect();
    await client.query('BEGIN');
    const locked = await client.query(`SELECT id FROM public.${TABLE} WHERE id = $1 FOR UPDATE`, [STALLED_ROW]);
    record.lockedFromMs = Math.round(now());
    await sleep(STALL_MS);
    await client.query('COMMIT');
    record.lockedToMs = Math.round(now());
    record.detail = locked.rowCount === 1 ? `row ${STALLED_ROW} locked for ${record.lockedToMs - record.lockedFromMs} ms` : `row ${STALLED_ROW} missing: nothing was locked`;
  } finally {
    await client.end().catch(() => {});
  }
}

/** Runs the faults at evenly spread times, each after a load-only gap; those that no longer fit the run are skipped. */
async function injectFaults(server: PrivateServer, loadStart: number, endAt: number, log: (line: string) => void): Promise<FaultRecord[]> {
  const records: FaultRecord[] = [];
  let readyAt = loadStart;
  for (const [i, fault] of FAULTS.entries()) {
    const record: FaultRecord = { name: fault.name };
    records.push(record);
    const at = Math.max(loadStart + ((endAt - loadStart) * (i + 1)) / (FAULTS.length + 1), readyAt);
    if (at > endAt - MIN_GAP_MS) {
      record.skipped = 'no time left in the run';
      continue;
    }
    await sleep(at - now());
    record.startedAtMs = Math.round(now());
    log(`fault ${fault.name} at ${(record.startedAtMs / 1000).toFixed(1)} s`);
    const outcome = await within(fault.run(server, record), FAULT_LIMIT_MS);
    if (outcome === TIMED_OUT) record.error = `did not finish within ${FAULT_LIMIT_MS} ms`;
    else if (outcome instanceof Error) record.error = message(outcome);
    record.backAtMs = Math.round(now());
    readyAt = now() + MIN_GAP_MS;
  }
  return records;
}

const TIMED_OUT = Symbol('timed out');

/** The promise's value (or its error as a value), or TIMED_OUT after `ms`; the promise itself goes on. */
async function within<T>(promise: Promise<T>, ms: number): Promise<T | Error | typeof TIMED_OUT> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<typeof TIMED_OUT>((resolve) => (timer = setTimeout(resolve, ms, TIMED_OUT)));
  try {
    return await Promise.race([promise.catch((error: unknown) => (error instanceof Error ? error : new Error(String(error)))), timeout]);
  } finally {
    clearTimeout(timer);
  }
}

/** Recovery and failures of each fault, from the call log. */
function analyseFaults(faults: FaultRecord[], calls: Calls): void {
  for (const fault of faults) {
    if (fault.backAtMs === undefined || fault.startedAtMs === undefined) continue;
    let firstSuccess = Infinity;
    for (let i = 0; i < calls.settled; i++) {
      if (calls.oks[i] && calls.starts[i]! >= fault.backAtMs && calls.ends[i]! < firstSuccess) firstSuccess = calls.ends[i]!;
    }
    fault.recoveryMs = Number.isFinite(firstSuccess) ? Math.round(firstSuccess - fault.backAtMs) : null;
    const until = Number.isFinite(firstSuccess) ? firstSuccess : Infinity;
    fault.failedCalls = 0;
    for (let i = 0; i < calls.settled; i++) {
      if (!calls.oks[i] && calls.ends[i]! >= fault.startedAtMs && calls.ends[i]! <= until) fault.failedCalls++;
    }
  }
}

interface Latency {
  calls: number;
  p50Ms: number | null;
  p99Ms: number | null;
}

/** p50/p99 of the settled load calls (successes and failures alike) for which `include(i)` holds. */
function latency(calls: Calls, include: (i: number) => boolean): Latency {
  const disconnect = KINDS.indexOf('disconnect');
  const values: number[] = [];
  for (let i = 0; i < calls.settled; i++) if (calls.kinds[i] !== disconnect && include(i)) values.push(calls.ends[i]! - calls.starts[i]!);
  values.sort((a, b) => a - b);
  const rank = (q: number) => (values.length === 0 ? null : Number(values[Math.max(0, Math.ceil(q * values.length) - 1)]!.toFixed(1)));
  return { calls: values.length, p50Ms: rank(0.5), p99Ms: rank(0.99) };
}

/** Stall window (keys other than the stalled one) against calls that overlap no fault at all. */
function latencies(faults: FaultRecord[], calls: Calls, runEnd: number): { stall: Latency; outsideFaults: Latency } {
  const stall = faults.find((fault) => fault.lockedFromMs !== undefined && fault.lockedToMs !== undefined);
  const stalled = KINDS.indexOf('stalledSet');
  const windows = faults
    .filter((fault) => fault.startedAtMs !== undefined)
    .map((fault) => [fault.startedAtMs!, typeof fault.recoveryMs === 'number' ? fault.backAtMs! + fault.recoveryMs : runEnd] as const);
  return {
    stall: stall
      ? latency(calls, (i) => calls.kinds[i] !== stalled && calls.starts[i]! >= stall.lockedFromMs! && calls.starts[i]! <= stall.lockedToMs!)
      : { calls: 0, p50Ms: null, p99Ms: null },
    outsideFaults: latency(calls, (i) => windows.every(([from, to]) => calls.ends[i]! < from || calls.starts[i]! > to)),
  };
}

/** Reads every durable key's row on a fresh connection and counts acknowledged writes that are not there. */
interface Durability {
  keys: number;
  /** Keys with at least one acknowledged write. */
  acknowledged: number;
  /** Keys whose last write failed (it may or may not have been stored). */
  unknownOutcomes: number;
  lost: Array<{ key: string; acked: number | undefined; attempted: number; found: number | undefined }>;
}

async function verifyDurability(server: PrivateServer, durable: Map<string, DurableState>): Promise<Durability> {
  const ids = [...durable.keys()].map((key) => `keyv:${key}`);
  const rows = await server.sql<{ id: string; text: string }>(
    `SELECT id, convert_from(value, 'UTF8') AS text FROM public.${TABLE} WHERE id = ANY($1)`,
    [ids],
  );
  const stored = new Map(rows.map((row) => [row.id.slice('keyv:'.length), storedSeq(row.text)]));
  const lost: Durability['lost'] = [];
  let unknownOutcomes = 0;
  for (const [key, state] of durable) {
    const found = stored.get(key);
    if (state.attempted > (state.acked ?? 0)) unknownOutcomes++;
    // Acceptable: the last acknowledged value, or a later attempt whose outcome was unknown.
    const floor = state.acked ?? 0;
    const ok = found === undefined ? state.acked === undefined : found >= floor && found <= state.attempted && found > 0;
    if (!ok) lost.push({ key, acked: state.acked, attempted: state.attempted, found });
  }
  return { keys: durable.size, acknowledged: [...durable.values()].filter((s) => s.acked !== undefined).length, unknownOutcomes, lost };
}

/** The sequence number inside Keyv's serialized `{"value":"<seq>"}`, or NaN when it is something else. */
function storedSeq(text: string): number {
  try {
    return Number((JSON.parse(text) as { value?: unknown }).value);
  } catch {
    return Number.NaN;
  }
}

/** The private server, from the moment its start begins: a SIGINT during initdb must still dispose it. */
let serverStarting: Promise<PrivateServer> | undefined;

/** Disposes the server and exits: the end of every path (normal, SIGINT, overall time limit). */
async function exit(code: number): Promise<never> {
  const dispose = serverStarting?.then((server) => server.dispose());
  await within(dispose ?? Promise.resolve(), 20_000);
  // Explicit exit: a hung call may hold sockets or timers that would keep the process alive.
  process.exit(code);
}

async function main(): Promise<number> {
  const log = (line: string) => console.error(`[${(now() / 1000).toFixed(1)} s] ${line}`);
  const watch = new ProcessWatch();
  watch.install();
  const server = await (serverStarting = startPrivateServer({ log }));
  const [version] = await server.sql<{ server_version: string }>('SHOW server_version');
  const store = new PgStore({ uri: server.url, table: TABLE, useWal: true, poolConfig: { application_name: STORE_APP } });
  const storeErrors: Record<string, number> = {};
  const storeErrorSamples: Record<string, string> = {};
  store.on('error', (error) => {
    increment(storeErrors, errorCause(error));
    storeErrorSamples[errorCode(error)] ??= message(error);
  });
  // throwOnErrors: without it Keyv turns a failed get into `undefined` and a failed set into `false`,
  // and the calls could not be told apart from misses nor counted by error code.
  const keyv = new Keyv<string>({ store, throwOnErrors: true });
  await prepareStalledRow(server, keyv);

  const calls = new Calls();
  const loadStart = now();
  const load: Load = { keyv, store, calls, durable: new Map(), endAt: loadStart + DURATION_MS };
  log(`load: ${WORKERS} workers for ${DURATION_MS / 1000} s, seed ${SEED}`);
  const hungCheck = setInterval(() => calls.flagHung(), 1000);
  const workers = Promise.all(Array.from({ length: WORKERS }, (_, i) => worker(i, load)));
  const faults = await injectFaults(server, loadStart, load.endAt, log);
  await sleep(Math.max(0, load.endAt - now()));
  log(`run over; waiting up to ${STRAGGLER_WAIT_MS / 1000} s for ${calls.pending.size} pending calls`);
  await within(workers, STRAGGLER_WAIT_MS);
  const runEnd = now();
  calls.flagHung(0); // whatever is still pending now has been for at least 30 s
  clearInterval(hungCheck);

  // A fault that failed half-way may have left the server down.
  await server.start().catch((error: unknown) => log(`server did not start for the check: ${message(error)}`));
  const durability = await verifyDurability(server, load.durable).catch((error: unknown) => ({ error: message(error) }));
  await within(calls.track('disconnect', '', () => store.disconnect()), DISCONNECT_WAIT_MS);
  calls.flagHung(0);

  analyseFaults(faults, calls);
  const result = {
    startedAt: new Date(Date.now() - now()).toISOString(),
    durationS: DURATION_MS / 1000,
    workers: WORKERS,
    seed: SEED,
    postgres: version?.server_version,
    node: process.version,
    operations: { total: calls.settled, byKind: calls.byKind },
    errors: calls.errors,
    errorCauses: calls.causes,
    errorSamples: calls.samples,
    storeErrorEvents: storeErrors,
    storeErrorSamples,
    warnings: watch.warnings,
    warningSamples: watch.warningSamples,
    hung: calls.hung,
    uncaughtExceptions: watch.uncaught,
    unhandledRejections: watch.unhandled,
    durability,
    latency: latencies(faults, calls, runEnd),
    faults,
  };
  report(result);
  mkdirSync(new URL('./results/', import.meta.url), { recursive: true });
  const file = new URL(`./results/chaos-${new Date().toISOString().replace(/[:.]/g, '-')}.json`, import.meta.url);
  writeFileSync(file, JSON.stringify(result, null, 2));
  console.log(`written to ${file.pathname}`);
  const lostOrUnknown = 'error' in durability || durability.lost.length > 0;
  return result.hung.length > 0 || watch.uncaught.length + watch.unhandled.length > 0 || lostOrUnknown ? 1 : 0;
}

/** Writes the stalled key through Keyv and checks that the row the fault locks is the one the store wrote. */
async function prepareStalledRow(server: PrivateServer, keyv: Keyv<string>): Promise<void> {
  const written = await within(keyv.set(STALLED_KEY, 'initial'), 15_000);
  if (written !== true) throw new Error(`Could not write the stalled key before the run: ${written === TIMED_OUT ? 'timed out' : String(written)}`);
  const rows = await server.sql(`SELECT 1 FROM public.${TABLE} WHERE id = $1`, [STALLED_ROW]);
  if (rows.length !== 1) throw new Error(`Keyv did not store ${STALLED_KEY} as row ${STALLED_ROW}: the stall would lock nothing.`);
}

interface ChaosResult {
  durationS: number;
  workers: number;
  seed: number;
  postgres: string | undefined;
  operations: { total: number; byKind: Calls['byKind'] };
  errors: Record<string, number>;
  errorCauses: Record<string, number>;
  errorSamples: Record<string, string>;
  storeErrorEvents: Record<string, number>;
  storeErrorSamples: Record<string, string>;
  warnings: Record<string, number>;
  hung: Calls['hung'];
  uncaughtExceptions: ProcessFailure[];
  unhandledRejections: ProcessFailure[];
  durability: Durability | { error: string };
  latency: ReturnType<typeof latencies>;
  faults: FaultRecord[];
}

function report(result: ChaosResult): void {
  const counts = (record: Record<string, number>) => Object.entries(record).map(([name, n]) => `${name} ${n}`).join(', ') || 'none';
  const ms = (value: number | null | undefined) => (value === null || value === undefined ? 'never' : `${value} ms`);
  const { durability, latency: lat } = result;
  const lines = [
    '',
    `chaos run: ${result.durationS} s, ${result.workers} workers, seed ${result.seed}, PostgreSQL ${result.postgres}, table ${TABLE} (WAL-logged)`,
    `operations: ${result.operations.total}`,
    ...Object.entries(result.operations.byKind)
      .filter(([, stats]) => stats.calls > 0)
      .map(([kind, stats]) => `  ${kind.padEnd(11)} ${String(stats.calls).padStart(8)} calls, ${String(stats.ok).padStart(8)} ok; errors: ${counts(stats.errors)}`),
    `errors by code: ${counts(result.errors)}`,
    `errors by code and SQLSTATE: ${counts(result.errorCauses)}`,
    ...Object.entries(result.errorSamples).map(([code, text]) => `  e.g. ${code}: ${text}`),
    `store 'error' events: ${counts(result.storeErrorEvents)}`,
    ...Object.entries(result.storeErrorSamples).map(([code, text]) => `  e.g. ${code}: ${text}`),
    `process warnings: ${counts(result.warnings)}`,
    'faults:',
    ...result.faults.map(describeFault),
    `latency, stall window (other keys): p50 ${ms(lat.stall.p50Ms)}, p99 ${ms(lat.stall.p99Ms)} over ${lat.stall.calls} calls`,
    `latency, outside faults:            p50 ${ms(lat.outsideFaults.p50Ms)}, p99 ${ms(lat.outsideFaults.p99Ms)} over ${lat.outsideFaults.calls} calls`,
    `hung calls (unsettled after ${HUNG_AFTER_MS / 1000} s): ${result.hung.length}${result.hung.length ? ` (${counts(tally(result.hung.map((h) => h.kind)))})` : ''}`,
    `uncaught exceptions: ${result.uncaughtExceptions.length}`,
    ...byMessage(result.uncaughtExceptions),
    `unhandled rejections: ${result.unhandledRejections.length}`,
    ...byMessage(result.unhandledRejections),
    ...('error' in durability
      ? [`acknowledged writes lost: UNKNOWN, the check failed: ${durability.error}`]
      : [
          `acknowledged writes lost: ${durability.lost.length} (${durability.acknowledged} of ${durability.keys} durable keys had an acknowledged write, ${durability.unknownOutcomes} ended with an unknown outcome)`,
          ...durability.lost.slice(0, 10).map((lost) => `  ${lost.key}: acknowledged ${lost.acked}, attempted up to ${lost.attempted}, found ${lost.found}`),
        ]),
  ];
  console.log(lines.join('\n'));
}

function describeFault(fault: FaultRecord): string {
  const name = `  ${fault.name.padEnd(15)}`;
  if (fault.skipped) return `${name} skipped: ${fault.skipped}`;
  const startedAt = fault.startedAtMs ?? 0;
  const recovery = fault.recoveryMs === null || fault.recoveryMs === undefined ? 'never' : `${fault.recoveryMs} ms`;
  return (
    `${name} at ${(startedAt / 1000).toFixed(1)} s, back after ${(fault.backAtMs ?? startedAt) - startedAt} ms, recovery ${recovery}, ` +
    `${fault.failedCalls ?? 0} failed calls${fault.detail ? `; ${fault.detail}` : ''}${fault.error ? `; FAULT ERROR: ${fault.error}` : ''}`
  );
}

/** Process-level failures grouped by message, with the time of the first: `  3x at 4.1 s: <message>`. */
function byMessage(failures: ProcessFailure[]): string[] {
  const groups = new Map<string, { count: number; firstMs: number }>();
  for (const { atMs, message: text } of failures) {
    const group = groups.get(text);
    if (group) group.count++;
    else groups.set(text, { count: 1, firstMs: atMs });
  }
  return [...groups].map(([text, { count, firstMs }]) => `  ${count}x, first at ${(firstMs / 1000).toFixed(1)} s: ${text}`);
}

function tally(names: string[]): Record<string, number> {
  const counts: Record<string, number> = {};
  for (const name of names) increment(counts, name);
  return counts;
}

process.once('SIGINT', () => void exit(130));
process.once('SIGTERM', () => void exit(143));
setTimeout(() => {
  console.error(`chaos: still running after ${OVERALL_LIMIT_MS / 1000} s; giving up`);
  void exit(1);
}, OVERALL_LIMIT_MS).unref();

main().then(
  (code) => exit(code),
  (error: unknown) => {
    console.error('chaos: the run itself failed:', error);
    return exit(1);
  },
);
