export { PgStore, type PgStoreEvents, type PgStoreKeyvOptions } from './store.js';
export type { PgStoreOptions } from './options.js';
export { type Duration, parseDuration } from './duration.js';
export { MAX_KEY_LENGTH } from './keys.js';
export {
  CachePostgresError,
  InvalidOptionError,
  InvalidDurationError,
  InvalidKeyError,
  InvalidValueError,
  SchemaError,
  StoreClosedError,
  QueryError,
  errors,
} from './errors.js';
