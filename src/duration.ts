import { CachePostgresError, InvalidDurationError, InvalidOptionError, show } from './errors.js';

/**
 * A span of time: milliseconds as a number, or a string of number+unit parts such as
 * `'500ms'`, `'10s'`, `'20m'`, `'1h30m'`, `'1.5h'` or `'1d 2h'`.
 * Units: `ms`, `s`, `m`, `h`, `d`, `w`. This is a superset of the Python library's grammar
 * (`(\d+[dhms])+`), so every duration string written for it means the same here.
 */
export type Duration = number | string;

/**
 * The longest wait or interval: a Node.js timer holds at most 2^31 - 1 ms (about 24.8 days; a longer
 * one fires after 1 ms), and PostgreSQL's statement_timeout and lock_timeout are 32-bit milliseconds too.
 */
export const MAX_WAIT_MS = 2 ** 31 - 1;

/**
 * The longest lifetime (an entry's expiry, a retention): 1,000 years. Times are also checked against
 * year 9999, the last one .NET's DateTimeOffset (and so the shared table) holds.
 */
export const MAX_LIFETIME_MS = 1000 * 365.25 * 86_400_000;

/** The last millisecond of year 9999. */
export const MAX_TIME_MS = Date.UTC(9999, 11, 31, 23, 59, 59, 999);

const UNIT_MS = { ms: 1, s: 1_000, m: 60_000, h: 3_600_000, d: 86_400_000, w: 604_800_000 } as const;
const WHOLE = /^(?:\d+(?:\.\d+)?(?:ms|s|m|h|d|w)\s?)+$/;
const PART = /(\d+(?:\.\d+)?)(ms|s|m|h|d|w)/g;
const ALLOWED =
  "Use milliseconds (a finite, non-negative number) or number+unit parts such as '500ms', '10s', '20m', '1h30m' or '1d' (units: ms, s, m, h, d, w).";

/**
 * Parses a {@link Duration} into milliseconds.
 * @param input the duration to parse
 * @param what what the duration is for, named in the error message (e.g. `"ttl"`)
 * @param max the longest allowed, in ms: {@link MAX_WAIT_MS} for waits and intervals,
 *   {@link MAX_LIFETIME_MS} (the default) for lifetimes
 * @throws {InvalidDurationError} for negative, non-finite, unparseable or too long input
 */
export function parseDuration(input: unknown, what: string, max: number = MAX_LIFETIME_MS): number {
  const ms = parse(input, what);
  if (ms > max) {
    const limit = max === MAX_WAIT_MS ? '2^31 - 1 ms (about 24.8 days), the longest a timer can wait' : `${max} ms`;
    throw new InvalidDurationError(`Invalid duration for ${what}: ${typeof input === 'string' ? JSON.stringify(input) : String(input)} is longer than ${limit}.`);
  }
  return ms;
}

function parse(input: unknown, what: string): number {
  if (typeof input === 'number') {
    if (Number.isFinite(input) && input >= 0) return input;
    throw new InvalidDurationError(`Invalid duration for ${what}: ${String(input)}. ${ALLOWED}`);
  }
  if (typeof input === 'string') {
    const text = input.trim();
    if (text !== '' && WHOLE.test(text)) {
      let total = 0;
      for (const [, amount, unit] of text.matchAll(PART)) {
        total += Number(amount) * UNIT_MS[unit as keyof typeof UNIT_MS];
      }
      if (Number.isFinite(total)) return total;
    }
    const hint = /^\d+(?:\.\d+)?$/.test(text) ? ' A string needs a unit; pass a number for milliseconds.' : '';
    throw new InvalidDurationError(`Invalid duration for ${what}: ${show(input)}.${hint} ${ALLOWED}`);
  }
  throw new InvalidDurationError(
    `Invalid duration for ${what}: expected a number or a string, got ${input === null ? 'null' : typeof input}. ${ALLOWED}`,
  );
}

/**
 * {@link parseDuration} for an option: the failure is an InvalidOptionError naming `option`.
 * @param max {@link MAX_WAIT_MS} for waits and intervals; lifetimes by default
 */
export function durationOption(value: unknown, option: string, max: number = MAX_LIFETIME_MS): number {
  try {
    return parseDuration(value, option, max);
  } catch (error) {
    throw new InvalidOptionError(option, error instanceof CachePostgresError ? error.message : String(error), { cause: error });
  }
}
