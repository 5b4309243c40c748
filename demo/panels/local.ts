/**
 * Local tier: two stores with `localCache` (standing for two processes). A reads a key and holds it in
 * memory; B writes the key; A's copy is dropped when B's NOTIFY arrives, and A's next read asks
 * PostgreSQL. The time from B's acknowledged write to A reading the new value is shown.
 */
import type { Routes } from '../context.js';
import { readUntil, uniqueKey } from './read_until.js';

const WAIT_LIMIT_MS = 5000;

export const localRoutes: Routes = {
  async 'POST /api/local/run'(_body, ctx) {
    const { localA: a, localB: b } = ctx;
    const key = uniqueKey('demo:local');
    await a.ext.set(key, 'v1 (written by A)', { absoluteExpirationRelative: '10m' });
    const before = (await a.stats()).localHits;
    const first = (await a.ext.getString(key)) ?? null;
    const servedFromMemory = (await a.stats()).localHits > before;
    await b.ext.set(key, 'v2 (written by B)', { absoluteExpirationRelative: '10m' });
    // A's reads are answered from memory until B's notice drops its copy; then A reads B's value.
    const seen = await readUntil(async () => (await a.ext.getString(key)) ?? null, (value) => value !== first, WAIT_LIMIT_MS);
    await a.ext.delete(key);
    return { key, first, servedFromMemory, after: seen.value, invalidatedAfterMs: seen.ms, readsUntilSeen: seen.reads };
  },
};
