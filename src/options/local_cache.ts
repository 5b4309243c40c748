import { MAX_WAIT_MS, parseDuration } from '../duration.js';
import { CachePostgresError, InvalidOptionError, show } from '../errors.js';
import type { LocalCacheOptions, PgStoreOptions } from './types.js';

/** The in-process tier's options after defaults and validation. */
export interface ResolvedLocalCache {
  readonly maxEntries: number;
  readonly ttlMs: number;
  readonly maxBytes: number;
  readonly notifyTrigger: boolean;
}

/** Validates {@link PgStoreOptions.localCache} and applies its defaults: undefined when the tier is off. */
export function localCache(value: PgStoreOptions['localCache']): ResolvedLocalCache | undefined {
  if (value === undefined || value === false) return undefined;
  const given: LocalCacheOptions = value === true ? {} : value;
  if (typeof given !== 'object' || given === null || Array.isArray(given)) {
    throw new InvalidOptionError('localCache', 'expected true, false or { maxEntries, maxBytes, ttl, notifyTrigger }.');
  }
  const unknown = Object.keys(given).find((name) => !LOCAL_CACHE_FIELDS.includes(name));
  if (unknown) throw new InvalidOptionError('localCache', `unknown field "${unknown}". Known fields: ${LOCAL_CACHE_FIELDS.join(', ')}.`);
  const notifyTrigger = given.notifyTrigger ?? false;
  if (typeof notifyTrigger !== 'boolean') throw new InvalidOptionError('localCache', `notifyTrigger must be true or false, got ${show(given.notifyTrigger)}.`);
  const maxBytes = given.maxBytes ?? 64 * 2 ** 20;
  if (!Number.isSafeInteger(maxBytes) || maxBytes < 1) {
    throw new InvalidOptionError('localCache', `maxBytes must be a positive whole number of bytes, got ${show(given.maxBytes)}.`);
  }
  const maxEntries = given.maxEntries ?? 10_000;
  if (!Number.isSafeInteger(maxEntries) || maxEntries < 1) {
    throw new InvalidOptionError('localCache', `maxEntries must be a positive integer, got ${show(given.maxEntries)}.`);
  }
  let ttlMs: number;
  try {
    ttlMs = parseDuration(given.ttl ?? '5s', 'localCache.ttl', MAX_WAIT_MS);
  } catch (error) {
    throw new InvalidOptionError('localCache', error instanceof CachePostgresError ? error.message : String(error), { cause: error });
  }
  if (ttlMs <= 0) throw new InvalidOptionError('localCache', 'ttl must be greater than zero.');
  return Object.freeze({ maxEntries, ttlMs, maxBytes, notifyTrigger });
}

const LOCAL_CACHE_FIELDS = ['maxEntries', 'maxBytes', 'ttl', 'notifyTrigger'];
