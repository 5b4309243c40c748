/**
 * The Python library itself (../shared/seed/python, cache-postgres 0.2.0) as a peer process, for the tests
 * of what both libraries share at run time (locks). It needs a Python 3.10+ with psycopg 3 and its pool
 * (.ci/run installs Debian's python3-psycopg and python3-psycopg-pool) and the seed's source: found at
 * CACHE_POSTGRES_PYTHON_SEED, ../shared/seed/python/src or /work/shared/seed/python/src.
 */
import { type ChildProcessWithoutNullStreams, spawn, spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import path from 'node:path';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';

const ROOT = fileURLToPath(new URL('../..', import.meta.url));

/** Where the seed's `cache_postgres` package is, or undefined. */
function seedSource(): string | undefined {
  const candidates = [process.env['CACHE_POSTGRES_PYTHON_SEED'], path.join(ROOT, '../shared/seed/python/src'), '/work/shared/seed/python/src'];
  return candidates.find((dir): dir is string => dir !== undefined && existsSync(path.join(dir, 'cache_postgres', '__init__.py')));
}

let found: { python: string; source: string } | string | undefined;

/** The Python and seed to run, or why they cannot run (the reason a test skips with). */
export function pythonPeer(): { python: string; source: string } | string {
  if (found) return found;
  const source = seedSource();
  if (!source) return (found = 'the Python library\'s source (../shared/seed/python/src, or CACHE_POSTGRES_PYTHON_SEED) was not found');
  // Debian's Python first: another one first on PATH (pyenv) does not see Debian's psycopg packages.
  for (const python of ['/usr/bin/python3', 'python3']) {
    const probe = spawnSync(python, ['-c', 'import psycopg, psycopg_pool, cache_postgres'], { env: { ...process.env, PYTHONPATH: source }, encoding: 'utf8' });
    if (probe.status === 0) return (found = { python, source });
  }
  return (found = 'no python3 with psycopg 3 and psycopg_pool (apt-get install python3-psycopg python3-psycopg-pool) was found');
}

/** Python that opens the library on `table` (the store's own, already created) and runs `body`, printing JSON lines. */
function program(url: string, table: string, body: string): string {
  return `
import json, sys, time
from cache_postgres import PostgresCache, PostgresCacheOptions
cache = PostgresCache(PostgresCacheOptions(dsn=${JSON.stringify(url)}, table=${JSON.stringify(table)}, enable_expiration_scan=False, pool_min_size=1, pool_max_size=2))
def say(value):
    print(json.dumps(value), flush=True)
${body}
cache.close()
`;
}

/**
 * Runs one call of the library and resolves with what it printed (JSON). Asynchronous: a blocked event
 * loop would stall what the test runs meanwhile (a lock's renewal timer).
 */
export async function pythonCall(url: string, table: string, expression: string): Promise<unknown> {
  const peer = pythonPeer();
  if (typeof peer === 'string') throw new Error(peer);
  const child = spawn(peer.python, ['-c', program(url, table, `say(${expression})`)], { env: { ...process.env, PYTHONPATH: peer.source } });
  let stdout = '';
  let stderr = '';
  child.stdout.on('data', (chunk) => (stdout += chunk));
  child.stderr.on('data', (chunk) => (stderr += chunk));
  const timer = setTimeout(() => child.kill('SIGKILL'), 30_000);
  const code = await new Promise<number | null>((resolve) => child.on('close', resolve));
  clearTimeout(timer);
  if (code !== 0) throw new Error(`python failed (${code}): ${stderr}`);
  return JSON.parse(stdout.trim().split('\n').pop()!);
}

/** A long-running Python process: `lines` yields what it prints, `send` writes a line to its stdin. */
export interface PythonProcess {
  readonly child: ChildProcessWithoutNullStreams;
  /** Resolves with the next JSON line it prints. */
  next(): Promise<unknown>;
  send(line: string): void;
}

/** Starts `body` (Python, with `cache`, `say` and `sys.stdin` at hand) as a process of its own. */
export function pythonProcess(url: string, table: string, body: string): PythonProcess {
  const peer = pythonPeer();
  if (typeof peer === 'string') throw new Error(peer);
  const child = spawn(peer.python, ['-c', program(url, table, body)], { env: { ...process.env, PYTHONPATH: peer.source }, stdio: ['pipe', 'pipe', 'pipe'] });
  let stderr = '';
  child.stderr.on('data', (chunk) => (stderr += chunk));
  const queue: unknown[] = [];
  const waiting: Array<{ resolve: (value: unknown) => void; reject: (error: Error) => void }> = [];
  createInterface({ input: child.stdout }).on('line', (line) => {
    const value = JSON.parse(line) as unknown;
    const waiter = waiting.shift();
    if (waiter) waiter.resolve(value);
    else queue.push(value);
  });
  child.on('exit', (code, signal) => {
    for (const waiter of waiting.splice(0)) waiter.reject(new Error(`python exited (${code ?? signal}): ${stderr}`));
  });
  return {
    child,
    next: () => (queue.length > 0 ? Promise.resolve(queue.shift()) : new Promise((resolve, reject) => waiting.push({ resolve, reject }))),
    send: (line) => child.stdin.write(`${line}\n`),
  };
}
