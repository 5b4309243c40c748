import { createHash } from 'node:crypto';
import pg from 'pg';
import { derivedName, dollarQuoted, escapeLikeText, qualifiedName } from './statement.js';
import { DIGEST, NEW_ROWS, notifyKeys, OLD_ROWS, TRIGGER_EVENTS, TRIGGER_VERSION, type TriggerSql, type TriggerTarget, triggerSet } from './triggers.js';

/** An `invalidateOn` spec, checked: the application table, and each tag as literal text and column parts. */
export interface InvalidationSpec {
  readonly schema: string;
  readonly table: string;
  /** Each tag template as parts: a string is literal text, `{ column }` a column's value as text. */
  readonly tags: ReadonlyArray<ReadonlyArray<string | { readonly column: string }>>;
  /** The templates as given (kept in the function's comment, for `invalidations()`). */
  readonly templates: readonly string[];
  /**
   * Columns whose text a cast to text wrote otherwise than their type's output function (boolean: `true`
   * not `t`; character(n): without its padding; inet: always with its mask), rendered as the cast did,
   * from the output's text: tags stay those the former `(column)::text` rendered.
   */
  readonly castText?: ReadonlyMap<string, CastText>;
}

/** The built-in types whose cast to text differs from their output function (see InvalidationSpec.castText). */
export type CastText = 'boolean' | 'character' | 'inet';

/**
 * Every setting that changes how a value of a built-in type is written as text, pinned on the invalidation
 * functions so that every writer renders one tag whatever its session says: timestamps and dates (TimeZone,
 * DateStyle), intervals (IntervalStyle), floats and the geometric types made of them (extra_float_digits),
 * bytea (bytea_output) and money (lc_monetary). Types whose text depends on anything else (the catalog, for
 * the reg* types; an extension's own output function) are refused by invalidateOn (see renderableColumns).
 */
export const RENDER_SETTINGS: ReadonlyArray<readonly [string, string]> = [
  ['TimeZone', 'UTC'],
  ['DateStyle', 'ISO, MDY'],
  ['IntervalStyle', 'postgres'],
  ['extra_float_digits', '1'],
  ['bytea_output', 'hex'],
  ['lc_monetary', 'C'],
];

/** The comment that marks an invalidation function (followed by its JSON description). */
export const INVALIDATION_MARK = 'cache-postgres invalidation ';

/**
 * `invalidateOn`: statement-level triggers on an application table that delete, in the writing
 * transaction, the cache entries carrying the tags its inserted, updated (old and new) and deleted rows
 * render, in one DELETE per statement, and tell the local tiers which keys went. A TRUNCATE deletes the
 * entries with a tag any template could render (its literal prefix). Every name and text a caller gave
 * is quoted here (escapeIdentifier, escapeLiteral).
 */
export function invalidationSql(sql: TriggerTarget, spec: InvalidationSpec): TriggerSql {
  const fnName = derivedName(sql.table, `inv_${createHash('sha256').update(JSON.stringify([sql.schema, sql.table, spec.schema, spec.table])).digest('hex').slice(0, 12)}`);
  const fn = `${pg.escapeIdentifier(sql.schema)}.${pg.escapeIdentifier(fnName)}`;
  // A column's text through its type's output function (format's %s), never a cast: a cast to text may be any
  // function its type's owner wrote (CREATE CAST ... WITH FUNCTION), which this SECURITY DEFINER body would run
  // as its installer. An output function is C, which only a superuser (or an extension's script) can create.
  // NULL renders no tag (format would give '').
  // The text of the few built-in types whose cast to text writes otherwise is made from the output's, in text.
  const asCast: Record<CastText, (out: string) => string> = {
    boolean: (out) => `CASE ${out} WHEN 't' THEN 'true' ELSE 'false' END`,
    character: (out) => `rtrim(${out}, ' ')`,
    inet: (out) => `(SELECT CASE WHEN strpos(o.s, '/') > 0 THEN o.s WHEN strpos(o.s, ':') > 0 THEN o.s || '/128' ELSE o.s || '/32' END FROM (SELECT ${out} AS s) AS o)`,
  };
  const columnText = (name: string) => {
    const column = pg.escapeIdentifier(name);
    const out = `format('%s', r.${column})`;
    const cast = spec.castText?.get(name);
    return `CASE WHEN r.${column} IS NULL THEN NULL ELSE ${cast ? asCast[cast](out) : out} END`;
  };
  const rendered = spec.tags.map((parts) =>
    parts.length === 0 ? "''" : parts.map((part) => (typeof part === 'string' ? pg.escapeLiteral(part) : columnText(part.column))).join(' || '),
  );
  const columns = [...new Set(spec.tags.flatMap((parts) => parts.flatMap((part) => (typeof part === 'string' ? [] : [pg.escapeIdentifier(part.column)]))))];
  const only = (rows: string) => `(SELECT ${columns.length ? columns.join(', ') : '1'} FROM ${rows})`;
  // Tags compared byte for byte (COLLATE "C"): a column's nondeterministic collation must not merge two tags.
  const tagsOf = (rows: string) => `SELECT array_agg(DISTINCT tag COLLATE "C") INTO wanted FROM (SELECT unnest(ARRAY[${rendered.join(', ')}]::text[]) AS tag FROM ${rows} AS r) AS t WHERE tag IS NOT NULL;`;
  const prefixes = spec.tags.map((parts) => {
    const literal: string[] = [];
    for (const part of parts) {
      if (typeof part !== 'string') return { prefix: literal.join(''), exact: false };
      literal.push(part);
    }
    return { prefix: literal.join(''), exact: true };
  });
  const exact = prefixes.filter((p) => p.exact).map((p) => pg.escapeLiteral(p.prefix));
  const like = prefixes.filter((p) => !p.exact).map((p) => `g LIKE ${pg.escapeLiteral(`${escapeLikeText(p.prefix)}%`)}`);
  // Victims are locked in key order (FOR UPDATE after ORDER BY), one order every deleter shares: two writers
  // whose tags reach the same entries in different tag orders cannot deadlock on them.
  const deleteOrdered = (from: string, where: string) => `WITH victims AS (
      SELECT c.id FROM ${sql.qualified} AS c${from} WHERE ${where} ORDER BY c.id COLLATE "C" FOR UPDATE OF c
    ), gone AS (
      DELETE FROM ${sql.qualified} AS c WHERE c.id IN (SELECT id FROM victims) RETURNING c.id
    )
    SELECT json_agg(${DIGEST})::text INTO keys FROM gone;`;
  const truncated = [
    ...(exact.length ? [`c.tags && ARRAY[${exact.join(', ')}]::text[]`] : []),
    ...(like.length ? [`EXISTS (SELECT 1 FROM unnest(c.tags) AS g WHERE ${like.join(' OR ')})`] : []),
  ].join(' OR ');
  const body = `DECLARE
  wanted text[];
  keys text;
BEGIN
  IF TG_OP = 'TRUNCATE' THEN
    ${deleteOrdered('', truncated)}
  ELSE
    IF TG_OP = 'INSERT' THEN
      ${tagsOf(only(NEW_ROWS))}
    ELSIF TG_OP = 'DELETE' THEN
      ${tagsOf(only(OLD_ROWS))}
    ELSE
      ${tagsOf(`(${only(NEW_ROWS).slice(1, -1)} UNION ALL ${only(OLD_ROWS).slice(1, -1)})`)}
    END IF;
    IF wanted IS NULL THEN
      RETURN NULL;
    END IF;
    -- One GIN probe per tag: a single \`tags && wanted\` probe with thousands of tags costs quadratic time in the
    -- GIN scan (measured: 630 ms against 40 ms for a 10,000-row UPDATE's tags).
    ${deleteOrdered(', unnest(wanted) AS w(tag)', 'c.tags @> ARRAY[w.tag]')}
  END IF;
  ${notifyKeys(sql.channel, 'keys')}
  RETURN NULL;
END`;
  const table = qualifiedName(spec.schema, spec.table);
  const triggers = TRIGGER_EVENTS.map((event) => [event, derivedName(fnName, event.toLowerCase().slice(0, 5))] as const);
  const comment = `${INVALIDATION_MARK}${JSON.stringify({ v: TRIGGER_VERSION, cache: sql.display, schema: spec.schema, table: spec.table, tags: spec.templates })}`;
  // The settings a column's text depends on, pinned so that every writer renders the same tag. Only here: each
  // SET costs every call, and the notify trigger renders ids only.
  const settings = RENDER_SETTINGS.map(([name, value]) => ` SET ${pg.escapeIdentifier(name)} = ${pg.escapeLiteral(value)}`).join('');
  // Owned by the cache table's owner: the DELETE above fires the cache table's own triggers, rules and policies,
  // which that owner (or a role it let) controls; run as anyone else (a superuser who installed it), they would
  // run that role's code as the installer. As its owner, they run as themselves. (A no-op when the owner installs.)
  // An installer that cannot act as that owner (not a member of its role) keeps the function: it then runs that
  // table's triggers as itself, which docs/security.md says to avoid by installing as the owner.
  const owner = `DO ${dollarQuoted(`DECLARE
  owner name := (SELECT pg_get_userbyid(relowner) FROM pg_class WHERE oid = ${pg.escapeLiteral(sql.qualified)}::regclass);
BEGIN
  IF owner <> current_user AND pg_has_role(current_user, owner, 'MEMBER') THEN
    EXECUTE format('ALTER FUNCTION %s() OWNER TO %I', ${pg.escapeLiteral(fn)}, owner);
  END IF;
END`)}`;
  return triggerSet(table, fn, fnName, sql.schema, body, triggers, comment, { definer: true, settings, owner });
}
