/**
 * Bulk writes too large for one statement, as several in one transaction. One statement of 100,000 rows
 * held the process's other calls while it was built and sent (node-postgres copies every parameter into
 * its message in one go: 1.5-2.8 s for 100,000 values of 1 KiB here); statements of a few thousand rows
 * each, with the event loop let through between them, hold them a few ms at a time. In one transaction,
 * the write stays what one statement was: all rows or none, and seen by others all at once at COMMIT.
 */
import { QueryError } from '../errors.js';
import type { Statement } from '../sql/index.js';
import type { Executor } from './executor.js';
import { retryable } from './forms.js';
import type { TransactionQuery } from './types.js';

/** At most this many rows per statement of a large write. */
export const CHUNK_ROWS = 5000;
/** At most this many bytes of values per statement of a large write (a larger value goes alone). */
export const CHUNK_BYTES = 1024 * 1024;

/** How often a transaction that lost a deadlock (or was refused a form, see Forms) runs at most. */
const MAX_ATTEMPTS = 5;

/**
 * Before running again, a deadlock victim waits about this long, doubled at each attempt, with jitter: run again
 * at once, it took its first rows' locks while the winner still wrote, and two writers of the same keys in
 * opposite orders chose each other as victims three times out of three (bulk-chunks.test.ts).
 */
const BACKOFF_MS = 100;

const backoff = (attempt: number) => new Promise((resolve) => setTimeout(resolve, BACKOFF_MS * 2 ** (attempt - 1) * (0.5 + Math.random())));

/** `items` cut, in order, into runs of at most {@link CHUNK_ROWS} items and {@link CHUNK_BYTES} bytes. */
export function chunksOf<T>(items: readonly T[], bytesOf: (item: T) => number = () => 0): T[][] {
  const chunks: T[][] = [];
  let chunk: T[] = [];
  let bytes = 0;
  for (const item of items) {
    const size = bytesOf(item);
    if (chunk.length > 0 && (chunk.length === CHUNK_ROWS || bytes + size > CHUNK_BYTES)) {
      chunks.push(chunk);
      chunk = [];
      bytes = 0;
    }
    chunk.push(item);
    bytes += size;
  }
  if (chunk.length > 0) chunks.push(chunk);
  return chunks;
}

/**
 * Runs `fn`'s statements in one transaction (see {@link Executor.transaction}), all again from BEGIN when
 * PostgreSQL chose it as a deadlock victim (bulk writers that overlap lock rows in different orders; after a
 * {@link BACKOFF_MS} wait) or
 * Citus refused a form because the table was distributed meanwhile, as one statement would have been.
 */
export async function inOneTransaction<T>(exec: Executor, fn: (query: TransactionQuery) => Promise<T>): Promise<T> {
  for (let attempt = 1; ; attempt++) {
    let last: { statement: Statement; sent: Statement } | undefined;
    try {
      return await exec.transaction(async (query) => {
        // Each statement sees what is committed when it starts, as one statement outside a transaction did,
        // whatever default_transaction_isolation the role or database sets: under REPEATABLE READ the later
        // statements would keep the first one's snapshot and fail on rows changed meanwhile.
        await query('SET TRANSACTION ISOLATION LEVEL READ COMMITTED');
        return fn((statement, values, timeoutMs) => {
          if (typeof statement !== 'string') last = { statement, sent: exec.forms.of(statement) };
          return query(statement, values, timeoutMs);
        });
      });
    } catch (error) {
      const code = error instanceof QueryError ? error.sqlState : undefined;
      const again = retryable(code) || (last !== undefined && (await exec.forms.switched(last.statement, last.sent, code)));
      if (attempt >= MAX_ATTEMPTS || !again) throw error;
      if (retryable(code)) await backoff(attempt);
    }
  }
}
