import { PgStore, type PgStoreOptions } from '../../src/index.js';
import { testUrl, waitFor } from './db.js';

/** Reads `key` through ext and tells whether the local tier answered (by its counter). */
export async function fromMemory(store: PgStore, key: string): Promise<{ value: string | undefined; fromMemory: boolean }> {
  const { localHits } = await store.stats();
  const value = await store.ext.getString(key);
  return { value, fromMemory: (await store.stats()).localHits === localHits + 1 };
}

/**
 * A store on `table` with its own pool and listener, as another process has, pushed to `own` (the caller
 * disconnects them); it resolves once its tier listens (a stored probe is answered from memory).
 */
export async function tieredStore(table: string, own: PgStore[], options: Omit<PgStoreOptions, 'table'> = {}): Promise<PgStore> {
  const store = new PgStore({ uri: testUrl(), table, enableExpirationScan: false, localCache: { ttl: '1h' }, ...options });
  own.push(store);
  await store.ext.set('probe', 'listening', { absoluteExpirationRelative: '1h' });
  await waitFor(async () => (await fromMemory(store, 'probe')).fromMemory, 5000, 'the tier to listen');
  return store;
}
