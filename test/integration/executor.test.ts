import { expect } from 'chai';
import { QueryError } from '../../src/index.js';
import { Executor } from '../../src/execution/executor.js';
import { resolveOptions } from '../../src/options/index.js';
import type { Statement } from '../../src/sql/index.js';
import { sql, testUrl, waitFor } from '../helpers/db.js';

const statement = (label: string, text: string): Statement => ({ label, text, name: `cp_test_${label}`, prepared: true });
const pid = statement('pid', 'SELECT pg_backend_pid() AS pid');
const sleep = statement('sleep', 'SELECT pg_sleep($1::float8 / 1000) AS slept');
const fail = statement('fail', 'SELECT 1 / $1::int AS boom');

describe('Executor pipelines (the lane)', () => {
  const executors: Executor[] = [];
  const make = (poolMax: number, options: { preparedStatements?: boolean; pipelining?: boolean } = {}) => {
    const exec = new Executor(resolveOptions({ uri: testUrl(), poolMax, ...options }), 'test', () => true, () => undefined);
    executors.push(exec);
    return exec;
  };
  afterEach(async () => {
    await Promise.all(executors.splice(0).map((exec) => exec.end()));
  });

  it('is on for the pool a store creates, and off without prepared statements or when turned off', () => {
    expect(make(1).pipelining).to.equal(true);
    expect(make(1, { preparedStatements: false }).pipelining).to.equal(false);
    expect(make(1, { pipelining: false }).pipelining).to.equal(false);
  });

  it('writes pipelines issued while one is in flight behind it on the same connection, answered in order', async () => {
    const exec = make(4);
    const done: string[] = [];
    const first = exec.pipeline([{ statement: sleep, values: [150] }, { statement: pid, values: [] }]).then((r) => (done.push('first'), r));
    const second = exec.pipeline([{ statement: pid, values: [] }]).then((r) => (done.push('second'), r));
    const [a, b] = await Promise.all([first, second]);
    expect((a[1] as Array<{ pid: number }>)[0]!.pid).to.equal((b[0] as Array<{ pid: number }>)[0]!.pid);
    expect(done).to.deep.equal(['first', 'second']);
    expect(exec.pool.totalCount).to.equal(1);
  });

  it('lets a caller waiting for the pool in before further pipelines, so a pool of one is never monopolized', async () => {
    const exec = make(1);
    const order: string[] = [];
    const first = exec.pipeline([{ statement: sleep, values: [200] }]);
    await waitFor(
      async () => (await sql(`SELECT 1 FROM pg_stat_activity WHERE query = $1 AND state = 'active'`, [sleep.text])).length > 0,
      5000,
      'the lane to run its first pipeline',
    );
    const other = exec.pool.connect().then(async (client) => {
      await client.query('SELECT pg_sleep(0.05)');
      order.push('waiting caller');
      client.release();
    });
    const later = exec.pipeline([{ statement: pid, values: [] }]).then(() => order.push('later pipeline'));
    await Promise.all([first, other, later]);
    expect(order).to.deep.equal(['waiting caller', 'later pipeline']);
  });

  it('settles each part on its own, and replaces the connection after a failure', async () => {
    const exec = make(2);
    const [before] = await exec.pipeline([{ statement: pid, values: [] }]);
    const [ok, failed, after] = await exec.pipeline([
      { statement: pid, values: [] },
      { statement: fail, values: [0] },
      { statement: pid, values: [] },
    ]);
    expect(ok).to.deep.equal(before);
    expect(failed).to.be.instanceOf(QueryError).and.include({ statement: 'fail', sqlState: '22012' });
    expect(after).to.deep.equal(before);
    const [next] = await exec.pipeline([{ statement: pid, values: [] }]);
    expect(next).to.not.deep.equal(before);
  });
});
