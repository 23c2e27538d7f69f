/**
 * TreeSync: the sync engine of one tree on this node.
 * - Local side: scans (watcher-triggered, periodic, on demand) are diffed against the index;
 *   every local change bumps this node's counter in the entry's version vector, a vanished path
 *   becomes a tombstone. The root guard and the mass-delete guard pause the tree instead.
 * - Remote side: catch-up with a peer compares index summaries (buckets.ts) and fetches only
 *   the entries of differing buckets; notifications push changed entries as they happen. Each
 *   remote entry goes through resolve(); take-remote/conflict decisions are applied (content
 *   pulled by delta, copied locally when a file with the same hash exists, metadata, symlinks,
 *   dirs, deletes, conflict copies). Before touching a path the disk is re-checked against the
 *   index: an unscanned local change is never overwritten (the path is skipped and rescanned).
 * All index mutations (scans and applies) run one at a time in the tree's lane.
 * Public: TreeSync (used by service.ts), TreeHost, Member, TreeStatus.
 * Depends on: index/scanner, resolve, guards, safety, transfer, diskops, indexstore, buckets.
 */
import { createHash } from 'node:crypto';
import { lstatSync } from 'node:fs';
import { mkdir, readdir, rename } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import type { PeerAddress, RpcClientPool } from '../rpc/client.ts';
import type { RpcStream } from '../rpc/connection.ts';
import { RpcError } from '../rpc/errors.ts';
import type { Store } from '../state/store.ts';
import type { Logger } from '../log/logger.ts';
import { Summary, bucketOf } from './buckets.ts';
import { FileSyncError } from './errors.ts';
import { TEMP_PREFIX, TEMP_SUFFIX, syncDir } from './delta/index.ts';
import type { PatchOptions, PatchResult } from './delta/index.ts';
import { CAN_CHOWN, applyMeta, clearForType, diskMatches, diskMatchesNow, ensureDir, isKeptDir, lstatOrNull, removePath, setDirTime, writeSymlink } from './diskops.ts';
import { checkMassDelete, checkTree, initTree, mountsUnder } from './guards.ts';
import type { TreeIdentity } from './guards.ts';
import type { Entry } from './index/entry.ts';
import { IgnoreMatcher } from './index/gitignore.ts';
import { HashCache } from './index/hashcache.ts';
import { scan, scopeCovers, type ScanScope } from './index/scanner.ts';
import { IndexStore } from './indexstore.ts';
import type { ConflictRow } from './indexstore.ts';
import { preparePartial, removeStalePartials, RESUME_MIN_BYTES } from './partial.ts';
import { mapConcurrent } from './concurrency.ts';
import { GroupSync } from './groupsync.ts';
import { PostSync } from './postsync.ts';
import { MAX_ENTRIES_PER_MESSAGE, MAX_FETCH_FILES, decodeEntriesRes, decodeSummaryRes, encodeEntry, type WireVersion } from './protocol.ts';
import { SystemOwnerNames, type OwnerNames } from './owners.ts';
import type { EntriesReq, FetchFile, FetchReq } from './protocol.ts';
import { resolve, resolveMirror } from './resolve.ts';
import type { FileVersion } from './resolve.ts';
import { resolveInTree, validatePeerPath } from './safety.ts';
import { Throttle } from './throttle.ts';
import { GROUP_SYNC_MAX, MIN_DELTA_BASIS, copyLocal, fetchBatch, openRegular, retryItem, serveFetch } from './transfer.ts';
import type { FetchItem, TransferCounters } from './transfer.ts';
import type { IndexRecord, TreeConfig } from './types.ts';
import { bump, compare, emptyVector } from './versionvector.ts';
import { TreeWatcher } from './watcher.ts';
import type { EventClass } from './watcher.ts';

export interface Member {
  name: string;
  address?: PeerAddress;
  alive: boolean;
}

/** Event sink (the agent's EventBus). Kinds: files.conflict, files.synced, files.paused, files.resumed, files.reverted, files.post_sync. */
export interface FilesEventSink {
  publish(kind: string, data: unknown): void;
}

export interface TreeHost {
  node: string;
  store: Store;
  peers: Pick<RpcClientPool, 'call' | 'openStream'>;
  /** Members of a pool; may list this node itself (needed for a one-way tree's source pool). */
  members(pool: string): Member[];
  bus?: FilesEventSink;
  logger: Logger;
  /** Interval of summary comparisons with every alive peer (default 60 s). */
  antiEntropyMs?: number;
  /** Start fs.watch (default true; tests may drive scans by hand). */
  watch?: boolean;
  rpcTimeoutMs?: number;
  /** Owner names ↔ this node's ids (default: /etc/passwd and /etc/group). */
  ownerNames?: OwnerNames;
}

/** One reader of the system's passwd/group files for all trees of the process. */
let systemOwnerNames: SystemOwnerNames | undefined;

export interface PeerStatus {
  peer: string;
  alive: boolean;
  state: 'in-sync' | 'behind' | 'differs' | 'unreachable' | 'unknown';
  /** Remote changes found but not applied yet (or that failed) at the last catch-up. */
  behind: number;
  lastSyncAt: number | null;
  lastError: string | null;
}

export interface LastScan {
  /** Files hashed vs hashes reused. */
  hashed: number;
  reused: number;
  /** Entries found (in the scope, for a scoped scan). */
  entries: number;
  /** Only the places the watcher reported were looked at (not the whole tree). */
  scoped: boolean;
}

export interface TreeStatus {
  tree: string;
  pool: string;
  root: string;
  paused: string | null;
  watching: boolean;
  entries: number;
  tombstones: number;
  conflicts: number;
  lastScanAt: number | null;
  /** The last scan (a restart rehashes only changed files). */
  lastScan: LastScan | null;
  peers: PeerStatus[];
  /**
   * Wire bytes of content transfers (encoded delta ops and signatures) since start; `resumed`:
   * bytes of received files that came from partial files of interrupted transfers instead.
   */
  bytes: { received: number; sent: number; sigSent: number; sigReceived: number; resumed: number };
  /** Since start; `reverted`: local changes a one-way receiver undid. */
  files: { pulled: number; copiedLocally: number; deleted: number; metadataOnly: number; reverted: number };
}

interface PeerState {
  timer: NodeJS.Timeout | undefined;
  running: boolean;
  again: boolean;
  failures: number;
  /** Summary pair (theirs+ours) after our last catch-up: identical incoming summaries do not retrigger. */
  lastPair: string;
  inSync: boolean | undefined;
  behind: number;
  lastSyncAt: number | null;
  lastError: string | null;
}

type Change = { before: IndexRecord | undefined; after: IndexRecord };
type Work = { local: IndexRecord | undefined; remote: FileVersion; d: ReturnType<typeof resolve> };

class Skip extends Error {}

/** Local applies (dirs, symlinks, metadata, local copies) in flight per depth level. */
const APPLY_CONCURRENCY = 16;
/** files.fetch streams in flight per peer and apply; each carries up to MAX_FETCH_FILES files. */
const FETCH_STREAMS = 4;
/** Bytes of content per files.fetch stream (a larger file gets a stream of its own). */
const FETCH_BATCH_BYTES = 8 << 20;
/** Local deletes within this long count together for the mass-delete guard. */
const MASS_DELETE_WINDOW_MS = 5 * 60_000;
/** Entries of a catch-up applied together (pages of MAX_ENTRIES_PER_MESSAGE are gathered). */
const APPLY_BATCH = 16_384;
/** Watcher events for paths we wrote are checked (not rescanned) until this long after the apply. */
const SELF_WRITE_GRACE_MS = 1000;

/** State of one applyRemote run. */
interface ApplyCtx {
  /** Directories verified by resolveInTree in this run. */
  checked: Set<string>;
  /** Directories that received renames: fsynced once at the end of the run. */
  syncDirs: Set<string>;
  /** Tree-relative directories whose entries this run wrote or removed: their mtimes are set back at the end. */
  touched: Set<string>;
  /** Directories deleted by the peer but kept for excluded content: path → inode (see #heldBy). */
  kept: Map<string, bigint>;
}

/** Content to fetch; `done` gets the written file's stat or the error. */
interface FetchJob {
  item: FetchItem;
  done: (r: PatchResult | Error) => Promise<void>;
}
const depth = (p: string): number => p.split('/').length;
const parentOf = (p: string): string => p.slice(0, Math.max(0, p.lastIndexOf('/')));
/** `abs` as a delta basis if it is a regular file worth a signature, else null. */
const fileBasis = async (abs: string): Promise<string | null> => {
  const st = await lstatOrNull(abs);
  return st !== null && st.isFile() && Number(st.size) >= MIN_DELTA_BASIS ? abs : null;
};
const under = (p: string, dir: string): boolean => p === dir || p.startsWith(`${dir}/`);

export class TreeSync {
  readonly cfg: TreeConfig;
  readonly #host: TreeHost;
  readonly #log: Logger;
  readonly #db: IndexStore;
  readonly #index = new Map<string, IndexRecord>();
  /** Live file paths by content hash (local copies for renames, serving any path with a hash). */
  readonly #byHash = new Map<string, Set<string>>();
  /** Records changed in memory, not yet in the Store (written by #flushDb, one transaction). */
  #dirty = new Map<string, IndexRecord>();
  /** Paths this node is writing/just wrote → until when their watcher events are only verified. */
  readonly #selfWrites = new Map<string, { until: number; dir: boolean }>();
  #toVerify = new Set<string>();
  #verifyTimer: NodeJS.Timeout | undefined;
  readonly #summary = new Summary();
  readonly #hashCache = new HashCache(200_000);
  readonly #exclude: IgnoreMatcher;
  readonly #include: IgnoreMatcher | null;
  readonly #peers = new Map<string, PeerState>();
  readonly #throttle: Throttle | undefined;
  /** Owner names for the wire (null: owners synced by number, or not at all). */
  readonly #names: OwnerNames | null;
  readonly #postSync: PostSync;
  /** Small fetched files become durable together: one syncfs per group, not an fsync each. */
  readonly #group: GroupSync;
  readonly #recv: TransferCounters = { opBytes: 0, sigBytes: 0, resumedBytes: 0 };
  readonly #sent: TransferCounters = { opBytes: 0, sigBytes: 0, resumedBytes: 0 };
  readonly #files = { pulled: 0, copiedLocally: 0, deleted: 0, metadataOnly: 0, reverted: 0 };
  #identity: TreeIdentity | undefined;
  #paused: string | undefined;
  #allowMassDelete = false;
  #lane: Promise<unknown> = Promise.resolve();
  #watcher: TreeWatcher | undefined;
  #timers: NodeJS.Timeout[] = [];
  #scanSoon: NodeJS.Timeout | undefined;
  #lastScanAt: number | null = null;
  #lastScan: LastScan | null = null;
  #stopped = false;
  #alive = new Set<string>();
  /** Paths of tombstones, and the members that confirmed each one (kept in the Store: fs_acks). */
  readonly #tombs = new Set<string>();
  readonly #acks = new Map<string, Set<string>>();
  /** Paths whose confirmations changed since the last #flushDb(). */
  readonly #acksDirty = new Set<string>();
  #revertFailures = 0;
  /**
   * This node's highest counter in any version of this tree, kept across purges and resyncs
   * (IndexStore.clock): a new local version always goes above it (see bump()).
   */
  #clock = 0;
  #clockSaved = 0;
  /** Filesystems mounted inside the tree, as seen so far (IndexStore.mounts). */
  #mounts = new Set<string>();
  /** The gone mounts last warned about (NUL-joined). */
  #goneWarned = '';
  /** Index changes so far (a generation: cached views of the index check it). */
  #gen = 0;
  /** The sorted entry list of the last files.entries request with more pages to come. */
  #entriesList: { key: string; gen: number; list: { b: number; r: IndexRecord }[] } | undefined;
  /** Local deletes net of creations recorded by recent scans (the mass-delete guard counts them together). */
  #recentDeletes: { at: number; n: number }[] = [];

  constructor(cfg: TreeConfig, host: TreeHost) {
    this.cfg = cfg;
    this.#host = host;
    this.#log = host.logger.child({ component: 'files', tree: cfg.name });
    this.#db = new IndexStore(host.store, cfg.name);
    this.#exclude = new IgnoreMatcher(cfg.exclude);
    this.#include = cfg.include === undefined ? null : new IgnoreMatcher(cfg.include);
    this.#throttle = cfg.bandwidthBps === undefined ? undefined : new Throttle(cfg.bandwidthBps);
    this.#names = cfg.owner === 'preserve' && !cfg.numericIds ? (host.ownerNames ?? (systemOwnerNames ??= new SystemOwnerNames())) : null;
    let warned = false;
    this.#group = new GroupSync({
      onFallback: (err) => {
        if (!warned) this.#log.warn({ err: err.message }, 'group sync of small files failed: fsyncing each file instead');
        warned = true;
      },
    });
    this.#postSync = new PostSync({
      actions: cfg.postSync, debounceMs: cfg.debounceMs, tree: cfg.name, root: cfg.root, logger: this.#log,
      onResult: (r) => host.bus?.publish('files.post_sync', { tree: cfg.name, ...r }),
    });
  }

  get treeId(): string {
    return `${this.cfg.pool}/${this.cfg.name}`;
  }

  // ------------------------------------------------------------------ lifecycle

  async start(): Promise<void> {
    this.#clock = this.#clockSaved = this.#db.clock();
    this.#mounts = new Set(this.#db.mounts());
    for (const r of this.#db.load().values()) this.#put(undefined, r);
    // A Store written before the clock was kept: it starts from the index, before any purge.
    if (this.#clock > this.#clockSaved) this.#db.save([], { clock: (this.#clockSaved = this.#clock) });
    for (const [path, peers] of this.#db.acks()) {
      if (this.#tombs.has(path)) this.#acks.set(path, peers);
      else this.#acksDirty.add(path); // stale (e.g. written before a crash lost the tombstone's row)
    }
    this.#paused = this.#db.paused();
    this.#identity = this.#db.identity();
    if (this.#identity === undefined) {
      try {
        await mkdir(this.cfg.root, { recursive: true });
        this.#identity = await initTree(this.cfg.root, this.treeId, this.#host.node);
        this.#db.setIdentity(this.#identity);
      } catch (e) {
        this.#pause(`root: ${(e as Error).message}`);
      }
    }
    if (this.#paused !== undefined) this.#log.warn({ reason: this.#paused }, 'tree is paused (from a previous run)');
    // Watches first (all of them), then the scan: a change made meanwhile is either seen by the
    // scan or reported by a watch.
    if (this.#host.watch !== false) await this.#startWatcher();
    await this.scanNow();
    this.#timers.push(setInterval(() => void this.scanNow().then(() => this.catchUpAll()), this.cfg.scanIntervalMs));
    this.#timers.push(setInterval(() => this.catchUpAll(), this.#host.antiEntropyMs ?? 60_000));
    for (const t of this.#timers) t.unref();
    this.onMembersChanged();
  }

  async stop(): Promise<void> {
    this.#stopped = true;
    this.#watcher?.close();
    for (const t of this.#timers) clearInterval(t);
    clearTimeout(this.#scanSoon);
    clearTimeout(this.#verifyTimer);
    for (const p of this.#peers.values()) clearTimeout(p.timer);
    await this.#postSync.stop();
    await this.#lane.catch(() => undefined);
    this.#group.close();
    this.#flushDb();
  }

  #startWatcher(): Promise<void> {
    this.#watcher ??= new TreeWatcher({
      root: this.cfg.root,
      debounceMs: this.cfg.debounceMs,
      onChange: (scope) => void this.scanNow({ scope: scope ?? undefined }),
      onFail: (err) => {
        const code = (err as NodeJS.ErrnoException).code;
        const hint = code === 'ENOSPC' ? ' (inotify watch limit: raise fs.inotify.max_user_watches)' : code === 'EMFILE' ? ' (too many open files)' : '';
        this.#log.warn({ err: err.message, code, scanIntervalMs: this.cfg.scanIntervalMs }, `file watching failed${hint}: relying on periodic scans`);
      },
      onOverflow: () => this.#log.warn({ queue: '/proc/sys/fs/inotify/max_queued_events' }, 'inotify event queue full (events may have been lost): rescanning the whole tree'),
      classify: (path) => this.#classifyEvent(path),
      skipDir: (dir) => this.#excluded(dir, true),
    });
    this.#watcher.start();
    return this.#watcher.ready;
  }

  #serial<T>(fn: () => Promise<T>): Promise<T> {
    const p = this.#lane.then(fn, fn);
    this.#lane = p.catch(() => undefined);
    return p;
  }

  // ------------------------------------------------------------------ index

  #put(before: IndexRecord | undefined, after: IndexRecord): void {
    this.#gen++;
    this.#summary.update(before, after);
    // Only versions this node made move its clock: a peer's record claiming a huge counter of
    // ours would otherwise push every later version of ours past what peers accept.
    const own = after.modifiedBy === this.#host.node ? (after.version[this.#host.node] ?? 0) : 0;
    if (own > this.#clock) this.#clock = own;
    const old = this.#index.get(after.path);
    // Confirmations were for that exact tombstone.
    if ((old === undefined || !old.deleted || !after.deleted || compare(old.version, after.version) !== 'equal') && this.#acks.delete(after.path)) this.#acksDirty.add(after.path);
    if (after.deleted) this.#tombs.add(after.path);
    else this.#tombs.delete(after.path);
    if (old?.hash !== undefined && !old.deleted) {
      const set = this.#byHash.get(old.hash);
      set?.delete(old.path);
      if (set?.size === 0) this.#byHash.delete(old.hash);
    }
    this.#index.set(after.path, after);
    if (after.hash !== undefined && !after.deleted && after.type === 'file') {
      let set = this.#byHash.get(after.hash);
      if (set === undefined) this.#byHash.set(after.hash, (set = new Set()));
      set.add(after.path);
    }
  }

  /** Index changes take effect in memory now; the Store gets them at the next #flushDb(). */
  #commit(changes: Change[]): void {
    for (const c of changes) {
      this.#put(c.before, c.after);
      this.#dirty.set(c.after.path, c.after);
    }
  }

  /** Writes pending index changes, the clock if it moved, and changed tombstone confirmations in one transaction. */
  #flushDb(): void {
    const acks = this.#acksDirty.size > 0 ? new Map([...this.#acksDirty].map((p) => [p, this.#acks.get(p)])) : undefined;
    this.#acksDirty.clear();
    if (this.#dirty.size > 0) {
      const recs = this.#dirty;
      this.#dirty = new Map();
      this.#db.save(recs.values(), { clock: this.#clock > this.#clockSaved ? this.#clock : undefined, acks });
      this.#clockSaved = Math.max(this.#clockSaved, this.#clock);
    } else if (acks !== undefined) this.#db.saveAcks(acks);
  }

  // ------------------------------------------------------------------ our own writes vs the watcher

  #selfWrite(path: string, dir = false): void {
    this.#selfWrites.set(path, { until: Infinity, dir });
    // A directory's own watch reports a change of its attributes (our chmod/utimes) under the
    // directory's base name, as if a child of that name changed: that path is only verified.
    if (dir && path !== '') this.#selfWrites.set(`${path}/${path.slice(path.lastIndexOf('/') + 1)}`, { until: Infinity, dir: false });
  }

  /** After an apply: our paths' events are still expected for a short while. */
  #selfWritesDone(): void {
    const now = Date.now();
    for (const [p, w] of this.#selfWrites) {
      if (w.until === Infinity) w.until = now + SELF_WRITE_GRACE_MS;
      else if (w.until < now) this.#selfWrites.delete(p);
    }
  }

  /**
   * Watcher filter: our temp files never trigger a scan; events for paths we are writing or just
   * wrote trigger only a check of those paths against the index (a local edit racing with our
   * write is still found, without rescanning the whole tree for every write we apply).
   */
  #classifyEvent(path: string): EventClass {
    const base = path.slice(path.lastIndexOf('/') + 1);
    if (base.startsWith(TEMP_PREFIX) && base.endsWith(TEMP_SUFFIX)) return 'temp';
    const w = this.#selfWrites.get(path);
    if (w === undefined) return 'other';
    if (w.until < Date.now()) {
      this.#selfWrites.delete(path);
      return 'other';
    }
    this.#toVerify.add(path);
    this.#armVerify();
    return w.dir ? 'own-dir' : 'own';
  }

  #armVerify(): void {
    if (this.#verifyTimer !== undefined || this.#stopped) return;
    this.#verifyTimer = setTimeout(() => {
      this.#verifyTimer = undefined;
      this.#verifyOwn();
    }, this.cfg.debounceMs);
    this.#verifyTimer.unref();
  }

  /**
   * Checks paths we wrote that got watcher events against the index. Runs outside the lane (it
   * only reads): a check racing with an apply can only see a mismatch, which costs a scan.
   */
  #verifyOwn(): void {
    const paths: string[] = [];
    for (const p of this.#toVerify) {
      if (this.#selfWrites.get(p)?.until !== Infinity) {
        paths.push(p);
        this.#toVerify.delete(p);
      } // else: still being written by an apply: checked after it
    }
    const meta = { mode: this.cfg.permissions === 'preserve', owner: this.#ownersApplied };
    const same = (p: string): boolean => {
      try {
        return diskMatchesNow(join(this.cfg.root, p), this.#index.get(p), meta);
      } catch {
        return false;
      }
    };
    // Paths we have just written: in the kernel's caches, checked synchronously.
    if (!paths.every(same)) this.#scheduleScan(0);
    if (this.#toVerify.size > 0) this.#armVerify();
  }

  /**
   * Nested mount points seen inside the tree that are not mounted now (unmounted disk, NFS
   * gone). Below them nothing is taken as deleted and nothing is written until they are back,
   * or an admin accepts the tree as it is (resync). Mount points are remembered in the Store.
   */
  async #goneMounts(): Promise<string[]> {
    const now = await mountsUnder(this.cfg.root);
    const gone = [...this.#mounts].filter((m) => !now.includes(m));
    if (now.some((m) => !this.#mounts.has(m))) this.#db.setMounts((this.#mounts = new Set([...this.#mounts, ...now])));
    const key = gone.join('\0');
    if (key !== this.#goneWarned) {
      this.#goneWarned = key;
      if (gone.length > 0) this.#log.warn({ mounts: gone }, 'a filesystem mounted inside the tree is gone (unmounted?): its content is not taken as deleted and nothing is written there until it is back (or multiall files resync accepts it)');
      else this.#log.info('every filesystem mounted inside the tree is back');
    }
    return gone;
  }

  #excluded(path: string, isDir: boolean): boolean {
    if (this.#exclude.ignores(path, isDir)) return true;
    return this.#include !== null && isDir === false && !this.#include.ignores(path, false);
  }

  /**
   * What holds directory `rel`: only content this tree does not sync ('excluded': excluded
   * entries, our temp files, directories kept for such content themselves), nothing ('empty'),
   * or content it syncs ('content'). A directory deleted by a peer but held by excluded content
   * stays on disk for it — as with rsync --delete — and its tombstone records the directory's
   * inode (diskops isKeptDir): the delete neither fails forever nor comes back as a new directory.
   * Excluded directories are not read.
   */
  async #heldBy(rel: string): Promise<'excluded' | 'empty' | 'content'> {
    let held = false;
    const walk = async (dir: string): Promise<boolean> => {
      const ents = await readdir(join(this.cfg.root, dir), { withFileTypes: true }).catch(() => null);
      if (ents === null) return false;
      for (const e of ents) {
        const child = `${dir}/${e.name}`;
        if ((e.name.startsWith(TEMP_PREFIX) && e.name.endsWith(TEMP_SUFFIX)) || this.#excluded(child, e.isDirectory())) held = true;
        else if (!e.isDirectory() || !isKeptDir(await lstatOrNull(join(this.cfg.root, child)), this.#index.get(child)) || !(await walk(child))) return false;
      }
      return true;
    };
    return !(await walk(rel)) ? 'content' : held ? 'excluded' : 'empty';
  }

  #pause(reason: string): void {
    if (this.#paused === reason) return;
    this.#paused = reason;
    if (this.#identity !== undefined) this.#db.setPaused(reason);
    this.#log.error({ reason }, 'tree paused: nothing is synced until an admin resumes it (multiall files resync)');
    this.#host.bus?.publish('files.paused', { tree: this.cfg.name, reason });
  }

  #scheduleScan(ms = 200): void {
    if (this.#stopped || this.#scanSoon !== undefined) return;
    this.#scanSoon = setTimeout(() => {
      this.#scanSoon = undefined;
      void this.scanNow().then(() => this.catchUpAll());
    }, ms);
    this.#scanSoon.unref();
  }

  // ------------------------------------------------------------------ local changes

  /**
   * Scans the tree (or only `scope`: where the watcher saw changes) and records local changes
   * (bumped versions, tombstones); notifies peers. `verify` rehashes every file (whole tree).
   */
  scanNow(opts: { verify?: boolean; scope?: ScanScope } = {}): Promise<number> {
    return this.#serial(async () => {
      if (this.#stopped || this.#identity === undefined) return 0;
      try {
        const changes = await this.#scanLocked(opts.verify === true, opts.scope);
        if (changes.length > 0) void this.#notifyPeers(changes.map((c) => c.after));
        return changes.length;
      } catch (e) {
        this.#log.error({ err: (e as Error).message }, 'scan failed');
        return 0;
      }
    });
  }

  async #scanLocked(verify: boolean, scope?: ScanScope): Promise<Change[]> {
    const check = await checkTree(this.cfg.root, this.#identity!);
    if (!check.ok) {
      this.#pause(`${check.reason}: ${check.message}`);
      return [];
    }
    if (this.#paused !== undefined) return [];
    // Include rules decide a directory by its content: those trees are always scanned whole.
    if (verify || this.cfg.include !== undefined) scope = undefined;
    // The live records this scan looks at (all of them unless scoped): its baseline, and what
    // may have been deleted. Nothing else changes the index meanwhile (#serial).
    const scoped: IndexRecord[] = [];
    for (const r of this.#index.values()) if (!r.deleted && (scope === undefined || scopeCovers(scope, r.path))) scoped.push(r);
    const previous = new Map<string, Entry>();
    if (!verify) {
      for (const r of scoped) {
        const e: Entry = { path: r.path, type: r.type, size: r.size, mtimeNs: r.stMtimeNs, mode: r.mode, uid: r.uid, gid: r.gid, ino: r.ino };
        if (r.hash !== undefined) e.hash = r.hash;
        if (r.racy) e.racy = true;
        previous.set(r.path, e);
      }
    }
    const res = await scan(this.cfg.root, { exclude: this.cfg.exclude, include: this.cfg.include, previous, hashCache: this.#hashCache, scope });
    this.#lastScanAt = Date.now();
    this.#lastScan = { hashed: res.stats.hashed, reused: res.stats.reused, entries: res.entries.size, scoped: scope !== undefined };
    // An unreadable directory must not look like deleted content, nor a nested mount that is gone
    // (what the scan found in its place is not looked at either).
    const gone = await this.#goneMounts();
    const blind = [...res.problems.map((p) => p.path), ...gone];
    for (const g of gone) for (const path of res.entries.keys()) if (under(path, g)) res.entries.delete(path); // the mount point too: its own metadata is the missing filesystem's
    for (const p of res.problems) this.#log.warn(p, 'scan problem');
    const stalePartials = await removeStalePartials(this.cfg.root, res.partials);
    if (stalePartials > 0) this.#log.info({ removed: stalePartials }, 'removed partial files of transfers not resumed for a day');
    if (this.#receiver) {
      await this.#revertLocked(res.entries, blind, scoped);
      return [];
    }
    const node = this.#host.node;
    const changes: Change[] = [];
    const live = this.#index.size - this.#tombs.size;
    let deletes = 0;
    let creates = 0;
    for (const e of res.entries.values()) {
      const rec = this.#index.get(e.path);
      const fresh = rec === undefined || rec.deleted;
      // Deleted in the pool, kept here for content we do not sync (see #heldBy): stays deleted
      // while that content is there, and goes once it is gone; real content brings it back.
      if (isKeptDir({ ino: e.ino, isDirectory: () => e.type === 'dir' }, rec)) {
        const held = await this.#heldBy(e.path);
        if (held === 'excluded') continue;
        if (held === 'empty') {
          this.#selfWrite(e.path, true);
          await removePath(join(this.cfg.root, e.path)).catch(() => undefined);
          continue;
        }
      }
      const changed = fresh || this.#differs(rec, e);
      if (fresh) creates++;
      const statOnly = !changed && (rec.ino !== e.ino || rec.stMtimeNs !== e.mtimeNs || rec.racy !== (e.racy === true));
      if (!changed && !statOnly) continue;
      const after: IndexRecord = {
        path: e.path, type: e.type, deleted: false,
        version: changed ? bump(rec?.version ?? emptyVector(), node, this.#clock) : rec.version,
        modifiedBy: changed ? node : rec.modifiedBy,
        mtimeNs: changed ? e.mtimeNs : rec.mtimeNs,
        mode: e.mode, uid: e.uid, gid: e.gid, size: e.size, ino: e.ino, stMtimeNs: e.mtimeNs, racy: e.racy === true,
      };
      if (!changed) Object.assign(after, { mode: rec.mode, uid: rec.uid, gid: rec.gid });
      // Without root (or CAP_CHOWN + CAP_FOWNER) this node cannot give a file its owner: files it
      // wrote belong to the agent's user, so a change made here keeps the version's owner instead.
      else if (!fresh && !this.#ownersApplied) Object.assign(after, { uid: rec.uid, gid: rec.gid });
      if (e.hash !== undefined) after.hash = e.hash;
      if (e.target !== undefined) after.target = e.target;
      changes.push({ before: rec, after });
    }
    for (const r of scoped) {
      if (res.entries.has(r.path) || blind.some((b) => under(r.path, b))) continue;
      if (this.#excluded(r.path, r.type === 'dir')) continue; // newly excluded: forget silently (not a delete)
      deletes++;
      // A tombstone's mtime is the time of the delete: its age decides when it may be purged.
      changes.push({ before: r, after: { ...r, deleted: true, version: bump(r.version, node, this.#clock), modifiedBy: node, mtimeNs: BigInt(Date.now()) * 1_000_000n, ino: 0n, stMtimeNs: 0n, racy: false } });
    }
    // Deletes of the last MASS_DELETE_WINDOW_MS count together: an rm -rf spread over several
    // scans (a slow disk, a long stream of events) must not pass in slices of a shrinking tree.
    // Counted: deletes net of paths created since (churn, moves and renames shrink nothing), from
    // the window's high point (creations before deletes do not pay for them).
    const now = Date.now();
    this.#recentDeletes = this.#allowMassDelete ? [] : this.#recentDeletes.filter((d) => now - d.at < MASS_DELETE_WINDOW_MS);
    const earlier = this.#recentDeletes.reduce((shrunk, d) => Math.max(0, shrunk + d.n), 0);
    if (!this.#allowMassDelete) {
      if (deletes > 0) {
        const md = checkMassDelete(live + earlier, deletes + earlier, { maxPercent: this.cfg.maxDeletePercent });
        if (!md.ok) {
          this.#pause(`mass-delete: local ${md.message}${earlier > 0 ? ` (${earlier} of them deleted by the previous scans of the last ${MASS_DELETE_WINDOW_MS / 60_000} minutes)` : ''}`);
          return [];
        }
      }
      if (deletes > 0 || creates > 0) this.#recentDeletes.push({ at: now, n: deletes - creates });
    }
    this.#allowMassDelete = false;
    this.#commit(changes);
    this.#flushDb();
    const bumped = changes.filter((c) => c.before === undefined || c.before.version !== c.after.version);
    if (bumped.length > 0) this.#log.info({ changes: bumped.length, deletes }, 'local changes recorded');
    return bumped;
  }

  /** Owners are synced and applied here: `owner: preserve` and the rights to chown (CAN_CHOWN). */
  get #ownersApplied(): boolean {
    return CAN_CHOWN && this.cfg.owner === 'preserve';
  }

  /**
   * A received version with this node's owner ids: the sender's user and group names mapped to
   * ids here (names unknown here, or not sent, keep the sender's numbers, as rsync does).
   */
  #localOwner(r: WireVersion): FileVersion {
    const { user, group, ...v } = r;
    if (this.#names === null) return v;
    const uid = user === undefined ? undefined : this.#names.uidOf(user);
    const gid = group === undefined ? undefined : this.#names.gidOf(group);
    if (uid !== undefined) v.uid = uid;
    if (gid !== undefined) v.gid = gid;
    return v;
  }

  /** A one-way receiver: member of the tree's pool but not of its source pool. */
  get #receiver(): boolean {
    return !this.isSource(this.#host.node);
  }

  /**
   * Scan result on a one-way receiver. Its local changes get no version (they would never leave
   * it): the disk is made to mirror the index — the sources' versions — again, which is what
   * `rsync -a --delete` from a source would give. A modified or deleted path is restored (same
   * content, other metadata: metadata only; else content from a local copy or a source, with the
   * modified file as delta basis); an added path is removed. Removing needs the index to describe
   * the sources, so it waits for the first complete catch-up with one (a receiver joining with
   * files keeps them until then; those a source has are replaced by delta); and a removal of
   * most of the tree is held by the mass-delete guard (pause; `resync` confirms), as local
   * deletes are on a two-way node. Excluded paths are never touched.
   */
  async #revertLocked(disk: Map<string, Entry>, blind: string[], scoped: IndexRecord[]): Promise<void> {
    const stat: Change[] = [];
    const meta: IndexRecord[] = [];
    const restore: IndexRecord[] = [];
    let remove: string[] = [];
    for (const e of disk.values()) {
      const rec = this.#index.get(e.path);
      if (rec === undefined || rec.deleted) remove.push(e.path);
      else if (this.#differs(rec, e)) {
        const same = rec.type === e.type && (e.type === 'dir' || (e.type === 'file' ? rec.hash === e.hash : rec.target === e.target));
        (same ? meta : restore).push(rec);
      } else if (rec.ino !== e.ino || rec.stMtimeNs !== e.mtimeNs || rec.racy !== (e.racy === true)) {
        stat.push({ before: rec, after: { ...rec, ino: e.ino, stMtimeNs: e.mtimeNs, racy: e.racy === true } });
      }
    }
    // Live entries a scoped scan did not look at (still on disk, presumably).
    const outside = this.#index.size - this.#tombs.size - scoped.length;
    for (const r of scoped) {
      if (!disk.has(r.path) && !blind.some((b) => under(r.path, b)) && !this.#excluded(r.path, r.type === 'dir')) restore.push(r);
    }
    if (!this.#db.peers().some((p) => p.inSync)) remove = []; // no complete catch-up with a source yet
    if (remove.length > 0 && !this.#allowMassDelete) {
      const md = checkMassDelete(disk.size + outside, remove.length, { maxPercent: this.cfg.maxDeletePercent });
      if (!md.ok) {
        this.#pause(`mass-delete: reverting local additions on a one-way receiver: ${md.message}`);
        return;
      }
    }
    this.#allowMassDelete = false;
    this.#commit(stat);
    const checked = new Set<string>();
    let removed = 0;
    let restored = 0;
    let failed = 0;
    const removedFrom = new Set<string>();
    for (const p of remove.sort((a, b) => depth(b) - depth(a))) {
      try {
        const abs = await resolveInTree(this.cfg.root, p, checked);
        this.#selfWrite(p);
        await removePath(abs);
        removedFrom.add(parentOf(p));
        removed++;
      } catch (e) {
        // A directory holding excluded content stays, as with rsync --delete.
        if ((e as NodeJS.ErrnoException).code !== 'ENOTEMPTY') failed++;
        this.#log.debug({ path: p, err: (e as Error).message }, 'could not remove a local addition');
      }
    }
    for (const r of meta) {
      try {
        const abs = await resolveInTree(this.cfg.root, r.path, checked);
        this.#selfWrite(r.path, r.type === 'dir');
        await applyMeta(abs, r, this.cfg);
        this.#commit([{ before: r, after: await this.#recordFor(abs, r, r.version) }]);
        restored++;
      } catch (e) {
        failed++;
        this.#log.warn({ path: r.path, err: (e as Error).message }, 'could not restore metadata');
      }
    }
    const source = this.#sources()[0]?.name ?? 'no reachable source';
    const out = await this.#applyWork(source, restore.map((r) => ({ local: r, remote: r, d: { action: 'take-remote', version: r.version, reason: 'one-way receiver: revert a local change' } })));
    await this.#restoreDirTimes(removedFrom);
    this.#flushDb();
    this.#selfWritesDone();
    restored += out.applied;
    failed += out.failed;
    const paths = [...remove, ...meta.map((r) => r.path), ...restore.map((r) => r.path)];
    if (paths.length === 0) return;
    this.#files.reverted += removed + restored;
    if (removed + restored > 0) this.#postSync.trigger(removed + restored);
    this.#log.warn({ removed, restored, failed, paths: paths.slice(0, 20) }, 'one-way receiver: local changes reverted to the sources\' version');
    this.#host.bus?.publish('files.reverted', { tree: this.cfg.name, removed, restored, failed, paths: paths.slice(0, 100) });
    // A restore may fail while no source is reachable: try again, backing off.
    this.#revertFailures = failed > 0 ? this.#revertFailures + 1 : 0;
    if (failed > 0) this.#scheduleScan(Math.min(60_000, 1000 * 2 ** this.#revertFailures));
  }

  /**
   * Writing or removing entries changed these directories' mtimes: each is set back to its
   * version's (deepest first: a utimes does not touch the parent) and its new stat recorded, so
   * neither our writes nor the order they came in show as a local change.
   */
  async #restoreDirTimes(rels: Iterable<string>): Promise<void> {
    const changes: Change[] = [];
    for (const rel of [...rels].sort((a, b) => depth(b) - depth(a))) {
      const rec = this.#index.get(rel);
      if (rec === undefined || rec.deleted || rec.type !== 'dir') continue;
      this.#selfWrite(rel, true);
      const st = await setDirTime(join(this.cfg.root, rel), rec.mtimeNs).catch(() => null);
      if (st !== null) changes.push({ before: rec, after: { ...rec, ino: st.ino, stMtimeNs: st.mtimeNs } });
    }
    this.#commit(changes);
  }

  #differs(rec: IndexRecord, e: Entry): boolean {
    if (rec.type !== e.type) return true;
    // Every type's mtime is synced (a directory's changes when entries are added or removed).
    if (rec.stMtimeNs !== e.mtimeNs) return true;
    if (e.type === 'file' && rec.hash !== e.hash) return true;
    if (e.type === 'symlink' && rec.target !== e.target) return true;
    if (this.cfg.permissions === 'preserve' && e.type !== 'symlink' && rec.mode !== e.mode) return true;
    // Owners are only applied with CAN_CHOWN, so elsewhere a differing uid is not a change to sync.
    return this.#ownersApplied && (rec.uid !== e.uid || rec.gid !== e.gid);
  }

  // ------------------------------------------------------------------ peers

  #members(): Member[] {
    const seen = new Map<string, Member>();
    for (const m of this.#host.members(this.cfg.pool)) seen.set(m.name, m);
    if (this.cfg.mode !== 'two-way') for (const m of this.#host.members(this.cfg.mode.oneWayFrom)) if (!seen.has(m.name)) seen.set(m.name, m);
    seen.delete(this.#host.node);
    return [...seen.values()];
  }

  /** May `peer` talk to us about this tree at all? */
  allowed(peer: string): boolean {
    return peer !== this.#host.node && this.#members().some((m) => m.name === peer);
  }

  /** Is `node` a source of this tree (always true for two-way trees)? */
  isSource(node: string): boolean {
    return this.cfg.mode === 'two-way' || this.#host.members(this.cfg.mode.oneWayFrom).some((m) => m.name === node);
  }

  #peer(name: string): PeerState {
    let p = this.#peers.get(name);
    if (p === undefined) {
      const row = this.#db.peers().find((r) => r.peer === name);
      p = { timer: undefined, running: false, again: false, failures: 0, lastPair: '', inSync: row?.inSync, behind: row?.behind ?? 0, lastSyncAt: row?.lastSyncAt ?? null, lastError: row?.lastError ?? null };
      this.#peers.set(name, p);
    }
    return p;
  }

  /** Peers to catch up from: alive, reachable, and sources of this tree. */
  #sources(): Member[] {
    return this.#members().filter((m) => m.alive && m.address !== undefined && this.isSource(m.name));
  }

  onMembersChanged(): void {
    const now = new Set<string>();
    for (const m of this.#members()) {
      if (!m.alive || m.address === undefined) continue;
      now.add(m.name);
      if (!this.#alive.has(m.name) && this.isSource(m.name)) this.scheduleCatchUp(m.name);
    }
    this.#alive = now;
  }

  catchUpAll(): void {
    for (const m of this.#sources()) this.scheduleCatchUp(m.name);
    if (this.#tombs.size > 0) {
      void this.#serial(async () => this.#purgeTombstones()).catch((e: unknown) => this.#log.warn({ err: (e as Error).message }, 'purging expired tombstones failed'));
    }
  }

  // ------------------------------------------------------------------ tombstone expiry

  /** Age of a tombstone (its mtime is the time of the delete). */
  #age(t: FileVersion, now: number): number {
    return now - Number(t.mtimeNs / 1_000_000n);
  }

  #ack(path: string, peer: string): void {
    let set = this.#acks.get(path);
    if (set === undefined) this.#acks.set(path, (set = new Set()));
    if (set.has(peer)) return;
    set.add(peer);
    this.#acksDirty.add(path);
  }

  /**
   * `peer`'s summary: in every bucket where it equals ours, the peer holds exactly our versions,
   * so it has our tombstones there. (Not on a receiver: it follows the sources, see #ackListed.)
   */
  #ackSummary(peer: string, theirs: Uint8Array): void {
    if (this.#tombs.size === 0 || this.#receiver) return;
    const differ = new Set(this.#summary.diff(theirs));
    for (const path of this.#tombs) if (!differ.has(bucketOf(path))) this.#ack(path, peer);
  }

  /**
   * All of `peer`'s entries in `buckets` (a complete catch-up): a tombstone of ours there is
   * confirmed if the peer has it (or a version that saw it) or has no record of the path at all
   * (purged it already, or never had it: either way no copy to bring back). On a receiver only
   * the latter counts: it drops a tombstone once its sources did.
   */
  #ackListed(peer: string, buckets: number[], listed: Map<string, FileVersion['version']>, before: Map<string, FileVersion['version']>): void {
    if (this.#tombs.size === 0) return;
    const asked = new Set(buckets);
    for (const path of this.#tombs) {
      if (!asked.has(bucketOf(path))) continue;
      const v = listed.get(path);
      const mine = this.#index.get(path)!.version;
      const order = v === undefined ? undefined : compare(v, mine);
      // "No record" confirms only a tombstone we held before the peer's pages were served: one
      // made during the catch-up may be of a file the peer received after listing.
      const had = before.get(path);
      if ((v === undefined && had !== undefined && compare(had, mine) === 'equal') || (!this.#receiver && (order === 'equal' || order === 'dominates'))) this.#ack(path, peer);
    }
  }

  /**
   * Forgets tombstones (in the lane): once older than tombstone_min_age and confirmed by every
   * member of the tree (a receiver: by every source), or once older than tombstone_max_age
   * whatever the members say. A member offline longer than that which comes back with the file
   * can bring it back (as with Syncthing's retention). All nodes converge on "purged": a node
   * ignores a tombstone older than the minimum age for a path it has no record of.
   */
  #purgeTombstones(): void {
    if (this.#paused !== undefined || this.#stopped) return;
    const now = Date.now();
    const ackers = this.#members().filter((m) => !this.#receiver || this.isSource(m.name)).map((m) => m.name);
    const purge: IndexRecord[] = [];
    for (const path of this.#tombs) {
      const t = this.#index.get(path)!;
      // A directory kept for excluded content keeps its tombstone while it is there (else it would
      // come back as new).
      if (t.type === 'dir' && t.ino !== 0n && isKeptDir(lstatSync(join(this.cfg.root, path), { bigint: true, throwIfNoEntry: false }) ?? null, t)) continue;
      const age = this.#age(t, now);
      if (age >= this.cfg.tombstoneMaxAgeMs || (age >= this.cfg.tombstoneMinAgeMs && ackers.every((n) => this.#acks.get(path)?.has(n) === true))) purge.push(t);
    }
    if (purge.length === 0) return;
    for (const t of purge) {
      this.#summary.update(t, undefined);
      this.#index.delete(t.path);
      this.#gen++;
      this.#tombs.delete(t.path);
      this.#acks.delete(t.path);
      this.#acksDirty.delete(t.path);
      this.#dirty.delete(t.path);
    }
    this.#db.remove(purge.map((t) => t.path));
    this.#log.info({ purged: purge.length, sample: purge.slice(0, 5).map((t) => t.path) }, 'tombstones purged');
  }

  scheduleCatchUp(name: string, delayMs = 0): void {
    if (this.#stopped) return;
    const p = this.#peer(name);
    if (p.running) {
      p.again = true;
      return;
    }
    if (p.timer !== undefined) {
      if (delayMs > 0) return;
      clearTimeout(p.timer);
    }
    p.timer = setTimeout(() => void this.#runCatchUp(name), delayMs);
    p.timer.unref();
  }

  async #runCatchUp(name: string): Promise<void> {
    const p = this.#peer(name);
    p.timer = undefined;
    const m = this.#sources().find((x) => x.name === name);
    if (m === undefined || this.#stopped) return;
    p.running = true;
    let retryMs = 0;
    try {
      const failed = await this.#catchUp(m, p);
      p.failures = failed > 0 ? p.failures + 1 : 0;
      p.lastError = failed > 0 ? `${failed} entries failed to apply` : null;
      if (failed > 0) retryMs = Math.min(60_000, 500 * 2 ** p.failures);
    } catch (e) {
      p.failures++;
      p.lastError = (e as Error).message;
      retryMs = Math.min(60_000, 500 * 2 ** p.failures);
      this.#log.warn({ peer: name, err: p.lastError }, 'catch-up failed');
    } finally {
      p.running = false;
      try {
        this.#db.setPeer({ peer: name, lastSyncAt: p.lastSyncAt, inSync: p.inSync === true, behind: p.behind, lastError: p.lastError });
      } catch (e) {
        this.#log.warn({ peer: name, err: (e as Error).message }, 'saving the peer\'s sync state failed');
      }
    }
    if (p.again) {
      p.again = false;
      this.scheduleCatchUp(name);
    } else if (retryMs > 0) this.scheduleCatchUp(name, retryMs);
  }

  #addr(m: Member): PeerAddress {
    return m.address!;
  }

  async #catchUp(m: Member, p: PeerState): Promise<number> {
    const timeoutMs = this.#host.rpcTimeoutMs ?? 30_000;
    this.#log.debug({ peer: m.name }, 'catch-up: comparing summaries');
    const res = decodeSummaryRes(await this.#host.peers.call(this.#addr(m), 'files.summary', { tree: this.cfg.name, summary: Buffer.from(this.#summary.bytes) }, { timeoutMs }));
    let diff = this.#summary.diff(res.summary);
    const asked = diff;
    const listed = new Map<string, FileVersion['version']>();
    this.#log.debug({ peer: m.name, buckets: diff.length, theirs: res.entries }, 'catch-up: summary received');
    let failed = 0;
    let pending = 0;
    if (diff.length > 0 && this.#paused === undefined) {
      const tombsBefore = new Map([...this.#tombs].map((path) => [path, this.#index.get(path)!.version]));
      const fetchPage = (after?: [number, string]): Promise<unknown> => this.#host.peers.call(this.#addr(m), 'files.entries', { tree: this.cfg.name, buckets: diff, ...(after ? { after } : {}) }, { timeoutMs });
      let pagePromise = fetchPage();
      let waiting: FileVersion[] = [];
      let cursor: { bucket: number; path: string } | undefined;
      for (;;) {
        const page = decodeEntriesRes(await pagePromise);
        this.#log.debug({ peer: m.name, entries: page.entries.length, more: page.next !== undefined }, 'catch-up: entries page received');
        // The next page is requested while this one is applied.
        if (page.next !== undefined) {
          // Pages go forward in (bucket, path) order: a peer repeating a cursor would page forever.
          const n = page.next;
          if (cursor !== undefined && (n.bucket < cursor.bucket || (n.bucket === cursor.bucket && n.path <= cursor.path))) {
            throw new FileSyncError('E_WIRE', `entries page cursor went back (${n.bucket}/${n.path} after ${cursor.bucket}/${cursor.path})`);
          }
          cursor = n;
          pagePromise = fetchPage([n.bucket, n.path]);
          pagePromise.catch(() => undefined);
        }
        for (const e of page.entries) listed.set(e.path, e.version);
        for (const e of page.entries) waiting.push(e);
        // Pages are gathered up to APPLY_BATCH entries: one apply fetches them over all its
        // streams at once (each apply ends by waiting for its slowest stream, then the index).
        if (page.next !== undefined && waiting.length < APPLY_BATCH) continue;
        // Pages come in bucket order, not path order: an entry whose directory is in a later page
        // waits for it (else it would fail for a missing parent and cost another catch-up).
        let batch = waiting;
        waiting = [];
        if (page.next !== undefined) [batch, waiting] = this.#parentsKnown(batch);
        // ...but not without bound (a peer could list orphans only): beyond a batch's worth they
        // are applied now, fail for their missing parent, and a later catch-up brings them.
        if (waiting.length > APPLY_BATCH) [batch, waiting] = [batch.concat(waiting), []];
        const r = await this.applyRemote(m.name, batch);
        failed += r.failed;
        pending += r.skipped;
        if (page.next === undefined) break;
      }
      diff = this.#summary.diff(res.summary);
      this.#ackListed(m.name, asked, listed, tombsBefore);
    }
    this.#ackSummary(m.name, res.summary);
    this.#flushDb(); // confirmations gathered by this catch-up
    p.inSync = diff.length === 0;
    p.behind = failed + pending;
    p.lastSyncAt = Date.now();
    p.lastPair = this.#pairKey(res.summary);
    return failed;
  }

  /** Splits `batch` into entries whose parent directory exists (or comes in the batch) and the others. */
  #parentsKnown(batch: FileVersion[]): [FileVersion[], FileVersion[]] {
    const dirs = new Set<string>();
    for (const e of batch) if (e.type === 'dir' && !e.deleted) dirs.add(e.path);
    const known = new Map<string, boolean>();
    const ok = (dir: string): boolean => {
      if (dir === '') return true;
      let k = known.get(dir);
      if (k === undefined) {
        const rec = this.#index.get(dir);
        k = (rec !== undefined && !rec.deleted && rec.type === 'dir') || (dirs.has(dir) && ok(dir.slice(0, Math.max(0, dir.lastIndexOf('/')))));
        known.set(dir, k);
      }
      return k;
    };
    const ready: FileVersion[] = [];
    const later: FileVersion[] = [];
    for (const e of batch) (e.deleted || ok(e.path.slice(0, Math.max(0, e.path.lastIndexOf('/')))) ? ready : later).push(e);
    return [ready, later];
  }

  #pairKey(theirs: Uint8Array): string {
    return createHash('sha256').update(theirs).update(this.#summary.bytes).digest('hex');
  }

  async #notifyPeers(changes: IndexRecord[]): Promise<void> {
    if (!this.isSource(this.#host.node)) return; // receive-only: local edits stay local
    const targets = this.#members().filter((m) => m.alive && m.address !== undefined);
    await Promise.all(targets.map(async (m) => {
      try {
        for (let i = 0; i < changes.length; i += MAX_ENTRIES_PER_MESSAGE) {
          const entries = changes.slice(i, i + MAX_ENTRIES_PER_MESSAGE).map((v) => encodeEntry(v, this.#names));
          await this.#host.peers.call(this.#addr(m), 'files.notify', { tree: this.cfg.name, entries }, { timeoutMs: this.#host.rpcTimeoutMs ?? 30_000 });
        }
      } catch (e) {
        // Not lost: the peer finds the difference at its next summary comparison.
        this.#log.debug({ peer: m.name, err: (e as Error).message }, 'notify failed');
      }
    }));
  }

  // ------------------------------------------------------------------ serving peers

  handleSummary(peer: string, theirs: Uint8Array): { summary: Buffer; entries: number } {
    this.#ackSummary(peer, theirs);
    if (this.#summary.diff(theirs).length > 0 && this.isSource(peer) && this.#pairKey(theirs) !== this.#peer(peer).lastPair) this.scheduleCatchUp(peer);
    return { summary: Buffer.from(this.#summary.bytes), entries: this.#index.size };
  }

  handleEntries(req: EntriesReq): { entries: unknown[]; next?: [number, string] } {
    // The sorted list is built once per catch-up and reused for its next pages while the index
    // is unchanged (a page is 2,048 entries: sorting a large tree for each was quadratic).
    const key = [...req.buckets].sort((x, y) => x - y).join(',');
    let cached = this.#entriesList;
    if (cached === undefined || cached.key !== key || cached.gen !== this.#gen) {
      const want = new Set(req.buckets);
      const list: { b: number; r: IndexRecord }[] = [];
      for (const r of this.#index.values()) {
        const b = bucketOf(r.path);
        if (want.has(b)) list.push({ b, r });
      }
      list.sort((x, y) => x.b - y.b || (x.r.path < y.r.path ? -1 : x.r.path > y.r.path ? 1 : 0));
      this.#entriesList = cached = { key, gen: this.#gen, list };
    }
    const list = cached.list;
    let start = 0;
    if (req.after !== undefined) {
      // First entry after the cursor (binary search).
      const a = req.after;
      let hi = list.length;
      while (start < hi) {
        const mid = (start + hi) >>> 1;
        const x = list[mid]!;
        if (x.b > a.bucket || (x.b === a.bucket && x.r.path > a.path)) hi = mid;
        else start = mid + 1;
      }
    }
    const page = list.slice(start, start + MAX_ENTRIES_PER_MESSAGE);
    const last = page.at(-1);
    const more = start + page.length < list.length && last !== undefined;
    if (!more) this.#entriesList = undefined;
    return { entries: page.map((x) => encodeEntry(x.r, this.#names)), ...(more ? { next: [last.b, last.r.path] as [number, string] } : {}) };
  }

  handleNotify(peer: string, entries: WireVersion[]): number {
    if (!this.isSource(peer)) throw new RpcError('forbidden', `${peer} is not a source of one-way tree ${this.cfg.name}`);
    void this.applyRemote(peer, entries).then(
      (r) => {
        if (r.failed > 0 || r.skipped > 0) this.scheduleCatchUp(peer, 1000);
      },
      (e: unknown) => this.#log.warn({ peer, err: (e as Error).message }, 'applying a notification failed'),
    );
    return entries.length;
  }

  /** Serves a files.fetch stream: each file by path, or any local file with the same content. */
  async handleFetch(req: FetchReq, stream: RpcStream): Promise<void> {
    const checked = new Set<string>();
    await serveFetch(stream, req.files, (f) => this.#openServable(f, checked), this.#throttle, this.#sent);
  }

  async #openServable(f: FetchFile, checked: Set<string>): ReturnType<typeof openRegular> {
    for (const path of [f.path, ...this.#pathsWithHash(f.hash)]) {
      const rec = this.#index.get(path);
      if (rec === undefined || rec.deleted || rec.type !== 'file' || rec.hash !== f.hash) continue;
      const abs = await resolveInTree(this.cfg.root, path, checked).catch(() => null);
      if (abs === null) continue;
      // Opened without following a symlink, then checked against the index on the open file.
      const file = await openRegular(abs, (st) => Number(st.size) === rec.size && st.mtimeNs === rec.stMtimeNs && st.ino === rec.ino);
      if (file !== null) return file;
    }
    return null;
  }

  #pathsWithHash(hash: string): string[] {
    const set = this.#byHash.get(hash);
    if (set === undefined) return [];
    const out: string[] = [];
    for (const p of set) {
      out.push(p);
      if (out.length === 8) break;
    }
    return out;
  }

  // ------------------------------------------------------------------ applying remote versions

  /** Resolves and applies entries received from `peer`. */
  applyRemote(peer: string, received: WireVersion[]): Promise<{ applied: number; failed: number; skipped: number }> {
    // A tombstone's mtime is when the delete happened and decides when it is purged: one from the
    // future (a peer's clock, or a hostile peer) would never be, so it counts from now here.
    const nowNs = BigInt(Date.now()) * 1_000_000n;
    const remotes = received.map((r) => this.#localOwner(r.deleted && r.mtimeNs > nowNs ? { ...r, mtimeNs: nowNs } : r));
    return this.#serial(async () => {
      const none = { applied: 0, failed: 0, skipped: 0 };
      if (this.#stopped || this.#identity === undefined || this.#paused !== undefined) return none;
      const check = await checkTree(this.cfg.root, this.#identity);
      if (!check.ok) {
        this.#pause(`${check.reason}: ${check.message}`);
        return none;
      }
      const record: Change[] = [];
      const work: Work[] = [];
      const gone = await this.#goneMounts();
      let held = 0;
      for (const r of remotes) {
        if (this.#excluded(r.path, r.type === 'dir')) continue;
        // Nothing is written where a nested filesystem is missing: it waits for the mount.
        if (gone.some((g) => under(r.path, g))) {
          held++;
          continue;
        }
        const local = this.#index.get(r.path);
        const d = this.#receiver ? resolveMirror(local, r) : resolve(local, r);
        if (d.action === 'keep-local') {
          if (local === undefined) {
            // An old tombstone of a path unknown here is one the others are purging: not taken back
            // (a receiver takes it: it confirms by holding it, and nobody pulls from it).
            if (this.#receiver || !(r.deleted && this.#age(r, Date.now()) >= this.cfg.tombstoneMinAgeMs)) record.push({ before: undefined, after: { ...r, ino: 0n, stMtimeNs: 0n, racy: false } });
          } else if (compare(local.version, d.version) !== 'equal') record.push({ before: local, after: { ...local, version: d.version } });
        } else work.push({ local, remote: r, d });
      }
      this.#commit(record);
      const out = await this.#applyWork(peer, work);
      out.skipped += held;
      if (out.applied > 0) {
        this.#postSync.trigger(out.applied);
        this.#host.bus?.publish('files.synced', { tree: this.cfg.name, peer, applied: out.applied, failed: out.failed });
        this.#log.info({ peer, ...out }, 'remote changes applied');
      }
      return out;
    });
  }

  /**
   * Applies take-remote and conflict decisions (in the lane): content comes from `peer` (or a
   * local file with the same hash). Index records are saved at the end, in one transaction.
   */
  async #applyWork(peer: string, work: Work[]): Promise<{ applied: number; failed: number; skipped: number }> {
    const out = { applied: 0, failed: 0, skipped: 0 };
    // No mass-delete check here: it runs where deletes originate (#scanLocked), the only place
    // an unmount or a stray rm -rf can be told from intent; deletes an admin confirmed there
    // must then reach every node.
    // Writes first (parents before children), so moved content can still be copied locally;
    // content from the network is fetched in batches once every directory exists; deletes
    // last, deepest first; writes that failed for a not-yet-removed path retried after.
    const writes = work.filter((w) => !(w.d.action === 'take-remote' && w.remote.deleted)).sort((a, b) => depth(a.remote.path) - depth(b.remote.path));
    const dels = work.filter((w) => w.d.action === 'take-remote' && w.remote.deleted).sort((a, b) => depth(b.remote.path) - depth(a.remote.path));
    const retry: Work[] = [];
    const localChanges: IndexRecord[] = [];
    const ctx: ApplyCtx = { checked: new Set(), syncDirs: new Set(), touched: new Set(), kept: new Map() };
    let fetches: FetchJob[] = [];
    const failed = (w: Work, e: unknown, last: boolean): void => {
      if (e instanceof Skip) {
        out.skipped++;
        this.#scheduleScan();
      } else if (!last && ['ENOTEMPTY', 'EISDIR', 'ENOTDIR', 'EEXIST'].includes((e as NodeJS.ErrnoException).code ?? '')) retry.push(w);
      else {
        out.failed++;
        this.#log.warn({ peer, path: w.remote.path, err: (e as Error).message }, 'could not apply remote change');
      }
    };
    const run = async (w: Work, last: boolean): Promise<void> => {
      ctx.touched.add(parentOf(w.remote.path));
      if (w.remote.type === 'dir' && !w.remote.deleted) ctx.touched.add(w.remote.path);
      try {
        const made = await this.#applyOne(peer, w.remote, w.d, ctx, (job) => {
          fetches.push({
            item: job.item,
            done: async (r) => {
              if (r instanceof Error) return failed(w, r, last);
              try {
                await job.done(r);
                out.applied++;
              } catch (e) {
                failed(w, e, last);
              }
            },
          });
        });
        if (made === null) return; // content deferred to the fetch phase
        localChanges.push(...made);
        out.applied++;
      } catch (e) {
        failed(w, e, last);
      }
    };
    const fetchPhase = async (): Promise<void> => {
      const jobs = fetches;
      fetches = [];
      if (jobs.length === 0) return;
      this.#log.debug({ peer, files: jobs.length }, 'apply: fetching content');
      await this.#fetchAll(peer, jobs);
    };
    try {
      // Same-depth entries are independent (parents are one level up): several at once.
      for (let i = 0; i < writes.length;) {
        const d = depth(writes[i]!.remote.path);
        let j = i;
        while (j < writes.length && depth(writes[j]!.remote.path) === d) j++;
        await mapConcurrent(writes.slice(i, j), APPLY_CONCURRENCY, (w) => run(w, false));
        i = j;
      }
      await fetchPhase();
      for (const w of dels) await run(w, false);
      for (const w of retry.splice(0)) await run({ ...w, local: this.#index.get(w.remote.path) }, true);
      await fetchPhase();
      this.#log.debug({ peer }, 'apply: content done');
      await this.#restoreDirTimes(ctx.touched);
      // Renames of this run become durable (one fsync per directory), then the index records.
      await mapConcurrent([...ctx.syncDirs], 8, (d) => syncDir(d).catch(() => undefined));
    } finally {
      this.#flushDb();
      this.#log.debug({ peer, ...out }, 'apply: index saved');
      this.#selfWritesDone();
    }
    if (localChanges.length > 0) void this.#notifyPeers(localChanges);
    return out;
  }

  /**
   * Fetches content from `peer`: batches of up to MAX_FETCH_FILES files / FETCH_BATCH_BYTES,
   * FETCH_STREAMS streams at once. A file rebuilt wrongly from a false block match (truncated
   * strong sums) is fetched again with full-length sums.
   */
  async #fetchAll(peer: string, jobs: FetchJob[]): Promise<void> {
    const addr = this.#members().find((x) => x.name === peer)?.address;
    if (addr === undefined) {
      for (const j of jobs) await j.done(new FileSyncError('E_ARG', `peer ${peer} has no address`));
      return;
    }
    const batches: FetchJob[][] = [];
    let cur: FetchJob[] = [];
    let bytes = 0;
    // Spread many files over FETCH_STREAMS streams at least, so they are written in parallel.
    const perBatch = Math.min(MAX_FETCH_FILES, Math.max(16, Math.ceil(jobs.length / FETCH_STREAMS)));
    for (const j of jobs) {
      if (cur.length > 0 && (cur.length >= perBatch || bytes + j.item.size > FETCH_BATCH_BYTES)) {
        batches.push(cur);
        cur = [];
        bytes = 0;
      }
      cur.push(j);
      bytes += j.item.size;
    }
    if (cur.length > 0) batches.push(cur);
    // Batches of big files (bound by bytes: hashing, TLS, writeback) alternate with batches of
    // many small ones (bound by per-file calls): the streams in flight keep both kinds busy.
    const isBig = (b: FetchJob[]): boolean => b.length === 1 && b[0]!.item.size >= GROUP_SYNC_MAX;
    const big = batches.filter(isBig);
    const many = batches.filter((b) => !isBig(b));
    const order = Array.from({ length: Math.max(big.length, many.length) }, (_, k) => [many[k], big[k]]).flat().filter((b) => b !== undefined);
    const again: FetchJob[] = [];
    await mapConcurrent(order, FETCH_STREAMS, async (b) => {
      const size = b.reduce((n, j) => n + j.item.size, 0);
      this.#log.debug({ peer, files: b.length, bytes: size }, 'fetch: stream opened');
      await fetchBatch((body) => this.#host.peers.openStream(addr, 'files.fetch', body), this.cfg.name, b.map((j) => j.item), this.#recv, async (i, r) => {
        const j = b[i]!;
        const retry = r instanceof Error ? retryItem(r, j.item) : null;
        if (retry !== null) {
          this.#log.info({ path: j.item.path, err: (r as Error).message }, 'rebuilt file was wrong (false block match or damaged partial): fetching it again from scratch');
          again.push({ ...j, item: retry });
          return;
        }
        if (!(r instanceof Error)) this.#files.pulled++;
        await j.done(r);
      }, this.#group).catch(() => undefined); // every item of the batch was reported to its job
      this.#log.debug({ peer, files: b.length, bytes: size }, 'fetch: stream done');
    });
    if (again.length > 0) await this.#fetchAll(peer, again);
  }

  /** One file from `peer` now (conflict copies): a batch of one. */
  async #fetchNow(peer: string, item: FetchItem): Promise<PatchResult> {
    let out: PatchResult | Error = new FileSyncError('E_ARG', `fetch of ${item.path} reported nothing`);
    await this.#fetchAll(peer, [{ item, done: (r) => { out = r; return Promise.resolve(); } }]);
    if (out instanceof Error) throw out;
    return out;
  }

  /** Stat of a path we just wrote → the index record of version `v`. */
  async #recordFor(abs: string, v: FileVersion, version: FileVersion['version']): Promise<IndexRecord> {
    const st = await lstatOrNull(abs);
    if (st === null) throw new FileSyncError('E_ARG', `${abs} vanished right after it was written`);
    return { ...v, version, ino: st.ino, stMtimeNs: st.mtimeNs, racy: false };
  }

  /**
   * Applies one decision; returns new local entries it created (conflict copies), or null when
   * the content was handed to `defer` (fetched later in a batch; the job records the result).
   */
  async #applyOne(peer: string, r: FileVersion, d: ReturnType<typeof resolve>, ctx: ApplyCtx, defer: (job: FetchJob) => void): Promise<IndexRecord[] | null> {
    const abs = await resolveInTree(this.cfg.root, r.path, ctx.checked);
    const local = this.#index.get(r.path);
    // A one-way receiver mirrors the sources: what is on its disk is replaced, never kept.
    const mirror = this.#receiver;
    // Last check right before the disk is changed (a file's rename, a delete, a symlink, new
    // metadata): a local edit made meanwhile wins. A directory that this version replaces was
    // removed by us (clearForType): then nothing may be there.
    const clearsDir = local !== undefined && !local.deleted && local.type === 'dir' && !r.deleted && r.type !== 'dir';
    const guard = mirror ? undefined : (): Promise<void> => {
      const now = this.#index.get(r.path);
      const ok = diskMatchesNow(abs, now) || (clearsDir && now === local && diskMatchesNow(abs, undefined));
      return ok ? Promise.resolve() : Promise.reject(new Skip(`${r.path} changed locally during the transfer`));
    };
    // A new file touches the disk only by its final rename, which `guard` checks just before:
    // no separate check first. Anything else is checked before we touch it.
    const newFile = d.action === 'take-remote' && !r.deleted && r.type === 'file' && (local === undefined || local.deleted);
    const trusted = newFile && !mirror ? true : await diskMatches(abs, local);
    if (!trusted && !mirror) throw new Skip(`${r.path} changed locally since the last scan`);
    this.#selfWrite(r.path, !r.deleted && r.type === 'dir');
    if (d.action === 'take-remote') {
      // Receiver, disk not as indexed: rewritten whole, with the file found there as delta basis.
      const item = trusted ? await this.#materialize(r, abs, local, null, ctx, true, guard) : await this.#materialize(r, abs, undefined, await fileBasis(abs), ctx);
      if (item !== null) {
        defer({
          item,
          done: (res) => {
            if (res instanceof Error) return Promise.reject(res);
            this.#commit([{ before: this.#index.get(r.path), after: { ...r, version: d.version, ino: res.ino, stMtimeNs: res.mtimeNs, racy: false } }]);
            return Promise.resolve();
          },
        });
        return null;
      }
      this.#commit([{ before: local, after: r.deleted ? { ...r, version: d.version, ino: ctx.kept.get(r.path) ?? 0n, stMtimeNs: 0n, racy: false } : await this.#recordFor(abs, r, d.version) }]);
      return [];
    }
    if (d.action !== 'conflict') return [];
    const copyPath = validatePeerPath(d.conflictCopy);
    const copyAbs = await resolveInTree(this.cfg.root, copyPath, ctx.checked);
    this.#selfWrite(copyPath);
    const made: IndexRecord[] = [];
    const prevCopy = this.#index.get(copyPath);
    const copyVersion = bump(prevCopy?.version ?? emptyVector(), this.#host.node, this.#clock);
    const fetched = async (item: FetchItem | null, target: string, v: FileVersion, version: FileVersion['version']): Promise<IndexRecord> => {
      if (item === null) return this.#recordFor(target, v, version);
      const res = await this.#fetchNow(peer, item);
      return { ...v, version, ino: res.ino, stMtimeNs: res.mtimeNs, racy: false };
    };
    if (d.winner === 'local') {
      // Keep ours under the name; the peer's content goes to the conflict copy.
      if (!r.deleted && r.type !== 'dir') {
        const item = await this.#materialize(r, copyAbs, undefined, null, ctx);
        const rec = { ...(await fetched(item, copyAbs, { ...r, path: copyPath }, copyVersion)), modifiedBy: r.modifiedBy };
        this.#commit([{ before: prevCopy, after: rec }]);
        made.push(rec);
      }
      this.#commit([{ before: local, after: { ...local!, version: d.version } }]);
    } else {
      // Ours loses: move it aside (same name on every node), then take the peer's version.
      if (local !== undefined && !local.deleted && local.type !== 'dir') {
        await rename(abs, copyAbs);
        ctx.syncDirs.add(dirname(copyAbs));
        const rec = { ...(await this.#recordFor(copyAbs, { ...local, path: copyPath }, copyVersion)) };
        this.#commit([{ before: prevCopy, after: rec }]);
        made.push(rec);
      }
      const basis = local?.type === 'file' && !local.deleted ? copyAbs : null;
      const item = await this.#materialize(r, abs, undefined, basis, ctx);
      this.#commit([{ before: this.#index.get(r.path), after: r.deleted ? { ...r, version: d.version, ino: 0n, stMtimeNs: 0n, racy: false } : await fetched(item, abs, r, d.version) }]);
    }
    const loser = d.winner === 'local' ? r.modifiedBy : (local?.modifiedBy ?? this.#host.node);
    const winner = d.winner === 'local' ? (local?.modifiedBy ?? this.#host.node) : r.modifiedBy;
    this.#db.addConflict({ path: r.path, copy: copyPath, winner, loser, at: Date.now() });
    this.#log.warn({ path: r.path, copy: copyPath, winner, loser }, 'conflict: the losing version was kept as a conflict copy');
    this.#host.bus?.publish('files.conflict', { tree: this.cfg.name, path: r.path, copy: copyPath, winner, loser });
    return made;
  }

  /** Options for patch()/copyLocal() writing version `r` at `abs` (metadata set before the rename). */
  #patchOpts(r: FileVersion, abs: string, ctx: ApplyCtx, guard?: () => Promise<void>): Omit<PatchOptions, 'maxSize'> {
    ctx.syncDirs.add(dirname(abs));
    const o: Omit<PatchOptions, 'maxSize'> = { syncDir: false, mtime: Number(r.mtimeNs / 1000n) / 1e6 };
    if (guard !== undefined) o.beforeRename = guard;
    if (this.cfg.permissions === 'preserve') o.mode = r.mode;
    if (this.#ownersApplied) o.owner = { uid: r.uid, gid: r.gid };
    return o;
  }

  /**
   * Makes `abs` hold version `r` (content + metadata), or removes it for a tombstone. `local` is
   * what the index says is there now (already checked against the disk); `basis` overrides the
   * delta basis (conflict: our moved-aside file). Returns the fetch to run when the content must
   * come from the peer (whole file, or delta against the current file), else null (done).
   */
  async #materialize(r: FileVersion, abs: string, local: IndexRecord | undefined, basis: string | null, ctx: ApplyCtx, verified = false, guard?: () => Promise<void>): Promise<FetchItem | null> {
    if (r.deleted) {
      await guard?.();
      try {
        await removePath(abs);
      } catch (e) {
        if ((e as NodeJS.ErrnoException).code !== 'ENOTEMPTY' || r.type !== 'dir' || (await this.#heldBy(r.path)) !== 'excluded') throw e;
        const st = await lstatOrNull(abs);
        if (st?.isDirectory() !== true) throw e;
        ctx.kept.set(r.path, st.ino);
        this.#log.info({ path: r.path }, 'a directory deleted by a peer stays here for its excluded content');
      }
      this.#files.deleted++;
      return null;
    }
    // `verified`: the disk was just checked against `local` (a new file: is checked by `guard`
    // before its rename), so only a type change needs clearing.
    if (!verified || (local !== undefined && !local.deleted && (local.type === 'dir') !== (r.type === 'dir'))) await clearForType(abs, r.type);
    if (r.type === 'dir') {
      await ensureDir(abs);
    } else if (r.type === 'symlink') {
      await guard?.();
      await writeSymlink(abs, r.target!);
    } else if (local !== undefined && !local.deleted && local.type === 'file' && local.hash === r.hash) {
      await guard?.();
      this.#files.metadataOnly++;
    } else {
      const opts = this.#patchOpts(r, abs, ctx, guard);
      if (await this.#copyFromLocal(r, abs, opts, ctx)) return null;
      const b = basis ?? (local !== undefined && !local.deleted && local.type === 'file' && local.size >= MIN_DELTA_BASIS ? abs : null);
      if (r.size >= RESUME_MIN_BYTES) opts.partial = await preparePartial(abs, r.hash!, r.size);
      return { path: r.path, hash: r.hash!, size: r.size, basis: b, target: abs, patch: opts };
    }
    await applyMeta(abs, r, this.cfg);
    return null;
  }

  async #copyFromLocal(r: FileVersion, target: string, opts: Omit<PatchOptions, 'maxSize'>, ctx: ApplyCtx): Promise<boolean> {
    for (const p of this.#pathsWithHash(r.hash!)) {
      const rec = this.#index.get(p);
      if (rec === undefined) continue;
      const src = await resolveInTree(this.cfg.root, p, ctx.checked).catch(() => null);
      if (src === null || !(await diskMatches(src, rec))) continue;
      try {
        await copyLocal(src, { hash: r.hash!, size: r.size, target, patch: opts });
        this.#files.copiedLocally++;
        return true;
      } catch {
        continue;
      }
    }
    return false;
  }

  // ------------------------------------------------------------------ admin

  /** Clears a pause (accepting a held mass delete once), rescans verifying every hash, catches up. */
  async resync(): Promise<void> {
    await this.#serial(async () => {
      const check = this.#identity === undefined ? { ok: false as const } : await checkTree(this.cfg.root, this.#identity);
      if (!check.ok) {
        // Admin confirmed the root as it is now: start over as a node joining with no index.
        await mkdir(this.cfg.root, { recursive: true });
        this.#identity = await initTree(this.cfg.root, this.treeId, this.#host.node).catch(async (e: unknown) => {
          if (e instanceof FileSyncError) {
            await rename(`${this.cfg.root}/.multiall-tree`, `${this.cfg.root}/.multiall-tree.old-${Date.now()}`).catch(() => undefined);
            return initTree(this.cfg.root, this.treeId, this.#host.node);
          }
          throw e;
        });
        this.#db.setIdentity(this.#identity);
        this.#dirty.clear();
        this.#db.clear();
        for (const r of this.#index.values()) this.#summary.update(r, undefined);
        this.#index.clear();
        this.#gen++;
        this.#tombs.clear();
        this.#acks.clear();
        this.#acksDirty.clear();
        this.#byHash.clear();
      }
      if (this.#paused?.startsWith('mass-delete') === true) this.#allowMassDelete = true;
      // Nested filesystems: the ones mounted now are the tree's; one that is gone is accepted as gone.
      this.#db.setMounts((this.#mounts = new Set(await mountsUnder(this.cfg.root))));
      this.#paused = undefined;
      this.#db.setPaused(null);
      this.#host.bus?.publish('files.resumed', { tree: this.cfg.name });
      this.#log.info('tree resumed by admin');
    });
    await this.scanNow({ verify: true });
    for (const p of this.#peers.values()) p.lastPair = '';
    this.catchUpAll();
  }

  status(): TreeStatus {
    let entries = 0;
    let tombstones = 0;
    for (const r of this.#index.values()) if (r.deleted) tombstones++; else entries++;
    const rows = new Map(this.#db.peers().map((r) => [r.peer, r]));
    const peers = this.#members().map((m): PeerStatus => {
      const p = this.#peers.get(m.name);
      const row = rows.get(m.name);
      const inSync = p?.inSync ?? row?.inSync;
      const behind = p?.behind ?? row?.behind ?? 0;
      const lastError = p?.lastError ?? row?.lastError ?? null;
      const state = !m.alive ? 'unreachable' : inSync === undefined ? 'unknown' : inSync ? 'in-sync' : behind > 0 ? 'behind' : 'differs';
      return { peer: m.name, alive: m.alive, state, behind, lastSyncAt: p?.lastSyncAt ?? row?.lastSyncAt ?? null, lastError };
    });
    return {
      tree: this.cfg.name, pool: this.cfg.pool, root: this.cfg.root, paused: this.#paused ?? null, watching: this.#watcher?.active === true,
      entries, tombstones, conflicts: this.#db.conflicts().length, lastScanAt: this.#lastScanAt, lastScan: this.#lastScan, peers,
      bytes: { received: this.#recv.opBytes, sent: this.#sent.opBytes, sigSent: this.#recv.sigBytes, sigReceived: this.#sent.sigBytes, resumed: this.#recv.resumedBytes },
      files: { ...this.#files },
    };
  }

  conflicts(): ConflictRow[] {
    return this.#db.conflicts();
  }

  /** The index record of a path (tests, CLI). */
  record(path: string): IndexRecord | undefined {
    return this.#index.get(path);
  }
}
