/**
 * What the trigger sets (notify_trigger.ts, invalidation.ts) share: the channel of the local tiers and its
 * notices, the transition tables, and the installation, inspection and removal of a function and its triggers.
 */
import { createHash } from 'node:crypto';
import pg from 'pg';
import { keyDigestSql } from '../key_digest.js';
import { dollarQuoted, hash, type SqlContext, type Statement, type TableNames } from './statement.js';

/** The local tiers' channel, and the notice they send on it. */
export interface NotifySql {
  /** The LISTEN/NOTIFY channel of the in-process tiers of this table (an identifier). */
  readonly channel: string;
  /** pg_notify($1 channel, $2 payload). */
  readonly notify: Statement;
}

export function notifySql(ctx: SqlContext): NotifySql {
  return {
    channel: `cp_${hash(`${ctx.qualified}`)}`,
    notify: ctx.named('notify', 'SELECT pg_notify($1, $2)'),
  };
}

/** The cache table a trigger set serves: its names and its local tiers' channel. */
export type TriggerTarget = TableNames & Pick<NotifySql, 'channel'>;

/** The sender named in the notices of the table's triggers (neither a store's id nor a caller's transaction). */
export const TRIGGER_SENDER = 'table';

/** Longest key list a trigger's notice carries (what fits beside its sender in a payload); past it, "everything". */
const TRIGGER_KEYS_MAX = 7900 - TRIGGER_SENDER.length - 1;

/** Bumped when the trigger functions' text changes: an installed one of another version is replaced. */
export const TRIGGER_VERSION = 4;

/** What the triggers' notices carry for a key: its digest (key_digest.ts), never the key itself. */
export const DIGEST = keyDigestSql('id');

/**
 * The transition tables of the triggers below: the rows a statement inserted (new) and deleted (old),
 * for an UPDATE both. Named apart from anything an application calls its tables.
 */
export const NEW_ROWS = 'cache_postgres_new_rows';
export const OLD_ROWS = 'cache_postgres_old_rows';

/** plpgsql: tells the local tiers (channel `channel`) of the keys in json text variable `keys`, if any. */
export function notifyKeys(channel: string, keys: string): string {
  return `IF ${keys} IS NOT NULL THEN
    PERFORM pg_notify(${pg.escapeLiteral(channel)}, ${pg.escapeLiteral(`${TRIGGER_SENDER}\n`)} ||
      CASE WHEN octet_length(${keys}) <= ${TRIGGER_KEYS_MAX} THEN ${keys} ELSE '*' END);
  END IF;`;
}

/** A statement-level trigger for one event, with the transition tables that event has. */
function statementTrigger(name: string, event: 'INSERT' | 'UPDATE' | 'DELETE' | 'TRUNCATE', table: string, fn: string): string {
  const referencing = { INSERT: `NEW TABLE AS ${NEW_ROWS}`, UPDATE: `OLD TABLE AS ${OLD_ROWS} NEW TABLE AS ${NEW_ROWS}`, DELETE: `OLD TABLE AS ${OLD_ROWS}`, TRUNCATE: '' }[event];
  return `CREATE TRIGGER ${pg.escapeIdentifier(name)} AFTER ${event} ON ${table}${referencing ? ` REFERENCING ${referencing}` : ''} FOR EACH STATEMENT EXECUTE FUNCTION ${fn}()`;
}

export const TRIGGER_EVENTS = ['INSERT', 'UPDATE', 'DELETE', 'TRUNCATE'] as const;
/** pg_trigger.tgtype's bit of each event. */
export const TRIGGER_EVENT_BITS: Readonly<Record<(typeof TRIGGER_EVENTS)[number], number>> = { INSERT: 4, UPDATE: 16, DELETE: 8, TRUNCATE: 32 };

/** Statements of a set of triggers: installed (replacing any), inspected, dropped. */
export interface TriggerSql {
  /** Replaces the function and its triggers (run in one transaction, under the DDL lock). */
  readonly install: readonly string[];
  /** Drops the triggers and the function (IF EXISTS); with `tableGone`, only the function. */
  readonly drop: (tableGone: boolean) => readonly string[];
  /** Whether the table and function exist, the function's comment, and (type, enabled) of its triggers on the table. */
  readonly inspect: Statement;
  /** The comment `install` puts on the function: an installed one with another comment is replaced. */
  readonly comment: string;
}

export function triggerSet(
  table: string,
  fn: string,
  fnName: string,
  fnSchema: string,
  body: string,
  triggers: ReadonlyArray<readonly [(typeof TRIGGER_EVENTS)[number], string]>,
  comment: string,
  { definer, settings = '', owner }: { definer: boolean; settings?: string; owner?: string },
): TriggerSql {
  const dropTriggers = triggers.map(([, name]) => `DROP TRIGGER IF EXISTS ${pg.escapeIdentifier(name)} ON ${table}`);
  return Object.freeze({
    install: Object.freeze([
      // SECURITY DEFINER (invalidateOn): it runs as the role that installed it (the store's), so a writer with no
      // privilege on the cache table (a reporting role, psql as another user) still invalidates; it must then reach
      // no function a less trusted role could write (see invalidationSql). Every name in it is qualified, and
      // search_path is pinned, so the writer's own search_path cannot redirect it (and `settings`, for what else
      // the body's results depend on).
      `CREATE OR REPLACE FUNCTION ${fn}() RETURNS trigger LANGUAGE plpgsql ${definer ? 'SECURITY DEFINER' : 'SECURITY INVOKER'}
  SET search_path = pg_catalog, pg_temp${settings}
  AS ${dollarQuoted(body)}`,
      // Nobody attaches it to a table of theirs (a temporary one included) to run it as its owner: EXECUTE is
      // checked when a trigger is created, not when it fires, so the triggers installed here fire for every writer.
      `REVOKE ALL ON FUNCTION ${fn}() FROM PUBLIC`,
      ...(owner ? [owner] : []),
      `COMMENT ON FUNCTION ${fn}() IS ${pg.escapeLiteral(comment)}`,
      ...dropTriggers,
      ...triggers.map(([event, name]) => statementTrigger(name, event, table, fn)),
    ]),
    drop: (tableGone: boolean) => Object.freeze([...(tableGone ? [] : dropTriggers), `DROP FUNCTION IF EXISTS ${fn}()`]),
    comment,
    inspect: Object.freeze({
      name: `cp_trigger_inspect_${createHash('sha256').update(`${fnSchema}.${fnName}`).digest('hex').slice(0, 16)}`,
      label: 'trigger inspect',
      prepared: false,
      text: `SELECT to_regclass(${pg.escapeLiteral(table)}) IS NOT NULL AS table_exists, p.oid IS NOT NULL AS function_exists,
  obj_description(p.oid, 'pg_proc') AS comment,
  (SELECT json_agg(json_build_object('type', t.tgtype, 'enabled', t.tgenabled <> 'D'))
     FROM pg_trigger t WHERE t.tgfoid = p.oid AND t.tgrelid = to_regclass(${pg.escapeLiteral(table)})) AS triggers
FROM (SELECT 1) AS one LEFT JOIN pg_proc p
  ON p.proname = ${pg.escapeLiteral(fnName)} AND p.pronamespace = (SELECT oid FROM pg_namespace WHERE nspname = ${pg.escapeLiteral(fnSchema)})`,
    }),
  });
}
