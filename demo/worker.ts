/**
 * A dashboard worker process: its own stores on the demo's table, driven by the server over IPC.
 * Two of them stand for two application processes, so stampedes, counters and locks cross processes.
 * It exits when the server goes away (the IPC channel closes), whatever the reason.
 */
import Keyv from 'keyv';
import { type LockHandle, PgStore } from 'cache-postgres';
import { createPgCache } from 'cache-postgres/cache-manager';
import { demoLogger } from './logger.js';
import type { WorkerReply, WorkerRequest } from './workers.js';

const FACTORY_MS = 200;
const name = `worker ${process.env.DEMO_WORKER ?? '?'} (pid ${process.pid})`;
const { logger, mute } = demoLogger(name);
const store = new PgStore({ table: process.env.DEMO_TABLE ?? 'cache', retainExpiredFor: '1h', logger, maxSize: process.env.DEMO_MAX_SIZE ?? '64MB' });
const keyv = new Keyv({ store, namespace: 'demo' });
// cache-manager over its own store: two Keyv instances on one store would share one namespace.
const cache = createPgCache({ store: { table: process.env.DEMO_TABLE ?? 'cache', logger }, namespace: 'demo-wrap' });
const locks = new Map<string, { handle: LockHandle; timer: NodeJS.Timeout }>();
keyv.on('error', () => {}); // the logger prints them; failures also reach the caller as rejections

// Once the server is gone (the channel closed), there is no one to tell: dropped, not thrown (ERR_IPC_CHANNEL_CLOSED).
const send = (message: WorkerReply) => {
  if (process.connected) process.send?.(message, undefined, undefined, () => {});
};
const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

/** The expensive computation of the stampede panel: 200 ms, announced to the server as it starts. */
async function factory(run: string): Promise<string> {
  send({ event: 'factory', run });
  await sleep(FACTORY_MS);
  return `computed by ${name} at ${new Date().toISOString()}`;
}

const commands: Record<string, (args: Record<string, unknown>) => Promise<unknown>> = {
  async stampede({ key, mode, count, run }) {
    const k = String(key);
    const one = async (): Promise<string> => {
      if (mode === 'naive') {
        const hit = await keyv.get<string>(k);
        if (hit !== undefined) return hit;
        const value = await factory(String(run));
        await keyv.set(k, value, 60_000);
        return value;
      }
      if (mode === 'wrap') return cache.wrap(k, () => factory(String(run)), 60_000);
      return (await store.ext.getOrSet(`demo:${k}`, () => factory(String(run)), { absoluteExpirationRelative: '1m' })).toString('utf8');
    };
    const values = await Promise.all(Array.from({ length: Number(count) }, one));
    return { distinctValues: new Set(values).size };
  },
  async incr({ key, mode, count }) {
    const k = String(key);
    await Promise.all(
      Array.from({ length: Number(count) }, async () => {
        if (mode === 'atomic') return store.ext.incr(`demo:${k}`);
        const current = Number((await keyv.get<number>(k)) ?? 0);
        await keyv.set(k, current + 1);
      }),
    );
    return { done: Number(count) };
  },
  async lock({ name: lockName, ttlMs }) {
    const n = String(lockName);
    const ttl = Number(ttlMs);
    const handle = await store.ext.lock(n, { ttl, wait: '30s' });
    // A live holder renews its lease; a crashed one (SIGKILL from the server) cannot, so its lease runs out.
    const timer = setInterval(() => {
      handle.extend().then(
        () => send({ event: 'extended', name: n, token: handle.token.toString() }),
        () => clearInterval(timer),
      );
    }, ttl / 3);
    locks.set(n, { handle, timer });
    return { token: handle.token.toString(), holder: name };
  },
  async unlock({ name: lockName }) {
    const held = locks.get(String(lockName));
    if (!held) return { released: false };
    clearInterval(held.timer);
    locks.delete(String(lockName));
    await held.handle.release();
    return { released: true };
  },
  async stats() {
    const [a, b] = await Promise.all([store.stats(), cache.pgStore.stats()]);
    const sum = (field: 'hits' | 'misses' | 'staleServed' | 'factoryCalls' | 'expiredDeleted') => a[field] + b[field];
    return { hits: sum('hits'), misses: sum('misses'), staleServed: sum('staleServed'), factoryCalls: sum('factoryCalls'), expiredDeleted: sum('expiredDeleted') };
  },
};

process.on('message', (message: WorkerRequest) => {
  const command = commands[message.cmd];
  if (!command) {
    send({ id: message.id, ok: false, error: `unknown command ${message.cmd}` });
    return;
  }
  command(message.args).then(
    (value) => send({ id: message.id, ok: true, value }),
    (error: unknown) => send({ id: message.id, ok: false, error: error instanceof Error ? error.message : String(error) }),
  );
});

// Ctrl-C, or a closing terminal's SIGHUP, reaches the whole process group: the server decides when workers stop
// (and if it is gone, the closed channel stops them).
for (const signal of ['SIGINT', 'SIGTERM', 'SIGHUP'] as const) process.on(signal, mute);
process.on('disconnect', () => {
  mute();
  void (async () => {
    for (const { timer, handle } of locks.values()) {
      clearInterval(timer);
      await handle.release().catch(() => {});
    }
    await Promise.allSettled([keyv.disconnect(), cache.disconnect()]);
    process.exit(0);
  })();
});
try {
  await store.ready();
  send({ event: 'ready', pid: process.pid });
} catch (error) {
  // The server reports that this worker ended before it was ready; its reason is printed here, without a stack.
  console.error(`${name} could not start: ${error instanceof Error ? error.message : String(error)}`);
  process.exit(1);
}
