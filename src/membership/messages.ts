/**
 * Wire encoding of membership messages. A message is one type byte followed by a msgpack array
 * (positional fields keep packets small). Several messages share a UDP packet as a compound:
 *   [7][count u8][len u16be × count][msg...]
 * Everything decoded from the network is validated field by field; any problem surfaces as a
 * DecodeError (never another exception), so a hostile packet can only be dropped and counted.
 */
import { Packr, Unpackr } from 'msgpackr';
import { ALIVE, LEFT, type MemberState } from './state.ts';
import { decodeCoordinate, encodeCoordinate, type Coordinate } from './coordinate.ts';
import { MAX_BUCKETS, type MemberDigest } from './antientropy.ts';

export const MsgType = {
  ping: 0,
  indirectPing: 1,
  ack: 2,
  suspect: 3,
  alive: 4,
  dead: 5,
  compound: 7,
  nack: 9,
  err: 10,
  coord: 11,
  // 6 was the full-state pushPull, replaced by the digest-first exchange below (antientropy.ts).
  ppDigest: 12,
  ppDiff: 13,
  ppRows: 14,
  user: 15,
} as const;

export interface PingMsg { type: 'ping'; seq: number; target: string; sourceName: string; sourceAddr: string }
export interface IndirectPingMsg { type: 'indirectPing'; seq: number; target: string; targetAddr: string; nack: boolean; sourceName: string; sourceAddr: string }
/** coord: the acker's Vivaldi coordinate (memberlist's ping-delegate payload), when enabled. */
export interface AckMsg { type: 'ack'; seq: number; coord?: Coordinate }
export interface NackMsg { type: 'nack'; seq: number }
export interface SuspectMsg { type: 'suspect'; incarnation: number; node: string; from: string }
export interface AliveMsg { type: 'alive'; incarnation: number; node: string; addr: string; meta: Uint8Array; maint: string | null }
/** from === node means the member left gracefully. */
export interface DeadMsg { type: 'dead'; incarnation: number; node: string; from: string }
export interface PushNodeState { name: string; addr: string; meta: Uint8Array; maint: string | null; incarnation: number; state: MemberState; coordSeq?: number; coord?: Coordinate }
/** Push/pull step 1 (TCP request): the initiator's bucket hashes (a power-of-two count). */
export interface PpDigestMsg { type: 'ppDigest'; join: boolean; hashes: Uint32Array; userHash: number }
/**
 * Step 2 (response): alive rows of buckets the initiator has empty; digests of other differing
 * buckets; the keys of our recent user messages when the user-message hashes differ (else null).
 */
export interface PpDiffMsg { type: 'ppDiff'; rows: PushNodeState[]; buckets: number[]; digests: MemberDigest[]; userKeys: UserKey[] | null }
/** Step 3 (request) and 4 (response, want lists empty): rows and coordinates to merge, and the ones asked for. */
export interface PpRowsMsg {
  type: 'ppRows'; rows: PushNodeState[]; coords: CoordEntry[]; want: string[]; wantCoords: string[];
  /** Recent user messages the other side lacks, and the keys of those we want. */
  user: UserMsg[]; wantUser: UserKey[];
}
/** Identifies a user message: its sender and the sender's random id. */
export interface UserKey { from: string; id: number }
export interface CoordEntry { node: string; seq: number; coord: Coordinate }
/** An application message gossiped to every member; (from, id) identifies it for dedupe. */
export interface UserMsg { type: 'user'; from: string; id: number; topic: string; data: Uint8Array }
export interface ErrMsg { type: 'err'; message: string }
/** A member's latest Vivaldi coordinate, gossiped; seq orders a member's own updates. */
export interface CoordMsg { type: 'coord'; node: string; seq: number; coord: Coordinate }

export type Message = PingMsg | IndirectPingMsg | AckMsg | NackMsg | SuspectMsg | AliveMsg | DeadMsg | PpDigestMsg | PpDiffMsg | PpRowsMsg | ErrMsg | CoordMsg | UserMsg;

export type DecodeErrorCode = 'empty' | 'unknown_type' | 'malformed' | 'bad_field' | 'too_large' | 'nested_compound';

export class DecodeError extends Error {
  override name = 'DecodeError';
  readonly code: DecodeErrorCode;
  constructor(code: DecodeErrorCode, message: string) {
    super(message);
    this.code = code;
  }
}

/** Hard wire limits (the configured metaMaxSize is enforced by Memberlist on top). */
export const LIMITS = {
  name: 256,
  addr: 300,
  meta: 64 * 1024,
  maintReason: 256,
  errMessage: 1024,
  pushPullStates: 1_000_000,
  userTopic: 64,
  /** A user message must fit one datagram with room to spare (Memberlist enforces a smaller configured limit when sending). */
  userData: 1400,
  /** Recent user messages one push/pull may list or carry (a member keeps at most 1024). */
  userRecent: 4096,
  stream: 20 * 1024 * 1024, // memberlist's push/pull cap
} as const;

/** Bytes a compound adds: type + count, then 2 per part. */
export const COMPOUND_HEADER_OVERHEAD = 2;
export const COMPOUND_PART_OVERHEAD = 2;
const MAX_COMPOUND_PARTS = 255;

const packr = new Packr({ useRecords: false, variableMapSize: true });
const unpackr = new Unpackr({ useRecords: false, mapsAsObjects: true });

function frame(type: number, body: unknown[]): Uint8Array {
  const b = packr.pack(body);
  const out = new Uint8Array(1 + b.length);
  out[0] = type;
  out.set(b, 1);
  return out;
}

export function encode(m: Message): Uint8Array {
  switch (m.type) {
    case 'ping': return frame(MsgType.ping, [m.seq, m.target, m.sourceName, m.sourceAddr]);
    case 'indirectPing': return frame(MsgType.indirectPing, [m.seq, m.target, m.targetAddr, m.nack, m.sourceName, m.sourceAddr]);
    case 'ack': return frame(MsgType.ack, m.coord ? [m.seq, encodeCoordinate(m.coord)] : [m.seq]);
    case 'nack': return frame(MsgType.nack, [m.seq]);
    case 'suspect': return frame(MsgType.suspect, [m.incarnation, m.node, m.from]);
    case 'alive': return frame(MsgType.alive, [m.incarnation, m.node, m.addr, m.meta, m.maint]);
    case 'dead': return frame(MsgType.dead, [m.incarnation, m.node, m.from]);
    case 'ppDigest': {
      const h = new Uint8Array(4 * m.hashes.length);
      const dv = new DataView(h.buffer);
      m.hashes.forEach((x, i) => dv.setUint32(4 * i, x));
      return frame(MsgType.ppDigest, [m.join, h, m.userHash]);
    }
    case 'ppDiff': return frame(MsgType.ppDiff, [m.rows.map(encodeRow), m.buckets, m.digests.map((d) => [d.name, d.incarnation, d.state, d.hash, d.coordSeq]), m.userKeys && m.userKeys.map((k) => [k.from, k.id])]);
    case 'ppRows': return frame(MsgType.ppRows, [
      m.rows.map(encodeRow), m.coords.map((c) => [c.node, c.seq, encodeCoordinate(c.coord)]), m.want, m.wantCoords,
      m.user.map((u) => [u.from, u.id, u.topic, u.data]), m.wantUser.map((k) => [k.from, k.id]),
    ]);
    case 'err': return frame(MsgType.err, [m.message]);
    case 'user': return frame(MsgType.user, [m.from, m.id, m.topic, m.data]);
    case 'coord': return frame(MsgType.coord, [m.node, m.seq, encodeCoordinate(m.coord)]);
  }
}

function encodeRow(s: PushNodeState): unknown[] {
  return s.coord && s.coordSeq !== undefined
    ? [s.name, s.addr, s.meta, s.maint, s.incarnation, s.state, s.coordSeq, encodeCoordinate(s.coord)]
    : [s.name, s.addr, s.meta, s.maint, s.incarnation, s.state];
}

/** Pack already-encoded messages into one compound message (or return the single one). */
export function encodeCompound(parts: Uint8Array[]): Uint8Array {
  if (parts.length === 1) return parts[0] as Uint8Array;
  if (parts.length === 0 || parts.length > MAX_COMPOUND_PARTS) throw new RangeError(`compound needs 1..${MAX_COMPOUND_PARTS} parts, got ${parts.length}`);
  let total = COMPOUND_HEADER_OVERHEAD + COMPOUND_PART_OVERHEAD * parts.length;
  for (const p of parts) {
    if (p.length > 0xffff) throw new RangeError(`compound part too large: ${p.length} bytes`);
    total += p.length;
  }
  const out = new Uint8Array(total);
  out[0] = MsgType.compound;
  out[1] = parts.length;
  let o = 2;
  for (const p of parts) {
    out[o++] = p.length >> 8;
    out[o++] = p.length & 0xff;
  }
  for (const p of parts) {
    out.set(p, o);
    o += p.length;
  }
  return out;
}

// ---- validation helpers: each throws DecodeError naming the field ----

function bad(field: string, why: string): never {
  throw new DecodeError('bad_field', `${field}: ${why}`);
}

function uint(v: unknown, field: string): number {
  if (typeof v !== 'number' || !Number.isSafeInteger(v) || v < 0) bad(field, 'expected a non-negative integer');
  return v;
}

function str(v: unknown, field: string, max: number, allowEmpty = false): string {
  if (typeof v !== 'string') bad(field, 'expected a string');
  if (!allowEmpty && v.length === 0) bad(field, 'must not be empty');
  if (v.length > max) bad(field, `longer than ${max}`);
  return v;
}

function bin(v: unknown, field: string, max: number): Uint8Array {
  if (!(v instanceof Uint8Array)) bad(field, 'expected bytes');
  if (v.length > max) bad(field, `larger than ${max} bytes`);
  // Copy: the decoder may hand out views into a reused buffer.
  return new Uint8Array(v);
}

function bool(v: unknown, field: string): boolean {
  if (typeof v !== 'boolean') bad(field, 'expected a boolean');
  return v;
}

function maint(v: unknown, field: string): string | null {
  if (v === null) return null;
  return str(v, field, LIMITS.maintReason, true);
}

function arr(v: unknown, field: string, len: number, altLen = len): unknown[] {
  if (!Array.isArray(v)) bad(field, 'expected an array');
  if (v.length !== len && v.length !== altLen) bad(field, `expected ${len === altLen ? len : `${len} or ${altLen}`} fields, got ${v.length}`);
  return v;
}

function coordinate(v: unknown, field: string): Coordinate {
  if (!(v instanceof Uint8Array)) bad(field, 'expected bytes');
  const c = decodeCoordinate(v);
  if (typeof c === 'string') bad(field, c);
  return c;
}

function list(v: unknown, field: string, max: number): unknown[] {
  if (!Array.isArray(v)) bad(field, 'expected an array');
  if (v.length > max) throw new DecodeError('too_large', `${field}: ${v.length} entries (limit ${max})`);
  return v;
}

function u32(v: unknown, field: string): number {
  const n = uint(v, field);
  if (n > 0xffffffff) bad(field, 'not a 32-bit value');
  return n;
}

function userMsg(v: unknown, f: string): UserMsg {
  const a = arr(v, f, 4);
  return { type: 'user', from: str(a[0], `${f}.from`, LIMITS.name), id: uint(a[1], `${f}.id`), topic: str(a[2], `${f}.topic`, LIMITS.userTopic), data: bin(a[3], `${f}.data`, LIMITS.userData) };
}

function userKeys(v: unknown, field: string): UserKey[] {
  return list(v, field, LIMITS.userRecent).map((k, i) => {
    const a = arr(k, `${field}[${i}]`, 2);
    return { from: str(a[0], `${field}[${i}].from`, LIMITS.name), id: uint(a[1], `${field}[${i}].id`) };
  });
}

function memberState(v: unknown, field: string): MemberState {
  const st = uint(v, field);
  if (st < ALIVE || st > LEFT) bad(field, `unknown state ${st}`);
  return st as MemberState;
}

function decodeRow(v: unknown, f: string): PushNodeState {
  const r = arr(v, f, 6, 8);
  const row: PushNodeState = {
    name: str(r[0], `${f}.name`, LIMITS.name), addr: str(r[1], `${f}.addr`, LIMITS.addr), meta: bin(r[2], `${f}.meta`, LIMITS.meta),
    maint: maint(r[3], `${f}.maint`), incarnation: uint(r[4], `${f}.incarnation`), state: memberState(r[5], `${f}.state`),
  };
  if (r.length === 8) {
    row.coordSeq = uint(r[6], `${f}.coordSeq`);
    row.coord = coordinate(r[7], `${f}.coord`);
  }
  return row;
}

function body(data: Uint8Array, type: string): unknown {
  try {
    return unpackr.unpack(data.subarray(1));
  } catch (e) {
    throw new DecodeError('malformed', `${type}: invalid msgpack (${(e as Error).message})`);
  }
}

function decodeOne(data: Uint8Array): Message {
  if (data.length === 0) throw new DecodeError('empty', 'empty message');
  const t = data[0];
  switch (t) {
    case MsgType.ping: {
      const a = arr(body(data, 'ping'), 'ping', 4);
      return { type: 'ping', seq: uint(a[0], 'ping.seq'), target: str(a[1], 'ping.target', LIMITS.name, true), sourceName: str(a[2], 'ping.sourceName', LIMITS.name), sourceAddr: str(a[3], 'ping.sourceAddr', LIMITS.addr) };
    }
    case MsgType.indirectPing: {
      const a = arr(body(data, 'indirectPing'), 'indirectPing', 6);
      return {
        type: 'indirectPing', seq: uint(a[0], 'indirectPing.seq'), target: str(a[1], 'indirectPing.target', LIMITS.name),
        targetAddr: str(a[2], 'indirectPing.targetAddr', LIMITS.addr), nack: bool(a[3], 'indirectPing.nack'),
        sourceName: str(a[4], 'indirectPing.sourceName', LIMITS.name), sourceAddr: str(a[5], 'indirectPing.sourceAddr', LIMITS.addr),
      };
    }
    case MsgType.ack: {
      const a = arr(body(data, 'ack'), 'ack', 1, 2);
      const seq = uint(a[0], 'ack.seq');
      return a.length === 2 ? { type: 'ack', seq, coord: coordinate(a[1], 'ack.coord') } : { type: 'ack', seq };
    }
    case MsgType.nack: {
      const a = arr(body(data, 'nack'), 'nack', 1);
      return { type: 'nack', seq: uint(a[0], 'nack.seq') };
    }
    case MsgType.suspect: {
      const a = arr(body(data, 'suspect'), 'suspect', 3);
      return { type: 'suspect', incarnation: uint(a[0], 'suspect.incarnation'), node: str(a[1], 'suspect.node', LIMITS.name), from: str(a[2], 'suspect.from', LIMITS.name) };
    }
    case MsgType.alive: {
      const a = arr(body(data, 'alive'), 'alive', 5);
      return {
        type: 'alive', incarnation: uint(a[0], 'alive.incarnation'), node: str(a[1], 'alive.node', LIMITS.name),
        addr: str(a[2], 'alive.addr', LIMITS.addr), meta: bin(a[3], 'alive.meta', LIMITS.meta), maint: maint(a[4], 'alive.maint'),
      };
    }
    case MsgType.dead: {
      const a = arr(body(data, 'dead'), 'dead', 3);
      return { type: 'dead', incarnation: uint(a[0], 'dead.incarnation'), node: str(a[1], 'dead.node', LIMITS.name), from: str(a[2], 'dead.from', LIMITS.name) };
    }
    case MsgType.ppDigest: {
      const a = arr(body(data, 'ppDigest'), 'ppDigest', 3);
      const join = bool(a[0], 'ppDigest.join');
      const h = bin(a[1], 'ppDigest.hashes', 4 * MAX_BUCKETS);
      const n = h.length / 4;
      // A power of two (both sides pick buckets by masking the name hash), 1..MAX_BUCKETS.
      if (n < 1 || !Number.isInteger(n) || (n & (n - 1)) !== 0) bad('ppDigest.hashes', `${h.length} bytes is not 4 × a power of two`);
      const dv = new DataView(h.buffer, h.byteOffset, h.length);
      const hashes = new Uint32Array(n);
      for (let i = 0; i < n; i++) hashes[i] = dv.getUint32(4 * i);
      return { type: 'ppDigest', join, hashes, userHash: u32(a[2], 'ppDigest.userHash') };
    }
    case MsgType.ppDiff: {
      const a = arr(body(data, 'ppDiff'), 'ppDiff', 4);
      const rows = list(a[0], 'ppDiff.rows', LIMITS.pushPullStates).map((r, i) => decodeRow(r, `ppDiff.rows[${i}]`));
      const buckets = list(a[1], 'ppDiff.buckets', MAX_BUCKETS).map((b, i) => {
        const v = uint(b, `ppDiff.buckets[${i}]`);
        if (v >= MAX_BUCKETS) bad(`ppDiff.buckets[${i}]`, `bucket ${v} out of range`);
        return v;
      });
      const digests = list(a[2], 'ppDiff.digests', LIMITS.pushPullStates).map((r, i): MemberDigest => {
        const f = `ppDiff.digests[${i}]`;
        const d = arr(r, f, 5);
        return { name: str(d[0], `${f}.name`, LIMITS.name), incarnation: uint(d[1], `${f}.incarnation`), state: memberState(d[2], `${f}.state`), hash: u32(d[3], `${f}.hash`), coordSeq: uint(d[4], `${f}.coordSeq`) };
      });
      return { type: 'ppDiff', rows, buckets, digests, userKeys: a[3] === null ? null : userKeys(a[3], 'ppDiff.userKeys') };
    }
    case MsgType.ppRows: {
      const a = arr(body(data, 'ppRows'), 'ppRows', 6);
      const rows = list(a[0], 'ppRows.rows', LIMITS.pushPullStates).map((r, i) => decodeRow(r, `ppRows.rows[${i}]`));
      const coords = list(a[1], 'ppRows.coords', LIMITS.pushPullStates).map((r, i): CoordEntry => {
        const f = `ppRows.coords[${i}]`;
        const c = arr(r, f, 3);
        return { node: str(c[0], `${f}.node`, LIMITS.name), seq: uint(c[1], `${f}.seq`), coord: coordinate(c[2], `${f}.coord`) };
      });
      const want = list(a[2], 'ppRows.want', LIMITS.pushPullStates).map((n, i) => str(n, `ppRows.want[${i}]`, LIMITS.name));
      const wantCoords = list(a[3], 'ppRows.wantCoords', LIMITS.pushPullStates).map((n, i) => str(n, `ppRows.wantCoords[${i}]`, LIMITS.name));
      const user = list(a[4], 'ppRows.user', LIMITS.userRecent).map((u, i) => userMsg(u, `ppRows.user[${i}]`));
      return { type: 'ppRows', rows, coords, want, wantCoords, user, wantUser: userKeys(a[5], 'ppRows.wantUser') };
    }
    case MsgType.err: {
      const a = arr(body(data, 'err'), 'err', 1);
      return { type: 'err', message: str(a[0], 'err.message', LIMITS.errMessage, true) };
    }
    case MsgType.coord: {
      const a = arr(body(data, 'coord'), 'coord', 3);
      return { type: 'coord', node: str(a[0], 'coord.node', LIMITS.name), seq: uint(a[1], 'coord.seq'), coord: coordinate(a[2], 'coord.coord') };
    }
    case MsgType.user: return userMsg(body(data, 'user'), 'user');
    case MsgType.compound:
      throw new DecodeError('nested_compound', 'compound inside compound');
    default:
      throw new DecodeError('unknown_type', `unknown message type ${String(t)}`);
  }
}

/** Decode one datagram or stream payload; a compound yields its parts in order. */
export function decode(data: Uint8Array): Message[] {
  if (data.length === 0) throw new DecodeError('empty', 'empty packet');
  if (data[0] !== MsgType.compound) return [decodeOne(data)];
  if (data.length < COMPOUND_HEADER_OVERHEAD) throw new DecodeError('malformed', 'compound: truncated header');
  const n = data[1] as number;
  if (n === 0) throw new DecodeError('malformed', 'compound: zero parts');
  let o = 2 + 2 * n;
  if (data.length < o) throw new DecodeError('malformed', `compound: truncated length table (${n} parts)`);
  const out: Message[] = [];
  for (let i = 0; i < n; i++) {
    const len = ((data[2 + 2 * i] as number) << 8) | (data[3 + 2 * i] as number);
    if (o + len > data.length) throw new DecodeError('malformed', `compound: part ${i} (${len} bytes) runs past the end`);
    out.push(decodeOne(data.subarray(o, o + len)));
    o += len;
  }
  if (o !== data.length) throw new DecodeError('malformed', `compound: ${data.length - o} trailing bytes`);
  return out;
}
