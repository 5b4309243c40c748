import type { EventEmitter } from 'node:events';
import { CachePostgresError, StoreClosedError } from '../errors.js';
import type { CacheLogger } from '../options/index.js';

/**
 * Where a store's failures that nobody awaits go, and its events: the store's logger and its 'error'
 * listeners, else one process warning (never a crash). One place, so every background path (the expiry
 * scan, the local tier's notices, an idle pooled connection) reports the same way.
 */
export class Reporter {
  readonly #emitter: EventEmitter;
  readonly #logger: CacheLogger | undefined;
  readonly #closed: () => boolean;

  /** @param closed true once the store's disconnect() began: work cut short by it is not news */
  constructor(emitter: EventEmitter, logger: CacheLogger | undefined, closed: () => boolean) {
    this.#emitter = emitter;
    this.#logger = logger;
    this.#closed = closed;
  }

  /** An event of the store's (hits, misses, ...); 'error' goes through {@link Reporter.background}. */
  event(name: string, ...args: unknown[]): void {
    if (name === 'error') this.background(args[0]);
    else this.#emitter.emit(name, ...args);
  }

  /** A call's own failure, also told to the 'error' listeners when there are any (Keyv 5 drops get's rejections). */
  report(error: unknown): void {
    if (this.#emitter.listenerCount('error') > 0) this.#emitError(error);
  }

  /**
   * Failures nobody awaits: to the logger, and an 'error' event when someone listens; with neither, a
   * process warning (never a crash).
   */
  background(error: unknown): void {
    if (!this.tell(error)) process.emitWarning(asError(error).message, { code: 'CACHE_POSTGRES_BACKGROUND_ERROR' });
  }

  /**
   * A background failure to this store's logger and 'error' listeners.
   * @returns false when it has neither; true once told, or when the failure is not news (work cut short by disconnect())
   */
  tell(error: unknown): boolean {
    // After disconnect(), work cut short by it is not news.
    if (this.#closed() && (!(error instanceof CachePostgresError) || error instanceof StoreClosedError)) return true;
    const logger = this.#logger;
    logger?.error(asError(error));
    const heard = this.#emitter.listenerCount('error') > 0 && this.#emitError(error);
    return heard || logger !== undefined;
  }

  /** A configuration that works until it quietly does not: to the logger, else a process warning. */
  warn(message: string): void {
    if (this.#logger) this.#logger.warn(message);
    else process.emitWarning(message, { code: 'CACHE_POSTGRES_CONFIG' });
  }

  /**
   * An 'error' event that can never throw here: Keyv 6 forwards it to its own emitter, which throws when
   * the application listens to none (then the call's own rejection, or the process warning, says it).
   * @returns false when delivering it threw
   */
  #emitError(error: unknown): boolean {
    try {
      this.#emitter.emit('error', asError(error));
      return true;
    } catch {
      return false;
    }
  }
}

export function asError(error: unknown): Error {
  return error instanceof Error ? error : new Error(String(error));
}
