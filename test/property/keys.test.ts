/**
 * Property: any string is either a key (stored under exactly that row id and read back exactly, through
 * store.ext and through the Keyv store interface) or refused with InvalidKeyError before anything is
 * written. The reference rule (src/keys.ts, validateKey): non-empty, at most 449 code points (the
 * VARCHAR(449) id column counts characters, not UTF-16 units), no NUL, no lone surrogate.
 */
import { expect } from 'chai';
import fc from 'fast-check';
import { InvalidKeyError, MAX_KEY_LENGTH } from '../../src/index.js';
import { rejects } from '../helpers/assert.js';
import { sql } from '../helpers/db.js';
import { useCacheTable } from '../helpers/fixture.js';
import { fcParams, propertyTimeout } from './fc-config.js';

/** The refusal rule, written independently of the code under test. */
function isValidKey(key: string): boolean {
  const codePoints = [...key]; // a lone surrogate is one element, as it is one (refused) character
  if (codePoints.length === 0 || codePoints.length > MAX_KEY_LENGTH) return false;
  return codePoints.every((point) => {
    const code = point.codePointAt(0)!;
    return code !== 0 && !(code >= 0xd800 && code <= 0xdfff);
  });
}

/** Characters that stress the rule: NUL, lone surrogates (both halves, both ends), pairs, the extremes. */
const SPECIAL_UNITS = [
  '\0', '\uD800', '\uDBFF', '\uDC00', '\uDFFF', '😀', '\u{10FFFF}', '\u{10000}', '\uFFFF', '\uFFFE', '\uD7FF', '\uE000',
  'é', '中', 'a', ' ', '\\', '%', '_', '*', '?', ':', '\n', "'", '"',
];
const specialUnit = fc.constantFrom(...SPECIAL_UNITS);
const mixedUnit = fc.oneof(specialUnit, fc.string({ unit: 'binary', minLength: 1, maxLength: 1 }));

/** Keys around the 449-character limit, in characters of 1 to 4 UTF-8 bytes and 1 or 2 UTF-16 units. */
const boundaryKey = fc
  .tuple(
    fc.integer({ min: MAX_KEY_LENGTH - 2, max: MAX_KEY_LENGTH + 2 }),
    fc.array(fc.constantFrom('a', 'é', '中', '😀', '\u{10FFFF}'), { minLength: 1, maxLength: 4 }),
    // Sometimes one character is replaced by a refused one (NUL or a lone surrogate), at any position.
    fc.option(fc.tuple(fc.nat(), fc.constantFrom('\0', '\uD800', '\uDFFF')), { freq: 4 }),
  )
  .map(([length, alphabet, poison]) => {
    const chars: string[] = Array.from({ length }, (_, i) => alphabet[i % alphabet.length]!);
    if (poison) chars[poison[0] % length] = poison[1];
    return chars.join('');
  });

const anyKey = fc.oneof(
  fc.string({ unit: 'binary', maxLength: 30 }),
  fc.string({ unit: 'grapheme', maxLength: 20 }),
  fc.string({ unit: 'binary-ascii', maxLength: 30 }),
  fc.string({ unit: mixedUnit, maxLength: 20 }),
  fc.string({ unit: 'grapheme-ascii', minLength: 0, maxLength: 3 }),
  boundaryKey,
);

/** Values are well-formed strings; backslashes and NUL stress the text read path. */
const anyValue = fc.string({ unit: fc.oneof(fc.string({ unit: 'binary', minLength: 1, maxLength: 1 }), fc.constantFrom('\\', '\0', '\\000', '😀')), maxLength: 20 });

/** A valid key and a different string close to it: one a collation, normalization or trimming might fold onto it. */
const validKey = anyKey.filter(isValidKey);
const nearKey = fc
  .tuple(
    validKey,
    fc.constantFrom<(key: string) => string>(
      (k) => `${k} `,
      (k) => ` ${k}`,
      (k) => `${k}\u200B`,
      (k) => `\uFEFF${k}`,
      (k) => k.normalize('NFD'),
      (k) => k.normalize('NFC'),
      (k) => k.normalize('NFKC'),
      (k) => k.toUpperCase(),
      (k) => k.toLowerCase(),
      (k) => [...k].slice(0, -1).join(''),
      (k) => `${k}\u0301`,
    ),
  )
  .map(([key, vary]) => [key, vary(key)] as const)
  .filter(([key, other]) => other !== key && isValidKey(other));

describe('Property: keys', function () {
  this.timeout(propertyTimeout());
  const t = useCacheTable('prop_keys');

  it('a string key is stored and read back exactly, or refused with InvalidKeyError before anything is written', async () => {
    const store = t.make();
    await store.has('warm-up'); // so that roundTrips below counts only the calls under test
    await fc.assert(
      fc.asyncProperty(anyKey, anyValue, anyValue, async (key, value, keyvValue) => {
        await sql(`DELETE FROM public.${t.table}`);
        const before = store.roundTrips;
        if (!isValidKey(key)) {
          await rejects(store.ext.set(key, value), InvalidKeyError);
          await rejects(store.set(key, keyvValue), InvalidKeyError);
          await rejects(store.setMany([{ key, value: keyvValue }]), InvalidKeyError);
          await rejects(store.ext.setMany([[key, value]]), InvalidKeyError);
          await rejects(store.ext.incr(key, 1), InvalidKeyError);
          await rejects(store.ext.getString(key), InvalidKeyError);
          await rejects(store.get(key), InvalidKeyError);
          await rejects(store.ext.has(key), InvalidKeyError);
          await rejects(store.delete(key), InvalidKeyError);
          expect(store.roundTrips, 'statements sent for a refused key').to.equal(before);
          expect(await t.count(), 'rows written for a refused key').to.equal(0);
          return;
        }
        await store.ext.set(key, value);
        expect(await t.ids(), 'the row id').to.deep.equal([key]);
        expect(await store.ext.getString(key)).to.equal(value);
        expect((await store.ext.get(key))?.equals(Buffer.from(value, 'utf8'))).to.equal(true);
        expect(await store.ext.has(key)).to.equal(true);

        expect(await store.set(key, keyvValue)).to.equal(true);
        expect(await t.ids(), 'the row id').to.deep.equal([key]);
        expect(await store.get(key)).to.equal(keyvValue);
        expect(await store.getMany([key])).to.deep.equal([keyvValue]);
        expect(await store.ext.getString(key)).to.equal(keyvValue);

        expect(await store.delete(key)).to.equal(true);
        expect(await store.get(key)).to.equal(undefined);
        expect(await store.ext.has(key)).to.equal(false);
        expect(await t.count()).to.equal(0);
      }),
      fcParams,
    );
  });

  it('two different keys never share a row (no folding of case, normalization, spaces or length)', async () => {
    const store = t.make();
    await fc.assert(
      fc.asyncProperty(nearKey, async ([key, other]) => {
        await sql(`DELETE FROM public.${t.table}`);
        await Promise.all([store.ext.set(key, 'first'), store.set(other, 'second')]);
        expect(await t.count(), 'rows').to.equal(2);
        expect(await store.ext.getString(key)).to.equal('first');
        expect(await store.get(other)).to.equal('second');
        expect(await store.ext.delete(key)).to.equal(true);
        expect(await t.ids()).to.deep.equal([other]);
      }),
      fcParams,
    );
  });
});
