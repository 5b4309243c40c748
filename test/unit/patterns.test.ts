import { expect } from 'chai';
import { InvalidValueError } from '../../src/index.js';
import { compilePattern, patternDeletion } from '../../src/ext/patterns.js';
import { ABOVE_ALL_KEYS, validateNamespace } from '../../src/keys.js';
import { rejects } from '../helpers/assert.js';

describe('key patterns', () => {
  const cases: Array<[string, boolean, string, string, string]> = [
    // pattern, like mode, LIKE text, range lower, range upper
    ['user:*', false, 'user:%', 'user:', 'user;'],
    ['user_1*', false, 'user\\_1%', 'user_1', 'user_2'],
    ['50%off?', false, '50\\%off_', '50%off', '50%ofg'],
    ['session:??:x', false, 'session:__:x', 'session:', 'session;'],
    ['a\\*b*', false, 'a*b%', 'a*b', 'a*c'],
    ['back\\\\slash*', false, 'back\\\\slash%', 'back\\slash', 'back\\slasi'],
    ['*:tail', false, '%:tail', '', ABOVE_ALL_KEYS],
    ['user:%', true, 'user:%', 'user:', 'user;'],
    ['a\\_b%', true, 'a\\_b%', 'a_b', 'a_c'],
  ];
  for (const [pattern, like, text, lower, upper] of cases) {
    it(`compiles ${JSON.stringify(pattern)}${like ? ' (LIKE)' : ''}`, () => {
      const compiled = compilePattern(pattern, { like });
      expect(compiled.like).to.equal(text);
      expect(compiled.range).to.deep.equal({ lower, upper });
      expect(compiled.wildcardsOnly).to.equal(false);
    });
  }

  it('knows which patterns have no literal character', () => {
    for (const pattern of ['*', '***', '?', '?*', '*?', '??', '*?*?']) expect(compilePattern(pattern).wildcardsOnly, pattern).to.equal(true);
    for (const pattern of ['%', '_', '_%', '%_', '%%', '___']) expect(compilePattern(pattern, { like: true }).wildcardsOnly, pattern).to.equal(true);
    // A literal: % and _ in a glob, an escaped wildcard, [ (globs have no character classes), * and ? in LIKE.
    for (const pattern of ['%', '_%', '\\*', '\\?', '?\\*', '[*', '*]', '{?}', '\\\\*']) {
      expect(compilePattern(pattern).wildcardsOnly, pattern).to.equal(false);
    }
    for (const pattern of ['\\%', '\\_%', '*', '?', '%*', '_?']) expect(compilePattern(pattern, { like: true }).wildcardsOnly, pattern).to.equal(false);
  });

  describe('deletePattern of a pattern with no literal character needs { all: true }', () => {
    const refused: Array<[string, boolean, RegExp]> = [
      ['*', false, /"\*" has no literal character.* so it matches every key; pass \{ all: true \} to delete the whole table/],
      ['?*', false, /"\?\*" has no literal character, only the wildcards "\*" and "\?", so it matches every key;/],
      ['*?', false, /matches every key;/],
      ['??', false, /matches every key of exactly 2 characters/],
      ['?', false, /matches every key of exactly 1 character;/],
      ['*??*', false, /matches every key of at least 2 characters/],
      ['%', true, /matches every key;/],
      ['_%', true, /only the wildcards "%" and "_", so it matches every key;/],
      ['___', true, /matches every key of exactly 3 characters/],
    ];
    for (const [pattern, like, message] of refused) {
      it(`refuses ${JSON.stringify(pattern)}${like ? ' (LIKE)' : ''}, saying what it matches and what is allowed`, async () => {
        const error = await rejects(() => patternDeletion(pattern, { like }), InvalidValueError, message);
        expect(error.message).to.match(/pass \{ all: true \}/);
        expect(error.message).to.match(/literal character/);
        expect(patternDeletion(pattern, { like, all: true }).wildcardsOnly).to.equal(true);
      });
    }

    it('accepts any pattern with a literal character without it', () => {
      for (const pattern of ['a*', '*a', '?a?', '\\?', '\\**', '%', '_', '[*']) expect(() => patternDeletion(pattern), pattern).not.to.throw();
      for (const pattern of ['a%', '%a_', '\\%', '\\_%', '*']) expect(() => patternDeletion(pattern, { like: true }), pattern).not.to.throw();
    });
  });

  it('refuses empty, malformed and unstorable patterns', async () => {
    await rejects(() => compilePattern(''), InvalidValueError, /non-empty/);
    await rejects(() => compilePattern('abc\\'), InvalidValueError, /lone "\\"/);
    await rejects(() => compilePattern('a\0*'), InvalidValueError, /NUL/);
    await rejects(() => compilePattern(7), InvalidValueError, /non-empty string/);
  });

  describe('namespaces', () => {
    it('refuses what cannot prefix a stored key faithfully: lone surrogates, NUL, a value that is not a string', async () => {
      await rejects(() => validateNamespace('\ud800'), InvalidValueError, /namespace.*lone surrogate/);
      await rejects(() => validateNamespace('x\udc00y'), InvalidValueError, /lone surrogate/);
      await rejects(() => validateNamespace('a\0'), InvalidValueError, /namespace.*NUL/);
      await rejects(() => validateNamespace(5), InvalidValueError, /must be a string.*got 5/);
      await rejects(() => validateNamespace(Symbol('ns')), InvalidValueError, /must be a string/);
    });

    it('accepts well-formed strings, astral characters included, and none (undefined, null, "")', () => {
      for (const namespace of ['users', '😀', 'u%_\\', '\uFFFD', undefined, null, '']) expect(() => validateNamespace(namespace)).not.to.throw();
    });
  });
});
