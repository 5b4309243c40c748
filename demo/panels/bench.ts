/**
 * Benchmark: `npm run bench` in quick mode (1 to 5 rounds, 3 by default, each figure the median and the spread
 * of the rounds shown) in a child process of its own, against the demo's
 * database: PgStore through Keyv (unlogged, logged, pool 1, local tier) beside @keyv/postgres, and
 * @keyv/redis when a Redis answers (the bench reports it skipped otherwise). Progress comes from its
 * `PROGRESS` lines; its results file is kept, so a reload (or a restart) shows the last run.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { mkdirSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { createInterface } from 'node:readline';
import { HttpError, intField } from '../http.js';
import type { Routes } from '../context.js';

const BENCH = fileURLToPath(new URL('../../bench/run.ts', import.meta.url));
export const RESULTS_DIR = fileURLToPath(new URL('../../bench/results/', import.meta.url));
const TARGETS = 'PgStore/Keyv,@keyv/postgres,@keyv/redis';
const TAIL = 12;

export interface BenchPanel {
  routes: Routes;
  /** Stops a run under way (the server is stopping). */
  stop(): Promise<void>;
  /** Kills a run under way at once (SIGKILL), without waiting. */
  kill(): void;
}

export function benchPanel(databaseUrl: string, resultsFile = `${RESULTS_DIR}dashboard-last.json`): BenchPanel {
  resultsFile = path.resolve(resultsFile);
  let child: ChildProcess | undefined;
  let state: { running: boolean; done: number; total: number; current: string; lines: string[]; error?: string } = {
    running: false,
    done: 0,
    total: 0,
    current: '',
    lines: [],
  };
  const last = () => {
    try {
      return JSON.parse(readFileSync(resultsFile, 'utf8')) as unknown;
    } catch {
      return null; // no run yet
    }
  };

  const routes: Routes = {
    async 'POST /api/bench/start'(body) {
      if (child) throw new HttpError(409, 'A benchmark is already running.');
      const ops = intField(body, 'ops', 100, 20_000, 2000);
      const rounds = intField(body, 'rounds', 1, 5, 3);
      mkdirSync(path.dirname(resultsFile), { recursive: true });
      state = { running: true, done: 0, total: 0, current: 'starting', lines: [] };
      const run = spawn(
        process.execPath,
        ['--expose-gc', '--import', import.meta.resolve('tsx'), BENCH, '--quick', '--progress', '--ops', String(ops), '--rounds', String(rounds), '--url', databaseUrl, '--only', TARGETS, '--out', resultsFile],
        { stdio: ['ignore', 'pipe', 'pipe'] },
      );
      child = run;
      createInterface({ input: run.stdout! }).on('line', (line) => {
        if (line.startsWith('PROGRESS ')) {
          // A line this server cannot read must not end it (the handler runs outside any request).
          try {
            const p = JSON.parse(line.slice('PROGRESS '.length)) as { done: number; total: number; target: string; scenario: string };
            Object.assign(state, { done: p.done, total: p.total, current: `${p.target}: ${p.scenario}` });
          } catch {
            state.lines = [...state.lines, line].slice(-TAIL);
          }
        } else if (line.trim() !== '' && !line.includes('│') && !line.includes('─')) {
          state.lines = [...state.lines, line].slice(-TAIL);
        }
      });
      let stderr = '';
      run.stderr!.on('data', (chunk: Buffer) => void (stderr = (stderr + chunk.toString()).slice(-2000)));
      run.on('exit', (code, signal) => {
        child = undefined;
        state.running = false;
        state.current = '';
        if (code !== 0) state.error = `the benchmark stopped (${signal ?? `exit code ${code}`}): ${stderr.trim().split('\n').slice(-3).join(' ')}`;
      });
      return { started: true, ops, rounds };
    },
    async 'GET /api/bench'() {
      return { ...state, last: last() };
    },
  };
  return {
    routes,
    kill() {
      child?.kill('SIGKILL');
    },
    async stop() {
      const running = child;
      if (!running) return;
      const exited = new Promise((resolve) => running.once('exit', resolve));
      running.kill('SIGTERM');
      const timer = setTimeout(() => running.kill('SIGKILL'), 5000);
      await exited;
      clearTimeout(timer);
    },
  };
}
