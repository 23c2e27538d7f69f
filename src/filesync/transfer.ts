/**
 * Content transfer of one file version over a `files.pull` RPC stream.
 * - fetchContent (receiver): sends the signature of its basis (if any) in ≤1 MiB chunks, then
 *   feeds the sender's DeltaOps into the existing atomic patch(). The END op must carry the
 *   SHA-256 the receiver asked for, otherwise patch() is aborted before its rename: a file that
 *   changed on the sender mid-transfer never becomes visible, nor does any partial file.
 * - sendContent (sender): delta(sig, file) against the receiver's signature, or the whole file
 *   as LITERAL chunks + END when the receiver has no basis; optionally throttled.
 * An interrupted transfer restarts from scratch (patch() removes its temp file); with a basis
 * the restart costs only the delta again.
 * Depends on: delta/ (signature, delta, patch, wire codecs), rpc RpcStream, protocol.ts.
 */
import { createHash } from 'node:crypto';
import { open } from 'node:fs/promises';
import type { RpcStream } from '../rpc/connection.ts';
import { FileSyncError } from './errors.ts';
import { decodeDeltaOp, delta, encodeDeltaOp, encodeSignature, decodeSignature, MAX_LITERAL, MAX_SIGNATURE_BYTES, patch, signature } from './delta/index.ts';
import type { DeltaOp, Signature } from './delta/index.ts';
import { SIG_CHUNK_BYTES } from './protocol.ts';
import type { Throttle } from './throttle.ts';

/** Signature of "no basis": zero blocks, so only LITERAL ops are acceptable. */
export const EMPTY_SIGNATURE: Signature = { blockSize: 512, fileSize: 0, strongLen: 16, weak: new Uint32Array(0), strong: new Uint8Array(0) };

export interface TransferCounters {
  /** Bytes of encoded ops received (or sent). */
  opBytes: number;
  /** Bytes of signature sent (or received). */
  sigBytes: number;
}

/** Whole file as literal ops + END (no rolling: nothing to match against). */
export async function* wholeFileOps(path: string): AsyncGenerator<DeltaOp> {
  const fh = await open(path, 'r');
  try {
    const sha = createHash('sha256');
    let size = 0;
    for (;;) {
      const buf = new Uint8Array(MAX_LITERAL);
      let got = 0;
      while (got < buf.length) {
        const { bytesRead } = await fh.read(buf, got, buf.length - got, null);
        if (bytesRead === 0) break;
        got += bytesRead;
      }
      if (got === 0) break;
      const data = buf.subarray(0, got);
      sha.update(data);
      size += got;
      yield { type: 'literal', data };
      if (got < buf.length) break;
    }
    yield { type: 'end', size, sha256: new Uint8Array(sha.digest()) };
  } finally {
    await fh.close();
  }
}

/** Sender side: reads the receiver's signature chunks, then streams ops. */
export async function sendContent(stream: RpcStream, file: string, sigBytes: number, throttle: Throttle | undefined, counters: TransferCounters): Promise<void> {
  let sig: Signature | null = null;
  const chunks: Uint8Array[] = [];
  let got = 0;
  for await (const c of stream) {
    if (!(c instanceof Uint8Array)) throw new FileSyncError('E_WIRE', 'signature chunk must be binary');
    got += c.length;
    if (got > sigBytes || got > MAX_SIGNATURE_BYTES) throw new FileSyncError('E_WIRE', `signature longer than the announced ${sigBytes} bytes`);
    chunks.push(c);
  }
  if (got !== sigBytes) throw new FileSyncError('E_WIRE', `signature of ${got} bytes, announced ${sigBytes}`);
  counters.sigBytes += got;
  if (sigBytes > 0) sig = decodeSignature(Buffer.concat(chunks));
  const ops = sig === null ? wholeFileOps(file) : delta(sig, file);
  for await (const op of ops) {
    const enc = encodeDeltaOp(op);
    if (throttle !== undefined) await throttle.take(enc.length);
    counters.opBytes += enc.length;
    await stream.write(enc);
  }
}

/** Ops from the stream, decoded; the END op must announce `expectHash` (hex SHA-256). */
async function* receiveOps(stream: RpcStream, expectHash: string, counters: TransferCounters): AsyncGenerator<DeltaOp> {
  for await (const c of stream) {
    if (!(c instanceof Uint8Array)) throw new FileSyncError('E_WIRE', 'delta op chunk must be binary');
    counters.opBytes += c.length;
    const op = decodeDeltaOp(c);
    if (op.type === 'end' && Buffer.from(op.sha256).toString('hex') !== expectHash) {
      throw new FileSyncError('E_PATCH_HASH', 'sender\'s file is not the requested version (changed since it was announced)');
    }
    yield op;
  }
}

export interface FetchRequest {
  tree: string;
  path: string;
  hash: string;
  size: number;
  mode: number | undefined;
  /** Local file to use as the delta basis, or null. */
  basis: string | null;
  target: string;
}

/** Receiver side: pulls `hash` from the peer into `target` atomically. */
export async function fetchContent(open: (body: unknown) => Promise<RpcStream>, req: FetchRequest, counters: TransferCounters): Promise<void> {
  let sig: Signature = EMPTY_SIGNATURE;
  let encSig: Uint8Array = new Uint8Array(0);
  if (req.basis !== null) {
    sig = await signature(req.basis);
    encSig = encodeSignature(sig);
  }
  const stream = await open({ tree: req.tree, path: req.path, hash: Buffer.from(req.hash, 'hex'), sigBytes: encSig.length });
  try {
    for (let off = 0; off < encSig.length; off += SIG_CHUNK_BYTES) await stream.write(encSig.subarray(off, off + SIG_CHUNK_BYTES));
    counters.sigBytes += encSig.length;
    stream.end();
    await patch(req.basis, receiveOps(stream, req.hash, counters), req.target, sig, { maxSize: req.size, ...(req.mode === undefined ? {} : { mode: req.mode }) });
  } catch (e) {
    stream.cancel('transfer failed');
    throw e;
  }
}

/** Local copy of a file we already have with the wanted content (rename/move, conflict copy). */
export async function copyLocal(source: string, req: Omit<FetchRequest, 'basis'>): Promise<void> {
  async function* checked(): AsyncGenerator<DeltaOp> {
    for await (const op of wholeFileOps(source)) {
      if (op.type === 'end' && Buffer.from(op.sha256).toString('hex') !== req.hash) throw new FileSyncError('E_PATCH_HASH', `${source} changed: no longer has the wanted content`);
      yield op;
    }
  }
  await patch(null, checked(), req.target, EMPTY_SIGNATURE, { maxSize: req.size, ...(req.mode === undefined ? {} : { mode: req.mode }) });
}
