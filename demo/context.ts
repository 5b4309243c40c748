/** What every panel of the dashboard works with: the server's stores, the worker processes, live counts. */
import type Keyv from 'keyv';
import type pg from 'pg';
import type { PgStore } from 'cache-postgres';
import type { WorkerPool } from './workers.js';
import type { Body } from './http.js';

export interface DemoContext {
  /** The server's own store (Keyv namespace `demo`), keeping expired rows an hour for the failover panel. */
  readonly store: PgStore;
  readonly keyv: Keyv;
  /** Two stores with `localCache`, standing for two processes (the local tier panel). */
  readonly localA: PgStore;
  readonly localB: PgStore;
  /** A store with `localCache: { notifyTrigger: true }` on `<table>_xlang`: its tier hears every writer, plain SQL included. */
  readonly localTriggered: PgStore;
  /** Plain connections to the demo's database, for what another service would send (SQL of its own). */
  readonly pool: pg.Pool;
  readonly workers: WorkerPool;
  readonly databaseUrl: string;
  readonly table: string;
  /** Factory calls announced by the workers, by stampede run id. */
  readonly factoryCalls: Map<string, number>;
  /** Lease renewals announced by the workers: lock name -> when the lease was last extended, and by whom. */
  readonly leases: Map<string, { token: string; worker: number; extendedAt: number }>;
}

export type Handler = (body: Body, ctx: DemoContext, query: URLSearchParams) => Promise<unknown>;

/** A panel's routes, e.g. `'POST /api/stampede'`. */
export type Routes = Record<string, Handler>;
