import type { Statement } from './sql.js';

/** Runs one statement and resolves with its rows: the executor's `query`, or a caller's connection's. */
export type RunStatement = <R extends object = Record<string, unknown>>(statement: Statement, values: unknown[]) => Promise<R[]>;

/**
 * Runs a batch-delete statement (see `deleteBatch` in sql.ts) until a batch selects fewer rows than
 * its limit, so a million matching rows never sit under one long-held set of locks. `values` is
 * called per batch so each one gets a fresh `now`. Resolves to the live entries deleted.
 */
export async function deleteInBatches(
  run: RunStatement,
  statement: Statement,
  batchSize: number,
  values: () => unknown[],
): Promise<number> {
  let deleted = 0;
  for (;;) {
    const [row] = await run<{ selected: number; deleted: number }>(statement, values());
    deleted += Number(row?.deleted ?? 0);
    if (!row || Number(row.selected) < batchSize) return deleted;
  }
}
