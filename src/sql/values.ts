/**
 * The decoding of the forms in which the reads send a value (see VALUE and selectManyText in rows.ts):
 * base64, PostgreSQL's `escape` form, or the size of a value too large to send.
 */
import { ValueTooLargeError } from '../errors.js';

/**
 * The largest value the store writes, and reads: 64 MiB. A bigger value read as text would build a
 * string past V8's limit (about 512 MiB of characters; `escape` form takes up to 4 per byte) inside
 * node-postgres, which ends the process. PostgreSQL's own limit for bytea is 1 GB.
 */
export const MAX_VALUE_BYTES = 64 * 1024 * 1024;

/** The bytes of a value read by one of the statements of rows.ts and bulk.ts (which send it as base64 text). */
/**
 * The bytes of a value read in PostgreSQL's `escape` form: bytes 1-127 as themselves, a backslash
 * doubled, NUL and bytes 128-255 as a backslash and three octal digits.
 */
export function bytesOfEscaped(text: string): Buffer {
  if (text.indexOf('\\') === -1) return Buffer.from(text, 'latin1');
  const out = Buffer.allocUnsafe(text.length);
  let length = 0;
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i);
    if (c !== 0x5c) out[length++] = c;
    else if (text.charCodeAt(i + 1) === 0x5c) {
      out[length++] = 0x5c;
      i += 1;
    } else {
      out[length++] = ((text.charCodeAt(i + 1) - 48) << 6) | ((text.charCodeAt(i + 2) - 48) << 3) | (text.charCodeAt(i + 3) - 48);
      i += 3;
    }
  }
  return out.subarray(0, length);
}

/**
 * The UTF-8 text of a value read in `escape` form. Without a backslash every byte is ASCII and the
 * text is already the answer: no decoding, no copy (the common case for the JSON Keyv stores).
 */
export function textOfEscaped(text: string): string {
  return text.indexOf('\\') === -1 ? text : bytesOfEscaped(text).toString('utf8');
}

/**
 * The size of a value over {@link MAX_VALUE_BYTES} that a read sent in its place (base64 reads: `!`
 * and the size; `escape` reads: a backslash, `!` and the size), or undefined for a value sent.
 */
export function oversize(row: { b64: string } | { esc: string }): number | undefined {
  if ('b64' in row) return row.b64.charCodeAt(0) === 33 /* ! */ ? Number(row.b64.slice(1)) : undefined;
  return row.esc.startsWith('\\!') ? Number(row.esc.slice(2)) : undefined;
}

/**
 * The bytes of a value read in base64.
 * @throws {ValueTooLargeError} for a value over {@link MAX_VALUE_BYTES}, which was not sent
 */
export function bytesOf(row: { b64: string }): Buffer {
  const size = oversize(row);
  if (size !== undefined) throw tooLarge(size);
  return Buffer.from(row.b64, 'base64');
}

/** The error for a stored value of `size` bytes, over {@link MAX_VALUE_BYTES}. */
export function tooLarge(size: number): ValueTooLargeError {
  return new ValueTooLargeError(size, MAX_VALUE_BYTES, 'the store (MAX_VALUE_BYTES)');
}
