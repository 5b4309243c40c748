/**
 * localCache with notifyTrigger: a write by anything (.NET, Python, psql, a store without localCache)
 * reaches every local tier within milliseconds, not once its copy is `ttl` old.
 * Run: DATABASE_URL=postgres://... npx tsx examples/notify-trigger.ts
 */
import pg from 'pg';
import { PgStore } from 'cache-postgres';

const api = new PgStore({ localCache: { ttl: '1h', notifyTrigger: true } });
await api.ext.set('price:42', '10', { absoluteExpirationRelative: '1h' });

const waitUntil = async (check: () => Promise<boolean>) => {
  for (let i = 0; i < 500 && !(await check()); i++) await new Promise((resolve) => setTimeout(resolve, 10));
};
// Once the tier listens, a repeated read is answered from memory.
await waitUntil(async () => {
  const { localHits } = await api.stats();
  await api.ext.get('price:42');
  return (await api.stats()).localHits > localHits;
});
console.log('api reads price:42 from memory:', await api.ext.getString('price:42'));

// Someone else writes the row with plain SQL.
const other = new pg.Client({ connectionString: process.env['DATABASE_URL'] });
await other.connect();
await other.query(`UPDATE ${api.tableName} SET value = convert_to('12', 'UTF8') WHERE id = 'price:42'`);
await other.end();

const started = Date.now();
await waitUntil(async () => (await api.ext.getString('price:42')) === '12');
console.log(`after a plain SQL UPDATE, api reads: ${await api.ext.getString('price:42')} (within ${Date.now() - started < 1000 ? 'a second' : 'too long'})`);
await api.ext.dropNotifyTrigger(); // an example tidies up; an application keeps it
await api.disconnect();
