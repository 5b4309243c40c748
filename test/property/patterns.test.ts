/**
 * Property: for random keys (live and expired) and random patterns, getPattern / scan return exactly the
 * live keys a reference matcher written here matches, and deletePattern deletes exactly the matching
 * rows (counting the live ones) and nothing else. Glob grammar (src/ext/patterns.ts): `*` any run of
 * characters, `?` one character, `\` makes the next character literal, everything else (`%` and `_`
 * included) means itself. With `{ like: true }` the pattern is raw LIKE: `%`, `_`, `\` escapes.
 * A pattern of wildcards only (no literal character, an escaped wildcard being one) must be refused by
 * deletePattern without `{ all: true }`, deleting nothing. The in-process matcher that scopes a pattern call's
 * barrier (patternMatcher) must agree with the same reference on every key.
 */
import { expect } from 'chai';
import fc from 'fast-check';
import { InvalidValueError, type PgStore } from '../../src/index.js';
import { compilePattern, patternMatcher } from '../../src/ext/patterns.js';
import { manualClock, rejects } from '../helpers/assert.js';
import { sql } from '../helpers/db.js';
import { useCacheTable } from '../helpers/fixture.js';
import { fcParams, propertyTimeout } from './fc-config.js';

type Token = { kind: 'lit'; char: string; escaped: boolean } | { kind: 'any' } | { kind: 'one' };

/**
 * Keys are made of glob and LIKE metacharacters, multibyte characters and the code points around the
 * surrogate gap and at the top of Unicode (where the literal prefix's key range must still be right).
 * Each run draws its keys and patterns from 2 to 4 of these characters, so that keys share prefixes
 * and differ by one character, where an over- or under-match shows.
 */
const ALPHABET = ['a', 'b', 'A', '%', '_', '\\', '*', '?', 'é', '😀', '\u{10FFFF}', '\uD7FF', '\uE000', '\uFFFF'];
const alphabet = fc.shuffledSubarray(ALPHABET, { minLength: 2, maxLength: 4 });
/** A character of the run's alphabet, by index (taken modulo its length). */
const code = fc.nat({ max: 3 });
const keyCodes = fc.array(code, { minLength: 1, maxLength: 5 });

type TokenSpec = { kind: 'lit'; code: number; escaped: boolean } | { kind: 'any' } | { kind: 'one' };
const tokenSpec: fc.Arbitrary<TokenSpec> = fc.oneof(
  { weight: 3, arbitrary: fc.record({ kind: fc.constant('lit' as const), code, escaped: fc.boolean() }) },
  { weight: 1, arbitrary: fc.constant({ kind: 'any' as const }) },
  { weight: 1, arbitrary: fc.constant({ kind: 'one' as const }) },
);
const randomTokens = fc.array(tokenSpec, { minLength: 1, maxLength: 6 });

/** A pattern made from one of the keys: characters kept (maybe escaped), swapped for another, turned into `?` or `*`, or dropped. */
type Edit = { edit: 'keep' | 'escape' | 'one' | 'any' | 'drop' } | { edit: 'swap'; code: number };
const edit: fc.Arbitrary<Edit> = fc.oneof(
  { weight: 3, arbitrary: fc.record({ edit: fc.constantFrom('keep' as const, 'escape' as const) }) },
  { weight: 3, arbitrary: fc.record({ edit: fc.constantFrom('one' as const, 'any' as const, 'drop' as const) }) },
  { weight: 1, arbitrary: fc.record({ edit: fc.constant('swap' as const), code }) },
);
const derivedTokens = fc.record({
  index: fc.nat(),
  edits: fc.array(edit, { minLength: 5, maxLength: 5 }),
  head: fc.boolean(),
  tail: fc.boolean(),
});

function derive(chars: string[], alpha: string[], spec: { edits: Edit[]; head: boolean; tail: boolean }): Token[] {
  const tokens: Token[] = spec.head ? [{ kind: 'any' }] : [];
  chars.forEach((c, i) => {
    const e = spec.edits[i % spec.edits.length]!;
    if (e.edit === 'one') tokens.push({ kind: 'one' });
    else if (e.edit === 'any') tokens.push({ kind: 'any' });
    else if (e.edit === 'swap') tokens.push({ kind: 'lit', char: alpha[e.code % alpha.length]!, escaped: false });
    else if (e.edit !== 'drop') tokens.push({ kind: 'lit', char: c, escaped: e.edit === 'escape' });
  });
  if (spec.tail) tokens.push({ kind: 'any' });
  return tokens.length > 0 ? tokens : [{ kind: 'one' }];
}

/** The pattern text for `tokens`: glob syntax, or raw LIKE syntax. */
function render(tokens: Token[], like: boolean): string {
  const special = like ? ['%', '_', '\\'] : ['*', '?', '\\'];
  return tokens
    .map((t) => {
      if (t.kind === 'any') return like ? '%' : '*';
      if (t.kind === 'one') return like ? '_' : '?';
      return t.escaped || special.includes(t.char) ? `\\${t.char}` : t.char;
    })
    .join('');
}

/** Reference matcher: does `text` (as code points) match `tokens`? Dynamic programming, no regex. */
function matches(tokens: Token[], text: string): boolean {
  const chars = [...text];
  // can[j]: tokens[0..i) match chars[0..j)
  let can = chars.map(() => false).concat(false);
  can[0] = true;
  for (const t of tokens) {
    const next = can.map(() => false);
    for (let j = 0; j <= chars.length; j++) {
      if (t.kind === 'any') next[j] = can[j]! || (j > 0 && next[j - 1]!);
      else if (j > 0 && can[j - 1]) next[j] = t.kind === 'one' || chars[j - 1] === t.char;
    }
    can = next;
  }
  return can[chars.length]!;
}

/** Code point order: the id column's COLLATE "C" (UTF-8 byte order). */
function byCodePoint(a: string, b: string): number {
  const x = [...a];
  const y = [...b];
  for (let i = 0; i < Math.min(x.length, y.length); i++) {
    const d = x[i]!.codePointAt(0)! - y[i]!.codePointAt(0)!;
    if (d !== 0) return d;
  }
  return x.length - y.length;
}

const sorted = (keys: Iterable<string>) => [...keys].sort(byCodePoint);

const scenario = fc
  .record({
    alphabet,
    keys: fc.array(keyCodes, { maxLength: 12 }),
    expired: fc.array(fc.boolean(), { minLength: 12, maxLength: 12 }),
    like: fc.boolean(),
    store: fc.nat({ max: 2 }),
    pattern: fc.oneof(
      { weight: 1, arbitrary: randomTokens.map((specs) => ({ random: specs })) },
      // Mostly patterns made from a key, so that most patterns match something.
      { weight: 3, arbitrary: derivedTokens.map((spec) => ({ derived: spec })) },
    ),
  })
  .map(({ alphabet: alpha, keys: codes, expired, like, store, pattern }) => {
    const spell = (indexes: number[]) => indexes.map((i) => alpha[i % alpha.length]!);
    const keys = [...new Set(codes.map((indexes) => spell(indexes).join('')))];
    let tokens: Token[];
    if ('random' in pattern || keys.length === 0) {
      const specs = 'random' in pattern ? pattern.random : [{ kind: 'any' as const }];
      tokens = specs.map((t) => (t.kind === 'lit' ? { kind: 'lit', char: alpha[t.code % alpha.length]!, escaped: t.escaped } : t));
    } else {
      tokens = derive([...keys[pattern.derived.index % keys.length]!], alpha, pattern.derived);
    }
    return {
      live: keys.filter((_, i) => !expired[i]),
      dead: keys.filter((_, i) => expired[i]),
      tokens,
      like,
      store,
      pattern: render(tokens, like),
    };
  });

describe('Property: key patterns', function () {
  this.timeout(propertyTimeout());
  const t = useCacheTable('prop_patterns');

  it('getPattern, scan and deletePattern agree exactly with a reference glob / LIKE matcher', async () => {
    const clock = manualClock(Date.parse('2031-05-01T00:00:00.000Z'));
    // Small pages and delete batches too, so that paging cannot lose or repeat a key.
    const stores: PgStore[] = [
      t.make({ clock }),
      t.make({ clock, iterationLimit: 1, deleteBatchSize: 1 }),
      t.make({ clock, iterationLimit: 2, deleteBatchSize: 3 }),
    ];
    await fc.assert(
      fc.asyncProperty(scenario, async ({ live, dead, tokens, like, store: which, pattern }) => {
        await sql(`DELETE FROM public.${t.table}`);
        const ext = stores[which]!.ext;
        const value = (k: string) => `v:${k}`;
        if (dead.length > 0) {
          await ext.setMany(dead.map((k) => [k, value(k)] as const), { absoluteExpirationRelative: 1_000 });
          clock.advance(1_001);
        }
        if (live.length > 0) await ext.setMany(live.map((k) => [k, value(k)] as const));

        const expected = sorted(live.filter((k) => matches(tokens, k)));
        const options = like ? { like: true } : {};
        // The matcher that lets a pattern call hold only the calls on keys it may touch agrees too.
        const holds = patternMatcher(compilePattern(pattern, options));
        for (const k of [...live, ...dead]) expect(holds(k), `patternMatcher(${JSON.stringify(pattern)}) on ${JSON.stringify(k)}`).to.equal(matches(tokens, k));

        const found = await ext.getPattern(pattern, options);
        expect(sorted(found.keys()), `getPattern(${JSON.stringify(pattern)}, ${JSON.stringify(options)})`).to.deep.equal(expected);
        for (const [k, bytes] of found) expect(bytes.toString('utf8')).to.equal(value(k));

        const scanned: string[] = [];
        for await (const k of ext.scan(pattern, { ...options, batchSize: 1 + which })) scanned.push(k);
        expect(scanned, `scan(${JSON.stringify(pattern)}, ${JSON.stringify(options)}), in key order`).to.deep.equal(expected);

        // Only wildcards (`*`, `?`; `%`, `_` in LIKE): every key, or every key of a length. Needs { all: true }.
        const wildcardsOnly = tokens.every((tok) => tok.kind !== 'lit');
        if (wildcardsOnly) {
          await rejects(ext.deletePattern(pattern, options), InvalidValueError, /has no literal character/);
          expect(sorted(await t.ids()), `deletePattern(${JSON.stringify(pattern)}) without { all: true } deletes nothing`).to.deep.equal(
            sorted([...live, ...dead]),
          );
        }
        const deleted = await ext.deletePattern(pattern, wildcardsOnly ? { ...options, all: true } : options);
        expect(deleted, `deletePattern(${JSON.stringify(pattern)}, ${JSON.stringify(options)}) count`).to.equal(expected.length);
        // Every matching row goes, expired ones too; every other row stays.
        const remaining = sorted([...live, ...dead].filter((k) => !matches(tokens, k)));
        expect(sorted(await t.ids()), `rows left by deletePattern(${JSON.stringify(pattern)})`).to.deep.equal(remaining);
      }),
      fcParams,
    );
  });
});
