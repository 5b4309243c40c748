/**
 * npm run bench:citus [-- --url postgres://coordinator/db --single postgres://plain/db --ops 300 --seed N]
 *
 * What distributing the cache table costs per operation, measured one call at a time (latency, not
 * throughput: on a test cluster whose nodes share a few cores, throughput says nothing about a real
 * one). Each operation runs against four tables, interleaved per round: a table on a plain PostgreSQL
 * (`--single`), a local table on the Citus coordinator, and tables distributed by id over 4 and 32
 * shards. Keys are drawn at random from 1,000 (a seeded generator), values 1 KiB. Prints the median
 * microseconds per call and the ratio to the plain server.
 *
 * Starts nothing: give it a coordinator (`../shared/citus/cluster.sh start` prints its URL; default
 * postgresql://root@127.0.0.1:57000/test) and a plain server (default postgres://root@127.0.0.1:5432/test).
 */
import { parseArgs } from 'node:util';
import Keyv from 'keyv';
import { PgStore } from '../src/index.js';
import { seededRandom } from './random.js';

const { values: args } = parseArgs({
  options: {
    url: { type: 'string', default: 'postgresql://root@127.0.0.1:57000/test' },
    single: { type: 'string', default: 'postgres://root@127.0.0.1:5432/test' },
    ops: { type: 'string', default: '300' },
    rounds: { type: 'string', default: '3' },
    seed: { type: 'string' },
  },
});
const OPS = Number(args.ops);
const ROUNDS = Number(args.rounds);
const SEED = args.seed === undefined ? Math.floor(Math.random() * 2 ** 31) : Number(args.seed);
const KEYS = 1000;
const VALUE = 'x'.repeat(1024);

interface Setup {
  name: string;
  store: PgStore;
  keyv: Keyv;
}

const setups: Array<{ name: string; url: string; table: string; distributed?: { shardCount: number } }> = [
  { name: 'plain PostgreSQL', url: args.single!, table: 'bench_citus_plain' },
  { name: 'coordinator, local table', url: args.url!, table: 'bench_citus_local' },
  { name: 'distributed, 4 shards', url: args.url!, table: 'bench_citus_4', distributed: { shardCount: 4 } },
  { name: 'distributed, 32 shards', url: args.url!, table: 'bench_citus_32', distributed: { shardCount: 32 } },
];

type Op = (s: Setup, key: () => string) => Promise<unknown>;
const operations: Array<[string, Op]> = [
  ['Keyv get (one key)', (s, key) => s.keyv.get(key())],
  ['Keyv set (one key)', (s, key) => s.keyv.set(key(), VALUE)],
  ['ext.get, sliding (read + slide)', (s, key) => s.store.ext.get(`s:${key()}`)],
  ['ext.getMany (10 keys)', (s, key) => s.store.ext.getMany(Array.from({ length: 10 }, key))],
  ['ext.incr', (s, key) => s.store.ext.incr(`n:${key()}`)],
  ['ext.getOrSet (hit)', (s, key) => s.store.ext.getOrSet(`s:${key()}`, () => VALUE)],
  ['lock + release', async (s, key) => (await s.store.ext.lock(`l:${key()}`)).release()],
  ['deleteTags (1 row, fan-out)', async (s, key) => {
    const k = key();
    await s.store.ext.set(`t:${k}`, 'v', { tags: [`tag:${k}`] });
    return s.store.ext.deleteTags([`tag:${k}`]);
  }],
  ['ext.scan prefix (10 rows, fan-out)', async (s, key) => {
    const out: string[] = [];
    for await (const id of s.store.ext.scan(`s:${key().slice(0, 5)}*`)) out.push(id);
    return out;
  }],
];

async function main() {
  const opened: Setup[] = [];
  for (const setup of setups) {
    const store = new PgStore({ uri: setup.url, table: setup.table, enableExpirationScan: false, ...(setup.distributed ? { distributed: setup.distributed } : {}) });
    try {
      await store.ready();
    } catch (error) {
      console.log(`${setup.name}: skipped (${(error as Error).message})`);
      await store.disconnect();
      continue;
    }
    const keyv = new Keyv({ store, namespace: 'b' });
    await store.ext.deletePattern('*', { all: true });
    for (let i = 0; i < KEYS; i += 100) {
      await store.ext.setMany(Object.fromEntries(Array.from({ length: 100 }, (_, j) => [`s:key:${String(i + j).padStart(4, '0')}`, VALUE])), { slidingExpiration: '1h' });
      await Promise.all(Array.from({ length: 100 }, (_, j) => keyv.set(`key:${String(i + j).padStart(4, '0')}`, VALUE)));
    }
    opened.push({ name: setup.name, store, keyv });
  }
  console.log(`seed ${SEED}, ${OPS} calls per operation and table per round, ${ROUNDS} rounds, one call at a time, 1 KiB values, ${KEYS} keys\n`);
  const samples = new Map<string, number[]>();
  for (let round = 0; round < ROUNDS; round++) {
    for (const [op, run] of operations) {
      for (const setup of round % 2 === 0 ? opened : [...opened].reverse()) {
        const random = seededRandom(SEED + round * 7919 + operations.findIndex(([o]) => o === op));
        const key = () => `key:${String(Math.floor(random() * KEYS)).padStart(4, '0')}`;
        for (let i = 0; i < 10; i++) await run(setup, key); // warm the connections
        const list = samples.get(`${op}\n${setup.name}`) ?? [];
        for (let i = 0; i < OPS; i++) {
          const t0 = performance.now();
          await run(setup, key);
          list.push((performance.now() - t0) * 1000);
        }
        samples.set(`${op}\n${setup.name}`, list);
      }
    }
  }
  const median = (list: number[]) => [...list].sort((a, b) => a - b)[Math.floor(list.length / 2)]!;
  const table = operations.map(([op]) => {
    const base = samples.get(`${op}\n${opened[0]!.name}`);
    const row: Record<string, string> = { operation: op };
    for (const setup of opened) {
      const m = median(samples.get(`${op}\n${setup.name}`)!);
      row[setup.name] = `${Math.round(m)} µs${base && setup !== opened[0] ? ` (${(m / median(base)).toFixed(1)}x)` : ''}`;
    }
    return row;
  });
  console.table(table);
  for (const { store } of opened) {
    await store.ext.deletePattern('*', { all: true }).catch(() => {});
    await store.disconnect();
  }
}

main().catch((error) => {
  console.error(error);
  process.exit(1);
});
