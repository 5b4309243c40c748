/**
 * The cache-manager stores: `createPgCache` for cache-manager 6 and 7 (Keyv-based).
 * @module cache-postgres/cache-manager
 */
// cache-manager 6 and 7 (Keyv-based). The cache-manager 5 store is `cache-postgres/cache-manager/v5`: it is a
// separate entry point so that loading it needs neither keyv nor cache-manager 7.
export { createPgCache, type PgCache, type PgCacheOptions } from './v7.js';
