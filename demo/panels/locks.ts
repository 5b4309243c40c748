/**
 * Locks: the two worker processes compete for one lease lock. A live holder renews its lease; "crash"
 * kills the holder's process (SIGKILL, no release), its lease runs out, and a waiter takes over with a
 * larger fencing token.
 */
import { HttpError, intField } from '../http.js';
import type { DemoContext, Routes } from '../context.js';

export const LOCK_NAME = 'demo-nightly-job';
const TTL_MS = 3000;
const LOG_LIMIT = 30;

export function locksRoutes(): Routes {
  const log: Array<{ at: number; text: string }> = [];
  const waiting = new Set<number>();
  let holder: { worker: number; token: string } | undefined;
  const note = (text: string) => {
    log.unshift({ at: Date.now(), text });
    log.length = Math.min(log.length, LOG_LIMIT);
  };
  const worker = (body: Record<string, unknown>) => intField(body, 'worker', 1, 2) - 1;

  return {
    async 'POST /api/locks/acquire'(body, ctx: DemoContext) {
      const index = worker(body);
      if (holder?.worker === index) throw new HttpError(409, `Worker ${index + 1} already holds the lock.`);
      if (waiting.has(index)) throw new HttpError(409, `Worker ${index + 1} is already waiting for the lock.`);
      waiting.add(index);
      note(`worker ${index + 1} asks for the lock`);
      try {
        const { token } = await ctx.workers.call<{ token: string }>(index, 'lock', { name: LOCK_NAME, ttlMs: TTL_MS });
        if (holder?.worker === -1) note("the crashed holder's lease ran out");
        holder = { worker: index, token };
        ctx.leases.set(LOCK_NAME, { token, worker: index, extendedAt: Date.now() });
        note(`worker ${index + 1} holds the lock, fencing token ${token}`);
        return { worker: index + 1, token };
      } catch (error) {
        note(`worker ${index + 1} did not get the lock: ${(error as Error).message}`);
        throw new HttpError(409, `Worker ${index + 1} did not get the lock: ${(error as Error).message}`);
      } finally {
        waiting.delete(index);
      }
    },
    async 'POST /api/locks/release'(body, ctx) {
      const index = worker(body);
      const { released } = await ctx.workers.call<{ released: boolean }>(index, 'unlock', { name: LOCK_NAME });
      if (!released) throw new HttpError(409, `Worker ${index + 1} does not hold the lock.`);
      if (holder?.worker === index) holder = undefined;
      ctx.leases.delete(LOCK_NAME);
      note(`worker ${index + 1} released the lock`);
      return { released };
    },
    async 'POST /api/locks/crash'(body, ctx) {
      const index = worker(body);
      // Answered the moment the process is gone: its replacement takes longer to start on a busy machine than the
      // lease takes to run out, and what the page shows meanwhile must be the crash, not a holder still alive.
      const { killed, started } = await ctx.workers.crash(index);
      note(`worker ${index + 1} crashed (pid ${killed} killed, no release)`);
      if (holder?.worker === index) {
        note(`its lease runs out within ${TTL_MS / 1000} s of its last renewal`);
        holder = { ...holder, worker: -1 };
      }
      waiting.delete(index);
      started.then(
        (pid) => note(`pid ${pid} replaces worker ${index + 1}`),
        (error: unknown) => note(`worker ${index + 1} could not be started again: ${(error as Error).message}`),
      );
      return { killed };
    },
    async 'GET /api/locks'(_body, ctx) {
      const locked = await ctx.store.ext.isLocked(LOCK_NAME);
      const lease = ctx.leases.get(LOCK_NAME);
      if (!locked && holder?.worker === -1) {
        note('the crashed holder\'s lease ran out: the lock is free');
        holder = undefined;
        ctx.leases.delete(LOCK_NAME);
      }
      return {
        name: LOCK_NAME,
        ttlMs: TTL_MS,
        locked,
        holder: holder ? { worker: holder.worker === -1 ? 'crashed' : holder.worker + 1, token: holder.token } : null,
        leaseEndsInMs: locked && lease ? Math.max(0, lease.extendedAt + TTL_MS - Date.now()) : null,
        waiting: [...waiting].map((i) => i + 1),
        log,
      };
    },
  };
}
