/**
 * Issue order per key, as a Redis client keeps it: calls on the same key from one store take effect in
 * the order they were issued, even when the caller did not await the first before issuing the second.
 *
 * A call waits only for earlier calls it conflicts with, and only while they are in flight:
 * - a read waits for the key's writes (a read issued after `set(k)` sees it);
 * - a write waits for the key's reads and writes (a read issued before `set(k)` does not see it; a
 *   `delete(k)` issued after `set(k)` deletes it);
 * - except between calls of one batcher, which keeps their order itself;
 * - a barrier (a call on keys not known in advance: a pattern, tags, `clear()`) waits for every call
 *   in flight, and every call issued while it is in flight waits for it, unless the barrier knows which
 *   keys it may touch (a pattern does) and the call's keys are none of them.
 * Reads of one key do not wait for each other, and calls on different keys never wait: calls without
 * a conflict start at once, and batching gathers them as before.
 *
 * Cost: a call that goes through a batcher and finds no conflict is tracked by that batcher (a count
 * per key, see {@link Tracker}), not here; only the rest (calls that wait, calls outside the batchers)
 * get an entry and a promise here. Nothing is held for keys without calls in flight.
 */
import { LARGE_CALL } from '../in_turns.js';

type Settled = Promise<void>;

/** What a batcher tells of the calls it holds (loaded and not settled yet), per key. */
export interface Tracker {
  /** Undefined when no call of this batcher that conflicts with a `kind` call on `key` is in flight; else when none is. */
  whenIdle(key: string, kind: 'read' | 'write'): Promise<void> | undefined;
  /** Undefined when it holds no call; else when it holds none. */
  whenEmpty(): Promise<void> | undefined;
}

/** A call in flight on a key that is tracked here (see {@link KeyOrder}). */
interface Entry {
  readonly kind: 'read' | 'write';
  readonly settled: Settled;
}

const ignore = (): void => {};

/**
 * A large call ({@link LARGE_CALL} keys or more) is tracked by one entry holding a lookup of its keys, not by an
 * entry per key: registering and settling a 100,000-key call key by key cost about 115 ms of synchronous work,
 * during which every other call of the process waited.
 */

/** A call's keys, looked up: a Set of them, or a Map by them (what the caller built anyway, not built again). */
export interface KeyLookup {
  has(id: string): boolean;
  readonly size: number;
}

/** A call on {@link LARGE_CALL} keys or more. */
interface WideEntry extends Entry {
  readonly ids: KeyLookup;
}

/** The keys a barrier may touch: true for each of them. */
export type Covers = (id: string) => boolean;

/**
 * Told by a barrier's `op` once it knows the keys it may still touch (a tag delete, once it has read which
 * rows carry the tags): from then on it holds only the calls on those keys, and the calls it was holding on
 * others go on at once.
 */
export type Narrow = (covers: Covers) => void;

/** A barrier in flight: when it settles, and the keys it may touch (undefined: any, or not known yet). */
interface Barrier {
  readonly settled: Settled;
  readonly covers: Covers | undefined;
  /** Settles when `covers` is known for good: at once for a pattern, when narrowed, or with `settled`. */
  readonly known: Settled;
}

export class KeyOrder {
  /** The calls in flight tracked here, per key, oldest first. */
  readonly #keys = new Map<string, Entry[]>();
  readonly #trackers: ReadonlyArray<readonly [string, Tracker]>;
  /** Barriers in flight, oldest first (usually none). */
  #barriers: Barrier[] = [];
  /** Calls on {@link LARGE_CALL} keys or more in flight, oldest first (usually none). */
  #wide: WideEntry[] = [];

  /** @param trackers the batchers, by the group name their calls give to {@link KeyOrder.run} */
  constructor(trackers: ReadonlyMap<string, Tracker> = new Map()) {
    this.#trackers = [...trackers];
  }

  /**
   * Runs `op` once the earlier calls on `ids` it conflicts with have settled (at once when none is in
   * flight), so that later calls wait for it as its kind says. Two calls conflict when either writes,
   * unless both go through the same batcher (`group`) and the earlier one is already in it: a batcher
   * keeps the order of its own calls (a batch's reads see the writes issued before them in it, and
   * batches on one key never overtake each other). `op` must hand the call to that batcher at once.
   * `known`: `ids` (distinct) looked up, when the caller has built that already (a wide call keeps it).
   */
  run<T>(ids: readonly string[], kind: 'read' | 'write', group: string | undefined, op: () => Promise<T>, known?: KeyLookup): Promise<T> {
    let waits: Array<Promise<void>> | undefined;
    const barriers = this.#barriers;
    for (let b = 0; b < barriers.length; b++) {
      const barrier = barriers[b]!;
      const covers = barrier.covers;
      if (covers) {
        if (ids.some(covers)) (waits ??= []).push(barrier.settled);
      } else {
        // Not narrowed (yet): held until it is, then only if it still may touch one of `ids`.
        (waits ??= []).push(barrier.known.then(() => (barrier.covers && !ids.some(barrier.covers) ? undefined : barrier.settled)));
      }
    }
    const wide = this.#wide;
    for (let w = 0; w < wide.length; w++) {
      const entry = wide[w]!;
      if ((kind === 'write' || entry.kind === 'write') && ids.some((id) => entry.ids.has(id))) (waits ??= []).push(entry.settled);
    }
    if (this.#keys.size > 0) {
      for (const id of ids) {
        const entries = this.#keys.get(id);
        if (!entries) continue;
        for (const entry of entries) if (kind === 'write' || entry.kind === 'write') (waits ??= []).push(entry.settled);
      }
    }
    // Indexed loops: this runs for every call, and allocates nothing when nothing conflicts.
    const trackers = this.#trackers;
    for (let t = 0; t < trackers.length; t++) {
      const [name, tracker] = trackers[t]!;
      if (name === group) continue;
      for (let i = 0; i < ids.length; i++) {
        const idle = tracker.whenIdle(ids[i]!, kind);
        if (idle) (waits ??= []).push(idle);
      }
    }
    // Nothing to wait for and a batcher that tracks it: nothing to do here.
    if (waits === undefined && group !== undefined) return op();
    const result = waits === undefined ? op() : Promise.all(waits).then(op);
    if (ids.length >= LARGE_CALL) {
      const settleWide = () => void (this.#wide = this.#wide.filter((other) => other !== wideEntry));
      const wideEntry: WideEntry = { kind, ids: known ?? new Set(ids), settled: result.then(settleWide, settleWide) };
      this.#wide.push(wideEntry);
      return result;
    }
    const settle = () => this.#settle(ids, entry);
    const entry: Entry = { kind, settled: result.then(settle, settle) };
    for (const id of ids) {
      const entries = this.#keys.get(id);
      if (entries) entries.push(entry);
      else this.#keys.set(id, [entry]);
    }
    return result;
  }

  /**
   * Runs `op` after every call in flight, and holds every call issued meanwhile until it settles: with
   * `covers`, only the calls on a key it covers (a pattern's matches), so a long pattern delete does not
   * stall calls on other keys. A call it lets pass cannot be affected by it: it never touches that key.
   * Without `covers`, `op` may narrow the barrier once it knows its keys (see {@link Narrow}); it must
   * then touch no other key.
   */
  barrier<T>(op: (narrow: Narrow) => Promise<T>, covers?: Covers): Promise<T> {
    const waits: Array<Promise<void>> = this.#barriers.map((barrier) => barrier.settled);
    for (const entry of this.#wide) waits.push(entry.settled);
    for (const entries of this.#keys.values()) for (const entry of entries) waits.push(entry.settled);
    for (const [, tracker] of this.#trackers) {
      const empty = tracker.whenEmpty();
      if (empty) waits.push(empty);
    }
    let decide = ignore;
    const known = covers ? Promise.resolve() : new Promise<void>((resolve) => (decide = resolve));
    const state: { covers: Covers | undefined } = { covers };
    const narrow: Narrow = (keys) => {
      if (state.covers) return;
      state.covers = keys;
      decide();
    };
    const result = waits.length === 0 ? op(narrow) : Promise.all(waits).then(() => op(narrow));
    const settled = result.then(ignore, ignore);
    void settled.then(() => decide());
    const barrier: Barrier = { settled, known, get covers() { return state.covers; } };
    this.#barriers.push(barrier);
    void barrier.settled.then(() => {
      this.#barriers = this.#barriers.filter((other) => other !== barrier);
    });
    return result;
  }

  /** Keys with calls in flight tracked here, per key or in wide calls (for tests: nothing is kept for idle keys). */
  get size(): number {
    let size = this.#keys.size;
    for (const entry of this.#wide) size += entry.ids.size;
    return size;
  }

  #settle(ids: readonly string[], entry: Entry): void {
    for (const id of ids) {
      const entries = this.#keys.get(id);
      if (!entries) continue;
      const at = entries.indexOf(entry);
      if (at >= 0) entries.splice(at, 1);
      if (entries.length === 0) this.#keys.delete(id);
    }
  }
}
