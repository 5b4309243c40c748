import Keyv, { type KeyvOptions } from 'keyv';
import type { PgStoreOptions } from './options/index.js';
import { PgStore } from './store/pg_store.js';

/**
 * A Keyv on a new {@link PgStore}, as `createKeyv()` of the `@keyv/*` packages:
 *
 * ```ts
 * const keyv = createKeyv(process.env.DATABASE_URL, { namespace: 'users', throwOnErrors: true });
 * ```
 *
 * @param options the store's options (or a connection URL)
 * @param keyvOptions Keyv's own options (namespace, ttl, throwOnErrors, ...), except `store`
 */
export function createKeyv<Value = any>(options?: PgStoreOptions | string, keyvOptions: Omit<KeyvOptions, 'store'> = {}): Keyv<Value> {
  return new Keyv<Value>({ ...keyvOptions, store: new PgStore(options) });
}
