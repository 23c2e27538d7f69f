/**
 * Public interface of the rsync-style delta transfer (see docs/filesync.md):
 * receiver: sig = await signature(basis) → send encodeSignature(sig);
 * sender:   for await (op of delta(sig, newFile)) send encodeDeltaOp(op);
 * receiver: await patch(basis, decodedOps, target, sig) (atomic, SHA-256 verified).
 */
export { blockSizeFor, blockCount, strongLenFor } from './blocksize.ts';
export { signature } from './signature.ts';
export type { SignatureOptions } from './signature.ts';
export { delta } from './delta.ts';
export { patch, syncDir, tempPathFor, TEMP_PREFIX, TEMP_SUFFIX } from './patch.ts';
export type { PatchOptions, PatchResult } from './patch.ts';
export { encodeSignature, decodeSignature, encodeDeltaOp, decodeDeltaOp, literalHead, MAX_SIGNATURE_BYTES, MAX_OP_BYTES } from './wire.ts';
export type { Signature, DeltaOp, CopyOp, LiteralOp, EndOp } from './types.ts';
export * from './limits.ts';
