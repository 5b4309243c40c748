import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { expect } from 'chai';
import { dropTables, testUrl } from '../helpers/db.js';

const ROOT = fileURLToPath(new URL('../../', import.meta.url));

interface BenchRow {
  target: string;
  scenario: string;
  ops: number;
  clientUs?: number;
  serverUs?: number;
}

/**
 * What docs/performance.md says `npm run bench` does beside ops/s: CPU per operation on every row, and
 * `--baseline DIR` running another build's targets in the same rounds with this version's ratio to them.
 * A functional check on a few hundred operations: it says nothing of speed (figures come from `npm run bench`).
 */
describe('npm run bench: CPU per operation and --baseline', function () {
  this.timeout(120_000);
  let out: string;
  before(() => {
    out = mkdtempSync(path.join(tmpdir(), 'cp-bench-'));
  });
  after(async () => {
    rmSync(out, { recursive: true, force: true });
    await dropTables('bench_unlogged', 'bench_unlogged_base');
  });

  it("runs the baseline's PgStore targets beside this version's and prints their ratios; every measured row has client CPU per op", () => {
    // The baseline, and with --from-dist this version too, is this checkout's own build, which installing it made (npm's prepare).
    expect(existsSync(path.join(ROOT, 'dist/esm/index.js')), 'dist/ is built (npm ci or npm run build)').to.equal(true);
    const file = path.join(out, 'result.json');
    const target = 'PgStore/Keyv unlogged pool 10';
    const result = spawnSync(
      process.execPath,
      ['--expose-gc', '--import', 'tsx', 'bench/run.ts', '--url', testUrl(), '--quick', '--ops', '300', '--workers', '4', '--only', target, '--baseline', '.', '--from-dist', '--out', file],
      { cwd: ROOT, encoding: 'utf8', timeout: 110_000 },
    );
    expect(result.status, result.stderr).to.equal(0);
    expect(result.stdout).to.match(/read-heavy 90\/10: this version \/ baseline/);
    expect(result.stdout).to.match(/client µs\/op/);
    const rows = (JSON.parse(readFileSync(file, 'utf8')) as { results: BenchRow[] }).results;
    const measured = rows.filter((row) => !row.scenario.startsWith('stampede'));
    expect(new Set(measured.map((row) => row.target))).to.deep.equal(new Set([target, `${target} (baseline)`]));
    expect(measured).to.have.length(6); // three scenarios, two targets
    for (const row of measured) {
      expect(row.clientUs, `${row.target}, ${row.scenario}`).to.be.a('number').and.greaterThan(0);
      // Server CPU is read from /proc; where there is none (not Linux) the column is absent, never wrong.
      if (existsSync('/proc/self/stat')) expect(row.serverUs, `${row.target}, ${row.scenario}`).to.be.a('number').and.at.least(0);
    }
  });
});
