import type { RowWrite, Slide } from '../row.js';
import { forEachInTurns } from '../in_turns.js';
import { bytesOf, bytesOfEscaped, oversize, textOfEscaped, tooLarge } from '../sql/values.js';

/** With the in-process tier, what a read returns of a row's expiry (see buildSql's withExpiry). */
type ExpiryColumns = { until?: number | null; sw?: string | null; absms?: number | null };

/** A row of the reads: the key, its value as base64 text, and (with the in-process tier) its expiry. */
export type BytesRow = { id: string; b64: string } & ExpiryColumns;

/** A row of the text reads: the value in PostgreSQL's `escape` form. */
export type EscapedRow = { id: string; esc: string } & ExpiryColumns;

/** A value read: its bytes, its `escape` text, its text (from the local tier), or (over MAX_VALUE_BYTES, not sent) its size. */
export type Found = ({ value: Buffer } | { escaped: string } | { text: string } | { tooLarge: number }) & {
  /** The row's expiry (epoch ms) as read, with the in-process tier; null: not kept there. */
  until: number | null;
  /** A sliding row's window and absolute expiry (with the in-process tier). */
  slide?: Slide;
};

/** Rows by id; a value over MAX_VALUE_BYTES becomes its size, an error for its own caller only. */
export function foundById(rows: ReadonlyArray<BytesRow | EscapedRow>): Map<string, Found> {
  return new Map(rows.map((row) => [row.id, found(row)]));
}

/** {@link foundById} for a large read, in turns (in_turns.ts): a Buffer per row costs about 1 µs. */
export async function foundByIdInTurns(rows: ReadonlyArray<BytesRow | EscapedRow>): Promise<Map<string, Found>> {
  const byId = new Map<string, Found>();
  await forEachInTurns(rows, (row) => byId.set(row.id, found(row)));
  return byId;
}

function found(row: BytesRow | EscapedRow): Found {
  const until = row.until ?? null;
  const size = oversize(row);
  if (size !== undefined) return { tooLarge: size, until };
  const value = 'esc' in row ? { escaped: row.esc, until } : { value: bytesOf(row), until };
  if (row.sw === null || row.sw === undefined) return value;
  return { ...value, slide: { windowMs: Number(row.sw) * 1000, absMs: row.absms ?? Number.POSITIVE_INFINITY } };
}

/** The bytes of a value read (a Buffer the caller owns). */
export function bytesOfFound(found: Found): Buffer {
  if ('tooLarge' in found) throw tooLarge(found.tooLarge);
  if ('text' in found) return Buffer.from(found.text, 'utf8');
  return 'value' in found ? found.value : bytesOfEscaped(found.escaped);
}

/** The UTF-8 text of a value read. */
export function textOfFound(found: Found): string {
  if ('tooLarge' in found) throw tooLarge(found.tooLarge);
  if ('text' in found) return found.text;
  return 'value' in found ? found.value.toString('utf8') : textOfEscaped(found.escaped);
}

/**
 * What a read finds right after `row` was written: its value, or nothing when it was written already
 * expired. Not kept by the in-process tier (`until` null): the tier keeps only what it read.
 */
export function storedBy(row: RowWrite, now: number): Found | undefined {
  if (row.expires !== 'infinity' && Date.parse(row.expires) <= now) return undefined;
  return { value: Buffer.from(row.value), until: null };
}
