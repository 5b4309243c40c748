/**
 * Failover: a "weather service" wrapped with `ext.failover`. While the simulated outage is on, the last
 * value is served stale (with its age); a city never fetched has nothing retained and gets the error.
 */
import type { PgStore } from 'cache-postgres';
import { HttpError, isInputError, stringField } from '../http.js';
import type { Routes } from '../context.js';

interface Weather {
  city: string;
  tempC: number;
  fetchedAt: number;
}

/** Fresh for 3 s, then served stale for up to an hour when the service fails (the store keeps expired rows an hour). */
const TTL = '3s';
const MAX_STALE = '1h';

export function failoverRoutes(store: PgStore): Routes {
  let down = false;
  let downstreamCalls = 0;
  const weather = store.ext.failover(
    async (city: string): Promise<Weather> => {
      downstreamCalls++;
      if (down) throw new Error('weather service unavailable (simulated outage)');
      return { city, tempC: Math.round((Math.random() * 35 - 5) * 10) / 10, fetchedAt: Date.now() };
    },
    { key: 'demo:weather:{0}', ttl: TTL, maxStale: MAX_STALE },
  );

  return {
    async 'POST /api/failover/outage'(body) {
      if (typeof body['down'] !== 'boolean') throw new HttpError(400, '"down" must be true or false.');
      down = body['down'];
      return { down };
    },
    async 'POST /api/failover/fetch'(body) {
      const city = stringField(body, 'city', 80).trim();
      const before = downstreamCalls;
      let stale: { expiredMsAgo: number } | undefined;
      const onStale = (event: { key: string; expiredMsAgo: number }) => {
        if (event.key === `demo:weather:${city}`) stale = { expiredMsAgo: event.expiredMsAgo };
      };
      store.on('stale-served', onStale);
      try {
        const value = await weather(city);
        const source = stale ? 'stale' : downstreamCalls > before ? 'downstream' : 'cache';
        return { down, source, value, ageMs: Date.now() - value.fetchedAt, ...(stale ?? {}) };
      } catch (error) {
        if (isInputError(error)) throw error; // a bad city: 400
        // The downstream failure itself, with nothing retained to serve: shown on the page, not a server error.
        return { down, source: 'error', error: (error as Error).message };
      } finally {
        store.off('stale-served', onStale);
      }
    },
    async 'GET /api/failover'() {
      return { down, downstreamCalls };
    },
  };
}
