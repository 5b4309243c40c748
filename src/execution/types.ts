import type { Statement } from '../sql/index.js';

/**
 * The readiness gate every statement passes (see {@link Executor}): undefined when the store is ready,
 * else a promise that settles once it is (the table created) or rejects (it could not be, or the store
 * was closed first). `operation` names the statement, for errors.
 */
export type Gate = (operation: string) => Promise<void> | undefined;

/** The executor's statements without the gate: for the readiness work itself. */
export interface SetupExecutor {
  /** What schema work is remembered per: see {@link Executor.schemaScope}. */
  readonly schemaScope: object;
  query<R extends object = Record<string, unknown>>(statement: Statement, values: unknown[]): Promise<R[]>;
  transaction<T>(fn: (query: TransactionQuery) => Promise<T>): Promise<T>;
}

/**
 * A connection the application holds, for `store.ext.in(client)`: a `pg.Client` or `pg.PoolClient`, or
 * any object whose `query(text, values)` runs PostgreSQL text with `$1`-style parameters on one
 * connection and resolves to the rows or to `{ rows }` (a few lines adapt Kysely's or Drizzle's
 * transaction: see docs/postgres-features.md).
 */
export interface CallerClient {
  query(text: string, values: unknown[]): unknown;
}

/** One statement of a pipeline and its parameters. */
export interface PipelinePart {
  readonly statement: Statement;
  readonly values: unknown[];
}

/**
 * Runs statements inside an open transaction; see {@link Executor.transaction}. `timeoutMs` replaces
 * the statement's time limit on the client side (Infinity: none), for a wait bounded otherwise.
 */
export type TransactionQuery = <R extends object = Record<string, unknown>>(
  statement: Statement | string,
  values?: unknown[],
  timeoutMs?: number,
) => Promise<R[]>;
