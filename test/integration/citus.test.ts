/**
 * Citus: the table distributed by id, created by the store (`distributed`) or by hand, detected either
 * way, refused when it cannot be used safely. Everything else (every feature on a distributed table) is
 * the rest of the suite, which .ci/run runs a third time on a real cluster with
 * CACHE_POSTGRES_TEST_DISTRIBUTED=1 (the fixture then creates distributed tables).
 */
import { expect } from 'chai';
import Keyv from 'keyv';
import pg from 'pg';
import { PgStore, SchemaError } from '../../src/index.js';
import { rejects } from '../helpers/assert.js';
import { dropTables, sql, testUrl, uniqueTable } from '../helpers/db.js';
import { dotnet } from '../helpers/peers.js';

const hasCitus = async () => (await sql<{ n: number }>(`SELECT count(*)::int AS n FROM pg_extension WHERE extname = 'citus'`))[0]!.n === 1;

describe('Citus', function () {
  this.timeout(60_000);
  const tables: string[] = [];
  const stores: PgStore[] = [];
  const table = (prefix: string) => {
    const name = uniqueTable(prefix);
    tables.push(name, `${name}_locks`);
    return name;
  };
  const store = (options: ConstructorParameters<typeof PgStore>[0] & object) => {
    const made = new PgStore({ uri: testUrl(), enableExpirationScan: false, ...options });
    stores.push(made);
    return made;
  };
  afterEach(async () => {
    await Promise.all(stores.splice(0).map((s) => s.disconnect()));
  });
  after(async () => {
    await dropTables(...tables);
  });

  describe('without Citus', () => {
    before(async function () {
      // Here the database has Citus: this case is for the plain runs (PostgreSQL 15, embedded 18).
      if (await hasCitus()) this.skip();
    });

    it('refuses distributed: true with a SchemaError that says what is missing, creating nothing', async () => {
      const name = table('cit_none');
      await rejects(store({ table: name, distributed: true }).ready(), SchemaError, /has no citus extension/);
      expect(await sql(`SELECT to_regclass($1) AS t`, [`public.${name}`])).to.deep.equal([{ t: null }]);
    });
  });

  describe('on a Citus coordinator', () => {
    before(async function () {
      if (!(await hasCitus())) {
        // Only where the test database is a Citus coordinator (the Citus pass of .ci/run).
        console.log('      (no citus extension in this database: the Citus cases run in the Citus pass of .ci/run)');
        this.skip();
      }
    });

    const placement = async (name: string) =>
      (
        await sql<{ method: string; column: string; colocation: number; shards: number }>(
          `SELECT p.partmethod::text AS method, column_to_column_name(p.logicalrelid, p.partkey) AS column, p.colocationid AS colocation,
             (SELECT count(*)::int FROM pg_dist_shard s WHERE s.logicalrelid = p.logicalrelid) AS shards
           FROM pg_dist_partition p WHERE p.logicalrelid = $1::regclass`,
          [`public.${name}`],
        )
      )[0];

    it('distributed: { shardCount } creates the table hash-distributed by id, and the lock table by name on the same shards', async () => {
      const name = table('cit_new');
      const s = store({ table: name, distributed: { shardCount: 4 } });
      await s.ext.set('a', 'A', { tags: ['t'] });
      const lock = await s.ext.lock('job');
      await lock.release();
      const cache = await placement(name);
      expect(cache).to.include({ method: 'h', column: 'id', shards: 4 });
      expect(await placement(`${name}_locks`)).to.deep.equal({ method: 'h', column: 'name', colocation: cache!.colocation, shards: 4 });
      expect(await s.ext.deleteTags(['t'])).to.equal(1);
    });

    it('distributed: { colocateWith } puts the shards beside another distributed table', async () => {
      const first = table('cit_first');
      const second = table('cit_second');
      await store({ table: first, distributed: { shardCount: 6 } }).ready();
      await store({ table: second, distributed: { colocateWith: first } }).ready();
      const [a, b] = [await placement(first), await placement(second)];
      expect(b).to.deep.equal({ ...a });
    });

    it('distributes an existing local table, keeping its rows', async () => {
      const name = table('cit_local');
      const plain = store({ table: name });
      await plain.ext.setMany({ k1: 'v1', k2: 'v2' }, { absoluteExpirationRelative: '1h' });
      await plain.disconnect();
      expect(await placement(name)).to.equal(undefined);
      const s = store({ table: name, distributed: true });
      expect((await s.ext.getMany(['k1', 'k2'])).size).to.equal(2);
      expect(await placement(name)).to.include({ method: 'h', column: 'id' });
    });

    it('detects a table distributed by hand, without the option, and runs the statements a distributed table needs', async () => {
      const name = table('cit_hand');
      await store({ table: name }).ready();
      await sql(`SELECT create_distributed_table($1, 'id')`, [`public.${name}`]);
      const s = store({ table: name });
      await s.ext.set('p:1', 'one', { slidingExpiration: '1m', tags: ['x'] });
      await s.ext.set('p:2', 'two', { tags: ['x'] });
      expect((await s.ext.get('p:1'))?.toString()).to.equal('one'); // a sliding read: an UPDATE Citus accepts
      expect(await s.ext.incr('n', 5)).to.equal(5);
      expect(await s.ext.deletePattern('p:*')).to.equal(2); // batch deletes without FOR UPDATE
      expect(await s.ext.deleteTags(['x'])).to.equal(0);
      expect((await s.stats()).bytes).to.be.greaterThan(0); // the shards' size, not the coordinator's empty shell
    });

    it('a table distributed while the stores run: every operation goes on without a restart, in the distributed forms', async () => {
      const name = table('cit_live');
      const s = store({ table: name, enableExpirationScan: true });
      const local = store({ table: name, localCache: true });
      const keyv = new Keyv({ store: s });
      const errors: Error[] = [];
      s.on('error', (error: Error) => errors.push(error));
      await keyv.set('seen', 'before');
      await local.ext.set('l', 'L');
      expect((await local.ext.get('l'))?.toString()).to.equal('L');
      expect(await placement(name)).to.equal(undefined);

      // What an operator does to move a growing cache to Citus without downtime.
      await sql(`SELECT create_distributed_table($1, 'id')`, [`public.${name}`]);

      // Issued in one tick: the first refusals make the stores ask once and switch; none is lost.
      await s.ext.set('p:1', 'one', { slidingExpiration: '1m', tags: ['x'] });
      const [got, many, sliding, gos] = await Promise.all([
        keyv.get('seen'),
        keyv.getMany(['seen', 'absent']),
        s.ext.get('p:1'),
        s.ext.getOrSet('computed', async () => 'made'),
      ]);
      expect(got).to.equal('before'); // Keyv swallows a store's failure into undefined: this read must really work
      expect(many).to.deep.equal(['before', undefined]);
      expect(sliding?.toString()).to.equal('one');
      expect(gos?.toString()).to.equal('made');
      expect(await s.ext.refresh('p:1')).to.equal(true);
      expect(await s.ext.incr('n', 2)).to.equal(2);
      expect(await s.ext.deleteTags(['x'])).to.equal(1);
      await s.ext.setMany({ 'q:1': 'a', 'q:2': 'b' });
      expect(await s.ext.deletePattern('q:*')).to.equal(2);
      await sql(`INSERT INTO public.${name} (id, value, expiresattime) VALUES ('gone', '\\x00', now() - interval '30 days')`);
      expect(await s.clearExpired()).to.equal(1);
      expect((await s.stats()).bytes).to.be.greaterThan(0); // the shards' size
      const lock = await s.ext.lock('job');
      await lock.release();
      // The other store (a local tier) switches on its own first refusal.
      expect((await local.ext.getMany(['l', 'computed'])).size).to.equal(2);
      expect(await keyv.delete('seen')).to.equal(true);
      expect(errors).to.deep.equal([]);
    });

    it('refuses a table distributed by another column, saying how to fix it', async () => {
      const name = table('cit_bycol');
      // Only possible without the primary key on id (Citus needs unique keys to contain the distribution column).
      await sql(`CREATE TABLE public.${name} (id VARCHAR(449) COLLATE "C" NOT NULL, value BYTEA NOT NULL, expiresattime TIMESTAMPTZ NOT NULL,
        slidingexpirationinseconds BIGINT, absoluteexpiration TIMESTAMPTZ, tags TEXT[])`);
      await sql(`SELECT create_distributed_table($1, 'expiresattime')`, [`public.${name}`]);
      await rejects(store({ table: name }).ready(), SchemaError, /is distributed by expiresattime; cache-postgres needs it distributed by id/);
    });

    it('refuses a connection to a worker node: locks and notifications are per node', async () => {
      const name = table('cit_worker');
      await store({ table: name, distributed: true }).ready();
      const [worker] = await sql<{ host: string; port: number }>(
        `SELECT nodename AS host, nodeport AS port FROM pg_dist_node WHERE groupid <> 0 AND noderole = 'primary' ORDER BY nodeport LIMIT 1`,
      );
      const url = new URL(testUrl());
      url.hostname = worker!.host;
      url.port = String(worker!.port);
      const onWorker = new PgStore({ uri: url.toString(), table: name, enableExpirationScan: false });
      stores.push(onWorker);
      await rejects(onWorker.ready(), SchemaError, /this connection is on a worker node\. Connect every cache client to the coordinator/);
    });

    it(".NET's own sliding read is refused by Citus (its UPDATE computes now + interval over columns): the documented limit", async () => {
      const name = table('cit_dotnet');
      const s = store({ table: name, distributed: true });
      await s.ext.set('k', 'v', { slidingExpiration: '1m' });
      const error = await dotnet.get(`public.${name}`, 'k', new Date()).then(
        () => undefined,
        (thrown: unknown) => thrown,
      );
      expect((error as pg.DatabaseError | undefined)?.message).to.match(/non-IMMUTABLE functions are not allowed|STABLE functions used in UPDATE queries/);
    });
  });
});
