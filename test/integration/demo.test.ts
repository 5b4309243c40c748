/**
 * The dashboard as a process: it starts on the configured database or on embedded PostgreSQL, refuses
 * bad input with a 4xx and a message (never a 500 or a stack), and Ctrl-C stops everything it started.
 * The page itself is tested in a real browser in test/browser/dashboard.test.ts.
 */
import { type ChildProcess, spawn, spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { connect } from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { expect } from 'chai';
import { dropTables, testUrl, uniqueTable, waitFor } from '../helpers/db.js';
import { SAME_STROKE_MS } from '../../demo/stopping.js';
import { alive, DEMO_MAIN, descendants, type RunningDemo, startDemo } from '../helpers/demo.js';

describe('npm run demo (the dashboard server)', function () {
  this.timeout(120_000);

  describe('on the test database', () => {
    const table = uniqueTable('demo');
    let demo: RunningDemo;
    before(async () => {
      demo = await startDemo({ args: ['--table', table], env: { ...process.env, DATABASE_URL: testUrl() } });
    });
    after(async () => {
      demo?.child.kill('SIGTERM');
      await demo?.exited;
      await dropTables(table, `${table}_locks`, `${table}_products`, `${table}_xlang`, `${table}_xlang_locks`);
    });

    const post = async (path: string, body: unknown, headers: Record<string, string> = { 'content-type': 'application/json' }) => {
      const response = await fetch(demo.url + path, { method: 'POST', headers, body: typeof body === 'string' ? body : JSON.stringify(body) });
      return { status: response.status, body: (await response.json()) as Record<string, unknown> };
    };

    const refused: Array<[string, string, unknown, number, RegExp]> = [
      ['an empty key', '/api/tags/set', { key: '', tags: 'a' }, 400, /"key" must be a non-empty string/],
      ['a blank key', '/api/tags/set', { key: '   ', tags: 'a' }, 400, /"key" must be a non-empty string/],
      ['no tags', '/api/tags/set', { key: 'k', tags: ' , ' }, 400, /"tags" must name at least one entry/],
      ['a huge value', '/api/tags/set', { key: 'k', tags: 'a', value: 'x'.repeat(100_000) }, 400, /"value" is 100000 characters long; at most 65536/],
      ['a negative count', '/api/counters', { count: -5 }, 400, /"count" must be a whole number from 1 to 10000, got -5/],
      ['a fractional count', '/api/stampede', { count: 2.5, run: 'r1' }, 400, /"count" must be a whole number from 2 to 200/],
      ['a count as a string', '/api/counters', { count: '10' }, 400, /"count" must be a whole number/],
      ['a null count (an empty field on the page)', '/api/counters', { count: null }, 400, /"count" must be a whole number from 1 to 10000, got null/],
      ['an unknown mode', '/api/stampede', { mode: 'fast', run: 'r1' }, 400, /"mode" must be one of naive, getOrSet, wrap/],
      ['a run id with spaces', '/api/stampede', { run: 'a b' }, 400, /"run" must be 1 to 40 letters/],
      ['worker 3', '/api/locks/acquire', { worker: 3 }, 400, /"worker" must be a whole number from 1 to 2, got 3/],
      ['an outage that is not a boolean', '/api/failover/outage', { down: 'yes' }, 400, /"down" must be true or false/],
      ['a benchmark of 10 operations', '/api/bench/start', { ops: 10 }, 400, /"ops" must be a whole number from 100 to 20000/],
      ['a fill of 0 MB', '/api/cap/fill', { mb: 0 }, 400, /"mb" must be a whole number from 1 to 64, got 0/],
      ['a benchmark of 9 rounds', '/api/bench/start', { ops: 100, rounds: 9 }, 400, /"rounds" must be a whole number from 1 to 5, got 9/],
      ['a NUL in a key (the library refuses it)', '/api/tags/set', { key: 'a\u0000b', tags: 'a' }, 400, /must not contain the NUL character/],
      ['a NUL in a city (failover key)', '/api/failover/fetch', { city: 'a\u0000b' }, 400, /must not contain the NUL character/],
      ['a lone surrogate in a value', '/api/tags/set', { key: 'k', tags: 'a', value: '\ud800' }, 400, /well-formed Unicode/],
      ['a JSON array body', '/api/counters', [1], 400, /must be a JSON object/],
      ['a key over the library limit', '/api/tags/set', { key: 'k'.repeat(200), tags: 'a'.repeat(101) }, 400, /"tags" has an entry of 101 characters/],
    ];
    for (const [what, path, body, status, message] of refused) {
      it(`refuses ${what} with ${status} and a message`, async () => {
        const response = await post(path, body);
        expect(response.status).to.equal(status);
        expect(String(response.body['error'])).to.match(message);
      });
    }

    /** One raw HTTP/1.1 request (fetch would fix what these tests send wrong); resolves with the status line's code. */
    const raw = (text: string, closeAfterMs?: number) =>
      new Promise<number>((resolve, reject) => {
        const { hostname, port } = new URL(demo.url);
        const socket = connect(Number(port), hostname, () => {
          socket.write(text);
          if (closeAfterMs !== undefined) setTimeout(() => (socket.destroy(), resolve(0)), closeAfterMs);
        });
        let answer = '';
        socket.on('data', (chunk: Buffer) => {
          answer += chunk.toString('latin1');
          const status = /^HTTP\/1\.1 (\d{3})/.exec(answer);
          if (status) {
            socket.destroy();
            resolve(Number(status[1]));
          }
        });
        socket.on('error', reject);
      });
    const host = () => new URL(demo.url).host;

    it('answers a request target it cannot parse with 400, not 500', async () => {
      expect(await raw(`GET //[ HTTP/1.1\r\nHost: ${host()}\r\nConnection: close\r\n\r\n`)).to.equal(400);
    });

    it('does not log a client that hangs up mid-request as a server error', async () => {
      const before = demo.output().length;
      await raw(`POST /api/counters HTTP/1.1\r\nHost: ${host()}\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n{"cou`, 100);
      // An answer after it proves the server went on, and that the hang-up was handled before this.
      expect((await fetch(`${demo.url}/api/stats`)).status).to.equal(200);
      expect(demo.output().slice(before)).not.to.match(/aborted|ECONNRESET|\n\s+at /);
    });

    it('answers a method a page does not take with 405 and the methods it takes', async () => {
      const response = await fetch(`${demo.url}/`, { method: 'DELETE' });
      expect(response.status).to.equal(405);
      expect(response.headers.get('allow')).to.equal('GET, HEAD');
      const post = await fetch(`${demo.url}/api/stats`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: '{}' });
      expect(post.status).to.equal(405);
      expect(post.headers.get('allow')).to.equal('GET');
    });

    it('takes a body as application/json only, whatever its framing', async () => {
      const refused = await fetch(`${demo.url}/api/counters`, { method: 'POST', headers: { 'content-type': 'application/jsonx' }, body: '{"count":1}' });
      expect(refused.status).to.equal(415);
      const chunked = `POST /api/counters HTTP/1.1\r\nHost: ${host()}\r\nContent-Type: text/plain\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\nb\r\n{"count":1}\r\n0\r\n\r\n`;
      expect(await raw(chunked)).to.equal(415);
      const withCharset = await fetch(`${demo.url}/api/counters`, { method: 'POST', headers: { 'content-type': 'Application/JSON; charset=utf-8' }, body: '{"count":1}' });
      expect(withCharset.status).to.equal(200);
    });

    it('refuses a request from another origin, or for another host name (DNS rebinding), with 403', async () => {
      const evil = await fetch(`${demo.url}/api/counters`, { method: 'POST', headers: { 'content-type': 'application/json', origin: 'http://evil.example' }, body: '{"count":1}' });
      expect(evil.status).to.equal(403);
      expect(String(((await evil.json()) as { error: string }).error)).to.match(/origin/i);
      const same = await fetch(`${demo.url}/api/counters`, { method: 'POST', headers: { 'content-type': 'application/json', origin: demo.url }, body: '{"count":1}' });
      expect(same.status).to.equal(200);
      const { port } = new URL(demo.url);
      expect(await raw(`GET /api/stats HTTP/1.1\r\nHost: rebound.example:${port}\r\nConnection: close\r\n\r\n`)).to.equal(403);
      expect(await raw(`GET / HTTP/1.1\r\nHost: localhost:${port}\r\nConnection: close\r\n\r\n`)).to.equal(200);
      expect(await raw(`GET / HTTP/1.1\r\nConnection: close\r\n\r\n`), 'no Host at all').to.equal(400);
    });

    it('refuses a body that is not JSON, or not sent as JSON, or too large', async () => {
      expect((await post('/api/counters', '{count: 1')).status).to.equal(400);
      expect((await post('/api/counters', 'count=1', { 'content-type': 'application/x-www-form-urlencoded' })).status).to.equal(415);
      const huge = await post('/api/tags/set', { key: 'k', tags: 'a', value: 'x'.repeat(300_000) });
      expect(huge.status).to.equal(413);
      expect(String(huge.body['error'])).to.match(/at most 262144 are accepted/);
    });

    it('answers an unknown path with 404 and a wrong method with 405', async () => {
      expect((await fetch(`${demo.url}/api/nothing`)).status).to.equal(404);
      const wrong = await fetch(`${demo.url}/api/counters`);
      expect(wrong.status).to.equal(405);
      expect(((await wrong.json()) as { error: string }).error).to.equal('GET is not allowed on /api/counters.');
    });

    it('serves the page and Chart.js from this server (no CDN)', async () => {
      const page = await (await fetch(`${demo.url}/`)).text();
      const sources = [...page.matchAll(/(?:src|href)="([^"]+)"/g)].map((m) => m[1]!);
      expect(sources).to.include('/vendor/chart.umd.min.js');
      for (const source of sources) {
        expect(source.startsWith('/'), `${source} is not served locally`).to.equal(true);
        expect((await fetch(demo.url + source)).status, source).to.equal(200);
      }
    });

    it('lives on when a worker is killed from outside (kill -9): its calls fail with a message, "crash" starts it again', async () => {
      const workers = descendants(demo.child.pid!).filter((pid) => /demo\/worker\.ts/.test(spawnSync('ps', ['-o', 'args=', '-p', String(pid)], { encoding: 'utf8' }).stdout));
      expect(workers).to.have.length(2);
      for (const pid of workers) process.kill(pid, 'SIGKILL');
      await waitFor(() => workers.every((pid) => !alive(pid)), 10_000, 'the workers to die');
      for (let i = 0; i < 3; i++) expect((await fetch(`${demo.url}/api/stats`)).status, 'stats, with its workers gone').to.equal(200);
      const refused = await post('/api/locks/acquire', { worker: 1 });
      expect(refused.status).to.equal(409);
      expect(String(refused.body['error'])).to.match(/Worker 1 did not get the lock: the worker process \(pid \d+\) is not running/);
      // Crashing a worker that is already gone starts it again, twice at once included (one replacement each).
      const crashes = await Promise.all([post('/api/locks/crash', { worker: 1 }), post('/api/locks/crash', { worker: 1 }), post('/api/locks/crash', { worker: 2 })]);
      expect(crashes.map((c) => c.status)).to.deep.equal([200, 200, 200]);
      const acquired = await post('/api/locks/acquire', { worker: 1 });
      expect(acquired.status, JSON.stringify(acquired.body)).to.equal(200);
      expect((await post('/api/locks/release', { worker: 1 })).status).to.equal(200);
      const running = descendants(demo.child.pid!).filter((pid) => /demo\/worker\.ts/.test(spawnSync('ps', ['-o', 'args=', '-p', String(pid)], { encoding: 'utf8' }).stdout));
      await waitFor(() => running.filter(alive).length === 2, 10_000, 'two workers, no replacement left over');
    });

    it('printed no stack trace for any of it', () => {
      expect(demo.output()).not.to.match(/\n\s+at /);
    });
  });

  it('on Ctrl-C (SIGINT to its process group, embedded PostgreSQL included) stops its workers, stores and database and exits 0', async () => {
    // No DATABASE_URL: the first contact of a new user, on embedded PostgreSQL.
    const env = { ...process.env };
    delete env['DATABASE_URL'];
    delete env['PG_URL'];
    const demo = await startDemo({ env, detached: true });
    const children = descendants(demo.child.pid!);
    expect(children.length, 'workers and PostgreSQL run as children').to.be.at.least(3);
    expect(demo.output()).to.match(/database: embedded/);
    const dataDir = /-D (\S+)/.exec(spawnSync('ps', ['-o', 'args=', '-p', children.join(',')], { encoding: 'utf8' }).stdout)?.[1];
    process.kill(-demo.child.pid!, 'SIGINT');
    expect(await demo.exited).to.equal(0);
    await waitFor(() => children.every((pid) => !alive(pid)), 10_000, 'every child process to exit');
    expect(demo.output()).to.match(/stopped: workers, stores and database are gone/);
    expect(demo.output(), demo.output()).not.to.match(/cache error|Warning/);
    if (dataDir) expect(existsSync(dataDir), `${dataDir} removed`).to.equal(false);
  });

  describe('stops everything it started and removes its data directory, however it is stopped, with two CPU-bound processes beside it', () => {
    let hogs: ChildProcess[] = [];
    beforeEach(() => {
      hogs = [0, 1].map(() => spawn(process.execPath, ['-e', 'for (;;) {}'], { stdio: 'ignore' }));
    });
    afterEach(() => {
      for (const hog of hogs) hog.kill('SIGKILL');
    });

    /** `npm run demo` on embedded PostgreSQL in its own process group; its processes and data directory. */
    async function started(): Promise<{ demo: RunningDemo; processes: number[]; dataDir: string; server: number }> {
      const env = { ...process.env };
      delete env['DATABASE_URL'];
      delete env['PG_URL'];
      const demo = await startDemo({ env, detached: true, viaNpm: true, timeoutMs: 90_000 });
      const processes = descendants(demo.child.pid!);
      const args = spawnSync('ps', ['-o', 'pid=,args=', '-p', processes.join(',')], { encoding: 'utf8' }).stdout;
      const dataDir = /-D (\S+)/.exec(args)?.[1];
      const server = /^\s*(\d+) node --import tsx demo\/main\.ts/m.exec(args)?.[1];
      expect(dataDir, args).to.be.a('string');
      expect(server, `npm runs the server itself, no shell or tsx between:\n${args}`).to.be.a('string');
      return { demo, processes: [demo.child.pid!, ...processes], dataDir: dataDir!, server: Number(server) };
    }

    async function allGone(processes: number[], dataDir: string, what: string): Promise<void> {
      await waitFor(() => processes.every((pid) => !alive(pid)), 30_000, `every process to exit (${what})`);
      await waitFor(() => !existsSync(path.dirname(dataDir)), 30_000, `${path.dirname(dataDir)} to be removed (${what})`);
    }

    const ways: Array<[string, (run: { demo: RunningDemo; server: number }) => void, RegExp]> = [
      ['SIGINT to npm alone (kill -INT)', ({ demo }) => demo.child.kill('SIGINT'), /SIGINT: stopping/],
      ['SIGTERM to npm alone (kill -TERM)', ({ demo }) => demo.child.kill('SIGTERM'), /SIGTERM: stopping/],
      ['SIGKILL to npm (the server is left without its parent)', ({ demo }) => demo.child.kill('SIGKILL'), /the parent process \(\d+\) ended: stopping/],
      ['SIGINT to the whole group (Ctrl-C: npm passes it on too, one keystroke)', ({ demo }) => process.kill(-demo.child.pid!, 'SIGINT'), /SIGINT: stopping/],
      ['SIGHUP to the whole group (the terminal closing)', ({ demo }) => process.kill(-demo.child.pid!, 'SIGHUP'), /SIGHUP: stopping/],
      ['SIGTERM to the server alone', ({ server }) => process.kill(server, 'SIGTERM'), /SIGTERM: stopping/],
    ];
    for (const [what, send, said] of ways) {
      it(what, async () => {
        const run = await started();
        send(run);
        await allGone(run.processes, run.dataDir, what);
        // Its last line comes after the directory is removed, through the pipe it shares with npm.
        await waitFor(() => /stopped: workers, stores and database are gone/.test(run.demo.output()), 10_000, 'the last line');
        expect(run.demo.output(), run.demo.output()).to.match(said);
        expect(run.demo.output(), 'stopped once, not at once').not.to.match(/stopping at once/);
      });
    }

    it('a second Ctrl-C while it stops stops at once, and what it started is still removed', async () => {
      const run = await started();
      // A worker that cannot answer (stopped) holds the orderly stop for its 5 s grace.
      const workers = descendants(run.server).filter((pid) => /demo\/worker\.ts/.test(spawnSync('ps', ['-o', 'args=', '-p', String(pid)], { encoding: 'utf8' }).stdout));
      expect(workers).to.have.length(2);
      process.kill(workers[0]!, 'SIGSTOP');
      process.kill(-run.demo.child.pid!, 'SIGINT');
      await waitFor(() => /SIGINT: stopping the dashboard/.test(run.demo.output()), 10_000, 'the first stop to begin');
      await new Promise((resolve) => setTimeout(resolve, SAME_STROKE_MS + 200)); // a second keystroke, not the same one twice
      process.kill(-run.demo.child.pid!, 'SIGINT');
      await allGone(run.processes, run.dataDir, 'second Ctrl-C');
      // Read from the pipe after the processes are seen gone, on a busy machine: waited for, not assumed.
      await waitFor(() => /SIGINT again: stopping at once/.test(run.demo.output()), 10_000, `the line of the second Ctrl-C in:\n${run.demo.output()}`);
      expect(run.demo.output()).not.to.match(/stopped: workers, stores and database are gone/);
    });
  });

  it('stops a benchmark under way with everything else, leaving no process behind', async () => {
    const resultsDir = mkdtempSync(path.join(tmpdir(), 'demo-bench-'));
    try {
      const results = path.join(resultsDir, 'last.json');
      const demo = await startDemo({ args: ['--results', results], env: { ...process.env, DATABASE_URL: testUrl() } });
      const started = await fetch(`${demo.url}/api/bench/start`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: '{"ops":20000}' });
      expect(started.status).to.equal(200);
      await waitFor(async () => ((await (await fetch(`${demo.url}/api/bench`)).json()) as { done: number }).done > 0, 60_000, 'the benchmark to measure');
      const children = descendants(demo.child.pid!);
      expect(children.length, 'workers and the benchmark').to.be.at.least(3);
      demo.child.kill('SIGTERM');
      expect(await demo.exited).to.equal(0);
      await waitFor(() => children.every((pid) => !alive(pid)), 10_000, 'every child, the benchmark included, to exit');
      expect(existsSync(results), 'an interrupted run writes no results').to.equal(false);
    } finally {
      rmSync(resultsDir, { recursive: true, force: true }); // nothing of the run stays in the temp directory
    }
  });

  it('on SIGTERM to the server alone stops its children too', async () => {
    const demo = await startDemo({ env: { ...process.env, DATABASE_URL: testUrl() } });
    const children = descendants(demo.child.pid!);
    expect(children.length).to.be.at.least(2);
    demo.child.kill('SIGTERM');
    expect(await demo.exited).to.equal(0);
    await waitFor(() => children.every((pid) => !alive(pid)), 10_000, 'every worker to exit');
  });

  const badArguments: Array<[string[], RegExp]> = [
    [['--port=-1'], /The port must be a whole number from 0 to 65535 \(0: any free port\), got "-1"/],
    [['--port', 'abc'], /The port must be a whole number from 0 to 65535/],
    [['--port', '-1'], /Option '--port' argument is ambiguous[\s\S]*usage: npm run demo/],
    [['--bogus'], /Unknown option '--bogus'[\s\S]*usage: npm run demo/],
  ];
  it('on a database it cannot reach, says so, stops its workers and exits 1, without a stack', () => {
    const result = spawnSync(process.execPath, ['--import', 'tsx', DEMO_MAIN, '--port', '0'], {
      encoding: 'utf8',
      timeout: 60_000,
      env: { ...process.env, PG_URL: '', DATABASE_URL: 'postgres://root@127.0.0.1:1/test' },
    });
    const output = result.stdout + result.stderr;
    expect(result.status, output).to.equal(1);
    expect(output).to.match(/The dashboard could not start: .*ECONNREFUSED/);
    expect(output).to.match(/stopped: workers, stores and database are gone/);
    expect(output).not.to.match(/ERR_IPC_CHANNEL_CLOSED|\n\s+at /);
  });

  it('refuses a PORT variable that is not a port', () => {
    const result = spawnSync(process.execPath, ['--import', 'tsx', DEMO_MAIN], { encoding: 'utf8', timeout: 30_000, env: { ...process.env, PORT: '80a' } });
    expect(result.status, result.stderr).to.equal(2);
    expect(result.stderr).to.match(/got "80a"/);
  });
  for (const [argv, message] of badArguments) {
    it(`refuses ${argv.join(' ')} with a message and exit code 2, before starting anything`, () => {
      const result = spawnSync(process.execPath, ['--import', 'tsx', DEMO_MAIN, ...argv], { encoding: 'utf8', timeout: 30_000, env: { ...process.env, PORT: '' } });
      expect(result.status, result.stderr).to.equal(2);
      expect(result.stderr).to.match(message);
      expect(result.stderr).not.to.match(/\n\s+at /);
      expect(result.stdout).not.to.match(/\[db\]/);
    });
  }

  it('--console runs the console walk-through', () => {
    const result = spawnSync(process.execPath, ['--import', 'tsx', DEMO_MAIN, '--console'], {
      encoding: 'utf8',
      timeout: 60_000,
      env: { ...process.env, DATABASE_URL: testUrl() },
    });
    expect(result.status, result.stderr).to.equal(0);
    expect(result.stdout).to.match(/getOrSet x5 +-> report #1 \(factory ran 1 time\)/);
  });
});
