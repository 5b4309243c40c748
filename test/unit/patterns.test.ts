import { expect } from 'chai';
import { InvalidValueError } from '../../src/index.js';
import { compilePattern } from '../../src/ext/patterns.js';
import { ABOVE_ALL_KEYS } from '../../src/keys.js';
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
      expect(compiled.matchesAll).to.equal(false);
    });
  }

  it('knows which patterns match every key', () => {
    expect(compilePattern('*').matchesAll).to.equal(true);
    expect(compilePattern('***').matchesAll).to.equal(true);
    expect(compilePattern('%', { like: true }).matchesAll).to.equal(true);
    expect(compilePattern('%').matchesAll).to.equal(false); // a literal percent sign in a glob
  });

  it('refuses empty, malformed and unstorable patterns', async () => {
    await rejects(() => compilePattern(''), InvalidValueError, /non-empty/);
    await rejects(() => compilePattern('abc\\'), InvalidValueError, /lone "\\"/);
    await rejects(() => compilePattern('a\0*'), InvalidValueError, /NUL/);
    await rejects(() => compilePattern(7), InvalidValueError, /non-empty string/);
  });
});
