import type { Statement } from '../sql/index.js';

/** feature_not_supported: what Citus answers a statement form it cannot run on a distributed table. */
const REFUSED = '0A000';
/** deadlock_detected and serialization_failure: the statement was rolled back and may simply run again. */
const RETRYABLE = new Set(['40P01', '40001']);

/** True for a deadlock victim or a serialization failure: rolled back as a whole, it may simply run again. */
export function retryable(code: string | undefined): boolean {
  return RETRYABLE.has(code ?? '');
}

/**
 * Which form of each statement the table runs: the common one, or its `citus` form once the table is
 * known to be distributed (see {@link Statement.citus}). Chosen in the executor, where every statement
 * passes, so no caller has to remember.
 *
 * A table can be distributed while the stores run (`create_distributed_table` on a live cache, to move it
 * to Citus without a restart): Citus then refuses some single-server forms. A refusal of a statement that
 * has a `citus` form makes the store ask the catalog once (every call refused meanwhile waits for the same
 * answer) and, when the table is distributed, switch every statement; the refused one runs again.
 */
export class Forms {
  /** True once the table is known to be distributed by Citus. */
  distributed = false;
  /** Asks the database again whether the table is distributed now. */
  #recheck: (() => Promise<boolean>) | undefined;
  #rechecking: Promise<boolean> | undefined;

  /** Sets what the schema check found, and how to ask again. */
  watch(distributed: boolean, recheck: () => Promise<boolean>): void {
    this.distributed = distributed;
    this.#recheck = recheck;
  }

  /** The form of `statement` this table runs. */
  of(statement: Statement): Statement {
    return this.distributed && statement.citus ? statement.citus : statement;
  }

  /**
   * True when a statement that failed with SQLSTATE `code` outside a transaction should run again: a
   * deadlock victim or a serialization failure (rolled back as a whole), or a form Citus refused
   * ({@link Forms.switched}).
   */
  async again(statement: Statement, sent: Statement, code: string | undefined): Promise<boolean> {
    return retryable(code) || (await this.switched(statement, sent, code));
  }

  /**
   * True when `code` is Citus refusing the single-server form of `statement` (`sent`: the form that
   * ran) because the table was distributed since the check, and the distributed forms now run: run it
   * again. A statement sent before the switch and refused after it is run again too. A recheck that
   * fails (the table distributed by another column: a SchemaError saying how to fix it) rejects.
   */
  async switched(statement: Statement, sent: Statement, code: string | undefined): Promise<boolean> {
    if (sent !== statement || !statement.citus || !this.#recheck || code !== REFUSED) return false;
    if (this.distributed) return true;
    this.#rechecking ??= this.#recheck().finally(() => {
      this.#rechecking = undefined;
    });
    if (await this.#rechecking) this.distributed = true;
    return this.distributed;
  }
}
