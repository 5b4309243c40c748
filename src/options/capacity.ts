import { durationOption, MAX_WAIT_MS } from '../duration.js';
import { InvalidOptionError, show } from '../errors.js';
import type { PgStoreOptions } from './types.js';

/** The size cap after defaults and validation (see {@link PgStoreOptions.maxSize}). */
export interface ResolvedCapacity {
  /** Most bytes of entries (key and value octets); null: no byte cap. */
  readonly maxBytes: number | null;
  /** Most entries; null: no entry cap. */
  readonly maxEntries: number | null;
  readonly policy: 'lru' | 'fifo';
  /** Time between two checks of the sweeper. */
  readonly intervalMs: number;
  /** LRU: a read is recorded once its last record is this old. */
  readonly resolutionMs: number;
}

/** The smallest byte cap: below it a table is mostly its own overhead (pages, indexes), and one value may fill it. */
export const MIN_MAX_SIZE = 1024 * 1024;

const UNITS: Readonly<Record<string, number>> = {
  b: 1, kb: 1024, kib: 1024, mb: 1024 ** 2, mib: 1024 ** 2, gb: 1024 ** 3, gib: 1024 ** 3, tb: 1024 ** 4, tib: 1024 ** 4,
};
const SIZE = /^\s*(\d+(?:\.\d+)?)\s*([a-z]*)\s*$/i;

/** Validates the cap options; undefined when neither maxSize nor maxEntries is given (then the others must not be). */
export function capacity(raw: PgStoreOptions): ResolvedCapacity | undefined {
  const maxBytes = raw.maxSize === undefined ? null : sizeOption(raw.maxSize);
  const maxEntries = raw.maxEntries === undefined ? null : entriesOption(raw.maxEntries);
  if (maxBytes === null && maxEntries === null) {
    for (const name of ['eviction', 'evictionInterval', 'lruResolution'] as const) {
      if (raw[name] !== undefined) throw new InvalidOptionError(name, 'has no effect without maxSize or maxEntries: give a cap, or leave it out.');
    }
    return undefined;
  }
  if (raw.distributed !== undefined && raw.distributed !== false) {
    throw new InvalidOptionError(
      maxBytes !== null ? 'maxSize' : 'maxEntries',
      'is not available with distributed (Citus): the cap is kept by triggers on the table, which would run on each shard. Cap a table on one server, or leave it out.',
    );
  }
  const policy = raw.eviction ?? 'lru';
  if (policy !== 'lru' && policy !== 'fifo') throw new InvalidOptionError('eviction', `must be 'lru' (the default) or 'fifo', got ${show(raw.eviction)}.`);
  const intervalMs = durationOption(raw.evictionInterval ?? '1s', 'evictionInterval', MAX_WAIT_MS);
  if (intervalMs < 100 || intervalMs > 3600_000) throw new InvalidOptionError('evictionInterval', `must be from 100 ms to 1 hour, got ${show(raw.evictionInterval)}.`);
  const resolutionMs = durationOption(raw.lruResolution ?? '5s', 'lruResolution', MAX_WAIT_MS);
  if (resolutionMs < 1000) throw new InvalidOptionError('lruResolution', `must be at least 1 second, got ${show(raw.lruResolution)}.`);
  if (raw.lruResolution !== undefined && policy !== 'lru') throw new InvalidOptionError('lruResolution', "applies to eviction 'lru' only.");
  return Object.freeze({ maxBytes, maxEntries, policy, intervalMs, resolutionMs });
}

/** `maxSize`: whole bytes, or text with a unit as in postgresql.conf (kB, MB, GB, TB are powers of 1024; KiB... too). */
function sizeOption(value: unknown): number {
  let bytes: number;
  if (typeof value === 'number') bytes = value;
  else if (typeof value === 'string' && SIZE.test(value)) {
    const [, amount, unit] = SIZE.exec(value)!;
    const factor = UNITS[(unit || 'b').toLowerCase()];
    if (factor === undefined) {
      throw new InvalidOptionError('maxSize', `unknown unit "${unit}" in ${show(value)}: use B, kB, MB, GB or TB (powers of 1024, as postgresql.conf), or KiB, MiB, GiB, TiB.`);
    }
    bytes = Math.floor(Number(amount) * factor);
  } else {
    throw new InvalidOptionError('maxSize', `expected bytes (a whole number) or a size such as '64MB' or '2GiB', got ${show(value)}.`);
  }
  if (!Number.isSafeInteger(bytes) || bytes < 0) throw new InvalidOptionError('maxSize', `expected a whole, non-negative number of bytes, got ${show(value)}.`);
  if (bytes < MIN_MAX_SIZE) {
    throw new InvalidOptionError('maxSize', `must be at least 1MB (${MIN_MAX_SIZE} bytes), got ${show(value)}: a smaller table is mostly its own overhead, and one entry could fill it.`);
  }
  return bytes;
}

function entriesOption(value: unknown): number {
  if (typeof value !== 'number' || !Number.isSafeInteger(value) || value < 1) {
    throw new InvalidOptionError('maxEntries', `expected a positive whole number, got ${show(value)}.`);
  }
  return value;
}

/** `storageSettings`: true, false or undefined (the default: only on a table the store creates). */
export function storageSettings(value: unknown): boolean | undefined {
  if (value === undefined || typeof value === 'boolean') return value;
  throw new InvalidOptionError('storageSettings', `must be true, false or left out, got ${show(value)}.`);
}
