/**
 * Change detection trigger for one tree: one non-recursive node:fs.watch per directory (one
 * inotify watch each on Linux), added as directories appear and dropped as they vanish. Events
 * call `onChange` after a trailing debounce (capped at 5× debounce during a continuous stream of
 * events). The watcher says where something changed, not what: `onChange` gets the window's
 * ScanScope (paths whose entry changed, subtrees created/removed/moved, for the scanner to look
 * at), or null when only a whole-tree scan is safe (an event without a name, or more than
 * MAX_SCOPE places in one window: a burst that big may also have overflowed the kernel's queue,
 * which Node does not report).
 * Why not fs.watch({recursive: true}): on Linux, Node 24 emulates it in JS with one inotify
 * watch per *file*, a statSync per event and a readdirSync of the whole directory for every
 * event in it (O(n²) while n files arrive in one directory).
 * `classify(path)` (path relative to the root) lets the owner filter events it caused itself:
 * 'temp' (our temp files) and 'own' (paths it is writing) do not trigger; 'own-dir' does not
 * trigger but the new directory is watched. Excluded directories (`skipDir`) are not watched.
 * When watching fails (ENOSPC = inotify watch limit, EMFILE, root gone), `onFail` is called once
 * and the tree relies on its periodic scans; start() may be called again later.
 * Queue overflow: the kernel keeps at most fs.inotify.max_queued_events events per inotify
 * instance and then drops events, queueing IN_Q_OVERFLOW, which libuv (and so fs.watch) ignores.
 * libuv reads the queue dry in one go and Node delivers every event synchronously, so one drain
 * is the events counted before the next setImmediate: a drain of the queue's capacity means it
 * was full and events may be lost. Every watcher then gets `onOverflow` and a whole-tree scan.
 * (Several watches of one inode count each event more than once: at worst a needless scan.)
 */
import { lstatSync, readFileSync, watch } from 'node:fs';
import type { BigIntStats, FSWatcher } from 'node:fs';
import { lstat, readdir } from 'node:fs/promises';
import { join } from 'node:path';
import type { ScanScope } from './index/scanner.ts';

export type EventClass = 'temp' | 'own' | 'own-dir' | 'other';

/** Places in one window above which the scope gives way to a whole-tree scan. */
export const MAX_SCOPE = 1000;

/** Capacity of an inotify queue (read once; the kernel's default if unreadable). */
let queueCapacity: number | undefined;
function capacity(): number {
  if (queueCapacity === undefined) {
    let n = NaN;
    try {
      n = Number.parseInt(readFileSync('/proc/sys/fs/inotify/max_queued_events', 'utf8'), 10);
    } catch {
      // not Linux, or /proc unreadable: the kernel's default
    }
    queueCapacity = Number.isSafeInteger(n) && n > 0 ? n : 16384;
  }
  return queueCapacity;
}

/** Events delivered in the current drain of the process's inotify queue, and who to tell. */
let drained = 0;
let drainEnd: NodeJS.Immediate | undefined;
const overflowListeners = new Set<() => void>();

function countEvent(): void {
  drained++;
  drainEnd ??= setImmediate(() => {
    const full = drained >= capacity();
    drained = 0;
    drainEnd = undefined;
    if (full) for (const tell of [...overflowListeners]) tell();
  });
}

export interface TreeWatcherOptions {
  root: string;
  debounceMs: number;
  /** A debounce window ended: where its events were (null: scan the whole tree). */
  onChange: (scope: ScanScope | null) => void;
  /** Watching failed (once per start()). */
  onFail: (err: Error) => void;
  /** The inotify queue was full: events may have been lost (a whole-tree scan follows). */
  onOverflow?: () => void;
  /** Who caused an event at this tree-relative path (default 'other'). */
  classify?: (path: string) => EventClass;
  /** Directories not to watch (excluded). */
  skipDir?: (path: string) => boolean;
}

/** A debounce window's scope, filled as events come. */
interface WindowScope { paths: Set<string>; trees: Set<string> }
const emptyScope = (): WindowScope => ({ paths: new Set(), trees: new Set() });

/**
 * A directory's identity: inode number and birth time (a directory removed and made again often
 * gets the same inode number back at once).
 */
const identity = (st: BigIntStats): string => `${st.ino}:${st.birthtimeNs}`;

export class TreeWatcher {
  readonly #root: string;
  readonly #debounceMs: number;
  readonly #onChange: (scope: ScanScope | null) => void;
  readonly #onFail: (err: Error) => void;
  readonly #classify: (path: string) => EventClass;
  readonly #skipDir: (path: string) => boolean;
  /** Watched directories, by path relative to the root ('' = root). */
  /** Watched directories: the watch, and the directory's identity when it was made (see identity()). */
  readonly #dirs = new Map<string, { watch: FSWatcher; id: string }>();
  #ready: Promise<void> = Promise.resolve();
  #active = false;
  #timer: NodeJS.Timeout | undefined;
  #first = 0;
  /** The current window's scope; null once it needs a whole-tree scan. */
  #scope: WindowScope | null = emptyScope();

  readonly #onOverflow: () => void;
  readonly #overflowed = (): void => {
    if (!this.#active) return;
    this.#onOverflow();
    this.#scope = null;
    this.#event();
  };

  constructor(o: TreeWatcherOptions) {
    this.#root = o.root;
    this.#debounceMs = o.debounceMs;
    this.#onChange = o.onChange;
    this.#onFail = o.onFail;
    this.#onOverflow = o.onOverflow ?? (() => undefined);
    this.#classify = o.classify ?? (() => 'other');
    this.#skipDir = o.skipDir ?? (() => false);
  }

  get active(): boolean {
    return this.#active;
  }

  /** Number of watched directories. */
  get watched(): number {
    return this.#dirs.size;
  }

  start(): boolean {
    if (this.#active) return true;
    this.#active = true;
    overflowListeners.add(this.#overflowed);
    if (!this.#watchDir('')) return false;
    this.#ready = this.#walk('');
    return this.#active;
  }

  /** Resolves once every directory present at start() has its watch. */
  get ready(): Promise<void> {
    return this.#ready;
  }

  /** Watches `rel` (a directory); false if watching failed (then the watcher is closed). */
  #watchDir(rel: string): boolean {
    if (!this.#active || this.#dirs.has(rel)) return this.#active;
    try {
      const abs = rel === '' ? this.#root : join(this.#root, rel);
      // The watch follows this directory (inode), not its name: a directory made anew or moved
      // in under the same name needs a watch of its own (see #added).
      const id = identity(lstatSync(abs, { bigint: true }));
      const w = watch(abs, { persistent: false }, (type, name) => this.#onEvent(rel, type, name));
      w.on('error', (err) => {
        if (rel === '') this.#fail(err);
        else this.#unwatch(rel); // directory gone
      });
      this.#dirs.set(rel, { watch: w, id });
      return true;
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code;
      if (rel !== '' && (code === 'ENOENT' || code === 'ENOTDIR')) return true; // gone meanwhile
      this.#fail(err as Error);
      return false;
    }
  }

  /** Watches every directory below `rel` (new directories may already have content). */
  async #walk(rel: string): Promise<void> {
    let ents;
    try {
      ents = await readdir(rel === '' ? this.#root : join(this.#root, rel), { withFileTypes: true });
    } catch {
      return;
    }
    for (const e of ents) {
      if (!e.isDirectory() || !this.#active) continue;
      const child = rel === '' ? e.name : `${rel}/${e.name}`;
      if (this.#skipDir(child) || this.#dirs.has(child)) continue;
      if (!this.#watchDir(child)) return;
      await this.#walk(child);
    }
  }

  #onEvent(dir: string, type: string, name: string | Buffer | null): void {
    countEvent();
    if (typeof name !== 'string' || name === '') {
      this.#scope = null;
      this.#event();
      return;
    }
    const rel = dir === '' ? name : `${dir}/${name}`;
    const cls = this.#classify(rel);
    if (cls === 'temp') return;
    if (cls === 'own-dir') {
      void this.#added(rel);
      return;
    }
    if (cls === 'own') {
      if (this.#dirs.has(rel)) void this.#added(rel); // a directory we removed
      return;
    }
    // 'rename' = created, deleted or moved: a new directory must be watched, a gone one dropped;
    // the entry's subtree and its directory's entry list (and mtime) are to be looked at.
    if (type === 'rename') {
      void this.#added(rel);
      this.#note('trees', rel);
      this.#note('paths', dir);
    } else this.#note('paths', rel);
    this.#event();
  }

  async #added(rel: string): Promise<void> {
    const st = await lstat(join(this.#root, rel), { bigint: true }).catch(() => null);
    if (st?.isDirectory() === true) {
      if (this.#dirs.has(rel)) {
        if (this.#dirs.get(rel)!.id === identity(st)) return;
        this.#unwatch(rel); // another directory under this name (removed and made again, swapped)
      }
      if (this.#skipDir(rel)) return;
      if (this.#watchDir(rel)) await this.#walk(rel);
    } else if (this.#dirs.has(rel)) this.#unwatch(rel);
  }

  #unwatch(rel: string): void {
    const prefix = `${rel}/`;
    for (const [d, w] of this.#dirs) {
      if (d === rel || d.startsWith(prefix)) {
        w.watch.close();
        this.#dirs.delete(d);
      }
    }
  }

  #note(kind: keyof ScanScope, rel: string): void {
    const s = this.#scope;
    if (s === null) return;
    s[kind].add(rel);
    if (s.paths.size + s.trees.size > MAX_SCOPE) this.#scope = null;
  }

  #event(): void {
    if (!this.#active) return;
    const now = Date.now();
    if (this.#timer === undefined) this.#first = now;
    clearTimeout(this.#timer);
    const wait = Math.max(0, Math.min(this.#debounceMs, this.#first + 5 * this.#debounceMs - now));
    this.#timer = setTimeout(() => {
      this.#timer = undefined;
      const scope = this.#scope;
      this.#scope = emptyScope();
      this.#onChange(scope);
    }, wait);
  }

  #fail(err: Error): void {
    if (!this.#active) return;
    this.close();
    this.#onFail(err);
  }

  close(): void {
    this.#active = false;
    overflowListeners.delete(this.#overflowed);
    clearTimeout(this.#timer);
    this.#timer = undefined;
    this.#scope = emptyScope();
    for (const w of this.#dirs.values()) w.watch.close();
    this.#dirs.clear();
  }
}
