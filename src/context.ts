import type { Rows } from './batching/rows.js';
import type { Executor } from './execution/executor.js';
import type { Observer } from './observer.js';
import type { ResolvedOptions } from './options/index.js';
import type { Sql } from './sql/index.js';

/**
 * What a store shares with the modules built on it (`store.ext` and later layers): the executor, the
 * statements and the resolved options, plus the one gate every operation passes. Nothing else of the
 * store is reachable from them.
 */
export interface StoreContext {
  readonly exec: Executor;
  /** Single-key reads and writes, batched per tick when the store's `batching` is on. */
  readonly rows: Rows;
  /** Counters and events. */
  readonly observer: Observer;
  readonly sql: Sql;
  readonly options: ResolvedOptions;
  /** Aborted when the store's disconnect() begins: a wait between two attempts ends at once. */
  readonly closing: AbortSignal;
  /**
   * Resolves once the table is ready; rejects with StoreClosedError after disconnect(). Undefined when
   * the store is ready and open: hot paths then skip the await (measured: +15% on a read-heavy mix).
   */
  prepare(operation: string): Promise<void> | undefined;
}

/** The application clock as the ISO string every statement receives as `now`. */
export function isoNow(context: StoreContext): string {
  return new Date(context.options.clock()).toISOString();
}
