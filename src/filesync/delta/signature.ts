/**
 * signature(): the receiver's per-block checksums of its basis file (weak rolling sum + truncated
 * xxh128), computed in one streaming pass over fixed-size buffers.
 */
import { stat } from 'node:fs/promises';
import { FileSyncError } from '../errors.ts';
import { blockSizeFor, blockCount, strongLenFor } from './blocksize.ts';
import { createBlockHasher } from './hashers.ts';
import { MAX_BLOCKS, MAX_BLOCK_SIZE, MAX_FILE_SIZE, MAX_STRONG_LEN, MIN_BLOCK_SIZE, MIN_STRONG_LEN } from './limits.ts';
import { weakSum } from './rolling.ts';
import { openSource } from './source.ts';
import type { ByteSource } from './source.ts';
import type { Signature } from './types.ts';

export interface SignatureOptions {
  /** Overrides blockSizeFor(size). Required for streams unless sizeHint is given. */
  blockSize?: number;
  /** Size used to pick the block size for a stream source. */
  sizeHint?: number;
  /** Bytes of xxh128 kept per block (2..16); default strongLenFor(size, blockSize) like rsync. */
  strongLen?: number;
}

const READ_TARGET = 1 << 20;

export function checkBlockSize(bs: number): void {
  // Upper bound is generous so that blockSizeFor()'s >512 GiB growth stays accepted.
  if (!Number.isSafeInteger(bs) || bs < MIN_BLOCK_SIZE || bs > MAX_BLOCK_SIZE * 64) {
    throw new FileSyncError('E_ARG', `block size must be an integer in [${MIN_BLOCK_SIZE}, ${MAX_BLOCK_SIZE * 64}], got ${bs}`);
  }
}

export async function signature(src: ByteSource, opts: SignatureOptions = {}): Promise<Signature> {
  let sizeHint = opts.sizeHint;
  if (typeof src === 'string' && sizeHint === undefined) sizeHint = (await stat(src)).size;
  if (opts.blockSize === undefined && sizeHint === undefined) {
    throw new FileSyncError('E_ARG', 'signature of a stream needs blockSize or sizeHint');
  }
  const bs = opts.blockSize ?? blockSizeFor(sizeHint ?? 0);
  checkBlockSize(bs);
  const strongLen = opts.strongLen ?? (sizeHint === undefined ? MAX_STRONG_LEN : strongLenFor(sizeHint, bs));
  if (!Number.isInteger(strongLen) || strongLen < MIN_STRONG_LEN || strongLen > MAX_STRONG_LEN) {
    throw new FileSyncError('E_ARG', `strongLen must be in [${MIN_STRONG_LEN}, ${MAX_STRONG_LEN}], got ${strongLen}`);
  }

  const hash = await createBlockHasher();
  let cap = Math.max(16, Math.min(MAX_BLOCKS, blockCount(sizeHint ?? 0, bs) + 1));
  let weak = new Uint32Array(cap);
  let strong = new Uint8Array(cap * strongLen);
  let n = 0;
  let total = 0;
  const buf = new Uint8Array(Math.max(1, Math.floor(READ_TARGET / bs)) * bs);
  const reader = await openSource(src);
  try {
    for (;;) {
      // Reader fills the buffer fully unless at EOF, so blocks always start at buffer offset 0.
      const got = await reader.read(buf, 0, buf.length);
      if (got === 0) break;
      total += got;
      if (total > MAX_FILE_SIZE) throw new FileSyncError('E_ARG', `source larger than ${MAX_FILE_SIZE} bytes`);
      for (let off = 0; off < got; off += bs) {
        const len = Math.min(bs, got - off);
        if (n === cap) {
          if (cap === MAX_BLOCKS) throw new FileSyncError('E_ARG', `more than ${MAX_BLOCKS} blocks; use a larger block size`);
          cap = Math.min(MAX_BLOCKS, cap * 2);
          const w2 = new Uint32Array(cap);
          w2.set(weak);
          weak = w2;
          const s2 = new Uint8Array(cap * strongLen);
          s2.set(strong);
          strong = s2;
        }
        weak[n] = weakSum(buf, off, len);
        strong.set(hash(buf.subarray(off, off + len)).subarray(0, strongLen), n * strongLen);
        n++;
      }
      if (got < buf.length) break;
    }
  } finally {
    await reader.close();
  }
  return { blockSize: bs, fileSize: total, strongLen, weak: weak.slice(0, n), strong: strong.slice(0, n * strongLen) };
}
