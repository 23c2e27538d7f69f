/**
 * One service's election through etcd (backend `etcd`), with the same behaviour as seen by the
 * rest of the agent as the builtin FailoverService (election.ts): roles, status(), isMasterNow(),
 * fencingToken(), ordered actions on transitions, switchTo, stop. docs/failover.md "etcd
 * backend" explains it; in short:
 *
 * - the master holds the key `<prefix><pool>/<service>/master` (value: its node name), bound to
 *   an etcd lease of TTL T. Campaign = grant a lease, then one transaction "create the key if it
 *   does not exist" (etcd's election recipe). The key's create revision is the term and fencing
 *   token: etcd revisions only grow, so every new master has a larger one.
 * - only eligible members campaign (rules.ts: alive, healthy, not in maintenance, priority > 0),
 *   and only when it is their turn: the best-ranked at once, the k-th ranked once the key has been
 *   absent for k·T (so an unreachable better member does not stall the election).
 * - the master renews the lease every T/3. Local deadline = send time of the last keepalive that
 *   etcd acknowledged + min(T, granted TTL)·(1 − δ): etcd refreshed the lease after that send
 *   time, so the key cannot expire (and nobody else can create it) before the deadline ends,
 *   clock-rate drift within the bound of lease.ts included. At the deadline a timer demotes the
 *   master; isMasterNow() compares with the clock on every call, so a stalled process never acts
 *   on a stale claim. A keepalive answered "lease gone" demotes at once.
 * - a master that resigns (preemption, fault, stop, failed promotion) first demotes and runs its
 *   actions, then revokes its lease (deleting the key). A switchover deletes the key and writes
 *   `<…>/handover` = target (bound to a short fresh lease) in one transaction: only the target
 *   campaigns while that key lives; its campaign transaction deletes it.
 * - the key is watched (and also read every T/3, in case the watch is down) to learn the master.
 *   A master that sees its key deleted or replaced demotes at once.
 *
 * Public interface: EtcdFailoverService, EtcdFailoverServiceOptions, etcdKeys.
 * Depends on: ./etcd-client.ts, ./rules.ts, ./lease.ts, ./actions.ts, ./messages.ts, ./vars.ts,
 * ./election.ts (types), ./types.ts.
 */
import type { Logger } from 'pino';
import type { Watcher } from 'etcd3';
import { ActionsRunner, type ActionExecutor, type TransitionResult } from './actions.ts';
import type { ClaimRecord, ServiceStatus } from './election.ts';
import type { EtcdConnection, EtcdEvent, EtcdKv } from './etcd-client.ts';
import { DRIFT_MARGIN, masterLeaseEnd } from './lease.ts';
import { BadRequestError, parseSwitchReply, type AnyRequest, type SwitchReply } from './messages.ts';
import { priorityOf, rankCandidates, voteDecision, whyIneligible } from './rules.ts';
import type {
  Clock, EtcdBackendSettings, FailoverEventSink, FailoverPersistence, HistorySink, PeerTransport, PoolMember, PoolView,
  ResolvedService, Role, TimerHandle,
} from './types.ts';
import { emptyVars, type Vars } from './vars.ts';

export interface EtcdFailoverServiceOptions {
  pool: string;
  node: string;
  /** A service whose backend is etcd. */
  service: ResolvedService;
  /** Shared by the services of one Failover that use the same etcd settings. */
  etcd: EtcdConnection;
  /** Only to forward switchTo from a non-master to the master (failover.switch). */
  transport: PeerTransport;
  view: PoolView;
  clock: Clock;
  persistence: FailoverPersistence;
  logger: Logger;
  history?: HistorySink;
  events?: FailoverEventSink;
  executor?: ActionExecutor;
  trace?: (r: ClaimRecord) => void;
  random?: () => number;
}

/** The keys of one service: `<prefix><pool>/<service>/master` and `…/handover`. */
export function etcdKeys(prefix: string, pool: string, service: string): { base: string; master: string; handover: string } {
  const base = `${prefix}${pool}/${service}/`;
  return { base, master: `${base}master`, handover: `${base}handover` };
}

export class EtcdFailoverService {
  readonly #o: EtcdFailoverServiceOptions;
  readonly #svc: ResolvedService;
  readonly #self: string;
  readonly #runner: ActionsRunner;
  readonly #random: () => number;
  readonly #etcd: EtcdConnection;
  readonly #ttlMs: number;
  readonly #keys: { base: string; master: string; handover: string };

  #term = 0;
  #role: Role = 'standby';
  #leaseEnd = Number.NEGATIVE_INFINITY;
  #masterTerm = -1;
  #leaseId: string | null = null;
  #electedByHandover = false;
  #knownMaster: string | null = null;
  #previousMaster: string | null = null;
  #lastMaster: string | null = null;
  /** Observed keys (from the watch or a read) and the revision they are as of. */
  #masterKv: EtcdKv | null = null;
  #handoverKv: EtcdKv | null = null;
  #stateRev = 0;
  #stateKnown = false;
  /** Local time since which no master key is known (null while one is). */
  #noMasterSince: number | null = null;
  /** Leases this process granted (its own keys carry one of these). */
  readonly #myLeases = new Set<string>();
  /** Leases to revoke once etcd answers (a demoted master's, a lost campaign's). */
  readonly #toRevoke = new Set<string>();
  #watcher: Watcher | null = null;
  #watchStarting = false;
  #tickTimer: TimerHandle | null = null;
  #leaseTimer: TimerHandle | null = null;
  #keepaliveInFlight = false;
  #polling = false;
  #campaigning = false;
  #handingOver = false;
  #backoffUntil = Number.NEGATIVE_INFINITY;
  readonly #betterSince = new Map<string, number>();
  readonly #health = new Map<string, string>();
  #lastChange: ServiceStatus['lastChange'] = null;
  #started = false;
  #lastRoleSaved: 'master' | 'other' = 'other';
  #waiters: (() => void)[] = [];
  /** Revocations queued behind a demotion's actions (stop() waits for them). */
  #releasing: Promise<void> = Promise.resolve();
  readonly #staleDeleting = new Set<number>();

  constructor(opts: EtcdFailoverServiceOptions) {
    const b = opts.service.backend;
    if (b?.kind !== 'etcd') throw new Error(`failover service ${opts.service.name} does not use the etcd backend`);
    this.#o = opts;
    this.#svc = opts.service;
    this.#self = opts.node;
    this.#etcd = opts.etcd;
    this.#ttlMs = (b satisfies EtcdBackendSettings).leaseTtlMs;
    this.#keys = etcdKeys(b.prefix, opts.pool, opts.service.name);
    this.#random = opts.random ?? Math.random;
    this.#runner = new ActionsRunner({
      pool: opts.pool, service: opts.service.name, node: opts.node, actions: opts.service.actions,
      logger: opts.logger, ...(opts.history ? { history: opts.history } : {}), ...(opts.events ? { events: opts.events } : {}),
      ...(opts.executor ? { executor: opts.executor } : {}),
    });
  }

  get name(): string {
    return this.#svc.name;
  }

  start(): void {
    if (this.#started) return;
    this.#started = true;
    this.#noMasterSince = this.#now();
    const saved = this.#o.persistence.load(this.#o.pool, this.#svc.name);
    if (saved !== undefined) this.#term = saved.term;
    this.#lastRoleSaved = saved?.lastRole ?? 'other';
    if (saved?.lastRole === 'master') {
      this.#o.logger.warn({ service: this.#svc.name, term: saved.term }, 'failover: this node was master when it stopped; running master_to_standby to clean up');
      void this.#runner.enqueue('master_to_standby', this.#vars({ master: '', previous: this.#self }))
        .then(() => { if (this.#role !== 'master') this.#persist('other'); });
    }
    this.#persist();
    this.#observeHealth(true);
    this.#startWatch();
    this.#scheduleTick(this.#tickMs() * this.#random());
  }

  /** A master first hands over to the best other eligible member (or resigns); then stops. */
  async stop(): Promise<void> {
    if (!this.#started || this.#role === 'stopped') return;
    if (this.#role === 'master') {
      const next = rankCandidates(this.#svc, this.#members()).find((n) => n !== this.#self);
      const r = next !== undefined ? await this.switchTo(next) : null;
      if (r === null || !r.ok) this.#demote('standby', 'stopping');
    }
    this.#clearTimers();
    this.#setRole('stopped', 'stopped');
    const w = this.#watcher;
    this.#watcher = null;
    await this.#runner.idle();
    await this.#releasing;
    await Promise.all([
      w?.cancel().catch(() => undefined),
      ...[...this.#toRevoke].map((id) => this.#etcd.revoke(id, this.#ttlMs / 2).catch(() => undefined)),
    ]);
  }

  /** Master right now: role master and the local lease deadline (re-read from the clock) not passed. */
  isMasterNow(): boolean {
    return this.#role === 'master' && this.#now() < this.#leaseEnd;
  }

  /** The master key's create revision while master (the fencing token), else null. */
  fencingToken(): number | null {
    return this.isMasterNow() ? this.#masterTerm : null;
  }

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
      votedFor: null,
      voters: [],
      witness: null,
      lastChange: this.#lastChange,
      actionsPending: this.#runner.pending,
    };
  }

  /** Only failover.switch applies to an etcd-backed service (forwarded switchovers). */
  async handle(req: AnyRequest, _from: string): Promise<unknown> {
    if (!this.#started || this.#role === 'stopped') throw new Error(`failover service ${this.#svc.name} is not running on ${this.#self}`);
    if (req.method === 'failover.switch') return this.switchTo(req.body.target);
    throw new BadRequestError(`${req.method}: service ${this.#svc.name} is elected through etcd; builtin election messages do not apply`);
  }

  // ------------------------------------------------------------------------------------------
  // What etcd says.

  #startWatch(): void {
    if (this.#watcher !== null || this.#watchStarting || this.#role === 'stopped') return;
    this.#watchStarting = true;
    this.#etcd.watchPrefix(this.#keys.base, (e) => this.#onEvent(e)).then((w) => {
      if (this.#role === 'stopped') { void w.cancel().catch(() => undefined); return; }
      this.#watcher = w;
    }, (err: unknown) => {
      this.#o.logger.debug({ service: this.#svc.name, err }, 'failover etcd: watch not started (retrying on the next tick)');
    }).finally(() => { this.#watchStarting = false; });
  }

  #onEvent(e: EtcdEvent): void {
    if (this.#role === 'stopped') return;
    if (e.type === 'connected' || e.type === 'disconnected') {
      if (e.type === 'disconnected') this.#o.logger.debug({ service: this.#svc.name, error: e.error }, 'failover etcd: watch disconnected');
      return;
    }
    let master = this.#masterKv;
    let handover = this.#handoverKv;
    let revision = -1;
    for (const c of e.changes) {
      if (c.revision < this.#stateRev) continue;
      revision = Math.max(revision, c.revision);
      if (c.key === this.#keys.master) master = c.kv;
      else if (c.key === this.#keys.handover) handover = c.kv;
    }
    if (revision >= 0) this.#apply(revision, master, handover);
  }

  /** Reads both keys (when the watch is down this is how the state is learned). */
  async #poll(): Promise<boolean> {
    if (this.#polling) return false;
    this.#polling = true;
    try {
      const r = await this.#etcd.getPrefix(this.#keys.base, this.#ttlMs / 3);
      if (r.revision >= this.#stateRev) {
        this.#apply(r.revision, r.kvs.find((k) => k.key === this.#keys.master) ?? null, r.kvs.find((k) => k.key === this.#keys.handover) ?? null);
      }
      return true;
    } catch (err) {
      this.#o.logger.debug({ service: this.#svc.name, err }, 'failover etcd: cannot read the master key');
      return false;
    } finally {
      this.#polling = false;
    }
  }

  #apply(revision: number, master: EtcdKv | null, handover: EtcdKv | null): void {
    this.#stateRev = Math.max(this.#stateRev, revision);
    this.#stateKnown = true;
    this.#masterKv = master;
    this.#handoverKv = handover;
    if (master === null) {
      if (this.#knownMaster !== null) this.#previousMaster = this.#knownMaster;
      this.#knownMaster = null;
      this.#noMasterSince ??= this.#now();
    } else {
      if (master.createRevision > this.#term) { this.#term = master.createRevision; this.#persist(); }
      if (this.#knownMaster !== master.value) {
        if (this.#knownMaster !== null) this.#previousMaster = this.#knownMaster;
        this.#knownMaster = master.value;
      }
      this.#lastMaster = master.value;
      this.#noMasterSince = null;
      if (master.value === this.#self && !this.#myLeases.has(master.lease)) this.#staleOwnKey(master);
    }
    if (this.#role === 'master' && (master === null || master.createRevision !== this.#masterTerm)) {
      this.#demote('standby', master === null ? 'the master key was deleted in etcd' : `the master key now belongs to ${master.value} (revision ${master.createRevision})`);
    }
    const waiters = this.#waiters;
    this.#waiters = [];
    for (const w of waiters) w();
    // Deferred: the other events of the same watch response (same revision) are applied first.
    if (master === null && this.#role === 'standby') setImmediate(() => void this.#maybeCampaign());
  }

  /** A key naming this node that this process did not create: left by a previous run. */
  #staleOwnKey(kv: EtcdKv): void {
    if (this.#staleDeleting.has(kv.createRevision)) return;
    this.#staleDeleting.add(kv.createRevision);
    // Its holder (the previous process) is gone; delete it once the start-up cleanup has run.
    void this.#runner.idle().then(() => this.#etcd.deleteIfCreatedAt(this.#keys.master, kv.createRevision, this.#ttlMs / 2)).then((r) => {
      if (r.deleted) this.#o.logger.info({ service: this.#svc.name, revision: kv.createRevision }, 'failover etcd: deleted the master key left by a previous run of this node');
    }, () => undefined).finally(() => this.#staleDeleting.delete(kv.createRevision));
  }

  // ------------------------------------------------------------------------------------------
  // Campaign.

  /** Whether this node may campaign now: no (null), as the handover target, or in its turn. */
  #turn(): 'handover' | 'turn' | null {
    if (this.#handingOver || this.#role !== 'standby' || !this.#stateKnown || this.#masterKv !== null) return null;
    const now = this.#now();
    if (now < this.#backoffUntil) return null;
    const members = this.#members();
    const target = this.#handoverKv?.value ?? null;
    if (target !== null && whyIneligible(this.#svc, members.find((m) => m.name === target)) === null) {
      return target === this.#self ? 'handover' : null; // a switchover to an eligible target: its turn only
    }
    const d = voteDecision(this.#svc, members, this.#self, { now, lease: null, noMasterSince: this.#noMasterSince ?? now, lastMaster: this.#lastMaster });
    return d.grant ? 'turn' : null;
  }

  async #maybeCampaign(): Promise<void> {
    if (this.#campaigning || this.#turn() === null) return;
    await this.#campaign();
  }

  async #campaign(): Promise<void> {
    this.#campaigning = true;
    let leaseId: string | null = null;
    try {
      const start = this.#now();
      const lease = await this.#etcd.grant(this.#ttlMs, this.#ttlMs / 3);
      leaseId = lease.id;
      this.#myLeases.add(lease.id);
      const ttl = Math.min(this.#ttlMs, lease.ttlMs);
      // etcd started the lease's TTL after `start`: the key cannot expire before start + ttl.
      const deadline = masterLeaseEnd(start, ttl, DRIFT_MARGIN);
      const turn = this.#turn(); // again: the state may have changed while the lease was granted
      if (turn === null) return;
      const handover = turn === 'handover';
      const r = await this.#etcd.createIfAbsent(this.#keys.master, this.#self, lease.id, handover ? [this.#keys.handover] : [], Math.max(1, deadline - this.#now()));
      if (!r.created) {
        if (r.current !== null && r.current.createRevision > this.#term) this.#term = r.current.createRevision;
        return;
      }
      const now = this.#now();
      if ((this.#role as Role) !== 'standby' || now >= deadline) {
        // Won, but this node may no longer be master (fault, stopped) or the claim is already
        // stale: give the key back at once.
        this.#o.logger.warn({ service: this.#svc.name, role: this.#role }, 'failover etcd: created the master key too late or while not standby; giving it back');
        await this.#etcd.deleteIfCreatedAt(this.#keys.master, r.revision, this.#ttlMs / 2).catch(() => undefined);
        return;
      }
      leaseId = null; // kept: it is the master's lease now
      this.#becomeMaster(r.revision, lease.id, deadline, now, handover);
    } catch (err) {
      this.#o.logger.debug({ service: this.#svc.name, err }, 'failover etcd: campaign failed');
    } finally {
      this.#campaigning = false;
      if (leaseId !== null) void this.#revokeLater(leaseId);
    }
  }

  #becomeMaster(revision: number, leaseId: string, deadline: number, now: number, handover: boolean): void {
    // What etcd holds now (a read or watch event older than this revision must not undo it).
    this.#stateRev = Math.max(this.#stateRev, revision);
    this.#masterKv = { key: this.#keys.master, value: this.#self, createRevision: revision, modRevision: revision, lease: leaseId };
    if (handover) this.#handoverKv = null;
    this.#masterTerm = revision;
    this.#term = Math.max(this.#term, revision);
    this.#leaseId = leaseId;
    this.#leaseEnd = deadline;
    this.#electedByHandover = handover;
    this.#betterSince.clear();
    if (this.#knownMaster !== null && this.#knownMaster !== this.#self) this.#previousMaster = this.#knownMaster;
    this.#knownMaster = this.#self;
    this.#lastMaster = this.#self;
    this.#noMasterSince = null;
    this.#persist('master');
    this.#o.trace?.({ kind: 'master', node: this.#self, service: this.#svc.name, term: revision, at: now, until: deadline });
    this.#o.history?.append('master', { pool: this.#o.pool, service: this.#svc.name, node: this.#self, term: revision, backend: 'etcd' });
    this.#setRole('master', `created the master key in etcd (revision ${revision})`);
    this.#armLeaseTimer();
    void this.#runner.enqueue('standby_to_master', this.#vars({ master: this.#self, previous: this.#previousMaster }), () => this.isMasterNow() && this.#masterTerm === revision)
      .then((r) => this.#afterPromotion(r, revision));
    this.#scheduleTick(this.#tickMs());
  }

  #afterPromotion(r: TransitionResult, term: number): void {
    if (r.ok || this.#role !== 'master' || this.#masterTerm !== term) return;
    this.#backoffUntil = this.#now() + 3 * this.#ttlMs;
    this.#demote('standby', `standby_to_master failed: ${r.stopped ?? 'action failed'}`);
  }

  // ------------------------------------------------------------------------------------------
  // Master side.

  async #keepalive(): Promise<void> {
    if (this.#role !== 'master' || this.#keepaliveInFlight || this.#leaseId === null) return;
    const sent = this.#now();
    const left = this.#leaseEnd - sent;
    if (left <= 0) return;
    const term = this.#masterTerm;
    this.#keepaliveInFlight = true;
    try {
      const ttl = await this.#etcd.keepAliveOnce(this.#leaseId, left);
      if (this.#role !== 'master' || this.#masterTerm !== term) return;
      if (ttl <= 0) { this.#demote('standby', 'etcd says the master lease is gone (expired or revoked)'); return; }
      this.#extend(term, masterLeaseEnd(sent, Math.min(ttl, this.#ttlMs), DRIFT_MARGIN));
    } catch (err) {
      this.#o.logger.debug({ service: this.#svc.name, err }, 'failover etcd: keepalive failed');
    } finally {
      this.#keepaliveInFlight = false;
    }
  }

  #extend(term: number, end: number): void {
    if (this.#role !== 'master' || this.#masterTerm !== term || this.#handingOver) return;
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
        this.#demote('standby', 'lease lost: etcd did not acknowledge a keepalive in time');
      }
    });
  }

  /**
   * Stops claiming mastership now and queues master_to_standby (or to_fault). The lease is
   * revoked once those actions ran (so the next master starts after the cleanup, or when the
   * lease expires, whichever comes first), unless `keepLease` (switchover does it itself).
   */
  #demote(to: 'standby' | 'fault', reason: string, successor: string | null = null, keepLease = false): void {
    if (this.#role !== 'master') return;
    const now = this.#now();
    this.#o.trace?.({ kind: 'demote', node: this.#self, service: this.#svc.name, term: this.#masterTerm, at: now, reason });
    this.#o.history?.append('demote', { pool: this.#o.pool, service: this.#svc.name, node: this.#self, term: this.#masterTerm, reason });
    this.#leaseEnd = Number.NEGATIVE_INFINITY;
    if (this.#leaseTimer !== null) { this.#o.clock.clearTimer(this.#leaseTimer); this.#leaseTimer = null; }
    this.#previousMaster = this.#self;
    if (this.#knownMaster === this.#self) this.#knownMaster = null;
    this.#persist('other');
    this.#setRole(to, reason);
    const done = this.#runner.enqueue(to === 'fault' ? 'to_fault' : 'master_to_standby', this.#vars({ master: successor ?? '', previous: this.#self }));
    const lease = this.#leaseId;
    this.#leaseId = null;
    if (lease !== null && !keepLease) this.#releasing = this.#releasing.then(() => done).then(() => this.#revokeLater(lease));
  }

  /** Revokes a lease now, or on a later tick if etcd does not answer. */
  #revokeLater(id: string): Promise<void> {
    this.#toRevoke.add(id);
    return this.#etcd.revoke(id, this.#ttlMs / 2).then(() => { this.#toRevoke.delete(id); this.#myLeases.delete(id); }, () => undefined);
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
   * Planned switchover. On the master: demote and run master_to_standby, then in one etcd
   * transaction delete the master key (if still ours) and write the handover key naming the
   * target; wait for the target to take the key. Elsewhere: forwarded to the known master.
   */
  async switchTo(target: string): Promise<SwitchReply> {
    const fail = (detail: string): SwitchReply => ({ ok: false, master: this.#knownMaster, term: this.#term, detail });
    if (!this.#started || this.#role === 'stopped') return fail('service not running');
    if (this.#role !== 'master') {
      const m = this.#knownMaster;
      if (m === null || m === this.#self) return fail('no master is known: nothing to switch over');
      try {
        return parseSwitchReply(await this.#o.transport.call(m, 'failover.switch', { pool: this.#o.pool, service: this.#svc.name, target }, 4 * this.#ttlMs));
      } catch (e) {
        return fail(`could not reach the master ${m}: ${(e as Error).message}`);
      }
    }
    if (target === this.#self) return { ok: true, master: this.#self, term: this.#masterTerm, detail: `${target} is already master` };
    const why = whyIneligible(this.#svc, this.#members().find((m) => m.name === target));
    if (why !== null) return fail(`${target} ${why}`);
    if (this.#handingOver) return fail('a switchover is already in progress');
    this.#handingOver = true;
    const rev = this.#masterTerm;
    const lease = this.#leaseId;
    try {
      this.#demote('standby', `switchover to ${target}`, target, true);
      await this.#runner.idle(); // master_to_standby has run before the target can be elected
      const h = await this.#etcd.grant(this.#ttlMs, this.#ttlMs / 2);
      this.#myLeases.add(h.id);
      const r = await this.#etcd.deleteIfCreatedAt(this.#keys.master, rev, this.#ttlMs / 2, { key: this.#keys.handover, value: target, leaseId: h.id });
      if (!r.deleted) return fail(`the master key of revision ${rev} was already gone (lease expired?): no handover`);
      // Until the target (or anyone) took the key, or the handover key expired unused.
      const elected = await this.#waitFor(() => this.#stateRev >= r.revision && (this.#masterKv !== null || this.#handoverKv === null), 3 * this.#ttlMs);
      const m = this.#masterKv;
      if (elected && m !== null && m.value === target && m.createRevision > rev) return { ok: true, master: target, term: m.createRevision, detail: `${target} is master in term ${m.createRevision}` };
      return fail(m === null ? `${target} did not take over in time` : `${m.value} took over instead of ${target}`);
    } catch (e) {
      return fail(`switchover to ${target} failed: ${(e as Error).message}`);
    } finally {
      this.#handingOver = false;
      if (lease !== null) void this.#revokeLater(lease);
    }
  }

  #waitFor(cond: () => boolean, ms: number): Promise<boolean> {
    return new Promise((resolve) => {
      const deadline = this.#now() + ms;
      const check = (): void => {
        if (cond()) { resolve(true); return; }
        if (this.#now() >= deadline || this.#role === 'stopped') { resolve(false); return; }
        this.#waiters.push(check);
        // Re-check on a timer too: the state may come from a poll as well as the watch.
        this.#o.clock.setTimer(Math.min(this.#tickMs(), Math.max(0, deadline - this.#now())), () => { this.#waiters = this.#waiters.filter((w) => w !== check); check(); });
      };
      check();
    });
  }

  // ------------------------------------------------------------------------------------------
  // The periodic tick (every T/3: keepalive on the master, read + campaign on standbys).

  #tickMs(): number {
    return this.#svc.heartbeatMs;
  }

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
    this.#startWatch();
    for (const id of this.#toRevoke) void this.#revokeLater(id);
    switch (this.#role) {
      case 'master':
        if (!this.isMasterNow()) this.#demote('standby', 'lease lost: etcd did not acknowledge a keepalive in time');
        else if (!this.#handingOver) {
          void this.#keepalive();
          this.#preemptCheck(now);
        }
        break;
      case 'standby':
      case 'fault':
        void this.#poll().then((ok) => { if (ok) void this.#maybeCampaign(); });
        break;
      default:
        break;
    }
    this.#scheduleTick(this.#role === 'master' ? this.#tickMs() : this.#tickMs() * (0.75 + 0.5 * this.#random()));
  }

  /** health_changed for every member whose state changed; fault in/out for this node. */
  #observeHealth(initial: boolean): void {
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
    out.TERM = String(this.#role === 'master' ? this.#masterTerm : this.#term);
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
    this.#o.persistence.save(this.#o.pool, this.#svc.name, { term: this.#term, votedFor: null, lastRole: this.#lastRoleSaved });
  }

  #members(): PoolMember[] {
    return this.#o.view.members();
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
