import type { RowWrite } from '../row.js';
import { isoNow, type StoreContext } from '../context.js';
import { InvalidValueError, show } from '../errors.js';
import { validateKey } from '../keys.js';
import { bytesOf } from '../sql/values.js';
import { type EntryOptions, resolveEntryOptions } from './entry_options.js';
import { type EntryValue, toBytes } from './values.js';

/** What `info()` tells about a live entry, read without extending it. */
export interface EntryInfo {
  /** When the entry expires unless read again; `null` when it never expires. */
  expiresAt: Date | null;
  /** Milliseconds until `expiresAt` (`Infinity` when it never expires). */
  ttl: number;
  /** The sliding expiration in milliseconds, if the entry has one. */
  slidingExpiration: number | undefined;
  /** The absolute ceiling, if the entry has one. */
  absoluteExpiration: Date | undefined;
  /** The entry's tags (empty when none). */
  tags: string[];
}

interface InfoRow {
  expiresattime: Date | number;
  sliding: string | null;
  abs: Date | number | null;
  tags: string[] | null;
}

export async function getEntry(context: StoreContext, key: string): Promise<Buffer | undefined> {
  validateKey(key);
  const preparing = context.prepare('ext.get');
  if (preparing) await preparing;
  return context.rows.get(key);
}

export async function setEntry(context: StoreContext, key: string, value: EntryValue, options?: EntryOptions): Promise<void> {
  let row = entryRow(context, key, value, options);
  const preparing = context.prepare('ext.set');
  if (preparing) row = (await preparing, retimed(context, [row], options)[0]!);
  await context.rows.set(row);
}

/**
 * `rows` (checked and timed before the store was ready) with their expiry computed again, for a call that
 * waited for the readiness gate: it reads the database's clock, and before it the store has only the host's
 * (options/clock.ts). Callers await the gate's own promise, then call this: calls waiting on it resume in the order
 * they were issued, and so issue their writes in that order (issue order).
 */
export function retimed(context: StoreContext, rows: RowWrite[], options: EntryOptions | undefined): RowWrite[] {
  const timing = resolveEntryOptions(options, context.options.clock(), context.options.defaultSlidingExpirationMs);
  return rows.map((row) => ({ ...row, ...timing }));
}

/** The row a set call writes, checked. */
export function entryRow(context: StoreContext, key: string, value: EntryValue, options: EntryOptions | undefined): RowWrite {
  validateKey(key);
  const bytes = toBytes(value);
  return { id: key, value: bytes, ...resolveEntryOptions(options, context.options.clock(), context.options.defaultSlidingExpirationMs) };
}

export async function refreshEntry(context: StoreContext, key: string): Promise<boolean> {
  validateKey(key);
  const preparing = context.prepare('ext.refresh');
  if (preparing) await preparing;
  const rows = await context.rows.ordered([key], 'write', () => context.exec.query<{ live: number }>(context.sql.refresh, [key, isoNow(context)]));
  return (rows[0]?.live ?? 0) > 0;
}

export async function deleteEntry(context: StoreContext, key: string): Promise<boolean> {
  validateKey(key);
  const preparing = context.prepare('ext.delete');
  if (preparing) await preparing;
  return context.rows.delete(key);
}

export async function hasEntry(context: StoreContext, key: string): Promise<boolean> {
  validateKey(key);
  const preparing = context.prepare('ext.has');
  if (preparing) await preparing;
  return context.rows.has(key);
}

export async function entryInfo(context: StoreContext, key: string): Promise<EntryInfo | undefined> {
  validateKey(key);
  const preparing = context.prepare('ext.info');
  if (preparing) await preparing;
  const now = context.options.clock();
  const [row] = await context.rows.ordered([key], 'read', () => context.exec.query<InfoRow>(context.sql.info, [key, new Date(now).toISOString()]));
  if (!row) return undefined;
  // node-postgres parses 'infinity' (written by counters and by us for "never") to the number Infinity.
  const expiresAt = typeof row.expiresattime === 'number' ? null : row.expiresattime;
  return {
    expiresAt,
    ttl: expiresAt === null ? Number.POSITIVE_INFINITY : Math.max(0, expiresAt.getTime() - now),
    slidingExpiration: row.sliding === null ? undefined : Number(row.sliding) * 1000,
    absoluteExpiration: row.abs instanceof Date ? row.abs : undefined,
    tags: row.tags ?? [],
  };
}

export async function getEntries(context: StoreContext, keys: Iterable<string>): Promise<Map<string, Buffer>> {
  const { unique, set } = distinctKeys(keys);
  if (unique.length === 0) return new Map();
  const preparing = context.prepare('ext.getMany');
  if (preparing) await preparing;
  return context.rows.getMany(unique, set);
}

/** Accepts a Map, an object or [key, value] pairs; a later duplicate key wins. Same options for all. */
export async function setEntries(
  context: StoreContext,
  entries: Map<string, EntryValue> | Record<string, EntryValue> | Iterable<readonly [string, EntryValue]>,
  options?: EntryOptions,
): Promise<void> {
  const byKey = entryValues(entries);
  let rows = rowsOf(context, byKey, options);
  if (rows.length === 0) return;
  const preparing = context.prepare('ext.setMany');
  if (preparing) rows = (await preparing, retimed(context, rows, options));
  await context.rows.setMany(rows, byKey);
}

/** The rows a set call writes, checked: one, or (setMany) one per distinct key, a later duplicate winning. */
export function entryRows(
  context: StoreContext,
  entries: Map<string, EntryValue> | Record<string, EntryValue> | Iterable<readonly [string, EntryValue]>,
  options: EntryOptions | undefined,
): RowWrite[] {
  return rowsOf(context, entryValues(entries), options);
}

/** The checked bytes of each distinct key, a later duplicate winning. */
function entryValues(entries: Map<string, EntryValue> | Record<string, EntryValue> | Iterable<readonly [string, EntryValue]>): Map<string, Buffer> {
  if (entries === null || typeof entries !== 'object') throw notEntries(`got ${String(entries)}`);
  const pairs: Iterable<readonly [string, EntryValue]> =
    entries instanceof Map || isIterable(entries) ? (entries as Iterable<readonly [string, EntryValue]>) : Object.entries(entries);
  const byKey = new Map<string, Buffer>();
  let at = 0;
  for (const pair of pairs) {
    if (!Array.isArray(pair)) throw notEntries(`entry ${at} is ${show(pair).slice(0, 80)}, not a [key, value] pair`);
    at++;
    const [key, value] = pair as readonly [string, EntryValue];
    validateKey(key);
    byKey.set(key, toBytes(value, () => `value of ${show(key)}`));
  }
  return byKey;
}

function notEntries(what: string): InvalidValueError {
  return new InvalidValueError(`setMany takes a Map, an object of key → value, or an iterable of [key, value] pairs (entry options go in its second argument): ${what}. Nothing was written.`);
}

function rowsOf(context: StoreContext, byKey: ReadonlyMap<string, Buffer>, options: EntryOptions | undefined): RowWrite[] {
  const { expires, sliding, absolute, tags } = resolveEntryOptions(options, context.options.clock(), context.options.defaultSlidingExpirationMs);
  const rows: RowWrite[] = [];
  for (const [id, value] of byKey) rows.push({ id, value, expires, sliding, absolute, tags });
  return rows;
}

export async function deleteEntries(context: StoreContext, keys: Iterable<string>): Promise<number> {
  const { unique, set } = distinctKeys(keys);
  if (unique.length === 0) return 0;
  const preparing = context.prepare('ext.deleteMany');
  if (preparing) await preparing;
  return (await context.rows.deleteMany(unique, set)).size;
}

export function uniqueKeys(keys: Iterable<string>): string[] {
  return distinctKeys(keys).unique;
}

/** The distinct keys, checked, and their Set (which the store's issue order keeps for a large call). */
function distinctKeys(keys: Iterable<string>): { unique: string[]; set: Set<string> } {
  if (typeof keys === 'string' || !isIterable(keys)) {
    throw new InvalidValueError('Expected an array (or other iterable) of keys, not a single string.');
  }
  const set = new Set(keys);
  const unique = [...set];
  unique.forEach((key) => validateKey(key));
  return { unique, set };
}

function isIterable(value: unknown): value is Iterable<unknown> {
  return typeof (value as { [Symbol.iterator]?: unknown })[Symbol.iterator] === 'function';
}

/**
 * The last value at `key` even if expired, when it expired at most `maxStaleMs` ago (Infinity: any
 * retained row). Never extends anything. Expired rows exist only until a scan deletes them: see the
 * store's `retainExpiredFor`.
 */
export async function staleEntry(
  context: StoreContext,
  key: string,
  maxStaleMs: number,
): Promise<{ value: Buffer; expiredMsAgo: number } | undefined> {
  const now = context.options.clock();
  // No entry expired before 1970: a longer look back is the same as any.
  const since = Number.isFinite(maxStaleMs) && now - maxStaleMs > 0 ? new Date(now - maxStaleMs).toISOString() : '-infinity';
  const [row] = await context.rows.ordered([key], 'read', () =>
    context.exec.query<{ b64: string; expiresattime: Date | number }>(context.sql.getStale, [key, since]),
  );
  if (!row) return undefined;
  const expires = typeof row.expiresattime === 'number' ? row.expiresattime : row.expiresattime.getTime();
  return { value: bytesOf(row), expiredMsAgo: Math.max(0, now - expires) };
}

/**
 * Warns (once per store and setting) when stale values are asked for longer than the store keeps expired
 * rows: that works until the expiration scan deletes them, then quietly serves nothing.
 * @param setting the option asking for them, e.g. `failover maxStale`
 */
export function checkRetention(context: StoreContext, setting: string, maxStaleMs: number): void {
  const retained = context.options.retainExpiredForMs;
  if (maxStaleMs <= retained) return;
  const wanted = Number.isFinite(maxStaleMs) ? `${maxStaleMs} ms` : 'any age';
  context.observer.warnOnce(
    `${setting} asks for stale values up to ${wanted}, but the store keeps expired rows only ${retained} ms (retainExpiredFor): ` +
      `the expiration scan deletes them after that, and then no stale value is served. Give the store retainExpiredFor of at least ${Number.isFinite(maxStaleMs) ? `${maxStaleMs} ms` : 'the longest stale age you want served'}.`,
  );
}

/** The live value with its absolute expiry (a sliding row is extended, as by get). */
export async function getEntryWithExpiry(
  context: StoreContext,
  key: string,
  counted = true,
): Promise<{ value: Buffer; absoluteExpiration: Date | undefined } | undefined> {
  // A read (that may slide, as get does): after the writes issued before it on the key.
  const [row] = await context.rows.ordered([key], 'read', () =>
    context.exec.query<{ b64: string; abs: Date | number | null }>(context.sql.getWithExpiry, [key, isoNow(context)]),
  );
  // `counted: false`: the library's own second look (early's check under its lease), not a caller's read.
  if (counted) context.observer.read(key, row !== undefined);
  if (!row) return undefined;
  return { value: bytesOf(row), absoluteExpiration: row.abs instanceof Date ? row.abs : undefined };
}
