/**
 * Block size rule for signatures. Like rsync (generator.c:sum_sizes_sqroot): about √size, which
 * balances signature size (∝ size/bs) against literal overhead per changed region (∝ bs).
 * Rounded down to a multiple of 8, clamped to [512 B, 128 KiB]; above 512 GiB the block grows
 * past 128 KiB only as far as needed to stay within MAX_BLOCKS blocks.
 */
import { MAX_BLOCKS, MAX_BLOCK_SIZE, MAX_FILE_SIZE, MIN_BLOCK_SIZE } from './limits.ts';
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
