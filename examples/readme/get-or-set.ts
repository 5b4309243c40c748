// README, "Stampede-safe getOrSet and distributed locks". Run: DATABASE_URL=postgres://... npx tsx examples/readme/get-or-set.ts
import { buildReport, loadUser, runImport, type User } from './fixtures.js';
import { PgStore } from 'cache-postgres';

const store = new PgStore();
const { ext } = store;

// Bytes in, bytes out: the form .NET and Python read.
const report = await ext.getOrSet('report:2026-11', () => buildReport(), { absoluteExpirationRelative: '1h', lockTimeout: '5s' });

// Any value, through a serializer: typed.
const user = await ext.getOrSet<User>('user:42', () => loadUser(42), { serializer: 'json', absoluteExpirationRelative: '10m' });

await ext.withLock('nightly-import', async (lock) => {
  await runImport({ fencingToken: lock.token, signal: lock.signal });
}, { ttl: '30s', wait: '10s' });

await store.disconnect();

console.log('get-or-set: ok', report.toString(), user.name);
