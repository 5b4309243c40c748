import { deleteInBatches } from '../execution/batch_delete.js';
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

/** Deletes the entries tagged with `tags`, in batches; resolves to the live entries deleted. */
export async function deleteByTags(context: StoreContext, tags: readonly string[], options: DeleteTagsOptions = {}): Promise<number> {
  const { list, statement } = tagDeletion(context, tags, options);
  const preparing = context.prepare('ext.deleteTags');
  if (preparing) await preparing;
  const batch = context.options.deleteBatchSize;
  return context.rows.barrier(async () => {
    try {
      return await deleteInBatches((s, v) => context.exec.query(s, v), statement, batch, () => [list, batch, isoNow(context)]);
    } finally {
      context.rows.written('all');
    }
  });
}
