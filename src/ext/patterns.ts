import { deleteInBatches } from '../execution/batch_delete.js';
import { isoNow, type StoreContext } from '../context.js';
import { InvalidValueError, show } from '../errors.js';
import { ALL_KEYS, type KeyRange, escapeLike, prefixRange } from '../keys.js';
import { bytesOf } from '../sql/values.js';
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
  /**
   * True when it has no literal character, only wildcards (`*`, `?`, or `%`, `_` with `like: true`): it
   * matches every key (`*`, `?*`, `%`, `_%`) or every key of some lengths (`??`, `*??`).
   */
  readonly wildcardsOnly: boolean;
  /** Its one-character wildcards (`?` or `_`): the shortest key it matches has this many characters. */
  readonly minLength: number;
  /** True when it has a run wildcard (`*` or `%`): it then matches keys of any length from `minLength` up. */
  readonly open: boolean;
}

/**
 * Compiles a glob (`*` any run of characters, `?` one character, `\` makes the next character literal;
 * everything else, `%` and `_` included, means itself) or, with `like: true`, a raw LIKE pattern.
 * The glob has no other syntax: no character classes or alternatives, so `[`, `]`, `{`, `}` mean themselves.
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
  let literals = 0;
  let ones = 0;
  let open = false;
  for (let i = 0; i < chars.length; i++) {
    const char = chars[i]!;
    if (char === '\\') {
      const next = chars[++i];
      if (next === undefined) {
        throw new InvalidValueError(`Malformed key pattern ${show(pattern)}: it ends with a lone "\\" (write "\\\\" for a backslash).`);
      }
      like += escapeLike(next);
      if (literalSoFar) prefix += next;
      literals++;
    } else if (char === any || char === one) {
      like += char === any ? '%' : '_';
      literalSoFar = false;
      if (char === any) open = true;
      else ones++;
    } else {
      like += options.like ? char : escapeLike(char);
      if (literalSoFar) prefix += char;
      literals++;
    }
  }
  return {
    like,
    range: prefix === '' ? ALL_KEYS : prefixRange(prefix),
    wildcardsOnly: literals === 0,
    minLength: ones + literals,
    open,
  };
}

/**
 * Whether PostgreSQL's `id LIKE compiled.like` (COLLATE "C": exact characters) holds for a key, in
 * JavaScript: `%` any run, `_` one character (a code point, as in a UTF-8 database), `\` the next
 * character literal. Lets a pattern call hold only the calls on keys it may touch.
 */
export function patternMatcher(compiled: CompiledPattern): (id: string) => boolean {
  let source = '^';
  const chars = [...compiled.like];
  for (let i = 0; i < chars.length; i++) {
    const char = chars[i]!;
    if (char === '%') source += '.*';
    else if (char === '_') source += '.';
    else source += escapeRegExp(char === '\\' ? (chars[++i] ?? '') : char);
  }
  const regexp = new RegExp(`${source}$`, 'su');
  return (id) => regexp.test(id);
}

function escapeRegExp(char: string): string {
  return /[\\^$.*+?()[\]{}|/]/.test(char) ? `\\${char}` : char;
}

/** Options of `deletePattern`. */
export interface DeletePatternOptions extends PatternOptions {
  /**
   * Required for a pattern with no literal character, only wildcards (`*`, `?*`, `??`; `%`, `_%` with
   * `like: true`): it matches every key, or every key of some lengths, so deleting that much must be explicit.
   * An escaped wildcard (`\\*`) is a literal. deletePattern is not scoped to a Keyv namespace (its keys are
   * row ids), so such a pattern reaches the whole table.
   */
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
  }, patternMatcher(compiled));
}

/**
 * The pattern a deletePattern call deletes, checked: a pattern with no literal character needs `all: true`.
 * (Used by `ext.deletePattern` and `ext.in(client).deletePattern` alike.)
 */
export function patternDeletion(pattern: string, options: DeletePatternOptions = {}): CompiledPattern {
  checkOptions(options, ['like', 'all'], 'deletePattern');
  const compiled = compilePattern(pattern, options);
  if (compiled.wildcardsOnly && options.all !== true) {
    // Every key has at least one character: `?*` matches them all, as `*` does.
    const everyKey = compiled.open && compiled.minLength <= 1;
    const characters = (n: number) => `${n} character${n === 1 ? '' : 's'}`;
    const matched = everyKey
      ? 'every key'
      : compiled.open
        ? `every key of at least ${characters(compiled.minLength)}`
        : `every key of exactly ${characters(compiled.minLength)}`;
    const [run, single] = options.like ? ['%', '_'] : ['*', '?'];
    throw new InvalidValueError(
      `The pattern ${show(pattern)} has no literal character, only the wildcards "${run}" and "${single}", so it matches ${matched}; ` +
        `pass { all: true } to delete ${everyKey ? 'the whole table' : 'them all'}, or add a literal character to narrow it ` +
        `(such as "user:${run}"; an escaped wildcard, "\\${run}", is a literal).`,
    );
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
  }, patternMatcher(compiled));
}

function pageSize(value: unknown, fallback: number): number {
  if (value === undefined) return fallback;
  if (typeof value !== 'number' || !Number.isSafeInteger(value) || value < 1) {
    throw new InvalidValueError(`batchSize must be a positive whole number, got ${show(value)}.`);
  }
  return value;
}
