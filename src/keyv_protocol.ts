/**
 * The two Keyv store contracts PgStore serves, and what tells them apart.
 *
 * - Keyv 5 prefixes keys with `namespace:` itself and passes a relative `ttl` (ms) to `set`/`setMany`;
 *   `deleteMany` resolves to one boolean.
 * - Keyv 6 passes keys as the user wrote them, leaving the namespace to the store, and an absolute
 *   `expires` (Unix ms); `deleteMany` resolves to one boolean per key. It uses a store as such (not
 *   through its bridge for legacy stores) when `store.capabilities.expires` is true, and it reads that
 *   property when it adopts the store: Keyv 5 never reads it. That read is what switches a store to the
 *   Keyv 6 contract ({@link KeyvProtocol.adopted}).
 *
 * Under Keyv 6 a namespaced key is stored as `namespace:key`, the row id Keyv 5 writes for it: a table
 * read by Keyv 5 and Keyv 6 applications (and by .NET and Python through the same ids) holds one entry
 * per key. Keyv 6's default namespace is none, Keyv 5's is `keyv`: give Keyv 6 `namespace: 'keyv'` to
 * read what a Keyv 5 application wrote with its default.
 */

/** How a method is called, in Keyv 6's capability report. */
interface MethodReport {
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

/** Which contract a store follows: Keyv 5's until Keyv 6 adopts it. */
export class KeyvProtocol {
  #v6 = false;

  /** Called when Keyv 6 reads `capabilities`, adopting the store. */
  adopted(): KeyvStorageCapabilities {
    this.#v6 = true;
    return CAPABILITIES;
  }

  /** True once Keyv 6 adopted the store. */
  get v6(): boolean {
    return this.#v6;
  }

  /** The row id of a key Keyv passed: under Keyv 6, `namespace:key` when there is a namespace. */
  id(key: string, namespace: string | undefined): string {
    return this.#v6 && namespace !== undefined && typeof key === 'string' ? `${namespace}:${key}` : key;
  }

  /** A row id back to the key Keyv knows (the namespace prefix removed under Keyv 6). */
  key(id: string, namespace: string | undefined): string {
    return this.#v6 && namespace !== undefined ? id.slice(namespace.length + 1) : id;
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
