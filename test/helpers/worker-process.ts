import { type ChildProcessWithoutNullStreams, spawn } from 'node:child_process';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';

/**
 * A separate OS process running a task of test/multiprocess/worker.ts: `ready` resolves when it has
 * printed `ready` (write `go` to its stdin to start the task), `result` with the JSON line it prints.
 */
const WORKER = fileURLToPath(new URL('../multiprocess/worker.ts', import.meta.url));

export interface Worker {
  child: ChildProcessWithoutNullStreams;
  ready: Promise<void>;
  /** The JSON line the worker prints when done. */
  result: Promise<unknown>;
}

export function startWorker(args: string[]): Worker {
  const child = spawn(process.execPath, ['--import', 'tsx', WORKER, ...args], { stdio: ['pipe', 'pipe', 'pipe'] });
  let stderr = '';
  child.stderr.on('data', (chunk) => (stderr += chunk));
  const lines = createInterface({ input: child.stdout });
  let onReady!: () => void;
  const ready = new Promise<void>((resolve) => (onReady = resolve));
  const result = new Promise<unknown>((resolve, reject) => {
    lines.on('line', (line) => {
      if (line === 'ready') onReady();
      else resolve(JSON.parse(line));
    });
    child.on('exit', (code, signal) => {
      if (code !== 0 && signal !== 'SIGKILL') reject(new Error(`worker exited with ${code ?? signal}: ${stderr}`));
    });
  });
  return { child, ready, result };
}
