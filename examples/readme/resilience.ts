// README, "Resilience". Run: DATABASE_URL=postgres://... npx tsx examples/readme/resilience.ts
import { api, buildReport, db, FetchError } from './fixtures.js';
import { PgStore } from 'cache-postgres';

const store = new PgStore({ retainExpiredFor: '1h' }); // failover's maxStale needs expired rows kept that long
const { ext } = store;

const getUser = ext.cached((id: number) => db.users.find(id), { key: 'user:{0}', ttl: '10m', tags: ['users'] });

const getWeather = ext.failover((city: string) => api.weather(city), {
  key: 'weather:{0}', ttl: '5m', errors: [FetchError], maxStale: '1h',
});

const getReport = ext.early(() => buildReport(), { key: 'report', ttl: '10m', earlyTtl: '7m' });

class Users {
  @store.ext.decorators.cached({ key: 'user:{0}', ttl: '10m' })    // standard (TC39) decorators
  async find(id: number) { return db.users.find(id); }
}

console.log('resilience: ok', (await getUser(1)).name, await getWeather('Oslo'), await getReport(), (await new Users().find(2)).name);
await store.disconnect();
