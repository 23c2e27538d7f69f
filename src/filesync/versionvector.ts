/**
 * Version vectors {node → counter}: every node bumps its own counter when it changes an entry
 * (content, metadata or delete). Comparing two vectors tells whether one change saw the other
 * (dominates/dominated), they are the same (equal), or they happened independently
 * (concurrent → resolve.ts decides). Vectors are immutable, null-prototype objects so that a
 * node named like "__proto__" or "constructor" cannot alter object behaviour.
 */
import { FileSyncError } from './errors.ts';

export type VersionVector = Readonly<Record<string, number>>;
export type Ordering = 'equal' | 'dominates' | 'dominated' | 'concurrent';

/** Bounds for vectors received from peers. */
export const MAX_VECTOR_NODES = 4096;
export const MAX_NODE_ID_BYTES = 255;

function fresh(): Record<string, number> {
  return Object.create(null) as Record<string, number>;
}

export function emptyVector(): VersionVector {
  return Object.freeze(fresh());
}

const count = (v: VersionVector, node: string): number => (Object.hasOwn(v, node) ? v[node]! : 0);

/** Does `a` relate to `b` as equal, newer (dominates), older (dominated) or concurrent? */
export function compare(a: VersionVector, b: VersionVector): Ordering {
  let aBigger = false;
  let bBigger = false;
  for (const k of Object.keys(a)) {
    const x = count(a, k);
    const y = count(b, k);
    if (x > y) aBigger = true;
    else if (y > x) bBigger = true;
  }
  for (const k of Object.keys(b)) {
    if (!Object.hasOwn(a, k) && count(b, k) > 0) bBigger = true;
  }
  if (aBigger && bBigger) return 'concurrent';
  if (aBigger) return 'dominates';
  if (bBigger) return 'dominated';
  return 'equal';
}

/** Pointwise maximum: a version that has seen both. */
export function merge(a: VersionVector, b: VersionVector): VersionVector {
  const out = fresh();
  for (const k of Object.keys(a)) out[k] = count(a, k);
  for (const k of Object.keys(b)) out[k] = Math.max(count(b, k), Object.hasOwn(out, k) ? out[k]! : 0);
  return Object.freeze(out);
}

/**
 * Highest counter accepted from a peer: far beyond any real count of changes (10⁶ a second for
 * 8 years), yet far enough below 2⁵³ that a peer cannot make our next bump() overflow.
 */
export const MAX_COUNTER = 2 ** 48;

/**
 * The version of a new local change made by `node` on top of `v`. `clock`: the highest counter
 * `node` has used for any path; the new counter goes above it, so a change made after a version
 * of the path was forgotten (a purged tombstone that a peer still holds) still dominates that one.
 */
export function bump(v: VersionVector, node: string, clock = 0): VersionVector {
  checkNodeId(node);
  const out = fresh();
  for (const k of Object.keys(v)) out[k] = count(v, k);
  const next = Math.max(count(v, node), clock) + 1;
  if (!Number.isSafeInteger(next)) throw new FileSyncError('E_ARG', `counter of ${node} overflows`);
  out[node] = next;
  return Object.freeze(out);
}

function checkNodeId(node: string): void {
  if (node === '' || Buffer.byteLength(node) > MAX_NODE_ID_BYTES || node.includes('\0')) {
    throw new FileSyncError('E_ARG', `invalid node id ${JSON.stringify(node)}`);
  }
}

/**
 * Checks a vector decoded from a peer: plain object, bounded size, integer counters 1..maxCounter
 * (MAX_COUNTER for peers; the Store's own records are read with Number.MAX_SAFE_INTEGER).
 */
export function validateVector(v: unknown, maxCounter = MAX_COUNTER): VersionVector {
  if (typeof v !== 'object' || v === null || Array.isArray(v) || v instanceof Uint8Array || v instanceof Map) {
    throw new FileSyncError('E_WIRE', 'version vector must be a map of node → counter');
  }
  const keys = Object.keys(v);
  if (keys.length > MAX_VECTOR_NODES) throw new FileSyncError('E_WIRE', `version vector has ${keys.length} nodes (max ${MAX_VECTOR_NODES})`);
  const out = fresh();
  for (const k of keys) {
    const c = (v as Record<string, unknown>)[k];
    if (k === '' || Buffer.byteLength(k) > MAX_NODE_ID_BYTES || k.includes('\0')) throw new FileSyncError('E_WIRE', `invalid node id ${JSON.stringify(k.slice(0, 64))}`);
    if (typeof c !== 'number' || !Number.isSafeInteger(c) || c < 1 || c > maxCounter) throw new FileSyncError('E_WIRE', `counter of ${JSON.stringify(k.slice(0, 64))} must be an integer 1..${maxCounter}`);
    out[k] = c;
  }
  return Object.freeze(out);
}
