/**
 * cache-manager 7 on PostgreSQL, stampede-safe across processes.
 * Run: DATABASE_URL=postgres://... npx tsx examples/cache-manager.ts
 */
import { createPgCache } from 'cache-postgres/cache-manager';

const cache = createPgCache({ ttl: 60_000, namespace: 'example-cm' });

let loads = 0;
async function loadUser(id: number) {
  loads++;
  await new Promise((resolve) => setTimeout(resolve, 50)); // a slow database or API
  return { id, name: 'Ada' };
}

// Ten concurrent requests for a cold key: the loader runs once, here and across every process.
const users = await Promise.all(Array.from({ length: 10 }, () => cache.wrap('user:42', () => loadUser(42))));
console.log(`wrap: ${users.length} callers, ${loads} load, user ${users[0]!.name}`);

await cache.set('greeting', 'hello', 5_000);
console.log(`get: ${await cache.get('greeting')}, ttl: ${Math.round(((await cache.ttl('greeting'))! - Date.now()) / 1000)}s`);

await cache.clear();
await cache.disconnect();
