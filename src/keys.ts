import { InvalidKeyError, InvalidValueError, show } from './errors.js';

/** `id VARCHAR(449)`: the .NET column size. PostgreSQL counts characters (code points), not UTF-16 units. */
export const MAX_KEY_LENGTH = 449;

/**
 * Throws unless `key` can be stored as a row id exactly as given.
 * .NET silently truncates long keys (two keys sharing 449 characters would then collide); we refuse
 * instead. Lone surrogates are refused because UTF-8 encoding would replace them with U+FFFD,
 * silently mapping different keys onto one row; NUL is refused because PostgreSQL text cannot hold it.
 */
export function validateKey(key: unknown): asserts key is string {
  if (typeof key !== 'string') {
    throw new InvalidKeyError(String(key), `A cache key must be a string, got ${key === null ? 'null' : typeof key}.`);
  }
  if (key.length === 0) throw new InvalidKeyError(key, 'A cache key must not be empty.');
  // Fast path: fewer UTF-16 units than the limit means fewer code points too.
  if (key.length > MAX_KEY_LENGTH) {
    const codePoints = countCodePoints(key);
    if (codePoints > MAX_KEY_LENGTH) {
      throw new InvalidKeyError(
        key,
        `A cache key may have at most ${MAX_KEY_LENGTH} characters (the id column is VARCHAR(${MAX_KEY_LENGTH})); this one has ${codePoints}. Keys are never truncated.`,
      );
    }
  }
  if (key.includes('\0')) throw new InvalidKeyError(key, 'A cache key must not contain the NUL character (U+0000).');
  if (!key.isWellFormed()) {
    throw new InvalidKeyError(key, 'A cache key must be well-formed Unicode (it contains a lone surrogate).');
  }
}

/**
 * Throws unless `namespace` can prefix stored keys faithfully, for the reasons {@link validateKey} gives
 * for keys: a lone surrogate would be sent as U+FFFD (so `clear()` of `'\ud800'` would clear the
 * namespace `'\uFFFD'`), and PostgreSQL text cannot hold NUL. `undefined`, `null` and `''` mean no
 * namespace (the whole table), as in Keyv. Not checked: the length (a namespace too long for any key to
 * fit only makes every key too long, which {@link validateKey} refuses, and matches nothing).
 * @throws {InvalidValueError} naming what is wrong
 */
export function validateNamespace(namespace: unknown): asserts namespace is string | undefined | null {
  if (namespace === undefined || namespace === null) return;
  if (typeof namespace !== 'string') {
    throw new InvalidValueError(`A namespace must be a string (or undefined for none), got ${show(namespace)} (${typeof namespace}).`);
  }
  if (namespace.includes('\0')) {
    throw new InvalidValueError(`A namespace must not contain the NUL character (U+0000): keys cannot hold it. Got ${show(namespace)}.`);
  }
  if (!namespace.isWellFormed()) {
    throw new InvalidValueError(
      `A namespace must be well-formed Unicode; ${show(namespace)} contains a lone surrogate, which UTF-8 would turn into U+FFFD (another namespace).`,
    );
  }
}

function countCodePoints(text: string): number {
  let count = 0;
  for (let i = 0; i < text.length; i++) {
    const unit = text.charCodeAt(i);
    // A high surrogate followed by a low one is a single code point.
    if (unit >= 0xd800 && unit <= 0xdbff && i + 1 < text.length) {
      const next = text.charCodeAt(i + 1);
      if (next >= 0xdc00 && next <= 0xdfff) i++;
    }
    count++;
  }
  return count;
}

/** Escapes `\`, `%` and `_` so that `text` matches itself literally in `LIKE ... ESCAPE '\'`. */
export function escapeLike(text: string): string {
  return text.replace(/[\\%_]/g, '\\$&');
}

/**
 * A string above every possible row id: ids are at most 449 code points (VARCHAR(449)) and no code
 * point exceeds U+10FFFF, so 450 of them sort after all of them under COLLATE "C". It lets one
 * statement shape (`id >= $lower AND id < $upper`) serve both prefixes and the whole table.
 */
export const ABOVE_ALL_KEYS = '\u{10FFFF}'.repeat(MAX_KEY_LENGTH + 1);

/** A key range: `lower <= id < upper`. */
export interface KeyRange {
  readonly lower: string;
  readonly upper: string;
}

/** Every row id. */
export const ALL_KEYS: KeyRange = Object.freeze({ lower: '', upper: ABOVE_ALL_KEYS });

/**
 * The key range holding exactly the keys that start with `prefix`, under the id column's COLLATE "C"
 * (byte order of UTF-8, which is code point order): the prefix with its last code point incremented
 * is the upper bound. A prefix made only of U+10FFFF has none and gets {@link ABOVE_ALL_KEYS}.
 */
export function prefixRange(prefix: string): KeyRange {
  const points = [...prefix];
  while (points.length > 0) {
    const last = points.pop()!.codePointAt(0)!;
    if (last < 0x10ffff) {
      // Surrogate code points never occur in valid keys: step over them.
      const next = last === 0xd7ff ? 0xe000 : last + 1;
      return { lower: prefix, upper: points.join('') + String.fromCodePoint(next) };
    }
  }
  return { lower: prefix, upper: ABOVE_ALL_KEYS };
}
