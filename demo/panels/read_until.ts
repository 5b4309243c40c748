/** Polling the panels share: read until a condition holds, and how a panel's own keys stay apart. */

/**
 * Calls `read` until `done(value)` holds or `limitMs` has passed, with `pause` between calls (a turn of the event
 * loop by default). `ms`: from the start to the read that satisfied it, 0.1 ms precision; null when none did.
 */
export async function readUntil<T>(
  read: () => Promise<T>,
  done: (value: T) => boolean,
  limitMs: number,
  pause: () => Promise<unknown> = () => new Promise((resolve) => setImmediate(resolve)),
): Promise<{ value: T; reads: number; ms: number | null }> {
  const started = performance.now();
  for (let reads = 1; ; reads++) {
    const value = await read();
    if (done(value)) return { value, reads, ms: Math.round((performance.now() - started) * 10) / 10 };
    if (performance.now() - started >= limitMs) return { value, reads, ms: null };
    await pause();
  }
}

/** A key no other click uses, even two in the same millisecond. */
export const uniqueKey = (prefix: string) => `${prefix}:${Date.now()}:${Math.random().toString(36).slice(2, 8)}`;
