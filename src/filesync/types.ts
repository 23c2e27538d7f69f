/**
 * Runtime types of the networked file sync: the resolved configuration of one tree and the index
 * record kept per path (a FileVersion as exchanged with peers, plus what this node last saw on
 * its own disk for change detection).
 */
import type { FileVersion } from './resolve.ts';

export interface PostSyncAction {
  run: string;
  timeoutMs: number;
}

export interface TreeConfig {
  name: string;
  /** Pool whose members sync this tree; peers outside it are refused. */
  pool: string;
  root: string;
  mode: 'two-way' | { oneWayFrom: string };
  exclude: string[];
  include?: string[];
  owner: 'preserve' | 'ignore';
  /** Owners travel as numbers only (rsync --numeric-ids); default: mapped by user/group name. */
  numericIds: boolean;
  permissions: 'preserve' | 'ignore';
  postSync: PostSyncAction[];
  debounceMs: number;
  scanIntervalMs: number;
  maxDeletePercent: number;
  bandwidthBps?: number;
  /** A tombstone every member has is purged once this old (since the delete). */
  tombstoneMinAgeMs: number;
  /** A tombstone is purged once this old even if a member never confirmed it. */
  tombstoneMaxAgeMs: number;
}

/**
 * One path of the local index. FileVersion fields are the synced version (identical on every
 * node that holds it, but for uid/gid: this node's ids for the version's owner names, see
 * owners.ts); `ino`/`stMtimeNs` are this node's lstat view after it last scanned or wrote the
 * path (a local mtime may differ from the version's by utimes rounding).
 */
export interface IndexRecord extends FileVersion {
  ino: bigint;
  stMtimeNs: bigint;
  racy: boolean;
}
