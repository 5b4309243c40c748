import { deleteInBatches } from '../batch_delete.js';
import { isoNow, type StoreContext } from '../context.js';
import { InvalidValueError, show } from '../errors.js';
import { ALL_KEYS, type KeyRange, escapeLike, prefixRange } from '../keys.js';
import { bytesOf } from '../sql.js';
import { checkOptions } from './entry_options.js';

/** Options of the key-pattern methods. */
export interface PatternOptions {
  /**
   * Treat the pattern as a raw SQL LIKE pattern (`%`, `_`, `\` escapes), as the Python library's
   * `get_pattern('user:%')` does, instead of a glob.
   * @default false
   */
  like?: boolean | undefined;
}

/** A pattern ready for SQL: the LIKE text, and the key range of its literal prefix (for the index). */
export interface CompiledPattern {
  readonly like: string;
  readonly range: KeyRange;
  /** True when it matches every key (`*`, `**`, `%`). */
  readonly matchesAll: boolean;
}

/**
 * Compiles a glob (`*` any run of characters, `?` one character, `\` makes the next character literal;
 * everything else, `%` and `_` included, means itself) or, with `like: true`, a raw LIKE pattern.
 * @throws {InvalidValueError} for an empty pattern, a trailing lone `\`, NUL or lone surrogates
 */
export function compilePattern(pattern: unknown, options: PatternOptions = {}): CompiledPattern {
  if (typeof pattern !== 'string' || pattern === '') {
    throw new InvalidValueError(`A key pattern must be a non-empty string, got ${show(pattern)}.`);
  }
  if (pattern.includes('\0') || !pattern.isWellFormed()) {
    throw new InvalidValueError('A key pattern must not contain NUL or lone surrogates.');
  }
  const chars = [...pattern];
  const any = options.like ? '%' : '*';
  const one = options.like ? '_' : '?';
  let like = '';
  let prefix = '';
  let literalSoFar = true;
  for (let i = 0; i < chars.length; i++) {
    const char = chars[i]!;
    if (char === '\\') {
      const next = chars[++i];
      if (next === undefined) {
        throw new InvalidValueError(`Malformed key pattern ${show(pattern)}: it ends with a lone "\\" (write "\\\\" for a backslash).`);
      }
      like += escapeLike(next);
      if (literalSoFar) prefix += next;
    } else if (char === any || char === one) {
      like += char === any ? '%' : '_';
      literalSoFar = false;
    } else {
      like += options.like ? char : escapeLike(char);
      if (literalSoFar) prefix += char;
    }
  }
  const matchesAll = chars.every((char) => char === any);
  return { like, range: prefix === '' ? ALL_KEYS : prefixRange(prefix), matchesAll };
}

/** Options of `deletePattern`. */
export interface DeletePatternOptions extends PatternOptions {
  /** Required for a pattern that matches every key (`*`): deleting the whole table must be explicit. */
  all?: boolean | undefined;
}

/** Yields the live keys matching `pattern`, in key order, `batchSize` keys per query. */
export async function* scanKeys(
  context: StoreContext,
  pattern: string,
  options: PatternOptions & { batchSize?: number } = {},
): AsyncGenerator<string, void> {
  checkOptions(options, ['like', 'batchSize'], 'scan');
  const compiled = compilePattern(pattern, options);
  const batchSize = pageSize(options.batchSize, context.options.iterationLimit);
  const preparing = context.prepare('ext.scan');
  if (preparing) await preparing;
  let after = '';
  for (;;) {
    const rows = await context.exec.query<{ id: string }>(context.sql.scanPattern, [
      compiled.range.lower, compiled.range.upper, compiled.like, after, isoNow(context), batchSize,
    ]);
    for (const row of rows) yield row.id;
    if (rows.length < batchSize) return;
    after = rows[rows.length - 1]!.id;
  }
}

/** Every live entry matching `pattern` (sliding ones are extended, as by get), fetched page by page. */
export async function getByPattern(context: StoreContext, pattern: string, options: PatternOptions = {}): Promise<Map<string, Buffer>> {
  checkOptions(options, ['like'], 'getPattern');
  const compiled = compilePattern(pattern, options);
  const batchSize = context.options.iterationLimit;
  const preparing = context.prepare('ext.getPattern');
  if (preparing) await preparing;
  // After the calls already issued (a set of a matching key is seen), before those issued later.
  return context.rows.barrier(async () => {
    const found = new Map<string, Buffer>();
    let after = '';
    for (;;) {
      const rows = await context.exec.query<{ id: string; b64: string }>(context.sql.getPatternPage, [
        compiled.range.lower, compiled.range.upper, compiled.like, after, isoNow(context), batchSize,
      ]);
      for (const row of rows) found.set(row.id, bytesOf(row));
      if (rows.length < batchSize) return found;
      after = rows[rows.length - 1]!.id;
    }
  });
}

/** The pattern a deletePattern call deletes, checked (a pattern matching every key needs `all: true`). */
export function patternDeletion(pattern: string, options: DeletePatternOptions = {}): CompiledPattern {
  checkOptions(options, ['like', 'all'], 'deletePattern');
  const compiled = compilePattern(pattern, options);
  if (compiled.matchesAll && options.all !== true) {
    throw new InvalidValueError(`The pattern ${show(pattern)} matches every key; pass { all: true } to delete the whole table.`);
  }
  return compiled;
}

/** Deletes every row matching `pattern` in batches; resolves to the live entries deleted. */
export async function deleteByPattern(context: StoreContext, pattern: string, options: DeletePatternOptions = {}): Promise<number> {
  const compiled = patternDeletion(pattern, options);
  const preparing = context.prepare('ext.deletePattern');
  if (preparing) await preparing;
  const batch = context.options.deleteBatchSize;
  return context.rows.barrier(async () => {
    try {
      return await deleteInBatches((s, v) => context.exec.query(s, v), context.sql.deletePatternBatch, batch, () => [
        compiled.range.lower, compiled.range.upper, compiled.like, batch, isoNow(context),
      ]);
    } finally {
      context.rows.written('all');
    }
  });
}

function pageSize(value: unknown, fallback: number): number {
  if (value === undefined) return fallback;
  if (typeof value !== 'number' || !Number.isSafeInteger(value) || value < 1) {
    throw new InvalidValueError(`batchSize must be a positive whole number, got ${show(value)}.`);
  }
  return value;
}
