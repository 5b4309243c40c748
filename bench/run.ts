/**
 * npm run bench [-- --url postgres://... --ops 20000 --rounds 5 --quick --only "name,other name"
 *                    --keys 100 --distribution uniform|zipf --seed N --progress --out file.json
 *                    --baseline DIR --from-dist]
 *
 * The Python library's four scenarios (100 keys, 1 KiB values, 20 concurrent workers): read-heavy
 * (90% get / 10% set), write-heavy (10/90), an atomic counter on one key, and a stampede (20 callers,
 * one cold key, 200 ms factory). As the seed's benchmark does, each operation's kind and key are drawn
 * at random (`random() < 0.9`, `random.choice(keys)`), here from a seed the run prints, so that a run can
 * be repeated; every target of a round meets the same operations. `--keys 10000 --distribution zipf`
 * draws from a larger key space with a Zipf-like skew (closer to real traffic). Every target runs in this one process, one after another, against
 * the same PostgreSQL (and the local Redis), and is reported with ratios to @keyv/postgres and
 * @keyv/redis. Results are also written to bench/results/<time>.json.
 *
 * Rounds: every target runs every scenario once per round, round after round (each round starting
 * with another target), and each figure is the median over the rounds. This machine's speed drifts
 * by tens of percent within a minute; measured one target after another only once, a ratio says as
 * much about the moment as about the target.
 *
 * CPU per operation: the client's (this process, `process.cpuUsage()`) and the server's (every process
 * named postgres or redis-server on this machine, from /proc: the database must be local and otherwise idle), each in µs
 * per operation, median over the rounds. Unlike ops/s, they hardly move between rounds on a shared machine.
 *
 * Before and after a change: `--baseline DIR`, a checkout of this library with its build (`DIR/dist/esm/
 * index.js`, made by `npm ci` or `npm run build` there), runs each PgStore target of that version beside this
 * one's, on tables of their own, in the same rounds, and prints this version's ratio to it per scenario.
 * Add `--from-dist` to run this version from its build too (`npm run build` first): the sources run through
 * tsx, whose output is not tsc's, and a comparison of a build with sources measures that difference as well.
 */
import { execFile } from 'node:child_process';
import { mkdirSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { promisify } from 'node:util';
import os from 'node:os';
import { parseArgs } from 'node:util';
import pg from 'pg';
import { startTestDatabase } from '../src/testing/index.js';
import { BASELINE, BENCH_TABLES, type BenchOps, baselineTargets, builtPgStore, type Target, targets } from './targets.js';
import { serverCpuSeconds } from './cpu.js';
import { rankOf, seededRandom } from './random.js';

const { values: args } = parseArgs({
  options: {
    url: { type: 'string' },
    redis: { type: 'string', default: process.env.REDIS_URL ?? 'redis://127.0.0.1:6379' },
    ops: { type: 'string', default: '20000' },
    rounds: { type: 'string' },
    workers: { type: 'string', default: '20' },
    only: { type: 'string' },
    keys: { type: 'string', default: '100' },
    distribution: { type: 'string', default: 'uniform' },
    seed: { type: 'string' },
    quick: { type: 'boolean', default: false },
    /** Print a `PROGRESS {json}` line after each measurement (the dashboard reads them). */
    progress: { type: 'boolean', default: false },
    /** Where to write the results, instead of bench/results/<time>.json. */
    out: { type: 'string' },
    'memory-ops': { type: 'string', default: '1000000' },
    /** Internal: the child process that measures memory on its own. */
    'memory-only': { type: 'boolean', default: false },
    /** A checkout of another version of this library (built): its PgStore targets run beside this one's. */
    baseline: { type: 'string' },
    /** This version's targets from its build (dist/), not its sources. */
    'from-dist': { type: 'boolean', default: false },
  },
});

const KEYS = Number(args.keys);
const DISTRIBUTION = args.distribution as 'uniform' | 'zipf';
if (!Number.isSafeInteger(KEYS) || KEYS < 1) throw new Error(`--keys must be a positive whole number, got ${args.keys}`);
if (DISTRIBUTION !== 'uniform' && DISTRIBUTION !== 'zipf') throw new Error(`--distribution must be uniform or zipf, got ${args.distribution}`);
const SEED = args.seed === undefined ? Math.floor(Math.random() * 2 ** 31) : Number(args.seed);
const OPS = Number(args.ops);
const WORKERS = Number(args.workers);
const WARMUP = Math.min(2000, Math.ceil(OPS / 10));
// --quick is one round unless --rounds says otherwise (the dashboard asks for a few, to show their spread).
const ROUNDS = args.rounds !== undefined ? Number(args.rounds) : args.quick ? 1 : 5;
if (!Number.isSafeInteger(ROUNDS) || ROUNDS < 1) throw new Error(`--rounds must be a positive whole number, got ${args.rounds}`);
const VALUE = 'x'.repeat(1024);
const keyAt = (i: number) => `key:${i % KEYS}`;
const KEY_NAMES = Array.from({ length: KEYS }, (_, i) => keyAt(i));


/** Key i is drawn with probability proportional to 1 / (i + 1)^0.99 (Zipf-like: a few hot keys, a long tail). */
function zipfCdf(keys: number): Float64Array {
  const cdf = new Float64Array(keys);
  let sum = 0;
  for (let i = 0; i < keys; i++) cdf[i] = sum += 1 / (i + 1) ** 0.99;
  for (let i = 0; i < keys; i++) cdf[i]! /= sum;
  return cdf;
}
const ZIPF = DISTRIBUTION === 'zipf' ? zipfCdf(KEYS) : undefined;

/**
 * The operations of one run, drawn as the Python library's benchmark draws them: each operation's kind
 * (`random() < readFraction`: a read) and its key (`random.choice(keys)`, or Zipf-skewed), from a seed.
 */
interface Plan {
  reads: Uint8Array;
  /** Index into KEY_NAMES: no string per operation (a million of them would weigh on the memory figure). */
  keys: Uint32Array;
}
function plan(seed: number, count: number, readFraction: number): Plan {
  const next = seededRandom(seed);
  const reads = new Uint8Array(count);
  const keys = new Uint32Array(count);
  for (let i = 0; i < count; i++) {
    reads[i] = next() < readFraction ? 1 : 0;
    const u = next();
    let index: number;
    if (!ZIPF) index = Math.floor(u * KEYS);
    else index = rankOf(ZIPF, u);
    keys[i] = index;
  }
  return { reads, keys };
}

interface Result {
  target: string;
  scenario: string;
  ops: number;
  opsPerSec: number;
  meanMs: number;
  p50Ms: number;
  p99Ms: number;
  failures: number;
  factoryCalls?: number;
  /** Share of reads the local tier answered (targets with one). */
  localHitRatio?: number;
  note?: string;
  /** ops/s of each round, when there were several. */
  rounds?: number[];
  /** CPU µs per operation of this process (the client). */
  clientUs?: number;
  /** CPU µs per operation of the PostgreSQL server's processes (undefined: not readable here). */
  serverUs?: number;
}

type Op = (ops: BenchOps, i: number) => Promise<unknown>;

/** A scenario: its operation `i` of a run drawn from `plan` (the same plan for every target of a round). */
interface Scenario {
  name: string;
  /** Share of reads; undefined for the counter, which draws nothing. */
  readFraction?: number;
  op: (plan: Plan) => Op;
}
const mixed = (p: Plan): Op => (o, i) => (p.reads[i] ? o.get(KEY_NAMES[p.keys[i]!]!) : o.set(KEY_NAMES[p.keys[i]!]!, VALUE));
const scenarios: Scenario[] = [
  { name: 'read-heavy 90/10', readFraction: 0.9, op: mixed },
  { name: 'write-heavy 10/90', readFraction: 0.1, op: mixed },
  { name: 'counter (incr one key)', op: () => (o) => o.incr('counter') },
];
const NO_PLAN: Plan = { reads: new Uint8Array(0), keys: new Uint32Array(0) };
/** The plan of a scenario in a round: derived from the run's seed, so every target meets the same operations. */
const planFor = (scenario: Scenario, round: number, count: number): Plan =>
  scenario.readFraction === undefined ? NO_PLAN : plan(SEED + round * 1000 + scenarios.indexOf(scenario), count, scenario.readFraction);

/** Runs `total` operations over `WORKERS` concurrent loops; latency per operation. */
async function drive(ops: BenchOps, op: Op, total: number, offset = 0): Promise<Omit<Result, 'target' | 'scenario'>> {
  const latencies = new Float64Array(total);
  let next = 0;
  const local = await ops.localStats?.();
  let failures = 0;
  const server = serverCpuSeconds();
  const client = process.cpuUsage();
  const started = performance.now();
  await Promise.all(
    Array.from({ length: WORKERS }, async () => {
      for (let i = next++; i < total; i = next++) {
        const t0 = performance.now();
        try {
          await op(ops, offset + i);
        } catch {
          failures++;
        }
        latencies[i] = performance.now() - t0;
      }
    }),
  );
  const seconds = (performance.now() - started) / 1000;
  const clientCpu = process.cpuUsage(client);
  const serverAfter = serverCpuSeconds();
  const sorted = Array.from(latencies).sort((a, b) => a - b);
  const mean = sorted.reduce((sum, v) => sum + v, 0) / total;
  return {
    ops: total,
    opsPerSec: total / seconds,
    meanMs: mean,
    p50Ms: sorted[Math.floor(total * 0.5)]!,
    p99Ms: sorted[Math.min(total - 1, Math.floor(total * 0.99))]!,
    failures,
    clientUs: (clientCpu.user + clientCpu.system) / total,
    ...(server !== undefined && serverAfter !== undefined ? { serverUs: ((serverAfter - server) * 1e6) / total } : {}),
    ...(local ? { localHitRatio: localHitRatio(local, await ops.localStats!()) } : {}),
  };
}

/** Share of the reads between two readings that the local tier answered. */
function localHitRatio(before: { hits: number; reads: number }, after: { hits: number; reads: number }): number {
  const reads = after.reads - before.reads;
  return reads === 0 ? 0 : (after.hits - before.hits) / reads;
}

/** {@link drive} without latencies: a million of them would be the bench's own memory, not the store's. */
async function run(ops: BenchOps, op: Op, total: number): Promise<void> {
  let next = 0;
  await Promise.all(
    Array.from({ length: WORKERS }, async () => {
      for (let i = next++; i < total; i = next++) await op(ops, i);
    }),
  );
}

/** 20 callers at once on one cold key with a 200 ms factory: how many factory calls, how long. */
async function stampede(ops: BenchOps): Promise<Omit<Result, 'target' | 'scenario'>> {
  let calls = 0;
  const key = `cold:${Date.now()}`;
  const latencies: number[] = [];
  let failures = 0;
  const started = performance.now();
  await Promise.all(
    Array.from({ length: WORKERS }, async () => {
      const t0 = performance.now();
      try {
        await ops.getOrSet(key, async () => {
          calls++;
          await new Promise((resolve) => setTimeout(resolve, 200));
          return VALUE;
        });
      } catch {
        failures++;
      }
      latencies.push(performance.now() - t0);
    }),
  );
  const seconds = (performance.now() - started) / 1000;
  latencies.sort((a, b) => a - b);
  return {
    ops: WORKERS,
    opsPerSec: WORKERS / seconds,
    meanMs: latencies.reduce((s, v) => s + v, 0) / latencies.length,
    p50Ms: latencies[Math.floor(latencies.length / 2)]!,
    p99Ms: latencies[latencies.length - 1]!,
    failures,
    factoryCalls: calls,
  };
}

interface Opened {
  target: Target;
  ops: BenchOps;
}

/** Writes every key once, 100 at a time. */
async function populate(ops: BenchOps): Promise<void> {
  for (let i = 0; i < KEYS; i += 100) {
    await Promise.all(KEY_NAMES.slice(i, i + 100).map((key) => ops.set(key, VALUE)));
  }
}

/** Opens every target and writes its keys; a target that cannot run here is reported as skipped. */
async function openAll(list: Target[], skipped: Record<string, string>): Promise<Opened[]> {
  const opened: Opened[] = [];
  for (const target of list) {
    try {
      const ops = await target.open();
      await ops.clear();
      await populate(ops);
      opened.push({ target, ops });
    } catch (error) {
      skipped[target.name] = `skipped: ${(error as Error).message}`;
      console.log(`${target.name}: ${skipped[target.name]}`);
    }
  }
  return opened;
}

/** The round whose ops/s is the median of the rounds (its latencies come with it). */
function median(runs: Result[]): Result {
  const sorted = [...runs].sort((a, b) => a.opsPerSec - b.opsPerSec);
  const cpu = (of: (r: Result) => number | undefined) => {
    const values = runs.map(of).filter((v): v is number => v !== undefined).sort((a, b) => a - b);
    return values.length === 0 ? undefined : values[Math.floor((values.length - 1) / 2)];
  };
  const clientUs = cpu((r) => r.clientUs);
  const serverUs = cpu((r) => r.serverUs);
  return {
    ...sorted[Math.floor((sorted.length - 1) / 2)]!,
    rounds: runs.map((r) => Math.round(r.opsPerSec)),
    ...(clientUs === undefined ? {} : { clientUs }),
    ...(serverUs === undefined ? {} : { serverUs }),
  };
}

/** Every scenario on every target, round after round; then the stampede once per target. */
async function runAll(opened: Opened[], beforeRound: () => Promise<void>): Promise<Result[]> {
  const runs = new Map<string, Result[]>();
  progress.total = opened.length * (ROUNDS * scenarios.length + 1);
  for (let round = 1; round <= ROUNDS; round++) {
    await beforeRound();
    // Each round starts with another target: the one measured right after the vacuum (or after the
    // previous scenario's last target) measured lower, whichever it was; the median leaves that round out.
    const shift = (round - 1) % Math.max(1, opened.length);
    const order = [...opened.slice(shift), ...opened.slice(0, shift)];
    const plans = new Map(scenarios.map((scenario) => [scenario, planFor(scenario, round, WARMUP + OPS)]));
    for (const scenario of scenarios) {
      for (const { target, ops } of order) {
        const op = scenario.op(plans.get(scenario)!);
        await drive(ops, op, WARMUP);
        const measured = await drive(ops, op, OPS, WARMUP);
        const note = scenario.name.startsWith('counter') && !target.atomicIncr ? 'get-then-set, not atomic' : undefined;
        const key = `${target.name}\n${scenario.name}`;
        runs.set(key, [...(runs.get(key) ?? []), { target: target.name, scenario: scenario.name, ...measured, ...(note ? { note } : {}) }]);
        stepDone(target.name, scenario.name);
      }
    }
    console.log(`round ${round} of ${ROUNDS} done`);
  }
  const results = [...runs.values()].map(median);
  for (const { target, ops } of opened) {
    results.push({
      target: target.name,
      scenario: 'stampede (20 callers, 200 ms factory)',
      ...(await stampede(ops)),
      ...(target.stampedeSafe ? {} : { note: 'naive get-then-set' }),
    });
    stepDone(target.name, 'stampede');
  }
  return results;
}

/** RSS before and after many operations on PgStore with its local tier, through Keyv (read-heavy mix). */
async function memory(target: Target, total: number) {
  const ops = await target.open();
  try {
    await populate(ops);
    const readHeavy = scenarios[0]!;
    await run(ops, readHeavy.op(planFor(readHeavy, 0, 20_000)), 20_000);
    const measured = readHeavy.op(planFor(readHeavy, 1, total));
    global.gc?.();
    const before = process.memoryUsage();
    await run(ops, measured, total);
    global.gc?.();
    const after = process.memoryUsage();
    return {
      target: target.name,
      operations: total,
      rssBeforeMb: before.rss / 2 ** 20,
      rssAfterMb: after.rss / 2 ** 20,
      // RSS also moves with how much heap V8 chooses to keep; live objects after a full GC show a leak.
      heapUsedBeforeMb: before.heapUsed / 2 ** 20,
      heapUsedAfterMb: after.heapUsed / 2 ** 20,
    };
  } finally {
    await ops.clear().catch(() => {});
    await ops.close();
  }
}

/**
 * The memory line runs in a process of its own that does nothing else: in this one, the heap V8 grew
 * for the targets measured before would be counted against the target measured now.
 */
async function memoryInChild(url: string): Promise<Awaited<ReturnType<typeof memory>>> {
  const { stdout } = await promisify(execFile)(
    process.execPath,
    [...process.execArgv, fileURLToPath(import.meta.url), '--memory-only', '--url', url, '--memory-ops', args['memory-ops']!],
    { maxBuffer: 1 << 20 },
  );
  const line = stdout.split('\n').find((l) => l.startsWith('MEMORY '));
  if (!line) throw new Error(`the memory child printed no result:\n${stdout}`);
  return JSON.parse(line.slice('MEMORY '.length));
}

/** Measurements done and to do, for `--progress`. */
const progress = { done: 0, total: 0 };
function stepDone(target: string, scenario: string): void {
  progress.done++;
  if (args.progress) console.log(`PROGRESS ${JSON.stringify({ ...progress, target, scenario })}`);
}

const fmt = (n: number, digits = 0) => n.toLocaleString('en-US', { maximumFractionDigits: digits, minimumFractionDigits: digits });

async function main() {
  if (args['memory-only']) {
    // The local tier is what holds memory: the memory line measures the store with it on.
    const target = targets(args.url!, args.redis!).find((t) => t.name.includes('localCache'))!;
    console.log(`MEMORY ${JSON.stringify(await memory(target, Number(args['memory-ops'])))}`);
    return;
  }
  const database = await startTestDatabase({ url: args.url, log: (line) => console.log(`[db] ${line}`) });
  const client = new pg.Client(database.url);
  await client.connect();
  const version = (await client.query<{ server_version: string }>('SHOW server_version')).rows[0]!.server_version;
  // Fresh tables each run, vacuumed before each round: every target meets the same table state.
  // (Without this, dead rows of earlier runs pile up where autovacuum is off, as on this machine.)
  for (const table of BENCH_TABLES) await client.query(`DROP TABLE IF EXISTS public.${table}, public.${table}_locks, public.${table}_usage, public.${table}_cap`);
  const vacuum = async () => {
    for (const table of BENCH_TABLES) await client.query(`VACUUM public.${table}`).catch(() => {}); // absent: target skipped
  };
  console.log(`PostgreSQL ${version} (${database.source}), Node ${process.version}, ${os.cpus().length} cores, ${os.cpus()[0]?.model}`);
  console.log(
    `seed ${SEED} (--seed ${SEED} draws the same operations), ${KEYS} keys (${DISTRIBUTION}), 1 KiB values, ${WORKERS} workers, ${fmt(OPS)} operations per scenario after ${fmt(WARMUP)} warm-up, ` +
      `median of ${ROUNDS} round${ROUNDS === 1 ? '' : 's'} (every target once per round)\n`,
  );

  const all: Result[] = [];
  const skipped: Record<string, string> = {};
  try {
    const self = args['from-dist'] ? await builtPgStore(fileURLToPath(new URL('..', import.meta.url))) : undefined;
    // One unmeasured pass first, so the first target measured does not pay for V8's warm-up.
    const first = targets(database.url, args.redis!, self)[0]!;
    const warm = await first.open();
    await populate(warm);
    for (const scenario of scenarios) await drive(warm, scenario.op(planFor(scenario, 0, OPS)), OPS);
    await warm.clear();
    await warm.close();

    const baseline = args.baseline ? await baselineTargets(database.url, path.resolve(args.baseline)) : [];
    const chosen = [...targets(database.url, args.redis!, self), ...baseline].filter((target) => !args.only || args.only.split(',').some((o) => target.name.includes(o)));
    const opened = await openAll(chosen, skipped);
    try {
      all.push(...(await runAll(opened, vacuum)));
    } finally {
      for (const { ops } of opened) {
        await ops.clear().catch(() => {});
        await ops.close();
      }
    }
    report(all, skipped);
    let mem: Awaited<ReturnType<typeof memory>> | undefined;
    if (!args.quick) {
      mem = await memoryInChild(database.url);
      console.log(
        `\nMemory (a process of its own), ${mem.target}: RSS ${fmt(mem.rssBeforeMb, 1)} MB before and ${fmt(mem.rssAfterMb, 1)} MB after ${fmt(mem.operations)} operations (${fmt(mem.rssAfterMb - mem.rssBeforeMb, 1)} MB); ` +
          `live heap after a full GC ${fmt(mem.heapUsedBeforeMb, 1)} MB and ${fmt(mem.heapUsedAfterMb, 1)} MB.`,
      );
    }
    mkdirSync(new URL('./results/', import.meta.url), { recursive: true });
    const file = args.out ? pathToFileURL(path.resolve(args.out)) : new URL(`./results/${new Date().toISOString().replace(/[:.]/g, '-')}.json`, import.meta.url);
    writeFileSync(file, JSON.stringify({ finishedAt: new Date().toISOString(), ops: OPS, seed: SEED, keys: KEYS, distribution: DISTRIBUTION, rounds: ROUNDS, postgres: version, source: database.source, node: process.version, cores: os.cpus().length, results: all, skipped, memory: mem }, null, 2));
    console.log(`\nWritten to ${file.pathname}`);
  } finally {
    await client.end();
    await database.stop();
  }
}

function report(results: Result[], skipped: Record<string, string>) {
  const byScenario = new Map<string, Result[]>();
  for (const r of results) byScenario.set(r.scenario, [...(byScenario.get(r.scenario) ?? []), r]);
  for (const [scenario, rows] of byScenario) {
    const peer = (name: string) => rows.find((r) => r.target === name)?.opsPerSec;
    const pgPeer = peer('@keyv/postgres');
    const redisPeer = peer('@keyv/redis');
    console.log(`\n${scenario}`);
    console.table(
      rows.map((r) => ({
        target: r.target,
        'ops/s': fmt(r.opsPerSec),
        'mean ms': fmt(r.meanMs, 2),
        'p50 ms': fmt(r.p50Ms, 2),
        'p99 ms': fmt(r.p99Ms, 2),
        'client µs/op': r.clientUs === undefined ? '-' : fmt(r.clientUs, 1),
        'server µs/op': r.serverUs === undefined ? '-' : fmt(r.serverUs, 1),
        failures: r.failures,
        ...(ROUNDS > 1 ? { 'rounds ops/s': r.rounds?.map((v) => fmt(v / 1000, 0) + 'k').join(' ') ?? '' } : {}),
        ...(r.factoryCalls !== undefined ? { 'factory calls': r.factoryCalls } : {}),
        ...(r.localHitRatio !== undefined ? { 'local hits': `${fmt(r.localHitRatio * 100, 1)}%` } : {}),
        'x @keyv/postgres': pgPeer ? fmt(r.opsPerSec / pgPeer, 2) : '-',
        'x @keyv/redis': redisPeer ? fmt(r.opsPerSec / redisPeer, 2) : skipped['@keyv/redis'] ? 'skipped' : '-',
        note: r.note ?? '',
      })),
    );
    const compared = rows.filter((r) => rows.some((b) => b.target === r.target + BASELINE));
    if (compared.length > 0) {
      console.log(`${scenario}: this version / baseline (ops/s of the medians; median of the per-round ratios; CPU µs per op client, server)`);
      console.table(
        compared.map((r) => {
          const b = rows.find((x) => x.target === r.target + BASELINE)!;
          const perRound = (r.rounds ?? []).map((v, i) => v / (b.rounds?.[i] ?? Number.NaN)).sort((x, y) => x - y);
          const ratio = (x: number | undefined, y: number | undefined) => (x === undefined || y === undefined ? '-' : fmt(x / y, 2));
          return {
            target: r.target,
            'ops/s': ratio(r.opsPerSec, b.opsPerSec),
            'per round': perRound.length > 0 ? fmt(perRound[Math.floor((perRound.length - 1) / 2)]!, 2) : '-',
            'client CPU': ratio(r.clientUs, b.clientUs),
            'server CPU': ratio(r.serverUs, b.serverUs),
          };
        }),
      );
    }
  }
}

main().catch((error) => {
  console.error(error);
  process.exit(1);
});
