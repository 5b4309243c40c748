/**
 * The code blocks of README.md and docs/*.md (not docs/api, which TypeDoc generates) as a reader copies them.
 *
 * Every ts/js block is a complete program: its first line says ESM or CommonJS, it imports what it uses from
 * 'cache-postgres' (and its subpaths) and defines its stand-ins (loadUser, ...) itself. Each block is written to a
 * file of its own in a temporary directory (`.ts` for ESM, `.cjs` for CommonJS), all of them are type-checked in
 * one tsc run (strict, exactOptionalPropertyTypes: the project's own settings), and each is run in a child process
 * with tsx and DATABASE_URL set, a few at a time. A block marked `<!-- snippet: typecheck-only (reason) -->` on
 * the line before its fence is type-checked and not run (it needs Citus, say).
 *
 * How 'cache-postgres' resolves: the temporary tsconfig extends the project's, whose `paths` map the package's
 * entry points to src/, for tsc and for tsx alike (tsx reads the tsconfig of its working directory, and applies
 * the paths to require() too, so the CommonJS block runs on the sources as well, no build needed). The temporary
 * directory links node_modules to the project's, so 'keyv', 'pg', 'cache-manager' resolve as in an application.
 * This repository installs cache-manager 5 as `cache-manager5` beside cache-manager 7: a block importing
 * 'cache-postgres/cache-manager/v5' gets its 'cache-manager' import pointed there.
 *
 * Isolation: when the test database's role may create databases, the blocks run in a few throw-away databases
 * (UTF8, from template0), one per concurrent runner, dropped afterwards; otherwise one at a time on the test
 * database, whose tables the blocks create are dropped afterwards.
 */
import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, readdirSync, readFileSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { expect } from 'chai';
import { buildSql } from '../../src/sql/index.js';
import { capacitySql } from '../../src/sql/capacity.js';
import { dropTables, sql, testUrl } from '../helpers/db.js';

const ROOT = fileURLToPath(new URL('../..', import.meta.url));
/** Child processes running blocks at once (each on a database of its own when that can be had). */
const RUNNERS = 3;
const RUN_TIMEOUT_MS = 60_000;

interface Block {
  /** Page path relative to the repository, e.g. `docs/ext.md`. */
  readonly page: string;
  /** Line of the opening fence (1-based). */
  readonly line: number;
  readonly lang: string;
  readonly code: string;
  readonly module: 'esm' | 'cjs' | undefined;
  /** Why the block is only type-checked, from its `<!-- snippet: typecheck-only (...) -->` marker. */
  readonly typecheckOnly: string | undefined;
  /** File name in the temporary directory. */
  readonly file: string;
}

const CODE_LANGS = new Set(['ts', 'typescript', 'js', 'javascript', 'mjs', 'cjs', 'mts', 'cts']);

/** README.md and every docs/*.md page (docs/api is generated). */
function pages(): string[] {
  return ['README.md', ...readdirSync(path.join(ROOT, 'docs')).filter((name) => name.endsWith('.md')).sort().map((name) => `docs/${name}`)];
}

interface Fence {
  readonly page: string;
  readonly line: number;
  readonly lang: string;
  readonly code: string;
  /** The last non-blank line before the fence. */
  readonly before: string;
}

function fences(page: string): Fence[] {
  const lines = readFileSync(path.join(ROOT, page), 'utf8').split('\n');
  const found: Fence[] = [];
  for (let i = 0; i < lines.length; i++) {
    const open = /^```(\S*)\s*$/.exec(lines[i]!);
    if (!open) continue;
    const start = i;
    const body: string[] = [];
    for (i++; i < lines.length && !/^```\s*$/.test(lines[i]!); i++) body.push(lines[i]!);
    let before = '';
    for (let j = start - 1; j >= 0; j--) {
      if (lines[j]!.trim() !== '') {
        before = lines[j]!.trim();
        break;
      }
    }
    found.push({ page, line: start + 1, lang: open[1]!.toLowerCase(), code: body.join('\n'), before });
  }
  return found;
}

function codeBlocks(): Block[] {
  const blocks: Block[] = [];
  for (const page of pages()) {
    for (const fence of fences(page)) {
      if (!CODE_LANGS.has(fence.lang)) continue;
      const first = fence.code.split('\n', 1)[0] ?? '';
      const module = /^\/\/ ESM\b/.test(first) ? 'esm' : /^\/\/ CommonJS\b/.test(first) ? 'cjs' : undefined;
      const marker = /^<!-- snippet: typecheck-only \((.+)\) -->$/.exec(fence.before);
      const slug = page.replace(/\.md$/, '').replace(/[^A-Za-z0-9]+/g, '-').toLowerCase();
      blocks.push({
        ...fence,
        module,
        typecheckOnly: marker?.[1],
        file: `${slug}-L${fence.line}.${module === 'cjs' ? 'cjs' : 'ts'}`,
      });
    }
  }
  return blocks;
}

/** The block as written to disk: this repository's alias for cache-manager 5 (see the header). */
function source(block: Block): string {
  return block.code.includes("'cache-postgres/cache-manager/v5'") ? block.code.replaceAll("from 'cache-manager'", "from 'cache-manager5'") : block.code;
}

const label = (block: Block) => `${block.page}:${block.line}`;

/** GitHub's anchors for the headings of a page (outside code fences): lower case, punctuation dropped, spaces as hyphens. */
function headingSlugs(markdown: string): Set<string> {
  const slugs = new Set<string>();
  let fenced = false;
  for (const line of markdown.split('\n')) {
    if (/^```/.test(line)) fenced = !fenced;
    const heading = fenced ? null : /^#{1,6}\s+(.*)$/.exec(line);
    if (!heading) continue;
    const base = heading[1]!.trim().toLowerCase().replace(/[^\p{L}\p{N}\s_-]/gu, '').replace(/\s/g, '-');
    let slug = base;
    for (let n = 1; slugs.has(slug); n++) slug = `${base}-${n}`;
    slugs.add(slug);
  }
  return slugs;
}

interface Run {
  status: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
  ms: number;
}

function runBlock(dir: string, block: Block, url: string): Promise<Run> {
  const started = Date.now();
  return new Promise((resolve) => {
    const child = spawn(process.execPath, ['--import', 'tsx', block.file], {
      cwd: dir,
      env: { ...process.env, DATABASE_URL: url, PG_URL: url },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let stdout = '';
    let stderr = '';
    child.stdout.setEncoding('utf8').on('data', (chunk: string) => (stdout += chunk));
    child.stderr.setEncoding('utf8').on('data', (chunk: string) => (stderr += chunk));
    const timer = setTimeout(() => child.kill('SIGKILL'), RUN_TIMEOUT_MS);
    child.on('close', (status, signal) => {
      clearTimeout(timer);
      resolve({ status, signal, stdout, stderr, ms: Date.now() - started });
    });
  });
}

/** Tables the blocks name (their `table` option, the tables they create): dropped when they ran on the test database. */
function tablesNamed(blocks: readonly Block[]): string[] {
  const names = new Set(['cache', 'cache_locks']);
  for (const { code } of blocks) {
    for (const match of code.matchAll(/\btable: '([a-z_][a-z0-9_]*)'/g)) names.add(match[1]!).add(`${match[1]!}_locks`);
    for (const match of code.matchAll(/CREATE TABLE IF NOT EXISTS ([a-z_][a-z0-9_]*)/gi)) names.add(match[1]!);
  }
  return [...names];
}

describe('documentation snippets (README.md, docs/*.md)', function () {
  this.timeout(240_000);
  const blocks = codeBlocks();
  const runnable = blocks.filter((block) => block.typecheckOnly === undefined);
  let dir: string | undefined;
  let databases: string[] = [];
  let sharedDatabase = false;
  let typecheck: { status: number | null; output: string } | undefined;
  const runs = new Map<Block, Run>();

  before(async function () {
    dir = mkdtempSync(path.join(tmpdir(), 'cache-postgres-docs-'));
    symlinkSync(path.join(ROOT, 'node_modules'), path.join(dir, 'node_modules'), 'dir');
    writeFileSync(path.join(dir, 'package.json'), JSON.stringify({ private: true, type: 'module' }));
    writeFileSync(
      path.join(dir, 'tsconfig.json'),
      JSON.stringify({
        extends: path.join(ROOT, 'tsconfig.json'),
        compilerOptions: { noEmit: true, allowJs: true, checkJs: true, exactOptionalPropertyTypes: true, types: ['node'] },
        include: ['*.ts', '*.cjs'],
      }),
    );
    for (const block of blocks) writeFileSync(path.join(dir, block.file), `${source(block)}\n`);

    // One tsc for every block, while the databases are made.
    const tsc = new Promise<void>((resolve) => {
      const child = spawn(process.execPath, [path.join(ROOT, 'node_modules/typescript/bin/tsc'), '-p', path.join(dir!, 'tsconfig.json')], {
        stdio: ['ignore', 'pipe', 'pipe'],
      });
      let output = '';
      child.stdout.setEncoding('utf8').on('data', (chunk: string) => (output += chunk));
      child.stderr.setEncoding('utf8').on('data', (chunk: string) => (output += chunk));
      child.on('close', (status) => {
        typecheck = { status, output };
        resolve();
      });
    });

    const base = new URL(testUrl());
    const prefix = `cp_docs_${randomBytes(4).toString('hex')}`;
    try {
      for (let i = 0; i < RUNNERS; i++) {
        const name = `${prefix}_${i}`;
        await sql(`CREATE DATABASE ${name} TEMPLATE template0 ENCODING 'UTF8' LC_COLLATE 'C' LC_CTYPE 'C'`);
        databases.push(name);
      }
    } catch (error) {
      // No CREATEDB right (or a server that refuses): run one block at a time on the test database.
      console.warn(`    (docs snippets: no database of their own, ${(error as Error).message}; running them one at a time on the test database)`);
      for (const name of databases) await sql(`DROP DATABASE IF EXISTS ${name} WITH (FORCE)`).catch(() => {});
      databases = [];
      sharedDatabase = true;
    }
    const urls = sharedDatabase
      ? [testUrl()]
      : databases.map((name) => {
          const url = new URL(base);
          url.pathname = `/${name}`;
          return url.toString();
        });

    const queue = [...runnable];
    await Promise.all([
      tsc,
      ...urls.map(async (url) => {
        for (let block = queue.shift(); block; block = queue.shift()) runs.set(block, await runBlock(dir!, block, url));
      }),
    ]);
  });

  after(async () => {
    if (dir) rmSync(dir, { recursive: true, force: true });
    for (const name of databases) await sql(`DROP DATABASE IF EXISTS ${name} WITH (FORCE)`);
    if (sharedDatabase) {
      await dropTables(...tablesNamed(blocks));
      // What dropping the tables leaves of invalidateOn and notifyTrigger (both on public.cache in the blocks): their functions.
      const functions = await sql<{ signature: string }>(
        `SELECT p.oid::regprocedure::text AS signature FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace
          WHERE n.nspname = 'public' AND p.proname ~ '^cache_(notify|inv_[0-9a-f]+)$'`,
      );
      for (const { signature } of functions) await sql(`DROP FUNCTION IF EXISTS ${signature}`);
    }
  });

  it('finds the blocks: each page of code says ESM or CommonJS on its first line, and CommonJS is shown once', () => {
    expect(blocks.length).to.be.at.least(20);
    const unlabelled = blocks.filter((block) => block.module === undefined).map(label);
    expect(unlabelled, 'blocks whose first line is neither "// ESM ..." nor "// CommonJS ..."').to.deep.equal([]);
    const cjs = blocks.filter((block) => block.module === 'cjs');
    expect(cjs.map(label), 'CommonJS blocks').to.have.lengthOf(1);
    for (const block of cjs) expect(block.code, label(block)).to.match(/require\('cache-postgres'\)/).and.not.match(/^import /m);
    for (const block of blocks.filter((b) => b.module === 'esm')) expect(block.code, label(block)).to.not.match(/\brequire\(/);
  });

  it('every block stands alone: no relative imports, no stand-ins from elsewhere', () => {
    for (const block of blocks) expect(block.code, label(block)).to.not.match(/from '\.{1,2}\/|require\('\.{1,2}\//);
  });

  it('keeps the blocks run and not run few: each typecheck-only block says why', () => {
    const only = blocks.filter((block) => block.typecheckOnly !== undefined);
    expect(only.length, only.map(label).join(', ')).to.be.at.most(3);
    for (const block of only) expect(block.typecheckOnly, label(block)).to.match(/^needs /);
  });

  it('type-checks every block in one tsc run (strict, exactOptionalPropertyTypes)', () => {
    expect(typecheck, 'tsc did not run').to.not.equal(undefined);
    expect(typecheck!.status, typecheck!.output).to.equal(0);
  });

  it("docs/interop.md's DDL is what the store runs for public.cache, the lock table included", () => {
    const page = readFileSync(path.join(ROOT, 'docs/interop.md'), 'utf8');
    const { ddl } = buildSql('public', 'cache', 0.1, false);
    const capacity = capacitySql(buildSql('public', 'cache', 0.1, false)).install({ column: true, index: true, unlogged: true });
    for (const statement of [ddl.createTable(false), ddl.createExpiryIndex, ddl.createTagsIndex, ddl.createLocksTable, ddl.commentLocksTable, ddl.storageSettings, ...capacity]) {
      expect(page).to.include(`${statement};`);
    }
  });

  it("the migration SQL of docs/keyv.md is the script test/integration/adoption.test.ts runs (as the README's is)", () => {
    const script = readFileSync(path.join(ROOT, 'examples/readme/migrate-from-keyv-postgres.sql'), 'utf8').trimEnd();
    expect(readFileSync(path.join(ROOT, 'docs/keyv.md'), 'utf8')).to.include(script);
    expect(readFileSync(path.join(ROOT, 'README.md'), 'utf8')).to.include(script);
  });

  it('links between the pages point at files and headings that exist', () => {
    const missing: string[] = [];
    for (const page of pages()) {
      const text = readFileSync(path.join(ROOT, page), 'utf8');
      for (const match of text.matchAll(/\]\(([^)#\s]*)(?:#([^)\s]*))?\)/g)) {
        const target = match[1]!;
        const anchor = match[2];
        if (/^[a-z]+:/.test(target)) continue;
        const resolved = target === '' ? path.join(ROOT, page) : path.join(path.dirname(path.join(ROOT, page)), target);
        if (resolved.startsWith(path.join(ROOT, 'docs', 'api'))) continue;
        let content: string | undefined;
        try {
          content = readFileSync(resolved, 'utf8');
        } catch {
          try {
            readdirSync(resolved);
          } catch {
            missing.push(`${page}: ${target}`);
          }
        }
        if (anchor !== undefined && content !== undefined && resolved.endsWith('.md') && !headingSlugs(content).has(anchor)) {
          missing.push(`${page}: ${target}#${anchor} (no such heading)`);
        }
      }
    }
    expect(missing).to.deep.equal([]);
  });

  describe('runs each block against PostgreSQL', () => {
    for (const block of runnable) {
      it(`${label(block)} (${block.module === 'cjs' ? 'CommonJS' : 'ESM'})`, () => {
        const run = runs.get(block);
        expect(run, 'not run (see the before hook)').to.not.equal(undefined);
        const output = `${run!.stdout}\n${run!.stderr}`;
        expect(run!.signal, `killed after ${RUN_TIMEOUT_MS} ms (the block did not let the process exit)\n${output}`).to.equal(null);
        expect(run!.status, output).to.equal(0);
        expect(run!.stderr, 'a process warning of this library (a misconfiguration the block shows)').to.not.include('CACHE_POSTGRES_');
      });
    }
  });
});
