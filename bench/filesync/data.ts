/** Generated file content for the filesync benchmarks. */
import { createCipheriv, createHash } from 'node:crypto';

/** Deterministic incompressible bytes at memory speed (AES-128-CTR of zeros, key from the seed). */
export function largeData(size: number, seed: number): Buffer {
  const key = createHash('sha256').update(`multiall-bench-${seed}`).digest().subarray(0, 16);
  const c = createCipheriv('aes-128-ctr', key, Buffer.alloc(16));
  return Buffer.concat([c.update(Buffer.alloc(size)), c.final()]);
}
