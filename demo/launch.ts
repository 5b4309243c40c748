/**
 * Starts the dashboard (`demo/main.ts`) as a real child process, the way `npm run demo` does, and waits
 * for the URL it prints (on a free port). Used by the browser tests and scripts/screenshot.ts.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { fileURLToPath } from 'node:url';

export const DEMO_MAIN = fileURLToPath(new URL('./main.ts', import.meta.url));

export interface RunningDemo {
  readonly url: string;
  readonly child: ChildProcess;
  /** Everything it printed so far (stdout and stderr). */
  output(): string;
  /** Resolves with the exit code (or signal) once it has exited. */
  readonly exited: Promise<number | string>;
}

/**
 * `viaNpm`: as a user types it, `npm run demo -- --port 0` (npm is then the child; the dashboard runs under it),
 * from the project's directory.
 */
export async function startDemo(options: { args?: string[]; env?: NodeJS.ProcessEnv; detached?: boolean; timeoutMs?: number; viaNpm?: boolean } = {}): Promise<RunningDemo> {
  const [file, argv] = options.viaNpm
    ? ['npm', ['run', '--silent', 'demo', '--', '--port', '0', ...(options.args ?? [])]]
    : [process.execPath, ['--import', 'tsx', DEMO_MAIN, '--port', '0', ...(options.args ?? [])]];
  const child = spawn(file, argv, {
    cwd: fileURLToPath(new URL('..', import.meta.url)),
    env: options.env ?? process.env,
    detached: options.detached ?? false,
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let output = '';
  child.stdout!.on('data', (chunk: Buffer) => void (output += chunk.toString()));
  child.stderr!.on('data', (chunk: Buffer) => void (output += chunk.toString()));
  const exited = new Promise<number | string>((resolve) => child.once('exit', (code, signal) => resolve(code ?? signal ?? -1)));
  const url = await new Promise<string>((resolve, reject) => {
    const timer = setTimeout(() => {
      child.kill('SIGKILL');
      reject(new Error(`the dashboard printed no URL within ${options.timeoutMs ?? 60_000} ms:\n${output}`));
    }, options.timeoutMs ?? 60_000);
    const look = () => {
      const match = /open (http:\/\/\S+?)\/? /.exec(output);
      if (match) {
        clearTimeout(timer);
        resolve(match[1]!);
      }
    };
    child.stdout!.on('data', look);
    void exited.then((code) => {
      clearTimeout(timer);
      reject(new Error(`the dashboard exited (${code}) before printing its URL:\n${output}`));
    });
  });
  return { url, child, output: () => output, exited };
}

