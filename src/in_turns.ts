/**
 * Work on many items done in turns: a call on 100,000 keys builds its answer in slices with the event loop
 * let through between them, so the process's other calls are not held while it does (about 1 µs a row).
 */

/**
 * From this many keys a call is large: issue order tracks it as one entry (batching/key_order.ts), its read goes
 * on a connection of its own (execution/row_statements.ts), and its answer is built in turns (below).
 */
export const LARGE_CALL = 1000;

/** Rows handled between two turns of the event loop: a few milliseconds of work. */
export const ROWS_PER_TURN = 2000;

/** Resolves on the event loop's next turn, after the I/O that is ready (setImmediate). */
export function nextTurn(): Promise<void> {
  return new Promise((resolve) => setImmediate(resolve));
}

/** Calls `each` on every item, letting the event loop through after every {@link ROWS_PER_TURN} of them. */
export async function forEachInTurns<T>(items: Iterable<T>, each: (item: T) => void): Promise<void> {
  let count = 0;
  for (const item of items) {
    each(item);
    if (++count % ROWS_PER_TURN === 0) await nextTurn();
  }
}

/** How a call on `count` keys goes over its rows: in turns when it is large ({@link LARGE_CALL}), else at once. */
export function forEachFor(count: number): <T>(items: Iterable<T>, each: (item: T) => void) => Promise<void> | void {
  return count >= LARGE_CALL ? forEachInTurns : forEachAtOnce;
}

/** {@link forEachInTurns}'s counterpart for few items: all at once. */
export function forEachAtOnce<T>(items: Iterable<T>, each: (item: T) => void): void {
  for (const item of items) each(item);
}
