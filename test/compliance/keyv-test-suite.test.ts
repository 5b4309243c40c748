import { keyvApiTests, keyvIteratorTests, keyvNamespaceTest, keyvValueTests } from '@keyv/test-suite';
import Keyv, { type KeyvStoreAdapter } from 'keyv';
import pg from 'pg';
import { PgStore } from '../../src/index.js';
import { dropTables, testDistributed, testUrl, uniqueTable } from '../helpers/db.js';
import { vitestShim } from '../helpers/vitest-shim.js';

// The whole upstream compliance suite (api 22, values 13, namespace 3, iterator 4), unmodified.
// The suite asks for a new adapter per Keyv instance over the same table, and never disconnects
// them: they share one pool, ended once at the end. That pool has one connection: some tests fire a
// call without awaiting it (".delete(key) returns a Promise") and the next test assumes it is done;
// on one connection statements run in the order they were issued, on several a late dangling delete
// can remove the next test's fresh row (seen once in CI).
// Run twice: on a plain pool (each batch one statement) and on a pipelined one (a read and its slide
// as two statements in one round trip, batches overlapping), the form a store's own pool takes.
// Not with localCache: the suite reads through one adapter what another just wrote, and a tier in
// front of each adapter is, by design, told of the other's writes a moment later.
for (const pipeline of [false, true]) {
  describe(`@keyv/test-suite on PgStore (${pipeline ? 'pipelined' : 'plain'} pool)`, () => {
    const table = uniqueTable('keyv_compliance');
    let pool: pg.Pool | undefined;
    const store = (): KeyvStoreAdapter => {
      pool ??= new pg.Pool({ connectionString: testUrl(), max: 1, pipeline });
      return new PgStore({ pool, table, enableExpirationScan: false, distributed: testDistributed() });
    };
    // The suite passes a vitest-shaped module; our shim covers what it calls.
    const test = vitestShim as never;

    after(async () => {
      await pool?.end();
      await dropTables(table);
    });

    describe('api', () => keyvApiTests(test, Keyv, store));
    describe('values', () => keyvValueTests(test, Keyv, store));
    describe('namespace', () => keyvNamespaceTest(test, Keyv, store));
    describe('iterator', () => keyvIteratorTests(test, Keyv, store));
  });
}
