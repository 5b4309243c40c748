/**
 * cache-postgres: a Keyv and cache-manager store on PostgreSQL, with `store.ext` for what they lack.
 * @module cache-postgres
 */
import { PgStore } from './store/pg_store.js';

export { type CapacityStats, PgStore, type PgStoreKeyvOptions } from './store/pg_store.js';
export type { KeyvStorageCapabilities, MethodReport } from './store/keyv_protocol.js';
/** `import PgStore from 'cache-postgres'`, as the `@keyv/*` store packages default-export their store. */
export default PgStore;
export { createKeyv } from './keyv.js';
export type { Counters, PgStoreEvents } from './observer.js';
export type { TableStats } from './execution/table_statements.js';
export type { CacheLogger, DistributedOptions, LocalCacheOptions, PgStoreOptions } from './options/index.js';
export {
  CacheExt,
  CacheTransaction,
  type CallerClient,
  type InvalidateOnOptions,
  type InvalidationStatus,
  type InvalidationTarget,
  type CachedOptions,
  type Decorators,
  type EarlyOptions,
  type FailoverOptions,
  type GraceOptions,
  type KeyOption,
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
  type TypedFactory,
  type TypedGetOrSetOptions,
} from './ext/index.js';
export { type Duration, parseDuration } from './duration.js';
export { MAX_KEY_LENGTH } from './keys.js';
export { MAX_VALUE_BYTES } from './sql/values.js';
export {
  type CompressionOptions,
  type PayloadOptions,
  type Serializer,
  serializers,
} from './serialization.js';
export {
  CachePostgresError,
  InvalidOptionError,
  InvalidDurationError,
  InvalidKeyError,
  InvalidValueError,
  SchemaError,
  StoreClosedError,
  QueryError,
  ConnectionError,
  StatementTimeoutError,
  NotACounterError,
  CounterOverflowError,
  LockTimeoutError,
  LockNotHeldError,
  FactoryTimeoutError,
  ValueTooLargeError,
  NotInTransactionError,
  UnreadableResultError,
  errors,
} from './errors.js';
