/**
 * Byte sources for signature()/delta(): a file path or any AsyncIterable<Uint8Array> (a socket,
 * a stream), read into caller-owned buffers so that a large file never sits in memory.
 */
import { open } from 'node:fs/promises';
import type { FileHandle } from 'node:fs/promises';

/** A path (opened and closed here), a FileHandle (read from its position, left open), or chunks. */
export type ByteSource = string | FileHandle | AsyncIterable<Uint8Array>;

export interface Reader {
  /** Fill buf[off, off+len) as far as possible; returns bytes read, 0 only at end of data. */
  read(buf: Uint8Array, off: number, len: number): Promise<number>;
  close(): Promise<void>;
}

class FileReader implements Reader {
  readonly #fh: FileHandle;
  readonly #owned: boolean;

  constructor(fh: FileHandle, owned: boolean) {
    this.#fh = fh;
    this.#owned = owned;
  }

  async read(buf: Uint8Array, off: number, len: number): Promise<number> {
    let got = 0;
    // A single read may return short (pipes, FIFOs); loop until full or EOF.
    while (got < len) {
      const { bytesRead } = await this.#fh.read(buf, off + got, len - got, null);
      if (bytesRead === 0) break;
      got += bytesRead;
    }
    return got;
  }

  close(): Promise<void> {
    return this.#owned ? this.#fh.close() : Promise.resolve();
  }
}

class IterReader implements Reader {
  readonly #it: AsyncIterator<Uint8Array>;
  #pending: Uint8Array | null = null;
  #done = false;

  constructor(src: AsyncIterable<Uint8Array>) {
    this.#it = src[Symbol.asyncIterator]();
  }

  async read(buf: Uint8Array, off: number, len: number): Promise<number> {
    let got = 0;
    while (got < len) {
      if (this.#pending === null) {
        if (this.#done) break;
        const r = await this.#it.next();
        if (r.done === true) {
          this.#done = true;
          break;
        }
        this.#pending = r.value;
      }
      const take = Math.min(len - got, this.#pending.length);
      buf.set(this.#pending.subarray(0, take), off + got);
      got += take;
      this.#pending = take === this.#pending.length ? null : this.#pending.subarray(take);
    }
    return got;
  }

  async close(): Promise<void> {
    if (!this.#done) await this.#it.return?.();
  }
}

function isFileHandle(src: FileHandle | AsyncIterable<Uint8Array>): src is FileHandle {
  return typeof (src as Partial<FileHandle>).fd === 'number' && typeof (src as Partial<FileHandle>).read === 'function';
}

export async function openSource(src: ByteSource): Promise<Reader> {
  if (typeof src === 'string') return new FileReader(await open(src, 'r'), true);
  if (isFileHandle(src)) return new FileReader(src, false);
  return new IterReader(src);
}
