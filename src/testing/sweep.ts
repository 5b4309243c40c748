/**
 * Removes what an embedded server left behind when its owner process died without cleaning up (and its
 * watchdog could not either: killed with it, or no /bin/sh): run directories marked as ours whose owner
 * is gone, and their server process. Directories without our owner file are never touched.
 */
import { lstat, readdir } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { stopPostgresOf } from './processes.js';
import { ownerGone, readOwner, removeRunDir, RUN_DIR_PREFIX } from './run-dir.js';

/**
 * Sweeps `<tmpdir>/cache-postgres-*`. Best effort: a directory that cannot be removed (another user's)
 * is left as it is; it never throws.
 * @returns the directories removed
 */
export async function sweepAbandoned(log: (line: string) => void): Promise<string[]> {
  const removed: string[] = [];
  const root = path.resolve(tmpdir());
  const names = await readdir(root).catch(() => [] as string[]);
  for (const name of names) {
    if (!name.startsWith(RUN_DIR_PREFIX)) continue;
    const dir = path.join(root, name);
    try {
      if (!(await lstat(dir)).isDirectory()) continue;
      const owner = readOwner(dir);
      if (!owner || !ownerGone(owner)) continue;
      const stopped = await stopPostgresOf(path.join(dir, 'data'));
      await removeRunDir(dir);
      removed.push(dir);
      log(`removed ${dir}, left by process ${owner.pid}${stopped ? ' with its PostgreSQL still running' : ''}`);
    } catch {
      // gone meanwhile (its watchdog or another sweep), or not ours to remove
    }
  }
  return removed;
}
