import { expect } from 'chai';
import pg from 'pg';
import { InvalidOptionError, PgStore } from '../../src/index.js';
import { resolveOptions } from '../../src/options/index.js';
import { rejects } from '../helpers/assert.js';

describe('options', () => {
  it('has the documented defaults', () => {
    const previous = process.env.DATABASE_URL;
    delete process.env.DATABASE_URL;
    try {
      const options = resolveOptions(undefined);
      expect(options).to.include({
        schema: 'public',
        table: 'cache',
        createIfNotExists: true,
        useWal: false,
        poolMax: 10,
        enableExpirationScan: true,
        expirationScanIntervalMs: 30 * 60_000,
        defaultSlidingExpirationMs: 20 * 60_000,
        deleteBatchSize: 1000,
        iterationLimit: 100,
        connectTimeoutMs: 5000,
        statementTimeoutMs: 15_000,
      });
      expect(options.connectionString).to.equal(undefined);
      expect(Object.isFrozen(options)).to.equal(true);
    } finally {
      if (previous !== undefined) process.env.DATABASE_URL = previous;
    }
  });

  it('reads DATABASE_URL when no URL is given, and takes a URL string as the only argument', () => {
    const previous = process.env.DATABASE_URL;
    process.env.DATABASE_URL = 'postgres://env@localhost/envdb';
    try {
      expect(resolveOptions(undefined).connectionString).to.equal('postgres://env@localhost/envdb');
      expect(resolveOptions('postgres://arg@localhost/db').connectionString).to.equal('postgres://arg@localhost/db');
    } finally {
      if (previous === undefined) delete process.env.DATABASE_URL;
      else process.env.DATABASE_URL = previous;
    }
  });

  it('keeps the connection string (and its password) out of enumeration and out of Keyv opts', () => {
    const options = resolveOptions({ uri: 'postgres://u:secret@localhost/db' });
    expect(JSON.stringify(options)).to.not.include('secret');
    const store = new PgStore({ uri: 'postgres://u:secret@localhost/db' });
    expect(store.opts.url).to.not.include('secret');
    expect(store.opts.dialect).to.equal('postgres');
  });

  for (const uri of [
    'postgres://u@localhost/db?password=secret',
    'postgres://u@localhost/db?sslmode=require&password=secret&sslpassword=secret',
    'postgres://u:secret@localhost/db?password=secret',
  ]) {
    it(`masks the password wherever the store shows its target: ${uri.replace(/secret/g, 'S')}`, async () => {
      const { inspect } = await import('node:util');
      const store = new PgStore({ uri, enableExpirationScan: false });
      for (const shown of [store.opts.url, inspect(store, { depth: 4 }), JSON.stringify(store)]) {
        expect(shown).to.not.include('secret');
      }
      expect(store.opts.url).to.include('localhost');
    });
  }

  it('takes the pool size from poolConfig.max when poolMax is not given', () => {
    expect(resolveOptions({ poolConfig: { max: 3 } as never }).poolMax).to.equal(3);
    expect(resolveOptions({ poolConfig: { max: 3 } as never, poolMax: 3 }).poolMax).to.equal(3);
    expect(resolveOptions({}).poolMax).to.equal(10);
  });

  it('parses duration strings', () => {
    const options = resolveOptions({ expirationScanInterval: '1h', defaultSlidingExpiration: '90s' });
    expect(options.expirationScanIntervalMs).to.equal(3_600_000);
    expect(options.defaultSlidingExpirationMs).to.equal(90_000);
  });

  const invalid: Array<[string, Record<string, unknown>, RegExp]> = [
    ['schema', { schema: 'Public' }, /lower-case identifier/],
    ['table', { table: 'my-cache' }, /lower-case identifier/],
    ['table', { table: '1cache' }, /lower-case identifier/],
    ['table', { table: 'a'.repeat(64) }, /at most 63/],
    ['table', { table: 'cache"; DROP TABLE x; --' }, /lower-case identifier/],
    ['expirationScanInterval', { expirationScanInterval: '4m' }, /at least 5 minutes/],
    ['expirationScanInterval', { expirationScanInterval: 'soon' }, /Invalid duration/],
    ['defaultSlidingExpiration', { defaultSlidingExpiration: 0 }, /at least 1 second/],
    ['defaultSlidingExpiration', { defaultSlidingExpiration: -5 }, /Invalid duration/],
    ['poolMax', { poolMax: 0 }, /positive whole number/],
    ['iterationLimit', { iterationLimit: 1.5 }, /positive whole number/],
    ['deleteBatchSize', { deleteBatchSize: '10' }, /positive whole number/],
    ['useWal', { useWal: 'yes' }, /true or false/],
    ['tabel', { tabel: 'x' }, /unknown option/],
    ['uri', { uri: '' }, /non-empty/],
    ['uri', { uri: 'postgres://a', connectionString: 'postgres://b' }, /not two different/],
    ['clock', { clock: 5 }, /function/],
    ['pool', { pool: {} }, /pg.Pool/],
    ['localCache', { localCache: 'yes' }, /true, false or/],
    ['localCache', { localCache: { maxEntries: 0 } }, /maxEntries must be a positive integer/],
    ['localCache', { localCache: { ttl: 'soon' } }, /Invalid duration/],
    ['localCache', { localCache: { ttl: 0 } }, /greater than zero/],
    ['localCache', { localCache: { size: 5 } }, /unknown field "size"/],
    ['pipelining', { pipelining: 1 }, /true or false/],
    ['connectTimeout', { connectTimeout: 0 }, /greater than zero/],
    ['connectTimeout', { connectTimeout: 'soon' }, /duration/i],
    ['statementTimeout', { statementTimeout: -1 }, /statementTimeout/],
  ];
  for (const [option, input, message] of invalid) {
    it(`rejects ${JSON.stringify(input).slice(0, 60)} naming "${option}"`, async () => {
      const error = await rejects(() => new PgStore(input as never), InvalidOptionError, message);
      expect(error.option).to.equal(option);
      expect(error.code).to.equal('E_INVALID_OPTION');
    });
  }

  it('refuses pool together with connection settings', async () => {
    const pool = new pg.Pool();
    try {
      const error = await rejects(() => new PgStore({ pool, poolMax: 3 }), InvalidOptionError, /cannot be combined with "pool"/);
      expect(error.option).to.equal('poolMax');
    } finally {
      await pool.end();
    }
  });
});
