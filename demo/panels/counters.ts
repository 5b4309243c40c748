/**
 * Counters: N concurrent increments split over the two worker processes. `ext.incr` is one atomic
 * statement (exact total); Keyv get-then-set loses the updates that interleave.
 */
import { intField, oneOf } from '../http.js';
import type { Routes } from '../context.js';

export const countersRoutes: Routes = {
  async 'POST /api/counters'(body, ctx) {
    const count = intField(body, 'count', 1, 10_000, 1000);
    const mode = oneOf(body, 'mode', ['atomic', 'naive'] as const, 'atomic');
    const key = `counter:${mode}:${Date.now()}:${Math.random().toString(36).slice(2, 8)}`;
    const half = Math.ceil(count / 2);
    const started = performance.now();
    await Promise.all([
      ctx.workers.call(0, 'incr', { key, mode, count: half }),
      ctx.workers.call(1, 'incr', { key, mode, count: count - half }),
    ]);
    const ms = Math.round(performance.now() - started);
    const total = mode === 'atomic' ? Number((await ctx.store.ext.getString(`demo:${key}`)) ?? 0) : Number((await ctx.keyv.get<number>(key)) ?? 0);
    return { mode, expected: count, total, lost: count - total, ms };
  },
};
