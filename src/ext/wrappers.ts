import type { StoreContext } from '../context.js';
import type { Duration } from '../duration.js';
import { InvalidOptionError, InvalidValueError, isCallerError, show } from '../errors.js';
import { validateKey } from '../keys.js';
import { Payload, type PayloadOptions } from '../serialization.js';
import { duration } from './entry_options.js';
import { checkRetention, getEntryWithExpiry, setEntry, staleEntry } from './entries.js';
import type { FactoryContext, GetOrSet, GetOrSetOptions } from './get_or_set.js';
import type { Locks } from './locks.js';
import { traceFunction } from '../tracing.js';
import type { Attributes } from '@opentelemetry/api';

/**
 * How a wrapper names the entry of a call: a template over the arguments, or a function of them.
 * In a template, `{0}`, `{1}` are the arguments by position, `{0.id}` a property path, and `{id}`
 * a property of the first argument (for functions taking one options object).
 */
/** The factory of the typed `getOrSet`: any value its serializer can encode. */
export type TypedFactory<T> = (context: FactoryContext) => T | Promise<T>;

/** Options of the typed `getOrSet`: getOrSet's, and a serializer (required: it is what selects the typed form). */
export interface TypedGetOrSetOptions extends GetOrSetOptions, PayloadOptions {
  serializer: NonNullable<PayloadOptions['serializer']>;
}

export type KeyOption<A extends unknown[]> = string | ((...args: A) => string);

/** Options of `cached`. */
export interface CachedOptions<A extends unknown[]> extends Omit<GetOrSetOptions, 'absoluteExpirationRelative'>, PayloadOptions {
  key: KeyOption<A>;
  /** Time to live from the computation (an absolute expiry), e.g. '10m'. Without it and without `slidingExpiration`, the store's default sliding expiry applies. */
  ttl?: Duration | undefined;
}

/** Options of `failover`. */
export interface FailoverOptions<A extends unknown[]> extends CachedOptions<A> {
  /** Which failures fall back to the last value: error classes, or a predicate. @default every error */
  errors?: (Array<new (...args: never[]) => unknown> | ((error: unknown) => boolean)) | undefined;
  /** How long after expiry the last value may still be served. Needs the store's `retainExpiredFor` at least as long. */
  maxStale: Duration;
}

/** Options of `early`. */
export interface EarlyOptions<A extends unknown[]> extends PayloadOptions, Pick<GetOrSetOptions, 'tags' | 'lockTimeout' | 'jitter'> {
  key: KeyOption<A>;
  /** Time to live of each computed value (absolute). */
  ttl: Duration;
  /** Once a value is this old, callers still get it at once while one background refresh (one across all processes) replaces it. Less than `ttl`. */
  earlyTtl: Duration;
}

type Fn<A extends unknown[], R> = (...args: A) => R | Promise<R>;

/** `cached`, `failover` and `early` as functions of (arguments, compute), shared by the function wrappers and the decorators. */
export class Wrappers {
  readonly #context: StoreContext;
  readonly #getOrSet: GetOrSet;
  readonly #locks: Locks;
  /** Background early refreshes under way in this process, by key. */
  readonly #refreshing = new Set<string>();

  constructor(context: StoreContext, getOrSet: GetOrSet, locks: Locks) {
    this.#context = context;
    this.#getOrSet = getOrSet;
    this.#locks = locks;
  }

  cached<A extends unknown[], R>(fn: Fn<A, R>, options: CachedOptions<A>): (...args: A) => Promise<R> {
    return bind(fn, this.cachedRunner<A, R>(options), 'cached', this.#context.observer.spanAttributes);
  }

  failover<A extends unknown[], R>(fn: Fn<A, R>, options: FailoverOptions<A>): (...args: A) => Promise<R> {
    return bind(fn, this.failoverRunner<A, R>(options), 'failover', this.#context.observer.spanAttributes);
  }

  early<A extends unknown[], R>(fn: Fn<A, R>, options: EarlyOptions<A>): (...args: A) => Promise<R> {
    return bind(fn, this.earlyRunner<A, R>(options), 'early', this.#context.observer.spanAttributes);
  }

  /** getOrSet through a serializer: the factory's value is encoded, the stored bytes decoded. */
  async getOrSetValue<T>(key: string, factory: TypedFactory<T>, options: TypedGetOrSetOptions): Promise<T> {
    const { serializer, compression, maxValueSize, ...getOrSetOptions } = options;
    const payload = new Payload({ serializer, compression, maxValueSize });
    const bytes = await this.#getOrSet.run(key, async (context) => payload.encode(await factory(context)), getOrSetOptions);
    return (await payload.decode(bytes)) as T;
  }

  /** Hits take no lock; misses go through getOrSet (stampede-safe across processes). */
  cachedRunner<A extends unknown[], R>(options: CachedOptions<A>) {
    const { key, ttl, serializer, compression, maxValueSize, ...rest } = checkOptions(options, 'cached');
    const payload = new Payload({ serializer, compression, maxValueSize });
    const entry: GetOrSetOptions = { ...rest, ...(ttl === undefined ? {} : { absoluteExpirationRelative: ttl }) };
    return async (args: A, compute: () => R | Promise<R>): Promise<R> => {
      const bytes = await this.#getOrSet.run(renderKey(key, args), async () => payload.encode(await compute()), entry);
      return (await payload.decode(bytes)) as R;
    };
  }

  /** Like cached, but listed failures fall back to the last value (served as stale, never re-stored as fresh). */
  failoverRunner<A extends unknown[], R>(options: FailoverOptions<A>) {
    const { errors, maxStale, ...cachedOptions } = checkOptions(options, 'failover');
    const maxStaleMs = duration(maxStale, 'maxStale');
    checkRetention(this.#context, 'failover maxStale', maxStaleMs);
    const matches = errorMatcher(errors);
    const cachedRun = this.cachedRunner<A, R>(cachedOptions);
    const payload = new Payload(cachedOptions);
    return async (args: A, compute: () => R | Promise<R>): Promise<R> => {
      // A key the arguments make invalid is the caller's error, found before anything runs, never an outage.
      validateKey(renderKey(cachedOptions.key, args));
      try {
        return await cachedRun(args, compute);
      } catch (error) {
        if (isCallerError(error) || !matches(error)) throw error;
        const entryKey = renderKey(cachedOptions.key, args);
        const stale = await staleEntry(this.#context, entryKey, maxStaleMs);
        if (!stale) throw error;
        this.#context.observer.staleServed(entryKey, 'failover', stale.expiredMsAgo);
        return (await payload.decode(stale.value)) as R;
      }
    };
  }

  /**
   * Serves the current value; once it is older than `earlyTtl`, also starts one background refresh,
   * guarded by a lease lock so one process refreshes while the others keep serving.
   */
  earlyRunner<A extends unknown[], R>(options: EarlyOptions<A>) {
    const { key, ttl, earlyTtl, serializer, compression, maxValueSize, ...rest } = checkOptions(options, 'early');
    const ttlMs = duration(ttl, 'ttl');
    const earlyMs = duration(earlyTtl, 'earlyTtl');
    if (!(earlyMs < ttlMs)) throw new InvalidOptionError('earlyTtl', `must be shorter than ttl (${ttlMs} ms).`);
    const payload = new Payload({ serializer, compression, maxValueSize });
    const entry: GetOrSetOptions = { ...rest, absoluteExpirationRelative: ttlMs };
    return async (args: A, compute: () => R | Promise<R>): Promise<R> => {
      const entryKey = renderKey(key, args);
      const current = await getEntryWithExpiry(this.#context, entryKey);
      if (!current) {
        const bytes = await this.#getOrSet.run(entryKey, async () => payload.encode(await compute()), entry);
        return (await payload.decode(bytes)) as R;
      }
      // Written at absoluteExpiration - ttl: the entry's age without any extra column.
      const isOld = (found: { absoluteExpiration: Date | undefined }) =>
        this.#context.options.clock() - ((found.absoluteExpiration?.getTime() ?? Number.POSITIVE_INFINITY) - ttlMs) >= earlyMs;
      if (isOld(current)) this.#refresh(entryKey, ttlMs, payload, entry, compute, isOld);
      return (await payload.decode(current.value)) as R;
    };
  }

  /**
   * @param stillOld checked again once the lease is held: another process may have refreshed the entry
   *   between this one's read and its lease (then nothing is computed)
   */
  #refresh(
    key: string,
    ttlMs: number,
    payload: Payload,
    entry: GetOrSetOptions,
    compute: () => unknown,
    stillOld: (found: { absoluteExpiration: Date | undefined }) => boolean,
  ): void {
    if (this.#refreshing.has(key)) return;
    this.#refreshing.add(key);
    const { observer } = this.#context;
    const refresh = async () => {
      // One refresh across processes; the lease outlives a slow computation's renewals as withLock renews it.
      const lock = await this.#locks.tryLock(`early:${key}`, { ttl: Math.max(1000, Math.min(ttlMs, 60_000)) });
      if (!lock) return;
      try {
        const now = await getEntryWithExpiry(this.#context, key, false);
        if (now && !stillOld(now)) return;
        observer.factoryCall();
        let value: unknown;
        try {
          value = await compute();
        } catch (error) {
          observer.factoryError(key, error, true);
          return;
        }
        await setEntry(this.#context, key, await payload.encode(value), {
          absoluteExpirationRelative: entry.absoluteExpirationRelative!,
          ...(entry.tags ? { tags: entry.tags } : {}),
        });
        observer.refreshed(key);
      } finally {
        await lock.release().catch(() => {});
      }
    };
    refresh()
      .catch((error) => observer.error(error))
      .finally(() => this.#refreshing.delete(key));
  }
}

/** Renders a key template over the call's arguments (see {@link KeyOption}). */
export function renderKey<A extends unknown[]>(key: KeyOption<A>, args: A): string {
  if (typeof key === 'function') return key(...args);
  return key.replace(/\{([^{}]+)\}/g, (_, path: string) => {
    const [head, ...rest] = path.split('.');
    let value: unknown = /^\d+$/.test(head!) ? args[Number(head)] : (args[0] as Record<string, unknown> | undefined)?.[head!];
    for (const part of rest) value = (value as Record<string, unknown> | null | undefined)?.[part];
    if (value === undefined || value === null) {
      throw new InvalidValueError(`The key template ${show(key)} has no value for {${path}} in this call.`);
    }
    return String(value);
  });
}

function checkOptions<T extends { key: unknown }>(options: T, wrapper: string): T {
  if (typeof options !== 'object' || options === null) throw new InvalidOptionError('options', `${wrapper} needs an options object with a key.`);
  if (typeof options.key !== 'string' && typeof options.key !== 'function') {
    throw new InvalidOptionError('key', `${wrapper} needs a key template (e.g. 'user:{0}') or a function of the arguments.`);
  }
  return options;
}

/** The wrapped function: keeps `this` (for methods) and hands the call's arguments to the runner. */
function bind<A extends unknown[], R>(
  fn: Fn<A, R>,
  run: (args: A, compute: () => R | Promise<R>) => Promise<R>,
  wrapper: 'cached' | 'failover' | 'early',
  spanAttributes: Attributes,
): (...args: A) => Promise<R> {
  if (typeof fn !== 'function') throw new InvalidValueError(`${wrapper} wraps a function, got ${typeof fn}.`);
  // Every call of a wrapped function or decorated method is a span (tracing.ts), `ext.cached` and its kin.
  return traceFunction(
    function (this: unknown, ...args: A) {
      return run(args, () => fn.apply(this, args));
    },
    { name: `ext.${wrapper}`, keys: 'none' },
    spanAttributes,
  );
}

function errorMatcher(errors: FailoverOptions<never>['errors']): (error: unknown) => boolean {
  if (errors === undefined) return () => true;
  if (typeof errors === 'function') return errors;
  if (Array.isArray(errors)) return (error) => errors.some((type) => error instanceof type);
  throw new InvalidOptionError('errors', 'must be an array of error classes or a predicate function.');
}
