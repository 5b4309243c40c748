/** The dashboard as a child process (demo/launch.ts), and what a test needs to see its processes. */
import { execFileSync } from 'node:child_process';

export { DEMO_MAIN, type RunningDemo, startDemo } from '../../demo/launch.js';

/** The pids of `pid`'s child processes, and theirs (from ps). */
export function descendants(pid: number): number[] {
  const table = execFileSync('ps', ['-eo', 'pid=,ppid='], { encoding: 'utf8' })
    .trim()
    .split('\n')
    .map((line) => line.trim().split(/\s+/).map(Number) as [number, number]);
  const found: number[] = [];
  const walk = (parent: number) => {
    for (const [child, ppid] of table) {
      if (ppid === parent) {
        found.push(child);
        walk(child);
      }
    }
  };
  walk(pid);
  return found;
}

/** True while a process with this pid runs (a zombie, exited but not yet reaped, does not count). */
export function alive(pid: number): boolean {
  try {
    return !execFileSync('ps', ['-o', 'stat=', '-p', String(pid)], { encoding: 'utf8' }).trim().startsWith('Z');
  } catch {
    return false; // ps exits 1 when there is no such process
  }
}
