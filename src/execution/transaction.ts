import type { Lease } from './connections.js';
import { queryConfig, send } from './send.js';
import type { Statement } from '../sql/index.js';
import type { TransactionQuery } from './types.js';

/** What a transaction takes of the executor. */
export interface TransactionPorts {
  /** The form of a statement this table runs (Citus or not). */
  readonly form: (statement: Statement) => Statement;
  /** Counts one round trip. */
  readonly counted: () => void;
  /** Send named statements prepared (the `preparedStatements` option). */
  readonly prepare: boolean;
  /** Client-side limit of one statement's answer (ms; Infinity: none). */
  readonly answerMs: number;
}

/**
 * Runs `fn` in a transaction on the leased connection: COMMIT when it resolves, ROLLBACK when it throws.
 * A connection whose ROLLBACK fails is destroyed rather than returned to the pool in an unknown state.
 */
export async function inTransaction<T>(lease: Lease, ports: TransactionPorts, fn: (query: TransactionQuery) => Promise<T>): Promise<T> {
  const query: TransactionQuery = async <R extends object>(statement: Statement | string, values: unknown[] = [], timeoutMs = ports.answerMs) => {
    ports.counted();
    try {
      return await lease.watch(timeoutMs, send<R>(lease.client, queryConfig(typeof statement === 'string' ? statement : ports.form(statement), values, ports.prepare)));
    } catch (error) {
      throw lease.failure(typeof statement === 'string' ? statement.split(/\s/, 3).join(' ') : statement.label, error);
    }
  };
  let broken: unknown;
  try {
    await query('BEGIN');
    const result = await fn(query);
    await query('COMMIT');
    return result;
  } catch (error) {
    try {
      await lease.watch(ports.answerMs, send(lease.client, { text: 'ROLLBACK' }));
    } catch (rollbackError) {
      broken = rollbackError;
    }
    throw error;
  } finally {
    lease.release(broken);
  }
}
