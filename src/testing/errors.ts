import { CachePostgresError } from '../errors.js';

/** The step of the embedded PostgreSQL's start that failed. */
export type EmbeddedStep = 'binaries' | 'user' | 'directory' | 'initdb' | 'start';

/**
 * The embedded PostgreSQL of `startTestDatabase()` could not be started. The message says which step
 * failed and why, followed by the last lines PostgreSQL printed (also in {@link serverLog}).
 * Nothing is left behind: what the start had created is removed before this is thrown.
 */
export class TestDatabaseError extends CachePostgresError {
  static readonly code = 'E_TEST_DATABASE';
  /** What failed: finding the binaries, the OS user to run them as, the temporary directory, initdb or the server. */
  readonly step: EmbeddedStep;
  /** The last lines PostgreSQL (initdb or the server) printed, oldest first; empty when it did not run. */
  readonly serverLog: readonly string[];

  constructor(step: EmbeddedStep, message: string, options: { cause?: unknown; serverLog?: readonly string[] } = {}) {
    const log = options.serverLog ?? [];
    super(TestDatabaseError.code, log.length > 0 ? `${message}\n${log.join('\n')}` : message, 'cause' in options ? { cause: options.cause } : undefined);
    this.step = step;
    this.serverLog = log;
  }
}
