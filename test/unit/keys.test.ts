import { expect } from 'chai';
import { InvalidKeyError, MAX_KEY_LENGTH } from '../../src/index.js';
import { ABOVE_ALL_KEYS, escapeLike, prefixRange, validateKey } from '../../src/keys.js';
import { rejects } from '../helpers/assert.js';

describe('key validation', () => {
  it('accepts 449 characters, counting code points rather than UTF-16 units', () => {
    expect(MAX_KEY_LENGTH).to.equal(449);
    validateKey('k'.repeat(449));
    const emoji = '😀'.repeat(449); // 898 UTF-16 units, 449 characters
    expect(emoji.length).to.equal(898);
    validateKey(emoji);
  });

  it('refuses 450 characters and says how many it had', async () => {
    await rejects(() => validateKey('😀'.repeat(450)), InvalidKeyError, /at most 449 characters.*this one has 450/);
  });

  it('refuses empty keys, NUL, lone surrogates and non-strings', async () => {
    await rejects(() => validateKey(''), InvalidKeyError, /must not be empty/);
    await rejects(() => validateKey('a\0b'), InvalidKeyError, /NUL/);
    await rejects(() => validateKey('a\ud800b'), InvalidKeyError, /lone surrogate/);
    await rejects(() => validateKey(42), InvalidKeyError, /must be a string, got number/);
  });

  it('cuts long keys in the error to keep logs readable', async () => {
    const error = await rejects(() => validateKey('x'.repeat(1000)), InvalidKeyError);
    expect(error.key.length).to.be.lessThan(100);
  });

  it('escapes LIKE metacharacters', () => {
    expect(escapeLike('a%b_c\\d')).to.equal('a\\%b\\_c\\\\d');
  });

  it('turns a prefix into the key range holding exactly the keys that start with it', () => {
    expect(prefixRange('users:')).to.deep.equal({ lower: 'users:', upper: 'users;' });
    expect(prefixRange('a\u{10FFFF}')).to.deep.equal({ lower: 'a\u{10FFFF}', upper: 'b' });
    expect(prefixRange('x\ud7ff')).to.deep.equal({ lower: 'x\ud7ff', upper: 'x\ue000' });
    expect(prefixRange('😀')).to.deep.equal({ lower: '😀', upper: '😁' });
    expect(prefixRange('\u{10FFFF}').upper).to.equal(ABOVE_ALL_KEYS);
    expect([...ABOVE_ALL_KEYS]).to.have.length(450); // one more code point than any id can have
  });
});
