// npm's `prepare`: builds dist/ where the package is installed from its sources (a git URL, a folder,
// `npm pack` of a clone), so `import 'cache-postgres'` finds what it needs. npm runs it after
// installing the devDependencies it builds with (for a git URL too).
//
// Skipped, saying why, when TypeScript is not installed (a folder installed with --omit=dev: build it
// there first, or install the packed tarball), and when dist/ is newer than every source file. It writes
// to stderr only: `npm pack --json` prints its answer on stdout.
import { existsSync, readdirSync, rmSync, statSync } from 'node:fs';
import { execFileSync } from 'node:child_process';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const root = fileURLToPath(new URL('..', import.meta.url));
const tsc = path.join(root, 'node_modules/typescript/bin/tsc');

/** Newest modification time of the files under `dir`. */
function newest(dir) {
  let time = 0;
  for (const entry of readdirSync(dir, { withFileTypes: true })) {
    const full = path.join(dir, entry.name);
    time = Math.max(time, entry.isDirectory() ? newest(full) : statSync(full).mtimeMs);
  }
  return time;
}

const built = path.join(root, 'dist/cjs/package.json');
if (existsSync(built) && statSync(built).mtimeMs >= newest(path.join(root, 'src'))) {
  console.error('cache-postgres: dist/ is up to date');
} else if (!existsSync(tsc)) {
  console.warn('cache-postgres: dist/ is missing or outdated and TypeScript is not installed here: run `npm install && npm run build` in this folder.');
} else {
  console.error('cache-postgres: building dist/ ...');
  rmSync(path.join(root, 'dist'), { recursive: true, force: true });
  execFileSync(process.execPath, [tsc, '-p', path.join(root, 'tsconfig.build.json')], { stdio: 'inherit', cwd: root });
  execFileSync(process.execPath, [path.join(root, 'scripts/build-cjs.mjs')], { stdio: 'inherit', cwd: root });
}
