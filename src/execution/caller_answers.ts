import { show, UnreadableResultError } from '../errors.js';

/**
 * Reading what a client given to `ext.in(client)` answers. The store reads node-postgres' default answer: object
 * rows keyed by column name (or `{ rows }` of them), integers as numbers, booleans as booleans, text as strings.
 * A client that answers otherwise (rows as arrays in `rowMode: 'array'`, type parsers of its own, an adapter that
 * drops or renames columns) is refused before its first statement by a read-only check ({@link checkReadable}),
 * and every answer is checked against what its statement returns ({@link readRows}), so an odd answer is a typed
 * {@link UnreadableResultError}, never a TypeError, a wrong count or a loop that does not end.
 */

/** A column the store reads, as node-postgres gives it by default. */
export type ColumnKind =
  /** int4 (`count(*)::int`): a number, a whole one of 0 or more. */
  | 'count'
  | 'boolean'
  | 'text'
  /** text holding a decimal integer (a counter's value). */
  | 'integer text';

/** What a statement answers: the columns the store reads from it, and how many rows it returns. */
export interface RowShape {
  readonly columns: Readonly<Record<string, ColumnKind>>;
  readonly minRows: number;
  readonly maxRows: number;
  /** A check across columns, once each column is of its kind: what is wrong, or undefined. */
  readonly check?: (rows: ReadonlyArray<Record<string, unknown>>) => string | undefined;
}

/** Rows of any shape, none of whose columns are read (a write's answer, a notice's). */
export const ANY_ROWS: RowShape = { columns: {}, minRows: 0, maxRows: Number.POSITIVE_INFINITY };

/** What the statements of `ext.in(client)` answer. */
export const SHAPES = {
  get: { columns: { b64: 'text' }, minRows: 0, maxRows: 1 },
  delete: { columns: { live: 'boolean' }, minRows: 0, maxRows: 1 },
  incr: { columns: { value: 'integer text' }, minRows: 0, maxRows: 1 },
  /** A delete of `keys` distinct keys: a row per key deleted. */
  deleteMany: (keys: number): RowShape => ({ columns: { live: 'boolean' }, minRows: 0, maxRows: keys }),
} as const satisfies Record<string, RowShape | ((n: number) => RowShape)>;

/** The check made once per client before its first statement: reads nothing, writes nothing. */
export const PROBE = {
  text: "SELECT 1::int AS cp_count, true AS cp_flag, 'cp'::text AS cp_text",
  shape: { columns: { cp_count: 'count', cp_flag: 'boolean', cp_text: 'text' }, minRows: 1, maxRows: 1 } satisfies RowShape,
  row: { cp_count: 1, cp_flag: true, cp_text: 'cp' },
} as const;

/** What the store reads, and from which clients: every message about a caller's answer ends with it. */
const READABLE =
  'ext.in() reads clients whose query(text, values) resolves to object rows keyed by column name, or to { rows } of them, as node-postgres returns by default: ' +
  "integers as numbers, booleans as booleans, text as strings (not rowMode: 'array', nor type parsers of your own for int4, bool or text).";

/**
 * The rows of `result` (an array of rows, or `{ rows }`) if they have `shape`, else what is wrong with them,
 * e.g. `row 0's "selected" is the string "1", not a number`.
 */
export function readRows(result: unknown, shape: RowShape = ANY_ROWS): { rows: Array<Record<string, unknown>> } | { problem: string } {
  const found = Array.isArray(result) ? result : (result as { rows?: unknown } | null | undefined)?.rows;
  if (!Array.isArray(found)) return { problem: `the answer is ${brief(result)}, not rows` };
  const rows = found as unknown[];
  if (rows.length < shape.minRows || rows.length > shape.maxRows) {
    const expected = shape.minRows === shape.maxRows ? `${shape.minRows}` : shape.minRows === 0 ? `at most ${shape.maxRows}` : `${shape.minRows} to ${shape.maxRows}`;
    return { problem: `${rows.length} rows came back, where it returns ${expected}` };
  }
  const names = Object.keys(shape.columns);
  if (names.length === 0) return { rows: rows as Array<Record<string, unknown>> };
  for (let i = 0; i < rows.length; i++) {
    const row = rows[i];
    if (Array.isArray(row)) return { problem: `rows came as arrays (row ${i} is ${brief(row)}), not objects keyed by column name: is the client in rowMode: 'array'?` };
    if (typeof row !== 'object' || row === null) return { problem: `row ${i} is ${brief(row)}, not an object keyed by column name` };
    for (const name of names) {
      const value = (row as Record<string, unknown>)[name];
      if (value === undefined && !(name in row)) return { problem: `no column "${name}" in row ${i} (it has ${brief(Object.keys(row))})` };
      const wrong = kindProblem(shape.columns[name]!, value);
      if (wrong) return { problem: `row ${i}'s "${name}" is ${wrong}` };
    }
  }
  const crossed = shape.check?.(rows as Array<Record<string, unknown>>);
  return crossed ? { problem: crossed } : { rows: rows as Array<Record<string, unknown>> };
}

/**
 * The rows of a caller client's answer to `statement`, checked against `shape`.
 * @throws {UnreadableResultError} saying what was wrong and what is read, and that the statement ran
 */
export function callerRows<R>(result: unknown, statement: string, shape: RowShape | undefined): R[] {
  const read = readRows(result, shape);
  if ('rows' in read) return read.rows as R[];
  throw new UnreadableResultError(
    statement,
    true,
    `The client given to ext.in() answered "${statement}" in a form the store cannot read: ${read.problem}. ${READABLE} The statement ran in your transaction before its answer was read: ` +
      'roll back (the transaction, or to a savepoint taken before this call) rather than commit.',
  );
}

/** Clients whose answer to {@link PROBE} was read: they are not checked again. */
const readable = new WeakSet<object>();
/** Checks under way, shared by the calls that come meanwhile. */
const checking = new WeakMap<object, Promise<void>>();

/**
 * Undefined when `client` is known to answer readably; else a promise that settles once {@link PROBE}, sent with
 * `send`, has been answered: resolved when readable (remembered for this client object: a pooled client pays
 * this once per connection), rejected with {@link UnreadableResultError} (`ran: false`, nothing written) when not,
 * or with `send`'s error (then nothing is remembered, and the next call checks again).
 */
export function checkReadable(client: object, send: () => Promise<unknown>): Promise<void> | undefined {
  if (readable.has(client)) return undefined;
  let pending = checking.get(client);
  if (!pending) {
    pending = send().then((result) => {
      const read = readRows(result, PROBE.shape);
      const row = 'rows' in read ? read.rows[0]! : undefined;
      const problem =
        'problem' in read
          ? read.problem
          : Object.entries(PROBE.row).some(([name, value]) => row![name] !== value)
            ? `${brief(row)}, where PostgreSQL sent ${show(PROBE.row)}`
            : undefined;
      if (problem) {
        throw new UnreadableResultError(
          'probe',
          false,
          `The client given to ext.in() answered the check sent before its first statement (${PROBE.text}) in a form the store cannot read: ${problem}. ${READABLE} ` +
            'Nothing was written: the store refuses such a client before sending it anything else.',
        );
      }
      readable.add(client);
    });
    const settled = pending;
    const forget = () => {
      if (checking.get(client) === settled) checking.delete(client);
    };
    settled.then(forget, forget);
    checking.set(client, settled);
  }
  return pending;
}

function kindProblem(kind: ColumnKind, value: unknown): string | undefined {
  switch (kind) {
    case 'count':
      if (typeof value !== 'number') return `${described(value)}, not a number`;
      return Number.isSafeInteger(value) && value >= 0 ? undefined : `${String(value)}, not a whole number of 0 or more`;
    case 'boolean':
      return typeof value === 'boolean' ? undefined : `${described(value)}, not a boolean`;
    case 'text':
      return typeof value === 'string' ? undefined : `${described(value)}, not a string`;
    case 'integer text':
      if (typeof value !== 'string') return `${described(value)}, not a string`;
      return /^\s*[-+]?\d+\s*$/.test(value) ? undefined : `${brief(value)}, not a decimal integer`;
  }
}

function described(value: unknown): string {
  if (value === null || value === undefined) return String(value);
  if (Array.isArray(value)) return `an array (${brief(value)})`;
  if (typeof value === 'number') return `the number ${String(value)}`;
  if (typeof value === 'object') return `an object (${brief(value)})`;
  return `the ${typeof value} ${brief(value)}`;
}

/** A value as a message shows it, cut to 100 characters (an answer can hold a whole cached value). */
function brief(value: unknown): string {
  const text = show(value);
  return text.length > 100 ? `${text.slice(0, 100)}…` : text;
}
