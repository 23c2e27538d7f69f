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
import { mkdir, rename } from 'node:fs/promises';
import type { PeerAddress, RpcClientPool } from '../rpc/client.ts';
import type { RpcStream } from '../rpc/connection.ts';
import { RpcError } from '../rpc/errors.ts';
import type { Store } from '../state/store.ts';
import type { Logger } from '../log/logger.ts';
import { Summary, bucketOf } from './buckets.ts';
import { FileSyncError } from './errors.ts';
import { applyMeta, clearForType, diskMatches, ensureDir, lstatOrNull, removePath, writeSymlink } from './diskops.ts';
import { checkMassDelete, checkTree, initTree } from './guards.ts';
import type { TreeIdentity } from './guards.ts';
import type { Entry } from './index/entry.ts';
import { IgnoreMatcher } from './index/gitignore.ts';
import { HashCache } from './index/hashcache.ts';
import { scan } from './index/scanner.ts';
import { IndexStore } from './indexstore.ts';
import type { ConflictRow } from './indexstore.ts';
import { PostSync } from './postsync.ts';
import { MAX_ENTRIES_PER_MESSAGE, decodeEntriesRes, decodeSummaryRes, encodeEntry } from './protocol.ts';
import type { EntriesReq } from './protocol.ts';
import { resolve } from './resolve.ts';
import type { FileVersion } from './resolve.ts';
import { resolveInTree, validatePeerPath } from './safety.ts';
import { Throttle } from './throttle.ts';
import { copyLocal, fetchContent, sendContent } from './transfer.ts';
import type { TransferCounters } from './transfer.ts';
import type { IndexRecord, TreeConfig } from './types.ts';
import { bump, compare, emptyVector } from './versionvector.ts';
import { TreeWatcher } from './watcher.ts';

export interface Member {
  name: string;
  address?: PeerAddress;
  alive: boolean;
}

/** Event sink (the agent's EventBus). Kinds: files.conflict, files.synced, files.paused, files.resumed, files.post_sync. */
export interface FilesEventSink {
  publish(kind: string, data: unknown): void;
}

export interface TreeHost {
  node: string;
  store: Store;
  peers: Pick<RpcClientPool, 'call' | 'openStream'>;
  members(pool: string): Member[];
  bus?: FilesEventSink;
  logger: Logger;
  /** Interval of summary comparisons with every alive peer (default 60 s). */
  antiEntropyMs?: number;
  /** Start fs.watch (default true; tests may drive scans by hand). */
  watch?: boolean;
  rpcTimeoutMs?: number;
}

export interface PeerStatus {
  peer: string;
  alive: boolean;
  state: 'in-sync' | 'behind' | 'differs' | 'unreachable' | 'unknown';
  /** Remote changes found but not applied yet (or that failed) at the last catch-up. */
  behind: number;
  lastSyncAt: number | null;
  lastError: string | null;
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
  /** Files hashed vs hashes reused by the last scan (a restart rehashes only changed files). */
  lastScan: { hashed: number; reused: number } | null;
  peers: PeerStatus[];
  /** Wire bytes of content transfers (encoded delta ops and signatures) since start. */
  bytes: { received: number; sent: number; sigSent: number; sigReceived: number };
  files: { pulled: number; copiedLocally: number; deleted: number; metadataOnly: number };
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

class Skip extends Error {}

const IS_ROOT = typeof process.getuid === 'function' && process.getuid() === 0;

/** Content pulls in flight per batch. */
const APPLY_CONCURRENCY = 8;
const depth = (p: string): number => p.split('/').length;
const under = (p: string, dir: string): boolean => p === dir || p.startsWith(`${dir}/`);

export class TreeSync {
  readonly cfg: TreeConfig;
  readonly #host: TreeHost;
  readonly #log: Logger;
  readonly #db: IndexStore;
  readonly #index = new Map<string, IndexRecord>();
  readonly #summary = new Summary();
  readonly #hashCache = new HashCache(200_000);
  readonly #exclude: IgnoreMatcher;
  readonly #include: IgnoreMatcher | null;
  readonly #peers = new Map<string, PeerState>();
  readonly #throttle: Throttle | undefined;
  readonly #postSync: PostSync;
  readonly #recv: TransferCounters = { opBytes: 0, sigBytes: 0 };
  readonly #sent: TransferCounters = { opBytes: 0, sigBytes: 0 };
  readonly #files = { pulled: 0, copiedLocally: 0, deleted: 0, metadataOnly: 0 };
  #identity: TreeIdentity | undefined;
  #paused: string | undefined;
  #allowMassDelete = false;
  #lane: Promise<unknown> = Promise.resolve();
  #watcher: TreeWatcher | undefined;
  #timers: NodeJS.Timeout[] = [];
  #scanSoon: NodeJS.Timeout | undefined;
  #lastScanAt: number | null = null;
  #lastScan: { hashed: number; reused: number } | null = null;
  #stopped = false;
  #alive = new Set<string>();

  constructor(cfg: TreeConfig, host: TreeHost) {
    this.cfg = cfg;
    this.#host = host;
    this.#log = host.logger.child({ component: 'files', tree: cfg.name });
    this.#db = new IndexStore(host.store, cfg.name);
    this.#exclude = new IgnoreMatcher(cfg.exclude);
    this.#include = cfg.include === undefined ? null : new IgnoreMatcher(cfg.include);
    this.#throttle = cfg.bandwidthBps === undefined ? undefined : new Throttle(cfg.bandwidthBps);
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
    for (const r of this.#db.load().values()) this.#put(undefined, r);
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
    await this.scanNow();
    if (this.#host.watch !== false) this.#startWatcher();
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
    for (const p of this.#peers.values()) clearTimeout(p.timer);
    await this.#postSync.stop();
    await this.#lane.catch(() => undefined);
  }

  #startWatcher(): void {
    this.#watcher ??= new TreeWatcher(this.cfg.root, this.cfg.debounceMs, () => void this.scanNow(), (err) => {
      const code = (err as NodeJS.ErrnoException).code;
      const hint = code === 'ENOSPC' ? ' (inotify watch limit: raise fs.inotify.max_user_watches)' : code === 'EMFILE' ? ' (too many open files)' : '';
      this.#log.warn({ err: err.message, code, scanIntervalMs: this.cfg.scanIntervalMs }, `file watching failed${hint}: relying on periodic scans`);
    });
    this.#watcher.start();
  }

  #serial<T>(fn: () => Promise<T>): Promise<T> {
    const p = this.#lane.then(fn, fn);
    this.#lane = p.catch(() => undefined);
    return p;
  }

  // ------------------------------------------------------------------ index

  #put(before: IndexRecord | undefined, after: IndexRecord): void {
    this.#summary.update(before, after);
    this.#index.set(after.path, after);
  }

  #commit(changes: Change[]): void {
    if (changes.length === 0) return;
    this.#db.save(changes.map((c) => c.after));
    for (const c of changes) this.#put(c.before, c.after);
  }

  #excluded(path: string, isDir: boolean): boolean {
    if (this.#exclude.ignores(path, isDir)) return true;
    return this.#include !== null && isDir === false && !this.#include.ignores(path, false);
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

  /** Scans the tree and records local changes (bumped versions, tombstones); notifies peers. */
  scanNow(opts: { verify?: boolean } = {}): Promise<number> {
    return this.#serial(async () => {
      if (this.#stopped || this.#identity === undefined) return 0;
      try {
        const changes = await this.#scanLocked(opts.verify === true);
        if (changes.length > 0) void this.#notifyPeers(changes.map((c) => c.after));
        return changes.length;
      } catch (e) {
        this.#log.error({ err: (e as Error).message }, 'scan failed');
        return 0;
      }
    });
  }

  async #scanLocked(verify: boolean): Promise<Change[]> {
    const check = await checkTree(this.cfg.root, this.#identity!);
    if (!check.ok) {
      this.#pause(`${check.reason}: ${check.message}`);
      return [];
    }
    if (this.#paused !== undefined) return [];
    const previous = new Map<string, Entry>();
    if (!verify) {
      for (const r of this.#index.values()) {
        if (r.deleted) continue;
        const e: Entry = { path: r.path, type: r.type, size: r.size, mtimeNs: r.stMtimeNs, mode: r.mode, uid: r.uid, gid: r.gid, ino: r.ino };
        if (r.hash !== undefined) e.hash = r.hash;
        if (r.racy) e.racy = true;
        previous.set(r.path, e);
      }
    }
    const res = await scan(this.cfg.root, { exclude: this.cfg.exclude, include: this.cfg.include, previous, hashCache: this.#hashCache });
    this.#lastScanAt = Date.now();
    this.#lastScan = { hashed: res.stats.hashed, reused: res.stats.reused };
    // An unreadable directory must not look like deleted content.
    const blind = res.problems.map((p) => p.path);
    for (const p of res.problems) this.#log.warn(p, 'scan problem');
    const node = this.#host.node;
    const changes: Change[] = [];
    let live = 0;
    let deletes = 0;
    for (const e of res.entries.values()) {
      const rec = this.#index.get(e.path);
      const fresh = rec === undefined || rec.deleted;
      const changed = fresh || this.#differs(rec, e);
      const statOnly = !changed && (rec.ino !== e.ino || rec.stMtimeNs !== e.mtimeNs || rec.racy !== (e.racy === true));
      if (!changed && !statOnly) continue;
      const after: IndexRecord = {
        path: e.path, type: e.type, deleted: false,
        version: changed ? bump(rec?.version ?? emptyVector(), node) : rec.version,
        modifiedBy: changed ? node : rec.modifiedBy,
        mtimeNs: e.type === 'dir' && !fresh && rec.type === 'dir' ? rec.mtimeNs : changed ? e.mtimeNs : rec.mtimeNs,
        mode: e.mode, uid: e.uid, gid: e.gid, size: e.size, ino: e.ino, stMtimeNs: e.mtimeNs, racy: e.racy === true,
      };
      if (!changed) Object.assign(after, { mode: rec.mode, uid: rec.uid, gid: rec.gid });
      if (e.hash !== undefined) after.hash = e.hash;
      if (e.target !== undefined) after.target = e.target;
      changes.push({ before: rec, after });
    }
    for (const r of this.#index.values()) {
      if (r.deleted) continue;
      live++;
      if (res.entries.has(r.path) || blind.some((b) => under(r.path, b))) continue;
      if (this.#excluded(r.path, r.type === 'dir')) continue; // newly excluded: forget silently (not a delete)
      deletes++;
      changes.push({ before: r, after: { ...r, deleted: true, version: bump(r.version, node), modifiedBy: node, ino: 0n, stMtimeNs: 0n, racy: false } });
    }
    if (!this.#allowMassDelete) {
      const md = checkMassDelete(live, deletes, { maxPercent: this.cfg.maxDeletePercent });
      if (!md.ok) {
        this.#pause(`mass-delete: local ${md.message}`);
        return [];
      }
    }
    this.#allowMassDelete = false;
    this.#commit(changes);
    const bumped = changes.filter((c) => c.before === undefined || c.before.version !== c.after.version);
    if (bumped.length > 0) this.#log.info({ changes: bumped.length, deletes }, 'local changes recorded');
    return bumped;
  }

  #differs(rec: IndexRecord, e: Entry): boolean {
    if (rec.type !== e.type) return true;
    if (e.type === 'file' && (rec.hash !== e.hash || rec.stMtimeNs !== e.mtimeNs)) return true;
    if (e.type === 'symlink' && rec.target !== e.target) return true;
    if (this.cfg.permissions === 'preserve' && e.type !== 'symlink' && rec.mode !== e.mode) return true;
    // Owners are only applied as root, so elsewhere a differing uid is not a change to sync.
    return IS_ROOT && this.cfg.owner === 'preserve' && (rec.uid !== e.uid || rec.gid !== e.gid);
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
      this.#db.setPeer({ peer: name, lastSyncAt: p.lastSyncAt, inSync: p.inSync === true, behind: p.behind, lastError: p.lastError });
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
    const res = decodeSummaryRes(await this.#host.peers.call(this.#addr(m), 'files.summary', { tree: this.cfg.name, summary: Buffer.from(this.#summary.bytes) }, { timeoutMs }));
    let diff = this.#summary.diff(res.summary);
    let failed = 0;
    let pending = 0;
    if (diff.length > 0 && this.#paused === undefined) {
      let after: [number, string] | undefined;
      for (;;) {
        const page = decodeEntriesRes(await this.#host.peers.call(this.#addr(m), 'files.entries', { tree: this.cfg.name, buckets: diff, ...(after ? { after } : {}) }, { timeoutMs }));
        const r = await this.applyRemote(m.name, page.entries);
        failed += r.failed;
        pending += r.skipped;
        if (page.next === undefined) break;
        after = [page.next.bucket, page.next.path];
      }
      diff = this.#summary.diff(res.summary);
    }
    p.inSync = diff.length === 0;
    p.behind = failed + pending;
    p.lastSyncAt = Date.now();
    p.lastPair = this.#pairKey(res.summary);
    return failed;
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
          const entries = changes.slice(i, i + MAX_ENTRIES_PER_MESSAGE).map(encodeEntry);
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
    if (this.#summary.diff(theirs).length > 0 && this.isSource(peer) && this.#pairKey(theirs) !== this.#peer(peer).lastPair) this.scheduleCatchUp(peer);
    return { summary: Buffer.from(this.#summary.bytes), entries: this.#index.size };
  }

  handleEntries(req: EntriesReq): { entries: unknown[]; next?: [number, string] } {
    const want = new Set(req.buckets);
    const list: { b: number; r: IndexRecord }[] = [];
    for (const r of this.#index.values()) {
      const b = bucketOf(r.path);
      if (want.has(b)) list.push({ b, r });
    }
    list.sort((x, y) => x.b - y.b || (x.r.path < y.r.path ? -1 : x.r.path > y.r.path ? 1 : 0));
    let start = 0;
    if (req.after !== undefined) {
      const a = req.after;
      start = list.findIndex((x) => x.b > a.bucket || (x.b === a.bucket && x.r.path > a.path));
      if (start < 0) start = list.length;
    }
    const page = list.slice(start, start + MAX_ENTRIES_PER_MESSAGE);
    const last = page.at(-1);
    const more = start + page.length < list.length && last !== undefined;
    return { entries: page.map((x) => encodeEntry(x.r)), ...(more ? { next: [last.b, last.r.path] as [number, string] } : {}) };
  }

  handleNotify(peer: string, entries: FileVersion[]): number {
    if (!this.isSource(peer)) throw new RpcError('forbidden', `${peer} is not a source of one-way tree ${this.cfg.name}`);
    void this.applyRemote(peer, entries).then(
      (r) => {
        if (r.failed > 0 || r.skipped > 0) this.scheduleCatchUp(peer, 1000);
      },
      (e: unknown) => this.#log.warn({ peer, err: (e as Error).message }, 'applying a notification failed'),
    );
    return entries.length;
  }

  /** Streams the content with hash `hash` (at `path`, or any local file with that hash). */
  async handlePull(req: { path: string; hash: string; sigBytes: number }, stream: RpcStream): Promise<void> {
    const candidates = [req.path, ...this.#pathsWithHash(req.hash)];
    for (const path of candidates) {
      const rec = this.#index.get(path);
      if (rec === undefined || rec.deleted || rec.type !== 'file' || rec.hash !== req.hash) continue;
      const abs = await resolveInTree(this.cfg.root, path);
      if (!(await diskMatches(abs, rec))) continue;
      await sendContent(stream, abs, req.sigBytes, this.#throttle, this.#sent);
      return;
    }
    throw new RpcError('not_found', `no file with content ${req.hash.slice(0, 16)}… in tree ${this.cfg.name}`);
  }

  #pathsWithHash(hash: string): string[] {
    const rows = this.#host.store.db.prepare('SELECT path FROM fs_files WHERE tree = ? AND hash = ? AND deleted = 0 LIMIT 8').all(this.cfg.name, hash) as { path: string }[];
    return rows.map((r) => r.path);
  }

  // ------------------------------------------------------------------ applying remote versions

  /** Resolves and applies entries received from `peer`. */
  applyRemote(peer: string, remotes: FileVersion[]): Promise<{ applied: number; failed: number; skipped: number }> {
    return this.#serial(async () => {
      const out = { applied: 0, failed: 0, skipped: 0 };
      if (this.#stopped || this.#identity === undefined || this.#paused !== undefined) return out;
      const check = await checkTree(this.cfg.root, this.#identity);
      if (!check.ok) {
        this.#pause(`${check.reason}: ${check.message}`);
        return out;
      }
      const record: Change[] = [];
      const work: { local: IndexRecord | undefined; remote: FileVersion; d: ReturnType<typeof resolve> }[] = [];
      for (const r of remotes) {
        if (this.#excluded(r.path, r.type === 'dir')) continue;
        const local = this.#index.get(r.path);
        const d = resolve(local, r);
        if (d.action === 'keep-local') {
          if (local === undefined) record.push({ before: undefined, after: { ...r, ino: 0n, stMtimeNs: 0n, racy: false } });
          else if (compare(local.version, d.version) !== 'equal') record.push({ before: local, after: { ...local, version: d.version } });
        } else work.push({ local, remote: r, d });
      }
      this.#commit(record);
      // No mass-delete check here: it runs where deletes originate (#scanLocked), the only place
      // an unmount or a stray rm -rf can be told from intent; deletes an admin confirmed there
      // must then reach every node.
      // Writes first (parents before children), so moved content can still be copied locally;
      // deletes last, deepest first; writes that failed for a not-yet-removed path retried after.
      const writes = work.filter((w) => !(w.d.action === 'take-remote' && w.remote.deleted)).sort((a, b) => depth(a.remote.path) - depth(b.remote.path));
      const dels = work.filter((w) => w.d.action === 'take-remote' && w.remote.deleted).sort((a, b) => depth(b.remote.path) - depth(a.remote.path));
      const retry: typeof work = [];
      const localChanges: IndexRecord[] = [];
      const run = async (w: (typeof work)[number], last: boolean): Promise<void> => {
        try {
          const made = await this.#applyOne(peer, w.remote, w.d);
          localChanges.push(...made);
          out.applied++;
        } catch (e) {
          if (e instanceof Skip) {
            out.skipped++;
            this.#scheduleScan();
          } else if (!last && ['ENOTEMPTY', 'EISDIR', 'ENOTDIR', 'EEXIST'].includes((e as NodeJS.ErrnoException).code ?? '')) retry.push(w);
          else {
            out.failed++;
            this.#log.warn({ peer, path: w.remote.path, err: (e as Error).message }, 'could not apply remote change');
          }
        }
      };
      // Same-depth entries are independent (parents are one level up): pull several at once so
      // per-file round trips and fsyncs overlap.
      for (let i = 0; i < writes.length;) {
        const d = depth(writes[i]!.remote.path);
        let j = i;
        while (j < writes.length && depth(writes[j]!.remote.path) === d) j++;
        const level = writes.slice(i, j);
        let next = 0;
        await Promise.all(Array.from({ length: Math.min(APPLY_CONCURRENCY, level.length) }, async () => {
          while (next < level.length) await run(level[next++]!, false);
        }));
        i = j;
      }
      for (const w of dels) await run(w, false);
      for (const w of retry) await run({ ...w, local: this.#index.get(w.remote.path) }, true);
      if (out.applied > 0) {
        this.#postSync.trigger(out.applied);
        this.#host.bus?.publish('files.synced', { tree: this.cfg.name, peer, applied: out.applied, failed: out.failed });
        this.#log.info({ peer, ...out }, 'remote changes applied');
      }
      if (localChanges.length > 0) void this.#notifyPeers(localChanges);
      return out;
    });
  }

  /** Stat of a path we just wrote → the index record of version `v`. */
  async #recordFor(abs: string, v: FileVersion, version: FileVersion['version']): Promise<IndexRecord> {
    const st = await lstatOrNull(abs);
    if (st === null) throw new FileSyncError('E_ARG', `${abs} vanished right after it was written`);
    return { ...v, version, ino: st.ino, stMtimeNs: st.mtimeNs, racy: false };
  }

  /** Applies one decision; returns new local entries it created (conflict copies). */
  async #applyOne(peer: string, r: FileVersion, d: ReturnType<typeof resolve>): Promise<IndexRecord[]> {
    const abs = await resolveInTree(this.cfg.root, r.path);
    const local = this.#index.get(r.path);
    if (!(await diskMatches(abs, local))) throw new Skip(`${r.path} changed locally since the last scan`);
    if (d.action === 'take-remote') {
      await this.#materialize(peer, r, abs, local, null);
      this.#commit([{ before: local, after: r.deleted ? { ...r, version: d.version, ino: 0n, stMtimeNs: 0n, racy: false } : await this.#recordFor(abs, r, d.version) }]);
      return [];
    }
    if (d.action !== 'conflict') return [];
    const copyPath = validatePeerPath(d.conflictCopy);
    const copyAbs = await resolveInTree(this.cfg.root, copyPath);
    const made: IndexRecord[] = [];
    const prevCopy = this.#index.get(copyPath);
    const copyVersion = bump(prevCopy?.version ?? emptyVector(), this.#host.node);
    if (d.winner === 'local') {
      // Keep ours under the name; the peer's content goes to the conflict copy.
      if (!r.deleted && r.type !== 'dir') {
        await this.#materialize(peer, r, copyAbs, undefined, null);
        const rec = { ...(await this.#recordFor(copyAbs, { ...r, path: copyPath }, copyVersion)), modifiedBy: r.modifiedBy };
        this.#commit([{ before: prevCopy, after: rec }]);
        made.push(rec);
      }
      this.#commit([{ before: local, after: { ...local!, version: d.version } }]);
    } else {
      // Ours loses: move it aside (same name on every node), then take the peer's version.
      if (local !== undefined && !local.deleted && local.type !== 'dir') {
        await rename(abs, copyAbs);
        const rec = { ...(await this.#recordFor(copyAbs, { ...local, path: copyPath }, copyVersion)) };
        this.#commit([{ before: prevCopy, after: rec }]);
        made.push(rec);
      }
      const basis = local?.type === 'file' && !local.deleted ? copyAbs : null;
      await this.#materialize(peer, r, abs, undefined, basis);
      this.#commit([{ before: this.#index.get(r.path), after: r.deleted ? { ...r, version: d.version, ino: 0n, stMtimeNs: 0n, racy: false } : await this.#recordFor(abs, r, d.version) }]);
    }
    const loser = d.winner === 'local' ? r.modifiedBy : (local?.modifiedBy ?? this.#host.node);
    const winner = d.winner === 'local' ? (local?.modifiedBy ?? this.#host.node) : r.modifiedBy;
    this.#db.addConflict({ path: r.path, copy: copyPath, winner, loser, at: Date.now() });
    this.#log.warn({ path: r.path, copy: copyPath, winner, loser }, 'conflict: the losing version was kept as a conflict copy');
    this.#host.bus?.publish('files.conflict', { tree: this.cfg.name, path: r.path, copy: copyPath, winner, loser });
    return made;
  }

  /**
   * Makes `abs` hold version `r` (content + metadata), or removes it for a tombstone. `local` is
   * what the index says is there now (already checked against the disk); `basis` overrides the
   * delta basis (conflict: our moved-aside file).
   */
  async #materialize(peer: string, r: FileVersion, abs: string, local: IndexRecord | undefined, basis: string | null): Promise<void> {
    if (r.deleted) {
      await removePath(abs);
      this.#files.deleted++;
      return;
    }
    await clearForType(abs, r.type);
    if (r.type === 'dir') {
      await ensureDir(abs);
    } else if (r.type === 'symlink') {
      await writeSymlink(abs, r.target!);
    } else if (local !== undefined && !local.deleted && local.type === 'file' && local.hash === r.hash) {
      this.#files.metadataOnly++;
    } else {
      const mode = this.cfg.permissions === 'preserve' ? r.mode : undefined;
      const req = { tree: this.cfg.name, path: r.path, hash: r.hash!, size: r.size, mode, target: abs };
      if (!(await this.#copyFromLocal(req))) {
        const m = this.#members().find((x) => x.name === peer);
        if (m?.address === undefined) throw new FileSyncError('E_ARG', `peer ${peer} has no address`);
        const addr = m.address;
        const b = basis ?? (local !== undefined && !local.deleted && local.type === 'file' ? abs : null);
        await fetchContent((body) => this.#host.peers.openStream(addr, 'files.pull', body), { ...req, basis: b }, this.#recv);
        this.#files.pulled++;
      }
    }
    await applyMeta(abs, r, this.cfg);
  }

  async #copyFromLocal(req: { tree: string; path: string; hash: string; size: number; mode: number | undefined; target: string }): Promise<boolean> {
    for (const p of this.#pathsWithHash(req.hash)) {
      const rec = this.#index.get(p);
      if (rec === undefined) continue;
      const src = await resolveInTree(this.cfg.root, p);
      if (!(await diskMatches(src, rec))) continue;
      try {
        await copyLocal(src, req);
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
        this.#host.store.db.prepare('DELETE FROM fs_files WHERE tree = ?').run(this.cfg.name);
        for (const r of this.#index.values()) this.#summary.update(r, undefined);
        this.#index.clear();
      }
      if (this.#paused?.startsWith('mass-delete') === true) this.#allowMassDelete = true;
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
      bytes: { received: this.#recv.opBytes, sent: this.#sent.opBytes, sigSent: this.#recv.sigBytes, sigReceived: this.#sent.sigBytes },
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
