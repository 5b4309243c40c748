/**
 * The database's encoding, from the first call: the embedded database is UTF8 whatever the process's
 * locale, and a store refuses a database in another encoding (where varchar(449) counts bytes, or
 * characters outside the encoding fail) with a SchemaError that says why, before touching it.
 */
import { execFile } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import { expect } from 'chai';
import pg from 'pg';
import { PgStore, SchemaError } from '../../src/index.js';
import { rejects } from '../helpers/assert.js';
import { sql, testUrl } from '../helpers/db.js';

const run = promisify(execFile);

describe('Database encoding', function () {
  this.timeout(120_000);

  it('startTestDatabase() creates a UTF8 database in an environment with no locale (env -i)', async () => {
    const home = await mkdtemp(path.join(tmpdir(), 'cache-postgres-home-'));
    const script = `
      import pg from 'pg';
      import { startTestDatabase } from './src/testing/index.ts';
      const db = await startTestDatabase({ docker: false });
      try {
        const client = new pg.Client(db.url);
        await client.connect();
        const { rows } = await client.query("SELECT current_setting('server_encoding') AS encoding");
        await client.end();
        console.log(JSON.stringify({ source: db.source, encoding: rows[0].encoding }));
      } finally { await db.stop(); }`;
    try {
      const { stdout } = await run(process.execPath, ['--import', 'tsx', '--input-type=module', '-e', script], {
        cwd: process.cwd(),
        env: { PATH: process.env.PATH ?? '/usr/bin:/bin', HOME: home },
      });
      const result = JSON.parse(stdout.trim().split('\n').pop()!) as { source: string; encoding: string };
      expect(result).to.deep.equal({ source: 'embedded', encoding: 'UTF8' });
    } finally {
      await rm(home, { recursive: true, force: true });
    }
  });

  describe('a database that is not UTF8', () => {
    const database = `cp_sql_ascii_${process.pid}`;
    let url: string;

    before(async () => {
      await sql(`DROP DATABASE IF EXISTS ${database}`);
      await sql(`CREATE DATABASE ${database} ENCODING 'SQL_ASCII' LC_COLLATE 'C' LC_CTYPE 'C' TEMPLATE template0`);
      const parsed = new URL(testUrl());
      parsed.pathname = `/${database}`;
      url = parsed.toString();
    });

    after(async () => {
      await sql(`DROP DATABASE IF EXISTS ${database} WITH (FORCE)`);
    });

    it('is refused with a SchemaError that names the encoding, and no table is created', async () => {
      const store = new PgStore({ uri: url, table: 'enc_cache', enableExpirationScan: false });
      try {
        const error = await rejects(store.set('k', 'v'), SchemaError, /SQL_ASCII/);
        expect(error.message).to.match(/UTF8/);
        await rejects(store.ext.get('k'), SchemaError, /SQL_ASCII/);
      } finally {
        await store.disconnect();
      }
      const client = new pg.Client(url);
      await client.connect();
      const { rows } = await client.query("SELECT to_regclass('public.enc_cache') IS NOT NULL AS found");
      await client.end();
      expect(rows[0].found).to.equal(false);
    });
  });
});
