/**
 * A separate OS process for the multi-process tests. It reads its task from argv, prints `ready`,
 * waits for `go` on stdin (so every worker starts at the same moment), runs the task and prints one
 * JSON line with what it observed. Run with `node --import tsx worker.ts <task> <url> <table> ...`.
 */
import { createInterface } from 'node:readline';
import { PgStore } from '../../src/index.js';

const [task, url, table, ...args] = process.argv.slice(2);
// Watchers keep their copies an hour: a change they see can only have come by a notice. `watch-trigger`: a
// watcher whose store installs, and relies on, the cache table's notify trigger.
const localCache = task === 'watch' ? { ttl: '1h' } : task === 'watch-trigger' ? { ttl: '1h', notifyTrigger: true } : task === 'write';
const store = new PgStore({ uri: url!, table: table!, enableExpirationScan: false, poolMax: 5, localCache });
const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

async function stampede(key: string, callers: number, factoryMs: number) {
  let calls = 0;
  const values = await Promise.all(
    Array.from({ length: callers }, () =>
      store.ext.getOrSet(key, async () => {
        calls++;
        await sleep(factoryMs);
        return `computed by ${process.pid}`;
      }),
    ),
  );
  return { calls, values: values.map(String) };
}

async function increments(name: string, counterKey: string, times: number) {
  const observed: Array<{ token: string; read: number }> = [];
  for (let i = 0; i < times; i++) {
    await store.ext.withLock(
      name,
      async (lock) => {
        // A plain, non-atomic read-modify-write: only the lock keeps it correct.
        const read = Number((await store.ext.getString(counterKey)) ?? '0');
        await store.ext.set(counterKey, String(read + 1), { absoluteExpirationRelative: '1h' });
        observed.push({ token: lock.token.toString(), read });
      },
      { ttl: '10s', wait: '60s', retryInterval: '2ms' },
    );
  }
  return { observed };
}

async function early(key: string) {
  let calls = 0;
  const refreshed = new Promise<boolean>((resolve) => {
    store.once('refresh', () => resolve(true));
    // The other process may be the one refreshing: after this long, this one did not.
    setTimeout(() => resolve(false), 1500).unref();
  });
  const read = store.ext.early(async () => {
    calls++;
    await sleep(100);
    return `refreshed by ${process.pid}`;
  }, { key, ttl: '1m', earlyTtl: '30s' });
  const served = await read();
  return { served, refreshed: await refreshed, calls };
}

async function hold(name: string, ttl: string) {
  // The lease starts at the clock reading taken inside lock(), so no earlier than this.
  const leaseStartsNoEarlierThan = Date.now();
  const lock = await store.ext.lock(name, { ttl });
  return { token: lock.token.toString(), leaseStartsNoEarlierThan };
}

/** Reads `key` until its local tier answers (it listens, and holds the key). */
async function warm(key: string) {
  for (;;) {
    const { localHits } = await store.stats();
    await store.ext.get(key);
    if ((await store.stats()).localHits > localHits) return;
    await sleep(5);
  }
}

/** Reads `key` through the local tier every millisecond until it reads `until`: every value seen, in order. */
async function watch(key: string, until: string) {
  const seen: string[] = [];
  for (;;) {
    const value = (await store.ext.getString(key)) ?? '(missing)';
    if (seen[seen.length - 1] !== value) seen.push(value);
    if (value === until) return { seen };
    await sleep(1);
  }
}

/** Writes in a transaction, says so, and never commits: the parent kills this process there. */
async function crashInTransaction(key: string, value: string, dataTable: string) {
  const pg = (await import('pg')).default;
  const client = new pg.Client({ connectionString: url!, application_name: `cp-crash-${process.pid}` });
  await client.connect();
  await client.query('BEGIN');
  await client.query(`UPDATE ${dataTable} SET price = price + 1`);
  await store.ext.in(client).set(key, value, { absoluteExpirationRelative: '1h' });
  process.stdout.write(`${JSON.stringify({ written: true, pid: process.pid })}\n`);
  setInterval(() => {}, 1000); // the transaction stays open until the process is killed
}

async function main() {
  await store.ext.has('warm-up'); // table ready before the race starts
  if (task === 'watch' || task === 'watch-trigger') await warm(args[0]!);
  process.stdout.write('ready\n');
  const lines = createInterface({ input: process.stdin });
  await new Promise<void>((resolve) => lines.once('line', () => resolve()));
  let result: unknown;
  if (task === 'stampede') result = await stampede(args[0]!, Number(args[1]), Number(args[2]));
  else if (task === 'increments') result = await increments(args[0]!, args[1]!, Number(args[2]));
  else if (task === 'early') result = await early(args[0]!);
  else if (task === 'write') {
    await store.set(args[0]!, args[1]!); // its notification is sent before disconnect() resolves
    result = { written: true };
  }
  else if (task === 'watch' || task === 'watch-trigger') result = await watch(args[0]!, args[1]!);
  else if (task === 'crash-in-transaction') {
    await crashInTransaction(args[0]!, args[1]!, args[2]!);
    return;
  }
  else if (task === 'hold') {
    result = await hold(args[0]!, args[1]!);
    process.stdout.write(`${JSON.stringify(result)}\n`);
    setInterval(() => {}, 1000); // keep holding until killed
    return;
  } else throw new Error(`unknown task ${task}`);
  process.stdout.write(`${JSON.stringify(result)}\n`);
  lines.close();
  await store.disconnect();
}

main().catch((error) => {
  process.stderr.write(`${error?.stack ?? error}\n`);
  process.exit(1);
});
