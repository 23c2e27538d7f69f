/**
 * Content-hash cache keyed by (device, inode), so a file that was renamed or moved inside the
 * tree is not re-read: the cached hash is reused only if size, mtime and birth time also match.
 * The birth time (statx; kept by a rename, new for a new file) tells a moved file from another
 * file that got the same inode number after the first was deleted — with the same size and a
 * restored mtime (`tar -p`, `cp -p`, npm's fixed 1985 mtimes) it would otherwise get the old
 * file's hash. Filesystems without birth times report 0: size and mtime decide there. Bounded:
 * the oldest entries are dropped first (Map iteration order = insertion order).
 */
import type { BigIntStats } from 'node:fs';

interface Cached {
  size: number;
  mtimeNs: bigint;
  birthNs: bigint;
  hash: string;
}

/** The fields of a bigint stat the cache looks at. */
export type FileStat = Pick<BigIntStats, 'dev' | 'ino' | 'size' | 'mtimeNs' | 'birthtimeNs'>;

export class HashCache {
  readonly #map = new Map<string, Cached>();
  readonly #max: number;

  constructor(maxEntries = 1_000_000) {
    this.#max = maxEntries;
  }

  get size(): number {
    return this.#map.size;
  }

  get(st: FileStat): string | undefined {
    const c = this.#map.get(`${st.dev}:${st.ino}`);
    return c !== undefined && c.size === Number(st.size) && c.mtimeNs === st.mtimeNs && c.birthNs === st.birthtimeNs ? c.hash : undefined;
  }

  set(st: FileStat, hash: string): void {
    const key = `${st.dev}:${st.ino}`;
    this.#map.delete(key); // re-insert at the young end
    this.#map.set(key, { size: Number(st.size), mtimeNs: st.mtimeNs, birthNs: st.birthtimeNs, hash });
    if (this.#map.size > this.#max) {
      const oldest = this.#map.keys().next();
      if (oldest.done !== true) this.#map.delete(oldest.value);
    }
  }
}
