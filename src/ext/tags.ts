import { deleteInBatches, deleteListedInBatches, type RunStatement } from '../execution/batch_delete.js';
import { isoNow, type StoreContext } from '../context.js';
import { InvalidOptionError, show } from '../errors.js';
import type { Statement } from '../sql/index.js';
import { checkOptions, resolveTags } from './entry_options.js';

/** Options of `deleteTags`. */
export interface DeleteTagsOptions {
  /**
   * `'any'`: delete entries carrying at least one of the tags (invalidate everything tagged `products`
   * OR `category:books`). `'all'`: only entries carrying every tag (the Python library's `@>`).
   * @default 'any'
   */
  match?: 'any' | 'all' | undefined;
}

/** What a deleteTags call deletes: the tags checked, and the batch statement of its `match`. */
export function tagDeletion(context: StoreContext, tags: readonly string[], options: DeleteTagsOptions = {}): { list: string[]; statement: Statement } {
  const list = resolveTags(tags, 'tags', false)!;
  checkOptions(options, ['match'], 'deleteTags');
  const match = options.match ?? 'any';
  if (match !== 'any' && match !== 'all') throw new InvalidOptionError('match', `must be 'any' or 'all', got ${show(match)}.`);
  return { list, statement: match === 'any' ? context.sql.deleteTagsAnyBatch : context.sql.deleteTagsAllBatch };
}

/**
 * Most keys a tag delete reads before it deletes (see {@link deleteByTags}): past it, it holds every call
 * until done, as a delete by pattern of unknown keys would. 200,000 keys are a few tens of MB of strings.
 */
export const TAGGED_KEYS_READ = 200_000;

/**
 * Deletes the entries tagged with `tags`, in batches; resolves to the live entries deleted.
 *
 * It first reads the keys carrying the tags (one statement, on the GIN index), holding every call issued
 * meanwhile, as a barrier must while its keys are unknown. Then it holds only the calls on those keys while it
 * deletes them batch by batch: a call on another key issued after it runs at once (it is not affected). A key
 * written since the read is not deleted; a key among them rewritten since without the tags is kept.
 */
export async function deleteByTags(context: StoreContext, tags: readonly string[], options: DeleteTagsOptions = {}): Promise<number> {
  const { list, statement } = tagDeletion(context, tags, options);
  const preparing = context.prepare('ext.deleteTags');
  if (preparing) await preparing;
  const batch = context.options.deleteBatchSize;
  const all = options.match === 'all';
  const run: RunStatement = (s, v) => context.exec.query(s, v);
  return context.rows.barrier(async (narrow) => {
    try {
      const tagged = await run<{ id: string }>(all ? context.sql.taggedAll : context.sql.taggedAny, [list, TAGGED_KEYS_READ + 1]);
      if (tagged.length > TAGGED_KEYS_READ) return await deleteInBatches(run, statement, batch, () => [list, batch, isoNow(context)]);
      const ids: string[] = new Array<string>(tagged.length);
      const known = new Set<string>();
      for (let i = 0; i < tagged.length; i++) known.add((ids[i] = tagged[i]!.id));
      narrow((id) => known.has(id));
      const listed = all ? context.sql.deleteTaggedAllListed : context.sql.deleteTaggedAnyListed;
      return await deleteListedInBatches(run, listed, ids, batch, (chunk) => [list, batch, isoNow(context), chunk]);
    } finally {
      context.rows.written('all');
    }
  });
}
