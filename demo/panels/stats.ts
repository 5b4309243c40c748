/** Live stats: the counters of every store of the demo (server and workers) and the table's size. */
import type { DemoContext, Routes } from '../context.js';

interface WorkerStats {
  hits: number;
  misses: number;
  staleServed: number;
  factoryCalls: number;
  expiredDeleted: number;
}

/** How long a worker's stats are waited for before its last ones are counted (a worker starting again after a crash). */
const WORKER_STATS_MS = 500;

/**
 * The stats routes. Each worker process's counters are kept as last read, by pid, also once the process is gone:
 * the totals count what a crashed worker did (as of its last read, at most a second before it died), instead of
 * dropping as it goes.
 */
export function statsRoutes(): Routes {
  const lastRead = new Map<number, WorkerStats>();
  const readWorkers = (ctx: DemoContext) =>
    Promise.all(
      ctx.workers.pids().map(async (pid, index) => {
        let timer: ReturnType<typeof setTimeout> | undefined;
        const late = new Promise<undefined>((resolve) => {
          timer = setTimeout(() => resolve(undefined), WORKER_STATS_MS);
        });
        try {
          const stats = await Promise.race([ctx.workers.call<WorkerStats>(index, 'stats'), late]);
          if (stats) lastRead.set(pid, stats);
        } catch {
          // gone or not ready: its last read counts
        } finally {
          clearTimeout(timer);
        }
      }),
    );
  return {
    async 'GET /api/stats'(_body, ctx) {
      const [server, a, b] = await Promise.all([ctx.store.stats(), ctx.localA.stats(), ctx.localB.stats(), readWorkers(ctx)]);
      const workers = [...lastRead.values()];
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
        workerProcesses: { running: ctx.workers.size, counted: lastRead.size },
      };
    },
  };
}
