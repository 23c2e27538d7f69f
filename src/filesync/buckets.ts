/**
 * Index summary for catch-up: every path falls into one of BUCKETS buckets (FNV-1a of the path);
 * a bucket's digest is the XOR of its entries' digests (SHA-256 of path, deleted flag and version
 * vector, 16 bytes kept). Two nodes whose bucket digests are equal hold the same versions there,
 * so catch-up exchanges only the entries of differing buckets. XOR makes updates O(1): remove
 * the old entry's digest, add the new one's. Content hashes are not included: equal version
 * vectors mean equal content by construction (every change bumps the vector).
 */
import { createHash } from 'node:crypto';
import type { FileVersion } from './resolve.ts';

export const BUCKETS = 256;
export const DIGEST_BYTES = 16;
export const SUMMARY_BYTES = BUCKETS * DIGEST_BYTES;

/** Bucket index of a path (FNV-1a over UTF-16 code units; identical on every node). */
export function bucketOf(path: string): number {
  let h = 0x811c9dc5;
  for (let i = 0; i < path.length; i++) {
    h ^= path.charCodeAt(i);
    h = Math.imul(h, 0x01000193);
  }
  return (h >>> 0) % BUCKETS;
}

export function entryDigest(v: Pick<FileVersion, 'path' | 'deleted' | 'version'>): Buffer {
  const keys = Object.keys(v.version).sort();
  const h = createHash('sha256');
  h.update(v.path);
  h.update(v.deleted ? '\0d\0' : '\0l\0');
  for (const k of keys) h.update(`${k}=${v.version[k]!}\0`);
  return h.digest().subarray(0, DIGEST_BYTES);
}

export class Summary {
  readonly bytes = Buffer.alloc(SUMMARY_BYTES);

  #xor(path: string, d: Buffer): void {
    const off = bucketOf(path) * DIGEST_BYTES;
    for (let i = 0; i < DIGEST_BYTES; i++) this.bytes[off + i]! ^= d[i]!;
  }

  /** Account for a path changing from `before` to `after` (either may be undefined). */
  update(before: FileVersion | undefined, after: FileVersion | undefined): void {
    if (before !== undefined) this.#xor(before.path, entryDigest(before));
    if (after !== undefined) this.#xor(after.path, entryDigest(after));
  }

  /** Indexes of buckets whose digest differs from `other` (a peer's summary bytes). */
  diff(other: Uint8Array): number[] {
    const out: number[] = [];
    for (let b = 0; b < BUCKETS; b++) {
      const off = b * DIGEST_BYTES;
      if (Buffer.compare(this.bytes.subarray(off, off + DIGEST_BYTES), other.subarray(off, off + DIGEST_BYTES)) !== 0) out.push(b);
    }
    return out;
  }
}
