export { PgStore, type PgStoreEvents, type PgStoreKeyvOptions } from './store.js';
export type { PgStoreOptions } from './options.js';
export {
  CacheExt,
  type CounterOptions,
  type DeletePatternOptions,
  type DeleteTagsOptions,
  type EntryInfo,
  type EntryOptions,
  type EntryValue,
  type Factory,
  type FactoryContext,
  type GetOrSetOptions,
  type LockHandle,
  type LockOptions,
  type PatternOptions,
} from './ext/index.js';
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
  NotACounterError,
  CounterOverflowError,
  LockTimeoutError,
  LockNotHeldError,
  errors,
} from './errors.js';
