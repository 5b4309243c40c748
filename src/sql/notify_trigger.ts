import pg from 'pg';
import { derivedName } from './statement.js';
import { DIGEST, NEW_ROWS, notifyKeys, OLD_ROWS, TRIGGER_EVENTS, TRIGGER_SENDER, TRIGGER_VERSION, type TriggerSql, type TriggerTarget, triggerSet } from './triggers.js';

/**
 * `localCache.notifyTrigger`: statement-level triggers on the cache table that notify the local tiers of
 * every key whose entry changed, whoever changed it. What is not a change for a tier is left out: an
 * UPDATE that only moves a row's expiry later (a read sliding it), and the deletion of rows already
 * expired (the expiry scan). A TRUNCATE, or more keys than a notice holds, tells them "everything".
 */
export function notifyTriggerSql(sql: TriggerTarget): TriggerSql {
  const fnName = derivedName(sql.table, 'notify');
  const fn = `${pg.escapeIdentifier(sql.schema)}.${pg.escapeIdentifier(fnName)}`;
  const body = `DECLARE
  keys text;
BEGIN
  IF TG_OP = 'TRUNCATE' THEN
    PERFORM pg_notify(${pg.escapeLiteral(sql.channel)}, ${pg.escapeLiteral(`${TRIGGER_SENDER}\n*`)});
    RETURN NULL;
  ELSIF TG_OP = 'INSERT' THEN
    SELECT json_agg(${DIGEST})::text INTO keys FROM ${NEW_ROWS};
  ELSIF TG_OP = 'DELETE' THEN
    SELECT json_agg(${DIGEST})::text INTO keys FROM ${OLD_ROWS} WHERE expiresattime >= now();
  ELSE
    SELECT json_agg(${DIGEST})::text INTO keys FROM (
      SELECT n.id FROM ${NEW_ROWS} n LEFT JOIN ${OLD_ROWS} o ON o.id = n.id
      WHERE o.id IS NULL OR n.expiresattime < o.expiresattime OR o.value IS DISTINCT FROM n.value
        OR o.tags IS DISTINCT FROM n.tags OR o.slidingexpirationinseconds IS DISTINCT FROM n.slidingexpirationinseconds
        OR o.absoluteexpiration IS DISTINCT FROM n.absoluteexpiration
      UNION
      SELECT o.id FROM ${OLD_ROWS} o LEFT JOIN ${NEW_ROWS} n ON n.id = o.id WHERE n.id IS NULL
    ) AS changed;
  END IF;
  ${notifyKeys(sql.channel, 'keys')}
  RETURN NULL;
END`;
  const triggers = TRIGGER_EVENTS.map((event) => [event, derivedName(sql.table, `notify_${event.toLowerCase().slice(0, 5)}`)] as const);
  // SECURITY INVOKER: it reads only the transition tables and calls pg_notify, which need no privilege, so it
  // runs as each writer (who can write the cache table, or it would not fire) and never as its installer.
  return triggerSet(sql.qualified, fn, fnName, sql.schema, body, triggers, `cache-postgres notify trigger of ${sql.display} (v${TRIGGER_VERSION})`, { definer: false });
}
