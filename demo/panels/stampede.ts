/**
 * Stampede: N concurrent requests for one cold key, split over the two worker processes, with a 200 ms
 * factory. Naive Keyv get-then-set computes once per caller; `ext.getOrSet` and `createPgCache().wrap`
 * compute once across both processes (a PostgreSQL advisory lock on the key).
 */
import { type Body, HttpError, intField, oneOf } from '../http.js';
import type { DemoContext, Routes } from '../context.js';

const MODES = ['naive', 'getOrSet', 'wrap'] as const;
const RUN_ID = /^[A-Za-z0-9-]{1,40}$/;

function runId(body: Body | URLSearchParams): string {
  const run = body instanceof URLSearchParams ? body.get('run') : body['run'];
  if (typeof run !== 'string' || !RUN_ID.test(run)) throw new HttpError(400, '"run" must be 1 to 40 letters, digits or dashes.');
  return run;
}

export const stampedeRoutes: Routes = {
  async 'POST /api/stampede'(body, ctx: DemoContext) {
    const count = intField(body, 'count', 2, 200, 20);
    const mode = oneOf(body, 'mode', MODES, 'getOrSet');
    const run = runId(body);
    ctx.factoryCalls.set(run, 0);
    const key = `stampede:${mode}:${run}`;
    const started = performance.now();
    const half = Math.ceil(count / 2);
    let parts: Array<{ distinctValues: number }>;
    try {
      parts = await Promise.all([
        ctx.workers.call<{ distinctValues: number }>(0, 'stampede', { key, mode, count: half, run }),
        ctx.workers.call<{ distinctValues: number }>(1, 'stampede', { key, mode, count: count - half, run }),
      ]);
    } catch (error) {
      ctx.factoryCalls.delete(run); // a worker failed or was killed: the run's count is not kept forever
      throw error;
    }
    const ms = performance.now() - started;
    const factoryCalls = ctx.factoryCalls.get(run) ?? 0;
    ctx.factoryCalls.delete(run);
    return { mode, count, processes: 2, factoryCalls, distinctValues: Math.max(...parts.map((p) => p.distinctValues)), ms: Math.round(ms) };
  },
  async 'GET /api/stampede/live'(_body, ctx, query) {
    return { factoryCalls: ctx.factoryCalls.get(runId(query)) ?? 0 };
  },
};
