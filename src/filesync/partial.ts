/**
 * Resumable transfers: a large file is received into a partial file named after the wanted
 * content, `.multiall.<name>.<sha256>.part.tmp` next to the target (a reserved temp name: never
 * scanned, watched or accepted from a peer). If the transfer is cut (connection dropped, sender or
 * receiver killed), the bytes received stay there, and the next fetch of the same content asks
 * the sender only for what follows (protocol.ts `offset`); patch() verifies the whole file's
 * SHA-256 before the rename, so a damaged partial costs one fetch from scratch, never a wrong
 * file. A partial is reused only for the same content (path + expected hash); partials of
 * other content at the same name (the source changed since) and partials older than
 * PARTIAL_MAX_AGE_MS are removed.
 *
 * Public interface: RESUME_MIN_BYTES, PARTIAL_MAX_AGE_MS, partialPathFor, isPartialName,
 * preparePartial(target, hash, size) → {path, offset}, removeStalePartials(root, rels) (the scans
 * report the partials they pass). Depends on delta/patch.ts (temp names).
 */
import { lstat, readdir, unlink } from 'node:fs/promises';
import type { Stats } from 'node:fs';
import { basename, dirname, join } from 'node:path';
import { TEMP_PREFIX, TEMP_SUFFIX } from './delta/index.ts';

/** Files at least this large are received resumably (below, a restart costs next to nothing). */
export const RESUME_MIN_BYTES = 1 << 20;
/** A partial not written for this long is stale: removed instead of resumed (Syncthing: a day). */
export const PARTIAL_MAX_AGE_MS = 24 * 3600_000;

const PART = '.part';
const PARTIAL_RE = /\.[0-9a-f]{64}\.part\.tmp$/;

/** Same 100-byte bound on the name as patch.ts's tempPathFor (legal for a 255-byte target name). */
const stem = (target: string): string => `${TEMP_PREFIX}${basename(target).slice(0, 100)}.`;

export function partialPathFor(target: string, hash: string): string {
  return join(dirname(target), `${stem(target)}${hash}${PART}${TEMP_SUFFIX}`);
}

const stale = (st: Stats, now: number): boolean => now - st.mtimeMs >= PARTIAL_MAX_AGE_MS;

export function isPartialName(name: string): boolean {
  return name.startsWith(TEMP_PREFIX) && PARTIAL_RE.test(name);
}

/**
 * Where to receive content `hash` (of `size` bytes) for `target`, and how many of its first bytes
 * a fresh partial already holds (0: start afresh). Removes this target's partials of other
 * content, stale ones, and one longer than the content (it cannot be a prefix of it).
 */
export async function preparePartial(target: string, hash: string, size: number, now = Date.now()): Promise<{ path: string; offset: number }> {
  const path = partialPathFor(target, hash);
  const prefix = stem(target);
  let offset = 0;
  const names = await readdir(dirname(target)).catch(() => [] as string[]);
  for (const name of names) {
    if (!name.startsWith(prefix) || !isPartialName(name)) continue;
    const abs = join(dirname(target), name);
    const st = await lstat(abs).catch(() => null);
    if (st === null) continue;
    if (abs === path && st.isFile() && !stale(st, now) && st.size <= size) {
      offset = st.size;
      continue;
    }
    await unlink(abs).catch(() => undefined);
  }
  return { path, offset };
}

/** Removes the partials among `rels` (tree-relative) not written for PARTIAL_MAX_AGE_MS; returns how many. */
export async function removeStalePartials(root: string, rels: string[], now = Date.now()): Promise<number> {
  let removed = 0;
  for (const rel of rels) {
    const abs = join(root, rel);
    const st = await lstat(abs).catch(() => null);
    if (st === null || !stale(st, now)) continue;
    await unlink(abs).then(() => removed++, () => undefined);
  }
  return removed;
}
