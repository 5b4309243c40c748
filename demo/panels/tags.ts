/** Tags: tagged entries through `store.ext`, and their invalidation by tag (any or all). */
import { intField, oneOf, stringField, stringList } from '../http.js';
import type { Routes } from '../context.js';

const PREFIX = 'demo:tags:';
/** Shown at most; the panel is a demo, not a browser of the table. */
const LIST_LIMIT = 50;
/** Largest value the page may store (the library takes far more; a demo need not). */
export const MAX_VALUE_CHARS = 64 * 1024;

export const tagsRoutes: Routes = {
  async 'POST /api/tags/set'(body, ctx) {
    const key = stringField(body, 'key', 200);
    const tags = stringList(body, 'tags', 10, 100);
    const value = stringField(body, 'value', MAX_VALUE_CHARS, `value of ${key}`);
    const ttlSeconds = intField(body, 'ttlSeconds', 1, 86_400, 3600);
    await ctx.store.ext.set(PREFIX + key, value, { tags, absoluteExpirationRelative: ttlSeconds * 1000 });
    return { key, tags };
  },
  async 'POST /api/tags/invalidate'(body, ctx) {
    const tags = stringList(body, 'tags', 10, 100);
    const match = oneOf(body, 'match', ['any', 'all'] as const, 'any');
    const deleted = await ctx.store.ext.deleteTags(tags, { match });
    return { tags, match, deleted };
  },
  async 'GET /api/tags'(_body, ctx) {
    const entries: Array<{ key: string; tags: string[]; ttlMs: number | null }> = [];
    for await (const id of ctx.store.ext.scan(`${PREFIX}*`)) {
      const info = await ctx.store.ext.info(id);
      if (info) entries.push({ key: id.slice(PREFIX.length), tags: info.tags, ttlMs: Number.isFinite(info.ttl) ? Math.round(info.ttl) : null });
      if (entries.length >= LIST_LIMIT) break;
    }
    entries.sort((a, b) => a.key.localeCompare(b.key));
    return { entries };
  },
};
