import { constants } from 'node:os';

/**
 * How the dashboard stops, however it is stopped: SIGINT, SIGTERM or SIGHUP (the terminal closing) to the server,
 * to its process group, or to npm above it (npm passes SIGINT and SIGTERM on; when npm itself ends, this process
 * is handed to another parent, which is watched for). The first stops everything in order; a second signal (or a
 * stop still under way after {@link STOP_DEADLINE_MS}) stops at once: `now()` kills what it can and the process
 * exits, and the embedded PostgreSQL's watchdog stops the server and removes its directory.
 *
 * One Ctrl-C reaches this process twice: from the terminal, to the whole group, and from npm, which passes it on.
 * So a signal counts as a second one only {@link SAME_STROKE_MS} after the first.
 */

/** A stop still under way after this long goes on at once. */
export const STOP_DEADLINE_MS = 20_000;
/** Signals closer than this to the first are the same keystroke, delivered twice (terminal and npm). */
export const SAME_STROKE_MS = 1000;
/** How often the parent process is looked at. */
const PARENT_POLL_MS = 500;
/** The parent at start: read when this module loads, before the database starts (npm may be killed meanwhile). */
const PARENT = process.ppid;

export interface Stopping {
  /** Stops everything in order; resolves when done. Called once. */
  stop(reason: string): Promise<void>;
  /** Kills at once what can be killed without waiting (workers, a benchmark under way). */
  now(): void;
  log(line: string): void;
}

export function stopOnSignals({ stop, now, log }: Stopping): { stopping(): boolean; request(reason: string): void } {
  let first: number | undefined;
  const atOnce = (why: string, code: number) => {
    log(`${why}: stopping at once (PostgreSQL's watchdog removes its directory).`);
    try {
      now();
    } finally {
      process.exit(code);
    }
  };
  const request = (reason: string) => {
    if (first !== undefined) return;
    first = Date.now();
    const deadline = setTimeout(() => atOnce(`still stopping after ${STOP_DEADLINE_MS / 1000} s`, 1), STOP_DEADLINE_MS);
    void stop(reason).then(
      () => process.exit(), // with process.exitCode, when a failure to start set one
      (error: unknown) => {
        log(`while stopping: ${error instanceof Error ? error.message : String(error)}`);
        process.exit(1);
      },
    );
    deadline.unref();
  };
  for (const signal of ['SIGINT', 'SIGTERM', 'SIGHUP'] as const) {
    process.on(signal, () => {
      if (first === undefined) request(signal);
      else if (Date.now() - first >= SAME_STROKE_MS) atOnce(`${signal} again`, 128 + constants.signals[signal]);
    });
  }
  // npm ended (SIGTERM to npm alone, or SIGKILL): this process now has another parent.
  const check = () => {
    if (process.ppid !== PARENT) request(`the parent process (${PARENT}) ended`);
  };
  check();
  setInterval(check, PARENT_POLL_MS).unref();
  // A closed terminal: writing to it fails (EIO, EPIPE); the stop goes on without the messages.
  for (const stream of [process.stdout, process.stderr]) stream.on('error', () => {});
  return { stopping: () => first !== undefined, request };
}
