import { expect } from 'chai';
import { keyDigest } from '../../src/key_digest.js';
import { entryCost, LocalCache } from '../../src/local/local_cache.js';
import { decodeInvalidation, encodeInvalidation } from '../../src/notices.js';

const bytes = (text: string) => Buffer.from(text);

describe('LocalCache', () => {
  const make = (maxEntries = 10, ttlMs = 1000) => {
    const cache = new LocalCache(maxEntries, ttlMs);
    cache.setEnabled(true);
    return cache;
  };

  it('evicts the least recently used entry, a hit counting as a use', () => {
    const cache = make(2);
    cache.keep('a', bytes('1'), Infinity, cache.stamp(), 0);
    cache.keep('b', bytes('2'), Infinity, cache.stamp(), 0);
    expect(cache.get('a', 0)!.toString()).to.equal('1');
    cache.keep('c', bytes('3'), Infinity, cache.stamp(), 0);
    expect(cache.get('b', 0)).to.equal(undefined);
    expect(cache.get('a', 0)!.toString()).to.equal('1');
    expect(cache.get('c', 0)!.toString()).to.equal('3');
  });

  it("serves until the earlier of its ttl and the row's expiry, and never a row that slides", () => {
    const cache = make(10, 1000);
    cache.keep('ttl', bytes('v'), Infinity, cache.stamp(), 0);
    cache.keep('row', bytes('v'), 300, cache.stamp(), 0);
    cache.keep('sliding', bytes('v'), null, cache.stamp(), 0);
    expect(cache.get('row', 299)).to.not.equal(undefined);
    expect(cache.get('row', 300)).to.equal(undefined);
    expect(cache.get('ttl', 999)).to.not.equal(undefined);
    expect(cache.get('ttl', 1000)).to.equal(undefined);
    expect(cache.get('sliding', 0)).to.equal(undefined);
  });

  it('refuses what a read that began while notifications were not heard found, once they are heard again', () => {
    const cache = make();
    cache.setEnabled(false); // the listener's connection is lost
    const during = cache.stamp();
    cache.setEnabled(true); // listening again: what was written meanwhile was never announced
    cache.keep('k', bytes('maybe stale'), Infinity, during, 0);
    expect(cache.get('k', 0)).to.equal(undefined);
    const after = cache.stamp();
    cache.keep('k', bytes('fresh'), Infinity, after, 0);
    expect(cache.get('k', 0)!.toString()).to.equal('fresh');
  });

  it('refuses what a read found when its key, or everything, was invalidated after the read began', () => {
    const cache = make();
    const early = cache.stamp();
    cache.invalidate(['k']);
    cache.keep('k', bytes('old'), Infinity, early, 0);
    cache.keep('other', bytes('fine'), Infinity, early, 0);
    expect(cache.get('k', 0)).to.equal(undefined);
    expect(cache.get('other', 0)!.toString()).to.equal('fine');
    cache.keep('k', bytes('new'), Infinity, cache.stamp(), 0); // a read begun after the write
    expect(cache.get('k', 0)!.toString()).to.equal('new');
    const beforeFlush = cache.stamp();
    cache.flush();
    cache.keep('late', bytes('old'), Infinity, beforeFlush, 0);
    expect(cache.size).to.equal(0);
  });

  it('holds nothing while disabled, and drops everything when disabled', () => {
    const cache = make();
    cache.keep('k', bytes('v'), Infinity, cache.stamp(), 0);
    cache.setEnabled(false);
    expect(cache.size).to.equal(0);
    cache.keep('k', bytes('v'), Infinity, cache.stamp(), 0);
    expect(cache.get('k', 0)).to.equal(undefined);
  });

  it('hands out copies: a caller changing its Buffer changes nothing held', () => {
    const cache = make();
    const value = bytes('abc');
    cache.keep('k', value, Infinity, cache.stamp(), 0);
    value[0] = 0x58;
    cache.get('k', 0)![1] = 0x58;
    expect(cache.get('k', 0)!.toString()).to.equal('abc');
  });
});

describe('LocalCache: sizes, text and written values', () => {
  const make = (maxEntries = 10, ttlMs = 1000, maxBytes = Number.POSITIVE_INFINITY) => {
    const cache = new LocalCache(maxEntries, ttlMs, maxBytes);
    cache.setEnabled(true);
    return cache;
  };

  it('holds at most maxBytes, least recently used out first, and never a value larger than that', () => {
    // Each entry counts its value, its key and its bookkeeping (entryCost); a value asked for in its
    // other form counts that too. Room for two 4-byte entries and a little more.
    const cache = make(100, 1000, 2 * entryCost('a', 4) + 5);
    cache.keep('a', bytes('1234'), Infinity, cache.stamp(), 0);
    cache.keep('b', 'abcd', Infinity, cache.stamp(), 0);
    expect(cache.bytes).to.equal(2 * entryCost('a', 4));
    expect(cache.getText('a', 0)).to.equal('1234'); // a is now the most recently used, and held as text too
    expect(cache.bytes).to.equal(2 * entryCost('a', 4) + 4);
    cache.keep('c', bytes('xyz'), Infinity, cache.stamp(), 0);
    expect([cache.getText('a', 0), cache.getText('b', 0)]).to.deep.equal(['1234', undefined]);
    expect(cache.bytes).to.equal(entryCost('a', 4) + 4 + entryCost('c', 3));
    expect(cache.getText('c', 0)).to.equal('xyz'); // its text form pushes the least recently used (a) out
    expect(cache.getText('a', 0)).to.equal(undefined);
    expect(cache.bytes).to.equal(entryCost('c', 3) + 3);
    cache.keep('huge', 'x'.repeat(2 * entryCost('a', 4)), Infinity, cache.stamp(), 0);
    expect(cache.getText('huge', 0)).to.equal(undefined);
    expect(cache.bytes).to.equal(entryCost('c', 3) + 3);
    cache.invalidate(['c']);
    expect(cache.bytes).to.equal(0);
    cache.keep('d', 'v', Infinity, cache.stamp(), 0);
    cache.flush();
    expect(cache.bytes).to.equal(0);
  });

  it('gives text kept as text back as the same string, and as bytes on request (and the other way round)', () => {
    const cache = make();
    const text = JSON.stringify({ value: 'é'.repeat(100) });
    cache.keep('t', text, Infinity, cache.stamp(), 0);
    expect(cache.getText('t', 0)).to.equal(text);
    expect(cache.get('t', 0)!.equals(Buffer.from(text))).to.equal(true);
    cache.keep('b', bytes('héllo'), Infinity, cache.stamp(), 0);
    expect(cache.getText('b', 0)).to.equal('héllo');
  });

  it('replace keeps a written value, refuses reads begun before it, and keeps nothing when another write was heard during it', () => {
    const cache = make();
    const readBefore = cache.stamp();
    cache.invalidate(['k']); // the write is issued
    const write = cache.stamp();
    cache.replace('k', 'new', Infinity, write, 0); // and acknowledged
    cache.keep('k', 'old', Infinity, readBefore, 0); // a read that began before it answers late
    expect(cache.getText('k', 0)).to.equal('new');

    const second = cache.stamp();
    cache.heard([keyDigest('k')]); // another store's write of k is heard while ours is on its way
    cache.replace('k', 'ours', Infinity, second, 0);
    expect(cache.getText('k', 0)).to.equal(undefined);

    const first = cache.stamp();
    const next = cache.stamp();
    cache.replace('k', 'first', Infinity, first, 0); // two writes of this store, in one batch
    cache.replace('k', 'second', Infinity, next, 0); // landing in issue order: the last is kept
    expect(cache.getText('k', 0)).to.equal('second');

    cache.replace('s', 'sliding', null, cache.stamp(), 0);
    expect(cache.getText('s', 0)).to.equal(undefined);
    const beforeFlush = cache.stamp();
    cache.flush();
    cache.replace('f', 'v', Infinity, beforeFlush, 0);
    expect(cache.getText('f', 0)).to.equal(undefined);
  });

  it('a hit of a sliding entry asks once for a touch when its read would move the row by more than the threshold', () => {
    const touched: string[] = [];
    const cache = new LocalCache(10, 1_000_000, Number.POSITIVE_INFINITY, 0.1, (key) => touched.push(key));
    cache.setEnabled(true);
    const slide = { windowMs: 100_000, absMs: 250_000 };
    cache.keep('s', 'v', 100_000, cache.stamp(), 0, slide); // row read at 0: expires at 100 s
    expect(cache.getText('s', 5_000)).to.equal('v'); // would move it by 5 s: under 10% of the window
    expect(touched).to.deep.equal([]);
    expect(cache.getText('s', 20_000)).to.equal('v'); // by 20 s: touch
    expect(cache.getText('s', 30_000)).to.equal('v'); // already asked
    expect(touched).to.deep.equal(['s']);
    cache.touched(['s'], 20_000, false); // the touch failed: the row is known to live until 100 s only
    expect(cache.getText('s', 99_999)).to.equal('v');
    expect(touched).to.deep.equal(['s', 's']);
    cache.touched(['s'], 99_999, true); // slid at 99.999 s: lives at least until 189.999 s (threshold kept back)
    expect(cache.getText('s', 189_000)).to.equal('v');
    expect(cache.getText('s', 190_000)).to.equal(undefined);
    // The absolute expiry caps it.
    cache.keep('a', 'v', 100_000, cache.stamp(), 0, slide);
    cache.touched(['a'], 200_000, true);
    expect(cache.getText('a', 249_999)).to.equal(undefined); // never asked for: not touching, nothing moved
  });

  it('a notice drops what is held under its digest, and refuses reads of that key begun before it', () => {
    const cache = make();
    cache.keep('a', 'va', Infinity, cache.stamp(), 0);
    cache.keep('b', 'vb', Infinity, cache.stamp(), 0);
    const early = cache.stamp();
    cache.heard([keyDigest('a'), 'ffffffffffffffff']);
    expect(cache.getText('a', 0)).to.equal(undefined);
    expect(cache.getText('b', 0)).to.equal('vb');
    cache.keep('a', 'stale', Infinity, early, 0); // a read that began before the notice answers late
    expect(cache.getText('a', 0)).to.equal(undefined);
    cache.keep('a', 'fresh', Infinity, cache.stamp(), 0);
    expect(cache.getText('a', 0)).to.equal('fresh');
  });

  it('many invalidations drop their marks without dropping what is held', () => {
    const cache = make(3);
    cache.keep('held', 'v', Infinity, cache.stamp(), 0);
    const early = cache.stamp();
    cache.invalidate(['a', 'b', 'c', 'd']); // more marks than maxEntries: one mark for all reads begun before
    expect(cache.getText('held', 0)).to.equal('v');
    cache.keep('late', 'old', Infinity, early, 0);
    expect(cache.getText('late', 0)).to.equal(undefined);
  });
});

describe('invalidation messages', () => {
  it('carry the keys\' digests, never the keys, and turn a list too long for NOTIFY into "everything"', () => {
    const payload = encodeInvalidation('me', ['session:alice:tok_8f3a9c', 'b\nc']);
    expect(payload).not.to.include('alice');
    expect(decodeInvalidation(payload)).to.deep.equal({ sender: 'me', keys: [keyDigest('session:alice:tok_8f3a9c'), keyDigest('b\nc')] });
    expect(keyDigest('session:alice:tok_8f3a9c')).to.match(/^[0-9a-f]{16}$/);
    expect(decodeInvalidation(encodeInvalidation('me', 'all'))).to.deep.equal({ sender: 'me', keys: 'all' });
    const many = Array.from({ length: 2000 }, (_, i) => `key:${i}`);
    expect(decodeInvalidation(encodeInvalidation('me', many))).to.deep.equal({ sender: 'me', keys: 'all' });
  });

  it('takes a list of anything but digests (keys in clear, from an earlier version) as "everything"', () => {
    expect(decodeInvalidation('old\n["session:alice"]')).to.deep.equal({ sender: 'old', keys: 'all' });
  });

  it('ignores anything else said on the channel', () => {
    for (const junk of ['', 'no newline', 'me\n{"a":1}', 'me\n[1,2]', 'me\nnot json']) expect(decodeInvalidation(junk)).to.equal(undefined);
  });
});
