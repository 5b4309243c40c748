/**
 * cache-manager 5 (the Store interface): `caching(pgStore, config)`.
 * This project installs cache-manager 5 as `cache-manager5`; in an application it is `cache-manager`.
 * Run: DATABASE_URL=postgres://... npx tsx examples/cache-manager-v5.ts
 */
import { caching } from 'cache-manager5';
import { pgStore } from 'cache-postgres/cache-manager/v5';

const cache = await caching(pgStore, { ttl: 60_000, prefix: 'example-v5:' });

await cache.set('user:1', { name: 'Ada' });
console.log('get ->', await cache.get('user:1'));
console.log('wrap ->', await cache.wrap('answer', async () => 42));
console.log('keys ->', (await cache.store.keys()).sort());

await cache.reset(); // only the example-v5: keys
await cache.store.disconnect();
