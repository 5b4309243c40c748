import { type Duration, durationOption, MAX_TIME_MS } from '../duration.js';
import { InvalidOptionError, show } from '../errors.js';

/**
 * Expiry and tags of an entry written through `store.ext`, with the semantics of .NET's
 * `DistributedCacheEntryOptions` (and the Python library's `EntryOptions`).
 * With none of the three expiry fields, the store's `defaultSlidingExpiration` (20 minutes) applies.
 */
export interface EntryOptions {
  /**
   * Each read extends the entry to `now + slidingExpiration`, never past its absolute expiry.
   * Stored in whole seconds (fractions are truncated), so at least 1 second.
   */
  slidingExpiration?: Duration | undefined;
  /** The entry expires at this instant at the latest. Must be in the future. */
  absoluteExpiration?: Date | undefined;
  /** The entry expires this long after the write at the latest. Give this or `absoluteExpiration`, not both. */
  absoluteExpirationRelative?: Duration | undefined;
  /** Tags for `deleteTags()`. Non-empty strings; duplicates are dropped; `[]` means no tags. */
  tags?: readonly string[] | undefined;
}

/** The expiry columns of a row about to be written. Timestamps are ISO strings (or 'infinity'). */
export interface RowExpiry {
  readonly expires: string;
  readonly sliding: number | null;
  readonly absolute: string | null;
  readonly tags: string[] | null;
}

const KNOWN = new Set(['slidingExpiration', 'absoluteExpiration', 'absoluteExpirationRelative', 'tags']);

/**
 * Turns entry options into row columns at time `now`:
 * - sliding S (whole seconds) and absolute A are both optional; relative R gives A = now + R;
 * - none of them: S = the default sliding expiration, A = NULL (the .NET rule, applied whenever no
 *   expiry field is set, even when only tags are);
 * - expiresattime = A when there is no S, else LEAST(now + S, A): never past the absolute ceiling.
 * @throws {InvalidOptionError} naming the field, before anything is written
 */
export function resolveEntryOptions(options: EntryOptions | undefined, now: number, defaultSlidingMs: number): RowExpiry {
  if (options !== undefined && (typeof options !== 'object' || options === null || Array.isArray(options))) {
    throw new InvalidOptionError('options', 'entry options must be an object.');
  }
  const raw = options ?? {};
  for (const name of Object.keys(raw)) {
    if (!KNOWN.has(name)) throw new InvalidOptionError(name, `unknown entry option. Known: ${[...KNOWN].join(', ')}.`);
  }
  const tags = resolveTags(raw.tags, 'tags', true);
  let slidingMs = raw.slidingExpiration === undefined ? undefined : duration(raw.slidingExpiration, 'slidingExpiration');
  let absoluteMs: number | undefined;
  if (raw.absoluteExpiration !== undefined && raw.absoluteExpirationRelative !== undefined) {
    throw new InvalidOptionError('absoluteExpiration', 'give absoluteExpiration or absoluteExpirationRelative, not both.');
  }
  if (raw.absoluteExpirationRelative !== undefined) {
    const relative = duration(raw.absoluteExpirationRelative, 'absoluteExpirationRelative');
    if (relative <= 0) throw new InvalidOptionError('absoluteExpirationRelative', 'must be greater than zero.');
    absoluteMs = now + relative;
  } else if (raw.absoluteExpiration !== undefined) {
    const at = raw.absoluteExpiration;
    if (!(at instanceof Date) || Number.isNaN(at.getTime())) {
      throw new InvalidOptionError('absoluteExpiration', 'must be a valid Date.');
    }
    if (at.getTime() <= now) {
      throw new InvalidOptionError(
        'absoluteExpiration',
        `must be in the future: ${at.toISOString()} is not after now (${new Date(now).toISOString()}).`,
      );
    }
    absoluteMs = at.getTime();
  }
  if (slidingMs === undefined && absoluteMs === undefined) slidingMs = defaultSlidingMs;
  let sliding: number | null = null;
  if (slidingMs !== undefined) {
    sliding = Math.trunc(slidingMs / 1000);
    if (sliding < 1) throw new InvalidOptionError('slidingExpiration', 'must be at least 1 second (the column stores whole seconds).');
  }
  const expiresMs = sliding === null ? absoluteMs! : Math.min(now + sliding * 1000, absoluteMs ?? Number.POSITIVE_INFINITY);
  return {
    expires: isoTime(expiresMs, sliding !== null && (absoluteMs === undefined || now + sliding * 1000 < absoluteMs) ? 'slidingExpiration' : raw.absoluteExpiration !== undefined ? 'absoluteExpiration' : 'absoluteExpirationRelative'),
    sliding,
    absolute: absoluteMs === undefined ? null : isoTime(absoluteMs, raw.absoluteExpiration !== undefined ? 'absoluteExpiration' : 'absoluteExpirationRelative'),
    tags,
  };
}

/**
 * Checks an options argument: undefined, or an object whose every field is one of `known`.
 * @throws {InvalidOptionError} naming the unknown field (a misspelt option must not be ignored)
 */
export function checkOptions(options: unknown, known: readonly string[], what: string): void {
  if (options === undefined) return;
  if (typeof options !== 'object' || options === null || Array.isArray(options)) {
    throw new InvalidOptionError('options', `${what} options must be an object.`);
  }
  for (const name of Object.keys(options)) {
    if (!known.includes(name)) throw new InvalidOptionError(name, `unknown ${what} option. Known: ${known.join(', ')}.`);
  }
}

/**
 * The longest tag, in UTF-8 bytes: each tag is a key of the GIN index on `tags`, and PostgreSQL refuses
 * an index key over about a third of a page (2,7xx bytes) with error 54000, failing the whole write.
 */
export const MAX_TAG_BYTES = 2000;

/**
 * Validates a tag list: non-empty strings without NUL of at most {@link MAX_TAG_BYTES}, duplicates dropped.
 * @param allowEmpty `[]` means "no tags" on writes, but is an error where a tag is required
 */
export function resolveTags(tags: unknown, what: string, allowEmpty: boolean): string[] | null {
  if (tags === undefined && allowEmpty) return null;
  if (!Array.isArray(tags)) throw new InvalidOptionError(what, 'must be an array of strings.');
  if (tags.length === 0) {
    if (allowEmpty) return null;
    throw new InvalidOptionError(what, 'must name at least one tag.');
  }
  for (const tag of tags) {
    if (typeof tag !== 'string' || tag === '' || tag.includes('\0') || !tag.isWellFormed()) {
      throw new InvalidOptionError(what, `every tag must be a non-empty string without NUL or lone surrogates; got ${show(tag)}.`);
    }
    if (Buffer.byteLength(tag) > MAX_TAG_BYTES) {
      throw new InvalidOptionError(what, `a tag is at most ${MAX_TAG_BYTES} bytes in UTF-8 (an index key); got one of ${Buffer.byteLength(tag)} bytes.`);
    }
  }
  return [...new Set(tags as string[])];
}

/** Parses a duration for an option, reporting the option's name (see {@link durationOption}). */
export const duration = durationOption;

/**
 * An instant as the ISO text every statement receives.
 * @param option the option that set it, named when it lies past year 9999 (the last year .NET's
 *   DateTimeOffset, and so the shared table, holds)
 */
export function isoTime(ms: number, option: string): string {
  if (ms === Number.POSITIVE_INFINITY) return 'infinity';
  if (!Number.isFinite(ms) || ms > MAX_TIME_MS) {
    throw new InvalidOptionError(option, `the expiry it gives (${Number.isFinite(ms) ? String(ms) : 'not a number'} ms) is past year 9999, the last year the table holds.`);
  }
  return new Date(ms).toISOString();
}
