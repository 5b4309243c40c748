/** Live stats: the counters of every store of the demo (server and workers) and the table's size. */
import type { DemoContext, Routes } from '../context.js';
import { intField } from '../http.js';

interface WorkerStats {
  hits: number;
  misses: number;
  staleServed: number;
  factoryCalls: number;
  expiredDeleted: number;
}

/** The size of each value the fill button writes. */
const FILL_VALUE_BYTES = 64 * 1024;
/** How long a worker's stats are waited for before its last ones are counted (a worker starting again after a crash). */
const WORKER_STATS_MS = 500;

/**
 * The stats routes. Each worker process's counters are kept as last read, by pid, also once the process is gone:
 * the totals count what a crashed worker did (as of its last read, at most a second before it died), instead of
 * dropping as it goes.
 */
export function statsRoutes(): Routes {
  const lastRead = new Map<number, WorkerStats>();
  let fills = 0;
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
    /**
     * Writes `mb` MiB of 64 KiB values (keys `fill:<n>:<i>`, an hour each) through the server's store, to watch the
     * size cap evict: what the table holds climbs past it, and the sweeper (every second) evicts the oldest entries.
     */
    async 'POST /api/cap/fill'(body, ctx) {
      const mb = intField(body, 'mb', 1, 64, 16);
      const run = ++fills;
      const value = 'x'.repeat(FILL_VALUE_BYTES); // counted as its bytes; PostgreSQL compresses it on disk
      const entries = Array.from({ length: (mb * 1024 * 1024) / FILL_VALUE_BYTES }, (_, i) => [`fill:${run}:${i}`, value] as const);
      await ctx.store.ext.setMany(entries, { absoluteExpirationRelative: '1h' });
      return { entries: entries.length, bytes: entries.length * FILL_VALUE_BYTES, capacity: (await ctx.store.stats()).capacity };
    },
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
