/**
 * One service's election on one node: terms, votes, leases, heartbeats, self-demotion,
 * preemption and planned switchover. Transport-agnostic (PeerTransport), clock-injected (Clock),
 * with durable term/vote state (FailoverPersistence). docs/failover.md explains the algorithm and
 * why it cannot produce two masters; in short:
 *
 * - terms: a candidate first asks voters whether they would vote (pre-vote, no state change, so a
 *   cut-off member cannot inflate terms), then increments its term, persists (term, vote for
 *   itself) and asks every voter. A voter persists its vote BEFORE answering and votes at most
 *   once per term, only for an eligible candidate allowed by rules.ts. A majority makes a master.
 * - leases: a voter that acks a heartbeat (or grants a vote) refuses all other candidates for
 *   `lease` on its own clock, without even adopting their term (stickiness). The master counts
 *   itself master only until `roundStart + lease·(1 − δ)` of its last majority-acked round
 *   (lease.ts), and demotes itself at that instant if it could not renew.
 * - isMasterNow() re-reads the clock on each call: master-only actions check it right before
 *   running, so a process resumed after SIGSTOP never acts on a stale lease. The term is the
 *   fencing token.
 * - a newer term seen anywhere (reply or request) makes a master/candidate step down.
 * - a restarted node refuses to vote for `lease` (it may have acked a master just before dying),
 *   and a node that died as master runs master_to_standby on start (cleanup).
 *
 * Roles, transitions, actions, health observation, preemption, the common part of switchTo and
 * status() are ServiceCore's (service-core.ts), shared with the etcd backend.
 *
 * Public interface: FailoverService (start, stop, handle, isMasterNow, fencingToken, status,
 * switchTo, idle), FailoverServiceOptions, ServiceStatus, ClaimRecord (the last two re-exported
 * from service-core.ts).
 * Depends on: ./service-core.ts, ./rules.ts, ./lease.ts, ./messages.ts, ./types.ts.
 */
import { leaseValid, masterLeaseEnd, voterLeaseEnd, type VoterLease } from './lease.ts';
import {
  parseHeartbeatReply, parseTimeoutNowReply, parseVoteReply,
  type AnyRequest, type HeartbeatReply, type SwitchReply, type TimeoutNowReply, type VoteReply,
} from './messages.ts';
import { rankCandidates, voteDecision, type VoteDecision } from './rules.ts';
import { ServiceCore, type ServiceCoreOptions } from './service-core.ts';
import type { PersistedServiceState, Role } from './types.ts';

export type { ClaimRecord, ServiceStatus } from './service-core.ts';

/** Everything the builtin election needs is what ServiceCore needs (transport: the election RPC). */
export type FailoverServiceOptions = ServiceCoreOptions;

interface PollResult {
  granted: number;
  maxTerm: number;
  refusals: string[];
}

export class FailoverService extends ServiceCore {
  readonly #o: FailoverServiceOptions;
  readonly #majority: number;
  readonly #isVoter: boolean;

  #voterLease: VoterLease | null = null;
  #startedAt = 0;
  #campaigning = false;
  /** `master@term` whose release this node received (later plain heartbeats of it are stale). */
  #released = '';

  constructor(opts: FailoverServiceOptions) {
    super(opts, { leaseMs: opts.service.leaseMs, leaseLostReason: 'lease expired: no majority acknowledged the heartbeats in time' });
    this.#o = opts;
    this.#majority = Math.floor(opts.service.voters.length / 2) + 1;
    this.#isVoter = opts.service.voters.includes(opts.node);
  }

  protected override onStart(now: number, saved: PersistedServiceState | undefined): void {
    this.#startedAt = now;
    if (saved !== undefined) this.votedFor = saved.votedFor;
    // Quiet period: this voter may have acked a master right before it (re)started.
    this.#voterLease = { holder: null, until: voterLeaseEnd(now, this.svc.leaseMs) };
  }

  protected override onTick(now: number): void {
    if (this.role === 'master') this.masterTick(now, () => void this.#heartbeat());
    else if (this.role === 'standby' && now >= this.backoffUntil && !this.handingOver) void this.#campaign(false);
  }

  /**
   * The best-ranked standby stands for election the moment the lease of the master it followed
   * runs out, and retries quickly while there is no master, instead of waiting up to a jittered
   * tick each time: this is what keeps failover near lease + one round trip. Others keep the
   * regular jitter, so they do not collide with it.
   */
  protected override earlyWake(now: number): number | null {
    if (rankCandidates(this.svc, this.members())[0] !== this.self) return null;
    const wait = this.#voterLease === null ? 0 : this.#voterLease.until - now;
    return wait > 0 ? wait + 5 : this.svc.heartbeatMs / 4;
  }

  /** Handles a validated request from `from` (authenticated by the facade). */
  override async handle(req: AnyRequest, from: string): Promise<unknown> {
    this.assertRunning();
    switch (req.method) {
      case 'failover.prevote': return this.#onVote(req.body.term, req.body.candidate, true);
      case 'failover.vote': return this.#onVote(req.body.term, req.body.candidate, false);
      case 'failover.heartbeat': return this.#onHeartbeat(req.body.term, req.body.master, req.body.release);
      case 'failover.timeout_now': return this.#onTimeoutNow(req.body.term, from);
      case 'failover.switch': return this.switchTo(req.body.target);
    }
  }

  // ------------------------------------------------------------------------------------------
  // Voter side.

  #decide(candidate: string, now: number): VoteDecision {
    return voteDecision(this.svc, this.members(), candidate, {
      now,
      lease: this.#voterLease,
      noMasterSince: this.#voterLease?.until ?? this.#startedAt,
      lastMaster: this.lastMaster,
    });
  }

  #onVote(term: number, candidate: string, pre: boolean): VoteReply {
    const refuse = (reason: string): VoteReply => ({ granted: false, term: this.term, reason });
    if (!this.#isVoter) return refuse(`${this.self} is not a voter of ${this.svc.name}`);
    const now = this.now();
    if (term < this.term) return refuse(`stale term ${term} < ${this.term}`);
    // Lease stickiness: while a lease is valid, requests for others do not even move our term.
    if (leaseValid(this.#voterLease, now) && this.#voterLease.holder !== candidate) return refuse(this.#decide(candidate, now).reason);
    if (pre) {
      if (term === this.term && this.votedFor !== null && this.votedFor !== candidate) return refuse(`already voted for ${this.votedFor} in term ${term}`);
      const d = this.#decide(candidate, now);
      return d.grant ? { granted: true, term: this.term, reason: d.reason } : refuse(d.reason);
    }
    if (term > this.term) this.#adoptTerm(term, `vote request from ${candidate}`);
    if (this.votedFor !== null && this.votedFor !== candidate) return refuse(`already voted for ${this.votedFor} in term ${term}`);
    const d = this.#decide(candidate, now);
    if (!d.grant) return refuse(d.reason);
    this.votedFor = candidate;
    this.persist(); // before the answer leaves: a restarted voter must not vote twice in a term
    this.#voterLease = { holder: candidate, until: voterLeaseEnd(now, this.svc.leaseMs) };
    return { granted: true, term: this.term, reason: d.reason };
  }

  #onHeartbeat(term: number, master: string, release: string | undefined): HeartbeatReply {
    if (term < this.term) return { ack: false, term: this.term, reason: `stale term ${term} < ${this.term}` };
    if (master === this.self) return { ack: false, term: this.term, reason: 'heartbeat from myself' };
    if (term > this.term) this.#adoptTerm(term, `heartbeat from ${master}`);
    if (this.role === 'master') {
      // One master per term is guaranteed by the votes; reaching this means a bug or a forged peer.
      this.#o.logger.error({ service: this.svc.name, term, master }, 'failover: heartbeat from another master in my own term');
      return { ack: false, term: this.term, reason: 'I am master in this term' };
    }
    // Messages can be reordered: a heartbeat sent before the master's release must not revive it.
    if (release === undefined && this.#released === `${master}@${term}`) return { ack: false, term: this.term, reason: `${master} released term ${term}` };
    if (release !== undefined) this.#released = `${master}@${term}`;
    if (this.role === 'candidate') this.setRole('standby', `${master} is master in term ${term}`);
    const now = this.now();
    this.#voterLease = { holder: release ?? master, until: voterLeaseEnd(now, this.svc.leaseMs) };
    this.lastMaster = master;
    if (release !== undefined) {
      if (this.knownMaster !== null) this.previousMaster = this.knownMaster;
      this.knownMaster = null;
    } else if (this.knownMaster !== master) {
      if (this.knownMaster !== null) this.previousMaster = this.knownMaster;
      this.knownMaster = master;
    }
    return { ack: true, term: this.term };
  }

  async #onTimeoutNow(term: number, from: string): Promise<TimeoutNowReply> {
    if (term < this.term) return { elected: false, term: this.term, reason: `stale term ${term} < ${this.term}` };
    if (this.isMasterNow()) return { elected: true, term: this.masterTerm, reason: 'already master' };
    if (this.role !== 'standby') return { elected: false, term: this.term, reason: `${this.self} is ${this.role}` };
    this.#o.logger.info({ service: this.svc.name, from }, 'failover: switchover target, standing for election now');
    const r = await this.#campaign(true);
    if (!r.ok) this.#o.logger.warn({ service: this.svc.name, from, reason: r.reason }, 'failover: switchover target not elected');
    return { elected: r.ok, term: this.term, reason: r.reason };
  }

  #adoptTerm(term: number, why: string): void {
    this.term = term;
    this.votedFor = null;
    this.persist();
    if (this.role === 'master') this.demote('standby', `newer term ${term} (${why})`);
    else if (this.role === 'candidate') this.setRole('standby', `newer term ${term} (${why})`);
  }

  // ------------------------------------------------------------------------------------------
  // Candidate side.

  async #campaign(handover: boolean): Promise<{ ok: boolean; reason: string }> {
    if (this.#campaigning) return { ok: false, reason: 'an election is already running' };
    if (this.role !== 'standby') return { ok: false, reason: `${this.self} is ${this.role}` };
    this.#campaigning = true;
    try {
      const mine = this.#decide(this.self, this.now());
      if (!mine.grant) return { ok: false, reason: `would not vote for myself: ${mine.reason}` };
      const proposed = this.term + 1;
      const pre = await this.#poll('failover.prevote', proposed, this.#isVoter ? 1 : 0);
      if (pre.maxTerm > this.term) this.#adoptTerm(pre.maxTerm, 'pre-vote reply');
      if (pre.granted < this.#majority) return { ok: false, reason: `pre-vote: ${pre.granted}/${this.#majority} needed (${pre.refusals.join('; ')})` };
      if (this.role !== 'standby' || this.term >= proposed) return { ok: false, reason: 'state changed during pre-vote' };
      const roundStart = this.now();
      this.term = proposed;
      this.votedFor = this.self;
      this.persist();
      this.setRole('candidate', `standing for term ${proposed}${handover ? ' (switchover)' : ''}`);
      if (this.#isVoter) this.#voterLease = { holder: this.self, until: voterLeaseEnd(roundStart, this.svc.leaseMs) };
      const vote = await this.#poll('failover.vote', proposed, this.#isVoter ? 1 : 0);
      if (vote.maxTerm > this.term) this.#adoptTerm(vote.maxTerm, 'vote reply');
      if ((this.role as Role) !== 'candidate' || this.term !== proposed) return { ok: false, reason: 'lost the election (newer term or other master)' };
      if (vote.granted < this.#majority) {
        this.setRole('standby', `election for term ${proposed} failed`);
        return { ok: false, reason: `votes: ${vote.granted}/${this.#majority} needed (${vote.refusals.join('; ')})` };
      }
      if (!this.#elected(roundStart, handover)) return { ok: false, reason: 'won too late: the lease had already run out' };
      return { ok: true, reason: `elected in term ${proposed} with ${vote.granted} votes` };
    } finally {
      this.#campaigning = false;
    }
  }

  /** Ask every other voter; resolves as soon as a majority granted, or when all answered/failed. */
  #poll(method: 'failover.prevote' | 'failover.vote', term: number, selfGrants: number): Promise<PollResult> {
    const res: PollResult = { granted: selfGrants, maxTerm: this.term, refusals: [] };
    const peers = this.svc.voters.filter((v) => v !== this.self);
    if (res.granted >= this.#majority || peers.length === 0) return Promise.resolve(res);
    return new Promise((resolve) => {
      let left = peers.length;
      const done = (): void => {
        left--;
        if (res.granted >= this.#majority || left === 0) resolve(res);
      };
      for (const p of peers) {
        this.#o.transport.call(p, method, { pool: this.pool, service: this.svc.name, term, candidate: this.self }, this.svc.heartbeatMs)
          .then((raw) => {
            const r = parseVoteReply(raw);
            res.maxTerm = Math.max(res.maxTerm, r.term);
            if (r.granted) res.granted++;
            else res.refusals.push(`${p}: ${r.reason}`);
          }, (e: unknown) => { res.refusals.push(`${p}: ${e instanceof Error ? e.message : String(e)}`); })
          .finally(done);
      }
    });
  }

  /** Won the votes of a round started at `roundStart`: master unless the lease window has passed. */
  #elected(roundStart: number, handover: boolean): boolean {
    const now = this.now();
    const end = masterLeaseEnd(roundStart, this.svc.leaseMs);
    if (now >= end) {
      this.setRole('standby', 'election won after the lease window');
      return false;
    }
    this.becomeMaster(this.term, now, end, handover, `elected in term ${this.term}`);
    this.#heartbeat();
    this.scheduleTick(this.svc.heartbeatMs);
    return true;
  }

  // ------------------------------------------------------------------------------------------
  // Master side.

  #heartbeat(release?: string): Promise<void> {
    const start = this.now();
    const term = this.term;
    let acks = 0;
    if (this.#isVoter) {
      this.#voterLease = { holder: release ?? this.self, until: voterLeaseEnd(start, this.svc.leaseMs) };
      acks = 1;
    }
    if (release === undefined && acks >= this.#majority) this.extend(term, masterLeaseEnd(start, this.svc.leaseMs));
    const body = { pool: this.pool, service: this.svc.name, term, master: this.self, ...(release !== undefined ? { release } : {}) };
    const calls = this.#peers().map((p) =>
      this.#o.transport.call(p, 'failover.heartbeat', body, this.svc.heartbeatMs).then((raw) => {
        const r = parseHeartbeatReply(raw);
        if (r.term > this.term) { this.#adoptTerm(r.term, `heartbeat reply from ${p}`); return; }
        if (r.ack && r.term === term && this.svc.voters.includes(p)) {
          acks++;
          if (release === undefined && acks >= this.#majority) this.extend(term, masterLeaseEnd(start, this.svc.leaseMs));
        }
      }, () => { /* unreachable peer: the lease simply is not renewed by it */ }));
    return Promise.all(calls).then(() => undefined);
  }

  /**
   * The master's side of a planned switchover (ServiceCore.switchTo checked the target): run
   * master_to_standby first, tell voters to hold their vote for the target (release), then ask the
   * target to stand now.
   */
  protected override async handOver(target: string): Promise<SwitchReply> {
    const term = this.term;
    const now = this.now();
    // From here this node votes only for the target (and does not stand itself).
    if (this.#isVoter) this.#voterLease = { holder: target, until: voterLeaseEnd(now, this.svc.leaseMs) };
    this.demote('standby', `switchover to ${target}`, target);
    await this.idle(); // master_to_standby has run before the target is elected
    if (this.term !== term) return this.switchFailed(`term changed to ${this.term} during the switchover`);
    await this.#heartbeat(target);
    const r = parseTimeoutNowReply(await this.#o.transport.call(target, 'failover.timeout_now', { pool: this.pool, service: this.svc.name, term }, 4 * this.svc.leaseMs));
    return { ok: r.elected, master: r.elected ? target : null, term: r.term, detail: r.elected ? `${target} is master in term ${r.term}` : `${target} not elected: ${r.reason}` };
  }

  // ------------------------------------------------------------------------------------------
  // Helpers.

  /** Everyone who should hear heartbeats: voters (their acks count) and the other members. */
  #peers(): string[] {
    const s = new Set([...this.svc.voters, ...this.members().map((m) => m.name)]);
    s.delete(this.self);
    return [...s].sort();
  }}
