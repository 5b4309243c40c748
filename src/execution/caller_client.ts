import type { RunStatement } from './batch_delete.js';
import { callerRows, checkReadable, PROBE, type RowShape } from './caller_answers.js';
import { queryError } from '../errors.js';
import type { Statement } from '../sql/index.js';
import { noteStatement } from '../tracing.js';
import type { CallerClient, Gate } from './types.js';

/** What a caller's connection takes of the executor: its gate, the statement form the table runs, its round-trip count. */
export interface CallerClientPorts {
  readonly gate: Gate;
  /** The form of a statement this table runs (Citus or not). */
  readonly form: (statement: Statement) => Statement;
  /** Counts one round trip. */
  readonly counted: () => void;
  /** `schema.table`, named in errors. */
  readonly table: string;
}

/**
 * Statements on a connection the application holds (see Executor.onClient): gate, readability probe (once per
 * client object), the statement unnamed, its failure typed, its answer checked against `shape`.
 */
export function onCallerClient(client: CallerClient, ports: CallerClientPorts): RunStatement {
  const sendOne = async (label: string, text: string, values: unknown[]): Promise<unknown> => {
    ports.counted();
    try {
      return await client.query(text, values);
    } catch (error) {
      throw queryError(label, ports.table, error);
    }
  };
  return async <R extends object>(statement: Statement, values: unknown[], shape?: RowShape): Promise<R[]> => {
    const opening = ports.gate(statement.label);
    if (opening) await opening;
    const checked = checkReadable(client, () => sendOne('probe', PROBE.text, []));
    if (checked) await checked;
    noteStatement(statement.label);
    const result = await sendOne(statement.label, ports.form(statement).text, values);
    // An array of rows, or node-postgres' `{ rows }`, of `shape`; else UnreadableResultError (the statement ran).
    return callerRows<R>(result, statement.label, shape);
  };
}
