/**
 * Vote rules: who may be master and whom a voter may vote for. Pure functions of a member list,
 * the service settings and the voter's lease state, so they are unit-tested on their own and the
 * candidate applies exactly the rule its voters apply ("would I vote for myself?").
 *
 * - eligible: alive, healthy (OK/WARNING), not in maintenance, not the witness, priority > 0.
 * - ranking: eligible members by priority (high first), then name (deterministic tie-break).
 *   Under nopreempt and preempt-after, the last master (if still eligible) is ranked first: it
 *   keeps the role after a short glitch instead of handing it to a higher-priority member.
 * - a voter holding a valid lease votes only for its holder (the master it acked, or the target
 *   of a planned switchover), ranking aside.
 * - otherwise it votes for the first-ranked member, or for the member ranked k-th once it has
 *   been without a master for k leases: if the better members are unreachable, the next one gets
 *   its turn (liveness) instead of the election stalling on a member nobody can hear.
 *
 * Public interface: isEligible, whyIneligible, priorityOf, rankCandidates, voteDecision,
 * VoteContext, VoteDecision.
 * Depends on: ./types.ts, ./lease.ts.
 */
import type { PoolMember, ResolvedService } from './types.ts';
import { leaseValid, type VoterLease } from './lease.ts';

export function priorityOf(svc: ResolvedService, node: string): number {
  return svc.priority[node] ?? svc.defaultPriority;
}

/** Why `m` cannot be master, or null if it can. */
export function whyIneligible(svc: ResolvedService, m: PoolMember | undefined): string | null {
  if (m === undefined) return 'not a member of the pool';
  if (m.name === svc.witness) return 'is the witness';
  if (priorityOf(svc, m.name) <= 0) return 'has priority 0';
  if (!m.alive) return 'is not alive';
  if (m.maintenance) return 'is in maintenance';
  if (!m.healthy) return 'is not healthy';
  return null;
}

export function isEligible(svc: ResolvedService, m: PoolMember | undefined): boolean {
  return whyIneligible(svc, m) === null;
}

/** Eligible member names, best first. `lastMaster` is put first under nopreempt / preempt-after. */
export function rankCandidates(svc: ResolvedService, members: readonly PoolMember[], lastMaster: string | null = null): string[] {
  const ranked = members
    .filter((m) => isEligible(svc, m))
    .map((m) => m.name)
    .sort((a, b) => priorityOf(svc, b) - priorityOf(svc, a) || (a < b ? -1 : a > b ? 1 : 0));
  if (lastMaster !== null && svc.preempt.mode !== 'preempt') {
    const i = ranked.indexOf(lastMaster);
    if (i > 0) { ranked.splice(i, 1); ranked.unshift(lastMaster); }
  }
  return ranked;
}

export interface VoteContext {
  now: number;
  lease: VoterLease | null;
  /** Since when this voter has known no valid lease (its last lease's end, or its start). */
  noMasterSince: number;
  /** The last master this voter knew of (for nopreempt ranking). */
  lastMaster: string | null;
}

export interface VoteDecision {
  grant: boolean;
  reason: string;
}

/** Whether a voter with view `members` and state `ctx` may vote for `candidate`. */
export function voteDecision(svc: ResolvedService, members: readonly PoolMember[], candidate: string, ctx: VoteContext): VoteDecision {
  const why = whyIneligible(svc, members.find((m) => m.name === candidate));
  if (why !== null) return { grant: false, reason: `${candidate} ${why}` };
  if (leaseValid(ctx.lease, ctx.now)) {
    const { holder, until } = ctx.lease;
    if (holder === candidate) return { grant: true, reason: `${candidate} holds the lease` };
    const who = holder === null ? 'the start-up quiet period' : `the lease of ${holder}`;
    return { grant: false, reason: `${who} is valid for another ${Math.ceil(until - ctx.now)}ms` };
  }
  const ranked = rankCandidates(svc, members, ctx.lastMaster);
  const rank = ranked.indexOf(candidate);
  if (rank === 0) return { grant: true, reason: `${candidate} is the best eligible member` };
  const waited = ctx.now - ctx.noMasterSince;
  if (waited >= rank * svc.leaseMs) {
    return { grant: true, reason: `${candidate} is ranked ${rank + 1} and the better ones had ${Math.floor(waited)}ms to win` };
  }
  return { grant: false, reason: `${ranked[0] ?? '?'} is a better candidate (${candidate} ranked ${rank + 1}, its turn in ${Math.ceil(rank * svc.leaseMs - waited)}ms)` };
}
