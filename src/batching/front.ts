import type { RowWrite, Slide } from '../row.js';

/** A `set` on its way: the row it writes, and when it settles. */
export interface Writing {
  readonly row: RowWrite;
  readonly done: Promise<void>;
}

/**
 * A cache in front of the rows: the local tier (local/local_tier.ts) implements it. {@link Rows} asks it
 * at each step of a call, inside that call's place in issue order, so what it answers is what the table
 * answers at that point of the order: a read asks {@link Front.held} only once the writes issued before it
 * on its key have settled, and every write tells it when it settled. It knows nothing of SQL: it sends its
 * own notices and touches through the functions it was built with.
 */
export interface Front {
  /** Starts listening to the other stores' notices (until it listens, it holds nothing). */
  start(): void;
  /** Stops listening and waits for what it has asked to send. */
  close(): Promise<void>;
  /** Entries held. */
  readonly size: number;
  /** The value held for `id` as the caller wants it (text: shared string; bytes: a copy), or undefined. */
  held(id: string, text: boolean, now: number): string | Buffer | undefined;
  /** Taken when a read leaves for the table, for {@link Front.keep}. */
  stamp(): number;
  /** Keeps what a read begun at `stamp` found, unless the key was written meanwhile. */
  keep(id: string, value: Buffer | string, expiresAt: number | null, stamp: number, now: number, slide?: Slide): void;
  /** Rows were written (or may have been) by this store: dropped, and the other stores told. */
  written(ids: readonly string[] | 'all'): void;
  /** A caller's transaction `sender` wrote `ids`: dropped, and held back until its commit is heard. */
  holdBack(ids: readonly string[] | 'all', sender: string): void;
  /** A `set` of `row` was issued, settling with `done`: later reads of its key answer with its value. */
  setIssued(row: RowWrite, done: Promise<void>): void;
  /** The `set` of `id` issued last and still on its way, if any. */
  setOnItsWay(id: string): Writing | undefined;
  /** Another write of `ids` (without ids: of any key) was issued: reads after it no longer answer with an earlier `set`. */
  otherWrite(ids?: Iterable<string>): void;
  /** A `set` starts: the stamp {@link Front.setEnded} checks other stores' writes heard meanwhile against. */
  setStarting(): number;
  /** The `set` of `row` begun at `stamp` ended: landed, its value is kept (written through); failed, dropped. */
  setEnded(row: RowWrite, stamp: number, landed: boolean, value: Buffer | string, expiresAt: number, slide: Slide | undefined): void;
}
