/**
 * Bounds shared by the delta encoder, the wire decoders and patch(). Anything a peer sends is
 * checked against these before memory is allocated for it.
 */

export const MIN_BLOCK_SIZE = 512;
export const MAX_BLOCK_SIZE = 128 * 1024; // rsync's MAX_BLOCK_SIZE
/** Max blocks per signature: 2^22 * 20 B ≈ 84 MB of signature at the extreme. */
export const MAX_BLOCKS = 1 << 22;
/** Largest file the delta code accepts (1 PiB); keeps every offset a safe integer. */
export const MAX_FILE_SIZE = 2 ** 50;
/** Largest literal op: bounds the sender's buffering and the receiver's per-message memory. */
export const MAX_LITERAL = 256 * 1024;
/** rsync's SHORT_SUM_LENGTH: the whole-file SHA-256 (plus a retry with full sums) is the guarantee. */
export const MIN_STRONG_LEN = 2;
export const MAX_STRONG_LEN = 16;
export const SHA256_LEN = 32;
