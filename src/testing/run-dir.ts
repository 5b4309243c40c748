/**
 * The temporary directory of one embedded server, `<tmpdir>/cache-postgres-XXXXXX`, marked with an
 * owner file (the creating process's pid, start time, boot and pid namespace) so that a later start
 * can tell the directories this module created from any other, and whether their owner is gone.
 *
 * Layout: `.cache-postgres-owner` (the marker), `data/` (the cluster), `pwfile` (during initdb),
 * `native/` (a copy of the binaries, when their own directory is closed to the server's user).
 */
import { readFileSync, readlinkSync } from 'node:fs';
import { chmod, mkdtemp, readdir, rm, rmdir, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { isAlive, startTime } from './processes.js';

/** Name prefix of the run directories in the temporary directory. */
export const RUN_DIR_PREFIX = 'cache-postgres-';
/** The owner file, a dotfile so that removing `dir/*` keeps it until the rest is gone. */
export const OWNER_FILE = '.cache-postgres-owner';
const TAG = 'cache-postgres/testing';

/** Contents of the owner file. */
export interface Owner {
  tag: typeof TAG;
  /** The process that created the directory and is responsible for removing it. */
  pid: number;
  /** Its start time (Linux: clock ticks since boot), to tell a reused pid apart. */
  start?: string | undefined;
  /** Linux boot id: another boot means the owner is gone. */
  boot?: string | undefined;
  /** Linux pid namespace: a pid from another one (a /tmp shared with another container) cannot be checked. */
  pidns?: string | undefined;
}

/** Creates and marks a run directory; `traversable` opens it (0711) to the user the server runs as. */
export async function createRunDir(traversable: boolean): Promise<string> {
  const dir = await mkdtemp(path.join(path.resolve(tmpdir()), RUN_DIR_PREFIX));
  try {
    const owner: Owner = { tag: TAG, pid: process.pid, start: startTime(process.pid), boot: bootId(), pidns: pidNamespace() };
    await writeFile(path.join(dir, OWNER_FILE), `${JSON.stringify(owner)}\n`, { mode: 0o644 });
    if (traversable) await chmod(dir, 0o711);
  } catch (error) {
    await rm(dir, { recursive: true, force: true });
    throw error;
  }
  return dir;
}

/** The owner recorded in `dir`, or undefined when `dir` is not a run directory of this module. */
export function readOwner(dir: string): Owner | undefined {
  try {
    const owner = JSON.parse(readFileSync(path.join(dir, OWNER_FILE), 'utf8')) as Partial<Owner>;
    return owner.tag === TAG && Number.isInteger(owner.pid) ? (owner as Owner) : undefined;
  } catch {
    return undefined;
  }
}

/** True when the owner process has certainly exited; false when alive or when it cannot be told. */
export function ownerGone(owner: Owner): boolean {
  const boot = bootId();
  if (owner.boot && boot && owner.boot !== boot) return true;
  const pidns = pidNamespace();
  if (owner.pidns && pidns && owner.pidns !== pidns) return false;
  if (!isAlive(owner.pid)) return true;
  const start = startTime(owner.pid);
  return owner.start !== undefined && start !== undefined && owner.start !== start;
}

/**
 * Removes a run directory: everything but the owner file, then the owner file and the directory, so
 * that a directory that could not be emptied stays marked (and is swept later).
 * Refuses a path that is not a marked run directory.
 */
export async function removeRunDir(dir: string): Promise<void> {
  if (!path.basename(dir).startsWith(RUN_DIR_PREFIX) || !readOwner(dir)) return;
  for (const entry of await readdir(dir)) {
    if (entry !== OWNER_FILE) await rm(path.join(dir, entry), { recursive: true, force: true, maxRetries: 3 });
  }
  await rm(path.join(dir, OWNER_FILE), { force: true });
  await rmdir(dir);
}

function bootId(): string | undefined {
  try {
    return readFileSync('/proc/sys/kernel/random/boot_id', 'utf8').trim();
  } catch {
    return undefined;
  }
}

function pidNamespace(): string | undefined {
  try {
    return readlinkSync('/proc/self/ns/pid');
  } catch {
    return undefined;
  }
}
