import type pg from 'pg';
import { parseDuration } from '../duration.js';
import { InvalidOptionError, show } from '../errors.js';
import { MAX_KEY_LENGTH } from '../keys.js';

/**
 * The options of @keyv/postgres that PgStore spells differently, as that store takes them: a project
 * that swaps `new KeyvPostgres(options)` for `new PgStore(options)` changes nothing else.
 *
 * - `useUnloggedTable`: true is PgStore's default (UNLOGGED); false is `useWal: true`.
 * - `keySize`: keys are varchar(449), the column .NET and Python share; a size up to that is accepted
 *   (longer keys than it are then still refused per call), a larger one is an error.
 * - `dialect`: 'postgres' only.
 * - `max`: `poolMax`; `connectionTimeoutMillis`: `connectTimeout`; `statement_timeout`: `statementTimeout`.
 * - every other pg.PoolConfig field (`ssl`, `host`, `user`, `idleTimeoutMillis`, ...): into `poolConfig`.
 */
/** The pg.PoolConfig fields @keyv/postgres accepts beside its own options (they go into `poolConfig`). */
type PoolField =
  | 'ssl' | 'host' | 'port' | 'user' | 'password' | 'database' | 'idleTimeoutMillis' | 'keepAlive' | 'keepAliveInitialDelayMillis'
  | 'application_name' | 'fallback_application_name' | 'min' | 'allowExitOnIdle' | 'maxUses' | 'maxLifetimeSeconds' | 'options' | 'types'
  | 'query_timeout' | 'lock_timeout' | 'idle_in_transaction_session_timeout' | 'client_encoding' | 'log' | 'stream' | 'enableChannelBinding'
  | 'connectionTimeoutMillis' | 'statement_timeout';

export interface KeyvPostgresOptions extends Pick<pg.PoolConfig, Extract<keyof pg.PoolConfig, PoolField>> {
  /** @keyv/postgres's name: true (UNLOGGED) is PgStore's default; false creates a WAL-logged table, as `useWal: true`. */
  useUnloggedTable?: boolean | undefined;
  /** @keyv/postgres's key column size: accepted up to 449 (PgStore's keys are varchar(449), the shared column). */
  keySize?: number | undefined;
  /** @keyv/postgres's `dialect`: only 'postgres'. */
  dialect?: 'postgres' | undefined;
  /** @keyv/postgres passes pg.PoolConfig fields to its pool: PgStore reads `max` as `poolMax`. */
  max?: number | undefined;
}

/** pg.PoolConfig (and pg.ClientConfig) fields @keyv/postgres passes to its pool, that go into `poolConfig` here. */
const POOL_FIELDS = new Set([
  'ssl', 'host', 'port', 'user', 'password', 'database', 'idleTimeoutMillis', 'keepAlive', 'keepAliveInitialDelayMillis', 'application_name',
  'fallback_application_name', 'min', 'allowExitOnIdle', 'maxUses', 'maxLifetimeSeconds', 'options', 'types', 'query_timeout', 'lock_timeout',
  'idle_in_transaction_session_timeout', 'client_encoding', 'log', 'stream', 'enableChannelBinding',
]);

/** The names this module translates (for the list of known options). */
export const KEYV_POSTGRES_NAMES: readonly string[] = ['useUnloggedTable', 'keySize', 'dialect', 'max', 'connectionTimeoutMillis', 'statement_timeout', ...POOL_FIELDS];

/** What {@link fromKeyvPostgres} returns: the options in PgStore's names, and which of them the caller wrote otherwise. */
export interface Translated<T> {
  readonly options: T;
  /** PgStore's name -> the @keyv/postgres name the caller wrote, so an error names what was written. */
  readonly writtenAs: Readonly<Record<string, string>>;
}

/**
 * `raw` with @keyv/postgres's names turned into PgStore's; the object itself when it has none.
 * @throws {InvalidOptionError} for a value PgStore cannot honour, or a name given both ways with different values
 */
export function fromKeyvPostgres<T extends Record<string, unknown>>(raw: T): Translated<T> {
  if (!Object.keys(raw).some((name) => KEYV_POSTGRES_NAMES.includes(name))) return { options: raw, writtenAs: {} };
  const out: Record<string, unknown> = { ...raw };
  const writtenAs: Record<string, string> = {};
  const poolConfig: Record<string, unknown> = { ...((raw.poolConfig as Record<string, unknown> | undefined) ?? {}) };
  const rename = (from: string, to: string) => {
    if (out[from] === undefined) return void delete out[from];
    if (out[to] !== undefined && !same(out[from], out[to])) {
      throw new InvalidOptionError(from, `contradicts ${to} (${show(out[from])} against ${show(out[to])}): give it once.`);
    }
    out[to] = out[from];
    writtenAs[to] = from;
    delete out[from];
  };
  if (raw.useUnloggedTable !== undefined) {
    if (typeof raw.useUnloggedTable !== 'boolean') throw new InvalidOptionError('useUnloggedTable', `expected true or false, got ${show(raw.useUnloggedTable)}.`);
    if (typeof raw.useWal === 'boolean' && raw.useWal === raw.useUnloggedTable) {
      throw new InvalidOptionError('useUnloggedTable', `contradicts useWal (${show(raw.useUnloggedTable)} and ${show(raw.useWal)}): give one of them.`);
    }
    // A useWal that is not a boolean is left for its own check to refuse.
    if (raw.useWal === undefined) out.useWal = !raw.useUnloggedTable;
  }
  delete out.useUnloggedTable;
  if (raw.keySize !== undefined) {
    const size = raw.keySize;
    if (typeof size !== 'number' || !Number.isSafeInteger(size) || size < 1 || size > MAX_KEY_LENGTH) {
      throw new InvalidOptionError(
        'keySize',
        `PgStore keys are varchar(${MAX_KEY_LENGTH}), the column .NET and Python share: a keySize from 1 to ${MAX_KEY_LENGTH} is accepted, got ${show(size)}.`,
      );
    }
  }
  delete out.keySize;
  if (raw.dialect !== undefined && raw.dialect !== 'postgres') {
    throw new InvalidOptionError('dialect', `only 'postgres' (PgStore always tells Keyv it is 'postgres'), got ${show(raw.dialect)}.`);
  }
  delete out.dialect;
  rename('max', 'poolMax');
  rename('connectionTimeoutMillis', 'connectTimeout');
  rename('statement_timeout', 'statementTimeout');
  let moved = false;
  for (const name of POOL_FIELDS) {
    if (!(name in raw)) continue;
    delete out[name];
    if (raw[name] === undefined) continue;
    if (poolConfig[name] !== undefined && !same(poolConfig[name], raw[name])) {
      throw new InvalidOptionError(name, `contradicts poolConfig.${name}: give it once.`);
    }
    poolConfig[name] = raw[name];
    moved = true;
  }
  if (moved) {
    if (raw.pool !== undefined) {
      const name = [...POOL_FIELDS].find((field) => raw[field] !== undefined)!;
      throw new InvalidOptionError(name, 'cannot be combined with "pool": the pool given is already configured.');
    }
    out.poolConfig = poolConfig;
  }
  return { options: out as T, writtenAs };
}

/** The same setting written twice: equal values, durations in any spelling ('5s' and 5000), objects by content. */
function same(a: unknown, b: unknown): boolean {
  if (a === b) return true;
  if ((typeof a === 'number' || typeof a === 'string') && (typeof b === 'number' || typeof b === 'string')) {
    try {
      return parseDuration(a, 'duration') === parseDuration(b, 'duration');
    } catch {
      return false;
    }
  }
  try {
    return JSON.stringify(a) === JSON.stringify(b);
  } catch {
    return false;
  }
}
