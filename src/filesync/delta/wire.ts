/**
 * Wire encoding of Signature and DeltaOp (msgpack via msgpackr) and strict decoders for what a
 * peer sends: every size and count is bounded before use and anything else is rejected with a
 * FileSyncError('E_WIRE'). Layouts (arrays, version first where useful):
 *   Signature: [1, blockSize, fileSize, strongLen, weak: bin (4·n, little-endian u32), strong: bin]
 *   copy:      [0, start, count]
 *   literal:   [1, data: bin (1..MAX_LITERAL)]
 *   end:       [2, size, sha256: bin(32)]
 */
import { Packr, Unpackr } from 'msgpackr';
import { FileSyncError } from '../errors.ts';
import { MAX_BLOCKS, MAX_FILE_SIZE, MAX_LITERAL, SHA256_LEN } from './limits.ts';
import type { DeltaOp, Signature } from './types.ts';
import { checkSignature, isUint } from './validate.ts';

const SIG_VERSION = 1;
/** Upper bound of an encoded signature: header + MAX_BLOCKS·(4+16) + msgpack overhead. */
export const MAX_SIGNATURE_BYTES = 64 + MAX_BLOCKS * 20 + 16;
export const MAX_OP_BYTES = MAX_LITERAL + 64;
/** Bytes before the data of an encoded literal: fixarray(2), 1, bin32 header. */
const LITERAL_HEAD = 7;

/** The encoding of a literal op of `n` bytes is literalHead(n) followed by the bytes. */
export function literalHead(n: number): Uint8Array {
  return writeLiteralHead(Buffer.allocUnsafe(LITERAL_HEAD), n);
}

function writeLiteralHead(out: Buffer, n: number): Buffer {
  out[0] = 0x92; // fixarray(2)
  out[1] = 1;
  out[2] = 0xc6; // bin32
  out.writeUInt32BE(n, 3);
  return out;
}

const packr = new Packr({ useRecords: false, variableMapSize: true });
// No records, no structured clone, plain objects for maps: the decoder yields only plain data.
const unpackr = new Unpackr({ useRecords: false, mapsAsObjects: true, structuredClone: false });

function wire(msg: string): never {
  throw new FileSyncError('E_WIRE', msg);
}

function decodeMsgpack(buf: Uint8Array, maxBytes: number, what: string): unknown {
  if (!(buf instanceof Uint8Array)) wire(`${what}: input is not bytes`);
  if (buf.length > maxBytes) wire(`${what}: ${buf.length} bytes exceed the limit of ${maxBytes}`);
  try {
    return unpackr.unpack(buf);
  } catch (err) {
    return wire(`${what}: invalid msgpack (${(err as Error).message.slice(0, 80)})`);
  }
}

function isBin(v: unknown): v is Uint8Array {
  return v instanceof Uint8Array;
}

export function encodeSignature(sig: Signature): Uint8Array {
  checkSignature(sig);
  const weak = Buffer.alloc(sig.weak.length * 4);
  for (let i = 0; i < sig.weak.length; i++) weak.writeUInt32LE(sig.weak[i]!, i * 4);
  return packr.pack([SIG_VERSION, sig.blockSize, sig.fileSize, sig.strongLen, weak, Buffer.from(sig.strong)]);
}

export function decodeSignature(buf: Uint8Array): Signature {
  const v = decodeMsgpack(buf, MAX_SIGNATURE_BYTES, 'signature');
  if (!Array.isArray(v) || v.length !== 6) wire('signature: expected an array of 6');
  const [ver, blockSize, fileSize, strongLen, weakBin, strongBin] = v as unknown[];
  if (ver !== SIG_VERSION) wire(`signature: unsupported version ${String(ver)}`);
  if (!isUint(blockSize, Number.MAX_SAFE_INTEGER) || !isUint(fileSize, MAX_FILE_SIZE) || !isUint(strongLen, 255)) {
    wire('signature: blockSize, fileSize and strongLen must be non-negative integers in range');
  }
  if (!isBin(weakBin) || !isBin(strongBin)) wire('signature: weak and strong sums must be binary');
  if (weakBin.length % 4 !== 0) wire('signature: weak sums length not a multiple of 4');
  const n = weakBin.length / 4;
  const weak = new Uint32Array(n);
  const dv = new DataView(weakBin.buffer, weakBin.byteOffset, weakBin.byteLength);
  for (let i = 0; i < n; i++) weak[i] = dv.getUint32(i * 4, true);
  const sig: Signature = { blockSize, fileSize, strongLen, weak, strong: new Uint8Array(strongBin) };
  checkSignature(sig, 'E_WIRE');
  return sig;
}

export function encodeDeltaOp(op: DeltaOp): Uint8Array {
  switch (op.type) {
    case 'copy':
      return packr.pack([0, op.start, op.count]);
    case 'literal': {
      // [1, bin32] written directly: one copy into a buffer of the exact size (msgpackr would
      // copy literals into its growing target buffers: a copy more and garbage at bulk rates).
      const out = writeLiteralHead(Buffer.allocUnsafe(LITERAL_HEAD + op.data.length), op.data.length);
      out.set(op.data, LITERAL_HEAD);
      return out;
    }
    case 'end':
      return packr.pack([2, op.size, Buffer.from(op.sha256.buffer, op.sha256.byteOffset, op.sha256.byteLength)]);
  }
}

export function decodeDeltaOp(buf: Uint8Array): DeltaOp {
  const v = decodeMsgpack(buf, MAX_OP_BYTES, 'delta op');
  if (!Array.isArray(v) || v.length < 2) wire('delta op: expected an array');
  const a = v as unknown[];
  switch (a[0]) {
    case 0: {
      const [, start, count] = a;
      if (a.length !== 3 || !isUint(start, MAX_BLOCKS - 1) || !isUint(count, MAX_BLOCKS) || count < 1 || start + count > MAX_BLOCKS) {
        wire('delta op: copy needs [0, start, count] within the block limit');
      }
      return { type: 'copy', start, count };
    }
    case 1: {
      const data = a[1];
      if (a.length !== 2 || !isBin(data) || data.length < 1 || data.length > MAX_LITERAL) {
        wire(`delta op: literal needs [1, bin of 1..${MAX_LITERAL} bytes]`);
      }
      // A view, not a copy: msgpackr hands out slices of the message, which is not reused.
      return { type: 'literal', data: new Uint8Array(data.buffer, data.byteOffset, data.byteLength) };
    }
    case 2: {
      const [, size, sha] = a;
      if (a.length !== 3 || !isUint(size, MAX_FILE_SIZE) || !isBin(sha) || sha.length !== SHA256_LEN) {
        wire('delta op: end needs [2, size, bin(32)]');
      }
      return { type: 'end', size, sha256: new Uint8Array(sha) };
    }
    default:
      // String(): the kind may be a BigInt (msgpack uint64), which JSON.stringify throws on.
      return wire(`delta op: unknown kind ${typeof a[0] === 'string' ? JSON.stringify(a[0]) : String(a[0]).slice(0, 40)}`);
  }
}
