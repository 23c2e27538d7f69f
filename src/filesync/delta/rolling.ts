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
  for (let i = start; i < end; i++) {
    s1 = (s1 + buf[i]!) | 0; // ≤ 255·2^17: never overflows int32
    s2 = (s2 + s1) | 0; // wraps mod 2^32, low 16 bits stay exact
  }
  return ((s1 & 0xffff) | ((s2 & 0xffff) << 16)) >>> 0;
}
