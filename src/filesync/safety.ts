/**
 * Validation of paths received from peers before anything touches the disk: a path must be a
 * relative POSIX path of non-empty segments, none of them `.` or `..`, without NUL, within
 * length bounds and not one of our reserved names. resolveInTree() then makes sure no existing
 * parent directory inside the tree is a symlink (or not a directory), so a peer cannot make us
 * write through a link to outside the tree.
 */
import { lstat } from 'node:fs/promises';
import { join } from 'node:path';
import { FileSyncError } from './errors.ts';
import { TEMP_PREFIX, TEMP_SUFFIX } from './delta/patch.ts';
import { TREE_MARKER } from './guards.ts';

/** Linux PATH_MAX and NAME_MAX, in UTF-8 bytes. */
export const MAX_PATH_BYTES = 4096;
export const MAX_NAME_BYTES = 255;

function bad(p: string, why: string): never {
  throw new FileSyncError('E_PATH', `unsafe path ${JSON.stringify(p.length > 200 ? `${p.slice(0, 200)}…` : p)}: ${why}`);
}

/** Returns the path unchanged if it is safe to use relative to a tree root; throws E_PATH otherwise. */
export function validatePeerPath(p: unknown): string {
  if (typeof p !== 'string') throw new FileSyncError('E_PATH', `path must be a string, got ${typeof p}`);
  if (p === '') bad(p, 'empty');
  if (Buffer.byteLength(p) > MAX_PATH_BYTES) bad(p, `longer than ${MAX_PATH_BYTES} bytes`);
  if (p.includes('\0')) bad(p, 'contains NUL');
  if (p.startsWith('/')) bad(p, 'absolute');
  if (p.isWellFormed() === false) bad(p, 'contains unpaired UTF-16 surrogates (not representable as UTF-8)');
  const segs = p.split('/');
  for (const s of segs) {
    if (s === '') bad(p, 'empty segment (leading, trailing or double /)');
    if (s === '.' || s === '..') bad(p, `"${s}" segment`);
    if (Buffer.byteLength(s) > MAX_NAME_BYTES) bad(p, `segment longer than ${MAX_NAME_BYTES} bytes`);
    if (s.startsWith(TEMP_PREFIX) && s.endsWith(TEMP_SUFFIX)) bad(p, 'reserved temp-file name');
  }
  if (p === TREE_MARKER) bad(p, 'reserved tree marker');
  return p;
}

/**
 * Validates `rel` and returns root/rel, after checking with lstat that every existing parent
 * component below root is a real directory. Missing parents are fine (they will be created by
 * mkdir, which then cannot follow links we did not see). The target itself is not checked: it
 * is replaced by rename/unlink, which act on the link, not its target.
 * With `checked` (one batch of applies), a directory verified once is not lstat'ed again.
 * Residual risk: a local process swapping a parent for a symlink between this check and the
 * write (Node has no openat/O_NOFOLLOW-per-component); peers alone cannot do it.
 */
export async function resolveInTree(root: string, rel: string, checked?: Set<string>): Promise<string> {
  validatePeerPath(rel);
  const segs = rel.split('/');
  let cur = root;
  for (let i = 0; i < segs.length - 1; i++) {
    cur = join(cur, segs[i]!);
    // `checked`: directories already found to be real directories during the same batch.
    if (checked?.has(cur) === true) continue;
    let st;
    try {
      st = await lstat(cur);
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code === 'ENOENT') break;
      throw e;
    }
    if (st.isSymbolicLink()) throw new FileSyncError('E_SYMLINK_PARENT', `${segs.slice(0, i + 1).join('/')} is a symlink: refusing to write ${rel} through it`);
    if (!st.isDirectory()) throw new FileSyncError('E_SYMLINK_PARENT', `${segs.slice(0, i + 1).join('/')} is not a directory (parent of ${rel})`);
    checked?.add(cur);
  }
  return join(root, rel);
}
