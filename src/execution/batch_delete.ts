import { readRows, type RowShape } from './caller_answers.js';
import { UnreadableResultError } from '../errors.js';
import type { Statement } from '../sql/index.js';

/**
 * Runs one statement and resolves with its rows: the executor's `query`, or a caller's connection's. `shape` is
 * what the statement returns: a caller's connection checks its answer against it (the store's pool needs not).
 */
export type RunStatement = <R extends object = Record<string, unknown>>(statement: Statement, values: unknown[], shape?: RowShape) => Promise<R[]>;

/**
 * Most batches one call runs: past it, it stops with an {@link UnreadableResultError} rather than go on without
 * end (a billion rows at the default `deleteBatchSize`; a client that always answers "one more full batch" is
 * stopped after a few seconds).
 */
export const MAX_DELETE_BATCHES = 1_000_000;
/** Batches between two turns given to the event loop, so answers that need no I/O cannot starve it. */
const YIELD_EVERY = 1000;

/**
 * What a batch answers: one row, `selected` (rows it locked and deleted; a full batch means there may be more)
 * and `deleted` (of them, those that had not expired), whole numbers with deleted <= selected <= the batch size.
 */
export function batchShape(batchSize: number): RowShape {
  return {
    columns: { selected: 'count', deleted: 'count' },
    minRows: 1,
    maxRows: 1,
    check: ([row]) => {
      const { selected, deleted } = row as { selected: number; deleted: number };
      if (selected > batchSize) return `the row says it selected ${selected} rows in a batch of at most ${batchSize}`;
      if (deleted > selected) return `the row says it deleted ${deleted} of the ${selected} rows it selected`;
      return undefined;
    },
  };
}

/**
 * Runs a batch-delete statement (see `deleteBatch` in sql/bulk.ts) until a batch selects fewer rows than
 * its limit, so a million matching rows never sit under one long-held set of locks. `values` is
 * called per batch so each one gets a fresh `now`. Resolves to the live entries deleted.
 * @throws {UnreadableResultError} for an answer that is not a batch's (a count missing, not a whole number,
 *   larger than the batch), or after {@link MAX_DELETE_BATCHES} full batches; the batches before it ran
 */
export async function deleteInBatches(
  run: RunStatement,
  statement: Statement,
  batchSize: number,
  values: () => unknown[],
): Promise<number> {
  const shape = batchShape(batchSize);
  let deleted = 0;
  for (let batch = 1; batch <= MAX_DELETE_BATCHES; batch++) {
    const row = await oneBatch(run, statement, values(), shape, deleted);
    deleted += row.deleted;
    if (row.selected < batchSize) return deleted;
    if (batch % YIELD_EVERY === 0) await new Promise<void>((resolve) => setImmediate(resolve));
  }
  throw new UnreadableResultError(
    statement.label,
    true,
    `Statement "${statement.label}" answered ${thousands(MAX_DELETE_BATCHES)} full batches of ${batchSize} in a row: stopped there rather than go on ` +
      `without end. ${deleted} live entries were deleted (with ext.in(), in your transaction: roll it back if its client does not pass on ` +
      'what PostgreSQL answers). If that many rows really match, call again to go on, or raise deleteBatchSize.',
  );
}

/**
 * Runs a batch-delete statement over `ids`, `batchSize` of them at a time (`values(chunk)` gives each batch's
 * values). Resolves to the live entries deleted.
 * @throws {UnreadableResultError} for an answer that is not a batch's; the batches before it ran
 */
export async function deleteListedInBatches(
  run: RunStatement,
  statement: Statement,
  ids: readonly string[],
  batchSize: number,
  values: (chunk: readonly string[]) => unknown[],
): Promise<number> {
  const shape = batchShape(batchSize);
  let deleted = 0;
  for (let at = 0; at < ids.length; at += batchSize) {
    deleted += (await oneBatch(run, statement, values(ids.slice(at, at + batchSize)), shape, deleted)).deleted;
  }
  return deleted;
}

async function oneBatch(run: RunStatement, statement: Statement, values: unknown[], shape: RowShape, deleted: number): Promise<{ selected: number; deleted: number }> {
  // A caller's client checks its answer against the shape; the store's pool is checked here.
  const read = readRows(await run(statement, values, shape), shape);
  if ('problem' in read) {
    throw new UnreadableResultError(
      statement.label,
      true,
      `Statement "${statement.label}" answered in a form the batch delete cannot go on from: ${read.problem} (node-postgres returns ` +
        `its counts as numbers unless its type parser for int4 was replaced). ${deleted} live entries were deleted by the batches before it.`,
    );
  }
  return read.rows[0] as { selected: number; deleted: number };
}

function thousands(n: number): string {
  return String(n).replace(/\B(?=(\d{3})+(?!\d))/g, ',');
}
