/**
 * initdb and the PostgreSQL server as child processes (as another user when we are root), with the
 * last lines they print kept for the error that says why they failed.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import type { Socket } from 'node:net';
import type { RunAs } from './os-user.js';

const READY = 'database system is ready to accept connections';
const TAIL_LINES = 30;
const INITDB_TIMEOUT_MS = 120_000;
const READY_TIMEOUT_MS = 60_000;
const STOP_TIMEOUT_MS = 30_000;

/** How to run a program of the server. */
export interface RunOptions {
  /** Run as this user (we are root). */
  runAs?: RunAs | undefined;
  /** Working directory, reachable by that user. */
  cwd: string;
  /** Receives the pid as soon as the process exists. */
  onSpawn?: ((pid: number | undefined) => void) | undefined;
}

/** A program's failure: what failed and the last lines it printed. */
export class ProgramError extends Error {
  constructor(
    message: string,
    readonly output: readonly string[],
    options?: { cause?: unknown },
  ) {
    super(message, options);
  }
}

/** The last lines of a stream of a process. */
class Tail {
  private readonly lines: string[] = [];
  private partial = '';

  /** Appends a chunk; returns the text of the lines it completed (with the previous partial line). */
  add(chunk: Buffer): string {
    const text = this.partial + chunk.toString('utf8');
    const lines = text.split('\n');
    this.partial = lines.pop() ?? '';
    for (const line of lines) if (line.trim() !== '') this.lines.push(line.trimEnd());
    this.lines.splice(0, Math.max(0, this.lines.length - TAIL_LINES));
    return lines.join('\n');
  }

  get(): string[] {
    return this.partial.trim() === '' ? [...this.lines] : [...this.lines, this.partial.trimEnd()];
  }
}

/**
 * The environment of the server's programs: ours without `PG*` variables (PGDATA and the like must not
 * redirect them) and with the C locale, so the messages we wait for are in English whatever the locale.
 */
function serverEnv(): NodeJS.ProcessEnv {
  const env = Object.fromEntries(Object.entries(process.env).filter(([name]) => !name.startsWith('PG')));
  return { ...env, LC_ALL: 'C', LC_MESSAGES: 'C', LANG: 'C' };
}

/** Spawns a program, keeping the last lines of its stdout and stderr (in that order: errors last). */
function launch(file: string, args: string[], options: RunOptions): { child: ChildProcess; output: () => string[]; stderr: Tail } {
  const child = spawn(file, args, { ...options.runAs, cwd: options.cwd, env: serverEnv(), stdio: ['ignore', 'pipe', 'pipe'] });
  options.onSpawn?.(child.pid);
  const stdout = new Tail();
  const stderr = new Tail();
  child.stdout?.on('data', (chunk: Buffer) => stdout.add(chunk));
  return { child, output: () => [...stdout.get(), ...stderr.get()], stderr };
}

/**
 * Creates the cluster: UTF8, C locale, password authentication of `user` with the password in `pwfile`.
 * @throws ProgramError with initdb's output when it fails
 */
export function initdb(file: string, dataDir: string, user: string, pwfile: string, options: RunOptions): Promise<void> {
  const args = [
    `--pgdata=${dataDir}`,
    '--auth=password',
    `--username=${user}`,
    `--pwfile=${pwfile}`,
    // UTF8 whatever the environment: initdb takes the encoding from the locale, and with no LANG/LC_* (many
    // containers and CI images) that is SQL_ASCII, which the store refuses.
    '--encoding=UTF8',
    '--locale=C',
    '--no-sync', // a throw-away cluster: no need to wait for the disk
  ];
  return new Promise((resolve, reject) => {
    const { child, output, stderr } = launch(file, args, options);
    child.stderr?.on('data', (chunk: Buffer) => stderr.add(chunk));
    const timer = setTimeout(() => child.kill('SIGKILL'), INITDB_TIMEOUT_MS);
    child.on('error', (error) => {
      clearTimeout(timer);
      reject(new ProgramError(`initdb could not be run: ${error.message}`, output(), { cause: error }));
    });
    child.on('close', (code, signal) => {
      clearTimeout(timer);
      if (code === 0) resolve();
      else reject(new ProgramError(`initdb failed (${signal ? `signal ${signal}` : `exit code ${code}`}${signal === 'SIGKILL' ? `, after ${INITDB_TIMEOUT_MS / 1000} s?` : ''})`, output()));
    });
  });
}

/** A running server. */
export interface ServerProcess {
  /** Fast shutdown (SIGINT), SIGKILL if it is not gone after 30 s; resolves when it has exited. Idempotent. */
  stop(): Promise<void>;
}

/**
 * Starts the server on 127.0.0.1:`port`, TCP only, and resolves once it accepts connections. Once
 * started, it does not keep this process alive (the watchdog stops it if this process ends first).
 * @throws ProgramError with its output when it exits or is not ready within 60 s
 */
export function startServer(file: string, dataDir: string, port: number, options: RunOptions): Promise<ServerProcess> {
  // No Unix socket: its default directory may not be writable by that user, and TCP is all we use.
  const args = ['-D', dataDir, '-p', String(port), '-c', 'listen_addresses=127.0.0.1', '-c', 'unix_socket_directories='];
  const { child, output, stderr } = launch(file, args, options);
  // 'error' without 'close': it could not be run at all.
  const exited = new Promise<void>((resolve) => {
    child.once('close', () => resolve());
    child.once('error', () => resolve());
  });
  let gone = false;
  void exited.then(() => (gone = true));
  let stopping: Promise<void> | undefined;
  const server: ServerProcess = {
    stop: () =>
      (stopping ??= (async () => {
        if (gone || child.pid === undefined) return;
        child.ref();
        child.kill('SIGINT');
        const timer = setTimeout(() => child.kill('SIGKILL'), STOP_TIMEOUT_MS);
        await exited;
        clearTimeout(timer);
      })()),
  };
  return new Promise((resolve, reject) => {
    let ready = false;
    let recent = '';
    const fail = (message: string, cause?: unknown) => {
      clearTimeout(timer);
      if (!ready) void server.stop().then(() => reject(new ProgramError(message, output(), { cause })));
    };
    const timer = setTimeout(() => fail(`the server was not ready within ${READY_TIMEOUT_MS / 1000} s`), READY_TIMEOUT_MS);
    child.stderr?.on('data', (chunk: Buffer) => {
      recent = (recent + stderr.add(chunk)).slice(-4 * READY.length);
      if (ready || !recent.includes(READY)) return;
      ready = true;
      clearTimeout(timer);
      // Keep reading its output (a full pipe would block it), without keeping this process alive.
      child.unref();
      (child.stdout as Socket | null)?.unref();
      (child.stderr as Socket | null)?.unref();
      resolve(server);
    });
    child.on('error', (error) => fail(`the server could not be run: ${error.message}`, error));
    child.on('close', (code, signal) => fail(`the server exited (${signal ? `signal ${signal}` : `exit code ${code}`})`));
  });
}
