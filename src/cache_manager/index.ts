export { createPgCache, type PgCache, type PgCacheOptions } from './v7.js';
export { pgStore, type PgStoreV5, type PgStoreV5Config } from './v5.js';
