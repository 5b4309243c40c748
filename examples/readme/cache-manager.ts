// README, "cache-manager and cacheable" (cache-manager 6 and 7). Run: DATABASE_URL=postgres://... npx tsx examples/readme/cache-manager.ts
import { loadUser } from './fixtures.js';
import { createCache } from 'cache-manager';
import Keyv from 'keyv';
import { PgStore } from 'cache-postgres';

const tiers = createCache({ stores: [new Keyv(), new Keyv({ store: new PgStore() })], ttl: 60_000 });

import { createPgCache } from 'cache-postgres/cache-manager';
const cache = createPgCache({ ttl: 60_000 });
const id = 42;
const user = await cache.wrap(`user:${id}`, () => loadUser(id)); // one load, whatever the number of processes

await tiers.disconnect();
await cache.disconnect();
console.log('cache-manager: ok', user.name);
