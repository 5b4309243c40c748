/**
 * The URL of this module, for resolving packages as this package sees them (its peers). The CommonJS
 * build replaces this file with one that reads `__filename` (scripts/build-cjs.mjs): `import.meta`
 * exists only in ES modules.
 */
export const SELF_URL: string = import.meta.url;
