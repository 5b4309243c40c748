/**
 * cacheable 2: an in-memory primary in front of PostgreSQL, with tags.
 * Run: DATABASE_URL=postgres://... npx tsx examples/cacheable.ts
 */
import { Cacheable } from 'cacheable';
import Keyv from 'keyv';
import { PgStore } from 'cache-postgres';

const cache = new Cacheable({ secondary: new Keyv({ store: new PgStore(), namespace: 'example-cbl' }), ttl: '10m', tags: true });

await cache.set('product:1', { price: 10 }, { tags: ['products'] });
console.log('product:1 ->', await cache.get('product:1'));
await cache.tags.invalidateTag('products');
console.log('after invalidateTag ->', await cache.get('product:1'));
console.log('getOrSet ->', await cache.getOrSet('answer', async () => 42));

await cache.clear();
await cache.disconnect();
