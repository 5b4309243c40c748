/**
 * The dashboard's two worker processes: spawned with the server's own runtime flags (tsx), asked to do
 * things over IPC, killed to show a crash (and replaced), stopped with the server. Nothing outlives it:
 * a worker exits as soon as its IPC channel closes.
 */
import { type ChildProcess, fork } from 'node:child_process';
import { fileURLToPath } from 'node:url';

export interface WorkerRequest {
  id: number;
  cmd: string;
  args: Record<string, unknown>;
}
export type WorkerReply =
  | { id: number; ok: true; value: unknown }
  | { id: number; ok: false; error: string }
  | { event: 'factory'; run: string }
  | { event: 'extended'; name: string; token: string }
  | { event: 'ready'; pid: number };

type WorkerEvent = Extract<WorkerReply, { event: string }>;

const WORKER = fileURLToPath(new URL('./worker.ts', import.meta.url));
/** Workers run TypeScript as the server does, whatever flags the server itself was started with. */
const EXEC_ARGV = ['--import', import.meta.resolve('tsx')];
const READY_TIMEOUT_MS = 30_000;

class Worker {
  readonly process: ChildProcess;
  readonly ready: Promise<void>;
  #next = 1;
  readonly #pending = new Map<number, { resolve: (value: unknown) => void; reject: (error: Error) => void }>();

  constructor(index: number, env: NodeJS.ProcessEnv, onEvent: (index: number, event: WorkerEvent) => void) {
    this.process = fork(WORKER, [], { execArgv: EXEC_ARGV, env: { ...env, DEMO_WORKER: String(index + 1) }, stdio: ['ignore', 'inherit', 'inherit', 'ipc'] });
    this.ready = new Promise((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`worker ${index + 1} did not start within ${READY_TIMEOUT_MS / 1000} s`)), READY_TIMEOUT_MS);
      this.process.once('exit', (code) => {
        clearTimeout(timer);
        reject(new Error(`worker ${index + 1} exited (code ${code}) before it was ready`));
      });
      this.process.on('message', (message: WorkerReply) => {
        if ('event' in message) {
          if (message.event === 'ready') {
            clearTimeout(timer);
            resolve();
          } else onEvent(index, message);
          return;
        }
        const waiter = this.#pending.get(message.id);
        this.#pending.delete(message.id);
        if (message.ok) waiter?.resolve(message.value);
        else waiter?.reject(new Error(message.error));
      });
    });
    this.ready.catch(() => {}); // awaited by callers; an early exit must not be an unhandled rejection
    // A send to a worker that died (killed from outside, out of memory) fails its call, below; the process
    // object's 'error' event must not end the server.
    this.process.on('error', () => {});
    this.process.on('exit', () => {
      for (const waiter of this.#pending.values()) waiter.reject(new Error('the worker process ended'));
      this.#pending.clear();
    });
  }

  async call<T>(cmd: string, args: Record<string, unknown>): Promise<T> {
    await this.ready;
    if (!this.process.connected) throw new Error(`the worker process (pid ${this.process.pid}) is not running`);
    const id = this.#next++;
    return new Promise<T>((resolve, reject) => {
      this.#pending.set(id, { resolve: resolve as (value: unknown) => void, reject });
      this.process.send({ id, cmd, args } satisfies WorkerRequest, undefined, undefined, (error) => {
        if (!error) return;
        this.#pending.delete(id);
        reject(new Error(`the worker process (pid ${this.process.pid}) could not be asked: ${error.message}`));
      });
    });
  }

  /** True once the process has exited. */
  get exited(): boolean {
    return this.process.exitCode !== null || this.process.signalCode !== null;
  }

  /** Closes the IPC channel (the worker cleans up and exits) and waits for the exit; kills it after `graceMs`. */
  async stop(graceMs = 5000): Promise<void> {
    if (this.exited) return;
    const exited = new Promise<void>((resolve) => this.process.once('exit', () => resolve()));
    if (this.process.connected) this.process.disconnect();
    const timer = setTimeout(() => this.process.kill('SIGKILL'), graceMs);
    await exited;
    clearTimeout(timer);
  }
}

export class WorkerPool {
  readonly #env: NodeJS.ProcessEnv;
  readonly #onEvent: (index: number, event: WorkerEvent) => void;
  readonly #workers: Worker[];
  readonly #crashing: Array<Promise<void> | undefined> = [];

  constructor(size: number, env: NodeJS.ProcessEnv, onEvent: (index: number, event: WorkerEvent) => void) {
    this.#env = env;
    this.#onEvent = onEvent;
    this.#workers = Array.from({ length: size }, (_, i) => new Worker(i, env, onEvent));
  }

  get size(): number {
    return this.#workers.length;
  }

  pids(): number[] {
    return this.#workers.map((w) => w.process.pid ?? 0);
  }

  async ready(): Promise<void> {
    await Promise.all(this.#workers.map((w) => w.ready));
  }

  call<T>(index: number, cmd: string, args: Record<string, unknown> = {}): Promise<T> {
    return this.#workers[index]!.call<T>(cmd, args);
  }

  /** Every worker at once. */
  all<T>(cmd: string, args: Record<string, unknown> = {}): Promise<T[]> {
    return Promise.all(this.#workers.map((w) => w.call<T>(cmd, args)));
  }

  /**
   * Kills worker `index` with SIGKILL (no cleanup, as a crash) and starts a fresh one in its place. Resolves as
   * soon as the old process is gone, with `started`: the fresh one's pid once it is ready (which takes seconds on
   * a busy machine; calls to the worker wait for it). What follows from the crash (a lease running out) is not
   * held up behind the restart.
   */
  crash(index: number): Promise<{ killed: number; started: Promise<number> }> {
    // One at a time per worker: two crashes at once would each start a replacement, and one would be lost.
    const crash = (this.#crashing[index] ?? Promise.resolve()).then(async () => {
      const old = this.#workers[index]!;
      const killed = old.process.pid ?? 0;
      if (!old.exited) {
        const exited = new Promise<void>((resolve) => old.process.once('exit', () => resolve()));
        old.process.kill('SIGKILL');
        await exited;
      }
      const fresh = new Worker(index, this.#env, this.#onEvent);
      this.#workers[index] = fresh;
      return { killed, started: fresh.ready.then(() => fresh.process.pid ?? 0) };
    });
    this.#crashing[index] = crash.then(
      () => undefined,
      () => undefined,
    );
    return crash;
  }

  async stop(): Promise<void> {
    await Promise.all(this.#workers.map((w) => w.stop()));
  }

  /** Kills every worker at once (SIGKILL), without waiting: the server is stopping at once. */
  kill(): void {
    for (const w of this.#workers) w.process.kill('SIGKILL');
  }
}
