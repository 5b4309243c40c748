import { expect } from 'chai';
import { derivedName, indexName } from '../../src/sql/index.js';

describe('derived names (lock table, indexes)', () => {
  it('keep short names readable and exact', () => {
    expect(derivedName('cache', 'locks')).to.equal('cache_locks');
    expect(indexName('cache', 'expiresattime')).to.equal('ix_cache_expiresattime');
  });

  it('fit long names in 63 bytes with 64 bits of hash: names that share their first 40 characters stay apart', () => {
    const seen = new Set<string>();
    const head = 'a'.repeat(40);
    for (let i = 0; i < 20_000; i++) {
      const name = derivedName(`${head}${i.toString(36).padStart(8, '0')}_tail`, 'expiresattime');
      expect(Buffer.byteLength(name)).to.be.at.most(63);
      expect(name.endsWith('_expiresattime')).to.equal(true);
      seen.add(name);
    }
    expect(seen.size).to.equal(20_000);
  });
});
