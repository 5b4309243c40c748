import { type ChildProcess, spawn, spawnSync } from 'node:child_process';
import { chownSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { waitFor } from './db.js';

/** Path of the pgbouncer binary, or undefined when it is not installed (.ci/run installs Debian's). */
export function pgbouncerBinary(): string | undefined {
  const found = spawnSync('sh', ['-c', 'command -v pgbouncer || ls /usr/sbin/pgbouncer 2>/dev/null'], { encoding: 'utf8' });
  return found.stdout.trim().split('\n')[0] || undefined;
}

async function freePort(): Promise<number> {
  return new Promise((resolve) => {
    const server = createServer().listen(0, '127.0.0.1', () => {
      const { port } = server.address() as { port: number };
      server.close(() => resolve(port));
    });
  });
}

/**
 * Starts a real PgBouncer in transaction pooling mode in front of `targetUrl`, with few server
 * connections so that consecutive transactions of one client land on different ones.
 */
export async function startPgBouncer(binary: string, targetUrl: string): Promise<{ url: string; stop(): Promise<void> }> {
  const target = new URL(targetUrl);
  const dir = mkdtempSync(path.join(tmpdir(), 'cp-pgbouncer-'));
  const port = await freePort();
  const connection = [
    `host=${target.hostname}`, `port=${target.port || 5432}`, `dbname=${target.pathname.slice(1)}`,
    `user=${decodeURIComponent(target.username)}`, ...(target.password ? [`password=${decodeURIComponent(target.password)}`] : []),
  ].join(' ');
  writeFileSync(path.join(dir, 'pgbouncer.ini'), [
    '[databases]',
    `cache = ${connection}`,
    '[pgbouncer]',
    'listen_addr = 127.0.0.1',
    `listen_port = ${port}`,
    'auth_type = any',
    'pool_mode = transaction',
    'default_pool_size = 3',
    'max_client_conn = 200',
    'unix_socket_dir =',
    `logfile = ${path.join(dir, 'pgbouncer.log')}`,
    `pidfile = ${path.join(dir, 'pgbouncer.pid')}`,
    'ignore_startup_parameters = extra_float_digits,options,application_name',
    '',
  ].join('\n'));
  // PgBouncer refuses to run as root: it then runs as the postgres user, which must own its files.
  const asRoot = process.getuid?.() === 0;
  if (asRoot) {
    const ids = spawnSync('id', ['-u', 'postgres'], { encoding: 'utf8' });
    const gid = spawnSync('id', ['-g', 'postgres'], { encoding: 'utf8' });
    chownSync(dir, Number(ids.stdout), Number(gid.stdout));
  }
  const child: ChildProcess = spawn(binary, [...(asRoot ? ['-u', 'postgres'] : []), path.join(dir, 'pgbouncer.ini')], { stdio: 'ignore' });
  const url = `postgres://cache@127.0.0.1:${port}/cache`;
  await waitFor(async () => {
    const pg = await import('pg');
    const client = new pg.default.Client(url);
    try {
      await client.connect();
      await client.query('SELECT 1');
      return true;
    } catch {
      return false;
    } finally {
      await client.end().catch(() => {});
    }
  }, 10_000, 'PgBouncer to accept connections');
  return {
    url,
    stop: async () => {
      const exited = new Promise((resolve) => child.once('exit', resolve));
      child.kill('SIGTERM');
      await exited;
      rmSync(dir, { recursive: true, force: true });
    },
  };
}
