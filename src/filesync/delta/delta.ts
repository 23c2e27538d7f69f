/**
 * delta(): the sender side of the rsync algorithm. Slides a window of blockSize bytes over the
 * new file one byte at a time, updating the weak rolling sum in O(1); a hit in the hash table of
 * the basis' weak sums is confirmed with the strong sum. Emits coalesced COPY ranges, LITERAL
 * chunks of at most MAX_LITERAL bytes, then END with the new file's size and SHA-256.
 * `prefix`: the source starts after bytes the receiver already has (a resumed transfer); they
 * are already in `prefix.sha` and count in END's size, so END still describes the whole file.
 * `knownSha256`: the new file's SHA-256 as the caller already knows it (the sender's index, as
 * for a whole-file send): END carries it and the bytes are not hashed again here (the receiver
 * hashes what it rebuilds, so a file that changed since fails there).
 * Memory: one buffer of ~1 MiB + blockSize + MAX_LITERAL, whatever the file size.
 */
import { createHash } from 'node:crypto';
import type { Hash } from 'node:crypto';
import { createBlockHasher } from './hashers.ts';
import { MAX_LITERAL } from './limits.ts';
import { weakSum } from './rolling.ts';
import { openSource } from './source.ts';
import type { ByteSource } from './source.ts';
import type { DeltaOp, Signature } from './types.ts';
import { checkSignature } from './validate.ts';

const READ_CHUNK = 1 << 20;

export async function* delta(sig: Signature, src: ByteSource, prefix?: { sha: Hash; size: number }, knownSha256?: Uint8Array): AsyncGenerator<DeltaOp> {
  checkSignature(sig);
  const bs = sig.blockSize;
  const sl = sig.strongLen;
  const weakArr = sig.weak;
  const strongArr = sig.strong;
  const n = weakArr.length;
  const lastLen = n === 0 ? 0 : sig.fileSize - (n - 1) * bs;
  // A short last block can only match at the very end of the new file: keep it out of the table.
  const nFull = n === 0 ? 0 : lastLen === bs ? n : n - 1;

  // Chained hash table on weak sums (typed arrays: no per-entry objects), fronted by a bitmap
  // ~32x larger than the block count so most non-matching positions cost one bit test.
  const weakI = new Int32Array(weakArr.buffer, weakArr.byteOffset, weakArr.length); // signed view: no >>> 0 in the loop
  let bits = 10;
  while (bits < 26 && 1 << bits < nFull * 32) bits++;
  let headBits = 4;
  while (1 << headBits < nFull * 2) headBits++;
  headBits = Math.min(headBits, bits);
  const shift = 32 - bits;
  const headShift = bits - headBits;
  const bitmap = new Int32Array(Math.max(1, (1 << bits) >>> 5));
  const heads = new Int32Array(1 << headBits).fill(-1);
  const next = new Int32Array(Math.max(nFull, 1));
  for (let i = nFull - 1; i >= 0; i--) {
    const h = Math.imul(weakI[i]!, 0x9e3779b1) >>> shift;
    bitmap[h >>> 5]! |= 1 << (h & 31);
    next[i] = heads[h >>> headShift]!;
    heads[h >>> headShift] = i; // inserted backwards so chains list lower block indices first
  }

  const strongHash = await createBlockHasher();
  const strongEq = (block: number, digest: Uint8Array): boolean => {
    const o = block * sl;
    for (let k = 0; k < sl; k++) if (strongArr[o + k] !== digest[k]) return false;
    return true;
  };

  const sha = knownSha256 === undefined ? (prefix?.sha ?? createHash('sha256')) : null;
  const buf = new Uint8Array(READ_CHUNK + bs + MAX_LITERAL);
  let len = 0; // valid bytes in buf
  let pos = 0; // window start
  let lit = 0; // start of bytes not yet emitted (always <= pos)
  let eof = false;
  let total = prefix?.size ?? 0;
  let pendStart = -1;
  let pendCount = 0;
  const q: DeltaOp[] = [];

  const flushCopy = (): void => {
    if (pendCount > 0) q.push({ type: 'copy', start: pendStart, count: pendCount });
    pendStart = -1;
    pendCount = 0;
  };
  const addCopy = (block: number): void => {
    if (pendCount > 0 && block === pendStart + pendCount) {
      pendCount++;
      return;
    }
    flushCopy();
    pendStart = block;
    pendCount = 1;
  };
  const addLiteral = (from: number, to: number): void => {
    if (to <= from) return;
    flushCopy();
    for (let a = from; a < to; a += MAX_LITERAL) q.push({ type: 'literal', data: buf.slice(a, Math.min(to, a + MAX_LITERAL)) });
  };

  const reader = await openSource(src);
  try {
    const fill = async (): Promise<void> => {
      if (lit > 0) {
        buf.copyWithin(0, lit, len);
        pos -= lit;
        len -= lit;
        lit = 0;
      }
      const want = buf.length - len;
      const got = await reader.read(buf, len, want);
      if (got < want) eof = true; // readers return short only at end of data
      sha?.update(buf.subarray(len, len + got));
      len += got;
      total += got;
    };

    let s1 = 0;
    let s2 = 0;
    let haveSum = false;
    for (;;) {
      if (pos + bs > len || (pos + bs === len && !eof)) {
        if (!eof) {
          await fill();
          continue;
        }
        break; // fewer than bs bytes left: tail below
      }
      if (!haveSum) {
        const w = weakSum(buf, pos, bs);
        s1 = w & 0xffff;
        s2 = w >>> 16;
        haveSum = true;
      }
      // One bound for the hot loop: end of buffered data or literal chunk full.
      const stopAt = Math.min(len - bs, lit + MAX_LITERAL);
      let p = pos;
      let found = -1;
      const want = pendCount > 0 ? pendStart + pendCount : -1;
      for (;;) {
        const w = s1 | (s2 << 16);
        const h = Math.imul(w, 0x9e3779b1) >>> shift;
        if ((bitmap[h >>> 5]! & (1 << (h & 31))) !== 0) {
          let digest: Uint8Array | null = null;
          // Prefer the block following the previous match: keeps COPY ranges coalesced.
          if (want >= 0 && want < nFull && weakI[want] === w) {
            digest = strongHash(buf.subarray(p, p + bs));
            if (strongEq(want, digest)) found = want;
          }
          let i = heads[h >>> headShift]!;
          while (found < 0 && i >= 0) {
            if (weakI[i] === w) {
              digest ??= strongHash(buf.subarray(p, p + bs));
              if (strongEq(i, digest)) found = i;
            }
            i = next[i]!;
          }
          if (found >= 0) break;
        }
        if (p >= stopAt) break;
        const out = buf[p]!;
        s1 = (s1 - out + buf[p + bs]!) & 0xffff;
        s2 = (s2 - bs * out + s1) & 0xffff;
        p++;
      }
      pos = p;
      if (found >= 0) {
        addLiteral(lit, pos);
        addCopy(found);
        pos += bs;
        lit = pos;
        haveSum = false;
      } else if (pos - lit >= MAX_LITERAL) {
        flushCopy();
        q.push({ type: 'literal', data: buf.slice(lit, lit + MAX_LITERAL) });
        lit += MAX_LITERAL;
      } else if (eof) {
        break; // the last full window did not match
      } else {
        await fill();
      }
      if (q.length > 0) {
        yield* q;
        q.length = 0;
      }
    }

    // Tail: [lit, len) is unmatched, except that it may end with the basis' short last block.
    let tailBlock = false;
    if (lastLen > 0 && lastLen < bs && len - lastLen >= lit) {
      const from = len - lastLen;
      if (weakSum(buf, from, lastLen) === weakArr[n - 1] && strongEq(n - 1, strongHash(buf.subarray(from, len)))) {
        tailBlock = true;
      }
    }
    if (tailBlock) {
      addLiteral(lit, len - lastLen);
      addCopy(n - 1);
    } else {
      addLiteral(lit, len);
    }
    flushCopy();
    q.push({ type: 'end', size: total, sha256: knownSha256 ?? new Uint8Array(sha!.digest()) });
    yield* q;
  } finally {
    await reader.close();
  }
}
