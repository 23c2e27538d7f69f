/**
 * One established mTLS connection between two agents, shared by the server and client sides:
 * frames in and out, write backpressure ('drain'), read backpressure (pausing the socket while
 * a stream's consumer is behind), ping/pong keepalive, and RpcStream — the bidirectional
 * stream both sides hand to their users.
 *
 * Depends on: frame.ts, errors.ts, node:tls, pino Logger.
 */
import type { TLSSocket } from 'node:tls';
import type { Logger } from '../log/logger.ts';
import { ErrorCodes, ProtocolError, RpcError } from './errors.ts';
import { encodeFrameParts, FrameDecoder, MAX_ID, type Message } from './frame.ts';

export interface ConnectionOptions {
  socket: TLSSocket;
  /** Who is on the other end, for logs and errors (node name once known, else address). */
  peer: string;
  logger: Logger;
  maxFrameBytes: number;
  /** Send a ping after this long without inbound traffic; dead after 3 such periods (0 = off). */
  keepaliveMs: number;
  onMessage: (msg: Message, size: number) => void;
  /** The socket reads into this reused buffer (it was made with `onread`) instead of emitting 'data'. */
  reads?: ReusedReadBuffer;
  /** Called once when the socket is gone; `err` says why if it was not a clean close. */
  onClose: (err: RpcError | undefined) => void;
}

/** Size of a connection's reused read buffer: several TLS records per callback. */
const READ_BUFFER_BYTES = 64 * 1024;

/**
 * A client socket's read buffer (tls.connect's `onread`): decrypted bytes land in one buffer,
 * reused for every read, instead of a new Buffer per TLS record and a trip through the socket's
 * stream machinery — at bulk rates (file sync) that halves the receiving side's CPU for TLS and
 * takes a gigabyte of short-lived buffers per gigabyte off the garbage collector. The Connection
 * attaches its decoder, which copies what it keeps. Bytes read before that are copied and replayed.
 */
export class ReusedReadBuffer {
  readonly buffer = Buffer.allocUnsafe(READ_BUFFER_BYTES);
  #sink: ((chunk: Buffer) => void) | undefined;
  #early: Buffer[] = [];

  /** For `onread.callback`: never pauses the socket itself (the Connection does, with pause()). */
  readonly callback = (n: number): boolean => {
    const chunk = this.buffer.subarray(0, n);
    if (this.#sink !== undefined) this.#sink(chunk);
    else this.#early.push(Buffer.from(chunk));
    return true;
  };

  attach(sink: (chunk: Buffer) => void): void {
    this.#sink = sink;
    for (const c of this.#early.splice(0)) sink(c);
  }
}

export class Connection {
  readonly socket: TLSSocket;
  peer: string;
  readonly maxFrameBytes: number;
  readonly #log: Logger;
  readonly #decoder: FrameDecoder;
  readonly #opts: ConnectionOptions;
  #closed = false;
  #closeError: RpcError | undefined;
  #drain: { promise: Promise<void>; resolve: () => void; reject: (e: Error) => void } | undefined;
  /** Streams whose consumers are behind; the socket stays paused while any is listed. */
  readonly #pausedBy = new Set<number>();
  #idleTicks = 0;
  #pingId = 0;
  #timer: NodeJS.Timeout | undefined;

  constructor(opts: ConnectionOptions) {
    this.#opts = opts;
    this.socket = opts.socket;
    this.peer = opts.peer;
    this.maxFrameBytes = opts.maxFrameBytes;
    this.#log = opts.logger;
    this.#decoder = new FrameDecoder({ maxFrameBytes: opts.maxFrameBytes });
    this.socket.setNoDelay(true);
    // Kernel keepalive catches dead peers even while we deliberately stop reading.
    this.socket.setKeepAlive(true, 15_000);
    if (opts.reads !== undefined) opts.reads.attach((chunk) => this.#onData(chunk, true));
    else this.socket.on('data', (chunk: Buffer) => this.#onData(chunk, false));
    this.socket.on('drain', () => this.#settleDrain());
    this.socket.on('error', (err) => {
      if (!this.#closeError) this.#closeError = new RpcError(ErrorCodes.connectionClosed, `connection to ${this.peer} failed: ${err.message}`);
    });
    this.socket.on('end', () => {
      try {
        this.#decoder.end();
      } catch (err) {
        this.#log.warn({ peer: this.peer, reason: (err as ProtocolError).reason }, 'rpc peer closed mid-frame');
      }
    });
    this.socket.on('close', () => this.#onClose());
    if (opts.keepaliveMs > 0) {
      this.#timer = setInterval(() => this.#tick(), opts.keepaliveMs);
      this.#timer.unref();
    }
  }

  get closed(): boolean {
    return this.#closed;
  }

  /** Queue a message; false means the socket buffer is full (wait with `drained()`). */
  send(msg: Message): boolean {
    if (this.#closed || this.socket.destroyed) throw this.#closedError();
    let ok = true;
    for (const part of encodeFrameParts(msg, this.maxFrameBytes)) ok = this.socket.write(part);
    if (!ok && this.#drain === undefined) {
      let resolve!: () => void;
      let reject!: (e: Error) => void;
      const promise = new Promise<void>((res, rej) => {
        resolve = res;
        reject = rej;
      });
      promise.catch(() => undefined); // a writer may not be waiting when the connection dies
      this.#drain = { promise, resolve, reject };
    }
    return ok;
  }

  /** Send and wait until the socket accepts more (backpressure for stream writers). */
  async sendAndWait(msg: Message): Promise<void> {
    this.send(msg);
    await this.drained();
  }

  /** Resolves when the socket's write buffer is below its high-water mark. */
  drained(): Promise<void> {
    if (this.#closed) return Promise.reject(this.#closedError());
    return this.#drain?.promise ?? Promise.resolve();
  }

  /** Best-effort send that never throws (replies to a peer that may already be gone). */
  trySend(msg: Message): void {
    try {
      this.send(msg);
    } catch (err) {
      if (err instanceof RpcError && err.code === ErrorCodes.tooLarge && 'id' in msg) {
        this.trySend({ t: 'err', id: msg.id, code: err.code, message: err.message });
      }
    }
  }

  pauseFor(id: number): void {
    this.#pausedBy.add(id);
    this.socket.pause();
  }

  resumeFor(id: number): void {
    if (!this.#pausedBy.delete(id)) return;
    if (this.#pausedBy.size === 0 && !this.#closed) this.socket.resume();
  }

  /** Graceful close: flush what is queued, then end the TLS session. */
  close(): void {
    if (this.#closed) return;
    this.socket.end();
    // A peer that never answers our close must not hold the socket forever.
    setTimeout(() => this.socket.destroy(), 5_000).unref();
  }

  /** Tell the peer why (as an id-0 err), then drop the connection. */
  fail(code: string, message: string): void {
    if (this.#closed) return;
    this.#closeError ??= new RpcError(code, message);
    this.trySend({ t: 'err', id: 0, code, message });
    this.socket.destroySoon();
    setTimeout(() => this.socket.destroy(), 2_000).unref();
  }

  destroy(err?: RpcError): void {
    if (err && !this.#closeError) this.#closeError = err;
    this.socket.destroy();
  }

  #closedError(): RpcError {
    return this.#closeError ?? new RpcError(ErrorCodes.connectionClosed, `connection to ${this.peer} closed`);
  }

  #onData(chunk: Buffer, transient: boolean): void {
    this.#idleTicks = 0;
    let frames;
    try {
      frames = this.#decoder.push(chunk, transient);
    } catch (err) {
      const pe = err as ProtocolError;
      this.#log.warn({ peer: this.peer, reason: pe.reason, err: pe.message }, 'rpc malformed frame: closing connection');
      this.fail(ErrorCodes.protocol, pe.message);
      return;
    }
    for (const { msg, size } of frames) {
      if (this.#closed) return;
      if (msg.t === 'ping') {
        this.trySend({ t: 'pong', id: msg.id });
        continue;
      }
      if (msg.t === 'pong') continue;
      try {
        this.#opts.onMessage(msg, size);
      } catch (err) {
        if (err instanceof ProtocolError) {
          this.#log.warn({ peer: this.peer, reason: err.reason, err: err.message }, 'rpc protocol violation: closing connection');
          this.fail(ErrorCodes.protocol, err.message);
          return;
        }
        throw err;
      }
    }
  }

  #tick(): void {
    if (this.#closed || this.#pausedBy.size > 0) return; // paused on purpose: silence proves nothing
    this.#idleTicks++;
    if (this.#idleTicks >= 3) {
      this.#log.warn({ peer: this.peer }, 'rpc keepalive: peer silent, closing connection');
      this.destroy(new RpcError(ErrorCodes.connectionClosed, `connection to ${this.peer} lost: no keepalive answer`));
      return;
    }
    if (this.#idleTicks >= 1) {
      this.#pingId = this.#pingId >= MAX_ID ? 1 : this.#pingId + 1;
      this.trySend({ t: 'ping', id: this.#pingId });
    }
  }

  #settleDrain(): void {
    const d = this.#drain;
    this.#drain = undefined;
    d?.resolve();
  }

  #onClose(): void {
    if (this.#closed) return;
    this.#closed = true;
    if (this.#timer) clearInterval(this.#timer);
    const err = this.#closedError();
    const d = this.#drain;
    this.#drain = undefined;
    d?.reject(err);
    this.#opts.onClose(this.#closeError);
  }
}

/** Buffered incoming bytes of one stream beyond which the connection stops reading. */
export const STREAM_HIGH_WATER_BYTES = 1024 * 1024;
const STREAM_HIGH_WATER_CHUNKS = 256;

/**
 * A bidirectional stream multiplexed on a connection. Read it with `for await`; write with
 * `await write(chunk)` (resolves once the socket accepts more); `end()` half-closes our side.
 * A remote error or cancel makes iteration throw RpcError and later writes reject.
 */
export class RpcStream implements AsyncIterable<unknown> {
  readonly id: number;
  readonly #conn: Connection;
  readonly #onFinish: (s: RpcStream) => void;
  #queue: { body: unknown; size: number }[] = [];
  #queuedBytes = 0;
  #waiter: (() => void) | undefined;
  #remoteEnded = false;
  #localEnded = false;
  #error: RpcError | undefined;
  #finished = false;
  #paused = false;

  constructor(conn: Connection, id: number, onFinish: (s: RpcStream) => void) {
    this.#conn = conn;
    this.id = id;
    this.#onFinish = onFinish;
  }

  /** True once both sides ended, or it failed. */
  get finished(): boolean {
    return this.#finished;
  }

  /**
   * A binary chunk of 64 KiB or more is written from its own memory (no copy): keep it unchanged
   * until this resolves (then the socket has encrypted it).
   */
  async write(chunk: unknown): Promise<void> {
    if (this.#error) throw this.#error;
    if (this.#localEnded) throw new RpcError('stream_ended', `stream ${this.id}: write after end()`);
    await this.#conn.sendAndWait({ t: 'data', id: this.id, body: chunk });
  }

  /** Half-close: we send no more; the peer may still send until it ends too. Idempotent. */
  end(): void {
    if (this.#localEnded || this.#error) return;
    this.#localEnded = true;
    this.#conn.trySend({ t: 'end', id: this.id });
    this.#maybeFinish();
  }

  /** Abort both directions and tell the peer. */
  cancel(reason = 'cancelled by caller'): void {
    if (this.#finished) return;
    this.#conn.trySend({ t: 'cancel', id: this.id });
    this._fail(new RpcError(ErrorCodes.cancelled, reason));
  }

  async *[Symbol.asyncIterator](): AsyncIterator<unknown> {
    while (true) {
      const item = this.#queue.shift();
      if (item !== undefined) {
        this.#queuedBytes -= item.size;
        if (this.#paused && this.#queuedBytes <= STREAM_HIGH_WATER_BYTES / 2 && this.#queue.length <= STREAM_HIGH_WATER_CHUNKS / 2) {
          this.#paused = false;
          this.#conn.resumeFor(this.id);
        }
        yield item.body;
        continue;
      }
      if (this.#error) throw this.#error;
      if (this.#remoteEnded) return;
      await new Promise<void>((resolve) => (this.#waiter = resolve));
    }
  }

  /** Collect every remaining incoming chunk (convenience for small streams and tests). */
  async collect(): Promise<unknown[]> {
    const out: unknown[] = [];
    for await (const c of this) out.push(c);
    return out;
  }

  // Called by the owner (server or client) when frames for this stream arrive.
  _push(body: unknown, size: number): void {
    if (this.#remoteEnded || this.#error) return; // late data after end/cancel: drop
    this.#queue.push({ body, size });
    this.#queuedBytes += size;
    if (!this.#paused && (this.#queuedBytes > STREAM_HIGH_WATER_BYTES || this.#queue.length > STREAM_HIGH_WATER_CHUNKS)) {
      this.#paused = true;
      this.#conn.pauseFor(this.id);
    }
    this.#wake();
  }

  _end(): void {
    if (this.#remoteEnded) return;
    this.#remoteEnded = true;
    this.#wake();
    this.#maybeFinish();
  }

  _fail(err: RpcError): void {
    if (this.#error || this.#finished) return;
    this.#error = err;
    this.#localEnded = true;
    this.#remoteEnded = true;
    // Nobody will read what is queued; do not let it keep the connection paused.
    this.#queue = [];
    this.#queuedBytes = 0;
    this.#wake();
    this.#finish();
  }

  /** The local user is done with this stream (server handler returned): stop reading it. */
  _detach(): void {
    this.#queue = [];
    this.#queuedBytes = 0;
    this.#finish();
  }

  #wake(): void {
    const w = this.#waiter;
    this.#waiter = undefined;
    w?.();
  }

  #maybeFinish(): void {
    if (this.#localEnded && this.#remoteEnded) this.#finish();
  }

  #finish(): void {
    if (this.#paused) {
      this.#paused = false;
      this.#conn.resumeFor(this.id);
    }
    if (this.#finished) return;
    this.#finished = true;
    this.#onFinish(this);
  }
}
