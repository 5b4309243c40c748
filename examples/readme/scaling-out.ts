// README, "Scaling out (Citus)". Run: DATABASE_URL=postgres://coordinator/... npx tsx examples/readme/scaling-out.ts
import { PgStore, SchemaError } from 'cache-postgres';

const store = new PgStore({ distributed: true });                  // or { shardCount: 64 }, or { colocateWith: 'sessions' }
try {
  await store.ext.set('scaling-out', 'on the shard of its key', { absoluteExpirationRelative: '1m' });
  console.log(await store.ext.getString('scaling-out'));
} catch (error) {
  // On a server without Citus the option is refused before anything is created.
  if (!(error instanceof SchemaError) || !error.message.includes('no citus extension')) throw error;
  console.log('not a Citus coordinator:', error.message);
} finally {
  await store.disconnect();
}

console.log('scaling-out: ok');
