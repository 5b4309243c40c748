/**
 * Local tier: two stores with `localCache` (standing for two processes). A reads a key and holds it in
 * memory; B writes the key; A's copy is dropped when B's NOTIFY arrives, and A's next read asks
 * PostgreSQL. The time from B's acknowledged write to A reading the new value is shown.
 */
import type { Routes } from '../context.js';

const WAIT_LIMIT_MS = 5000;

export const localRoutes: Routes = {
  async 'POST /api/local/run'(_body, ctx) {
    const { localA: a, localB: b } = ctx;
    const key = `demo:local:${Date.now()}:${Math.random().toString(36).slice(2, 8)}`;
    await a.ext.set(key, 'v1 (written by A)', { absoluteExpirationRelative: '10m' });
    const before = (await a.stats()).localHits;
    const first = (await a.ext.getString(key)) ?? null;
    const servedFromMemory = (await a.stats()).localHits > before;
    await b.ext.set(key, 'v2 (written by B)', { absoluteExpirationRelative: '10m' });
    const written = performance.now();
    let reads = 0;
    let seen: string | undefined;
    // A's reads are answered from memory until B's notice drops its copy; then A reads B's value.
    while (performance.now() - written < WAIT_LIMIT_MS) {
      reads++;
      seen = await a.ext.getString(key);
      if (seen !== first) break;
      await new Promise((resolve) => setImmediate(resolve));
    }
    const invalidatedAfterMs = seen === first ? null : Math.round((performance.now() - written) * 10) / 10;
    await a.ext.delete(key);
    return { key, first, servedFromMemory, after: seen ?? null, invalidatedAfterMs, readsUntilSeen: reads };
  },
};
