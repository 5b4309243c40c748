export type { CacheLogger, DistributedOptions, LocalCacheOptions, PgStoreOptions } from './types.js';
export { type ResolvedOptions, resolveOptions } from './resolve.js';
export { fromKeyvPostgres, KEYV_POSTGRES_NAMES, type KeyvPostgresOptions, type Translated } from './keyv_postgres.js';
