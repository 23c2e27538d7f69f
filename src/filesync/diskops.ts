/**
 * Filesystem operations of the applier, each safe to run on a path already checked by
 * resolveInTree(): verifying that the disk still matches the index record (a local change not
 * yet scanned must never be overwritten), atomic symlink creation (temp name + rename),
 * directory creation, removal, and metadata (mode, mtime, owner).
 * Depends on: delta/patch.ts (temp names), types.ts.
 */
import { chmod, lchown, lstat, lutimes, mkdir, readlink, rename, rmdir, symlink, unlink, utimes } from 'node:fs/promises';
import { lstatSync, readFileSync, readlinkSync, type BigIntStats } from 'node:fs';
import { tempPathFor } from './delta/index.ts';
import type { FileVersion } from './resolve.ts';
import type { IndexRecord, TreeConfig } from './types.ts';

export async function lstatOrNull(abs: string): Promise<BigIntStats | null> {
  try {
    return await lstat(abs, { bigint: true });
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT' || (e as NodeJS.ErrnoException).code === 'ENOTDIR') return null;
    throw e;
  }
}

type MetaCheck = { mode: boolean; owner: boolean };

/**
 * Is `st` the directory that tombstone `rec` names: deleted by a peer but kept here for content
 * this node does not sync (treesync.ts, #heldBy)? Such a tombstone records the directory's inode.
 */
export function isKeptDir(st: { ino: bigint; isDirectory(): boolean } | null, rec: IndexRecord | undefined): boolean {
  return st !== null && rec !== undefined && rec.deleted && rec.type === 'dir' && rec.ino !== 0n && st.isDirectory() && st.ino === rec.ino;
}

/** Does stat `st` (null: nothing there) show what `rec` says? `target`: the link's target, read on demand. */
function statMatches(st: BigIntStats | null, rec: IndexRecord | undefined, meta: MetaCheck | undefined, target: () => string | null | Promise<string | null>): boolean | Promise<boolean> {
  if (st === null) return rec === undefined || rec.deleted;
  if (rec?.deleted === true) return isKeptDir(st, rec);
  if (rec === undefined) return false;
  if (meta !== undefined && !st.isSymbolicLink()) {
    if (meta.mode && Number(st.mode & 0o7777n) !== rec.mode) return false;
    if (meta.owner && (Number(st.uid) !== rec.uid || Number(st.gid) !== rec.gid)) return false;
  }
  if (st.isDirectory()) return rec.type === 'dir';
  if (st.isSymbolicLink()) {
    if (rec.type !== 'symlink') return false;
    const t = target();
    return typeof t === 'string' || t === null ? t === rec.target : t.then((x) => x === rec.target);
  }
  if (st.isFile()) return rec.type === 'file' && Number(st.size) === rec.size && st.mtimeNs === rec.stMtimeNs && st.ino === rec.ino;
  return false;
}

/**
 * Does the disk still hold what the index says (nothing changed since the last scan)? With
 * `meta`, permission bits and/or owner must match too (a chmod changes neither size nor mtime).
 */
export async function diskMatches(abs: string, rec: IndexRecord | undefined, meta?: MetaCheck): Promise<boolean> {
  return statMatches(await lstatOrNull(abs), rec, meta, () => readlink(abs).catch(() => null));
}

/**
 * diskMatches() for a path this node has just written or is about to replace: its directory
 * entry and inode are in the kernel's caches, so a synchronous lstat answers in microseconds
 * (no thread-pool round trip, no exception for a path that does not exist).
 */
export function diskMatchesNow(abs: string, rec: IndexRecord | undefined, meta?: MetaCheck): boolean {
  let st: BigIntStats | null;
  try {
    st = lstatSync(abs, { bigint: true, throwIfNoEntry: false }) ?? null;
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code !== 'ENOTDIR') throw e;
    st = null;
  }
  return statMatches(st, rec, meta, () => {
    try {
      return readlinkSync(abs);
    } catch {
      return null;
    }
  }) as boolean;
}

/** Removes a file, symlink or empty directory; absent is fine. ENOTEMPTY is thrown. */
export async function removePath(abs: string): Promise<void> {
  const st = await lstatOrNull(abs);
  if (st === null) return;
  if (st.isDirectory()) await rmdir(abs);
  else await unlink(abs);
}

/** Clears the way for a new entry of another type: removes a dir (if empty) or a non-dir. */
export async function clearForType(abs: string, type: FileVersion['type']): Promise<void> {
  const st = await lstatOrNull(abs);
  if (st === null) return;
  if (type === 'dir' && st.isDirectory()) return;
  if (type !== 'dir' && !st.isDirectory()) return; // file/symlink is replaced by rename
  await removePath(abs);
}

export async function writeSymlink(abs: string, target: string): Promise<void> {
  const tmp = tempPathFor(abs);
  await symlink(target, tmp);
  try {
    await rename(tmp, abs);
  } catch (e) {
    await unlink(tmp).catch(() => undefined);
    throw e;
  }
}

export async function ensureDir(abs: string): Promise<void> {
  await mkdir(abs).catch((e: NodeJS.ErrnoException) => {
    if (e.code !== 'EEXIST') throw e;
  });
}

/**
 * Can this process give files any owner? It needs CAP_CHOWN (chown) and CAP_FOWNER (chmod and
 * utimes of a file it no longer owns): root has both; an agent running as its own user can get
 * them (systemd `AmbientCapabilities=CAP_CHOWN CAP_FOWNER`). Read from /proc/self/status; where
 * that is missing, only root.
 */
export const CAN_CHOWN = ((): boolean => {
  try {
    const eff = /^CapEff:\s*([0-9a-f]+)$/m.exec(readFileSync('/proc/self/status', 'utf8'))?.[1];
    if (eff !== undefined) return (BigInt(`0x${eff}`) & 0b1001n) === 0b1001n; // bits 0 and 3
  } catch {
    // not Linux
  }
  return process.getuid?.() === 0;
})();

/** utimes/lutimes take seconds as a double: ≈0.2 µs rounding; the index keeps the local stat apart. */
const seconds = (ns: bigint): number => Number(ns / 1000n) / 1e6;

/**
 * Applies mode, mtime and owner ('preserve', with CAN_CHOWN) of version `v` to `abs`. A symlink gets its
 * own mtime (lutimes; Linux ignores symlink modes). A directory's mtime changes again whenever an
 * entry is added or removed in it: the applier sets it once more after the children (setDirTime).
 */
export async function applyMeta(abs: string, v: FileVersion, cfg: Pick<TreeConfig, 'owner' | 'permissions'>): Promise<void> {
  if (CAN_CHOWN && cfg.owner === 'preserve') await lchown(abs, v.uid, v.gid);
  if (v.type === 'symlink') {
    await lutimes(abs, new Date(), seconds(v.mtimeNs));
    return;
  }
  if (cfg.permissions === 'preserve') await chmod(abs, v.mode);
  await utimes(abs, new Date(), seconds(v.mtimeNs));
}

/** Sets a directory's mtime to `mtimeNs`; returns its stat after (null if it is no directory now). */
export async function setDirTime(abs: string, mtimeNs: bigint): Promise<BigIntStats | null> {
  const st = await lstatOrNull(abs);
  if (st === null || !st.isDirectory()) return null;
  if (st.mtimeNs !== mtimeNs) await utimes(abs, new Date(), seconds(mtimeNs));
  return lstatOrNull(abs);
}
