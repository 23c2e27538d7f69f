/**
 * Strong hashes used by the delta code. Per block: xxh128 (hash-wasm, ≈3 GB/s here): enough to
 * confirm weak-sum hits, and every rebuilt file is then checked with SHA-256 (node:crypto, uses
 * SHA-NI: ≈1.1 GB/s), which is collision resistant, so a crafted block collision cannot go
 * unnoticed.
 */
import { createXXHash128 } from 'hash-wasm';
import type { IHasher } from 'hash-wasm';

export type BlockHasher = (data: Uint8Array) => Uint8Array;

/** A synchronous xxh128 function (16 bytes) backed by its own WASM instance. */
export async function createBlockHasher(): Promise<BlockHasher> {
  const h: IHasher = await createXXHash128();
  return (data) => {
    h.init();
    h.update(data);
    return h.digest('binary');
  };
}
