// npm's `prepare`: builds dist/ where the package is installed from its sources (a git URL, a folder,
// `npm pack` of a clone), so `import 'cache-postgres'` finds what it needs. npm runs it after
// installing the devDependencies it builds with (for a git URL too).
//
// Skipped, saying why, when TypeScript is not installed (a folder installed with --omit=dev: build it
// there first, or install the packed tarball), and when dist/ is newer than every file it is built from. It writes
// to stderr only: `npm pack --json` prints its answer on stdout.
import { existsSync, readdirSync, rmSync, statSync } from 'node:fs';
import { execFileSync } from 'node:child_process';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const root = fileURLToPath(new URL('..', import.meta.url));
const tsc = path.join(root, 'node_modules/typescript/bin/tsc');

/** Newest modification time of `dir` and everything under it (a deleted file changes its directory's). */
function newest(dir) {
  let time = statSync(dir).mtimeMs;
  for (const entry of readdirSync(dir, { withFileTypes: true })) {
    const full = path.join(dir, entry.name);
    time = Math.max(time, entry.isDirectory() ? newest(full) : statSync(full).mtimeMs);
  }
  return time;
}

/** What dist/ is built from: the sources, the build's configuration and scripts. */
const inputs = () =>
  Math.max(
    newest(path.join(root, 'src')),
    ...['package.json', 'tsconfig.json', 'tsconfig.build.json', 'tsconfig.cjs.json', 'scripts/build-cjs.mjs']
      .map((file) => path.join(root, file))
      .filter((file) => existsSync(file))
      .map((file) => statSync(file).mtimeMs),
  );

const built = path.join(root, 'dist/cjs/package.json');
if (existsSync(built) && statSync(built).mtimeMs >= inputs()) {
  console.error('cache-postgres: dist/ is up to date');
} else if (!existsSync(tsc)) {
  console.warn('cache-postgres: dist/ is missing or outdated and TypeScript is not installed here: run `npm install && npm run build` in this folder.');
} else {
  console.error('cache-postgres: building dist/ ...');
  rmSync(path.join(root, 'dist'), { recursive: true, force: true });
  execFileSync(process.execPath, [tsc, '-p', path.join(root, 'tsconfig.build.json')], { stdio: 'inherit', cwd: root });
  execFileSync(process.execPath, [path.join(root, 'scripts/build-cjs.mjs')], { stdio: 'inherit', cwd: root });
}
