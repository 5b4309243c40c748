import pg from 'pg';
import type { Statement } from '../sql/index.js';
import { noteStatement } from '../tracing.js';

/** What {@link send} sends: node-postgres prepares a statement once per connection when it has a name; plain text runs unprepared. */
export interface Sendable {
  readonly text: string;
  readonly values?: unknown[];
  readonly name?: string;
}

/**
 * What node-postgres is handed for `statement`. Every statement sent on the store's connections passes here, in
 * the context of the call (or batch) that sends it: the call's span learns the statement's label (tracing.ts).
 */
export function queryConfig(statement: Statement | string, values: unknown[], prepare: boolean): Sendable {
  values = withArrayLiterals(values);
  if (typeof statement === 'string') return { text: statement, values };
  noteStatement(statement.label);
  return prepare && statement.prepared ? { name: statement.name, text: statement.text, values } : { text: statement.text, values };
}

/**
 * An escape JSON wrote that an array literal would read another way: any but `\"` and `\\` (a control
 * character as `\n` or `\u0001`, a lone surrogate as `\ud800`). The backslash starts a run of them or
 * follows an even number (the pairs are escaped backslashes).
 */
const OTHER_ESCAPE = /(?<!\\)(?:\\\\)*\\[bfnrtu]/;

/**
 * `values` with each array of strings, finite numbers, booleans and nulls written as PostgreSQL's array
 * literal, what node-postgres would send for it, by `JSON.stringify`: the same text (quoted elements, `\"`
 * and `\\` escaped, unquoted numbers, `null` read as NULL) made natively, where node-postgres escapes
 * element by element. A 100,000-key call's ids took it about 40 ms of synchronous work. An array JSON would
 * write another way (a control character or lone surrogate, which JSON escapes as the literal would not,
 * anything but those types) is left for node-postgres as it was.
 */
export function withArrayLiterals(values: unknown[]): unknown[] {
  let encoded: unknown[] | undefined;
  for (let i = 0; i < values.length; i++) {
    const value = values[i];
    if (!Array.isArray(value)) continue;
    const literal = arrayLiteral(value);
    if (literal !== undefined) (encoded ??= values.slice())[i] = literal;
  }
  return encoded ?? values;
}

function arrayLiteral(array: readonly unknown[]): string | undefined {
  for (let i = 0; i < array.length; i++) {
    const element = array[i];
    const type = typeof element;
    if (element !== null && type !== 'string' && type !== 'boolean' && !(type === 'number' && Number.isFinite(element))) return undefined;
  }
  const json = JSON.stringify(array);
  if (json.includes('\\') && OTHER_ESCAPE.test(json)) return undefined;
  return `{${json.slice(1, -1)}}`;
}

/**
 * Sends one statement on `client` and resolves with its rows. It hands node-postgres a `pg.Query`
 * built from the text, which it runs as is: `client.query(config)` would copy the config object
 * (property descriptors and all) and wrap the answer in two promises of its own, a measurable share
 * of the CPU a batched call costs.
 */
export function send<R = unknown>(client: pg.ClientBase, config: Sendable): Promise<R[]> {
  return new Promise<R[]>((resolve, reject) => {
    const query = new pg.Query(config.text, config.values, (error: Error | undefined, result: { rows: unknown[] }) =>
      error ? reject(error) : resolve(result.rows as R[]),
    );
    if (config.name !== undefined) (query as { name?: string }).name = config.name;
    client.query(query);
  });
}
