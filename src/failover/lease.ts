/**
 * Lease arithmetic: the two timers whose ordering makes two simultaneous masters impossible.
 *
 * A voter that acknowledges the master's heartbeat (or grants a vote) at its local time `a`
 * refuses votes to anybody else until `a + lease` on ITS clock. The master, having started the
 * heartbeat round at its local time `s` and received acks from a majority, calls itself master
 * until `s + lease·(1 − DRIFT_MARGIN)` on ITS clock. Every ack happened after `s` in real time.
 * If every clock's rate is within (1 ± ρ) of real time, the master's claim lasts at most
 * lease·(1 − δ)/(1 − ρ) of real time after s and the voter's refusal at least lease/(1 + ρ); the
 * claim ends first as long as (1 − δ) ≤ (1 − ρ)/(1 + ρ), i.e. ρ ≤ δ/(2 − δ) (≈ 5.3 % for δ = 0.1,
 * far above real clock drift, ~0.01 %, or NTP slewing, 0.05 %). Any new master needs a vote from
 * some voter of that majority, hence comes after the old claim ended.
 *
 * Public interface: DRIFT_MARGIN, MAX_DRIFT_RATE, masterLeaseEnd, voterLeaseEnd, marginIsSafe,
 * VoterLease, leaseValid.
 * Depends on: nothing.
 */

/** δ: fraction of the lease the master gives up to absorb clock-rate differences. */
export const DRIFT_MARGIN = 0.1;

/** ρ: the largest clock-rate error (relative to real time) DRIFT_MARGIN tolerates. */
export const MAX_DRIFT_RATE = DRIFT_MARGIN / (2 - DRIFT_MARGIN);

/** Last local instant (exclusive) at which the master may act, given the round it started at roundStart. */
export function masterLeaseEnd(roundStart: number, leaseMs: number, margin = DRIFT_MARGIN): number {
  return roundStart + leaseMs * (1 - margin);
}

/** Until when (voter's local clock) a voter that acked at ackAt refuses votes to others. */
export function voterLeaseEnd(ackAt: number, leaseMs: number): number {
  return ackAt + leaseMs;
}

/**
 * True when, for clocks whose rate error is at most `rho`, the longest real duration of a master
 * claim is no longer than the shortest real duration of a voter's refusal.
 */
export function marginIsSafe(margin: number, rho: number): boolean {
  return (1 - margin) / (1 - rho) <= 1 / (1 + rho);
}

/**
 * A voter's belief that some member holds the lease. holder null = nobody may get this voter's
 * vote until `until` (the quiet period after start: the voter may have acked a master just
 * before it restarted and forgotten it).
 */
export interface VoterLease {
  holder: string | null;
  until: number;
}

export function leaseValid(l: VoterLease | null, now: number): l is VoterLease {
  return l !== null && now < l.until;
}
