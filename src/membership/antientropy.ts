/**
 * Digest-first push/pull (anti-entropy): which rows two members must exchange so that, after one
 * exchange, each has every row the other would have applied from a full-state exchange, without
 * resending rows both already agree on. Pure functions; memberlist.ts does the I/O.
 *
 * Exchange (docs/membership.md, "Push/pull"):
 *   1. initiator → ppDigest: B bucket hashes of its view (B a power of two, bucketCount()).
 *   2. responder → ppDiff: for each bucket whose hash differs: its alive rows when the
 *      initiator's bucket is empty (a joiner lacks them all), otherwise the bucket index and its
 *      per-member digests (name, incarnation, state, version hash, coordinate seq).
 *   3. initiator → ppRows: the rows / coordinates the responder lacks or has older (decide()),
 *      and the names it wants; the responder answers with those rows. Skipped when both are empty.
 * Depends on: state.ts (states, digest terms).
 */
import { ALIVE, type MemberState } from './state.ts';

/** What a digest says about one member. */
export interface MemberDigest {
  name: string;
  incarnation: number;
  state: MemberState;
  /** versionHash of the member's (addr, meta, maint, incarnation). */
  hash: number;
  /** Sequence of the member's Vivaldi coordinate known here (0 = none or coordinates off). */
  coordSeq: number;
}

/** Buckets used when joining: the joiner's view is nearly empty, so most buckets are sent as rows. */
export const JOIN_BUCKETS = 256;
/** Upper bound a responder accepts (64 KiB of hashes at most, 4 bytes each → 16 KiB). */
export const MAX_BUCKETS = 4096;

/**
 * Buckets for a view of n members: the power of two nearest above 2·√n, at most 256. An exchange
 * costs 4·B bytes of hashes plus, per differing member, the digests of its bucket (n/B of ~17
 * bytes); for one difference that sum is smallest near B = 2·√n. Steady-state cost per member
 * stays a few bytes per second at any size, since the push/pull period also grows with n.
 */
export function bucketCount(n: number): number {
  let b = 1;
  while (b < 256 && b * b < 4 * n) b *= 2;
  return b;
}

/** One side's decision about one member: send our row/coordinate, ask for theirs, or nothing. */
export interface Decision {
  send: 'none' | 'row' | 'coord';
  want: 'none' | 'row' | 'coord';
}

const NONE: Decision = { send: 'none', want: 'none' };

/**
 * Compare our digest of a member with the peer's (either may be missing). A row is useful to a
 * side when merging it could change that side's view under the precedence rules (state.ts):
 * an unknown member only through an alive row (dead/suspect rows about strangers are ignored, as
 * in memberlist), a known one when the other side's (incarnation, state) is ahead — states
 * ordered alive < suspect < dead < left. Equal (incarnation, state) with different content (a
 * restarted member reusing an incarnation) goes both ways and the merge rules decide. When only
 * the coordinate sequence differs, the newer coordinate alone travels.
 */
export function decide(local: MemberDigest | undefined, remote: MemberDigest | undefined): Decision {
  if (!local && !remote) return NONE;
  if (!local) return { send: 'none', want: remote?.state === ALIVE ? 'row' : 'none' };
  if (!remote) return { send: local.state === ALIVE ? 'row' : 'none', want: 'none' };
  if (local.incarnation !== remote.incarnation || local.state !== remote.state) {
    const ahead = local.incarnation > remote.incarnation || (local.incarnation === remote.incarnation && local.state > remote.state);
    return ahead ? { send: 'row', want: 'none' } : { send: 'none', want: 'row' };
  }
  if (local.hash !== remote.hash) return { send: 'row', want: 'row' };
  if (local.coordSeq > remote.coordSeq) return { send: 'coord', want: 'none' };
  if (local.coordSeq < remote.coordSeq) return { send: 'none', want: 'coord' };
  return NONE;
}
