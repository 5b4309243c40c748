import { spawnSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { expect } from 'chai';
import { dropTables, testUrl } from '../helpers/db.js';

const run = (file: string) =>
  spawnSync(process.execPath, ['--import', 'tsx', fileURLToPath(new URL(`../../examples/${file}`, import.meta.url))], {
    env: { ...process.env, DATABASE_URL: testUrl() },
    encoding: 'utf8',
    timeout: 60_000,
  });

describe('examples/ (the README\'s runnable examples)', function () {
  this.timeout(90_000);
  after(() => dropTables('cache', 'cache_locks'));

  const cases: Array<[string, RegExp[]]> = [
    ['cache-manager.ts', [/wrap: 10 callers, 1 load, user Ada/, /get: hello, ttl: 5s/]],
    ['cacheable.ts', [/product:1 -> \{ price: 10 \}/, /after invalidateTag -> undefined/, /getOrSet -> 42/]],
    ['cache-manager-v5.ts', [/get -> \{ name: 'Ada' \}/, /wrap -> 42/, /keys -> \[ 'answer', 'user:1' \]/]],
    ['transactions.ts', [/after COMMIT: \{"price":12\}/, /rolled back \(payment service down\): \{"price":12\}/, /after the Kysely transaction: undefined/, /after the Drizzle transaction: \{"price":16\}/]],
    ['invalidate-on.ts', [/'product:1': undefined/, /'product:2': '\{"price":20\}'/, /'product-list': undefined/, /ok: true/]],
    ['notify-trigger.ts', [/api reads price:42 from memory: 10/, /after a plain SQL UPDATE, api reads: 12 \(within a second\)/]],
    ['local-cache.ts', [/api reads price:42 from memory: \{ amount: 10 \}/, /after the worker wrote, api reads: \{ amount: 12 \}/, /entries held in api memory: [1-9]/]],
  ];
  for (const [file, expected] of cases) {
    it(`runs ${file}`, () => {
      const result = run(file);
      expect(result.status, result.stderr).to.equal(0);
      for (const line of expected) expect(result.stdout).to.match(line);
    });
  }
});
