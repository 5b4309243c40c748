/**
 * What we know about another process (alive, started when, running what) and how to stop a
 * PostgreSQL server we find by its data directory. Linux reads /proc; elsewhere `ps` answers.
 */
import { execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';

const PROC = process.platform === 'linux';

/** `/proc/<pid>/stat` fields after the command name: [state, ppid, ..., starttime at index 19]. */
function statFields(pid: number): string[] | undefined {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    return stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  } catch {
    return undefined;
  }
}

/** True while `pid` is a process that has not exited (a zombie has exited). */
export function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code !== 'EPERM') return false;
  }
  if (PROC) {
    const state = statFields(pid)?.[0];
    return state !== undefined && state !== 'Z' && state !== 'X';
  }
  return true;
}

/**
 * When `pid` started, in clock ticks since boot (Linux), so a recorded pid that was reused by a later
 * process is told apart; undefined where unknown.
 */
export function startTime(pid: number): string | undefined {
  return PROC ? statFields(pid)?.[19] : undefined;
}

/** The arguments of a live process (Linux), or its command line as one string (elsewhere); undefined when gone. */
function commandLine(pid: number): string[] | undefined {
  try {
    if (PROC) {
      const args = readFileSync(`/proc/${pid}/cmdline`, 'utf8').split('\0');
      if (args.at(-1) === '') args.pop();
      return args.length > 0 ? args : undefined; // a zombie has none
    }
    const line = execFileSync('ps', ['-p', String(pid), '-o', 'command='], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] }).trim();
    return line ? [line] : undefined;
  } catch {
    return undefined;
  }
}

/** True when `pid` is a PostgreSQL server (`postgres ... -D <dataDir>`) of that data directory. */
export function isPostgresOf(pid: number, dataDir: string): boolean {
  const args = commandLine(pid);
  if (!args?.[0]) return false;
  if (args.length === 1) return /(^|\/)postgres /.test(args[0]) && args[0].includes(` -D ${dataDir}`);
  return path.basename(args[0]) === 'postgres' && args.some((arg, i) => arg === dataDir && args[i - 1] === '-D');
}

/**
 * Stops the server whose `postmaster.pid` is in `dataDir`, when it is a postgres process of that
 * directory (a stale file may name a pid now used by another process): SIGQUIT (immediate shutdown),
 * then SIGKILL after `graceMs`. Resolves when it is gone; false when there was none to stop.
 */
export async function stopPostgresOf(dataDir: string, graceMs = 5000): Promise<boolean> {
  let pid: number;
  try {
    pid = Number(readFileSync(path.join(dataDir, 'postmaster.pid'), 'utf8').split('\n')[0]);
  } catch {
    return false;
  }
  if (!Number.isInteger(pid) || pid <= 0 || !isPostgresOf(pid, dataDir)) return false;
  const gone = () => !isAlive(pid) || !isPostgresOf(pid, dataDir);
  for (const signal of ['SIGQUIT', 'SIGKILL'] as const) {
    try {
      process.kill(pid, signal);
    } catch {
      return true; // gone meanwhile
    }
    for (const deadline = Date.now() + graceMs; Date.now() < deadline; await sleep(50)) if (gone()) return true;
  }
  return true;
}
