/**
 * Data types of the rsync-style delta transfer: the receiver's Signature of its basis file and
 * the sender's DeltaOp stream that rebuilds the new file from that basis.
 */

/** Per-block checksums of a basis file, produced by `signature()`. */
export interface Signature {
  /** Block length in bytes; the last block may be shorter (fileSize % blockSize). */
  blockSize: number;
  fileSize: number;
  /** Bytes of the xxh128 strong sum kept per block (8..16). */
  strongLen: number;
  /** Rolling (rsync/Adler-like) 32-bit sum per block. */
  weak: Uint32Array;
  /** blockCount * strongLen bytes: truncated xxh128 per block. */
  strong: Uint8Array;
}

/** Copy `count` consecutive basis blocks starting at block index `start`. */
export interface CopyOp {
  type: 'copy';
  start: number;
  count: number;
}

/** Bytes not found in the basis (at most MAX_LITERAL bytes per op). */
export interface LiteralOp {
  type: 'literal';
  data: Uint8Array;
}

/** Last op: size and SHA-256 of the whole new file, checked by `patch()`. */
export interface EndOp {
  type: 'end';
  size: number;
  sha256: Uint8Array;
}

export type DeltaOp = CopyOp | LiteralOp | EndOp;
