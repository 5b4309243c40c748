/**
 * The demo's cache logger: failures printed with who saw them, until the demo is stopping. On Ctrl-C the
 * terminal signals the whole process group, the embedded PostgreSQL included, which terminates every
 * connection at once: those expected failures are not printed. A line waits 200 ms before it is printed,
 * because a process may see its connections fail a moment before it sees the signal.
 */
import type { CacheLogger } from 'cache-postgres';

export function demoLogger(who: string): { logger: CacheLogger; mute(): void } {
  let muted = false;
  const print = (line: string) => {
    setTimeout(() => muted || console.error(line), 200).unref();
  };
  return {
    logger: {
      error: (error) => print(`[${who}] cache error: ${error.message}`),
      warn: (message) => print(`[${who}] ${message}`),
    },
    mute: () => void (muted = true),
  };
}
