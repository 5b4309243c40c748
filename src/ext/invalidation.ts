import type { StoreContext } from '../context.js';
import { InvalidValueError, SchemaError, show } from '../errors.js';
import { ensureTriggers, type TriggerState, triggerProblems } from '../execution/schema.js';
import { type CastText, INVALIDATION_MARK, type InvalidationSpec, invalidationSql, notifyTriggerSql, qualifiedName, TRIGGER_VERSION, type TriggerSql } from '../sql/index.js';
import { checkOptions } from './entry_options.js';

/** What `invalidateOn` installs: on writes to `table`, delete the entries carrying the tags its rows render. */
export interface InvalidateOnOptions {
  /** The application table (its name as PostgreSQL has it: case matters, no quoting needed). */
  table: string;
  /** Its schema. @default 'public' */
  schema?: string | undefined;
  /**
   * Tag templates: literal text with `{column}` placeholders replaced by the row's column value as text
   * (`'product:{id}'`, `'category:{category_id}'`), or a literal tag (`'products'`) deleted on every
   * write to the table. `{{` and `}}` stand for literal braces. A NULL column renders no tag.
   */
  tags: readonly string[];
}

/** Which table's invalidation to remove. */
export interface InvalidationTarget {
  table: string;
  schema?: string | undefined;
}

/** One installed invalidation, as `invalidations()` finds it. */
export interface InvalidationStatus {
  /** The application table, `schema.table`. */
  table: string;
  /** The tag templates it deletes. */
  tags: string[];
  /** True when the table exists and each of its four triggers (INSERT, UPDATE, DELETE, TRUNCATE) is there and enabled. */
  ok: boolean;
  /** What is wrong, in words (empty when ok). */
  problems: string[];
}

/** Longest identifier PostgreSQL keeps (bytes). */
const MAX_IDENTIFIER_BYTES = 63;

/**
 * Installs (or replaces) the triggers of `options.table` that delete the cache entries tagged from its
 * rows, in the writing transaction. Idempotent: a second call with the same options changes nothing
 * visible, one with other tags replaces them.
 */
export async function invalidateOn(context: StoreContext, options: InvalidateOnOptions): Promise<InvalidationStatus> {
  const spec = checkSpec(options);
  const preparing = context.prepare('ext.invalidateOn');
  if (preparing) await preparing;
  refuseDistributed(context, 'invalidateOn');
  const regclass = qualifiedName(spec.schema, spec.table);
  const [found] = await context.exec.query<{ exists: boolean; kind: string | null; columns: string[] | null }>(context.sql.tableColumns, [regclass]);
  if (!found?.exists) throw new SchemaError(`invalidateOn: table ${spec.schema}.${spec.table} does not exist (names are case-sensitive, as PostgreSQL stores them).`);
  if (found.kind !== 'r' && found.kind !== 'p') throw new SchemaError(`invalidateOn: ${spec.schema}.${spec.table} is not a table (relkind ${found.kind}); triggers go on tables.`);
  const columns = new Set(found.columns ?? []);
  for (const parts of spec.tags) {
    for (const part of parts) {
      if (typeof part !== 'string' && !columns.has(part.column)) {
        throw new InvalidValueError(`invalidateOn: table ${spec.schema}.${spec.table} has no column ${show(part.column)}. Its columns: ${[...columns].join(', ')}.`);
      }
    }
  }
  const { refused, castText } = await columnKinds(context, spec.schema, spec.table, templatedColumns(spec.templates));
  if (refused.length) throw new InvalidValueError(`invalidateOn: ${refused.join('; ')}. Template a column of a built-in type (or an enum, domain, array or range of one), such as a generated column of type text.`);
  const set = invalidationSql(context.sql, { ...spec, castText });
  // Installed as asked already: nothing is run (DROP/CREATE TRIGGER lock the table against every reader).
  await ensureTriggers(context.exec, context.sql, set, true, 'the invalidation triggers of');
  return status(context, set, spec.schema, spec.table, [...spec.templates]);
}

/** Removes the triggers `invalidateOn` installed on the table; resolves to true when there was something to remove. */
export async function dropInvalidation(context: StoreContext, target: InvalidationTarget): Promise<boolean> {
  const spec = checkSpec(target as InvalidateOnOptions, false);
  const preparing = context.prepare('ext.dropInvalidation');
  if (preparing) await preparing;
  return dropSet(context, invalidationSql(context.sql, spec));
}

/**
 * Every invalidation installed for this cache table, checked: a dropped or disabled trigger, or a
 * dropped table, is reported in `problems` (the check function for monitoring and tests).
 */
export async function listInvalidations(context: StoreContext): Promise<InvalidationStatus[]> {
  const preparing = context.prepare('ext.invalidations');
  if (preparing) await preparing;
  const rows = await context.exec.query<{ comment: string }>(context.sql.listInvalidations, []);
  const found: InvalidationStatus[] = [];
  for (const { comment } of rows) {
    let described: { v?: unknown; cache?: unknown; schema?: unknown; table?: unknown; tags?: unknown };
    try {
      described = JSON.parse(comment.slice(INVALIDATION_MARK.length)) as typeof described;
    } catch {
      continue; // not one of ours after all
    }
    if (described.cache !== context.sql.display || typeof described.schema !== 'string' || typeof described.table !== 'string') continue;
    const tags = Array.isArray(described.tags) ? described.tags.map(String) : [];
    const set = invalidationSql(context.sql, checkSpec({ schema: described.schema, table: described.table } as InvalidateOnOptions, false));
    const entry = await status(context, set, described.schema, described.table, tags);
    if (described.v !== TRIGGER_VERSION) {
      entry.problems.push(
        `installed by an older cache-postgres (trigger version ${String(described.v)}, now ${TRIGGER_VERSION}): before version 3 its SECURITY DEFINER function rendered columns through casts the table's owner can replace (a privilege escalation); call invalidateOn again to reinstall it`,
      );
      entry.ok = false;
    }
    found.push(entry);
  }
  return found;
}

/** Removes the cache table's notify trigger (`localCache.notifyTrigger`); true when it was there. */
export async function dropNotifyTrigger(context: StoreContext): Promise<boolean> {
  const preparing = context.prepare('ext.dropNotifyTrigger');
  if (preparing) await preparing;
  return dropSet(context, notifyTriggerSql(context.sql));
}

async function dropSet(context: StoreContext, set: TriggerSql): Promise<boolean> {
  return context.exec.transaction(async (query) => {
    await query(context.sql.ddlLock, [`ddl:${context.sql.display}`]);
    const [state] = await query<TriggerState>(set.inspect);
    if (!state?.function_exists && !(state?.triggers?.length)) return false;
    for (const statement of set.drop(!state.table_exists)) await query(statement);
    return true;
  });
}

async function status(context: StoreContext, set: TriggerSql, schema: string, name: string, tags: string[]): Promise<InvalidationStatus> {
  const table = `${schema}.${name}`;
  const [state] = await context.exec.query<TriggerState>(set.inspect, []);
  const problems: string[] = [];
  if (!state?.table_exists) problems.push(`table ${table} does not exist (dropped or renamed): nothing invalidates; dropInvalidation() removes the function left behind`);
  else {
    const { missing, disabled } = triggerProblems(state);
    if (missing.length) problems.push(`no ${missing.join(', ')} trigger on ${table} (dropped?): writes of that kind do not invalidate; call invalidateOn again to reinstall`);
    if (disabled.length) problems.push(`the ${disabled.join(', ')} trigger on ${table} is disabled (ALTER TABLE ... DISABLE TRIGGER): writes of that kind do not invalidate`);
    // A trigger body names its columns only as text: PostgreSQL lets them be renamed or dropped, and every write then fails.
    const [found] = await context.exec.query<{ columns: string[] | null }>(context.sql.tableColumns, [qualifiedName(schema, name)]);
    const columns = new Set(found?.columns ?? []);
    const templated = templatedColumns(tags);
    const gone = templated.filter((column) => !columns.has(column));
    if (gone.length) problems.push(`${table} has no column ${gone.join(', ')} any more (renamed or dropped): every write to it fails until invalidateOn is called with the new templates or dropInvalidation removes the triggers`);
    // A column retyped since: to a type whose text the trigger cannot render the same for every writer.
    for (const refusal of (await columnKinds(context, schema, name, templated)).refused) {
      problems.push(`${refusal} (retyped since invalidateOn?): tags rendered from it may not match those the application writes; retype it or call invalidateOn with other templates`);
    }
  }
  if (!state?.function_exists) problems.push('its trigger function is gone: call invalidateOn again to reinstall');
  return { table, tags, ok: problems.length === 0, problems };
}

/** The columns a set of templates names, once each. */
function templatedColumns(templates: readonly string[]): string[] {
  return [...new Set(templates.flatMap((tag) => parseTemplate(tag)).flatMap((part) => (typeof part === 'string' ? [] : [part.column])))];
}

/** One step of a column's type as columnTypes reads it: outermost first, the type its text comes from last. */
interface TypeStep {
  type: string;
  kind: string;
  output_builtin: boolean;
  schema: string;
  name: string;
}

/** Types whose text depends on the catalog (a name looked up, a role's name), which no setting pins. */
const CATALOG_TYPES = new Set(['regclass', 'regcollation', 'regconfig', 'regdictionary', 'regnamespace', 'regoper', 'regoperator', 'regproc', 'regprocedure', 'regrole', 'regtype', 'aclitem']);

/**
 * Why a column's text cannot make one tag for every writer, or undefined when it can: its type (under
 * its domains, arrays and ranges) must be an enum or a built-in type written by PostgreSQL's own output
 * function, whose text depends only on the settings the trigger pins (RENDER_SETTINGS in sql/invalidation.ts).
 */
export function renderableProblem(steps: readonly TypeStep[]): string | undefined {
  const leaf = steps[steps.length - 1];
  if (!leaf) return 'its type could not be read';
  if (leaf.kind === 'c') return `its text is a row of ${leaf.type}, whose fields' types are not checked`;
  if (leaf.kind === 'p') return `${leaf.type} is a pseudo-type`;
  if (leaf.kind === 'e') return undefined;
  if (!leaf.output_builtin) return `${leaf.type} is written as text by a function outside PostgreSQL's own (an extension's type), whose text may depend on what no setting pins`;
  if (leaf.schema === 'pg_catalog' && CATALOG_TYPES.has(leaf.name)) return `${leaf.type}'s text depends on the catalog (names looked up), which no setting pins`;
  return undefined;
}

/**
 * For each of `columns` whose type invalidateOn refuses: the column, its type and why; and the columns whose
 * type (under domains only) is one whose cast to text writes otherwise than its output function.
 */
async function columnKinds(context: StoreContext, schema: string, table: string, columns: readonly string[]): Promise<{ refused: string[]; castText: Map<string, CastText> }> {
  const refused: string[] = [];
  const castText = new Map<string, CastText>();
  if (columns.length === 0) return { refused, castText };
  const rows = await context.exec.query<{ column: string; declared: string | null; walk: TypeStep[] }>(context.sql.columnTypes, [qualifiedName(schema, table), columns]);
  for (const row of rows) {
    const problem = renderableProblem(row.walk);
    if (problem) refused.push(`column ${show(row.column)} of ${schema}.${table} is of type ${row.declared ?? '?'}: ${problem}`);
    const leaf = row.walk[row.walk.length - 1];
    const cast = leaf?.schema === 'pg_catalog' && Object.hasOwn(CAST_TEXT, leaf.name) ? CAST_TEXT[leaf.name] : undefined;
    if (cast && row.walk.slice(0, -1).every((step) => step.kind === 'd')) castText.set(row.column, cast);
  }
  return { refused, castText };
}

/** pg_type names of the built-in types whose cast to text writes otherwise than their output function. */
const CAST_TEXT: Readonly<Record<string, CastText>> = { bool: 'boolean', bpchar: 'character', inet: 'inet' };

function refuseDistributed(context: StoreContext, what: string): void {
  if (context.exec.forms.distributed) {
    throw new SchemaError(
      `${what} is not available on ${context.sql.display}, a table distributed by Citus: a trigger on the shards runs on the workers, which can neither delete across shards in the writer's transaction nor notify the coordinator's listeners.`,
    );
  }
}

/** Checks the options and parses each tag template; `withTags: false` for removal and inspection. */
function checkSpec(options: InvalidateOnOptions, withTags = true): InvalidationSpec {
  if (typeof options !== 'object' || options === null) throw new InvalidValueError(`invalidateOn takes { table, schema?, tags }, got ${show(options)}.`);
  checkOptions(options, withTags ? ['table', 'schema', 'tags'] : ['table', 'schema'], withTags ? 'invalidateOn' : 'dropInvalidation');
  const table = identifier(options.table, 'table');
  const schema = options.schema === undefined ? 'public' : identifier(options.schema, 'schema');
  if (!withTags) return { schema, table, tags: [], templates: [] };
  const given: unknown = options.tags;
  if (!Array.isArray(given) || given.length === 0) {
    throw new InvalidValueError(`invalidateOn: tags must be a non-empty array of tag templates such as 'product:{id}', got ${show(given)}.`);
  }
  const templates = [...new Set(given as unknown[])].map((tag) => {
    if (typeof tag !== 'string' || tag === '' || tag.includes('\0') || !tag.isWellFormed()) {
      throw new InvalidValueError(`invalidateOn: each tag template must be a non-empty string without NUL or lone surrogates, got ${show(tag)}.`);
    }
    return tag;
  });
  return { schema, table, tags: templates.map(parseTemplate), templates };
}

function identifier(value: unknown, what: string): string {
  if (typeof value !== 'string' || value === '' || value.includes('\0') || !value.isWellFormed() || Buffer.byteLength(value) > MAX_IDENTIFIER_BYTES) {
    throw new InvalidValueError(`invalidateOn: ${what} must be a table or schema name of 1 to ${MAX_IDENTIFIER_BYTES} bytes without NUL, as PostgreSQL stores it (unquoted), got ${show(value)}.`);
  }
  return value;
}

/** `'product:{id}'` as parts: `['product:', { column: 'id' }]`; `{{` and `}}` are literal braces. */
export function parseTemplate(template: string): Array<string | { column: string }> {
  const parts: Array<string | { column: string }> = [];
  let literal = '';
  for (let i = 0; i < template.length; i++) {
    const char = template[i]!;
    if (char === '{' && template[i + 1] === '{') {
      literal += '{';
      i++;
    } else if (char === '}' && template[i + 1] === '}') {
      literal += '}';
      i++;
    } else if (char === '{') {
      const end = template.indexOf('}', i + 1);
      const column = end < 0 ? '' : template.slice(i + 1, end);
      if (end < 0 || column === '' || column.includes('{')) {
        throw new InvalidValueError(`invalidateOn: malformed tag template ${show(template)}: "{" must be followed by a column name and "}" (write "{{" for a literal brace).`);
      }
      identifier(column, 'a column in a tag template');
      if (literal) parts.push(literal);
      literal = '';
      parts.push({ column });
      i = end;
    } else if (char === '}') {
      throw new InvalidValueError(`invalidateOn: malformed tag template ${show(template)}: a lone "}" (write "}}" for a literal brace).`);
    } else literal += char;
  }
  if (literal) parts.push(literal);
  return parts;
}
