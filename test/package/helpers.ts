import { spawnSync } from 'node:child_process';
import { expect } from 'chai';

/** Runs a command and returns its exit status and output (stdout, then stderr), failing on nothing. */
export function attempt(command: string, args: string[], cwd: string, env: Record<string, string | undefined> = {}): { status: number | null; stdout: string; output: string } {
  const result = spawnSync(command, args, {
    cwd,
    encoding: 'utf8',
    timeout: 300_000,
    maxBuffer: 64 * 1024 * 1024,
    env: { ...process.env, npm_config_audit: 'false', npm_config_fund: 'false', npm_config_update_notifier: 'false', ...env },
  });
  return { status: result.status, stdout: result.stdout, output: `${result.stdout}\n${result.stderr}` };
}

/** Runs a command; fails the test with its output when it exits non-zero. Returns stdout. */
export function run(command: string, args: string[], cwd: string, env: Record<string, string | undefined> = {}): string {
  const result = attempt(command, args, cwd, env);
  expect(result.status, `${command} ${args.join(' ')} in ${cwd} exited ${result.status}:\n${result.output.slice(-4000)}`).to.equal(0);
  return result.stdout;
}
