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
 * Roles, transitions, actions, health observation, preemption, the common part of switchTo and
 * status() are ServiceCore's (service-core.ts), shared with the builtin election.
 *
 * Public interface: EtcdFailoverService, EtcdFailoverServiceOptions, etcdKeys.
 * Depends on: ./service-core.ts, ./etcd-client.ts, ./rules.ts, ./lease.ts, ./actions.ts (types),
 * ./messages.ts, ./types.ts.
 */
import type { Watcher } from 'etcd3';
import type { TransitionResult } from './actions.ts';
import type { EtcdConnection, EtcdEvent, EtcdKv } from './etcd-client.ts';
import { DRIFT_MARGIN, masterLeaseEnd } from './lease.ts';
import { BadRequestError, type AnyRequest, type SwitchReply } from './messages.ts';
import { voteDecision, whyIneligible } from './rules.ts';
import { ServiceCore, type ServiceCoreOptions } from './service-core.ts';
import type { EtcdBackendSettings, Role } from './types.ts';

export interface EtcdFailoverServiceOptions extends ServiceCoreOptions {
  /** Shared by the services of one Failover that use the same etcd settings. */
  etcd: EtcdConnection;
}

/** The keys of one service: `<prefix><pool>/<service>/master` and `…/handover`. */
export function etcdKeys(prefix: string, pool: string, service: string): { base: string; master: string; handover: string } {
  const base = `${prefix}${pool}/${service}/`;
  return { base, master: `${base}master`, handover: `${base}handover` };
}

export class EtcdFailoverService extends ServiceCore {
  readonly #o: EtcdFailoverServiceOptions;
  readonly #etcd: EtcdConnection;
  readonly #ttlMs: number;
  readonly #keys: { base: string; master: string; handover: string };

  /** The lease the master key is bound to while master. */
  #leaseId: string | null = null;
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
  #keepaliveInFlight = false;
  #polling = false;
  #campaigning = false;
  #waiters: (() => void)[] = [];
  /** Revocations queued behind a demotion's actions (stop() waits for them). */
  #releasing: Promise<void> = Promise.resolve();
  readonly #staleDeleting = new Set<number>();

  constructor(opts: EtcdFailoverServiceOptions) {
    const b = opts.service.backend;
    if (b?.kind !== 'etcd') throw new Error(`failover service ${opts.service.name} does not use the etcd backend`);
    const ttlMs = (b satisfies EtcdBackendSettings).leaseTtlMs;
    super(opts, { leaseMs: ttlMs, leaseLostReason: 'lease lost: etcd did not acknowledge a keepalive in time' });
    this.#o = opts;
    this.#etcd = opts.etcd;
    this.#ttlMs = ttlMs;
    this.#keys = etcdKeys(b.prefix, opts.pool, opts.service.name);
  }

  protected override onStart(now: number): void {
    this.#noMasterSince = now;
    this.#startWatch();
  }

  protected override onTick(now: number): void {
    this.#startWatch();
    for (const id of this.#toRevoke) void this.#revokeLater(id);
    if (this.role === 'master') this.masterTick(now, () => void this.#keepalive());
    else if (this.role === 'standby' || this.role === 'fault') void this.#poll().then((ok) => { if (ok) void this.#maybeCampaign(); });
  }

  /** After the actions ran (ServiceCore.stop): the demoted master's lease revoked, the watch cancelled. */
  protected override async onStopped(): Promise<void> {
    const w = this.#watcher;
    this.#watcher = null;
    await this.#releasing;
    await Promise.all([
      w?.cancel().catch(() => undefined),
      ...[...this.#toRevoke].map((id) => this.#etcd.revoke(id, this.#ttlMs / 2).catch(() => undefined)),
    ]);
  }

  /** Only failover.switch applies to an etcd-backed service (forwarded switchovers). */
  override async handle(req: AnyRequest, _from: string): Promise<unknown> {
    this.assertRunning();
    if (req.method === 'failover.switch') return this.switchTo(req.body.target);
    throw new BadRequestError(`${req.method}: service ${this.svc.name} is elected through etcd; builtin election messages do not apply`);
  }

  // ------------------------------------------------------------------------------------------
  // What etcd says.

  #startWatch(): void {
    if (this.#watcher !== null || this.#watchStarting || this.role === 'stopped') return;
    this.#watchStarting = true;
    this.#etcd.watchPrefix(this.#keys.base, (e) => this.#onEvent(e)).then((w) => {
      if (this.role === 'stopped') { void w.cancel().catch(() => undefined); return; }
      this.#watcher = w;
    }, (err: unknown) => {
      this.#o.logger.debug({ service: this.svc.name, err }, 'failover etcd: watch not started (retrying on the next tick)');
    }).finally(() => { this.#watchStarting = false; });
  }

  #onEvent(e: EtcdEvent): void {
    if (this.role === 'stopped') return;
    if (e.type === 'connected' || e.type === 'disconnected') {
      if (e.type === 'disconnected') this.#o.logger.debug({ service: this.svc.name, error: e.error }, 'failover etcd: watch disconnected');
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
      this.#o.logger.debug({ service: this.svc.name, err }, 'failover etcd: cannot read the master key');
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
      if (this.knownMaster !== null) this.previousMaster = this.knownMaster;
      this.knownMaster = null;
      this.#noMasterSince ??= this.now();
    } else {
      if (master.createRevision > this.term) { this.term = master.createRevision; this.persist(); }
      if (this.knownMaster !== master.value) {
        if (this.knownMaster !== null) this.previousMaster = this.knownMaster;
        this.knownMaster = master.value;
      }
      this.lastMaster = master.value;
      this.#noMasterSince = null;
      if (master.value === this.self && !this.#myLeases.has(master.lease)) this.#staleOwnKey(master);
    }
    if (this.role === 'master' && (master === null || master.createRevision !== this.masterTerm)) {
      this.demote('standby', master === null ? 'the master key was deleted in etcd' : `the master key now belongs to ${master.value} (revision ${master.createRevision})`);
    }
    const waiters = this.#waiters;
    this.#waiters = [];
    for (const w of waiters) w();
    // Deferred: the other events of the same watch response (same revision) are applied first.
    if (master === null && this.role === 'standby') setImmediate(() => void this.#maybeCampaign());
  }

  /** A key naming this node that this process did not create: left by a previous run. */
  #staleOwnKey(kv: EtcdKv): void {
    if (this.#staleDeleting.has(kv.createRevision)) return;
    this.#staleDeleting.add(kv.createRevision);
    // Its holder (the previous process) is gone; delete it once the start-up cleanup has run.
    void this.idle().then(() => this.#etcd.deleteIfCreatedAt(this.#keys.master, kv.createRevision, this.#ttlMs / 2)).then((r) => {
      if (r.deleted) this.#o.logger.info({ service: this.svc.name, revision: kv.createRevision }, 'failover etcd: deleted the master key left by a previous run of this node');
    }, () => undefined).finally(() => this.#staleDeleting.delete(kv.createRevision));
  }

  // ------------------------------------------------------------------------------------------
  // Campaign.

  /** Whether this node may campaign now: no (null), as the handover target, or in its turn. */
  #turn(): 'handover' | 'turn' | null {
    if (this.handingOver || this.role !== 'standby' || !this.#stateKnown || this.#masterKv !== null) return null;
    const now = this.now();
    if (now < this.backoffUntil) return null;
    const members = this.members();
    const target = this.#handoverKv?.value ?? null;
    if (target !== null && whyIneligible(this.svc, members.find((m) => m.name === target)) === null) {
      return target === this.self ? 'handover' : null; // a switchover to an eligible target: its turn only
    }
    const d = voteDecision(this.svc, members, this.self, { now, lease: null, noMasterSince: this.#noMasterSince ?? now, lastMaster: this.lastMaster });
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
      const start = this.now();
      const lease = await this.#etcd.grant(this.#ttlMs, this.#ttlMs / 3);
      leaseId = lease.id;
      this.#myLeases.add(lease.id);
      const ttl = Math.min(this.#ttlMs, lease.ttlMs);
      // etcd started the lease's TTL after `start`: the key cannot expire before start + ttl.
      const deadline = masterLeaseEnd(start, ttl, DRIFT_MARGIN);
      const turn = this.#turn(); // again: the state may have changed while the lease was granted
      if (turn === null) return;
      const handover = turn === 'handover';
      const r = await this.#etcd.createIfAbsent(this.#keys.master, this.self, lease.id, handover ? [this.#keys.handover] : [], Math.max(1, deadline - this.now()));
      if (!r.created) {
        if (r.current !== null && r.current.createRevision > this.term) this.term = r.current.createRevision;
        return;
      }
      const now = this.now();
      if ((this.role as Role) !== 'standby' || now >= deadline) {
        // Won, but this node may no longer be master (fault, stopped) or the claim is already
        // stale: give the key back at once.
        this.#o.logger.warn({ service: this.svc.name, role: this.role }, 'failover etcd: created the master key too late or while not standby; giving it back');
        await this.#etcd.deleteIfCreatedAt(this.#keys.master, r.revision, this.#ttlMs / 2).catch(() => undefined);
        return;
      }
      leaseId = null; // kept: it is the master's lease now
      this.#elected(r.revision, lease.id, deadline, now, handover);
    } catch (err) {
      this.#o.logger.debug({ service: this.svc.name, err }, 'failover etcd: campaign failed');
    } finally {
      this.#campaigning = false;
      if (leaseId !== null) void this.#revokeLater(leaseId);
    }
  }

  #elected(revision: number, leaseId: string, deadline: number, now: number, handover: boolean): void {
    // What etcd holds now (a read or watch event older than this revision must not undo it).
    this.#stateRev = Math.max(this.#stateRev, revision);
    this.#masterKv = { key: this.#keys.master, value: this.self, createRevision: revision, modRevision: revision, lease: leaseId };
    if (handover) this.#handoverKv = null;
    this.term = Math.max(this.term, revision);
    this.#leaseId = leaseId;
    this.#noMasterSince = null;
    this.becomeMaster(revision, now, deadline, handover, `created the master key in etcd (revision ${revision})`, { backend: 'etcd' });
    this.scheduleTick(this.#tickMs());
  }

  // ------------------------------------------------------------------------------------------
  // Master side.

  async #keepalive(): Promise<void> {
    if (this.role !== 'master' || this.#keepaliveInFlight || this.#leaseId === null) return;
    const sent = this.now();
    const left = this.leaseEnd - sent;
    if (left <= 0) return;
    const term = this.masterTerm;
    this.#keepaliveInFlight = true;
    try {
      const ttl = await this.#etcd.keepAliveOnce(this.#leaseId, left);
      if (this.role !== 'master' || this.masterTerm !== term) return;
      if (ttl <= 0) { this.demote('standby', 'etcd says the master lease is gone (expired or revoked)'); return; }
      this.extend(term, masterLeaseEnd(sent, Math.min(ttl, this.#ttlMs), DRIFT_MARGIN));
    } catch (err) {
      this.#o.logger.debug({ service: this.svc.name, err }, 'failover etcd: keepalive failed');
    } finally {
      this.#keepaliveInFlight = false;
    }
  }

  /**
   * After a demotion (standby_to_master failed, fault, lease lost, stop): revoke the lease once
   * the demotion's actions ran (so the next master starts after the cleanup, or when the lease
   * expires, whichever comes first). A switchover takes the lease out first and revokes it itself.
   */
  protected override onDemoted(done: Promise<TransitionResult>): void {
    const lease = this.#leaseId;
    this.#leaseId = null;
    if (lease !== null) this.#releasing = this.#releasing.then(() => done).then(() => this.#revokeLater(lease));
  }

  /** Revokes a lease now, or on a later tick if etcd does not answer. */
  #revokeLater(id: string): Promise<void> {
    this.#toRevoke.add(id);
    return this.#etcd.revoke(id, this.#ttlMs / 2).then(() => { this.#toRevoke.delete(id); this.#myLeases.delete(id); }, () => undefined);
  }

  /**
   * The master's side of a planned switchover (ServiceCore.switchTo checked the target): demote
   * and run master_to_standby, then in one etcd transaction delete the master key (if still ours)
   * and write the handover key naming the target; wait for the target to take the key.
   */
  protected override async handOver(target: string): Promise<SwitchReply> {
    const rev = this.masterTerm;
    const lease = this.#leaseId;
    this.#leaseId = null; // not revoked behind the demotion's actions: below, once the handover is written
    try {
      this.demote('standby', `switchover to ${target}`, target);
      await this.idle(); // master_to_standby has run before the target can be elected
      const h = await this.#etcd.grant(this.#ttlMs, this.#ttlMs / 2);
      this.#myLeases.add(h.id);
      const r = await this.#etcd.deleteIfCreatedAt(this.#keys.master, rev, this.#ttlMs / 2, { key: this.#keys.handover, value: target, leaseId: h.id });
      if (!r.deleted) return this.switchFailed(`the master key of revision ${rev} was already gone (lease expired?): no handover`);
      // Until the target (or anyone) took the key, or the handover key expired unused.
      const elected = await this.#waitFor(() => this.#stateRev >= r.revision && (this.#masterKv !== null || this.#handoverKv === null), 3 * this.#ttlMs);
      const m = this.#masterKv;
      if (elected && m !== null && m.value === target && m.createRevision > rev) return { ok: true, master: target, term: m.createRevision, detail: `${target} is master in term ${m.createRevision}` };
      return this.switchFailed(m === null ? `${target} did not take over in time` : `${m.value} took over instead of ${target}`);
    } finally {
      if (lease !== null) void this.#revokeLater(lease);
    }
  }

  #waitFor(cond: () => boolean, ms: number): Promise<boolean> {
    return new Promise((resolve) => {
      const deadline = this.now() + ms;
      const check = (): void => {
        if (cond()) { resolve(true); return; }
        if (this.now() >= deadline || this.role === 'stopped') { resolve(false); return; }
        this.#waiters.push(check);
        // Re-check on a timer too: the state may come from a poll as well as the watch.
        this.#o.clock.setTimer(Math.min(this.#tickMs(), Math.max(0, deadline - this.now())), () => { this.#waiters = this.#waiters.filter((w) => w !== check); check(); });
      };
      check();
    });
  }

  /** The tick period: T/3 (keepalive on the master, read + campaign on standbys). */
  #tickMs(): number {
    return this.svc.heartbeatMs;
  }
}
