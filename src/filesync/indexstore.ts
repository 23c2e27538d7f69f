/**
 * Persistence of one tree's sync state in the agent's Store (tables of migration.ts): the index
 * records, tombstone confirmations, the tree identity and pause state, per-peer status and the
 * conflict log. The whole
 * index is loaded into memory at start (the scanner needs it as `previous`); writes go through
 * here in batches, one transaction each.
 * Depends on: state/store.ts, versionvector.ts (validateVector on load).
 */
import type { StatementSync } from 'node:sqlite';
import type { Store } from '../state/store.ts';
import type { TreeIdentity } from './guards.ts';
import type { EntryType } from './index/entry.ts';
import type { IndexRecord } from './types.ts';
import { validateVector } from './versionvector.ts';

interface FileRow {
  path: string; type: string; deleted: number; version: string; modified_by: string; mtime_ns: string;
  mode: number; uid: number; gid: number; size: number; hash: string | null; target: string | null;
  st_mtime_ns: string; ino: string; racy: number;
}

export interface PeerRow {
  peer: string;
  lastSyncAt: number | null;
  inSync: boolean;
  behind: number;
  lastError: string | null;
}

export interface ConflictRow {
  id: number;
  tree: string;
  path: string;
  copy: string;
  winner: string;
  loser: string;
  at: number;
}

export class IndexStore {
  readonly #store: Store;
  readonly #tree: string;
  readonly #put: StatementSync;

  constructor(store: Store, tree: string) {
    this.#store = store;
    this.#tree = tree;
    this.#put = store.db.prepare(`INSERT OR REPLACE INTO fs_files
      (tree, path, type, deleted, version, modified_by, mtime_ns, mode, uid, gid, size, hash, target, st_mtime_ns, ino, racy)
      VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`);
  }

  load(): Map<string, IndexRecord> {
    const rows = this.#store.db.prepare('SELECT * FROM fs_files WHERE tree = ?').all(this.#tree) as unknown as FileRow[];
    const out = new Map<string, IndexRecord>();
    for (const r of rows) {
      const rec: IndexRecord = {
        path: r.path, type: r.type as EntryType, deleted: r.deleted === 1, version: validateVector(JSON.parse(r.version), Number.MAX_SAFE_INTEGER),
        modifiedBy: r.modified_by, mtimeNs: BigInt(r.mtime_ns), mode: r.mode, uid: r.uid, gid: r.gid, size: r.size,
        stMtimeNs: BigInt(r.st_mtime_ns), ino: BigInt(r.ino), racy: r.racy === 1,
      };
      if (r.hash !== null) rec.hash = r.hash;
      if (r.target !== null) rec.target = r.target;
      out.set(r.path, rec);
    }
    return out;
  }

  /**
   * Writes records in one transaction, with this node's clock (see clock()) and changed tombstone
   * confirmations when given: a crash cannot leave a new tombstone with its predecessor's.
   */
  save(recs: Iterable<IndexRecord>, extra: { clock?: number | undefined; acks?: Map<string, ReadonlySet<string> | undefined> | undefined } = {}): void {
    this.#store.transaction(() => {
      for (const r of recs) {
        this.#put.run(this.#tree, r.path, r.type, r.deleted ? 1 : 0, JSON.stringify(r.version), r.modifiedBy, String(r.mtimeNs),
          r.mode, r.uid, r.gid, r.size, r.hash ?? null, r.target ?? null, String(r.stMtimeNs), String(r.ino), r.racy ? 1 : 0);
      }
      if (extra.clock !== undefined) this.#store.kvSet(this.#key('clock'), String(extra.clock));
      if (extra.acks !== undefined) this.#writeAcks(extra.acks);
    });
  }

  /**
   * The highest counter of this node in any version it has recorded in this tree, including
   * purged tombstones and an index cleared by a resync (kept in the Store's kv table).
   */
  clock(): number {
    const v = Number(this.#store.kvGet(this.#key('clock')) ?? 0);
    return Number.isSafeInteger(v) && v > 0 ? v : 0;
  }

  /** This tree's key in the Store's kv table: `files.<name>.<tree>`. */
  #key(name: 'clock' | 'mounts'): string {
    return `files.${name}.${this.#tree}`;
  }

  /** Mount points seen inside the tree (tree-relative), so that one gone is noticed after a restart too. */
  mounts(): string[] {
    try {
      const v: unknown = JSON.parse(this.#store.kvGet(this.#key('mounts')) ?? '[]');
      return Array.isArray(v) ? v.filter((x): x is string => typeof x === 'string') : [];
    } catch {
      return [];
    }
  }

  setMounts(mounts: Iterable<string>): void {
    this.#store.kvSet(this.#key('mounts'), JSON.stringify([...mounts].sort()));
  }

  /** Forgets records (purged tombstones) and their confirmations in one transaction. */
  remove(paths: string[]): void {
    const del = this.#store.db.prepare('DELETE FROM fs_files WHERE tree = ? AND path = ?');
    const delAcks = this.#store.db.prepare('DELETE FROM fs_acks WHERE tree = ? AND path = ?');
    this.#store.transaction(() => {
      for (const p of paths) {
        del.run(this.#tree, p);
        delAcks.run(this.#tree, p);
      }
    });
  }

  /** Forgets the whole index and its confirmations (resync of a tree accepted as it is now). */
  clear(): void {
    this.#store.transaction(() => {
      this.#store.db.prepare('DELETE FROM fs_files WHERE tree = ?').run(this.#tree);
      this.#store.db.prepare('DELETE FROM fs_acks WHERE tree = ?').run(this.#tree);
    });
  }

  /** Tombstone confirmations: path → peers that confirmed it. */
  acks(): Map<string, Set<string>> {
    const rows = this.#store.db.prepare('SELECT path, peer FROM fs_acks WHERE tree = ?').all(this.#tree) as { path: string; peer: string }[];
    const out = new Map<string, Set<string>>();
    for (const r of rows) {
      let set = out.get(r.path);
      if (set === undefined) out.set(r.path, (set = new Set()));
      set.add(r.peer);
    }
    return out;
  }

  /** Replaces the confirmations of each given path (an empty or missing set: none), in one transaction. */
  saveAcks(acks: Map<string, ReadonlySet<string> | undefined>): void {
    this.#store.transaction(() => this.#writeAcks(acks));
  }

  #writeAcks(acks: Map<string, ReadonlySet<string> | undefined>): void {
    const del = this.#store.db.prepare('DELETE FROM fs_acks WHERE tree = ? AND path = ?');
    const put = this.#store.db.prepare('INSERT INTO fs_acks(tree, path, peer) VALUES (?, ?, ?)');
    for (const [path, peers] of acks) {
      del.run(this.#tree, path);
      for (const peer of peers ?? []) put.run(this.#tree, path, peer);
    }
  }

  identity(): TreeIdentity | undefined {
    const r = this.#store.db.prepare('SELECT tree_id, dev FROM fs_trees WHERE tree = ?').get(this.#tree) as { tree_id: string; dev: string } | undefined;
    return r === undefined ? undefined : { treeId: r.tree_id, dev: r.dev };
  }

  setIdentity(id: TreeIdentity): void {
    this.#store.db.prepare('INSERT INTO fs_trees(tree, tree_id, dev) VALUES (?, ?, ?) ON CONFLICT(tree) DO UPDATE SET tree_id = excluded.tree_id, dev = excluded.dev')
      .run(this.#tree, id.treeId, id.dev);
  }

  paused(): string | undefined {
    const r = this.#store.db.prepare('SELECT paused FROM fs_trees WHERE tree = ?').get(this.#tree) as { paused: string | null } | undefined;
    return r?.paused ?? undefined;
  }

  setPaused(reason: string | null): void {
    this.#store.db.prepare('UPDATE fs_trees SET paused = ?, paused_at = ? WHERE tree = ?').run(reason, reason === null ? null : Date.now(), this.#tree);
  }

  peers(): PeerRow[] {
    const rows = this.#store.db.prepare('SELECT peer, last_sync_at, in_sync, behind, last_error FROM fs_peers WHERE tree = ? ORDER BY peer').all(this.#tree) as {
      peer: string; last_sync_at: number | null; in_sync: number; behind: number; last_error: string | null;
    }[];
    return rows.map((r) => ({ peer: r.peer, lastSyncAt: r.last_sync_at, inSync: r.in_sync === 1, behind: r.behind, lastError: r.last_error }));
  }

  setPeer(p: PeerRow): void {
    this.#store.db.prepare(`INSERT INTO fs_peers(tree, peer, last_sync_at, in_sync, behind, last_error) VALUES (?, ?, ?, ?, ?, ?)
      ON CONFLICT(tree, peer) DO UPDATE SET last_sync_at = excluded.last_sync_at, in_sync = excluded.in_sync, behind = excluded.behind, last_error = excluded.last_error`)
      .run(this.#tree, p.peer, p.lastSyncAt, p.inSync ? 1 : 0, p.behind, p.lastError);
  }

  addConflict(c: Omit<ConflictRow, 'id' | 'tree'>): void {
    this.#store.db.prepare('INSERT INTO fs_conflicts(tree, path, copy, winner, loser, at) VALUES (?, ?, ?, ?, ?, ?)')
      .run(this.#tree, c.path, c.copy, c.winner, c.loser, c.at);
  }

  conflicts(): ConflictRow[] {
    return this.#store.db.prepare('SELECT id, tree, path, copy, winner, loser, at FROM fs_conflicts WHERE tree = ? ORDER BY id').all(this.#tree) as unknown as ConflictRow[];
  }
}
