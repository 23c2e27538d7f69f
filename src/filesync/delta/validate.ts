/**
 * Structural checks of a Signature, shared by the wire decoder (peer input) and by delta()/patch()
 * (which must not index outside the arrays, whoever built the object).
 */
import { FileSyncError } from '../errors.ts';
import type { FileSyncErrorCode } from '../errors.ts';
import { blockCount } from './blocksize.ts';
import { MAX_BLOCKS, MAX_BLOCK_SIZE, MAX_FILE_SIZE, MAX_STRONG_LEN, MIN_BLOCK_SIZE, MIN_STRONG_LEN } from './limits.ts';
import type { Signature } from './types.ts';

export function isUint(v: unknown, max: number): v is number {
  return typeof v === 'number' && Number.isSafeInteger(v) && v >= 0 && v <= max;
}

export function checkSignature(sig: Signature, code: FileSyncErrorCode = 'E_ARG'): void {
  const bad = (msg: string): never => {
    throw new FileSyncError(code, `signature: ${msg}`);
  };
  if (!isUint(sig.blockSize, MAX_BLOCK_SIZE * 64) || sig.blockSize < MIN_BLOCK_SIZE) bad(`block size ${String(sig.blockSize)} out of range`);
  if (!isUint(sig.fileSize, MAX_FILE_SIZE)) bad(`file size ${String(sig.fileSize)} out of range`);
  if (!isUint(sig.strongLen, MAX_STRONG_LEN) || sig.strongLen < MIN_STRONG_LEN) bad(`strong length ${String(sig.strongLen)} out of range`);
  const n = blockCount(sig.fileSize, sig.blockSize);
  if (n > MAX_BLOCKS) bad(`${n} blocks exceed the limit of ${MAX_BLOCKS}`);
  if (!(sig.weak instanceof Uint32Array) || sig.weak.length !== n) bad(`expected ${n} weak sums`);
  if (!(sig.strong instanceof Uint8Array) || sig.strong.length !== n * sig.strongLen) bad(`expected ${n * sig.strongLen} strong-sum bytes`);
}
