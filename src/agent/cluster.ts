/**
 * Wires membership (gossip), signed pool definitions and the gossip keyring into the agent.
 *
 * - The local Memberlist advertises this node's metadata: agent version, network, pools, RPC
 *   port, health summary and the digest of its pool-definition document.
 * - Peers' RPC addresses come from that metadata (gossip address + advertised RPC port).
 * - Pool documents spread by digest (see pooldefs/manager.ts): a newer digest in a peer's
 *   metadata makes us fetch the document over mTLS RPC (`pools.get`).
 * - Keyring operations (`keys install|use|remove`) are fanned out over mTLS RPC (`keys.op`) to
 *   every live member and persisted in each member's keyring file.
 * - Topology (membership/topology.ts, config `networks`): gossip only targets members this node
 *   may reach directly; RPC to a member of another network goes through a relay of that network
 *   (`call()` → `relay.forward` on the relay, one hop, only into the relay's own network, only
 *   FORWARDABLE methods). Vivaldi coordinates pick the nearest relay and answer rtt/nearest.
 *
 * Public interface: ClusterServices (start, stop, members, peerAddress, route, call, rtt,
 * nearest, keysOp, applyPools, setMetaField). Depends on membership, pooldefs, rpc,
 * security/gossipkey, state.
 */
import { readFileSync } from 'node:fs';
import { z } from 'zod';
import { Gauge } from 'prom-client';
import { Memberlist, type MemberInfo } from '../membership/memberlist.ts';
import { parseAddr } from '../membership/addr.ts';
import { NoRouteError, Topology, type Route } from '../membership/topology.ts';
import { RpcError } from '../rpc/errors.ts';
import type { CallOptions } from '../rpc/client.ts';
import { profileConfig, type MembershipConfig } from '../membership/config.ts';
import { Keyring } from '../membership/keyring.ts';
import { EventLoopLagMonitor } from '../membership/awareness.ts';
import { readKeyring, writeKeyring, keyringAdd, keyringUse, keyringRemove, type Keyring as KeyringFile } from '../security/gossipkey.ts';
import { PoolDefinitions, type Digest } from '../pooldefs/manager.ts';
import { loadTrustedKey, type PoolDocument, type TrustedKey } from '../pooldefs/document.ts';
import type { Agent, PeerAddress } from './agent.ts';
import { VERSION } from './version.ts';

export type KeyOp = 'install' | 'use' | 'remove';

const keyOpBody = z.strictObject({ op: z.enum(['install', 'use', 'remove']), key: z.string().min(1).max(100) });
const forwardBody = z.strictObject({
  to: z.string().min(1).max(253),
  method: z.string().min(1).max(128),
  body: z.unknown(),
  timeoutMs: z.number().int().min(1).max(120_000).optional(),
});

/**
 * Methods a relay forwards. The target sees the relay as the caller (ctx.peer), so methods that
 * decide by the caller's identity (failover votes, file sync ACLs) are not forwardable; neither
 * is relay.forward itself, which bounds a forwarded call to one hop.
 */
export const FORWARDABLE = new Set(['agent.ping', 'health.summary', 'pools.get', 'keys.op']);

export interface MemberView {
  name: string;
  address: string;
  status: string;
  pools: string[];
  network: string;
  health: string;
  maintenance: boolean;
  maintenanceReason?: string;
  version: string;
  /** The member's incarnation as known here (grows with each change it announces or refutation). */
  incarnation: number;
  rpcPort?: number;
  /** Estimated round-trip time from this node (Vivaldi), ms; absent when unknown. */
  rttMs?: number;
  /** Relay ("Princess Bee Host") of its network. */
  relay?: boolean;
}

const INCARNATION_KEY = 'membership.incarnation';
/** Gossip addresses of members seen alive, rejoined at the next start (serf's snapshot does this). */
const KNOWN_KEY = 'membership.known';
/** Members remembered (any one that answers is enough to rejoin). */
const KNOWN_MAX = 16;
/** The list is saved at most this often (membership events come in bursts). */
const KNOWN_SAVE_MS = 1000;

function storedKnown(agent: Agent): string[] {
  const raw = agent.store.kvGet(KNOWN_KEY);
  if (raw === undefined) return [];
  try {
    const v = z.array(z.string().min(1).max(300)).max(KNOWN_MAX).parse(JSON.parse(raw));
    for (const a of v) parseAddr(a);
    return v;
  } catch {
    agent.logger.warn('ignoring an unreadable list of known members; joining the configured seeds only');
    return [];
  }
}

function storedIncarnation(agent: Agent): number {
  const raw = agent.store.kvGet(INCARNATION_KEY);
  if (raw === undefined) return 0;
  const n = Number(raw);
  if (Number.isSafeInteger(n) && n >= 0) return n;
  agent.logger.warn({ value: raw }, 'ignoring an unreadable stored gossip incarnation; starting from 1');
  return 0;
}

function membershipConfig(agent: Agent): Partial<MembershipConfig> {
  const g = agent.config.gossip;
  const base = profileConfig(g.profile);
  const { profile: _p, ...overrides } = g;
  return { ...base, ...Object.fromEntries(Object.entries(overrides).filter(([, v]) => v !== undefined)) };
}

function loadTrusted(paths: string[]): TrustedKey[] {
  return paths.map((p) => {
    try {
      return loadTrustedKey(readFileSync(p, 'utf8'));
    } catch (err) {
      throw new Error(`admin key ${p}: ${(err as Error).message}`, { cause: err });
    }
  });
}

export class ClusterServices {
  readonly agent: Agent;
  readonly memberlist: Memberlist;
  readonly pooldefs: PoolDefinitions;
  readonly topology: Topology;
  readonly #keyringPath: string;
  #keyring: KeyringFile;
  #meta: Record<string, unknown>;
  #joinTimer?: NodeJS.Timeout;
  #knownTimer?: NodeJS.Timeout;
  /** The list last written (suspect/alive events change nothing in it: no identical writes). */
  #knownSaved?: string;
  #lag?: EventLoopLagMonitor;

  private constructor(agent: Agent, keyringPath: string, keyring: KeyringFile) {
    this.agent = agent;
    this.#keyringPath = keyringPath;
    this.#keyring = keyring;
    this.topology = new Topology(agent.config.networks);
    this.pooldefs = new PoolDefinitions({
      store: agent.store,
      trusted: loadTrusted(agent.config.adminKeys),
      logger: agent.logger,
      bus: agent.bus,
      fetchFrom: async (peer) => {
        return this.call(peer, 'pools.get', {}, { timeoutMs: 10_000 });
      },
    });
    this.#meta = this.#baseMeta();
    const keys = [keyring.primary, ...keyring.keys.filter((k) => k !== keyring.primary)];
    this.memberlist = new Memberlist({
      name: agent.config.node.name,
      bindAddr: agent.config.node.bind,
      advertiseAddr: agent.config.node.advertise,
      port: agent.config.node.gossipPort,
      config: membershipConfig(agent),
      keyring: new Keyring(keys),
      meta: this.#meta,
      topology: this.topology,
      coordinates: true,
      // Our incarnation survives restarts, so a restarted agent's first alive message already
      // beats whatever others hold about it (see docs/membership.md, Restart).
      lastIncarnation: storedIncarnation(agent),
      onIncarnation: (n) => agent.store.kvSet(INCARNATION_KEY, String(n)),
      logger: agent.logger.child({ component: 'membership' }),
      bus: agent.bus,
      onEvent: (ev) => {
        if (ev.kind === 'joined' || ev.kind === 'updated' || ev.kind === 'alive') {
          void this.pooldefs.onPeerDigest(ev.member.name, ev.member.meta.pd as Digest | undefined);
        }
        if (ev.kind !== 'updated' && ev.kind !== 'maintenance') this.#knownChanged();
      },
    });
  }

  static async create(agent: Agent): Promise<ClusterServices> {
    const path = agent.config.node.gossipKeyring;
    if (!path) throw new Error("node.gossip_keyring is required: gossip is always encrypted (create one with 'multiall keygen --out FILE')");
    const kr = await readKeyring(path);
    return new ClusterServices(agent, path, kr);
  }

  #baseMeta(): Record<string, unknown> {
    const digest = this.pooldefs.digest();
    return {
      v: VERSION,
      net: this.agent.config.node.network,
      pools: this.agent.effective.pools,
      rpc: this.agent.rpcPort || this.agent.config.node.rpcPort,
      health: (this.#meta?.health as string | undefined) ?? 'UNKNOWN',
      ...(digest ? { pd: digest } : {}),
      ...(this.topology.relaysOf(this.agent.config.node.network).includes(this.agent.config.node.name) ? { relay: true } : {}),
    };
  }

  /** Sets one metadata field (e.g. health) and gossips the change. */
  setMetaField(key: string, value: unknown): void {
    this.#meta = { ...this.#meta, [key]: value };
    this.memberlist.setMeta(this.#meta);
  }

  /** Recomputes metadata from the agent's current state (after reload or a new pool document). */
  refreshMeta(): void {
    this.#meta = { ...this.#meta, ...this.#baseMeta() };
    this.memberlist.setMeta(this.#meta);
  }

  #registerMetrics(): void {
    const ml = this.memberlist;
    const stat = (name: string, help: string, read: (s: ReturnType<Memberlist['stats']>) => number) =>
      new Gauge({ name, help, registers: [this.agent.metrics.registry], collect() { this.set(read(ml.stats())); } });
    new Gauge({
      name: 'multiall_members', help: 'Members by state as seen here', labelNames: ['state'], registers: [this.agent.metrics.registry],
      collect() { for (const [state, n] of Object.entries(ml.stats().members)) this.set({ state }, n); },
    });
    stat('multiall_gossip_health_score', 'Lifeguard local health score (0 = healthy)', (s) => s.healthScore);
    stat('multiall_gossip_auth_failures', 'Gossip packets dropped because no key authenticated them', (s) => s.authFailures);
    stat('multiall_gossip_decode_errors', 'Gossip packets dropped because they did not decode', (s) => s.decodeErrors);
    stat('multiall_gossip_bytes_sent', 'Gossip bytes sent', (s) => s.bytesSent);
    stat('multiall_gossip_bytes_received', 'Gossip bytes received', (s) => s.bytesReceived);
    stat('multiall_gossip_suspicions_raised', 'Suspicions this member raised', (s) => s.suspicionsRaised);
    stat('multiall_gossip_refutes', 'Times this member refuted a suspicion about itself', (s) => s.refutes);
    stat('multiall_pool_documents_refused', 'Pool-definition documents refused (unsigned, bad signature, older)', () => this.pooldefs.refused);
  }

  async start(): Promise<void> {
    const a = this.agent;
    this.#registerMetrics();
    a.rpc.handle('pools.get', async () => this.pooldefs.current() ?? null);
    a.rpc.handle('keys.op', async (body, ctx) => {
      const { op, key } = keyOpBody.parse(body);
      a.logger.info({ op, from: ctx.peer }, 'gossip keyring operation requested by peer');
      await this.#localKeyOp(op, key);
      return { node: a.config.node.name, keys: this.#keyring.keys.length };
    });
    a.rpc.handle('relay.forward', async (body, ctx) => this.#forward(body, ctx.peer, ctx.signal));
    a.bus.on('pools.updated', () => {
      a.recomputeEffective();
      this.refreshMeta();
      a.logger.warn('new pool definitions: membership metadata and effective configuration updated; health rules, failover services and file trees change on the next agent restart');
    });
    this.memberlist.setMeta({ ...this.#meta, rpc: a.rpcPort });
    await this.memberlist.start();
    // Lifeguard local health: a starved event loop stretches our own timeouts instead of making
    // us accuse healthy peers.
    this.#lag = new EventLoopLagMonitor({ setExternal: (p) => this.memberlist.setHealthPenalty(p) }, this.memberlist.config.probeTimeout);
    const known = storedKnown(this.agent); // read once: the list changes while we join
    this.#joinLoop([...new Set([...this.agent.config.join, ...known])], known.length, 0);
  }

  /**
   * Joins the configured seeds and the members known alive before this start (so a restarted
   * node whose seeds are gone, or that has none, e.g. the one the others joined, is back at once
   * instead of waiting for another member's reconnect), retrying with backoff until one answers.
   */
  #joinLoop(seeds: string[], known: number, attempt: number): void {
    if (seeds.length === 0) return;
    const run = async () => {
      try {
        const n = await this.memberlist.join(seeds);
        this.agent.logger.info({ reached: n, seeds, known }, 'joined the cluster');
      } catch (err) {
        const delay = Math.min(30_000, 500 * 2 ** attempt);
        this.agent.logger.warn({ err: (err as Error).message, retryInMs: delay }, 'join failed; retrying');
        this.#joinTimer = setTimeout(() => this.#joinLoop(seeds, known, attempt + 1), delay);
      }
    };
    void run();
  }

  async join(addrs: string[]): Promise<number> {
    return this.memberlist.join(addrs);
  }

  async stop(opts: { leave: boolean }): Promise<void> {
    clearTimeout(this.#joinTimer);
    clearTimeout(this.#knownTimer);
    this.#lag?.stop();
    if (opts.leave) {
      await this.memberlist.leave(3000).catch((err: unknown) => this.agent.logger.warn({ err }, 'graceful leave failed'));
      // Left on purpose: the next start joins only the configured seeds (serf's rule too).
      this.agent.store.kvSet(KNOWN_KEY, '[]');
    } else this.#saveKnown();
    await this.memberlist.shutdown();
  }

  #knownChanged(): void {
    this.#knownTimer ??= setTimeout(() => {
      this.#knownTimer = undefined;
      this.#saveKnown();
    }, KNOWN_SAVE_MS).unref();
  }

  /** Remembers up to KNOWN_MAX live members; never an empty list (alone, the old one is kept). */
  #saveKnown(): void {
    if (!this.memberlist.running) return;
    const self = this.agent.config.node.name;
    const addrs = this.memberlist.liveMembers().filter((m) => m.name !== self).map((m) => m.addr).sort().slice(0, KNOWN_MAX);
    const json = JSON.stringify(addrs);
    if (addrs.length === 0 || json === this.#knownSaved) return;
    this.agent.store.kvSet(KNOWN_KEY, json);
    this.#knownSaved = json;
  }

  members(filter: { pool?: string; network?: string } = {}): MemberView[] {
    return this.memberlist
      .members()
      .map((m) => view(m, this.memberlist.estimateRtt(m.name)))
      .filter((m) => (!filter.pool || m.pools.includes(filter.pool)) && (!filter.network || m.network === filter.network))
      .sort((a, b) => a.name.localeCompare(b.name));
  }

  /** RPC address of a member, from its gossip address and advertised RPC port. */
  peerAddress(name: string): PeerAddress | undefined {
    const m = this.memberlist.member(name);
    if (!m) return undefined;
    const rpc = m.meta.rpc;
    if (typeof rpc !== 'number') return undefined;
    const host = m.addr.startsWith('[') ? m.addr.slice(1, m.addr.indexOf(']')) : m.addr.slice(0, m.addr.lastIndexOf(':'));
    return { name, host, port: rpc };
  }

  /** How this node reaches a member: directly or through a relay of its network (nearest by RTT). Throws NoRouteError. */
  route(peer: string): Route {
    const ml = this.memberlist;
    const p = ml.member(peer);
    if (!p) throw new NoRouteError(`unknown member ${peer}`);
    return this.topology.route(ml.localMember(), p, ml.liveMembers(), (n) => ml.estimateRtt(n));
  }

  /** RPC call to a member, through a relay when the topology says it is not directly reachable. */
  async call(peer: string, method: string, body: unknown, opts: CallOptions = {}): Promise<unknown> {
    const r = this.route(peer);
    if (r.via === 'direct') {
      const addr = this.peerAddress(peer);
      if (!addr) throw new Error(`no RPC address known for ${peer}`);
      return this.agent.peers.call(addr, method, body, opts);
    }
    return this.callVia(r.relay, peer, method, body, opts);
  }

  /** Asks `relay` to call `peer` (a member of the relay's network) for us. */
  async callVia(relay: string, peer: string, method: string, body: unknown, opts: CallOptions = {}): Promise<unknown> {
    const addr = this.peerAddress(relay);
    if (!addr) throw new Error(`no RPC address known for relay ${relay}`);
    if (!FORWARDABLE.has(method)) throw new Error(`${peer} is reachable only through relay ${relay}, and ${method} is not forwardable`);
    const timeoutMs = opts.timeoutMs ?? 30_000;
    // The relay gets most of our deadline for its own hop.
    return this.agent.peers.call(addr, 'relay.forward', { to: peer, method, body, timeoutMs: Math.max(1, Math.floor(timeoutMs * 0.9)) }, opts);
  }

  async #forward(raw: unknown, from: string, signal: AbortSignal): Promise<unknown> {
    const me = this.agent.config.node.name;
    const f = forwardBody.parse(raw);
    if (!FORWARDABLE.has(f.method)) throw new RpcError('forbidden', `relay ${me}: method ${f.method} is not forwardable`);
    const self = this.memberlist.localMember();
    if (!this.topology.isRelay(self)) throw new RpcError('forbidden', `${me} is not a relay`);
    const net = this.topology.networkOf(self);
    const target = this.memberlist.member(f.to);
    if (f.to === me || !target || this.topology.networkOf(target) !== net) {
      throw new RpcError('forbidden', `relay ${me} forwards only to other members of its network ${net}, not to ${f.to}`);
    }
    if (target.state !== 'alive' && target.state !== 'suspect') throw new RpcError('unreachable', `relay ${me}: ${f.to} is ${target.state}`);
    const addr = this.peerAddress(f.to);
    if (!addr) throw new RpcError('unreachable', `relay ${me}: no RPC address known for ${f.to}`);
    this.agent.logger.debug({ from, to: f.to, method: f.method }, 'relaying RPC call');
    return this.agent.peers.call(addr, f.method, f.body, { timeoutMs: f.timeoutMs ?? 10_000, signal });
  }

  /** Estimated RTT in ms between two members (b defaults to this node). */
  rtt(a: string, b: string = this.agent.config.node.name): { a: string; b: string; rttMs: number } {
    for (const n of [a, b]) if (!this.memberlist.member(n)) throw Object.assign(new Error(`unknown member ${n}`), { statusCode: 404 });
    const rttMs = this.memberlist.estimateRtt(a, b);
    if (rttMs === undefined) throw Object.assign(new Error(`no coordinate known yet for ${this.memberlist.coordinateOf(a) ? b : a}`), { statusCode: 404 });
    return { a, b, rttMs: Math.round(rttMs * 1000) / 1000 };
  }

  /** The n live members nearest to this node by estimated RTT (optionally only a pool's). */
  nearest(n: number, pool?: string): { name: string; rttMs: number | null; network: string; pools: string[] }[] {
    return this.memberlist
      .nearest(n, pool ? (m) => view(m).pools.includes(pool) : undefined)
      .map(({ member, rttMs }) => {
        const v = view(member);
        return { name: v.name, rttMs: rttMs === undefined ? null : Math.round(rttMs * 1000) / 1000, network: v.network, pools: v.pools };
      });
  }

  keyringList(): { primary: string; keys: string[] } {
    // Keys are secrets: only their fingerprints leave the agent.
    const fp = (k: string) => `${k.slice(0, 4)}…(${Buffer.from(k, 'base64').length * 8} bit)`;
    return { primary: fp(this.#keyring.primary), keys: this.#keyring.keys.map(fp) };
  }

  async #localKeyOp(op: KeyOp, key: string): Promise<void> {
    const next = op === 'install' ? keyringAdd(this.#keyring, key) : op === 'use' ? keyringUse(this.#keyring, key) : keyringRemove(this.#keyring, key);
    const live = this.memberlist.keyring;
    if (!live) throw new Error('gossip encryption is not enabled');
    if (op === 'install') live.install(key);
    else if (op === 'use') live.use(key);
    else live.remove(key);
    await writeKeyring(this.#keyringPath, next);
    this.#keyring = next;
    this.agent.store.appendHistory('membership', `key_${op}`, { keys: next.keys.length });
  }

  /** Applies a keyring operation here and on every live member; reports per node. */
  async keysOp(op: KeyOp, key: string): Promise<{ node: string; ok: boolean; error?: string }[]> {
    const results: { node: string; ok: boolean; error?: string }[] = [];
    try {
      await this.#localKeyOp(op, key);
      results.push({ node: this.agent.config.node.name, ok: true });
    } catch (err) {
      return [{ node: this.agent.config.node.name, ok: false, error: (err as Error).message }];
    }
    const others = this.memberlist.liveMembers().filter((m) => m.name !== this.agent.config.node.name);
    await Promise.all(
      others.map(async (m) => {
        try {
          await this.call(m.name, 'keys.op', { op, key }, { timeoutMs: 10_000 });
          results.push({ node: m.name, ok: true });
        } catch (err) {
          results.push({ node: m.name, ok: false, error: (err as Error).message });
        }
      }),
    );
    return results.sort((a, b) => a.node.localeCompare(b.node));
  }

  applyPools(doc: unknown): { accepted: boolean; reason?: string; current?: PoolDocument } {
    const r = this.pooldefs.offer(doc, `api:${this.agent.config.node.name}`);
    return { ...r, current: this.pooldefs.current() };
  }
}

function view(m: MemberInfo, rttMs?: number): MemberView {
  const meta = m.meta;
  return {
    name: m.name,
    address: m.addr,
    status: m.maintenance.on && m.state === 'alive' ? 'maintenance' : m.state,
    pools: Array.isArray(meta.pools) ? (meta.pools as unknown[]).map(String) : [],
    network: typeof meta.net === 'string' ? meta.net : '',
    health: typeof meta.health === 'string' ? meta.health : 'UNKNOWN',
    maintenance: m.maintenance.on,
    ...(m.maintenance.reason ? { maintenanceReason: m.maintenance.reason } : {}),
    version: typeof meta.v === 'string' ? meta.v : '',
    incarnation: m.incarnation,
    ...(typeof meta.rpc === 'number' ? { rpcPort: meta.rpc } : {}),
    ...(rttMs !== undefined ? { rttMs: Math.round(rttMs * 1000) / 1000 } : {}),
    ...(meta.relay === true ? { relay: true } : {}),
  };
}
