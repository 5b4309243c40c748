import { spawnSync } from 'node:child_process';
import { expect } from 'chai';

/** Runs a command; fails the test with its output when it exits non-zero. Returns stdout. */
export function run(command: string, args: string[], cwd: string, env: Record<string, string | undefined> = {}): string {
  const result = spawnSync(command, args, {
    cwd,
    encoding: 'utf8',
    timeout: 300_000,
    maxBuffer: 64 * 1024 * 1024,
    env: { ...process.env, npm_config_audit: 'false', npm_config_fund: 'false', npm_config_update_notifier: 'false', ...env },
  });
  const output = `${result.stdout}\n${result.stderr}`;
  expect(result.status, `${command} ${args.join(' ')} in ${cwd} exited ${result.status}:\n${output.slice(-4000)}`).to.equal(0);
  return result.stdout;
}

/** Like {@link run}, but returns the exit status and output instead of failing on a non-zero exit. */
export function attempt(command: string, args: string[], cwd: string, env: Record<string, string | undefined> = {}): { status: number | null; output: string } {
  const result = spawnSync(command, args, {
    cwd,
    encoding: 'utf8',
    timeout: 300_000,
    maxBuffer: 64 * 1024 * 1024,
    env: { ...process.env, npm_config_audit: 'false', npm_config_fund: 'false', npm_config_update_notifier: 'false', ...env },
  });
  return { status: result.status, output: `${result.stdout}\n${result.stderr}` };
}
