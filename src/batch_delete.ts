import type { Executor } from './executor.js';
import type { Statement } from './sql.js';

/**
 * Runs a batch-delete statement (see `deleteBatch` in sql.ts) until a batch selects fewer rows than
 * its limit, so a million matching rows never sit under one long-held set of locks. `values` is
 * called per batch so each one gets a fresh `now`. Resolves to the live entries deleted.
 */
export async function deleteInBatches(
  exec: Executor,
  statement: Statement,
  batchSize: number,
  values: () => unknown[],
): Promise<number> {
  let deleted = 0;
  for (;;) {
    const [row] = await exec.query<{ selected: number; deleted: number }>(statement, values());
    deleted += row?.deleted ?? 0;
    if (!row || row.selected < batchSize) return deleted;
  }
}
