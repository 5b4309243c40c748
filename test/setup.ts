/**
 * Root hooks: find or start the test database once for the whole run (PG_URL / DATABASE_URL, else
 * Docker, else embedded PostgreSQL), and fail the run on an unhandled rejection or a process warning,
 * so an orphaned promise or a background error cannot pass unnoticed.
 */
import pg from 'pg';
import { startTestDatabase, type TestDatabase } from '../src/testing/index.js';
import { closeAdmin, setTestUrl } from './helpers/db.js';
import { capturingWarnings } from './helpers/warnings.js';

let database: TestDatabase | undefined;

process.on('unhandledRejection', (reason) => {
  console.error('Unhandled rejection:', reason);
  process.exit(1);
});
process.on('warning', (warning) => {
  if (capturingWarnings()) return;
  console.error('Process warning:', warning);
  process.exit(1);
});

export const mochaHooks = {
  async beforeAll(this: Mocha.Context) {
    this.timeout(120_000);
    database = await startTestDatabase({ log: (line) => console.log(`    [db] ${line}`) });
    const client = new pg.Client(database.url);
    await client.connect();
    const { rows } = await client.query<{ server_version: string }>('SHOW server_version');
    await client.end();
    console.log(`    [db] ${database.source}: PostgreSQL ${rows[0]?.server_version}`);
    setTestUrl(database.url);
  },
  async afterAll(this: Mocha.Context) {
    this.timeout(60_000);
    await closeAdmin();
    await database?.stop();
  },
};
