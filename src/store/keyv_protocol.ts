import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import path from 'node:path';
import { SELF_URL } from './self_url.js';

/**
 * The two Keyv store contracts PgStore serves, and what tells them apart.
 *
 * - Keyv 5 prefixes keys with `namespace:` itself and passes a relative `ttl` (ms) to `set`/`setMany`;
 *   `deleteMany` resolves to one boolean.
 * - Keyv 6 passes keys as the user wrote them, leaving the namespace to the store, and an absolute
 *   `expires` (Unix ms); `deleteMany` resolves to one boolean per key. It uses a store as such (not
 *   through its bridge for legacy stores) when `store.capabilities.expires` is true.
 *
 * Which one a store follows: the Keyv that adopts it says so. Keyv 6 reads `store.capabilities` when it
 * adopts a store, Keyv 5 reads `store.opts` (neither reads the other's). A store no Keyv adopted (called
 * directly, as the Keyv test suites do) follows the major of the `keyv` package installed beside this
 * one: Keyv 5's contract unless that is Keyv 6.
 *
 * Under Keyv 6 a namespaced key is stored as `namespace:key`, the row id Keyv 5 writes for it: a table
 * read by Keyv 5 and Keyv 6 applications (and by .NET and Python through the same ids) holds one entry
 * per key. Keyv 6's default namespace is none, Keyv 5's is `keyv`: give Keyv 6 `namespace: 'keyv'` to
 * read what a Keyv 5 application wrote with its default.
 */

/** How a method is called, in Keyv 6's capability report. */
export interface MethodReport {
  readonly exists: true;
  readonly methodType: 'async';
}

/** What Keyv 6 reads from `store.capabilities` (its `KeyvStorageCapability`). */
export interface KeyvStorageCapabilities {
  readonly compatible: true;
  readonly store: 'keyvStorage';
  readonly methods: Readonly<Record<'get' | 'getMany' | 'has' | 'hasMany' | 'set' | 'setMany' | 'delete' | 'deleteMany' | 'clear' | 'disconnect' | 'iterator', MethodReport>>;
  /** An absolute `expires` on set/setMany, enforced on every read (in SQL). */
  readonly expires: true;
}

const ASYNC: MethodReport = Object.freeze({ exists: true, methodType: 'async' });

export const CAPABILITIES: KeyvStorageCapabilities = Object.freeze({
  compatible: true,
  store: 'keyvStorage',
  methods: Object.freeze({
    get: ASYNC,
    getMany: ASYNC,
    has: ASYNC,
    hasMany: ASYNC,
    set: ASYNC,
    setMany: ASYNC,
    delete: ASYNC,
    deleteMany: ASYNC,
    clear: ASYNC,
    disconnect: ASYNC,
    iterator: ASYNC,
  }),
  expires: true,
});

let installed: 5 | 6 | undefined;

/** The major of the `keyv` package this package resolves (its peer), read once: 5 when none or unreadable. */
export function installedKeyvMajor(): 5 | 6 {
  if (installed !== undefined) return installed;
  installed = 5;
  try {
    let dir = path.dirname(createRequire(SELF_URL).resolve('keyv'));
    for (let up = 0; up < 4; up++, dir = path.dirname(dir)) {
      let manifest: { name?: string; version?: string };
      try {
        manifest = JSON.parse(readFileSync(path.join(dir, 'package.json'), 'utf8'));
      } catch {
        continue;
      }
      if (manifest.name !== 'keyv') continue;
      if (manifest.version?.startsWith('6.')) installed = 6;
      break;
    }
  } catch {
    // no keyv installed: the store is used without it, as Keyv 5's contract describes
  }
  return installed;
}

/** Which contract a store follows: see the module's comment. */
export class KeyvProtocol {
  #v6 = installedKeyvMajor() === 6;
  #adoptedBy6 = false;

  /** Keyv 6 read `capabilities`: it adopted the store. */
  adoptedBy6(): KeyvStorageCapabilities {
    this.#v6 = true;
    this.#adoptedBy6 = true;
    return CAPABILITIES;
  }

  /** Keyv 5 (or anyone) read `opts`: Keyv 5's contract, unless Keyv 6 adopted the store. */
  adoptedBy5(): void {
    if (!this.#adoptedBy6) this.#v6 = false;
  }

  /** True once Keyv 6 adopted the store. */
  get v6(): boolean {
    return this.#v6;
  }

  /** The row id of a key Keyv passed: under Keyv 6, `namespace:key` when there is a namespace. */
  id(key: string, namespace: string | undefined): string {
    // An empty namespace is none, as Keyv 5's prefix and the store's clear() and iterator() take it.
    return this.#v6 && namespace && typeof key === 'string' ? `${namespace}:${key}` : key;
  }

  /** A row id back to the key Keyv knows (the namespace prefix removed under Keyv 6). */
  key(id: string, namespace: string | undefined): string {
    return this.#v6 && namespace ? id.slice(namespace.length + 1) : id;
  }

  /**
   * The third argument of set (or an entry's expiry) as a ttl in ms relative to `now`, as Keyv 5 passes
   * it: Keyv 6's absolute `expires` (undefined: never) converted. An `expires` at or before now is an
   * entry expired at once (a negative ttl), as Keyv 6 asks: it is not kept.
   */
  ttl(third: unknown, now: number): unknown {
    if (!this.#v6 || third === undefined || third === null) return third;
    if (typeof third !== 'number' || !Number.isFinite(third)) return third; // refused as a ttl would be, by the caller
    const ttl = third - now;
    return ttl === 0 ? -1 : ttl;
  }
}
