/**
 * patch(): the receiver side. Rebuilds the new file from the basis and a DeltaOp stream into a
 * temp file next to the target, checks size and SHA-256 against the END op, then fsyncs it (or
 * lets `durable` make it durable together with others), renames it over the target (atomic
 * replace) and fsyncs the directory. On any failure the temp
 * file is removed and the target is left untouched. A resumable transfer (`partial`) writes to a
 * file named after the wanted content instead, continues after the bytes it already holds, and
 * keeps what it received when the transfer is cut (but not when the content proved wrong).
 */
import { createHash, randomBytes } from 'node:crypto';
import type { Hash } from 'node:crypto';
import { constants } from 'node:fs';
import { fchmodSync, fchownSync, fstatSync, futimesSync } from 'node:fs';
import { open, rename, unlink } from 'node:fs/promises';
import type { FileHandle } from 'node:fs/promises';
import { basename, dirname, join } from 'node:path';
import { FileSyncError } from '../errors.ts';
import { MAX_FILE_SIZE, MAX_LITERAL } from './limits.ts';
import type { DeltaOp, Signature } from './types.ts';
import { checkSignature } from './validate.ts';

export interface PatchOptions {
  /** Permission bits of the new file (applied before the rename). Default 0o644 & ~umask. */
  mode?: number;
  /** Refuse to write more than this many bytes (a peer could otherwise fill the disk). */
  maxSize?: number;
  /** Modification time (seconds, as for utimes) set on the temp file before the rename. */
  mtime?: number;
  /** Owner set on the temp file before the rename (needs root). */
  owner?: { uid: number; gid: number };
  /**
   * fsync the directory after the rename (default true). A caller writing many files may pass
   * false and sync each directory once per batch (then the rename is durable only after that).
   */
  syncDir?: boolean;
  /**
   * Literal data stays valid after patch() asks for the next op (e.g. decoded from network
   * messages): it is then gathered for writing without a copy. Default false: a producer may
   * reuse its buffer (wholeFileOps), so literals are copied.
   */
  stableLiterals?: boolean;
  /**
   * Makes the written, closed temp file durable instead of its own fsync (GroupSync: one
   * syncfs for many small files); resolves once it is on disk, before the rename.
   */
  durable?: (tmp: string, dev: bigint) => Promise<void>;
  /** Last check before the rename (e.g. the target did not change meanwhile); throwing aborts. */
  beforeRename?: () => Promise<void>;
  /**
   * Resumable transfer: write into `path` (a name keyed by the wanted content, next to the
   * target) instead of a random temp file, keeping its first `offset` bytes as the start of the
   * output — the ops produce what follows. When the transfer fails before the content is
   * verified, for a reason other than wrong content (connection cut, sender gone), the bytes
   * received are flushed and the file is kept for a later call to resume from.
   */
  partial?: { path: string; offset: number };
}

/** Failures that prove the received bytes wrong: a partial file is not worth keeping then. */
const BAD_CONTENT = new Set(['E_PATCH_HASH', 'E_DELTA', 'E_STALE']);

export interface PatchResult {
  size: number;
  sha256: Uint8Array;
  /** Inode and mtime of the written file (as lstat would now report them). */
  ino: bigint;
  mtimeNs: bigint;
}

/** Bytes gathered before one writev() to the temp file: each call is a thread-pool round trip. */
const GATHER_BYTES = 4 << 20;
/** At most this many pieces per writev() (IOV_MAX is 1024). */
const GATHER_PARTS = 512;

/** Temp-file prefix; the scanner always ignores names starting with it. */
export const TEMP_PREFIX = '.multiall.';
export const TEMP_SUFFIX = '.tmp';

/** Unique per process (random) and per call (counter): no random bytes drawn for every file. */
const TEMP_ID = randomBytes(6).toString('hex');
let tempSeq = 0;

export function tempPathFor(target: string): string {
  // Bounded so that a 255-byte target name still yields a legal temp name.
  const base = basename(target).slice(0, 100);
  return join(dirname(target), `${TEMP_PREFIX}${base}.${TEMP_ID}${(tempSeq++).toString(36)}${TEMP_SUFFIX}`);
}

/** fsync of a directory (makes renames and creations in it durable). */
export async function syncDir(dir: string): Promise<void> {
  const fh = await open(dir, 'r');
  try {
    await fh.sync();
  } finally {
    await fh.close();
  }
}

/**
 * Output of one patch(): pieces gathered (kept as they are, or copied into one buffer) and
 * written at the file position they belong to with few writev() calls.
 */
class Gather {
  readonly #fh: FileHandle;
  /** Allocated on the first copy (stable literals never need it), of at most the bytes left to write. */
  #copy: Buffer | undefined;
  readonly #copySize: number;
  #copied = 0;
  #parts: Uint8Array[] = [];
  #bytes = 0;
  /** File position of the first gathered byte. */
  #pos: number;

  constructor(fh: FileHandle, pos: number, maxSize: number) {
    this.#fh = fh;
    this.#pos = pos;
    this.#copySize = Math.max(1, Math.min(GATHER_BYTES, maxSize - pos));
  }

  /** The copy buffer with room for at least one byte (gathered pieces written first if full). */
  async #room(): Promise<Buffer> {
    if (this.#copied === this.#copySize) await this.flush();
    this.#copy ??= Buffer.allocUnsafe(this.#copySize);
    return this.#copy;
  }

  /** Gathers `data`: as it is when `keep` (the caller never changes it), else copied. */
  async add(data: Uint8Array, keep: boolean): Promise<void> {
    if (keep) {
      this.#parts.push(data);
      this.#bytes += data.length;
    } else {
      for (let off = 0; off < data.length;) {
        const copy = await this.#room();
        const n = Math.min(data.length - off, copy.length - this.#copied);
        copy.set(data.subarray(off, off + n), this.#copied);
        this.#push(copy, this.#copied, n);
        off += n;
      }
    }
    if (this.#bytes >= GATHER_BYTES || this.#parts.length >= GATHER_PARTS) await this.flush();
  }

  /** Reads up to `want` bytes of `src` at `pos` into the copy buffer; the bytes read, hashed into `sha`. */
  async read(src: FileHandle, want: number, pos: number, sha: Hash): Promise<number> {
    const copy = await this.#room();
    const at = this.#copied;
    const { bytesRead } = await src.read(copy, at, Math.min(want, copy.length - at), pos);
    if (bytesRead > 0) {
      sha.update(copy.subarray(at, at + bytesRead));
      this.#push(copy, at, bytesRead);
    }
    return bytesRead;
  }

  #push(copy: Buffer, at: number, n: number): void {
    this.#copied = at + n;
    this.#parts.push(copy.subarray(at, at + n));
    this.#bytes += n;
  }

  async flush(): Promise<void> {
    const parts = this.#parts;
    while (parts.length > 0) {
      const { bytesWritten } = await this.#fh.writev(parts, this.#pos);
      this.#pos += bytesWritten;
      // Short write (rare for a regular file): drop what was written, go on with the rest.
      let skip = bytesWritten;
      while (parts.length > 0 && skip >= parts[0]!.length) skip -= parts.shift()!.length;
      if (skip > 0) parts[0] = parts[0]!.subarray(skip);
    }
    this.#parts = [];
    this.#bytes = 0;
    this.#copied = 0;
  }
}

/** Opens a partial file for resuming: cut to `offset` bytes, which are hashed into `sha`. */
async function openPartial(path: string, offset: number, mode: number, sha: Hash): Promise<FileHandle> {
  const fh = await open(path, constants.O_RDWR | constants.O_CREAT | constants.O_NOFOLLOW, mode);
  try {
    const st = await fh.stat();
    if (!st.isFile() || st.size < offset) throw new FileSyncError('E_DELTA', `partial file ${path} holds ${st.size} bytes, fewer than the ${offset} to resume from`);
    if (st.size > offset) await fh.truncate(offset);
    const buf = Buffer.allocUnsafe(Math.max(1, Math.min(GATHER_BYTES, offset)));
    for (let pos = 0; pos < offset;) {
      const { bytesRead } = await fh.read(buf, 0, Math.min(buf.length, offset - pos), pos);
      if (bytesRead === 0) throw new FileSyncError('E_DELTA', `partial file ${path} shrank while resuming`);
      sha.update(buf.subarray(0, bytesRead));
      pos += bytesRead;
    }
    return fh;
  } catch (e) {
    await fh.close();
    throw e;
  }
}

/**
 * @param basis path of the file the signature was made from, or null when there is none (then
 *   only literal ops are acceptable)
 * @param sig the signature the sender computed `ops` against
 */
export async function patch(
  basis: string | null,
  ops: AsyncIterable<DeltaOp> | Iterable<DeltaOp>,
  outFile: string,
  sig: Signature,
  opts: PatchOptions = {},
): Promise<PatchResult> {
  checkSignature(sig);
  const maxSize = opts.maxSize ?? MAX_FILE_SIZE;
  const bs = sig.blockSize;
  const nBlocks = sig.weak.length;
  const tmp = opts.partial?.path ?? tempPathFor(outFile);
  const from = opts.partial?.offset ?? 0;
  if (!Number.isSafeInteger(from) || from < 0 || from > maxSize) throw new FileSyncError('E_ARG', `cannot resume at byte ${from} of at most ${maxSize}`);
  let base: FileHandle | null = null;
  const sha = createHash('sha256');
  let out: FileHandle | null = null;
  let gather: Gather | null = null;
  let written = from;
  let verified = false;
  try {
    if (basis !== null) {
      base = await open(basis, 'r');
      const st = await base.stat();
      if (st.size !== sig.fileSize) {
        throw new FileSyncError('E_DELTA', `basis ${basis} is ${st.size} bytes, signature says ${sig.fileSize}: it changed since`);
      }
    }
    out = opts.partial === undefined ? await open(tmp, 'wx', opts.mode ?? 0o644) : await openPartial(tmp, from, opts.mode ?? 0o644, sha);
    gather = new Gather(out, from, maxSize);
    let end: { size: number; sha256: Uint8Array } | null = null;
    for await (const op of ops) {
      if (end !== null) throw new FileSyncError('E_DELTA', `op '${op.type}' after end`);
      if (op.type === 'literal') {
        if (op.data.length === 0 || op.data.length > MAX_LITERAL) throw new FileSyncError('E_DELTA', `literal of ${op.data.length} bytes`);
        if (written + op.data.length > maxSize) throw new FileSyncError('E_DELTA', `output exceeds ${maxSize} bytes`);
        sha.update(op.data);
        await gather.add(op.data, opts.stableLiterals === true);
        written += op.data.length;
      } else if (op.type === 'copy') {
        if (base === null) throw new FileSyncError('E_DELTA', 'copy op without a basis file');
        if (!Number.isSafeInteger(op.start) || !Number.isSafeInteger(op.count) || op.start < 0 || op.count < 1 || op.start + op.count > nBlocks) {
          throw new FileSyncError('E_DELTA', `copy of blocks [${op.start}, +${op.count}) outside the ${nBlocks} basis blocks`);
        }
        let pos = op.start * bs;
        const stop = Math.min((op.start + op.count) * bs, sig.fileSize);
        if (written + (stop - pos) > maxSize) throw new FileSyncError('E_DELTA', `output exceeds ${maxSize} bytes`);
        while (pos < stop) {
          const n = await gather.read(base, stop - pos, pos, sha);
          if (n === 0) throw new FileSyncError('E_DELTA', `basis ${basis} shrank while patching`);
          pos += n;
          written += n;
        }
      } else if (op.type === 'end') {
        end = op;
      } else {
        throw new FileSyncError('E_DELTA', `unknown op ${JSON.stringify((op as { type: unknown }).type)}`);
      }
    }
    if (end === null) throw new FileSyncError('E_DELTA', 'op stream ended without an end op');
    await gather.flush();
    const digest = new Uint8Array(sha.digest());
    if (end.size !== written) throw new FileSyncError('E_PATCH_HASH', `rebuilt ${written} bytes, sender announced ${end.size}`);
    if (Buffer.compare(digest, end.sha256) !== 0) throw new FileSyncError('E_PATCH_HASH', 'rebuilt file SHA-256 differs from the sender\'s');
    verified = true;
    // Metadata calls on the open file descriptor only touch the in-memory inode (never wait for
    // the disk): made synchronously, which saves a thread-pool round trip each — per file, that
    // is most of the cost of a small one.
    if (opts.mtime !== undefined) futimesSync(out.fd, new Date(), opts.mtime);
    const st = fstatSync(out.fd, { bigint: true });
    // chown/chmod only when needed (neither changes the mtime or inode recorded from `st`). A
    // chown clears the setuid/setgid bits, so the mode is set after it, and again if it ran.
    const chown = opts.owner !== undefined && (Number(st.uid) !== opts.owner.uid || Number(st.gid) !== opts.owner.gid);
    if (chown) fchownSync(out.fd, opts.owner!.uid, opts.owner!.gid);
    if (opts.mode !== undefined && (chown || Number(st.mode & 0o7777n) !== opts.mode)) fchmodSync(out.fd, opts.mode); // exact bits, umask not applied
    // Data (and metadata) durable before the rename: a crash never leaves a renamed, empty file.
    if (opts.durable === undefined) await out.sync();
    await out.close();
    out = null;
    if (opts.durable !== undefined) await opts.durable(tmp, st.dev);
    if (opts.beforeRename !== undefined) await opts.beforeRename();
    await rename(tmp, outFile);
    // Make the rename itself durable.
    if (opts.syncDir !== false) await syncDir(dirname(outFile));
    return { size: written, sha256: digest, ino: st.ino, mtimeNs: st.mtimeNs };
  } catch (err) {
    const keep = opts.partial !== undefined && !verified && !(err instanceof FileSyncError && BAD_CONTENT.has(err.code));
    if (out !== null) {
      if (keep) await gather?.flush().catch(() => undefined);
      await out.close().catch(() => undefined);
    }
    out = null;
    if (!keep) await unlink(tmp).catch(() => undefined);
    throw err;
  } finally {
    if (out !== null) await out.close();
    if (base !== null) await base.close();
  }
}
