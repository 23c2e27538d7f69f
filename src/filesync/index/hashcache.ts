/**
 * Content-hash cache keyed by (device, inode), so a file that was renamed or moved inside the
 * tree is not re-read: the cached hash is reused only if size and mtime also match. Bounded:
 * the oldest entries are dropped first (Map iteration order = insertion order).
 */

interface Cached {
  size: number;
  mtimeNs: bigint;
  hash: string;
}

export class HashCache {
  readonly #map = new Map<string, Cached>();
  readonly #max: number;

  constructor(maxEntries = 1_000_000) {
    this.#max = maxEntries;
  }

  get size(): number {
    return this.#map.size;
  }

  get(dev: bigint, ino: bigint, size: number, mtimeNs: bigint): string | undefined {
    const c = this.#map.get(`${dev}:${ino}`);
    return c !== undefined && c.size === size && c.mtimeNs === mtimeNs ? c.hash : undefined;
  }

  set(dev: bigint, ino: bigint, size: number, mtimeNs: bigint, hash: string): void {
    const key = `${dev}:${ino}`;
    this.#map.delete(key); // re-insert at the young end
    this.#map.set(key, { size, mtimeNs, hash });
    if (this.#map.size > this.#max) {
      const oldest = this.#map.keys().next();
      if (oldest.done !== true) this.#map.delete(oldest.value);
    }
  }
}
