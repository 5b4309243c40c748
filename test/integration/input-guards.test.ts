/**
 * Issue 26, findings 6 and 8: inputs that deleted more than asked, refused up front (docs/reliability.md,
 * "Bad input and what it gets").
 *
 * 6. `deletePattern` needs `{ all: true }` for any pattern without a literal character (`?*`, `*?`,
 *    `??`, LIKE `_%`), not only for `*`: each of them deletes every key, or every key of a length.
 * 8. A namespace that cannot be stored faithfully (a lone surrogate becomes U+FFFD in UTF-8; PostgreSQL text
 *    cannot hold NUL) is refused with `InvalidValueError` wherever it enters, and nothing is deleted for it.
 */
import { expect } from 'chai';
import Keyv from 'keyv';
import { createPgCache } from '../../src/cache_manager/index.js';
import { InvalidKeyError, InvalidValueError, type PgStore } from '../../src/index.js';
import { rejects } from '../helpers/assert.js';
import { useCacheTable } from '../helpers/fixture.js';

describe('Input guards (issue 26: patterns without a literal, unstorable namespaces)', function () {
  const t = useCacheTable('guards');

  /** Keys of every length from 1 to 3, glob and LIKE metacharacters included, and a few prefixes. */
  const KEYS = ['a', '?', '*', '%', '_', '[', 'ab', '*x', '%x', '_%', '[a]x', 'abc', 'user:1', 'user:22'];

  /** What `call` throws or rejects with, or undefined. */
  async function failure(call: () => unknown): Promise<unknown> {
    try {
      await call();
    } catch (error) {
      return error;
    }
    return undefined;
  }

  async function seed(store: PgStore): Promise<void> {
    await store.ext.setMany(KEYS.map((key) => [key, 'v'] as const));
  }

  describe('deletePattern: a pattern with no literal character needs { all: true }', () => {
    const wildcardsOnly: Array<[string, { like?: boolean }]> = [
      ['?*', {}],
      ['*?', {}],
      ['*?*', {}],
      ['??', {}],
      ['?', {}],
      ['**', {}],
      ['_%', { like: true }],
      ['%_', { like: true }],
      ['%%', { like: true }],
      ['___', { like: true }],
    ];
    for (const [pattern, options] of wildcardsOnly) {
      it(`refuses ${JSON.stringify(pattern)}${options.like ? ' (LIKE)' : ''} without { all: true }, and deletes nothing`, async () => {
        const store = t.make();
        await seed(store);
        await rejects(store.ext.deletePattern(pattern, options), InvalidValueError, /no literal character.*pass \{ all: true \}/s);
        expect(await t.count(), 'nothing deleted').to.equal(KEYS.length);
      });
    }

    it('refuses them in ext.in(client) too, before anything runs', async () => {
      const store = t.make();
      await seed(store);
      const client = await t.pool.connect();
      try {
        await rejects(store.ext.in(client).deletePattern('?*'), InvalidValueError, /no literal character/);
        await rejects(store.ext.in(client).deletePattern('_%', { like: true }), InvalidValueError, /no literal character/);
      } finally {
        client.release();
      }
      expect(await t.count(), 'nothing deleted').to.equal(KEYS.length);
    });

    it('says what the pattern matches: every key, or every key of some length', async () => {
      const store = t.make();
      await rejects(store.ext.deletePattern('?*'), InvalidValueError, /matches every key;/);
      await rejects(store.ext.deletePattern('??'), InvalidValueError, /matches every key of exactly 2 characters/);
      await rejects(store.ext.deletePattern('*??'), InvalidValueError, /matches every key of at least 2 characters/);
      await rejects(store.ext.deletePattern('_%', { like: true }), InvalidValueError, /"%" and "_"/);
    });

    it('with { all: true } they delete what they match', async () => {
      const store = t.make();
      await seed(store);
      expect(await store.ext.deletePattern('??', { all: true })).to.equal(KEYS.filter((k) => [...k].length === 2).length);
      expect(await t.count()).to.equal(KEYS.filter((k) => [...k].length !== 2).length);
      const left = await t.count();
      expect(await store.ext.deletePattern('_%', { like: true, all: true })).to.equal(left);
      expect(await t.count()).to.equal(0);
    });

    const withLiteral: Array<[string, { like?: boolean }, string[]]> = [
      ['\\?', {}, ['?']], // an escaped wildcard is a literal
      ['\\**', {}, ['*', '*x']],
      ['?\\*', {}, []],
      ['%', {}, ['%']], // % and _ are literals in a glob
      ['_%', {}, ['_%']],
      ['[*', {}, ['[', '[a]x']], // no character classes: [ means itself
      ['?b', {}, ['ab']],
      ['\\%%', { like: true }, ['%', '%x']],
      ['\\_%', { like: true }, ['_', '_%']],
      ['_b', { like: true }, ['ab']],
    ];
    for (const [pattern, options, deleted] of withLiteral) {
      it(`still deletes with ${JSON.stringify(pattern)}${options.like ? ' (LIKE)' : ''} without { all: true }: it has a literal`, async () => {
        const store = t.make();
        await seed(store);
        expect(await store.ext.deletePattern(pattern, options)).to.equal(deleted.length);
        expect(await t.ids()).to.have.members(KEYS.filter((k) => !deleted.includes(k)));
      });
    }
  });

  describe('a namespace that cannot be stored faithfully is refused, and nothing is deleted for it', () => {
    const bad: Array<[string, unknown, RegExp]> = [
      ['a lone high surrogate', '\ud800', /lone surrogate/],
      ['a lone low surrogate after text', 'ns\udc00', /lone surrogate/],
      ['NUL', 'a\0b', /NUL/],
      ['a number', 5, /string/],
    ];
    /** Rows under U+FFFD (where a lone surrogate lands once encoded), under `a`, and outside any namespace. */
    const ROWS = ['\uFFFD:1', '\uFFFD:2', 'a:1', 'ab:1', 'ns\uFFFD:1', 'x'];

    async function seedNamespaces(store: PgStore): Promise<void> {
      await store.setMany(ROWS.map((key) => ({ key, value: '"v"' })));
    }

    for (const [what, namespace, message] of bad) {
      it(`store.namespace = ${what}: the assignment throws, clear() and iterator() refuse it`, async () => {
        const store = t.make();
        await seedNamespaces(store);
        const assigned = await failure(() => {
          store.namespace = namespace as string;
        });
        const cleared = await failure(() => store.clear());
        // First what was deleted (a lone surrogate used to clear the U+FFFD namespace), then the errors.
        expect(await t.ids(), 'nothing deleted').to.have.members(ROWS);
        expect(cleared, 'clear()').to.be.instanceOf(InvalidValueError);
        expect((cleared as Error).message).to.match(message);
        expect(assigned, 'the assignment').to.be.instanceOf(InvalidValueError);
        expect((assigned as Error).message).to.match(message);
        const iterated = await failure(async () => {
          for await (const entry of store.iterator(namespace as string)) expect.fail(`yielded ${JSON.stringify(entry)}`);
        });
        expect(iterated, 'iterator()').to.be.instanceOf(InvalidValueError);
        expect((iterated as Error).message).to.match(message);
        store.namespace = 'a';
        await store.clear();
        expect(await t.ids(), 'a valid namespace afterwards works').to.have.members(ROWS.filter((k) => k !== 'a:1'));
      });
    }

    it('new Keyv({ store, namespace }) with a lone surrogate or NUL throws at construction', async () => {
      const store = t.make();
      await seedNamespaces(store);
      expect(() => new Keyv({ store, namespace: '\ud800' })).to.throw(InvalidValueError, /lone surrogate/);
      expect(() => new Keyv(store, { namespace: 'a\0' })).to.throw(InvalidValueError, /NUL/);
      await rejects(store.clear(), InvalidValueError);
      expect(await t.ids(), 'nothing deleted').to.have.members(ROWS);
    });

    it('keyv.namespace = bad throws, and the Keyv then refuses clear(), get and set instead of using its previous namespace', async () => {
      const store = t.make();
      await seedNamespaces(store);
      const keyv = new Keyv({ store, namespace: 'a', throwOnErrors: true });
      keyv.on('error', () => {});
      expect(() => {
        keyv.namespace = '\ud800';
      }).to.throw(InvalidValueError, /lone surrogate/);
      // Keyv already took the new namespace before the store refused it: the store holds it too, so the two
      // agree, and everything that would use it is refused (the previous namespace 'a' is not cleared).
      expect(store.namespace).to.equal('\ud800');
      await rejects(keyv.clear(), InvalidValueError, /lone surrogate/);
      await rejects(keyv.set('k', 1), InvalidKeyError, /lone surrogate/);
      expect(await t.ids(), 'nothing deleted, nothing written').to.have.members(ROWS);
      keyv.namespace = 'a';
      await keyv.clear();
      expect(await t.ids()).to.have.members(ROWS.filter((k) => k !== 'a:1'));
    });

    it('iterator() of a Keyv whose namespace was refused yields nothing and refuses', async () => {
      const store = t.make();
      await seedNamespaces(store);
      const keyv = new Keyv({ store, namespace: 'a', throwOnErrors: true });
      expect(() => {
        keyv.namespace = 'a\0';
      }).to.throw(InvalidValueError);
      await rejects(async () => {
        for await (const entry of keyv.iterator!(undefined)) expect.fail(`yielded ${JSON.stringify(entry)}`);
      }, InvalidValueError, /NUL/);
    });

    it('createPgCache({ namespace }) with a lone surrogate throws', () => {
      const store = t.make();
      expect(() => createPgCache({ store, namespace: '\udfff' })).to.throw(InvalidValueError, /lone surrogate/);
    });

    it('well-formed namespaces stay accepted: astral characters, %, _ and none at all', async () => {
      const store = t.make();
      await store.setMany(['😀:1', '😀x:1', '\uFFFD:1', 'x'].map((key) => ({ key, value: '"v"' })));
      store.namespace = '😀';
      const seen: string[] = [];
      for await (const [key] of store.iterator('😀')) seen.push(key);
      expect(seen).to.deep.equal(['😀:1']);
      await store.clear();
      expect(await t.ids()).to.have.members(['😀x:1', '\uFFFD:1', 'x']);
      for (const none of [undefined, null, '']) {
        store.namespace = none as string | undefined;
        expect(store.namespace).to.equal(none);
      }
      await store.clear();
      expect(await t.count()).to.equal(0);
    });
  });
});
