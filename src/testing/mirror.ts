/**
 * Binaries the server's user can run. As root, PostgreSQL runs as the `postgres` user, who cannot reach
 * binaries under a directory closed to other users (a project in a `mktemp -d` directory or under
 * /root, both 0700). Rather than opening the user's directories, the binaries' tree is mirrored into
 * the run directory: hard links (copies across file systems, or of files the user could not read).
 */
import { execFile } from 'node:child_process';
import { chmod, copyFile, link, lstat, mkdir, readdir, readlink, symlink } from 'node:fs/promises';
import path from 'node:path';
import type { Binaries } from './binaries.js';
import type { RunAs } from './os-user.js';

/**
 * True when `runAs` can run both binaries (`--version`): the real test of every directory above them,
 * their modes and their libraries, as the kernel applies them to that user.
 */
export async function canRun(binaries: Binaries, runAs: RunAs): Promise<boolean> {
  const runs = (file: string) =>
    new Promise<boolean>((resolve) => {
      execFile(file, ['--version'], { ...runAs, cwd: '/', timeout: 30_000 }, (error) => resolve(!error));
    });
  return (await runs(binaries.initdb)) && (await runs(binaries.postgres));
}

/** True when `runAs` can enter `dir` (every directory above it lets that user through). */
export function canEnter(dir: string, runAs: RunAs): Promise<boolean> {
  return new Promise((resolve) => {
    execFile('/bin/sh', ['-c', 'cd "$1"', 'probe', dir], { ...runAs, cwd: '/', timeout: 30_000 }, (error) => resolve(!error));
  });
}

/** Mirrors `binaries.native` into `target` (which must not exist; created 0755) and returns the mirrored binaries. */
export async function mirrorBinaries(binaries: Binaries, target: string): Promise<Binaries> {
  await mirrorTree(binaries.native, target);
  const inMirror = (file: string) => path.join(target, path.relative(binaries.native, file));
  return { native: target, initdb: inMirror(binaries.initdb), postgres: inMirror(binaries.postgres) };
}

async function mirrorTree(source: string, target: string): Promise<void> {
  await mkdir(target, { mode: 0o755 });
  await chmod(target, 0o755); // whatever the umask
  for (const entry of await readdir(source, { withFileTypes: true })) {
    const from = path.join(source, entry.name);
    const to = path.join(target, entry.name);
    if (entry.isSymbolicLink()) await symlink(await readlink(from), to); // native/lib links relatively
    else if (entry.isDirectory()) await mirrorTree(from, to);
    else if (entry.isFile()) await mirrorFile(from, to);
  }
}

/** A hard link when others can read (and, for a program, run) the file; else, or across file systems, a copy they can. */
async function mirrorFile(from: string, to: string): Promise<void> {
  const { mode } = await lstat(from);
  const executable = (mode & 0o100) !== 0;
  if ((mode & 0o004) !== 0 && (!executable || (mode & 0o001) !== 0)) {
    try {
      await link(from, to);
      return;
    } catch (error) {
      const code = (error as NodeJS.ErrnoException).code;
      if (code !== 'EXDEV' && code !== 'EPERM' && code !== 'EMLINK' && code !== 'ENOTSUP') throw error;
    }
  }
  await copyFile(from, to);
  await chmod(to, executable ? 0o755 : 0o644);
}
