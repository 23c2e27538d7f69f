/**
 * Failover: the narrow interfaces the component needs from the rest of the agent, and the
 * resolved (defaults applied, cross-checked) shape of one service's settings.
 *
 * Public interface: PeerTransport, PoolView, PoolMember, Clock, TimerHandle, FailoverPersistence,
 * PersistedServiceState, HistorySink, FailoverEventSink, ResolvedService, FailoverBackend,
 * EtcdBackendSettings, Action, Transition, Role.
 * Depends on: ../membership/clock.ts (the Clock and TimerHandle types only).
 */

/** Request/response RPC to another agent (mTLS RPC in the agent, in-memory in tests). */
export interface PeerTransport {
  /** Resolves with the peer's answer; rejects on timeout, refusal or unreachable peer. */
  call(peer: string, method: string, body: unknown, timeoutMs: number): Promise<unknown>;
}

export interface PoolMember {
  name: string;
  /** Membership says the member is alive (not suspect/failed/left). */
  alive: boolean;
  /** Health status OK or WARNING. */
  healthy: boolean;
  /** Planned maintenance: never elected, a master in maintenance steps down. */
  maintenance: boolean;
}

/** This node's current view of the pool (membership + health). */
export interface PoolView {
  readonly self: string;
  members(): PoolMember[];
}

/**
 * Time source: membership's Clock, one definition for both components (one clock can serve both).
 * Failover needs now() in milliseconds, monotonic for this process; its rate may drift from real
 * time only within the bound of lease.ts.
 */
export type { Clock, TimerHandle } from '../membership/clock.ts';

/** What must survive a restart of the agent, per service. */
export interface PersistedServiceState {
  /** Highest term this node has seen. */
  term: number;
  /** Whom this node voted for in `term` (null: nobody yet). */
  votedFor: string | null;
  /** Role when the state was last saved: a node that died as master cleans up on start. */
  lastRole: 'master' | 'other';
}

/** Durable per-service state. save() must be durable when it returns (votes depend on it). */
export interface FailoverPersistence {
  load(pool: string, service: string): PersistedServiceState | undefined;
  save(pool: string, service: string, state: PersistedServiceState): void;
}

/** Where transitions, lease extensions and action results are recorded (Store.appendHistory). */
export interface HistorySink {
  append(kind: string, data: Record<string, unknown>): void;
}

export type Role = 'standby' | 'candidate' | 'master' | 'fault' | 'witness' | 'stopped';

export type Transition = 'standby_to_master' | 'master_to_standby' | 'to_fault' | 'health_changed';
export const TRANSITIONS: readonly Transition[] = ['standby_to_master', 'master_to_standby', 'to_fault', 'health_changed'];

export type OnFailure = 'abort' | 'continue' | 'retry';

export interface CommandAction {
  kind: 'run';
  run: string;
  timeoutMs: number;
  env: Record<string, string>;
  onFailure: OnFailure;
  /** Extra attempts when onFailure is 'retry'. */
  retries: number;
}

export interface FloatingIpAction {
  kind: 'floating_ip';
  /** CIDR form, e.g. 10.9.0.100/24. */
  address: string;
  interface: string;
  onFailure: OnFailure;
  retries: number;
}

export type Action = CommandAction | FloatingIpAction;

export type PreemptPolicy = { mode: 'preempt' } | { mode: 'nopreempt' } | { mode: 'after'; afterMs: number };

/**
 * The etcd election backend (etcd-election.ts): the master holds the key
 * `<prefix><pool>/<service>/master`, bound to an etcd lease of `leaseTtlMs`.
 */
export interface EtcdBackendSettings {
  kind: 'etcd';
  /** http(s)://host:port of the etcd members. */
  endpoints: string[];
  /** Key prefix, starting and ending with '/'. */
  prefix: string;
  /** Lease TTL (ms, a whole number of seconds: etcd leases count in seconds). */
  leaseTtlMs: number;
  /** Absolute paths of PEM files: CA of the etcd servers, and an optional client certificate. */
  tls: { ca: string; cert: string | null; key: string | null } | null;
}

/** Where the election runs: built in (quorum + leases over the agents' RPC) or in etcd. */
export type FailoverBackend = { kind: 'builtin' } | EtcdBackendSettings;

export interface ResolvedService {
  name: string;
  /** Priority per node; nodes not listed get defaultPriority. 0 = never master. */
  priority: Record<string, number>;
  defaultPriority: number;
  preempt: PreemptPolicy;
  /** Voters, witness included, sorted. */
  voters: string[];
  witness: string | null;
  leaseMs: number;
  heartbeatMs: number;
  actions: Record<Transition, Action[]>;
  /**
   * Election backend; absent = builtin. With etcd, voters is empty, witness null, leaseMs the
   * etcd lease TTL and heartbeatMs the keepalive interval (TTL/3).
   */
  backend?: FailoverBackend;
}

/** Payloads of the events the component publishes (to be added to src/events/bus.ts EventMap). */
export interface FailoverEventMap {
  'failover.transition': { pool: string; service: string; node: string; from: Role; to: Role; term: number; reason: string };
  'failover.action': { pool: string; service: string; node: string; transition: Transition; action: string; ok: boolean; detail: string };
}

/** Structural subset of EventBus: Failover publishes through it. */
export interface FailoverEventSink {
  publish<K extends keyof FailoverEventMap>(kind: K, data: FailoverEventMap[K]): void;
}
