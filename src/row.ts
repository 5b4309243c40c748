import { ValueTooLargeError } from './errors.js';

/**
 * A row of the cache table as every layer passes it: what a write sends (the five contract columns plus
 * tags) and what a read learns of a sliding entry. Data only; the statements that read and write rows live
 * in execution/row_statements.ts, their SQL in sql/rows.ts.
 */

/** One row to write: the five contract columns plus tags, timestamps as ISO strings (or 'infinity'). */
export interface RowWrite {
  readonly id: string;
  readonly value: Buffer;
  /** The value as the text it was given as (Keyv's string): what the local tier keeps, if it keeps it. */
  readonly text?: string;
  readonly expires: string;
  readonly sliding: number | null;
  readonly absolute: string | null;
  readonly tags: readonly string[] | null;
}

/** What a counter gets when an increment creates it (or restarts it after expiry). */
export interface CounterCreate {
  readonly expires: string;
  readonly absolute: string | null;
  readonly tags: readonly string[] | null;
}

/** A sliding expiration, as the local tier needs it: the window, and the absolute expiry it never passes. */
export interface Slide {
  readonly windowMs: number;
  /** Epoch ms; Infinity when the entry has no absolute expiry. */
  readonly absMs: number;
}

/** When a written row expires, in epoch ms. */
export function expiresAtOf(row: RowWrite): number {
  return row.expires === 'infinity' ? Number.POSITIVE_INFINITY : Date.parse(row.expires);
}

/** A written row's sliding expiration, or undefined. */
export function slideOf(row: RowWrite): Slide | undefined {
  if (row.sliding === null) return undefined;
  return { windowMs: row.sliding * 1000, absMs: row.absolute === null ? Number.POSITIVE_INFINITY : Date.parse(row.absolute) };
}

/**
 * Refuses an entry larger than the table's byte cap (`maxSize`: its key's UTF-8 bytes and its value's), before
 * anything runs: stored, it would evict every other entry and then itself.
 * @throws {ValueTooLargeError}
 */
export function checkEntrySize(id: string, value: Buffer, maxBytes: number | null | undefined): void {
  const refused = entrySizeError(id, value, maxBytes);
  if (refused) throw refused;
}

/** {@link checkEntrySize}'s error, returned. */
export function entrySizeError(id: string, value: Buffer, maxBytes: number | null | undefined): ValueTooLargeError | undefined {
  if (maxBytes === null || maxBytes === undefined || value.length + id.length * 3 <= maxBytes) return undefined;
  const size = value.length + Buffer.byteLength(id, 'utf8');
  return size > maxBytes ? new ValueTooLargeError(size, maxBytes, 'maxSize (key and value bytes)') : undefined;
}
