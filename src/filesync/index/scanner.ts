/**
 * scan(): walks a synced tree and returns its index (Map path → Entry). Honors gitignore-style
 * exclude rules (pruning excluded directories) and optional include rules; never follows
 * symlinks; skips sockets/FIFOs/devices and names that are not valid UTF-8 (reported). Files
 * are rehashed (SHA-256) only when size, mtime or inode differ from the previous index or the
 * hash cache, or when the previous hash was "racy". Our own temp files and the tree marker are
 * never indexed. A scan may be limited to a ScanScope: the places a watcher saw change.
 */
import { createHash } from 'node:crypto';
import { constants } from 'node:fs';
import { lstat, open, readdir, readlink, stat } from 'node:fs/promises';
import type { BigIntStats } from 'node:fs';
import { join } from 'node:path';
import { mapConcurrent } from '../concurrency.ts';
import { FileSyncError } from '../errors.ts';
import { TEMP_PREFIX, TEMP_SUFFIX } from '../delta/patch.ts';
import { isPartialName } from '../partial.ts';
import { TREE_MARKER } from '../guards.ts';
import type { Entry, EntryType } from './entry.ts';
import type { HashCache } from './hashcache.ts';
import { IgnoreMatcher } from './gitignore.ts';

/**
 * A hash taken within this many ns of the file's mtime is "racy" (see Entry.racy): a write in the
 * same timestamp tick could leave size and mtime unchanged. RACY_NS for filesystems with coarse
 * (whole-second, FAT: 2 s) timestamps, recognised by a zero nanosecond part; RACY_FINE_NS where
 * mtimes have sub-second precision (ext4, xfs, btrfs: one kernel clock tick, ≤ 10 ms), so files
 * written a moment before a scan are not rehashed again for 2 s.
 */
export const RACY_NS = 2_000_000_000n;
export const RACY_FINE_NS = 100_000_000n;

export interface ScanOptions {
  /** gitignore-style rules; matching paths (and everything below excluded dirs) are skipped. */
  exclude?: readonly string[];
  /** If given, only files/symlinks matching these rules (or inside matching dirs) are kept;
   *  directories are kept when they match or contain something kept. */
  include?: readonly string[];
  /** Index from the previous scan: unchanged files keep their hash. */
  previous?: ReadonlyMap<string, Entry>;
  /** Hash cache shared between scans (renames keep their hash). */
  hashCache?: HashCache;
  /** Look only here (a watcher's findings) instead of the whole tree; not with `include`. */
  scope?: ScanScope;
}

/**
 * Part of a tree to scan (tree-relative paths): `paths` are looked at themselves (a directory
 * there: its own entry, not its content), `trees` with everything below them. The result holds
 * exactly the entries that exist within the scope: whatever the index has in scope (scopeCovers)
 * but the result lacks is gone.
 */
export interface ScanScope {
  paths: ReadonlySet<string>;
  trees: ReadonlySet<string>;
}

/** Whether `path` lies within `scope` (in `paths`, or at or below one of `trees`). */
export function scopeCovers(scope: ScanScope, path: string): boolean {
  return scope.paths.has(path) || scope.trees.has('') || inTrees(scope.trees, path);
}

/** Whether `path` is one of `trees` or below one (checked along its parents: its depth, not the trees' number). */
function inTrees(trees: ReadonlySet<string>, path: string): boolean {
  for (let p = path; ; p = p.slice(0, p.lastIndexOf('/'))) {
    if (trees.has(p)) return true;
    if (!p.includes('/')) return false;
  }
}

export interface ScanProblem {
  path: string;
  reason: string;
}

export interface ScanResult {
  entries: Map<string, Entry>;
  stats: { files: number; dirs: number; symlinks: number; hashed: number; reused: number; bytesHashed: number };
  /** Entries skipped: unreadable, special files, invalid names. */
  problems: ScanProblem[];
  /** Partial files of resumable transfers seen (tree-relative; never entries). */
  partials: string[];
}

const utf8 = new TextDecoder('utf-8', { fatal: true });

/** Read buffers of hashFile, reused (hashing runs one file at a time per call chain). */
const HASH_READ = 1 << 20;
const hashBufs: Buffer[] = [];

/** SHA-256 (hex) of a file's content; reads ≤ 1 MiB at a time into a reused buffer. */
export async function hashFile(abs: string): Promise<string> {
  const h = createHash('sha256');
  const fh = await open(abs, constants.O_RDONLY | constants.O_NOFOLLOW);
  const buf = hashBufs.pop() ?? Buffer.allocUnsafeSlow(HASH_READ);
  try {
    for (;;) {
      const { bytesRead } = await fh.read(buf, 0, buf.length, null);
      if (bytesRead === 0) break;
      h.update(buf.subarray(0, bytesRead));
    }
  } finally {
    hashBufs.push(buf);
    await fh.close();
  }
  return h.digest('hex');
}

/** lstat / hash calls of one directory in flight at once. */
const SCAN_CONCURRENCY = 16;

function isReserved(rel: string, name: string): boolean {
  return (name.startsWith(TEMP_PREFIX) && name.endsWith(TEMP_SUFFIX)) || rel === TREE_MARKER;
}

export async function scan(root: string, opts: ScanOptions = {}): Promise<ScanResult> {
  const rootSt = await stat(root).catch((e: NodeJS.ErrnoException) => {
    throw new FileSyncError('E_TREE_ROOT', `cannot stat tree root ${root}: ${e.code ?? e.message}`);
  });
  if (!rootSt.isDirectory()) throw new FileSyncError('E_TREE_ROOT', `tree root ${root} is not a directory`);
  const exclude = new IgnoreMatcher(opts.exclude ?? []);
  const include = opts.include === undefined ? null : new IgnoreMatcher(opts.include);
  const prev = opts.previous;
  const cache = opts.hashCache;
  const res: ScanResult = { entries: new Map(), stats: { files: 0, dirs: 0, symlinks: 0, hashed: 0, reused: 0, bytesHashed: 0 }, problems: [], partials: [] };

  const fileHash = async (abs: string, rel: string, st: BigIntStats, size: number): Promise<{ hash: string; racy: boolean }> => {
    const p = prev?.get(rel);
    if (p !== undefined && p.type === 'file' && p.hash !== undefined && p.racy !== true && p.size === size && p.mtimeNs === st.mtimeNs && p.ino === st.ino) {
      res.stats.reused++;
      return { hash: p.hash, racy: false };
    }
    const cached = cache?.get(st);
    if (cached !== undefined) {
      res.stats.reused++;
      return { hash: cached, racy: false };
    }
    const startNs = BigInt(Date.now()) * 1_000_000n;
    const hash = await hashFile(abs);
    res.stats.hashed++;
    res.stats.bytesHashed += size;
    // Changed while we read it: the hash may mix old and new bytes, so never trust it later.
    const after = await lstat(abs, { bigint: true });
    const window = st.mtimeNs % 1_000_000_000n === 0n ? RACY_NS : RACY_FINE_NS;
    const racy = startNs - st.mtimeNs < window || after.mtimeNs !== st.mtimeNs || Number(after.size) !== size;
    if (!racy) cache?.set(st, hash);
    return { hash, racy };
  };

  // Returns true if `rel` (a directory) or anything below it was kept.
  const walk = async (absDir: string, relDir: string): Promise<boolean> => {
    let names: Buffer[];
    try {
      names = await readdir(absDir, { encoding: 'buffer' });
    } catch (e) {
      const code = (e as NodeJS.ErrnoException).code ?? String(e);
      // Nothing can be concluded from a root that cannot be listed (EACCES, EMFILE…): not even
      // that its content is gone. The scan fails; its caller changes nothing.
      if (relDir === '') throw new FileSyncError('E_TREE_ROOT', `cannot read tree root ${root}: ${code}`);
      res.problems.push({ path: relDir, reason: `readdir: ${code}` });
      return false;
    }
    names.sort(Buffer.compare); // deterministic order
    const items: { rel: string; abs: string }[] = [];
    for (const raw of names) {
      let name: string;
      try {
        name = utf8.decode(raw);
      } catch {
        res.problems.push({ path: `${relDir}/${raw.toString('latin1')}`, reason: 'name is not valid UTF-8' });
        continue;
      }
      const rel = relDir === '' ? name : `${relDir}/${name}`;
      if (isReserved(rel, name)) {
        if (isPartialName(name)) res.partials.push(rel);
        continue;
      }
      items.push({ rel, abs: join(absDir, name) });
    }
    return visit(items, () => true);
  };

  // Looks at `items` (and below the directories among them for which `recurse` holds); true if
  // any was kept. The items are lstat'ed (and changed files hashed) several at a time: each call
  // is a thread-pool round trip, and one at a time a rescan of 10,000 unchanged files took
  // ≈ 0.5 s. Entries are still added in item order, subdirectories walked one after the other.
  const visit = async (items: { rel: string; abs: string }[], recurse: (rel: string) => boolean): Promise<boolean> => {
    const stats = await mapConcurrent(items, SCAN_CONCURRENCY, (it) => lstat(it.abs, { bigint: true }).catch((e: NodeJS.ErrnoException) => e));
    // Entries to keep (null: skipped); their files then hashed (or hash reused) several at a time.
    const kept: (Entry | null)[] = items.map((it, i) => {
      const st = stats[i]!;
      if (st instanceof Error) {
        if (st.code !== 'ENOENT') res.problems.push({ path: it.rel, reason: `lstat: ${st.code ?? String(st)}` });
        return null; // ENOENT: removed while scanning, the next scan sees the delete
      }
      let type: EntryType;
      if (st.isFile()) type = 'file';
      else if (st.isDirectory()) type = 'dir';
      else if (st.isSymbolicLink()) type = 'symlink';
      else {
        res.problems.push({ path: it.rel, reason: 'special file (socket, FIFO or device) not synced' });
        return null;
      }
      const isDir = type === 'dir';
      if (exclude.match(it.rel, isDir) === true) return null; // parents were already checked: pruned
      return { path: it.rel, type, size: type === 'file' ? Number(st.size) : 0, mtimeNs: st.mtimeNs, mode: Number(st.mode & 0o7777n), uid: Number(st.uid), gid: Number(st.gid), ino: st.ino };
    });
    const covered = (e: Entry): boolean => include === null || include.ignores(e.path, e.type === 'dir');
    const files = kept.flatMap((e, i) => (e !== null && e.type === 'file' && covered(e) ? [i] : []));
    const hashed = await mapConcurrent(files, SCAN_CONCURRENCY, (i) => fileHash(items[i]!.abs, kept[i]!.path, stats[i] as BigIntStats, kept[i]!.size).catch((err: NodeJS.ErrnoException) => err));
    const hashes = new Map(files.map((i, k) => [i, hashed[k]!]));
    let keptAny = false;
    for (const [i, base] of kept.entries()) {
      if (base === null) continue;
      const abs = items[i]!.abs;
      if (base.type === 'dir') {
        const below = recurse(base.path) && await walk(abs, base.path);
        if (!covered(base) && !below) continue;
        res.entries.set(base.path, base);
        res.stats.dirs++;
      } else if (!covered(base)) {
        continue;
      } else if (base.type === 'symlink') {
        try {
          base.target = await readlink(abs);
        } catch (e) {
          res.problems.push({ path: base.path, reason: `readlink: ${(e as NodeJS.ErrnoException).code ?? String(e)}` });
          continue;
        }
        base.size = Buffer.byteLength(base.target);
        res.entries.set(base.path, base);
        res.stats.symlinks++;
      } else {
        const h = hashes.get(i)!;
        if (h instanceof Error) {
          if (h.code !== 'ENOENT') res.problems.push({ path: base.path, reason: `read: ${h.code ?? String(h)}` });
          continue;
        }
        base.hash = h.hash;
        if (h.racy) base.racy = true;
        res.entries.set(base.path, base);
        res.stats.files++;
      }
      keptAny = true;
    }
    return keptAny;
  };

  const scope = opts.scope;
  if (scope === undefined || scope.trees.has('')) {
    await walk(root, '');
    return res;
  }
  if (include !== null) throw new FileSyncError('E_ARG', 'a scoped scan cannot apply include rules (they need whole directories)');
  // Places in order, none below a tree already walked; none reserved or below an excluded directory.
  const places = [...new Set([...scope.paths, ...scope.trees])].sort().filter((rel) => {
    if (rel === '') return false; // the root's own entry is not indexed
    const slash = rel.lastIndexOf('/');
    if (slash >= 0 && inTrees(scope.trees, rel.slice(0, slash))) return false;
    const name = rel.slice(slash + 1);
    if (isReserved(rel, name)) {
      if (isPartialName(name)) res.partials.push(rel);
      return false;
    }
    return !exclude.insideIgnoredDir(rel);
  });
  await visit(places.map((rel) => ({ rel, abs: join(root, rel) })), (rel) => scope.trees.has(rel));
  return res;
}
