// README, "store.ext". Run: DATABASE_URL=postgres://... npx tsx examples/readme/ext.ts
import { PgStore } from 'cache-postgres';

const store = new PgStore();
const { ext } = store;

await ext.set('session:9', Buffer.from('token'), { slidingExpiration: '20m', absoluteExpirationRelative: '8h' });
await ext.set('greeting', 'héllo');                 // UTF-8, what .NET's GetString reads
await ext.get('session:9');                         // Buffer | undefined, extends the sliding expiry in the same statement
await ext.getString('greeting');                    // 'héllo'
await ext.refresh('session:9');                     // extend without reading (.NET's Refresh)
await ext.info('session:9');                        // { expiresAt, ttl, slidingExpiration, absoluteExpiration, tags }

await ext.setMany({ 'p:1': 'a', 'p:2': 'b' }, { tags: ['products'] }); // one statement
await ext.getMany(['p:1', 'p:2', 'p:3']);           // Map of the live ones, one statement
await ext.deleteTags(['products', 'category:books']); // any of them (or { match: 'all' })

for await (const key of ext.scan('user:*')) console.log(key); // keyset pagination
await ext.getPattern('session:??:x');               // Map
await ext.deletePattern('tmp:*');                   // batched; wildcards alone ('*', '?*') need { all: true }

await ext.incr('hits');                             // 1, atomic, stored as the text "1"
await ext.incr('rate:42', 1, { ttl: '1m' });        // ttl applies when the counter is created

await store.disconnect();

console.log('ext: ok');
