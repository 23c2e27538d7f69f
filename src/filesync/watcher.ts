/**
 * Change detection trigger for one tree: a recursive node:fs.watch on the root whose events
 * (any path) call `onChange` after a trailing debounce (capped at 5× debounce during a
 * continuous stream of events). The watcher only says "something changed"; the scanner finds
 * what. When watching fails (ENOSPC = inotify watch limit, EMFILE, root gone), `onFail` is called
 * once and the tree relies on its periodic scans; start() may be called again later.
 */
import { watch } from 'node:fs';
import type { FSWatcher } from 'node:fs';

export class TreeWatcher {
  readonly #root: string;
  readonly #debounceMs: number;
  readonly #onChange: () => void;
  readonly #onFail: (err: Error) => void;
  #w: FSWatcher | undefined;
  #timer: NodeJS.Timeout | undefined;
  #first = 0;

  constructor(root: string, debounceMs: number, onChange: () => void, onFail: (err: Error) => void) {
    this.#root = root;
    this.#debounceMs = debounceMs;
    this.#onChange = onChange;
    this.#onFail = onFail;
  }

  get active(): boolean {
    return this.#w !== undefined;
  }

  start(): boolean {
    if (this.#w !== undefined) return true;
    try {
      const w = watch(this.#root, { recursive: true, persistent: false }, () => this.#event());
      w.on('error', (err) => this.#fail(err));
      this.#w = w;
      return true;
    } catch (err) {
      this.#fail(err as Error);
      return false;
    }
  }

  #event(): void {
    const now = Date.now();
    if (this.#timer === undefined) this.#first = now;
    clearTimeout(this.#timer);
    const wait = Math.max(0, Math.min(this.#debounceMs, this.#first + 5 * this.#debounceMs - now));
    this.#timer = setTimeout(() => {
      this.#timer = undefined;
      this.#onChange();
    }, wait);
  }

  #fail(err: Error): void {
    this.close();
    this.#onFail(err);
  }

  close(): void {
    clearTimeout(this.#timer);
    this.#timer = undefined;
    this.#w?.close();
    this.#w = undefined;
  }
}
