// README, "Usage with Keyv". Run: DATABASE_URL=postgres://... npx tsx examples/readme/keyv.ts
import Keyv from 'keyv';
import { PgStore } from 'cache-postgres';

const store = new PgStore();                   // DATABASE_URL, else the PG* variables
await store.ready();                           // connects and checks the table: a wrong URL or table fails here, typed
const keyv = new Keyv({ store, throwOnErrors: true });
await keyv.set('user:42', { name: 'Ada' }, 60_000); // expires in one minute
await keyv.get('user:42');                     // { name: 'Ada' }
await keyv.disconnect();                       // on shutdown: ends the pool the store created

console.log('keyv: ok');
