/**
 * What the two election backends of one service on one node have in common: the builtin election
 * (election.ts, FailoverService) and the etcd one (etcd-election.ts, EtcdFailoverService) extend
 * ServiceCore and add only how mastership is won, kept and handed over.
 *
 * ServiceCore owns:
 * - the role and its transitions (setRole: log, history, failover.transition event, lastChange);
 * - the persisted state (term, vote, last role) and the start-up cleanup of a node that died as
 *   master (master_to_standby);
 * - the master's claim: becomeMaster (trace, history, standby_to_master with the lease guard,
 *   back-off after a failed promotion), extend, the lease timer, demote (trace, history,
 *   master_to_standby or to_fault), isMasterNow(), fencingToken();
 * - health observation (health_changed for every member, fault in/out for this node), action
 *   variables (%MASTER% …) and the serial action runner;
 * - preemption, the common part of switchTo (forwarding to the master, target checks, one
 *   switchover at a time), stop (a master hands over first), the periodic tick with standby
 *   jitter, status().
 *
 * A backend implements onStart (its own start-up state), onTick (its part of each tick, with
 * masterTick for the master), handOver (the master's side of a switchover, after the checks) and
 * handle (RPC requests); it may override onDemoted and onStopped.
 *
 * Public interface: ServiceCore, ServiceCoreOptions, ServiceCoreParams, ServiceStatus, ClaimRecord.
 * Depends on: ./actions.ts, ./messages.ts, ./rules.ts, ./vars.ts, ./types.ts.
 */
import type { Logger } from 'pino';
import { ActionsRunner, type ActionExecutor, type TransitionResult } from './actions.ts';
import { parseSwitchReply, type AnyRequest, type SwitchReply } from './messages.ts';
import { priorityOf, rankCandidates, whyIneligible } from './rules.ts';
import type {
  Clock, FailoverEventSink, FailoverPersistence, HistorySink, PeerTransport, PersistedServiceState, PoolMember,
  PoolView, ResolvedService, Role, TimerHandle,
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

export interface ServiceCoreOptions {
  pool: string;
  node: string;
  service: ResolvedService;
  /** Election RPC (builtin); with etcd only to forward switchTo to the master (failover.switch). */
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

/** What differs between the backends in the shared logic. */
export interface ServiceCoreParams {
  /** The lease length: 3× is the back-off after a failed promotion, 4× a forwarded switchover's timeout. */
  leaseMs: number;
  /** Why a master demotes when its claim has run out. */
  leaseLostReason: string;
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

/** A member's health as %HEALTH% names it. */
function healthOf(m: PoolMember): string {
  return !m.alive ? 'down' : m.maintenance ? 'maintenance' : m.healthy ? 'ok' : 'unhealthy';
}

export abstract class ServiceCore {
  protected readonly pool: string;
  protected readonly self: string;
  protected readonly svc: ResolvedService;
  readonly #o: ServiceCoreOptions;
  readonly #p: ServiceCoreParams;
  readonly #runner: ActionsRunner;
  readonly #random: () => number;

  /** Highest term seen (etcd: the highest create revision of the master key). Persisted. */
  protected term = 0;
  /** Whom this node voted for in `term` (builtin election only; etcd leaves it null). Persisted. */
  protected votedFor: string | null = null;
  /** Local time until which this node claims mastership (−∞ when not master). */
  protected leaseEnd = Number.NEGATIVE_INFINITY;
  /** The term this node became master in: the fencing token. */
  protected masterTerm = -1;
  protected knownMaster: string | null = null;
  protected previousMaster: string | null = null;
  /** The last master seen (ranked first under nopreempt and { after }). */
  protected lastMaster: string | null = null;
  protected handingOver = false;
  /** No campaign before this local time (after a failed promotion). */
  protected backoffUntil = Number.NEGATIVE_INFINITY;

  #role: Role;
  #started = false;
  #electedByHandover = false;
  #tickTimer: TimerHandle | null = null;
  #leaseTimer: TimerHandle | null = null;
  readonly #betterSince = new Map<string, number>();
  readonly #health = new Map<string, string>();
  #lastChange: ServiceStatus['lastChange'] = null;
  #lastRoleSaved: 'master' | 'other' = 'other';

  constructor(opts: ServiceCoreOptions, params: ServiceCoreParams) {
    this.#o = opts;
    this.#p = params;
    this.pool = opts.pool;
    this.self = opts.node;
    this.svc = opts.service;
    this.#random = opts.random ?? Math.random;
    this.#runner = new ActionsRunner({
      pool: opts.pool, service: opts.service.name, node: opts.node, actions: opts.service.actions,
      logger: opts.logger, ...(opts.history ? { history: opts.history } : {}), ...(opts.events ? { events: opts.events } : {}),
      ...(opts.executor ? { executor: opts.executor } : {}),
    });
    this.#role = opts.service.witness === opts.node ? 'witness' : 'standby';
  }

  // ------------------------------------------------------------------------------------------
  // What the backend supplies.

  /** Start-up state of the backend: runs once, after the saved term was loaded, before the first save. */
  protected abstract onStart(now: number, saved: PersistedServiceState | undefined): void;
  /** The backend's part of each tick, after health was observed (the master calls masterTick). */
  protected abstract onTick(now: number): void;
  /**
   * The master's side of a switchover to an eligible target (handingOver is set): demote, then
   * let the target take over. A throw is reported as a failed switchover.
   */
  protected abstract handOver(target: string): Promise<SwitchReply>;
  /** Handles a validated request from `from` (authenticated by the facade). */
  abstract handle(req: AnyRequest, from: string): Promise<unknown>;

  /** A demotion queued its actions; `done` resolves once they ran. */
  protected onDemoted(_done: Promise<TransitionResult>): void {
    // Nothing by default.
  }

  /** Last step of stop(), after the queued actions ran. */
  protected async onStopped(): Promise<void> {
    // Nothing by default.
  }

  // ------------------------------------------------------------------------------------------
  // Public surface (ServiceElection in failover.ts).

  get name(): string {
    return this.svc.name;
  }

  start(): void {
    if (this.#started) return;
    this.#started = true;
    const now = this.now();
    const saved = this.#o.persistence.load(this.pool, this.svc.name);
    if (saved !== undefined) this.term = saved.term;
    this.onStart(now, saved);
    this.#lastRoleSaved = saved?.lastRole ?? 'other';
    if (saved?.lastRole === 'master') {
      this.#o.logger.warn({ service: this.svc.name, term: saved.term }, 'failover: this node was master when it stopped; running master_to_standby to clean up');
      // 'master' stays on disk until the cleanup ran: a crash in between repeats it on next start.
      void this.#runner.enqueue('master_to_standby', this.#vars({ master: '', previous: this.self }))
        .then(() => { if (this.#role !== 'master') this.persist('other'); });
    }
    this.persist();
    this.#observeHealth(true);
    this.scheduleTick(this.svc.heartbeatMs * this.#random());
  }

  /** Stops timers. A master first hands over to the best other member (or just demotes). */
  async stop(): Promise<void> {
    if (!this.#running()) return;
    if (this.#role === 'master') {
      const next = rankCandidates(this.svc, this.members()).find((n) => n !== this.self);
      const r = next !== undefined ? await this.switchTo(next) : null;
      if (r === null || !r.ok) this.demote('standby', 'stopping');
    }
    this.#clearTimers();
    this.setRole('stopped', 'stopped');
    await this.#runner.idle();
    await this.onStopped();
  }

  /** Master right now: role master and the local lease deadline (re-read from the clock) not passed. */
  isMasterNow(): boolean {
    return this.#role === 'master' && this.now() < this.leaseEnd;
  }

  /** The term while master (the fencing token to hand to resources), else null. */
  fencingToken(): number | null {
    return this.isMasterNow() ? this.masterTerm : null;
  }

  /** Resolves when queued actions have run. */
  idle(): Promise<void> {
    return this.#runner.idle();
  }

  status(): ServiceStatus {
    const master = this.isMasterNow();
    return {
      pool: this.pool,
      service: this.svc.name,
      node: this.self,
      role: this.#role,
      term: this.term,
      master: master ? this.self : this.knownMaster,
      isMaster: master,
      leaseRemainingMs: master ? Math.max(0, this.leaseEnd - this.now()) : 0,
      votedFor: this.votedFor,
      voters: [...this.svc.voters],
      witness: this.svc.witness,
      lastChange: this.#lastChange,
      actionsPending: this.#runner.pending,
    };
  }

  /**
   * Planned switchover. On the master: checks the target, then the backend hands over (handOver).
   * Elsewhere: forwarded to the master this node knows of.
   */
  async switchTo(target: string): Promise<SwitchReply> {
    if (!this.#running()) return this.switchFailed('service not running');
    if (this.#role !== 'master') {
      const m = this.knownMaster;
      if (m === null || m === this.self) return this.switchFailed('no master is known: nothing to switch over');
      try {
        return parseSwitchReply(await this.#o.transport.call(m, 'failover.switch', { pool: this.pool, service: this.svc.name, target }, 4 * this.#p.leaseMs));
      } catch (e) {
        return this.switchFailed(`could not reach the master ${m}: ${(e as Error).message}`);
      }
    }
    if (target === this.self) return { ok: true, master: this.self, term: this.masterTerm, detail: `${target} is already master` };
    const why = whyIneligible(this.svc, this.members().find((m) => m.name === target));
    if (why !== null) return this.switchFailed(`${target} ${why}`);
    if (this.handingOver) return this.switchFailed('a switchover is already in progress');
    this.handingOver = true;
    try {
      return await this.handOver(target);
    } catch (e) {
      return this.switchFailed(`switchover to ${target} failed: ${(e as Error).message}`);
    } finally {
      this.handingOver = false;
    }
  }

  // ------------------------------------------------------------------------------------------
  // For the backends.

  protected get role(): Role {
    return this.#role;
  }

  /** Throws unless started and not stopped (requests to a service that does not run). */
  protected assertRunning(): void {
    if (!this.#running()) throw new Error(`failover service ${this.svc.name} is not running on ${this.self}`);
  }

  protected switchFailed(detail: string): SwitchReply {
    return { ok: false, master: this.knownMaster, term: this.term, detail };
  }

  protected setRole(to: Role, reason: string): void {
    const from = this.#role;
    if (from === to) return;
    this.#role = to;
    this.#lastChange = { at: this.now(), from, to, reason };
    const data = { pool: this.pool, service: this.svc.name, node: this.self, from, to, term: this.term, reason };
    this.#o.logger.info(data, `failover ${this.svc.name}: ${from} → ${to} (${reason})`);
    this.#o.history?.append('transition', data);
    this.#o.events?.publish('failover.transition', data);
  }

  /** Saves term and vote (and the last role, when given) durably. */
  protected persist(lastRole?: 'master' | 'other'): void {
    if (lastRole !== undefined) this.#lastRoleSaved = lastRole;
    this.#o.persistence.save(this.pool, this.svc.name, { term: this.term, votedFor: this.votedFor, lastRole: this.#lastRoleSaved });
  }

  /**
   * Claims mastership in `term` from `at` until `until` (local clock) and runs standby_to_master
   * (guarded by the claim). `handover`: elected by a switchover (then it does not preempt back).
   * The caller schedules the next tick.
   */
  protected becomeMaster(term: number, at: number, until: number, handover: boolean, reason: string, historyExtra: Record<string, unknown> = {}): void {
    this.masterTerm = term;
    this.leaseEnd = until;
    this.#electedByHandover = handover;
    this.#betterSince.clear();
    if (this.knownMaster !== null && this.knownMaster !== this.self) this.previousMaster = this.knownMaster;
    this.knownMaster = this.self;
    this.lastMaster = this.self;
    this.persist('master');
    this.#o.trace?.({ kind: 'master', node: this.self, service: this.svc.name, term, at, until });
    this.#o.history?.append('master', { pool: this.pool, service: this.svc.name, node: this.self, term, ...historyExtra });
    this.setRole('master', reason);
    this.#armLeaseTimer();
    void this.#runner.enqueue('standby_to_master', this.#vars({ master: this.self, previous: this.previousMaster }), () => this.isMasterNow() && this.masterTerm === term)
      .then((r) => this.#afterPromotion(r, term));
  }

  /** Moves the master's claim in `term` on to `end` (never back). */
  protected extend(term: number, end: number): void {
    if (this.#role !== 'master' || this.masterTerm !== term || this.handingOver) return;
    if (end <= this.leaseEnd) return;
    this.leaseEnd = end;
    this.#o.trace?.({ kind: 'lease', node: this.self, service: this.svc.name, term, at: this.now(), until: end });
    this.#armLeaseTimer();
  }

  /**
   * Stops claiming mastership now and queues master_to_standby (or to_fault). `successor`: the
   * master after this one, when known (%MASTER%).
   */
  protected demote(to: 'standby' | 'fault', reason: string, successor: string | null = null): void {
    if (this.#role !== 'master') return;
    const now = this.now();
    this.#o.trace?.({ kind: 'demote', node: this.self, service: this.svc.name, term: this.masterTerm, at: now, reason });
    this.#o.history?.append('demote', { pool: this.pool, service: this.svc.name, node: this.self, term: this.masterTerm, reason });
    this.leaseEnd = Number.NEGATIVE_INFINITY;
    if (this.#leaseTimer !== null) { this.#o.clock.clearTimer(this.#leaseTimer); this.#leaseTimer = null; }
    this.previousMaster = this.self;
    if (this.knownMaster === this.self) this.knownMaster = null;
    this.persist('other');
    this.setRole(to, reason);
    this.onDemoted(this.#runner.enqueue(to === 'fault' ? 'to_fault' : 'master_to_standby', this.#vars({ master: successor ?? '', previous: this.self })));
  }

  /** The master's tick: demote if the claim ran out, else renew it and check preemption. */
  protected masterTick(now: number, renew: () => void): void {
    if (!this.isMasterNow()) this.demote('standby', this.#p.leaseLostReason);
    else if (!this.handingOver) {
      renew();
      this.#preemptCheck(now);
    }
  }

  /** A backend may wake a standby before its regular tick (ms from now), e.g. when a lease it waits for ends. */
  protected earlyWake(_now: number): number | null {
    return null;
  }

  protected scheduleTick(ms: number): void {
    if (this.#tickTimer !== null) this.#o.clock.clearTimer(this.#tickTimer);
    this.#tickTimer = this.#o.clock.setTimer(ms, () => {
      this.#tickTimer = null;
      this.#tick();
    });
  }

  protected members(): PoolMember[] {
    return this.#o.view.members();
  }

  protected now(): number {
    return this.#o.clock.now();
  }

  // ------------------------------------------------------------------------------------------
  // Internals.

  #running(): boolean {
    return this.#started && this.#role !== 'stopped';
  }

  #tick(): void {
    if (this.#role === 'stopped') return;
    const now = this.now();
    this.#observeHealth(false);
    this.onTick(now);
    // Standbys tick with jitter so that equally placed candidates do not collide every time.
    const regular = this.#role === 'master' ? this.svc.heartbeatMs : this.svc.heartbeatMs * (0.75 + 0.5 * this.#random());
    const early = this.#role === 'standby' ? this.earlyWake(now) : null;
    this.scheduleTick(early !== null ? Math.min(regular, early) : regular);
  }

  #afterPromotion(r: TransitionResult, term: number): void {
    if (r.ok || this.#role !== 'master' || this.masterTerm !== term) return;
    // standby_to_master failed: give the role up and stay out of elections for a while, so that
    // another member gets it instead of this one failing again.
    this.backoffUntil = this.now() + 3 * this.#p.leaseMs;
    this.demote('standby', `standby_to_master failed: ${r.stopped ?? 'action failed'}`);
  }

  #armLeaseTimer(): void {
    if (this.#leaseTimer !== null) this.#o.clock.clearTimer(this.#leaseTimer);
    const term = this.masterTerm;
    this.#leaseTimer = this.#o.clock.setTimer(Math.max(0, this.leaseEnd - this.now()), () => {
      this.#leaseTimer = null;
      if (this.#role === 'master' && this.masterTerm === term && !this.isMasterNow()) this.demote('standby', this.#p.leaseLostReason);
    });
  }

  #preemptCheck(now: number): void {
    if (this.svc.preempt.mode === 'nopreempt' || this.#electedByHandover || this.handingOver) return;
    const mine = priorityOf(this.svc, this.self);
    const better = rankCandidates(this.svc, this.members()).filter((n) => n !== this.self && priorityOf(this.svc, n) > mine);
    for (const n of this.#betterSince.keys()) if (!better.includes(n)) this.#betterSince.delete(n);
    const best = better[0];
    if (best === undefined) return;
    const since = this.#betterSince.get(best) ?? now;
    this.#betterSince.set(best, since);
    const wait = this.svc.preempt.mode === 'after' ? this.svc.preempt.afterMs : 0;
    if (now - since < wait) return;
    this.#o.logger.info({ service: this.svc.name, best }, `failover: ${best} has a higher priority: handing over (preempt)`);
    void this.switchTo(best);
  }

  /** health_changed for every member whose state changed; fault in/out for this node. */
  #observeHealth(initial: boolean): void {
    if (this.#role === 'witness') return;
    const members = this.members();
    const seen = new Set<string>();
    for (const m of members) {
      seen.add(m.name);
      const s = healthOf(m);
      const before = this.#health.get(m.name);
      this.#health.set(m.name, s);
      if (!initial && before !== s) {
        void this.#runner.enqueue('health_changed', this.#vars({ master: this.knownMaster ?? '', previous: this.previousMaster, member: m.name, health: s }));
      }
    }
    for (const n of [...this.#health.keys()]) if (!seen.has(n)) this.#health.delete(n);
    const me = members.find((m) => m.name === this.self);
    const faulty = me === undefined || !me.alive || me.maintenance || !me.healthy;
    if (faulty && (this.#role === 'master' || this.#role === 'standby')) {
      const why = me === undefined ? 'not in the pool view' : healthOf(me);
      if (this.#role === 'master') this.demote('fault', `this node is ${why}`);
      else {
        this.setRole('fault', `this node is ${why}`);
        void this.#runner.enqueue('to_fault', this.#vars({ master: this.knownMaster ?? '', previous: this.previousMaster }));
      }
    } else if (!faulty && this.#role === 'fault') {
      this.setRole('standby', 'this node is healthy again');
    }
  }

  #vars(v: { master: string; previous: string | null; member?: string; health?: string }): Vars {
    const ranked = rankCandidates(this.svc, this.members()).filter((n) => n !== v.master);
    const out = emptyVars();
    out.MASTER = v.master;
    out.SLAVE = ranked[0] ?? '';
    out.STANDBY = ranked.join(',');
    out.NODE = this.self;
    out.POOL = this.pool;
    out.SERVICE = this.svc.name;
    // The master's own term while master (etcd: its key's revision, the fencing token).
    out.TERM = String(this.#role === 'master' ? this.masterTerm : this.term);
    out.PREVIOUS_MASTER = v.previous ?? '';
    out.MEMBER = v.member ?? '';
    out.HEALTH = v.health ?? '';
    return out;
  }

  #clearTimers(): void {
    if (this.#tickTimer !== null) this.#o.clock.clearTimer(this.#tickTimer);
    if (this.#leaseTimer !== null) this.#o.clock.clearTimer(this.#leaseTimer);
    this.#tickTimer = null;
    this.#leaseTimer = null;
  }
}
