import { EventEmitter } from 'node:events';
import { validateKey, validateNamespace } from '../keys.js';
import type { PgStoreEvents } from '../observer.js';
import { type KeyvStorageCapabilities, KeyvProtocol } from './keyv_protocol.js';

/** What Keyv reads from a store's `opts`: `dialect: 'postgres'` is what makes Keyv 5 wire `keyv.iterator`. */
export interface PgStoreKeyvOptions {
  dialect: 'postgres';
  /** A description of the target without credentials (Keyv only tests it for a dialect name). */
  url: string;
  schema: string;
  table: string;
  [key: string]: unknown;
}

// Set by KeyvAdapter's static block (declared first: it runs when the class is defined).
let contractOf: (store: KeyvAdapter) => KeyvProtocol;
let namespaceOf: (store: KeyvAdapter) => string | undefined;

/**
 * What makes a store a Keyv store, whichever Keyv adopts it: the `opts` Keyv 5 reads, the `capabilities` Keyv 6
 * reads, the namespace Keyv assigns, and the row id each key Keyv passes stands for (keyv_protocol.ts). PgStore
 * is the store; this is the part of it that speaks Keyv. PgStore's methods reach its state through the functions
 * below, not through members a subclass could replace.
 */
export abstract class KeyvAdapter extends EventEmitter<PgStoreEvents> {
  #opts: PgStoreKeyvOptions;
  #namespace: string | undefined;
  /** Which Keyv's contract the store follows: the Keyv that adopts it decides (keyv_protocol.ts). */
  readonly #keyv = new KeyvProtocol();

  protected constructor(opts: PgStoreKeyvOptions) {
    super();
    this.#opts = opts;
  }

  /**
   * What Keyv 6 reads when it adopts a store: this store takes an absolute `expires` and scopes keys by
   * its namespace itself (Keyv 6 no longer prefixes them). Reading it switches the store to Keyv 6's
   * contract: keys then arrive bare and are stored as `namespace:key`, the row Keyv 5 writes for them
   * (see keyv_protocol.ts). Keyv 5 never reads it.
   */
  get capabilities(): KeyvStorageCapabilities {
    return this.#keyv.adoptedBy6();
  }

  /**
   * Read by Keyv 5 (`dialect: 'postgres'` is what makes it wire `keyv.iterator`), which reads it when it
   * adopts a store: the store then follows Keyv 5's contract, unless Keyv 6 adopted it (see
   * {@link KeyvAdapter.capabilities}). Writable: Keyv and its test suite assign it.
   */
  get opts(): PgStoreKeyvOptions {
    this.#keyv.adoptedBy5();
    return this.#opts;
  }

  set opts(value: PgStoreKeyvOptions) {
    this.#opts = value;
  }

  /** Set by Keyv: keys arrive as `namespace:key` (Keyv 5) or bare (Keyv 6), and `clear()` removes only this namespace. */
  get namespace(): string | undefined {
    return this.#namespace;
  }

  /**
   * Keyv assigns it in its constructor and on `keyv.namespace = x`. A namespace that cannot be stored
   * faithfully (a lone surrogate, NUL, not a string) throws {@link InvalidValueError} at once, so
   * `new Keyv({ store, namespace })` fails at construction. It is kept all the same, and `clear()` and
   * Keyv's `iterator()` refuse it until a valid one is assigned: Keyv's setter has already taken the new
   * namespace when the store refuses it, and a store left on the previous one would then clear a namespace
   * this Keyv no longer names (and an unnamespaced store the whole table).
   * @throws {InvalidValueError} for a lone surrogate, NUL, or a value that is not a string
   */
  set namespace(namespace: string | undefined) {
    this.#namespace = namespace;
    validateNamespace(namespace);
  }

  static {
    // Module-private access for PgStore's methods: nothing on the store (nor a subclass) can reach or replace it.
    contractOf = (store) => store.#keyv;
    namespaceOf = (store) => store.#namespace;
  }
}

/** The contract of the Keyv that adopted `store`: ttl or absolute expires, bare or namespaced keys. */
export function keyvContract(store: KeyvAdapter): KeyvProtocol {
  return contractOf(store);
}

/** The namespace Keyv assigned to `store` (as stored, whatever a subclass's accessor says). */
export function keyvNamespace(store: KeyvAdapter): string | undefined {
  return namespaceOf(store);
}

/** The row id of a key Keyv passed to `store` (see keyv_protocol.ts), checked before anything runs. */
export function rowId(store: KeyvAdapter, key: string): string {
  const id = contractOf(store).id(key, namespaceOf(store));
  validateKey(id);
  return id;
}

/** {@link rowId} of each key, all checked before anything runs. */
export function rowIds(store: KeyvAdapter, keys: string[]): string[] {
  return keys.map((key) => rowId(store, key));
}
