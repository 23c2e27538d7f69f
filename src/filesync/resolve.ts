/**
 * Decides what to do when a peer announces a version of a path we may also have:
 * - keep-local: disk untouched; record `version` (we are newer, equal, or win a concurrency);
 * - take-remote: make the local path equal to the remote (write it, or delete it for a tombstone);
 * - conflict: both sides changed the content independently; the loser is kept as a conflict copy.
 * Rules (see docs/filesync.md):
 * 1. A version that dominates wins. So a stale node coming back cannot resurrect a deleted file
 *    (the tombstone dominates its copy), and a delete never removes a change it had not seen.
 * 2. Concurrent delete vs change: the change wins (nothing is lost; the file comes back).
 * 3. Concurrent changes with the same content (same hash/target, or two directories): no
 *    conflict; the metadata (mode, owner, mtime) of the deterministic winner is taken.
 * 4. Concurrent different content: winner = newer mtime, then the node name that sorts first
 *    (byte order), then the smaller content hash. Every node computes the same winner and the
 *    same merged vector, so resolutions converge without new bumps.
 * The caller must re-check that the local file still matches `local` (size/mtime/hash) before
 * acting: a change not yet scanned needs a rescan (and its own version bump) first.
 */
import type { EntryType } from './index/entry.ts';
import { conflictName } from './conflictname.ts';
import { compare, merge } from './versionvector.ts';
import type { VersionVector } from './versionvector.ts';

/** A path's state as exchanged between nodes (a tombstone when `deleted`). */
export interface FileVersion {
  path: string;
  type: EntryType;
  deleted: boolean;
  version: VersionVector;
  /** Node that made the change this version describes. */
  modifiedBy: string;
  mtimeNs: bigint;
  mode: number;
  uid: number;
  gid: number;
  size: number;
  hash?: string;
  target?: string;
}

export type Decision =
  | { action: 'keep-local'; version: VersionVector; reason: string }
  | { action: 'take-remote'; version: VersionVector; reason: string }
  | {
      action: 'conflict';
      winner: 'local' | 'remote';
      /** Path the losing side's content is kept under. */
      conflictCopy: string;
      version: VersionVector;
      reason: string;
    };

function sameContent(a: FileVersion, b: FileVersion): boolean {
  if (a.deleted || b.deleted) return a.deleted && b.deleted;
  if (a.type !== b.type) return false;
  if (a.type === 'dir') return true;
  if (a.type === 'symlink') return a.target === b.target;
  return a.hash !== undefined && a.hash === b.hash && a.size === b.size;
}

function sameMeta(a: FileVersion, b: FileVersion): boolean {
  return a.deleted === b.deleted && a.type === b.type && a.mode === b.mode && a.uid === b.uid && a.gid === b.gid && a.mtimeNs === b.mtimeNs;
}

const byteCmp = (x: string, y: string): number => Buffer.compare(Buffer.from(x), Buffer.from(y));

/** Deterministic winner of two concurrent versions: true if `a` wins. Symmetric: win(a,b) = !win(b,a) unless identical. */
export function wins(a: FileVersion, b: FileVersion): boolean {
  if (a.mtimeNs !== b.mtimeNs) return a.mtimeNs > b.mtimeNs;
  const byNode = byteCmp(a.modifiedBy, b.modifiedBy);
  if (byNode !== 0) return byNode < 0;
  const key = (v: FileVersion): string => `${v.type}|${v.hash ?? ''}|${v.target ?? ''}|${v.mode}|${v.uid}|${v.gid}`;
  return byteCmp(key(a), key(b)) <= 0;
}

export function resolve(local: FileVersion | undefined, remote: FileVersion): Decision {
  if (local === undefined) {
    if (remote.deleted) return { action: 'keep-local', version: remote.version, reason: 'unknown here and deleted there: record the tombstone' };
    return { action: 'take-remote', version: remote.version, reason: 'new path' };
  }
  const order = compare(local.version, remote.version);
  if (order === 'equal') return { action: 'keep-local', version: local.version, reason: 'in sync' };
  if (order === 'dominates') return { action: 'keep-local', version: local.version, reason: 'remote is older (stale copy or tombstone)' };
  if (order === 'dominated') return { action: 'take-remote', version: remote.version, reason: remote.deleted ? 'deleted remotely after our version' : 'remote is newer' };

  const version = merge(local.version, remote.version);
  if (local.deleted !== remote.deleted) {
    return local.deleted
      ? { action: 'take-remote', version, reason: 'concurrent delete and change: the change wins' }
      : { action: 'keep-local', version, reason: 'concurrent delete and change: the change wins' };
  }
  if (sameContent(local, remote)) {
    if (sameMeta(local, remote) || wins(local, remote)) return { action: 'keep-local', version, reason: 'concurrent, same content' };
    return { action: 'take-remote', version, reason: 'concurrent, same content: taking the winner\'s metadata' };
  }
  const localWins = wins(local, remote);
  const loser = localWins ? remote : local;
  return {
    action: 'conflict',
    winner: localWins ? 'local' : 'remote',
    conflictCopy: conflictName(loser.path, loser.modifiedBy, loser.mtimeNs),
    version,
    reason: 'concurrent changes with different content',
  };
}

/**
 * Decision on a one-way receiver, whose disk mirrors the sources: the source's version is taken
 * exactly as it is (its vector, not a merge) unless ours is the same or newer. No conflict
 * copies here: concurrent versions only exist while the sources have not resolved them (they
 * make the copies, which arrive as new paths); taking the peer's version as is means the
 * sources' resolution, which dominates both, is taken too when it arrives.
 */
export function resolveMirror(local: FileVersion | undefined, remote: FileVersion): Decision {
  if (local === undefined) return resolve(local, remote);
  const order = compare(local.version, remote.version);
  if (order === 'equal' || order === 'dominates') return { action: 'keep-local', version: local.version, reason: order === 'equal' ? 'in sync' : 'remote is older' };
  return { action: 'take-remote', version: remote.version, reason: order === 'dominated' ? 'remote is newer' : 'one-way receiver: concurrent versions, the source\'s is taken as is' };
}
