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
 * Public interface: FailoverService (start, stop, handle, isMasterNow, fencingToken, status,
 * switchTo, idle), FailoverServiceOptions, ServiceStatus, ClaimRecord.
 * Depends on: ./rules.ts, ./lease.ts, ./messages.ts, ./actions.ts, ./vars.ts, ./types.ts.
 */
import type { Logger } from 'pino';
import { ActionsRunner, type ActionExecutor, type TransitionResult } from './actions.ts';
import { leaseValid, masterLeaseEnd, voterLeaseEnd, type VoterLease } from './lease.ts';
import {
  parseHeartbeatReply, parseSwitchReply, parseTimeoutNowReply, parseVoteReply,
  type AnyRequest, type HeartbeatReply, type SwitchReply, type TimeoutNowReply, type VoteReply,
} from './messages.ts';
import { priorityOf, rankCandidates, voteDecision, whyIneligible, type VoteDecision } from './rules.ts';
import type {
  Clock, FailoverEventSink, FailoverPersistence, HistorySink, PeerTransport, PoolMember, PoolView,
  ResolvedService, Role, TimerHandle,
} from './types.ts';
import { emptyVars, type Vars } from './vars.ts';

/**
 * What a node claims about its mastership, in its local clock: became master, extended its lease,
 * demoted. history-checker.ts turns these into real-time intervals.
 */
export type ClaimRecord =
  | { kind: 'master'; node: string; service: string; term: number; at: number; until: number }
  | { kind: 'lease'; node: string; service: string; term: number; at: number; until: number }
  | { kind: 'demote'; node: string; service: string; term: number; at: number; reason: string };

export interface FailoverServiceOptions {
  pool: string;
  node: string;
  service: ResolvedService;
  transport: PeerTransport;
  view: PoolView;
  clock: Clock;
  persistence: FailoverPersistence;
  logger: Logger;
  history?: HistorySink;
  events?: FailoverEventSink;
  /** Runs actions; default: real processes. */
  executor?: ActionExecutor;
  /** Every claim record (master/lease/demote), for the history checker. */
  trace?: (r: ClaimRecord) => void;
  /** Jitter source for standby ticks (seeded in simulations). */
  random?: () => number;
}

export interface ServiceStatus {
  pool: string;
  service: string;
  node: string;
  role: Role;
  term: number;
  /** The master this node knows of (itself when master). */
  master: string | null;
  isMaster: boolean;
  /** Remaining master lease (ms, local clock), 0 when not master. */
  leaseRemainingMs: number;
  votedFor: string | null;
  voters: string[];
  witness: string | null;
  lastChange: { at: number; from: Role; to: Role; reason: string } | null;
  actionsPending: number;
}

interface PollResult {
  granted: number;
  maxTerm: number;
  refusals: string[];
}

export class FailoverService {
  readonly #o: FailoverServiceOptions;
  readonly #svc: ResolvedService;
  readonly #self: string;
  readonly #runner: ActionsRunner;
  readonly #majority: number;
  readonly #isVoter: boolean;
  readonly #random: () => number;

  #term = 0;
  #votedFor: string | null = null;
  #role: Role = 'standby';
  #leaseEnd = Number.NEGATIVE_INFINITY;
  #masterTerm = -1;
  #electedByHandover = false;
  #voterLease: VoterLease | null = null;
  #startedAt = 0;
  #knownMaster: string | null = null;
  #previousMaster: string | null = null;
  #lastMaster: string | null = null;
  #tickTimer: TimerHandle | null = null;
  #leaseTimer: TimerHandle | null = null;
  #campaigning = false;
  #handingOver = false;
  #backoffUntil = Number.NEGATIVE_INFINITY;
  #betterSince = new Map<string, number>();
  #health = new Map<string, string>();
  #lastChange: ServiceStatus['lastChange'] = null;
  #started = false;
  #lastRoleSaved: 'master' | 'other' = 'other';
  /** `master@term` whose release this node received (later plain heartbeats of it are stale). */
  #released = '';

  constructor(opts: FailoverServiceOptions) {
    this.#o = opts;
    this.#svc = opts.service;
    this.#self = opts.node;
    this.#majority = Math.floor(opts.service.voters.length / 2) + 1;
    this.#isVoter = opts.service.voters.includes(opts.node);
    this.#random = opts.random ?? Math.random;
    this.#runner = new ActionsRunner({
      pool: opts.pool, service: opts.service.name, node: opts.node, actions: opts.service.actions,
      logger: opts.logger, ...(opts.history ? { history: opts.history } : {}), ...(opts.events ? { events: opts.events } : {}),
      ...(opts.executor ? { executor: opts.executor } : {}),
    });
    if (opts.service.witness === opts.node) this.#role = 'witness';
  }

  get name(): string {
    return this.#svc.name;
  }

  start(): void {
    if (this.#started) return;
    this.#started = true;
    const now = this.#now();
    this.#startedAt = now;
    const saved = this.#o.persistence.load(this.#o.pool, this.#svc.name);
    if (saved !== undefined) {
      this.#term = saved.term;
      this.#votedFor = saved.votedFor;
    }
    // Quiet period: this voter may have acked a master right before it (re)started.
    this.#voterLease = { holder: null, until: voterLeaseEnd(now, this.#svc.leaseMs) };
    this.#lastRoleSaved = saved?.lastRole ?? 'other';
    if (saved?.lastRole === 'master') {
      this.#o.logger.warn({ service: this.#svc.name, term: saved.term }, 'failover: this node was master when it stopped; running master_to_standby to clean up');
      // 'master' stays on disk until the cleanup ran: a crash in between repeats it on next start.
      void this.#runner.enqueue('master_to_standby', this.#vars({ master: '', previous: this.#self }))
        .then(() => { if (this.#role !== 'master') this.#persist('other'); });
    }
    this.#persist();
    this.#observeHealth(true);
    this.#scheduleTick(this.#svc.heartbeatMs * this.#random());
  }

  /** Stops timers. A master first hands over to the best other member (or just demotes). */
  async stop(): Promise<void> {
    if (!this.#started || this.#role === 'stopped') return;
    if (this.#role === 'master') {
      const next = rankCandidates(this.#svc, this.#members()).find((n) => n !== this.#self);
      if (next !== undefined) await this.switchTo(next);
      else this.#demote('standby', 'stopping');
    }
    this.#clearTimers();
    this.#setRole('stopped', 'stopped');
    await this.#runner.idle();
  }

  /** Master right now: role master and the lease (re-read from the clock) still valid. */
  isMasterNow(): boolean {
    return this.#role === 'master' && this.#now() < this.#leaseEnd;
  }

  /** The term while master (the fencing token to hand to resources), else null. */
  fencingToken(): number | null {
    return this.isMasterNow() ? this.#masterTerm : null;
  }

  /** Resolves when queued actions have run. */
  idle(): Promise<void> {
    return this.#runner.idle();
  }

  status(): ServiceStatus {
    const master = this.isMasterNow();
    return {
      pool: this.#o.pool,
      service: this.#svc.name,
      node: this.#self,
      role: this.#role,
      term: this.#term,
      master: master ? this.#self : this.#knownMaster,
      isMaster: master,
      leaseRemainingMs: master ? Math.max(0, this.#leaseEnd - this.#now()) : 0,
      votedFor: this.#votedFor,
      voters: [...this.#svc.voters],
      witness: this.#svc.witness,
      lastChange: this.#lastChange,
      actionsPending: this.#runner.pending,
    };
  }

  /** Handles a validated request from `from` (authenticated by the facade). */
  async handle(req: AnyRequest, from: string): Promise<unknown> {
    if (!this.#started || this.#role === 'stopped') throw new Error(`failover service ${this.#svc.name} is not running on ${this.#self}`);
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
    return voteDecision(this.#svc, this.#members(), candidate, {
      now,
      lease: this.#voterLease,
      noMasterSince: this.#voterLease?.until ?? this.#startedAt,
      lastMaster: this.#lastMaster,
    });
  }

  #onVote(term: number, candidate: string, pre: boolean): VoteReply {
    const refuse = (reason: string): VoteReply => ({ granted: false, term: this.#term, reason });
    if (!this.#isVoter) return refuse(`${this.#self} is not a voter of ${this.#svc.name}`);
    const now = this.#now();
    if (term < this.#term) return refuse(`stale term ${term} < ${this.#term}`);
    // Lease stickiness: while a lease is valid, requests for others do not even move our term.
    if (leaseValid(this.#voterLease, now) && this.#voterLease.holder !== candidate) return refuse(this.#decide(candidate, now).reason);
    if (pre) {
      if (term === this.#term && this.#votedFor !== null && this.#votedFor !== candidate) return refuse(`already voted for ${this.#votedFor} in term ${term}`);
      const d = this.#decide(candidate, now);
      return d.grant ? { granted: true, term: this.#term, reason: d.reason } : refuse(d.reason);
    }
    if (term > this.#term) this.#adoptTerm(term, `vote request from ${candidate}`);
    if (this.#votedFor !== null && this.#votedFor !== candidate) return refuse(`already voted for ${this.#votedFor} in term ${term}`);
    const d = this.#decide(candidate, now);
    if (!d.grant) return refuse(d.reason);
    this.#votedFor = candidate;
    this.#persist(); // before the answer leaves: a restarted voter must not vote twice in a term
    this.#voterLease = { holder: candidate, until: voterLeaseEnd(now, this.#svc.leaseMs) };
    return { granted: true, term: this.#term, reason: d.reason };
  }

  #onHeartbeat(term: number, master: string, release: string | undefined): HeartbeatReply {
    if (term < this.#term) return { ack: false, term: this.#term, reason: `stale term ${term} < ${this.#term}` };
    if (master === this.#self) return { ack: false, term: this.#term, reason: 'heartbeat from myself' };
    if (term > this.#term) this.#adoptTerm(term, `heartbeat from ${master}`);
    if (this.#role === 'master') {
      // One master per term is guaranteed by the votes; reaching this means a bug or a forged peer.
      this.#o.logger.error({ service: this.#svc.name, term, master }, 'failover: heartbeat from another master in my own term');
      return { ack: false, term: this.#term, reason: 'I am master in this term' };
    }
    // Messages can be reordered: a heartbeat sent before the master's release must not revive it.
    if (release === undefined && this.#released === `${master}@${term}`) return { ack: false, term: this.#term, reason: `${master} released term ${term}` };
    if (release !== undefined) this.#released = `${master}@${term}`;
    if (this.#role === 'candidate') this.#setRole('standby', `${master} is master in term ${term}`);
    const now = this.#now();
    this.#voterLease = { holder: release ?? master, until: voterLeaseEnd(now, this.#svc.leaseMs) };
    this.#lastMaster = master;
    if (release !== undefined) {
      if (this.#knownMaster !== null) this.#previousMaster = this.#knownMaster;
      this.#knownMaster = null;
    } else if (this.#knownMaster !== master) {
      if (this.#knownMaster !== null) this.#previousMaster = this.#knownMaster;
      this.#knownMaster = master;
    }
    return { ack: true, term: this.#term };
  }

  async #onTimeoutNow(term: number, from: string): Promise<TimeoutNowReply> {
    if (term < this.#term) return { elected: false, term: this.#term, reason: `stale term ${term} < ${this.#term}` };
    if (this.isMasterNow()) return { elected: true, term: this.#masterTerm, reason: 'already master' };
    if (this.#role !== 'standby') return { elected: false, term: this.#term, reason: `${this.#self} is ${this.#role}` };
    this.#o.logger.info({ service: this.#svc.name, from }, 'failover: switchover target, standing for election now');
    const r = await this.#campaign(true);
    if (!r.ok) this.#o.logger.warn({ service: this.#svc.name, from, reason: r.reason }, 'failover: switchover target not elected');
    return { elected: r.ok, term: this.#term, reason: r.reason };
  }

  #adoptTerm(term: number, why: string): void {
    this.#term = term;
    this.#votedFor = null;
    this.#persist();
    if (this.#role === 'master') this.#demote('standby', `newer term ${term} (${why})`);
    else if (this.#role === 'candidate') this.#setRole('standby', `newer term ${term} (${why})`);
  }

  // ------------------------------------------------------------------------------------------
  // Candidate side.

  async #campaign(handover: boolean): Promise<{ ok: boolean; reason: string }> {
    if (this.#campaigning) return { ok: false, reason: 'an election is already running' };
    if (this.#role !== 'standby') return { ok: false, reason: `${this.#self} is ${this.#role}` };
    this.#campaigning = true;
    try {
      const mine = this.#decide(this.#self, this.#now());
      if (!mine.grant) return { ok: false, reason: `would not vote for myself: ${mine.reason}` };
      const proposed = this.#term + 1;
      const pre = await this.#poll('failover.prevote', proposed, this.#isVoter ? 1 : 0);
      if (pre.maxTerm > this.#term) this.#adoptTerm(pre.maxTerm, 'pre-vote reply');
      if (pre.granted < this.#majority) return { ok: false, reason: `pre-vote: ${pre.granted}/${this.#majority} needed (${pre.refusals.join('; ')})` };
      if (this.#role !== 'standby' || this.#term >= proposed) return { ok: false, reason: 'state changed during pre-vote' };
      const roundStart = this.#now();
      this.#term = proposed;
      this.#votedFor = this.#self;
      this.#persist();
      this.#setRole('candidate', `standing for term ${proposed}${handover ? ' (switchover)' : ''}`);
      if (this.#isVoter) this.#voterLease = { holder: this.#self, until: voterLeaseEnd(roundStart, this.#svc.leaseMs) };
      const vote = await this.#poll('failover.vote', proposed, this.#isVoter ? 1 : 0);
      if (vote.maxTerm > this.#term) this.#adoptTerm(vote.maxTerm, 'vote reply');
      if ((this.#role as Role) !== 'candidate' || this.#term !== proposed) return { ok: false, reason: 'lost the election (newer term or other master)' };
      if (vote.granted < this.#majority) {
        this.#setRole('standby', `election for term ${proposed} failed`);
        return { ok: false, reason: `votes: ${vote.granted}/${this.#majority} needed (${vote.refusals.join('; ')})` };
      }
      if (!this.#becomeMaster(roundStart, handover)) return { ok: false, reason: 'won too late: the lease had already run out' };
      return { ok: true, reason: `elected in term ${proposed} with ${vote.granted} votes` };
    } finally {
      this.#campaigning = false;
    }
  }

  /** Ask every other voter; resolves as soon as a majority granted, or when all answered/failed. */
  #poll(method: 'failover.prevote' | 'failover.vote', term: number, selfGrants: number): Promise<PollResult> {
    const res: PollResult = { granted: selfGrants, maxTerm: this.#term, refusals: [] };
    const peers = this.#svc.voters.filter((v) => v !== this.#self);
    if (res.granted >= this.#majority || peers.length === 0) return Promise.resolve(res);
    return new Promise((resolve) => {
      let left = peers.length;
      const done = (): void => {
        left--;
        if (res.granted >= this.#majority || left === 0) resolve(res);
      };
      for (const p of peers) {
        this.#o.transport.call(p, method, { pool: this.#o.pool, service: this.#svc.name, term, candidate: this.#self }, this.#svc.heartbeatMs)
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

  #becomeMaster(roundStart: number, handover: boolean): boolean {
    const now = this.#now();
    const end = masterLeaseEnd(roundStart, this.#svc.leaseMs);
    if (now >= end) {
      this.#setRole('standby', 'election won after the lease window');
      return false;
    }
    this.#masterTerm = this.#term;
    this.#leaseEnd = end;
    this.#electedByHandover = handover;
    this.#betterSince.clear();
    if (this.#knownMaster !== null && this.#knownMaster !== this.#self) this.#previousMaster = this.#knownMaster;
    this.#knownMaster = this.#self;
    this.#lastMaster = this.#self;
    this.#persist('master');
    this.#o.trace?.({ kind: 'master', node: this.#self, service: this.#svc.name, term: this.#masterTerm, at: now, until: end });
    this.#o.history?.append('master', { pool: this.#o.pool, service: this.#svc.name, node: this.#self, term: this.#masterTerm });
    this.#setRole('master', `elected in term ${this.#term}`);
    this.#armLeaseTimer();
    const term = this.#masterTerm;
    void this.#runner.enqueue('standby_to_master', this.#vars({ master: this.#self, previous: this.#previousMaster }), () => this.isMasterNow() && this.#masterTerm === term)
      .then((r) => this.#afterPromotion(r, term));
    this.#heartbeat();
    this.#scheduleTick(this.#svc.heartbeatMs);
    return true;
  }

  #afterPromotion(r: TransitionResult, term: number): void {
    if (r.ok || this.#role !== 'master' || this.#masterTerm !== term) return;
    // standby_to_master failed: give the role up and stay out of elections for a while, so that
    // another member gets it instead of this one failing again.
    this.#backoffUntil = this.#now() + 3 * this.#svc.leaseMs;
    this.#demote('standby', `standby_to_master failed: ${r.stopped ?? 'action failed'}`);
  }

  // ------------------------------------------------------------------------------------------
  // Master side.

  #heartbeat(release?: string): Promise<void> {
    const start = this.#now();
    const term = this.#term;
    let acks = 0;
    if (this.#isVoter) {
      this.#voterLease = { holder: release ?? this.#self, until: voterLeaseEnd(start, this.#svc.leaseMs) };
      acks = 1;
    }
    if (release === undefined && acks >= this.#majority) this.#extend(term, start);
    const body = { pool: this.#o.pool, service: this.#svc.name, term, master: this.#self, ...(release !== undefined ? { release } : {}) };
    const calls = this.#peers().map((p) =>
      this.#o.transport.call(p, 'failover.heartbeat', body, this.#svc.heartbeatMs).then((raw) => {
        const r = parseHeartbeatReply(raw);
        if (r.term > this.#term) { this.#adoptTerm(r.term, `heartbeat reply from ${p}`); return; }
        if (r.ack && r.term === term && this.#svc.voters.includes(p)) {
          acks++;
          if (release === undefined && acks >= this.#majority) this.#extend(term, start);
        }
      }, () => { /* unreachable peer: the lease simply is not renewed by it */ }));
    return Promise.all(calls).then(() => undefined);
  }

  #extend(term: number, roundStart: number): void {
    if (this.#role !== 'master' || this.#masterTerm !== term || this.#handingOver) return;
    const end = masterLeaseEnd(roundStart, this.#svc.leaseMs);
    if (end <= this.#leaseEnd) return;
    this.#leaseEnd = end;
    this.#o.trace?.({ kind: 'lease', node: this.#self, service: this.#svc.name, term, at: this.#now(), until: end });
    this.#armLeaseTimer();
  }

  #armLeaseTimer(): void {
    if (this.#leaseTimer !== null) this.#o.clock.clearTimer(this.#leaseTimer);
    const term = this.#masterTerm;
    this.#leaseTimer = this.#o.clock.setTimer(Math.max(0, this.#leaseEnd - this.#now()), () => {
      this.#leaseTimer = null;
      if (this.#role === 'master' && this.#masterTerm === term && !this.isMasterNow()) {
        this.#demote('standby', 'lease expired: no majority acknowledged the heartbeats in time');
      }
    });
  }

  #demote(to: 'standby' | 'fault', reason: string, successor: string | null = null): void {
    if (this.#role !== 'master') return;
    const now = this.#now();
    this.#o.trace?.({ kind: 'demote', node: this.#self, service: this.#svc.name, term: this.#masterTerm, at: now, reason });
    this.#o.history?.append('demote', { pool: this.#o.pool, service: this.#svc.name, node: this.#self, term: this.#masterTerm, reason });
    this.#leaseEnd = Number.NEGATIVE_INFINITY;
    if (this.#leaseTimer !== null) { this.#o.clock.clearTimer(this.#leaseTimer); this.#leaseTimer = null; }
    this.#previousMaster = this.#self;
    this.#knownMaster = null;
    this.#persist('other');
    this.#setRole(to, reason);
    void this.#runner.enqueue(to === 'fault' ? 'to_fault' : 'master_to_standby', this.#vars({ master: successor ?? '', previous: this.#self }));
  }

  #preemptCheck(now: number): void {
    if (this.#svc.preempt.mode === 'nopreempt' || this.#electedByHandover || this.#handingOver) return;
    const mine = priorityOf(this.#svc, this.#self);
    const better = rankCandidates(this.#svc, this.#members()).filter((n) => n !== this.#self && priorityOf(this.#svc, n) > mine);
    for (const n of this.#betterSince.keys()) if (!better.includes(n)) this.#betterSince.delete(n);
    const best = better[0];
    if (best === undefined) return;
    const since = this.#betterSince.get(best) ?? now;
    this.#betterSince.set(best, since);
    const wait = this.#svc.preempt.mode === 'after' ? this.#svc.preempt.afterMs : 0;
    if (now - since < wait) return;
    this.#o.logger.info({ service: this.#svc.name, best }, `failover: ${best} has a higher priority: handing over (preempt)`);
    void this.switchTo(best);
  }

  /**
   * Planned switchover. On the master: run master_to_standby first, tell voters to hold their
   * vote for the target (release), then ask the target to stand now. Elsewhere: forwarded to the
   * master this node knows of.
   */
  async switchTo(target: string): Promise<SwitchReply> {
    const fail = (detail: string): SwitchReply => ({ ok: false, master: this.#knownMaster, term: this.#term, detail });
    if (!this.#started || this.#role === 'stopped') return fail('service not running');
    if (this.#role !== 'master') {
      const m = this.#knownMaster;
      if (m === null || m === this.#self) return fail('no master is known: nothing to switch over');
      try {
        return parseSwitchReply(await this.#o.transport.call(m, 'failover.switch', { pool: this.#o.pool, service: this.#svc.name, target }, 4 * this.#svc.leaseMs));
      } catch (e) {
        return fail(`could not reach the master ${m}: ${(e as Error).message}`);
      }
    }
    if (target === this.#self) return { ok: true, master: this.#self, term: this.#term, detail: `${target} is already master` };
    const why = whyIneligible(this.#svc, this.#members().find((m) => m.name === target));
    if (why !== null) return fail(`${target} ${why}`);
    if (this.#handingOver) return fail('a switchover is already in progress');
    this.#handingOver = true;
    try {
      const term = this.#term;
      const now = this.#now();
      // From here this node votes only for the target (and does not stand itself).
      if (this.#isVoter) this.#voterLease = { holder: target, until: voterLeaseEnd(now, this.#svc.leaseMs) };
      this.#demote('standby', `switchover to ${target}`, target);
      await this.#runner.idle(); // master_to_standby has run before the target is elected
      if (this.#term !== term) return fail(`term changed to ${this.#term} during the switchover`);
      await this.#heartbeat(target);
      const r = parseTimeoutNowReply(await this.#o.transport.call(target, 'failover.timeout_now', { pool: this.#o.pool, service: this.#svc.name, term }, 4 * this.#svc.leaseMs));
      return { ok: r.elected, master: r.elected ? target : null, term: r.term, detail: r.elected ? `${target} is master in term ${r.term}` : `${target} not elected: ${r.reason}` };
    } catch (e) {
      return fail(`switchover to ${target} failed: ${(e as Error).message}`);
    } finally {
      this.#handingOver = false;
    }
  }

  // ------------------------------------------------------------------------------------------
  // The periodic tick.

  #scheduleTick(ms: number): void {
    if (this.#tickTimer !== null) this.#o.clock.clearTimer(this.#tickTimer);
    this.#tickTimer = this.#o.clock.setTimer(ms, () => {
      this.#tickTimer = null;
      this.#tick();
    });
  }

  #tick(): void {
    if (this.#role === 'stopped') return;
    const now = this.#now();
    this.#observeHealth(false);
    switch (this.#role) {
      case 'master':
        if (!this.isMasterNow()) this.#demote('standby', 'lease expired: no majority acknowledged the heartbeats in time');
        else if (!this.#handingOver) {
          void this.#heartbeat();
          this.#preemptCheck(now);
        }
        break;
      case 'standby':
        if (now >= this.#backoffUntil && !this.#handingOver) void this.#campaign(false);
        break;
      default:
        break;
    }
    // Standbys tick with jitter so that equally placed candidates do not collide every time.
    this.#scheduleTick(this.#role === 'master' ? this.#svc.heartbeatMs : this.#svc.heartbeatMs * (0.75 + 0.5 * this.#random()));
  }

  /** health_changed for every member whose state changed; fault in/out for this node. */
  #observeHealth(initial: boolean): void {
    if (this.#role === 'witness') return;
    const members = this.#members();
    const state = (m: PoolMember): string => (!m.alive ? 'down' : m.maintenance ? 'maintenance' : m.healthy ? 'ok' : 'unhealthy');
    const seen = new Set<string>();
    for (const m of members) {
      seen.add(m.name);
      const s = state(m);
      const before = this.#health.get(m.name);
      this.#health.set(m.name, s);
      if (!initial && before !== s) {
        void this.#runner.enqueue('health_changed', this.#vars({ master: this.#knownMaster ?? '', previous: this.#previousMaster, member: m.name, health: s }));
      }
    }
    for (const n of [...this.#health.keys()]) if (!seen.has(n)) this.#health.delete(n);
    const me = members.find((m) => m.name === this.#self);
    const faulty = me === undefined || !me.alive || me.maintenance || !me.healthy;
    if (faulty && (this.#role === 'master' || this.#role === 'standby')) {
      const why = me === undefined ? 'not in the pool view' : state(me);
      if (this.#role === 'master') this.#demote('fault', `this node is ${why}`);
      else {
        this.#setRole('fault', `this node is ${why}`);
        void this.#runner.enqueue('to_fault', this.#vars({ master: this.#knownMaster ?? '', previous: this.#previousMaster }));
      }
    } else if (!faulty && this.#role === 'fault') {
      this.#setRole('standby', 'this node is healthy again');
    }
  }

  // ------------------------------------------------------------------------------------------
  // Helpers.

  #vars(v: { master: string; previous: string | null; member?: string; health?: string }): Vars {
    const ranked = rankCandidates(this.#svc, this.#members()).filter((n) => n !== v.master);
    const out = emptyVars();
    out.MASTER = v.master;
    out.SLAVE = ranked[0] ?? '';
    out.STANDBY = ranked.join(',');
    out.NODE = this.#self;
    out.POOL = this.#o.pool;
    out.SERVICE = this.#svc.name;
    out.TERM = String(this.#term);
    out.PREVIOUS_MASTER = v.previous ?? '';
    out.MEMBER = v.member ?? '';
    out.HEALTH = v.health ?? '';
    return out;
  }

  #setRole(to: Role, reason: string): void {
    const from = this.#role;
    if (from === to) return;
    this.#role = to;
    this.#lastChange = { at: this.#now(), from, to, reason };
    const data = { pool: this.#o.pool, service: this.#svc.name, node: this.#self, from, to, term: this.#term, reason };
    this.#o.logger.info(data, `failover ${this.#svc.name}: ${from} → ${to} (${reason})`);
    this.#o.history?.append('transition', data);
    this.#o.events?.publish('failover.transition', data);
  }

  #persist(lastRole?: 'master' | 'other'): void {
    if (lastRole !== undefined) this.#lastRoleSaved = lastRole;
    this.#o.persistence.save(this.#o.pool, this.#svc.name, { term: this.#term, votedFor: this.#votedFor, lastRole: this.#lastRoleSaved });
  }

  #members(): PoolMember[] {
    return this.#o.view.members();
  }

  /** Everyone who should hear heartbeats: voters (their acks count) and the other members. */
  #peers(): string[] {
    const s = new Set([...this.#svc.voters, ...this.#members().map((m) => m.name)]);
    s.delete(this.#self);
    return [...s].sort();
  }

  #now(): number {
    return this.#o.clock.now();
  }

  #clearTimers(): void {
    if (this.#tickTimer !== null) this.#o.clock.clearTimer(this.#tickTimer);
    if (this.#leaseTimer !== null) this.#o.clock.clearTimer(this.#leaseTimer);
    this.#tickTimer = null;
    this.#leaseTimer = null;
  }
}
