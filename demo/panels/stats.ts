/** Live stats: the counters of every store of the demo (server and workers) and the table's size. */
import type { Routes } from '../context.js';

interface WorkerStats {
  hits: number;
  misses: number;
  staleServed: number;
  factoryCalls: number;
  expiredDeleted: number;
}

export const statsRoutes: Routes = {
  async 'GET /api/stats'(_body, ctx) {
    const [server, a, b, workers] = await Promise.all([
      ctx.store.stats(),
      ctx.localA.stats(),
      ctx.localB.stats(),
      ctx.workers.all<WorkerStats>('stats').catch(() => [] as WorkerStats[]),
    ]);
    const sum = (field: keyof WorkerStats) => server[field] + a[field] + b[field] + workers.reduce((s, w) => s + w[field], 0);
    return {
      hits: sum('hits'),
      misses: sum('misses'),
      staleServed: sum('staleServed'),
      factoryCalls: sum('factoryCalls'),
      expiredDeleted: sum('expiredDeleted'),
      localHits: a.localHits + b.localHits,
      rows: server.rows,
      liveRows: server.liveRows,
      bytes: server.bytes,
      tableBytes: server.tableBytes,
      indexBytes: server.indexBytes,
      deadRows: server.deadRows,
      capacity: server.capacity,
      table: ctx.table,
    };
  },
};
