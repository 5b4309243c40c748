/**
 * The demo's cache logger: failures printed with who saw them, until the demo is stopping. On Ctrl-C the
 * terminal signals the whole process group, the embedded PostgreSQL included, which terminates every
 * connection at once: those expected failures are not printed. A line waits 200 ms before it is printed,
 * because a process may see its connections fail a moment before it sees the signal.
 */
import type { CacheLogger } from 'cache-postgres';

export function demoLogger(who: string): { logger: CacheLogger; mute(): void } {
  let muted = false;
  const print = (line: string, after = 200) => {
    setTimeout(() => muted || console.error(line), after).unref();
  };
  return {
    logger: {
      error: (error) => print(`[${who}] cache error: ${error.message}`, serverShutdown(error) ? 3000 : 200),
      warn: (message) => print(`[${who}] ${message}`),
    },
    mute: () => void (muted = true),
  };
}

/** The server ended the connection because it is shutting down (SQLSTATE 57P01), here or in the error's causes. */
function serverShutdown(error: unknown): boolean {
  for (let seen: unknown = error, depth = 0; seen && depth < 5; seen = (seen as { cause?: unknown }).cause, depth++) {
    const state = (seen as { sqlState?: string; code?: string }).sqlState ?? (seen as { code?: string }).code;
    if (state === '57P01' || /terminating connection due to administrator command/.test(String((seen as Error).message))) return true;
  }
  return false;
}
