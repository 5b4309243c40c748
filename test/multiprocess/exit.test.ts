import { execFile } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { expect } from 'chai';
import { dropTables, testUrl, uniqueTable } from '../helpers/db.js';

const SCRIPT = fileURLToPath(new URL('../fixtures/no-disconnect.ts', import.meta.url));

describe('a process that never calls disconnect()', () => {
  const table = uniqueTable('cp_exit');
  after(() => dropTables(table));

  it('exits by itself with the local tier listening and connections in the pool', async function () {
    this.timeout(30_000);
    const started = performance.now();
    // execFile's timeout kills a process that does not exit: the test then fails with the kill.
    const { stdout } = await promisify(execFile)(process.execPath, ['--import', 'tsx', SCRIPT, testUrl(), table], { timeout: 20_000 });
    const result = JSON.parse(stdout.trim()) as { value: string; localEntries: number };
    expect(result.value).to.equal('v');
    expect(result.localEntries, 'the local tier was listening').to.equal(1);
    expect(performance.now() - started).to.be.below(20_000);
  });
});
