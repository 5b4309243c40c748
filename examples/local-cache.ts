/**
 * localCache: hot reads from memory, invalidated across processes through PostgreSQL LISTEN/NOTIFY.
 * Two stores stand in for two processes (each has its own pool and listener, as a process would).
 * Run: DATABASE_URL=postgres://... npx tsx examples/local-cache.ts
 */
import Keyv from 'keyv';
import { PgStore } from 'cache-postgres';

const apiStore = new PgStore({ localCache: { ttl: '30s' } });
const workerStore = new PgStore({ localCache: true });
const api = new Keyv({ store: apiStore, namespace: 'example-l1' });
const worker = new Keyv({ store: workerStore, namespace: 'example-l1' });

await worker.set('price:42', { amount: 10 });
await api.get('price:42'); // a first read asks PostgreSQL, which may be before the tier is listening
const waitUntil = async (check: () => Promise<boolean>) => {
  for (let i = 0; i < 500 && !(await check()); i++) await new Promise((resolve) => setTimeout(resolve, 10));
};
// Once the tier listens, a repeated read costs no round trip.
await waitUntil(async () => {
  const before = apiStore.roundTrips;
  await api.get('price:42');
  return apiStore.roundTrips === before;
});
console.log('api reads price:42 from memory:', await api.get('price:42'));

await worker.set('price:42', { amount: 12 }); // the other "process" writes
await waitUntil(async () => ((await api.get('price:42')) as { amount: number }).amount === 12);
console.log('after the worker wrote, api reads:', await api.get('price:42'));
console.log('entries held in api memory:', (await apiStore.stats()).localEntries);

await api.clear();
await api.disconnect();
await worker.disconnect();
