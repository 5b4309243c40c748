import type { CounterCreate } from '../row.js';
import type { StoreContext } from '../context.js';
import type { Duration } from '../duration.js';
import { CounterOverflowError, InvalidOptionError, InvalidValueError, NotACounterError, QueryError } from '../errors.js';
import { validateKey } from '../keys.js';
import { checkOptions, duration, isoTime, resolveTags } from './entry_options.js';

/** Options of `incr`/`decr`, used only when the call creates the counter (or restarts an expired one). */
export interface CounterOptions {
  /** The new counter expires this long after creation. Without it, it never expires (like the Python library's). */
  ttl?: Duration | undefined;
  /** Tags of the new counter. */
  tags?: readonly string[] | undefined;
}

const INT64_MIN = -(2n ** 63n);
const INT64_MAX = 2n ** 63n - 1n;

/**
 * Adds `by` to the counter at `key` in one atomic statement and returns the new value. A missing or
 * expired counter starts from `by`. Values past Number.MAX_SAFE_INTEGER come back as bigint, never
 * rounded.
 */
export async function increment(
  context: StoreContext,
  key: string,
  by: number | bigint,
  options: CounterOptions | undefined,
): Promise<number | bigint> {
  let { delta, create } = counterCall(context, key, by, options);
  const preparing = context.prepare('incr');
  // The expiry again once ready: before its first call the store has only the host's clock (see options/clock.ts).
  if (preparing) ({ delta, create } = (await preparing, counterCall(context, key, by, options)));
  let value: bigint;
  try {
    value = await context.rows.incr(key, delta, create);
  } catch (error) {
    throw counterError(key, error);
  }
  return counterValue(value);
}

/** An incr call's input, checked: the delta as int64, and what the counter gets if the call creates it. */
export function counterCall(context: StoreContext, key: string, by: unknown, options: CounterOptions | undefined): { delta: bigint; create: CounterCreate } {
  validateKey(key);
  const delta = toInt64(by);
  checkOptions(options, ['ttl', 'tags'], 'counter');
  const now = context.options.clock();
  const ttl = options?.ttl === undefined ? undefined : duration(options.ttl, 'ttl');
  if (ttl !== undefined && ttl <= 0) throw new InvalidOptionError('ttl', 'the ttl of a counter must be greater than zero.');
  const tags = resolveTags(options?.tags, 'tags', true);
  const absolute = ttl === undefined ? null : isoTime(now + ttl, 'ttl');
  return { delta, create: { expires: absolute ?? 'infinity', absolute, tags } };
}

/** The typed error of a failed increment: the stored value is no counter, or the sum leaves int64. */
export function counterError(key: string, error: unknown): unknown {
  const state = error instanceof QueryError ? error.sqlState : undefined;
  // 22P02: not an integer; 22021: not UTF-8; 22003: out of bigint range.
  if (state === '22P02' || state === '22021') return new NotACounterError(key, error);
  if (state === '22003') return new CounterOverflowError(key, error);
  return error;
}

/** A counter's value as returned: a number, or a bigint past Number.MAX_SAFE_INTEGER. */
export function counterValue(value: bigint): number | bigint {
  return value >= BigInt(Number.MIN_SAFE_INTEGER) && value <= BigInt(Number.MAX_SAFE_INTEGER) ? Number(value) : value;
}

function toInt64(by: unknown): bigint {
  if (typeof by === 'number' && Number.isSafeInteger(by)) return BigInt(by);
  if (typeof by === 'bigint' && by >= INT64_MIN && by <= INT64_MAX) return by;
  throw new InvalidValueError(`The increment must be a safe integer or a 64-bit bigint, got ${String(by)}.`);
}
