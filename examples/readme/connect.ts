// README, "Other ways to connect". Run: DATABASE_URL=postgres://... npx tsx examples/readme/connect.ts
import pg from 'pg';
import { createKeyv, PgStore } from 'cache-postgres';

const pool = new pg.Pool({ connectionString: process.env.DATABASE_URL });

const byUrl = new PgStore('postgres://app:secret@db.internal:5432/app');         // a URL
const sessions = new PgStore({ uri: process.env.CACHE_URL, table: 'sessions', poolMax: 20 }); // unset: DATABASE_URL
const shared = new PgStore({ pool });                                             // an existing pg.Pool: many stores, one pool
const keyv = createKeyv({ logger: console }, { namespace: 'users' });             // a Keyv on a new PgStore
// ...
await Promise.all([byUrl.disconnect(), sessions.disconnect(), shared.disconnect(), keyv.disconnect()]);
await pool.end(); // a store never ends a pool it did not create

console.log('connect: ok');
