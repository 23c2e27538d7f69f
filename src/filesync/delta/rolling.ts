/**
 * The weak rolling checksum of rsync (checksum.c:get_checksum1, "inspired by Adler-32"):
 * s1 = Σ b[i], s2 = Σ (len-i)·b[i], both mod 2^16, sum = s1 | s2 << 16. Sliding the window by
 * one byte is O(1) (see delta.ts, where the roll is inlined in the hot loop).
 */

/** Weak sum of buf[start, start+len) as an unsigned 32-bit integer. */
export function weakSum(buf: Uint8Array, start: number, len: number): number {
  let s1 = 0;
  let s2 = 0;
  const end = start + len;
  let i = start;
  // Unrolled by 4 (as rsync's get_checksum1): s2 gains 4·s1 + 4b0 + 3b1 + 2b2 + b3.
  for (; i + 4 <= end; i += 4) {
    const b0 = buf[i]!;
    const b1 = buf[i + 1]!;
    const b2 = buf[i + 2]!;
    const b3 = buf[i + 3]!;
    s2 = (s2 + 4 * s1 + 4 * b0 + 3 * b1 + 2 * b2 + b3) | 0;
    s1 = (s1 + b0 + b1 + b2 + b3) | 0;
  }
  for (; i < end; i++) {
    s1 = (s1 + buf[i]!) | 0; // ≤ 255·2^17: never overflows int32
    s2 = (s2 + s1) | 0; // wraps mod 2^32, low 16 bits stay exact
  }
  return ((s1 & 0xffff) | ((s2 & 0xffff) << 16)) >>> 0;
}
