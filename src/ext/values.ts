import { InvalidValueError } from '../errors.js';
import { MAX_VALUE_BYTES, tooLarge } from '../sql/values.js';

/** What `store.ext` stores: bytes as given, or a string as UTF-8 without BOM (what .NET's GetString reads). */
export type EntryValue = Buffer | Uint8Array | string;

/**
 * The bytes of a value, without copying Buffers or typed arrays.
 * @throws {ValueTooLargeError} over MAX_VALUE_BYTES (64 MiB)
 */
export function toBytes(value: unknown, what: string | (() => string) = 'value'): Buffer {
  return checked(bytesOf(value, typeof what === 'string' ? () => what : what));
}

/** `what` names the value in an error; made only for one (a setMany's 100,000 values are named only if refused). */
function bytesOf(value: unknown, what: () => string): Buffer {
  if (Buffer.isBuffer(value)) return value;
  if (value instanceof Uint8Array) return Buffer.from(value.buffer, value.byteOffset, value.byteLength);
  if (typeof value === 'string') {
    if (!value.isWellFormed()) throw new InvalidValueError(`${what()} must be well-formed Unicode to be stored as UTF-8 (it contains a lone surrogate).`);
    if (value.length > MAX_VALUE_BYTES) throw tooLarge(Buffer.byteLength(value, 'utf8'));
    return Buffer.from(value, 'utf8');
  }
  throw new InvalidValueError(
    `${what()} must be a Buffer, a Uint8Array or a string; got ${value === null ? 'null' : Array.isArray(value) ? 'an array' : typeof value}. Serialize objects first (e.g. JSON).`,
  );
}

function checked(bytes: Buffer): Buffer {
  if (bytes.length > MAX_VALUE_BYTES) throw tooLarge(bytes.length);
  return bytes;
}
