/**
 * The failover component for one pool on one node: one FailoverService per configured service,
 * RPC routing and authentication, status and switchover for the CLI/API. A node in several
 * pools runs one Failover per pool (requests carry the pool name).
 *
 *   const fo = new Failover({ node, pool, services: resolveFailover(settings.failover, members),
 *                             transport, view, persistence: new StorePersistence(store),
 *                             history: storeHistorySink(store), logger, bus });
 *   fo.start();
 *   rpcServer.on('failover.*', (method, body, peer) => fo.handleRpc(method, body, peer));
 *   fo.status(); await fo.switchTo('vip', 'web2'); fo.isMasterNow('vip'); await fo.stop();
 *
 * Authentication: `fromPeer` is the identity the transport authenticated (mTLS certificate name).
 * A vote/pre-vote must come from the candidate it names, a heartbeat from the master it names,
 * and every request from a voter or a member of this pool.
 *
 * Backend per service (ResolvedService.backend): builtin (election.ts, FailoverService) or etcd
 * (etcd-election.ts, EtcdFailoverService, one EtcdConnection shared by the services with the same
 * etcd settings, closed by stop()). Both extend ServiceCore (service-core.ts), which gives them the
 * same ServiceElection surface.
 *
 * Public interface: Failover, FailoverOptions, ServiceElection.
 * Depends on: ./election.ts, ./etcd-election.ts, ./service-core.ts (types), ./etcd-client.ts, ./messages.ts,
 * ./clock.ts, ./types.ts.
 */
import { realClock } from './clock.ts';
import { FailoverService } from './election.ts';
import { EtcdConnection } from './etcd-client.ts';
import { EtcdFailoverService } from './etcd-election.ts';
import { BadRequestError, parseRequest, type AnyRequest, type SwitchReply } from './messages.ts';
import type { ServiceCoreOptions, ServiceStatus } from './service-core.ts';
import type { Clock, FailoverEventSink, PoolView, ResolvedService } from './types.ts';

/** One service's options (ServiceCoreOptions), for every configured service of the pool. */
export interface FailoverOptions extends Omit<ServiceCoreOptions, 'service' | 'clock' | 'events'> {
  services: readonly ResolvedService[];
  /** Default: realClock(). */
  clock?: Clock;
  /** EventBus (after adding the failover.* kinds to its EventMap) or any structural match. */
  bus?: FailoverEventSink;
}

/** What the facade needs from one service's election, whatever the backend. */
export interface ServiceElection {
  readonly name: string;
  start(): void;
  stop(): Promise<void>;
  handle(req: AnyRequest, from: string): Promise<unknown>;
  isMasterNow(): boolean;
  fencingToken(): number | null;
  status(): ServiceStatus;
  switchTo(target: string): Promise<SwitchReply>;
  idle(): Promise<void>;
}

export class Failover {
  readonly node: string;
  readonly pool: string;
  readonly #services = new Map<string, ServiceElection>();
  readonly #etcd = new Map<string, EtcdConnection>();
  readonly #view: PoolView;
  readonly #voters = new Set<string>();

  constructor(opts: FailoverOptions) {
    if (opts.view.self !== opts.node) throw new Error(`pool view is for ${opts.view.self}, not for this node ${opts.node}`);
    this.node = opts.node;
    this.pool = opts.pool;
    this.#view = opts.view;
    const clock = opts.clock ?? realClock();
    for (const svc of opts.services) {
      if (this.#services.has(svc.name)) throw new Error(`failover service ${svc.name} configured twice`);
      for (const v of svc.voters) this.#voters.add(v);
      const common = {
        pool: opts.pool, node: opts.node, service: svc, transport: opts.transport, view: opts.view, clock,
        persistence: opts.persistence, logger: opts.logger.child({ component: 'failover', service: svc.name }),
        ...(opts.history ? { history: opts.history } : {}), ...(opts.bus ? { events: opts.bus } : {}),
        ...(opts.executor ? { executor: opts.executor } : {}), ...(opts.trace ? { trace: opts.trace } : {}),
        ...(opts.random ? { random: opts.random } : {}),
      };
      const b = svc.backend;
      if (b?.kind === 'etcd') {
        const key = JSON.stringify([b.endpoints, b.tls, b.leaseTtlMs]);
        let etcd = this.#etcd.get(key);
        if (etcd === undefined) this.#etcd.set(key, (etcd = new EtcdConnection(b)));
        this.#services.set(svc.name, new EtcdFailoverService({ ...common, etcd }));
      } else {
        this.#services.set(svc.name, new FailoverService(common));
      }
    }
  }

  /** The backend of each service ('builtin' | 'etcd'). */
  backends(): Record<string, 'builtin' | 'etcd'> {
    return Object.fromEntries([...this.#services].map(([n, s]) => [n, s instanceof EtcdFailoverService ? 'etcd' : 'builtin']));
  }

  start(): void {
    for (const s of this.#services.values()) s.start();
  }

  /** Stops every service; a master hands over first (see FailoverService.stop). */
  async stop(): Promise<void> {
    await Promise.all([...this.#services.values()].map((s) => s.stop()));
    await Promise.all([...this.#etcd.values()].map((c) => c.close()));
  }

  /**
   * Handles one RPC from an authenticated peer. Throws BadRequestError (bad body, unknown
   * pool/service, peer not allowed) with a message fit to send back.
   */
  async handleRpc(method: string, body: unknown, fromPeer: string): Promise<unknown> {
    const req = parseRequest(method, body);
    if (req.body.pool !== this.pool) throw new BadRequestError(`${method}: pool ${req.body.pool} is not served by this Failover (pool ${this.pool})`);
    const svc = this.#services.get(req.body.service);
    if (svc === undefined) throw new BadRequestError(`${method}: unknown service ${JSON.stringify(req.body.service)} in pool ${this.pool} (known: ${[...this.#services.keys()].join(', ') || 'none'})`);
    if (!this.#voters.has(fromPeer) && !this.#view.members().some((m) => m.name === fromPeer)) {
      throw new BadRequestError(`${method}: ${fromPeer} is neither a voter nor a member of pool ${this.pool}`);
    }
    if ((req.method === 'failover.vote' || req.method === 'failover.prevote') && req.body.candidate !== fromPeer) {
      throw new BadRequestError(`${method}: ${fromPeer} asked for a vote on behalf of ${req.body.candidate}`);
    }
    if (req.method === 'failover.heartbeat' && req.body.master !== fromPeer) {
      throw new BadRequestError(`${method}: ${fromPeer} sent a heartbeat on behalf of ${req.body.master}`);
    }
    return svc.handle(req, fromPeer);
  }

  status(): ServiceStatus[] {
    return [...this.#services.values()].map((s) => s.status());
  }

  /** Planned switchover of `service` to `node` (forwarded to the master when called elsewhere). */
  async switchTo(service: string, node: string): Promise<SwitchReply> {
    return this.#get(service).switchTo(node);
  }

  isMasterNow(service: string): boolean {
    return this.#get(service).isMasterNow();
  }

  /** The fencing token (term) while master, else null. */
  fencingToken(service: string): number | null {
    return this.#get(service).fencingToken();
  }

  /** Resolves when every service's queued actions have run. */
  async idle(): Promise<void> {
    await Promise.all([...this.#services.values()].map((s) => s.idle()));
  }

  #get(service: string): ServiceElection {
    const s = this.#services.get(service);
    if (s === undefined) throw new Error(`unknown failover service ${JSON.stringify(service)} (known: ${[...this.#services.keys()].join(', ') || 'none'})`);
    return s;
  }
}
