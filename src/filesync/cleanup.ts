/**
 * Crash recovery, before a tree starts: temp files of transfers interrupted by a crash or kill -9
 * (`.multiall.*.tmp`, names no peer may ever use, see safety.ts) are removed — they were never
 * visible under a real name, and a transfer that was cut restarts from the index — except fresh
 * partial files of resumable transfers (partial.ts), which the next fetch of the same content
 * continues; partials older than PARTIAL_MAX_AGE_MS are removed too.
 *
 * Public interface: removeStaleTempFiles(root) → {removed, kept}. Depends on delta/patch.ts
 * names, partial.ts.
 */
import { readdir, unlink } from 'node:fs/promises';
import { join } from 'node:path';
import { TEMP_PREFIX, TEMP_SUFFIX } from './delta/patch.ts';
import { removeStalePartials, isPartialName } from './partial.ts';

export async function removeStaleTempFiles(root: string, now = Date.now()): Promise<{ removed: number; kept: number }> {
  let removed = 0;
  let kept = 0;
  let entries;
  try {
    entries = await readdir(root, { withFileTypes: true, recursive: true });
  } catch {
    return { removed, kept }; // a missing root is the tree guard's business, not ours
  }
  for (const e of entries) {
    // Symlinks too: a symlink is written under a temp name and renamed like a file (diskops.ts).
    if (!(e.isFile() || e.isSymbolicLink()) || !e.name.startsWith(TEMP_PREFIX) || !e.name.endsWith(TEMP_SUFFIX)) continue;
    const abs = join(e.parentPath, e.name);
    if (isPartialName(e.name)) {
      if ((await removeStalePartials(e.parentPath, [e.name], now)) === 1) removed++;
      else kept++;
      continue;
    }
    await unlink(abs).then(() => removed++, () => undefined); // gone already: fine
  }
  return { removed, kept };
}
