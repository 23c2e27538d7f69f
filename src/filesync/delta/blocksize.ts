/**
 * Block size rule for signatures. Like rsync (generator.c:sum_sizes_sqroot): about √size, which
 * balances signature size (∝ size/bs) against literal overhead per changed region (∝ bs).
 * Rounded down to a multiple of 8, clamped to [512 B, 128 KiB]; above 512 GiB the block grows
 * past 128 KiB only as far as needed to stay within MAX_BLOCKS blocks.
 */
import { MAX_BLOCKS, MAX_BLOCK_SIZE, MAX_FILE_SIZE, MAX_STRONG_LEN, MIN_BLOCK_SIZE, MIN_STRONG_LEN } from './limits.ts';
import { FileSyncError } from '../errors.ts';

export function blockSizeFor(fileSize: number): number {
  if (!Number.isSafeInteger(fileSize) || fileSize < 0 || fileSize > MAX_FILE_SIZE) {
    throw new FileSyncError('E_ARG', `file size must be an integer in [0, ${MAX_FILE_SIZE}], got ${fileSize}`);
  }
  const root = Math.floor(Math.sqrt(fileSize)) & ~7;
  let bs = Math.min(MAX_BLOCK_SIZE, Math.max(MIN_BLOCK_SIZE, root));
  const needed = Math.ceil(fileSize / MAX_BLOCKS);
  if (needed > bs) bs = Math.ceil(needed / 8) * 8;
  return bs;
}

/** Number of blocks (the last one possibly short) a file of `fileSize` bytes has. */
export function blockCount(fileSize: number, blockSize: number): number {
  return Math.ceil(fileSize / blockSize);
}

/**
 * Bytes of strong sum kept per block, as rsync computes it (generator.c:sum_sizes_sqroot,
 * BLOCKSUM_BIAS 10): enough bits that a false block match anywhere in the file is unlikely given
 * the file size and block count, counting the 32 bits of the weak sum; 2..16 bytes. A false match
 * cannot go unnoticed: patch() checks the rebuilt file's SHA-256, and the transfer is then
 * redone with full-length (16-byte) sums, as rsync does.
 * Examples: 8 MiB (2,896-byte blocks) → 2 bytes; 64 MiB (8 KiB blocks) → 3; 1 GiB → 4.
 */
export function strongLenFor(fileSize: number, blockSize: number): number {
  let b = 10;
  for (let l = Math.floor(fileSize / 2); l > 0; l = Math.floor(l / 2)) b += 2;
  for (let c = blockSize >> 1; c > 0 && b > 0; c >>= 1) b--;
  const len = Math.trunc((b + 1 - 32 + 7) / 8);
  return Math.min(MAX_STRONG_LEN, Math.max(MIN_STRONG_LEN, len));
}
