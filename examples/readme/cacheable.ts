// README, "cache-manager and cacheable" (cacheable 2). Run: DATABASE_URL=postgres://... npx tsx examples/readme/cacheable.ts
import { Cacheable } from 'cacheable';
import Keyv from 'keyv';
import { PgStore } from 'cache-postgres';

const cache = new Cacheable({ secondary: new Keyv({ store: new PgStore() }), ttl: '10m', tags: true });

await cache.set('readme:cacheable', 1);
console.log('cacheable: ok', await cache.get('readme:cacheable'));
await cache.delete('readme:cacheable');
await cache.disconnect();
