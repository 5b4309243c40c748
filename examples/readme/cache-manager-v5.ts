// README, "cache-manager and cacheable" (cache-manager 5). This repository installs cache-manager 5 as
// `cache-manager5`; the README's line imports it as `cache-manager`, as an application does.
// Run: DATABASE_URL=postgres://... npx tsx examples/readme/cache-manager-v5.ts
import { caching } from 'cache-manager5';
import { pgStore } from 'cache-postgres/cache-manager/v5';
const cache = await caching(pgStore, { ttl: 60_000, prefix: 'app:', uri: process.env.DATABASE_URL });

await cache.set('readme', 'v5');
console.log('cache-manager-v5: ok', await cache.get('readme'));
await cache.del('readme');
await cache.store.disconnect();
