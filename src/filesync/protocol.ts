/**
 * Bodies of the file sync RPC methods (docs/filesync.md, "Network protocol") and their strict
 * decoders. The RPC layer already turned the frame into plain msgpack values; everything here
 * checks shapes, bounds every size and count, and runs every path through validatePeerPath and
 * every vector through validateVector. Failures throw FileSyncError E_WIRE (or E_PATH).
 *
 *   files.summary  req {tree, summary: bin(4096)}                     res {summary: bin(4096), entries}
 *   files.entries  req {tree, buckets: uint[], after?: [bucket, path]} res {entries: Wire[], next?: [bucket, path]}
 *   files.notify   req {tree, entries: Wire[]}                         res {accepted}
 *   files.fetch    stream open {tree, files: [[path, hash: bin(32), sigBytes, offset?], …] (1..MAX_FETCH_FILES)};
 *                  offset > 0: the client already has that many first bytes of the content
 *                  (resumed transfer): the ops produce only what follows, END still covers the
 *                  whole file;
 *                  client → for each file with sigBytes > 0, in order, its signature in chunks of
 *                  ≤ SIG_CHUNK_BYTES (a chunk never spans two files), then end;
 *                  server → for each file, in order: its encoded DeltaOps (delta/wire.ts) up to
 *                  and including END, or a miss [3, reason] (not available, or failed midway);
 *                  each message is one encoded op/miss or an array of 1..256 of them (small
 *                  files share a message)
 *   Wire entry: [path, type 0|1|2 (file|dir|symlink), deleted, version, modifiedBy, mtimeSec,
 *                mtimeNsec, mode, uid, gid, size, hash: bin(32)|null, target|null
 *                (, user|null, group|null)] — the owner's names on the sending node, when it
 *                maps owners by name (owners.ts); a 13-element entry has none
 */
import { Packr, Unpackr } from 'msgpackr';
import { FileSyncError } from './errors.ts';
import { MAX_FILE_SIZE, MAX_SIGNATURE_BYTES } from './delta/index.ts';
import type { EntryType } from './index/entry.ts';
import type { FileVersion } from './resolve.ts';
import { MAX_OWNER_NAME, validOwnerName, type OwnerNames } from './owners.ts';
import { MAX_PATH_BYTES, validatePeerPath } from './safety.ts';
import { BUCKETS, SUMMARY_BYTES } from './buckets.ts';
import { MAX_NODE_ID_BYTES, validateVector } from './versionvector.ts';
import { TREE_NAME } from './schema.ts';

/** Entries per files.entries page / files.notify call (keeps a message far below 16 MiB). */
export const MAX_ENTRIES_PER_MESSAGE = 2048;
/** Signature upload chunk size (below the RPC frame limit). */
export const SIG_CHUNK_BYTES = 1 << 20;
/** Files per files.fetch stream. */
export const MAX_FETCH_FILES = 256;
/** Longest reason text in a miss. */
export const MAX_MISS_REASON = 512;

const missPackr = new Packr({ useRecords: false });
const missUnpackr = new Unpackr({ useRecords: false, mapsAsObjects: true, structuredClone: false });

const TYPES: readonly EntryType[] = ['file', 'dir', 'symlink'];

function wire(msg: string): never {
  throw new FileSyncError('E_WIRE', msg);
}

function isObj(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v) && !(v instanceof Uint8Array);
}

function field(o: Record<string, unknown>, k: string): unknown {
  return Object.hasOwn(o, k) ? o[k] : undefined;
}

function uint(v: unknown, max: number, what: string): number {
  if (typeof v !== 'number' || !Number.isSafeInteger(v) || v < 0 || v > max) wire(`${what} must be an integer in [0, ${max}]`);
  return v;
}

function treeName(v: unknown): string {
  if (typeof v !== 'string' || !TREE_NAME.test(v)) wire('tree must be a tree name');
  return v;
}

function bin(v: unknown, len: number, what: string): Uint8Array {
  if (!(v instanceof Uint8Array) || v.length !== len) wire(`${what} must be ${len} bytes of binary`);
  return v;
}

export type WireEntry = [string, number, boolean, Record<string, number>, string, number, number, number, number, number, number, Uint8Array | null, string | null, (string | null)?, (string | null)?];

/** A version as received: its owner ids are the sender's, with the sender's names if it sent them. */
export interface WireVersion extends FileVersion {
  user?: string;
  group?: string;
}

/** `names`: this node maps owners by name, so the names of uid/gid go along (null: none here). */
export function encodeEntry(v: FileVersion, names?: OwnerNames | null): WireEntry {
  const sec = v.mtimeNs / 1_000_000_000n;
  const nsec = v.mtimeNs - sec * 1_000_000_000n;
  const e: WireEntry = [
    v.path, TYPES.indexOf(v.type), v.deleted, { ...v.version }, v.modifiedBy, Number(sec), Number(nsec), v.mode, v.uid, v.gid, v.size,
    v.hash === undefined ? null : Buffer.from(v.hash, 'hex'), v.target ?? null,
  ];
  if (names) e.push(names.userName(v.uid) ?? null, names.groupName(v.gid) ?? null);
  return e;
}

export function decodeEntry(v: unknown): WireVersion {
  if (!Array.isArray(v) || (v.length !== 13 && v.length !== 15)) wire('entry must be an array of 13 (or 15 with owner names)');
  const [path, type, deleted, version, modifiedBy, sec, nsec, mode, uid, gid, size, hash, target, user = null, group = null] = v as unknown[];
  const p = validatePeerPath(path);
  const t = TYPES[uint(type, 2, 'entry type')]!;
  if (typeof deleted !== 'boolean') wire('entry deleted must be a boolean');
  if (typeof modifiedBy !== 'string' || modifiedBy === '' || Buffer.byteLength(modifiedBy) > MAX_NODE_ID_BYTES || modifiedBy.includes('\0')) wire('entry modifiedBy must be a node name');
  const s = uint(sec, 2 ** 40, 'mtime seconds');
  const ns = uint(nsec, 999_999_999, 'mtime nanoseconds');
  const out: WireVersion = {
    path: p, type: t, deleted, version: validateVector(version), modifiedBy,
    mtimeNs: BigInt(s) * 1_000_000_000n + BigInt(ns),
    mode: uint(mode, 0o7777, 'mode'), uid: uint(uid, 0xffff_ffff, 'uid'), gid: uint(gid, 0xffff_ffff, 'gid'), size: uint(size, MAX_FILE_SIZE, 'size'),
  };
  if (Object.keys(out.version).length === 0) wire('entry version must not be empty');
  if (hash !== null) {
    if (t !== 'file') wire('only files carry a hash');
    out.hash = Buffer.from(bin(hash, 32, 'hash')).toString('hex');
  } else if (t === 'file' && !deleted) wire('a live file needs a hash');
  if (target !== null) {
    if (t !== 'symlink' || typeof target !== 'string' || target === '' || Buffer.byteLength(target) > MAX_PATH_BYTES || target.includes('\0')) wire('target: symlinks only, 1..4096 bytes, no NUL');
    out.target = target;
  } else if (t === 'symlink' && !deleted) wire('a live symlink needs a target');
  for (const [what, name] of [['user', user], ['group', group]] as const) {
    if (name === null) continue;
    if (!validOwnerName(name)) wire(`entry ${what} name: null or 1..${MAX_OWNER_NAME} bytes without ':', newline or NUL`);
    out[what] = name;
  }
  return out;
}

function entries(v: unknown): WireVersion[] {
  if (!Array.isArray(v)) wire('entries must be an array');
  if (v.length > MAX_ENTRIES_PER_MESSAGE) wire(`${v.length} entries exceed the limit of ${MAX_ENTRIES_PER_MESSAGE}`);
  const seen = new Set<string>();
  return v.map((e) => {
    const d = decodeEntry(e);
    if (seen.has(d.path)) wire(`duplicate entry ${JSON.stringify(d.path)}`);
    seen.add(d.path);
    return d;
  });
}

function cursor(v: unknown): { bucket: number; path: string } | undefined {
  if (v === undefined || v === null) return undefined;
  if (!Array.isArray(v) || v.length !== 2) wire('cursor must be [bucket, path]');
  return { bucket: uint(v[0], BUCKETS - 1, 'cursor bucket'), path: validatePeerPath(v[1]) };
}

export interface SummaryReq { tree: string; summary: Uint8Array }
export function decodeSummaryReq(v: unknown): SummaryReq {
  if (!isObj(v)) wire('summary request must be a map');
  return { tree: treeName(field(v, 'tree')), summary: bin(field(v, 'summary'), SUMMARY_BYTES, 'summary') };
}

export interface SummaryRes { summary: Uint8Array; entries: number }
export function decodeSummaryRes(v: unknown): SummaryRes {
  if (!isObj(v)) wire('summary response must be a map');
  return { summary: bin(field(v, 'summary'), SUMMARY_BYTES, 'summary'), entries: uint(field(v, 'entries'), 2 ** 40, 'entries') };
}

export interface EntriesReq { tree: string; buckets: number[]; after?: { bucket: number; path: string } }
export function decodeEntriesReq(v: unknown): EntriesReq {
  if (!isObj(v)) wire('entries request must be a map');
  const b = field(v, 'buckets');
  if (!Array.isArray(b) || b.length === 0 || b.length > BUCKETS) wire(`buckets must be 1..${BUCKETS} bucket numbers`);
  const buckets = b.map((x) => uint(x, BUCKETS - 1, 'bucket'));
  if (new Set(buckets).size !== buckets.length) wire('buckets must be unique');
  const after = cursor(field(v, 'after'));
  return after === undefined ? { tree: treeName(field(v, 'tree')), buckets } : { tree: treeName(field(v, 'tree')), buckets, after };
}

export interface EntriesRes { entries: WireVersion[]; next?: { bucket: number; path: string } }
export function decodeEntriesRes(v: unknown): EntriesRes {
  if (!isObj(v)) wire('entries response must be a map');
  const next = cursor(field(v, 'next'));
  const e = entries(field(v, 'entries'));
  return next === undefined ? { entries: e } : { entries: e, next };
}

export interface NotifyReq { tree: string; entries: WireVersion[] }
export function decodeNotifyReq(v: unknown): NotifyReq {
  if (!isObj(v)) wire('notify request must be a map');
  return { tree: treeName(field(v, 'tree')), entries: entries(field(v, 'entries')) };
}

export interface FetchFile { path: string; hash: string; sigBytes: number; offset: number }
export interface FetchReq { tree: string; files: FetchFile[] }
export function decodeFetchReq(v: unknown): FetchReq {
  if (!isObj(v)) wire('fetch request must be a map');
  const tree = treeName(field(v, 'tree'));
  const f = field(v, 'files');
  if (!Array.isArray(f) || f.length === 0 || f.length > MAX_FETCH_FILES) wire(`files must be 1..${MAX_FETCH_FILES} [path, hash, sigBytes, offset?] entries`);
  const files = f.map((x: unknown): FetchFile => {
    if (!Array.isArray(x) || (x.length !== 3 && x.length !== 4)) wire('a fetch file must be [path, hash, sigBytes, offset?]');
    return {
      path: validatePeerPath(x[0]),
      hash: Buffer.from(bin(x[1], 32, 'hash')).toString('hex'),
      sigBytes: uint(x[2], MAX_SIGNATURE_BYTES, 'sigBytes'),
      offset: x.length === 4 ? uint(x[3], MAX_FILE_SIZE, 'offset') : 0,
    };
  });
  return { tree, files };
}

/** Server → client in a files.fetch stream instead of (or in the middle of) a file's ops. */
export function encodeMiss(reason: string): Uint8Array {
  return missPackr.pack([3, reason.slice(0, MAX_MISS_REASON)]);
}

/** The reason if `chunk` is a miss, else undefined (then it must be a DeltaOp). */
export function decodeMiss(chunk: Uint8Array): string | undefined {
  // Our encoder writes a fixarray of 2 starting with 3; DeltaOps start with kind 0..2.
  if (chunk.length < 2 || chunk[0] !== 0x92 || chunk[1] !== 0x03) return undefined;
  if (chunk.length > MAX_MISS_REASON * 4 + 16) wire('miss: too long');
  let v: unknown;
  try {
    v = missUnpackr.unpack(chunk);
  } catch {
    return wire('miss: invalid msgpack');
  }
  if (!Array.isArray(v) || v.length !== 2 || typeof v[1] !== 'string' || v[1].length > MAX_MISS_REASON) wire('miss must be [3, reason]');
  return v[1] as string;
}
