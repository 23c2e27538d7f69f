/**
 * Content transfer of file versions over `files.fetch` RPC streams (protocol.ts): one stream
 * carries a batch of files back-to-back, so many small files cost one round trip, not one each.
 * - fetchBatch (receiver): computes the signatures of its delta bases, opens the stream with the
 *   list, uploads the signatures, and feeds each file's DeltaOps into the atomic patch(). A file's
 *   END op must carry the SHA-256 the receiver asked for (else E_STALE), and patch() checks the
 *   rebuilt bytes against it before its rename: a file that changed on the sender mid-transfer
 *   never becomes visible, nor does any partial file. Each file succeeds or fails on its own;
 *   the fsync + rename of one file overlaps with receiving the next.
 * - serveFetch (sender): for each requested file, delta(sig, file) against the receiver's
 *   signature, or the whole file as LITERAL chunks + END when it sent none; a miss when the
 *   file is not available (or failed midway); optionally throttled. A whole file is served only
 *   when its stat matches the index record of the requested hash, and its END carries that hash
 *   without hashing the file again: the receiver hashes every byte anyway, so a file changed in
 *   place without a stat change fails there (E_PATCH_HASH) and never goes unnoticed.
 * Resumable: a file whose item carries `patch.partial` (partial.ts) is written into a partial
 * file kept when the transfer is cut; the next fetch sends its size as `offset` and the sender
 * sends only what follows (delta against the basis, or literal), with END over the whole file.
 * Depends on: delta/ (signature, delta, patch, wire codecs), rpc RpcStream, protocol.ts.
 */
import { createHash } from 'node:crypto';
import type { Hash } from 'node:crypto';
import { constants, fstatSync, type BigIntStats } from 'node:fs';
import { open } from 'node:fs/promises';
import type { FileHandle } from 'node:fs/promises';
import type { RpcStream } from '../rpc/connection.ts';
import { BinParts } from '../rpc/frame.ts';
import { FileSyncError } from './errors.ts';
import { decodeDeltaOp, delta, encodeDeltaOp, literalHead, encodeSignature, decodeSignature, MAX_LITERAL, MAX_STRONG_LEN, patch, signature } from './delta/index.ts';
import type { DeltaOp, PatchOptions, PatchResult, Signature } from './delta/index.ts';
import { SIG_CHUNK_BYTES, decodeMiss, encodeMiss } from './protocol.ts';
import type { FetchFile } from './protocol.ts';
import type { GroupSync } from './groupsync.ts';
import type { Throttle } from './throttle.ts';

/** Signature of "no basis": zero blocks, so only LITERAL ops are acceptable. */
export const EMPTY_SIGNATURE: Signature = { blockSize: 512, fileSize: 0, strongLen: 16, weak: new Uint32Array(0), strong: new Uint8Array(0) };

/** Below this basis size the whole file is requested: a signature would save next to nothing. */
export const MIN_DELTA_BASIS = 2048;

export interface TransferCounters {
  /** Bytes of encoded ops received (or sent). */
  opBytes: number;
  /** Bytes of signature sent (or received). */
  sigBytes: number;
  /** Bytes of files completed from partial files of earlier, interrupted transfers (not fetched again). */
  resumedBytes: number;
}

/** What the receiver already has of a file (its first `size` bytes), hashed: where a resumed delta starts. */
interface Prefix {
  sha: Hash;
  size: number;
}

const READ_BUF = 4 << 20;

/** Reads (from its position) and hashes the first `n` bytes of `fh`; fewer if it is shorter. */
async function readPrefix(fh: FileHandle, n: number): Promise<Prefix> {
  const sha = createHash('sha256');
  const buf = Buffer.allocUnsafe(Math.max(1, Math.min(READ_BUF, n)));
  let size = 0;
  while (size < n) {
    const { bytesRead } = await fh.read(buf, 0, Math.min(buf.length, n - size), null);
    if (bytesRead === 0) break;
    sha.update(buf.subarray(0, bytesRead));
    size += bytesRead;
  }
  return { sha, size };
}

/** The content a whole-file transfer is expected to produce, from byte `offset` on (resumed). */
interface Expected {
  sha256: Uint8Array;
  offset: number;
}

/**
 * Whole file as literal ops + END (no rolling: nothing to match against), from byte
 * `want.offset` on (a resumed transfer). Reads up to 1 MiB per read() and stops at `size` (from
 * fstat). END carries the expected hash: nothing is hashed here, the receiver's patch() checks
 * every byte against it.
 */
export async function* wholeFileOps(fh: FileHandle, size: number, want: Expected): AsyncGenerator<DeltaOp> {
  let total = Math.min(want.offset, size);
  // One buffer for the whole file: a literal's data is valid until the next op is asked for
  // (serveFetch's write resolves once the socket has encrypted it, patch() copies it into its
  // write buffer, before they ask).
  const buf = Buffer.allocUnsafe(Math.max(1, Math.min(READ_BUF, size - total)));
  while (total < size) {
    const { bytesRead } = await fh.read(buf, 0, Math.min(buf.length, size - total), total);
    if (bytesRead === 0) break; // shrank
    const data = buf.subarray(0, bytesRead);
    total += bytesRead;
    for (let off = 0; off < bytesRead; off += MAX_LITERAL) yield { type: 'literal', data: data.subarray(off, Math.min(bytesRead, off + MAX_LITERAL)) };
  }
  yield { type: 'end', size: total, sha256: want.sha256 };
}

/** A file the sender may serve: open (no symlink followed) and matching the index. */
export type OpenServable = (f: FetchFile) => Promise<{ fh: FileHandle; size: number } | null>;

/** Opens `abs` for reading without following a symlink; null unless it is a regular file accepted by `ok`. */
export async function openRegular(abs: string, ok: (st: BigIntStats) => boolean): Promise<{ fh: FileHandle; size: number } | null> {
  let fh: FileHandle;
  try {
    fh = await open(abs, constants.O_RDONLY | constants.O_NOFOLLOW);
  } catch {
    return null;
  }
  try {
    // fstat of an open descriptor never waits for the disk: synchronous, no thread-pool round trip.
    const st = fstatSync(fh.fd, { bigint: true });
    if (st.isFile() && ok(st)) return { fh, size: Number(st.size) };
  } catch {
    // fall through
  }
  await fh.close().catch(() => undefined);
  return null;
}

/** A message of gathered ops is sent at this size or op count. */
const GATHER_BYTES = 128 * 1024;
const GATHER_OPS = 256;

/** Files opened (and, when small, read) ahead of the one being sent. */
const PREFETCH = 8;
/** Files up to this size are read whole by the prefetch. */
const PREFETCH_READ = 256 * 1024;

type Prepared = { fh: FileHandle; size: number; data?: Buffer } | null;

async function prepare(openFile: OpenServable, f: FetchFile): Promise<Prepared> {
  const file = await openFile(f);
  if (file === null || f.sigBytes > 0 || file.size > PREFETCH_READ) return file;
  const data = Buffer.allocUnsafe(file.size);
  let got = 0;
  try {
    while (got < data.length) {
      const { bytesRead } = await file.fh.read(data, got, data.length - got, null);
      if (bytesRead === 0) break;
      got += bytesRead;
    }
  } catch {
    return file; // read again (and fail precisely) when it is its turn
  }
  await file.fh.close().catch(() => undefined);
  return { ...file, data: data.subarray(0, got) };
}

/** Whole-file ops of content already in memory (from byte `offset` on, for a resumed transfer); see wholeFileOps. */
function* bufferOps(data: Buffer, want: Expected): Generator<DeltaOp> {
  for (let off = Math.min(want.offset, data.length); off < data.length; off += MAX_LITERAL) yield { type: 'literal', data: data.subarray(off, Math.min(data.length, off + MAX_LITERAL)) };
  yield { type: 'end', size: data.length, sha256: want.sha256 };
}

/**
 * Sender side of files.fetch: reads the receiver's signatures as needed and streams each file.
 * The next PREFETCH files are opened (small ones read) while the current one is sent.
 */
export async function serveFetch(stream: RpcStream, files: FetchFile[], openFile: OpenServable, throttle: Throttle | undefined, counters: TransferCounters): Promise<void> {
  const input = stream[Symbol.asyncIterator]();
  // Encoded ops are gathered into one message (an array) up to GATHER_BYTES / GATHER_OPS, so
  // small files share a frame; gathered ops go out before anything that may wait.
  let gathered: Uint8Array[] = [];
  let gatheredBytes = 0;
  const flush = async (): Promise<void> => {
    if (gathered.length === 0) return;
    const msg = gathered.length === 1 ? gathered[0]! : gathered;
    const n = gatheredBytes;
    gathered = [];
    gatheredBytes = 0;
    if (throttle !== undefined) await throttle.take(n);
    counters.opBytes += n;
    await stream.write(msg);
  };
  const send = async (chunk: Uint8Array): Promise<void> => {
    gathered.push(chunk);
    gatheredBytes += chunk.length;
    if (gatheredBytes >= GATHER_BYTES || gathered.length >= GATHER_OPS) await flush();
  };
  const ahead: Promise<Prepared>[] = [];
  const ready: boolean[] = [];
  const fill = (from: number): void => {
    for (let k = ahead.length; k < Math.min(files.length, from + PREFETCH + 1); k++) {
      const p = prepare(openFile, files[k]!).catch(() => null);
      void p.then(() => (ready[k] = true));
      ahead.push(p);
    }
  };
  let i = 0;
  /** Files from this one on were opened ahead and not taken (a taken file is closed by its own turn). */
  let untaken = 0;
  try {
    for (; i < files.length; i++) {
      const f = files[i]!;
      fill(i);
      let sig: Signature | null = null;
      if (f.sigBytes > 0) {
        await flush();
        const chunks: Uint8Array[] = [];
        let got = 0;
        while (got < f.sigBytes) {
          const r = await input.next();
          if (r.done === true) throw new FileSyncError('E_WIRE', `stream ended inside the signature of ${f.path}`);
          const c = r.value;
          if (!(c instanceof Uint8Array)) throw new FileSyncError('E_WIRE', 'signature chunk must be binary');
          got += c.length;
          if (c.length > SIG_CHUNK_BYTES || got > f.sigBytes) throw new FileSyncError('E_WIRE', `signature of ${f.path} longer than the announced ${f.sigBytes} bytes`);
          chunks.push(c);
        }
        counters.sigBytes += got;
        sig = decodeSignature(chunks.length === 1 ? chunks[0]! : Buffer.concat(chunks));
      }
      if (ready[i] !== true) await flush();
      const file = await ahead[i]!;
      untaken = i + 1;
      if (file === null) {
        await send(encodeMiss(`no file with content ${f.hash.slice(0, 16)}… at ${f.path}`));
        continue;
      }
      try {
        if (file.data === undefined) await flush(); // reading or rolling over a file may take a while
        const want: Expected = { sha256: Buffer.from(f.hash, 'hex'), offset: f.offset };
        // A resuming receiver has the first f.offset bytes: for a delta they are only hashed here, for END.
        const prefix = file.data === undefined && sig !== null && f.offset > 0 ? await readPrefix(file.fh, Math.min(f.offset, file.size)) : undefined;
        const ops = file.data !== undefined ? bufferOps(file.data, want) : sig === null ? wholeFileOps(file.fh, file.size, want) : delta(sig, file.fh, prefix, prefix === undefined ? want.sha256 : undefined);
        for await (const op of ops) {
          if (op.type === 'literal' && op.data.length >= GATHER_BYTES) {
            // A big literal goes out in its own message, header and data framed without joining
            // them: the socket encrypts its bytes where they are (see encodeFrameParts).
            await flush();
            const msg = new BinParts([literalHead(op.data.length), op.data]);
            if (throttle !== undefined) await throttle.take(msg.length);
            counters.opBytes += msg.length;
            await stream.write(msg);
          } else await send(encodeDeltaOp(op));
        }
      } catch (e) {
        if (e instanceof FileSyncError && e.code === 'E_WIRE') throw e;
        if (stream.finished) throw e;
        // Reading failed midway (I/O error…): this file fails on the receiver, the batch goes on.
        await send(encodeMiss(`reading ${f.path} failed: ${(e as Error).message}`));
      } finally {
        if (file.data === undefined) await file.fh.close().catch(() => undefined);
      }
    }
    await flush();
    const extra = await input.next();
    if (extra.done !== true) throw new FileSyncError('E_WIRE', 'data after the last announced signature');
  } finally {
    // Close whatever was opened ahead and not sent (also the current file if the stream failed
    // before its turn, e.g. inside its signature).
    for (let k = untaken; k < ahead.length; k++) {
      void ahead[k]!.then((p) => (p !== null && p.data === undefined ? p.fh.close() : undefined)).catch(() => undefined);
    }
  }
}

/** One file of a fetch batch. */
export interface FetchItem {
  path: string;
  /** Hex SHA-256 of the wanted version. */
  hash: string;
  size: number;
  /** Local file to use as the delta basis, or null (whole file). */
  basis: string | null;
  /** Strong-sum bytes of the basis signature (default: rsync's rule; 16 after a false match). */
  strongLen?: number;
  target: string;
  patch: Omit<PatchOptions, 'maxSize'>;
}

/** Async queue of one file's ops, between the stream reader and patch(), with backpressure. */
class OpQueue implements AsyncIterable<DeltaOp> {
  readonly #items: DeltaOp[] = [];
  #bytes = 0;
  #closed = false;
  #error: Error | undefined;
  #dead = false;
  #wake: (() => void) | undefined;
  #space: (() => void) | undefined;
  static readonly HIGH = 4 << 20;

  /** Resolves when the consumer has room again (or is gone). */
  async push(op: DeltaOp): Promise<void> {
    if (this.#dead) return;
    this.#items.push(op);
    this.#bytes += op.type === 'literal' ? op.data.length : 16;
    this.#wake?.();
    if (this.#bytes > OpQueue.HIGH) await new Promise<void>((r) => (this.#space = r));
  }

  close(err?: Error): void {
    this.#closed = true;
    this.#error = err;
    this.#wake?.();
  }

  /** The consumer is gone (done, failed, or never started reading): drop what is queued or still arrives. */
  drop(): void {
    this.#dead = true;
    this.#items.length = 0;
    this.#bytes = 0;
    this.#space?.();
    this.#space = undefined;
  }

  async *[Symbol.asyncIterator](): AsyncIterator<DeltaOp> {
    try {
      for (;;) {
        const op = this.#items.shift();
        if (op !== undefined) {
          this.#bytes -= op.type === 'literal' ? op.data.length : 16;
          if (this.#space !== undefined && this.#bytes <= OpQueue.HIGH / 2) {
            this.#space();
            this.#space = undefined;
          }
          yield op;
          continue;
        }
        if (this.#closed) {
          if (this.#error !== undefined) throw this.#error;
          return;
        }
        await new Promise<void>((r) => (this.#wake = r));
        this.#wake = undefined;
      }
    } finally {
      this.drop();
    }
  }
}

/** Files per stream being written/finished (fsync + rename) while the next ones arrive... */
const MAX_FINISHING = 1024;
/** ...of which at most this many of GROUP_SYNC_MAX bytes or more (buffers of several MiB each). */
const MAX_FINISHING_LARGE = 16;
/** Files below this size are made durable in groups (GroupSync) when a group is given. */
export const GROUP_SYNC_MAX = 1 << 20;

/**
 * Receiver side: fetches `items` over one files.fetch stream. `done(i, result | error)` is called
 * once per item, in completion order. Throws only if the stream itself failed; items not done
 * then are reported with that error first. Files below GROUP_SYNC_MAX (not resumed) are made
 * durable through `group` when one is given, else each by its own fsync.
 */
export async function fetchBatch(
  openStream: (body: unknown) => Promise<RpcStream>,
  tree: string,
  items: FetchItem[],
  counters: TransferCounters,
  done: (i: number, r: PatchResult | Error) => Promise<void> | void,
  group?: GroupSync,
): Promise<void> {
  const sigs: Signature[] = [];
  const enc: Uint8Array[] = [];
  const reported = new Set<number>();
  const report = async (i: number, r: PatchResult | Error): Promise<void> => {
    if (reported.has(i)) return;
    reported.add(i);
    await done(i, r);
  };
  for (let i = 0; i < items.length; i++) {
    const it = items[i]!;
    let sig = EMPTY_SIGNATURE;
    let e: Uint8Array = new Uint8Array(0);
    if (it.basis !== null) {
      try {
        sig = await signature(it.basis, it.strongLen === undefined ? {} : { strongLen: it.strongLen });
        e = encodeSignature(sig);
      } catch {
        // Basis unreadable: whole file instead.
        sig = EMPTY_SIGNATURE;
        it.basis = null;
      }
    }
    sigs.push(sig);
    enc.push(e);
  }
  const offset = (it: FetchItem): number => it.patch.partial?.offset ?? 0;
  let stream: RpcStream;
  try {
    stream = await openStream({ tree, files: items.map((it, i) => [it.path, Buffer.from(it.hash, 'hex'), enc[i]!.length, ...(offset(it) > 0 ? [offset(it)] : [])]) });
  } catch (e) {
    for (let k = 0; k < items.length; k++) await report(k, e as Error);
    throw e;
  }
  const finishing = new Set<Promise<void>>();
  let finishingLarge = 0;
  let current: OpQueue | undefined;
  try {
    const upload = (async (): Promise<void> => {
      for (const e of enc) {
        for (let off = 0; off < e.length; off += SIG_CHUNK_BYTES) {
          const c = e.subarray(off, off + SIG_CHUNK_BYTES);
          await stream.write(c);
          counters.sigBytes += c.length;
        }
      }
      stream.end();
    })();
    upload.catch(() => undefined); // a stream failure surfaces in the reader below
    let i = 0;
    const startFile = (): OpQueue => {
      const it = items[i]!;
      const idx = i;
      const q = new OpQueue();
      const large = it.size >= GROUP_SYNC_MAX;
      const durable = group !== undefined && !large && it.patch.partial === undefined ? group.durable.bind(group) : undefined;
      const p: Promise<void> = patch(it.basis, q, it.target, sigs[idx]!, { ...it.patch, maxSize: it.size, stableLiterals: true, durable }).then(
        (r) => {
          counters.resumedBytes += offset(it);
          return report(idx, r);
        },
        (e: unknown) => report(idx, e as Error),
      ).finally(() => {
        // patch() may fail before it reads a single op (temp file not creatable, basis changed):
        // a reader waiting for room in the queue must not wait for it forever.
        q.drop();
        finishing.delete(p);
        if (large) finishingLarge--;
      });
      finishing.add(p);
      if (large) finishingLarge++;
      return q;
    };
    for await (const msg of stream) {
      // A message is one encoded op (or miss), or an array of them (GATHER_OPS at most).
      const chunks = msg instanceof Uint8Array ? [msg] : Array.isArray(msg) && msg.length > 0 && msg.length <= GATHER_OPS ? (msg as unknown[]) : null;
      if (chunks === null) throw new FileSyncError('E_WIRE', `fetch message must be binary or an array of 1..${GATHER_OPS} binaries`);
      for (const c of chunks) {
        if (!(c instanceof Uint8Array)) throw new FileSyncError('E_WIRE', 'fetch chunk must be binary');
        if (i >= items.length) throw new FileSyncError('E_WIRE', 'data after the last requested file');
        counters.opBytes += c.length;
        if (current === undefined) {
          while (finishing.size >= MAX_FINISHING || (items[i]!.size >= GROUP_SYNC_MAX && finishingLarge >= MAX_FINISHING_LARGE)) await Promise.race(finishing);
          current = startFile();
        }
        const miss = decodeMiss(c);
        if (miss !== undefined) {
          // Not proof that a partial's bytes are wrong: it is kept for another try.
          current.close(new FileSyncError('E_UNAVAILABLE', `peer could not send ${items[i]!.path}: ${miss}`));
          current = undefined;
          i++;
          continue;
        }
        const op = decodeDeltaOp(c);
        if (op.type === 'end') {
          if (Buffer.from(op.sha256).toString('hex') !== items[i]!.hash) {
            current.close(new FileSyncError('E_STALE', 'sender\'s file is not the requested version (changed since it was announced)'));
          } else {
            await current.push(op);
            current.close();
          }
          current = undefined;
          i++;
          continue;
        }
        await current.push(op);
      }
    }
    if (i < items.length) throw new FileSyncError('E_WIRE', `stream ended after ${i} of ${items.length} files`);
    await upload;
  } catch (e) {
    current?.close(e as Error);
    stream.cancel('fetch failed');
    await Promise.allSettled([...finishing]);
    for (let k = 0; k < items.length; k++) await report(k, e as Error);
    throw e;
  }
  await Promise.allSettled([...finishing]);
}

/**
 * The item to fetch once more after patch() rebuilt a wrong file, or null: after a false block
 * match (weak + truncated strong sums matched wrongly) again with full-length sums, after a
 * resumed transfer (the kept bytes proved wrong, e.g. a partial damaged by a crash; patch()
 * removed it) again from byte 0.
 */
export function retryItem(e: unknown, item: FetchItem): FetchItem | null {
  if (!(e instanceof FileSyncError) || e.code !== 'E_PATCH_HASH') return null;
  const partial = item.patch.partial;
  const falseMatch = item.basis !== null && (item.strongLen ?? 0) < MAX_STRONG_LEN;
  if (!falseMatch && (partial?.offset ?? 0) === 0) return null;
  return { ...item, strongLen: MAX_STRONG_LEN, patch: partial === undefined ? item.patch : { ...item.patch, partial: { path: partial.path, offset: 0 } } };
}

/** Local copy of a file we already have with the wanted content (rename/move, conflict copy). */
export async function copyLocal(source: string, want: { hash: string; size: number; target: string; patch: Omit<PatchOptions, 'maxSize'> }): Promise<PatchResult> {
  const file = await openRegular(source, () => true);
  if (file === null) throw new FileSyncError('E_STALE', `${source} is no longer a regular file`);
  try {
    // patch() hashes what it copies: a source that no longer has the wanted content fails there.
    return await patch(null, wholeFileOps(file.fh, file.size, { sha256: Buffer.from(want.hash, 'hex'), offset: 0 }), want.target, EMPTY_SIGNATURE, { ...want.patch, maxSize: want.size });
  } finally {
    await file.fh.close().catch(() => undefined);
  }
}
