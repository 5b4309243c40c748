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
  if (typeof statement === 'string') return { text: statement, values };
  noteStatement(statement.label);
  return prepare && statement.prepared ? { name: statement.name, text: statement.text, values } : { text: statement.text, values };
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
