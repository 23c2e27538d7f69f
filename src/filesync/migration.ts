/**
 * Storage schema of the file sync component (migrations 100 and 101, registered by the state
 * component in src/state/migrations.ts). Tables (all keyed by tree name):
 *   fs_files:     the index, one row per path (tombstones kept: deleted = 1)
 *   fs_trees:     identity recorded at first sync (tree id + st_dev) and the pause state
 *   fs_peers:     per tree and peer: last catch-up, in-sync flag, entries behind, last error
 *   fs_conflicts: conflict copies made (for `multiall files conflicts`)
 *   fs_acks:      tombstone confirmations: which peer holds (or has purged) a tombstone (101)
 * Big integers (ns times, inodes) are TEXT: node:sqlite returns INTEGER as JS numbers.
 */
import type { Migration } from '../state/migrations.ts';

const FILESYNC_INDEX: Migration = {
  version: 100,
  component: 'files',
  name: 'file sync index, trees, peers, conflicts',
  sql: `
    CREATE TABLE fs_files (
      tree TEXT NOT NULL,
      path TEXT NOT NULL,
      type TEXT NOT NULL,
      deleted INTEGER NOT NULL,
      version TEXT NOT NULL,
      modified_by TEXT NOT NULL,
      mtime_ns TEXT NOT NULL,
      mode INTEGER NOT NULL,
      uid INTEGER NOT NULL,
      gid INTEGER NOT NULL,
      size INTEGER NOT NULL,
      hash TEXT,
      target TEXT,
      st_mtime_ns TEXT NOT NULL,
      ino TEXT NOT NULL,
      racy INTEGER NOT NULL DEFAULT 0,
      PRIMARY KEY (tree, path)
    ) WITHOUT ROWID;
    CREATE INDEX fs_files_hash ON fs_files(tree, hash) WHERE hash IS NOT NULL AND deleted = 0;
    CREATE TABLE fs_trees (
      tree TEXT PRIMARY KEY,
      tree_id TEXT NOT NULL,
      dev TEXT NOT NULL,
      paused TEXT,
      paused_at INTEGER
    );
    CREATE TABLE fs_peers (
      tree TEXT NOT NULL,
      peer TEXT NOT NULL,
      last_sync_at INTEGER,
      in_sync INTEGER NOT NULL DEFAULT 0,
      behind INTEGER NOT NULL DEFAULT 0,
      last_error TEXT,
      PRIMARY KEY (tree, peer)
    ) WITHOUT ROWID;
    CREATE TABLE fs_conflicts (
      id INTEGER PRIMARY KEY AUTOINCREMENT,
      tree TEXT NOT NULL,
      path TEXT NOT NULL,
      copy TEXT NOT NULL,
      winner TEXT NOT NULL,
      loser TEXT NOT NULL,
      at INTEGER NOT NULL
    );
  `,
};

const FILESYNC_ACKS: Migration = {
  version: 101,
  component: 'files',
  name: 'file sync tombstone confirmations',
  sql: `
    CREATE TABLE fs_acks (
      tree TEXT NOT NULL,
      path TEXT NOT NULL,
      peer TEXT NOT NULL,
      PRIMARY KEY (tree, path, peer)
    ) WITHOUT ROWID;
  `,
};

export const FILESYNC_MIGRATIONS: readonly Migration[] = [FILESYNC_INDEX, FILESYNC_ACKS];
