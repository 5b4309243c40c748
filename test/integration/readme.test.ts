import { spawnSync } from 'node:child_process';
import { readdirSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { expect } from 'chai';
import { buildSql } from '../../src/sql.js';
import { dropTables, testUrl } from '../helpers/db.js';

const ROOT = fileURLToPath(new URL('../..', import.meta.url));
const SNIPPETS = path.join(ROOT, 'examples/readme');

/** The README's TypeScript blocks. */
function readmeBlocks(): string[] {
  const readme = readFileSync(path.join(ROOT, 'README.md'), 'utf8');
  return [...readme.matchAll(/```ts\n([\s\S]*?)```/g)].map((match) => match[1]!.trimEnd());
}

/**
 * The example files as the README quotes them. This repository installs cache-manager 5 under the alias
 * `cache-manager5` (beside cache-manager 7); an application imports it as `cache-manager`.
 */
function exampleTexts(): Array<[string, string]> {
  const files = [
    ...readdirSync(path.join(ROOT, 'examples')).filter((f) => f.endsWith('.ts')).map((f) => path.join(ROOT, 'examples', f)),
    ...readdirSync(SNIPPETS).filter((f) => f.endsWith('.ts')).map((f) => path.join(SNIPPETS, f)),
  ];
  return files.map((file) => [path.relative(ROOT, file), readFileSync(file, 'utf8').replaceAll("'cache-manager5'", "'cache-manager'")]);
}

describe('README snippets', function () {
  this.timeout(120_000);
  after(() => dropTables('cache', 'cache_locks', 'sessions', 'sessions_locks'));

  it('every TypeScript block of the README is a part of a file under examples/, verbatim', () => {
    const texts = exampleTexts();
    const blocks = readmeBlocks();
    expect(blocks.length).to.be.at.least(8);
    const orphans = blocks.filter((block) => !texts.some(([, text]) => text.includes(block)));
    expect(orphans, 'README blocks found in no example file').to.deep.equal([]);
  });

  it("the README's DDL is what the store runs for public.cache, the lock table included", () => {
    const readme = readFileSync(path.join(ROOT, 'README.md'), 'utf8');
    const { ddl } = buildSql('public', 'cache', 0.1, false);
    for (const statement of [ddl.createTable(false), ddl.createExpiryIndex, ddl.createTagsIndex, ddl.createLocksTable, ddl.commentLocksTable]) {
      expect(readme).to.include(`${statement};`);
    }
  });

  it('the snippet files type-check with exactOptionalPropertyTypes, as a strict project would', () => {
    const result = spawnSync(process.execPath, [path.join(ROOT, 'node_modules/typescript/bin/tsc'), '-p', path.join(SNIPPETS, 'tsconfig.json')], {
      encoding: 'utf8',
    });
    expect(result.status, result.stdout + result.stderr).to.equal(0);
  });

  for (const file of readdirSync(SNIPPETS).filter((f) => f.endsWith('.ts') && f !== 'fixtures.ts')) {
    it(`runs examples/readme/${file}`, () => {
      const result = spawnSync(process.execPath, ['--import', 'tsx', path.join(SNIPPETS, file)], {
        cwd: ROOT,
        env: { ...process.env, DATABASE_URL: testUrl() },
        encoding: 'utf8',
        timeout: 90_000,
      });
      expect(result.status, result.stderr).to.equal(0);
      expect(result.stdout).to.include(`${file.replace(/\.ts$/, '')}: ok`);
    });
  }
});
