/**
 * Crash recovery: temp files of transfers interrupted by a crash or kill -9 (`.multiall.*.tmp`,
 * names no peer may ever use, see safety.ts) are removed before a tree starts. They were never
 * visible under a real name; a transfer that was cut restarts from the index.
 *
 * Public interface: removeStaleTempFiles(root) → number removed. Depends on delta/patch.ts names.
 */
import { readdir, unlink } from 'node:fs/promises';
import { join } from 'node:path';
import { TEMP_PREFIX, TEMP_SUFFIX } from './delta/patch.ts';

export async function removeStaleTempFiles(root: string): Promise<number> {
  let removed = 0;
  let entries;
  try {
    entries = await readdir(root, { withFileTypes: true, recursive: true });
  } catch {
    return 0; // a missing root is the tree guard's business, not ours
  }
  for (const e of entries) {
    if (!e.isFile() || !e.name.startsWith(TEMP_PREFIX) || !e.name.endsWith(TEMP_SUFFIX)) continue;
    try {
      await unlink(join(e.parentPath, e.name));
      removed++;
    } catch {
      // gone already
    }
  }
  return removed;
}
