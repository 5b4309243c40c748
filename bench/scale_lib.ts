/**
 * Helpers of the scale benchmark (bench/scale.ts): the load driver, key draws, latency percentiles, and what
 * the server spends for this bench alone (its connections, found by their client ports; their backends' CPU).
 *
 * bench/run.ts has a driver of its own, but it runs its benchmark when imported, so the driver is written
 * again here (the same shape: N async workers taking operation numbers from one shared counter).
 */
import { readdirSync, readFileSync, readlinkSync } from 'node:fs';
import type pg from 'pg';
import { serverCpuSeconds } from './cpu.js';
import { rankOf, seededRandom } from './random.js';

// ---------------------------------------------------------------------------------------------------------------
// Numbers and text

export const fmt = (n: number, digits = 0) => n.toLocaleString('en-US', { maximumFractionDigits: digits, minimumFractionDigits: digits });
export const mb = (bytes: number) => `${fmt(bytes / 2 ** 20, 1)} MB`;
export const pct = (ratio: number) => `${(ratio * 100).toFixed(1)}%`;
export const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));

/** `1e6`, `100000`, `10k`, `1M`, `16MiB`-style sizes in a list: `--sizes 1e3,1e5`. */
export function parseCount(text: string, what: string): number {
  const match = /^\s*(\d+(?:\.\d+)?(?:e\d+)?)\s*(k|m|kib|mib|gib|kb|mb|gb|b)?\s*$/i.exec(text);
  const units: Record<string, number> = { '': 1, b: 1, k: 1e3, m: 1e6, kb: 1024, kib: 1024, mb: 1024 ** 2, mib: 1024 ** 2, gb: 1024 ** 3, gib: 1024 ** 3 };
  const n = match ? Number(match[1]) * units[(match[2] ?? '').toLowerCase()]! : Number.NaN;
  if (!Number.isSafeInteger(n) || n < 1) throw new Error(`${what}: expected a positive whole number such as 1e5, 10k or 16MiB, got ${JSON.stringify(text)}`);
  return n;
}
export const parseList = (text: string, what: string) => text.split(',').filter((s) => s.trim() !== '').map((s) => parseCount(s, what));

/** `1000` -> `10^3`, `20000` -> `2x10^4`; `1048576` -> `1 MiB` with bytes. */
export function countLabel(n: number): string {
  const exp = Math.floor(Math.log10(n));
  const mant = n / 10 ** exp;
  if (Number.isInteger(mant) && exp >= 3) return mant === 1 ? `10^${exp}` : `${mant}x10^${exp}`;
  return fmt(n);
}
export function bytesText(n: number): string {
  if (n >= 2 ** 20 && n % 2 ** 20 === 0) return `${n / 2 ** 20} MiB`;
  if (n >= 1024 && n % 1024 === 0) return `${n / 1024} KiB`;
  return `${n} B`;
}

export function percentile(sorted: ArrayLike<number>, p: number): number {
  if (sorted.length === 0) return Number.NaN;
  return sorted[Math.min(sorted.length - 1, Math.floor((sorted.length * p) / 100))]!;
}
export function median(values: number[]): number {
  const sorted = values.filter((v) => Number.isFinite(v)).sort((a, b) => a - b);
  return sorted.length === 0 ? Number.NaN : sorted[Math.floor((sorted.length - 1) / 2)]!;
}

// ---------------------------------------------------------------------------------------------------------------
// Key draws

/** Draws key indexes in [0, n): uniform, or Zipf(s) by rank with ranks scattered over the key space. */
export interface KeyDraw {
  readonly n: number;
  readonly name: 'uniform' | 'zipf';
  /** An index from u in [0, 1). */
  at(u: number): number;
}

export function uniformDraw(n: number): KeyDraw {
  return { n, name: 'uniform', at: (u) => Math.min(n - 1, Math.floor(u * n)) };
}

/**
 * Zipf: rank r (0-based) has probability proportional to 1 / (r + 1)^s. Rank r is key (r * a + b) mod n, with
 * a coprime to n: a bijection, so the hot keys are spread over the key space (and the B-tree), not its first rows.
 */
export function zipfDraw(n: number, s: number, seed: number): KeyDraw {
  const cdf = new Float64Array(n);
  let sum = 0;
  for (let i = 0; i < n; i++) cdf[i] = sum += 1 / (i + 1) ** s;
  for (let i = 0; i < n; i++) cdf[i]! /= sum;
  let a = (2654435761 % n) || 1;
  while (gcd(a, n) !== 1) a++;
  const b = Math.floor(seededRandom(seed)() * n);
  return {
    n,
    name: 'zipf',
    at(u) {
      return (rankOf(cdf, u) * a + b) % n; // < n^2 <= 2^53 for n up to ~9e7
    },
  };
}
function gcd(x: number, y: number): number {
  while (y) [x, y] = [y, x % y];
  return x;
}

/** A run's operations: each one a read or a write (`random() < readFraction`) and a key index. */
export interface Plan {
  reads: Uint8Array;
  keys: Uint32Array;
}
export function makePlan(seed: number, count: number, readFraction: number, draw: KeyDraw): Plan {
  const next = seededRandom(seed);
  const reads = new Uint8Array(count);
  const keys = new Uint32Array(count);
  for (let i = 0; i < count; i++) {
    reads[i] = next() < readFraction ? 1 : 0;
    keys[i] = draw.at(next());
  }
  return { reads, keys };
}

/** A 32-bit mix of numbers, for per-cell seeds derived from the run's seed. */
export function mixSeed(...parts: number[]): number {
  let h = 0x811c9dc5;
  for (const p of parts) {
    h = Math.imul(h ^ (p >>> 0), 0x01000193);
    h = Math.imul(h ^ Math.floor(p / 2 ** 32), 0x01000193);
  }
  return h >>> 0;
}

/** `length` printable characters (base64 alphabet) from a seed: incompressible for TOAST, no JSON escaping. */
export function randomText(seed: number, length: number): string {
  return randomBytes(seed, Math.ceil((length * 3) / 4) + 3).toString('base64').slice(0, length);
}
export function randomBytes(seed: number, length: number): Buffer {
  const next = seededRandom(seed);
  const out = Buffer.allocUnsafe(length);
  let i = 0;
  for (; i + 4 <= length; i += 4) out.writeUInt32LE(Math.floor(next() * 2 ** 32), i);
  for (; i < length; i++) out[i] = Math.floor(next() * 256);
  return out;
}

// ---------------------------------------------------------------------------------------------------------------
// The server: this process's connections and their backends' CPU

/** Local TCP ports of the sockets the processes `pids` hold open (Linux /proc; empty elsewhere). */
export function localPortsOf(pids: readonly number[]): Set<number> {
  const inodes = new Set<string>();
  for (const pid of pids) {
    let fds: string[];
    try {
      fds = readdirSync(`/proc/${pid}/fd`);
    } catch {
      continue;
    }
    for (const fd of fds) {
      try {
        const link = readlinkSync(`/proc/${pid}/fd/${fd}`);
        if (link.startsWith('socket:[')) inodes.add(link.slice(8, -1));
      } catch {
        // closed meanwhile
      }
    }
  }
  const ports = new Set<number>();
  for (const file of ['/proc/net/tcp', '/proc/net/tcp6']) {
    let text: string;
    try {
      text = readFileSync(file, 'latin1');
    } catch {
      continue;
    }
    for (const line of text.split('\n').slice(1)) {
      const cols = line.trim().split(/\s+/);
      if (cols.length < 10 || !inodes.has(cols[9]!)) continue;
      ports.add(parseInt(cols[1]!.split(':')[1]!, 16));
    }
  }
  return ports;
}

export interface Backend {
  pid: number;
  application_name: string;
  state: string | null;
  backend_type: string;
}

/**
 * The server connections of the processes `pids` (default: this one), told apart from everyone else's on a
 * shared server by their client ports. Needs TCP (a Unix socket's client_port is -1) and the server on this machine
 * only for the CPU figure, not for this one. The admin connection asking is left out.
 */
export async function backendsOf(admin: pg.ClientBase | pg.Pool, pids: readonly number[] = [process.pid]): Promise<Backend[]> {
  const ports = [...localPortsOf(pids)];
  if (ports.length === 0) return [];
  const { rows } = await admin.query<Backend>(
    `SELECT pid, coalesce(application_name, '') AS application_name, state, backend_type FROM pg_stat_activity
     WHERE pid <> pg_backend_pid() AND client_port = ANY($1::int[]) AND client_addr IS NOT NULL`,
    [ports],
  );
  return rows;
}

/** CPU seconds so far of the processes `pids` (/proc/<pid>/stat user + system; 0 for one that is gone). */
export function cpuSecondsOf(pids: readonly number[]): number {
  let ticks = 0;
  for (const pid of pids) {
    try {
      const stat = readFileSync(`/proc/${pid}/stat`, 'latin1');
      const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
      ticks += Number(fields[11]) + Number(fields[12]);
    } catch {
      // ended
    }
  }
  return ticks / 100;
}

/**
 * CPU meters around a measurement: this process's (client), every postgres process on this machine (server, as
 * bench/run.ts: includes other users of a shared server), and the backends of this process's own connections
 * (`own`: the same figure without the others; a backend that ended meanwhile takes its share with it).
 */
export class CpuMeter {
  #client = process.cpuUsage();
  #server = serverCpuSeconds();
  /** CPU seconds of each own backend at the start. */
  #own = new Map<number, number>();

  static async start(admin: pg.ClientBase | pg.Pool | undefined): Promise<CpuMeter> {
    const meter = new CpuMeter();
    if (admin) for (const { pid } of await backendsOf(admin)) meter.#own.set(pid, cpuSecondsOf([pid]));
    meter.#client = process.cpuUsage();
    meter.#server = serverCpuSeconds();
    return meter;
  }

  /** µs per operation: client, server (all postgres), own backends. */
  async stop(admin: pg.ClientBase | pg.Pool | undefined, ops: number): Promise<{ clientUs: number; serverUs: number | null; ownServerUs: number | null }> {
    const client = process.cpuUsage(this.#client);
    const server = serverCpuSeconds();
    let ownUs: number | null = null;
    if (admin) {
      const pids = (await backendsOf(admin)).map((b) => b.pid);
      // A backend opened during the measurement counts from its start (its connection's cost included).
      let seconds = 0;
      for (const pid of pids) seconds += cpuSecondsOf([pid]) - (this.#own.get(pid) ?? 0);
      ownUs = pids.length === 0 ? null : (seconds * 1e6) / Math.max(1, ops);
    }
    return {
      clientUs: (client.user + client.system) / Math.max(1, ops),
      serverUs: server === undefined || this.#server === undefined ? null : ((server - this.#server) * 1e6) / Math.max(1, ops),
      ownServerUs: ownUs,
    };
  }
}

// ---------------------------------------------------------------------------------------------------------------
// The driver

export interface Driven {
  ops: number;
  seconds: number;
  opsPerSec: number;
  p50Ms: number;
  p99Ms: number;
  maxMs: number;
  failures: number;
  firstFailure?: string;
}

/**
 * Runs operations `offset .. offset + total - 1` over `workers` concurrent loops (each takes the next number
 * from one counter), timing each. `stop()` true ends the run early (what was done is reported).
 */
export async function drive(workers: number, total: number, op: (i: number) => Promise<unknown>, stop: () => boolean = () => false, offset = 0): Promise<Driven> {
  const latencies = new Float64Array(total);
  let next = 0;
  let done = 0;
  let failures = 0;
  let firstFailure: string | undefined;
  const started = performance.now();
  await Promise.all(
    Array.from({ length: workers }, async () => {
      for (let i = next++; i < total && !stop(); i = next++) {
        const t0 = performance.now();
        try {
          await op(offset + i);
        } catch (error) {
          failures++;
          firstFailure ??= (error as Error).message;
        }
        latencies[done++] = performance.now() - t0;
      }
    }),
  );
  const seconds = (performance.now() - started) / 1000;
  const sorted = latencies.subarray(0, done).sort();
  return {
    ops: done,
    seconds,
    opsPerSec: done / seconds,
    p50Ms: percentile(sorted, 50),
    p99Ms: percentile(sorted, 99),
    maxMs: done === 0 ? Number.NaN : sorted[done - 1]!,
    failures,
    ...(firstFailure === undefined ? {} : { firstFailure }),
  };
}

/**
 * Steady single-key traffic beside bulk calls (the bulk section's foreground). Every call's start and end are kept;
 * a bulk call's window (`window()`) then counts each call that overlapped it, so a call issued just before a bulk
 * call and held by it counts against that bulk call.
 */
export class Foreground {
  readonly #starts: number[] = [];
  readonly #ends: number[] = [];
  readonly #windows = new Map<string, Array<[number, number]>>();
  /** Blocks of this process's event loop over {@link Foreground.BLOCK_MS}: when each began, and how long it lasted. */
  readonly #blockAt: number[] = [];
  readonly #blockMs: number[] = [];
  #ticker: NodeJS.Timeout | undefined;
  #stopped = false;
  #running: Promise<void> | undefined;
  failures = 0;

  /** A timer due every 5 ms that fires this much later saw the event loop blocked (by the bulk call's own work, or GC). */
  static readonly BLOCK_MS = 20;

  /** `workers` loops of `op` (a single-key get), each pausing `pauseMs` after a call: steady traffic, not a flood. */
  start(workers: number, pauseMs: number, op: () => Promise<unknown>): void {
    let last = performance.now();
    this.#ticker = setInterval(() => {
      const now = performance.now();
      if (now - last > Foreground.BLOCK_MS) {
        this.#blockAt.push(last);
        this.#blockMs.push(now - last);
      }
      last = now;
    }, 5);
    this.#running = Promise.all(
      Array.from({ length: workers }, async () => {
        while (!this.#stopped) {
          const t0 = performance.now();
          try {
            await op();
          } catch {
            this.failures++;
          }
          this.#starts.push(t0);
          this.#ends.push(performance.now());
          if (pauseMs > 0) await sleep(pauseMs);
        }
      }),
    ).then(() => undefined);
  }

  /** Runs `fn` as a window of `name` (several windows may share a name: repetitions of one bulk call). */
  async window<T>(name: string, fn: () => Promise<T>): Promise<T> {
    const t0 = performance.now();
    try {
      return await fn();
    } finally {
      this.#windows.set(name, [...(this.#windows.get(name) ?? []), [t0, performance.now()]]);
    }
  }

  async stop(): Promise<void> {
    this.#stopped = true;
    clearInterval(this.#ticker);
    await this.#running;
  }

  /** The longest block of the event loop that overlapped a window of `name` (0: none over {@link Foreground.BLOCK_MS}). */
  longestBlock(name: string): number {
    let longest = 0;
    for (const [a, b] of this.#windows.get(name) ?? []) {
      for (let i = 0; i < this.#blockAt.length; i++) {
        const at = this.#blockAt[i]!;
        if (at < b && at + this.#blockMs[i]! > a) longest = Math.max(longest, this.#blockMs[i]!);
      }
    }
    return longest;
  }

  /** The calls that overlapped any window of `name` (each once): count, p50, p99, max, how many took over `limitMs`. */
  summary(name: string, limitMs: number): { calls: number; p50Ms: number; p99Ms: number; maxMs: number; over: number; loopBlockMs: number } {
    const n = this.#starts.length;
    const order = Array.from({ length: n }, (_, i) => i).sort((a, b) => this.#starts[a]! - this.#starts[b]!);
    let longest = 0;
    for (let i = 0; i < n; i++) longest = Math.max(longest, this.#ends[i]! - this.#starts[i]!);
    const picked = new Set<number>();
    for (const [a, b] of this.#windows.get(name) ?? []) {
      // First call that could still be running at a: started at a - longest or later.
      let lo = 0;
      let hi = n;
      while (lo < hi) {
        const mid = (lo + hi) >>> 1;
        if (this.#starts[order[mid]!]! < a - longest) lo = mid + 1;
        else hi = mid;
      }
      for (let k = lo; k < n && this.#starts[order[k]!]! < b; k++) if (this.#ends[order[k]!]! > a) picked.add(order[k]!);
    }
    const sorted = Float64Array.from([...picked].map((i) => this.#ends[i]! - this.#starts[i]!)).sort();
    let over = 0;
    for (const v of sorted) if (v > limitMs) over++;
    return {
      calls: sorted.length,
      p50Ms: percentile(sorted, 50),
      p99Ms: percentile(sorted, 99),
      maxMs: sorted.length ? sorted[sorted.length - 1]! : Number.NaN,
      over,
      loopBlockMs: this.longestBlock(name),
    };
  }
}
