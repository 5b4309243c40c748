import { randomBytes } from 'node:crypto';
import pg from 'pg';

let url: string | undefined;
let admin: pg.Pool | undefined;

/** Called once by the root hook. */
export function setTestUrl(value: string): void {
  url = value;
}

/**
 * True when the run targets a Citus cluster whose cache tables are to be distributed
 * (CACHE_POSTGRES_TEST_DISTRIBUTED=1, set by .ci/run for its Citus pass): the fixture then creates its
 * tables with `distributed: true`.
 */
export function testDistributed(): boolean {
  return process.env['CACHE_POSTGRES_TEST_DISTRIBUTED'] === '1';
}

/**
 * Round trips of one read of rows not due a slide: 1, on one server or distributed (a pipelined or split
 * read is a select alone; a slide follows only for rows due one, see RowStatements.readAndWrite).
 */
export function readRoundTrips(): number {
  return 1;
}

/** URL of the test database (available inside hooks and tests, not at file load). */
export function testUrl(): string {
  if (!url) throw new Error('The test database is not started yet: call testUrl() inside a hook or a test.');
  return url;
}

/** A pool for inspecting and arranging rows directly in SQL, ended by {@link closeAdmin}. */
export function adminPool(): pg.Pool {
  admin ??= new pg.Pool({ connectionString: testUrl(), max: 4 });
  return admin;
}

/** Runs SQL on the admin pool and returns the rows. */
export async function sql<R extends object = Record<string, unknown>>(text: string, values: unknown[] = []): Promise<R[]> {
  return (await adminPool().query<R>(text, values)).rows;
}

/** A table name no other test (or run) uses. */
export function uniqueTable(prefix: string): string {
  return `${prefix}_${randomBytes(4).toString('hex')}`;
}

/** Drops test tables (and their indexes). */
export async function dropTables(...tables: string[]): Promise<void> {
  for (const table of tables) await sql(`DROP TABLE IF EXISTS public.${table}`);
}

export async function closeAdmin(): Promise<void> {
  const pool = admin;
  admin = undefined;
  await pool?.end();
}

/** Polls `check` until it returns true or `timeoutMs` passes: for conditions, never a fixed sleep. */
export async function waitFor(check: () => Promise<boolean> | boolean, timeoutMs = 10_000, what = 'condition'): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    if (await check()) return;
    if (Date.now() > deadline) throw new Error(`Timed out after ${timeoutMs} ms waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 25));
  }
}
