/**
 * Wire format of agent-to-agent RPC: every message is one frame = 4-byte big-endian body length
 * + a MessagePack map. FrameDecoder turns an arbitrary chunking of the byte stream back into
 * validated messages; anything else raises ProtocolError (and only ProtocolError).
 *
 * Public: encodeFrame, FrameDecoder, validateMessage, Message (and its variants), limits.
 * Depends on: msgpackr (pure JS path, records off).
 */
import { Packr, RESERVE_START_SPACE, Unpackr } from 'msgpackr';
import { ProtocolError, RpcError, ErrorCodes } from './errors.ts';

export const PROTOCOL_VERSION = 1;
export const DEFAULT_MAX_FRAME_BYTES = 16 * 1024 * 1024;
export const HEADER_BYTES = 4;
export const MAX_ID = 0xffff_ffff;
export const MAX_METHOD_LENGTH = 128;
export const MAX_CODE_LENGTH = 64;
export const MAX_MESSAGE_LENGTH = 4096;
export const MAX_NODE_NAME_LENGTH = 253;
/** Pending chunks of one frame body before it is assembled into a single buffer. */
const MAX_PENDING_CHUNKS = 64;

/** Server → client, first frame on a connection: the server accepted our certificate. */
export interface HelloMsg { t: 'hello'; v: number; node: string }
export interface ReqMsg { t: 'req'; id: number; method: string; body: unknown; stream?: boolean }
export interface ResMsg { t: 'res'; id: number; body: unknown }
/** Ends a request or a stream with an error; id 0 = connection-level error. */
export interface ErrMsg { t: 'err'; id: number; code: string; message: string }
export interface DataMsg { t: 'data'; id: number; body: unknown }
/** Half-close of a stream by the sender. */
export interface EndMsg { t: 'end'; id: number }
export interface CancelMsg { t: 'cancel'; id: number }
export interface PingMsg { t: 'ping'; id: number }
export interface PongMsg { t: 'pong'; id: number }

export type Message = HelloMsg | ReqMsg | ResMsg | ErrMsg | DataMsg | EndMsg | CancelMsg | PingMsg | PongMsg;

export interface Frame {
  msg: Message;
  /** Body length on the wire, for flow-control accounting. */
  size: number;
}

// Records off: their structure tables are decoder state a hostile peer could otherwise shape.
const packr = new Packr({ useRecords: false, mapsAsObjects: true, moreTypes: false });
const unpackr = new Unpackr({ useRecords: false, mapsAsObjects: true });

const METHOD_RE = /^[A-Za-z0-9_.:/-]+$/;
const CODE_RE = /^[A-Za-z0-9_.-]+$/;

function bad(msg: string): never {
  throw new ProtocolError('bad_shape', msg);
}

function checkId(v: unknown, kind: string): number {
  if (typeof v !== 'number' || !Number.isInteger(v) || v < 0 || v > MAX_ID) bad(`${kind}: id must be an integer 0..${MAX_ID}`);
  return v;
}

function checkString(v: unknown, field: string, max: number, re?: RegExp): string {
  if (typeof v !== 'string') bad(`${field} must be a string`);
  if (v.length === 0 || v.length > max) bad(`${field} must be 1..${max} characters`);
  if (re !== undefined && !re.test(v)) bad(`${field} contains characters outside ${re.source}`);
  return v;
}

/**
 * Check a decoded value is a well-formed message and return a fresh object holding only the
 * known fields (unknown fields are ignored so later versions can add some).
 */
export function validateMessage(v: unknown): Message {
  if (typeof v !== 'object' || v === null || Array.isArray(v) || v instanceof Map || ArrayBuffer.isView(v)) bad('message must be a map');
  const o = v as Record<string, unknown>;
  const t = o.t;
  switch (t) {
    case 'hello':
      if (typeof o.v !== 'number' || !Number.isInteger(o.v) || o.v < 1 || o.v > 0xffff) bad('hello: v must be an integer 1..65535');
      return { t, v: o.v, node: checkString(o.node, 'hello.node', MAX_NODE_NAME_LENGTH) };
    case 'req': {
      const id = checkId(o.id, t);
      if (id === 0) bad('req: id 0 is reserved');
      const method = checkString(o.method, 'req.method', MAX_METHOD_LENGTH, METHOD_RE);
      if (o.stream !== undefined && typeof o.stream !== 'boolean') bad('req.stream must be a boolean');
      const m: ReqMsg = { t, id, method, body: o.body };
      if (o.stream === true) m.stream = true;
      return m;
    }
    case 'res':
      return { t, id: checkId(o.id, t), body: o.body };
    case 'data':
      return { t, id: checkId(o.id, t), body: o.body };
    case 'err': {
      const id = checkId(o.id, t);
      const code = checkString(o.code, 'err.code', MAX_CODE_LENGTH, CODE_RE);
      if (typeof o.message !== 'string' || o.message.length > MAX_MESSAGE_LENGTH) bad(`err.message must be a string of at most ${MAX_MESSAGE_LENGTH} characters`);
      return { t, id, code, message: o.message };
    }
    case 'end':
    case 'cancel':
    case 'ping':
    case 'pong':
      return { t, id: checkId(o.id, t) };
    default:
      return bad(typeof t === 'string' ? `unknown message kind "${t.slice(0, 32)}"` : 'message kind "t" must be a string');
  }
}

/**
 * A binary body given in parts (e.g. a small header and a large payload): framed as one msgpack
 * bin of their concatenation, without joining them first. The receiver sees a plain binary.
 */
export class BinParts {
  readonly parts: Uint8Array[];
  readonly length: number;
  constructor(parts: Uint8Array[]) {
    this.parts = parts;
    this.length = parts.reduce((n, p) => n + p.length, 0);
  }
}

/** A binary data body from this size on is framed by encodeBulkData. */
const BULK_BYTES = 64 * 1024;
const BULK_HEAD = Buffer.from([0x83, 0xa1, 0x74, 0xa4, 0x64, 0x61, 0x74, 0x61, 0xa2, 0x69, 0x64]); // {"t": "data", "id"
const BULK_BODY = Buffer.from([0xa4, 0x62, 0x6f, 0x64, 0x79, 0xc6]); // "body": bin32

/**
 * Frame of {t: 'data', id, body: <binary>} written directly (id as uint32, body as bin32): the
 * frame header and msgpack head in a buffer of their own, then the body's parts as they are. The
 * socket encrypts each without joining them (a caller's parts must stay unchanged until its
 * write is drained); msgpackr would copy the body into its growing target buffers, a copy more
 * and garbage at bulk-transfer rates.
 */
function encodeBulkData(id: number, body: Uint8Array | BinParts): Uint8Array[] {
  const head = Buffer.allocUnsafe(HEADER_BYTES + BULK_HEAD.length + 5 + BULK_BODY.length + 4);
  head.writeUInt32BE(head.length - HEADER_BYTES + body.length, 0);
  let o = HEADER_BYTES + BULK_HEAD.copy(head, HEADER_BYTES);
  head[o++] = 0xce; // uint32
  o = head.writeUInt32BE(id, o);
  o += BULK_BODY.copy(head, o);
  head.writeUInt32BE(body.length, o);
  return [head, ...(body instanceof BinParts ? body.parts : [body])];
}

/** The pieces of `msg`'s frame when it is bulk data (see encodeBulkData), else undefined. */
function bulkParts(msg: Message, maxFrameBytes: number): Uint8Array[] | undefined {
  if (msg.t !== 'data' || !(msg.body instanceof Uint8Array || msg.body instanceof BinParts)) return undefined;
  return msg.body.length >= BULK_BYTES && msg.body.length + 64 <= maxFrameBytes ? encodeBulkData(msg.id, msg.body) : undefined;
}

/**
 * Encode one message as a frame in pieces to be written in order: one buffer, or for a bulk
 * binary data body, a header and the body's own memory (see encodeBulkData). RpcError(too_large)
 * if it does not fit in `maxFrameBytes`.
 */
export function encodeFrameParts(msg: Message, maxFrameBytes = DEFAULT_MAX_FRAME_BYTES): Uint8Array[] {
  return bulkParts(msg, maxFrameBytes) ?? [encodeFrame(msg, maxFrameBytes)];
}

/** Encode one message as a frame; RpcError(too_large) if it does not fit in `maxFrameBytes`. */
export function encodeFrame(msg: Message, maxFrameBytes = DEFAULT_MAX_FRAME_BYTES): Buffer {
  const bulk = bulkParts(msg, maxFrameBytes);
  if (bulk !== undefined) return Buffer.concat(bulk);
  if (msg.t === 'data' && msg.body instanceof BinParts) msg = { ...msg, body: Buffer.concat(msg.body.parts) };
  if (msg.t === 'err' && msg.message.length > MAX_MESSAGE_LENGTH) msg = { ...msg, message: msg.message.slice(0, MAX_MESSAGE_LENGTH - 1) + '…' };
  let out: Buffer;
  try {
    // Packed after HEADER_BYTES of reserved space, so the frame needs no second buffer and copy
    // (msgpackr never writes over a buffer it returned: it goes on after it, or in a new one).
    out = packr.pack(msg, RESERVE_START_SPACE | HEADER_BYTES);
  } catch (err) {
    throw new RpcError(ErrorCodes.internal, `cannot encode ${msg.t} message: ${(err as Error).message}`);
  }
  const len = out.length - HEADER_BYTES;
  if (len > maxFrameBytes) throw new RpcError(ErrorCodes.tooLarge, `${msg.t} message of ${len} bytes exceeds the ${maxFrameBytes}-byte frame limit`);
  out.writeUInt32BE(len, 0);
  return out;
}

/**
 * Streaming decoder. Memory stays below HEADER_BYTES + maxFrameBytes + the last chunk: the length
 * is checked as soon as the header is complete, before any of the body is kept. After an error
 * the decoder stays failed (the stream has lost sync and cannot be trusted).
 * A chunk pushed as `transient` (a read buffer the socket reuses, see ReusedReadBuffer) is not
 * referenced after push() returns: a frame's body is copied into a buffer of its announced
 * size (allocated once its header is complete, so at most maxFrameBytes per connection), and
 * the messages decoded from it point into that copy.
 */
export class FrameDecoder {
  readonly maxFrameBytes: number;
  #chunks: Buffer[] = [];
  #buffered = 0;
  /** Body length of the frame being read, or -1 while waiting for its header. */
  #need = -1;
  #failed: ProtocolError | undefined;
  /** Body being assembled in one buffer (see #push), and how much of it is filled. */
  #asm: Buffer | undefined;
  #asmLen = 0;

  constructor(opts: { maxFrameBytes?: number } = {}) {
    const max = opts.maxFrameBytes ?? DEFAULT_MAX_FRAME_BYTES;
    if (!Number.isInteger(max) || max < 16 || max > MAX_ID) throw new RangeError(`maxFrameBytes must be an integer 16..${MAX_ID}, got ${max}`);
    this.maxFrameBytes = max;
  }

  /** Bytes held waiting for the rest of a frame. */
  get bufferedBytes(): number {
    return this.#buffered + this.#asmLen;
  }

  /**
   * Feed bytes; returns every message completed by them. Throws ProtocolError. `transient`: the
   * caller reuses `chunk`'s memory after this call (nothing of it is kept or returned).
   */
  push(chunk: Uint8Array, transient = false): Frame[] {
    if (this.#failed) throw this.#failed;
    try {
      return this.#push(chunk, transient);
    } catch (err) {
      this.#failed = err instanceof ProtocolError ? err : new ProtocolError('internal', (err as Error).message);
      this.#chunks = [];
      this.#buffered = 0;
      this.#asm = undefined;
      this.#asmLen = 0;
      throw this.#failed;
    }
  }

  /** The byte stream ended: throws if it stopped inside a frame. */
  end(): void {
    if (this.#failed) throw this.#failed;
    if (this.bufferedBytes > 0 || this.#need >= 0) {
      this.#failed = new ProtocolError('truncated', `stream ended inside a frame (${this.#buffered} bytes pending)`);
      throw this.#failed;
    }
  }

  #push(chunk: Uint8Array, transient: boolean): Frame[] {
    if (chunk.length > 0) {
      this.#chunks.push(Buffer.isBuffer(chunk) ? chunk : Buffer.from(chunk.buffer, chunk.byteOffset, chunk.length));
      this.#buffered += chunk.length;
    }
    const out: Frame[] = [];
    while (true) {
      if (this.#need < 0) {
        if (this.#buffered < HEADER_BYTES) break;
        const len = this.#take(HEADER_BYTES).readUInt32BE(0);
        if (len === 0) throw new ProtocolError('empty_frame', 'frame with zero-length body');
        if (len > this.maxFrameBytes) throw new ProtocolError('frame_too_large', `frame of ${len} bytes exceeds the ${this.maxFrameBytes}-byte limit`);
        this.#need = len;
      }
      const size = this.#need;
      // A body dribbled in many tiny chunks (e.g. 1-byte TLS records) would cost far more in
      // per-chunk overhead than in bytes: assemble it in one buffer of the announced size instead.
      // Transient chunks cannot be kept: an incomplete body is always assembled.
      if (this.#asm === undefined && (transient || this.#chunks.length > MAX_PENDING_CHUNKS) && this.#buffered < size) {
        this.#asm = Buffer.allocUnsafe(size);
        this.#asmLen = 0;
      }
      let body: Buffer;
      if (this.#asm !== undefined) {
        const k = Math.min(this.#buffered, size - this.#asmLen);
        if (k > 0) this.#takeInto(this.#asm, this.#asmLen, k);
        this.#asmLen += k;
        if (this.#asmLen < size) break;
        body = this.#asm;
        this.#asm = undefined;
        this.#asmLen = 0;
      } else {
        if (this.#buffered < size) break;
        body = this.#take(size);
        // Decoded binaries are views of the body: it must outlive the caller's buffer.
        if (transient && body.buffer === chunk.buffer) body = Buffer.from(body);
      }
      this.#need = -1;
      let value: unknown;
      try {
        value = unpackr.unpack(body);
      } catch (err) {
        throw new ProtocolError('bad_msgpack', `undecodable MessagePack body (${String((err as Error)?.message ?? err).slice(0, 120)})`);
      }
      out.push({ msg: validateMessage(value), size });
    }
    // What is left is part of a header (a body in progress went into #asm): at most 3 bytes.
    if (transient && this.#chunks.length > 0) this.#chunks = [Buffer.concat(this.#chunks)];
    return out;
  }

  /** Remove and return the next n buffered bytes (n <= buffered). */
  #take(n: number): Buffer {
    const first = this.#chunks[0]!;
    if (first.length >= n) {
      if (first.length === n) this.#chunks.shift();
      else this.#chunks[0] = first.subarray(n);
      this.#buffered -= n;
      return first.subarray(0, n);
    }
    const out = Buffer.allocUnsafe(n);
    this.#takeInto(out, 0, n);
    return out;
  }

  /** Move the next n buffered bytes into dst at off (n <= buffered). */
  #takeInto(dst: Buffer, off: number, n: number): void {
    let done = 0;
    while (done < n) {
      const c = this.#chunks[0]!;
      const k = Math.min(c.length, n - done);
      c.copy(dst, off + done, 0, k);
      done += k;
      if (k === c.length) this.#chunks.shift();
      else this.#chunks[0] = c.subarray(k);
    }
    this.#buffered -= n;
  }
}
