import type { CounterCreate, RowWrite } from '../row.js';

/** 2^63: an int64 lies in [-2^63, 2^63). */
export const INT64_BOUND = 2n ** 63n;

/** upsertRows' parameters: the values travel as one binary bytea with offsets and lengths. */
export function rowArrays(rows: readonly RowWrite[]): unknown[] {
  const offsets: number[] = [];
  const lengths: number[] = [];
  let offset = 1; // substring() counts from 1
  for (const row of rows) {
    offsets.push(offset);
    lengths.push(row.value.length);
    offset += row.value.length;
  }
  return [
    rows.map((r) => r.id),
    Buffer.concat(rows.map((r) => r.value), offset - 1),
    rows.map((r) => r.expires),
    rows.map((r) => r.sliding),
    rows.map((r) => r.absolute),
    rows.map((r) => (r.tags === null ? null : JSON.stringify(r.tags))),
    offsets,
    lengths,
  ];
}

/**
 * The parameters of the `incr` statement adding `delta`; `highest` and `lowest` are the running totals
 * the stored value must stay in int64 with.
 */
export function incrValues(id: string, delta: bigint, create: CounterCreate, now: string, highest = delta, lowest = delta): unknown[] {
  // The stored value v may take them when MIN <= v + lowest and v + highest <= MAX: bounds on v itself,
  // computed here in int64, so that PostgreSQL compares bigints (numeric arithmetic cost it 5-10%).
  const lower = lowest < 0n ? -INT64_BOUND - lowest : -INT64_BOUND;
  const upper = highest > 0n ? INT64_BOUND - 1n - highest : INT64_BOUND - 1n;
  return [id, delta.toString(), create.expires, create.absolute, create.tags, now, lower.toString(), upper.toString()];
}
