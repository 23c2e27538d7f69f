/**
 * The agent process: owns the lifecycle of every component on one server.
 *
 * start(): load + validate config → lock the state dir → open local state → load TLS identity →
 * agent-to-agent RPC server (mTLS) → local API. stop(): the reverse, letting in-flight RPCs and
 * API calls finish and flushing state. reload(): validate the new file first; an invalid one is
 * refused and the running config stays.
 *
 * Public interface: Agent.start(opts), agent.reload(), agent.stop(reason), agent.status().
 * Depends on: config, state, security, rpc, api, events, log.
 */
import { resolve } from 'node:path';
import type { Logger } from '../log/logger.ts';
import { createLogger } from '../log/logger.ts';
import { EventBus } from '../events/bus.ts';
import type { Config, EffectiveConfig, ConfigProblem } from '../config/types.ts';
import { loadConfigFile } from '../config/load.ts';
import { effectiveConfig } from '../config/effective.ts';
import { formatProblems } from '../config/format.ts';
import { acquireLock, type StateLock } from '../state/lock.ts';
import { openStore, type Store } from '../state/store.ts';
import { loadTlsMaterial, type TlsMaterial } from '../security/tls.ts';
import { RpcServer } from '../rpc/server.ts';
import { RpcClientPool } from '../rpc/client.ts';
import { LocalApi } from '../api/server.ts';
import { createMetrics, type AgentMetrics } from '../api/metrics.ts';
import { registerCoreRoutes } from './routes.ts';
import { registerClusterRoutes } from './cluster-routes.ts';
import { ClusterServices } from './cluster.ts';
import { startHealth } from './health.ts';
import { startFailovers } from './failover.ts';
import { startFiles } from './files.ts';
import type { FileSyncService } from '../filesync/service.ts';
import type { HealthMonitor } from '../health/index.ts';
import type { Failover } from '../failover/failover.ts';
import type { PoolDef } from '../config/types.ts';
import { VERSION } from './version.ts';
import './components.ts';

export class ConfigInvalidError extends Error {
  readonly problems: ConfigProblem[];
  constructor(problems: ConfigProblem[]) {
    super(`configuration is invalid:\n${formatProblems(problems)}`);
    this.problems = problems;
  }
}

export interface AgentOptions {
  configPath: string;
  logger?: Logger;
}

export interface ReloadResult {
  ok: boolean;
  problems: ConfigProblem[];
  /** Settings that changed but only take effect after a restart. */
  needsRestart: string[];
}

export interface PeerAddress {
  name: string;
  host: string;
  port: number;
}

export class Agent {
  readonly bus: EventBus;
  readonly startedAt = Date.now();
  config: Config;
  effective: EffectiveConfig;
  logger: Logger;
  readonly store: Store;
  readonly tls: TlsMaterial;
  readonly rpc: RpcServer;
  readonly peers: RpcClientPool;
  readonly api: LocalApi;
  readonly metrics: AgentMetrics;
  cluster?: ClusterServices;
  health?: HealthMonitor;
  failovers = new Map<string, Failover>();
  files?: FileSyncService;
  readonly #lock: StateLock;
  #rpcPort = 0;
  #stopping?: Promise<void>;
  #markDone!: () => void;
  /** Resolves once the agent has stopped, whoever asked (signal, API leave). */
  readonly done = new Promise<void>((r) => (this.#markDone = r));

  private constructor(parts: {
    config: Config; logger: Logger; bus: EventBus; lock: StateLock; store: Store; tls: TlsMaterial;
    rpc: RpcServer; peers: RpcClientPool; api: LocalApi; metrics: AgentMetrics;
  }) {
    this.config = parts.config;
    this.effective = effectiveConfig(parts.config, parts.config.node.name);
    this.logger = parts.logger;
    this.bus = parts.bus;
    this.#lock = parts.lock;
    this.store = parts.store;
    this.tls = parts.tls;
    this.rpc = parts.rpc;
    this.peers = parts.peers;
    this.api = parts.api;
    this.metrics = parts.metrics;
  }

  static async start(opts: AgentOptions): Promise<Agent> {
    const configPath = resolve(opts.configPath);
    const loaded = await loadConfigFile(configPath);
    if (!loaded.ok) throw new ConfigInvalidError(loaded.problems);
    const config = loaded.config;
    const logger = opts.logger ?? createLogger({ level: config.log.level, format: config.log.format, base: { node: config.node.name } });
    for (const w of loaded.warnings) logger.warn({ file: w.file, line: w.line, path: w.path }, `config: ${w.message}`);

    const lock = acquireLock(config.node.dataDir);
    const cleanup: (() => Promise<void> | void)[] = [() => lock.release()];
    try {
      const store = openStore(config.node.dataDir);
      cleanup.unshift(() => store.close());
      const tls = await loadTlsMaterial(config.node.tls);
      if (tls.nodeName !== config.node.name) {
        throw new Error(`certificate ${config.node.tls.cert} is for node '${tls.nodeName}', but this node is '${config.node.name}'`);
      }
      const metrics = createMetrics(config.node.name, VERSION);
      const bus = new EventBus();
      const rpc = new RpcServer({ tls, host: config.node.bind, port: config.node.rpcPort, logger, bus });
      const peers = new RpcClientPool({ tls, logger, localAddress: config.node.bind });
      const api = new LocalApi({ socketPath: config.api.socket, tcp: config.api.tcp, tokens: config.api.tokens, logger });
      const agent = new Agent({ config, logger, bus, lock, store, tls, rpc, peers, api, metrics });
      agent.#wire();
      const { port } = await rpc.listen();
      agent.#rpcPort = port;
      cleanup.unshift(() => rpc.close());
      const cluster = await ClusterServices.create(agent);
      agent.cluster = cluster;
      agent.recomputeEffective();
      await cluster.start();
      cleanup.unshift(() => cluster.stop({ leave: false }));
      agent.health = startHealth(agent, cluster);
      cleanup.unshift(() => agent.health?.stop());
      agent.failovers = startFailovers(agent, cluster);
      cleanup.unshift(async () => { await Promise.all([...agent.failovers.values()].map((f) => f.stop())); });
      agent.files = await startFiles(agent, cluster);
      cleanup.unshift(async () => { await agent.files?.stop(); });
      registerClusterRoutes(agent, cluster);
      await api.start();
      bus.publish('agent.started', { node: config.node.name });
      store.appendHistory('agent', 'started', { version: VERSION, pid: process.pid });
      logger.info({ version: VERSION, rpc: `${config.node.bind}:${port}`, api: config.api.socket, tcpApi: api.tcpAddress, dataDir: config.node.dataDir }, 'agent started');
      return agent;
    } catch (err) {
      for (const c of cleanup) await c();
      throw err;
    }
  }

  #wire(): void {
    this.rpc.handle('agent.ping', async (_body, ctx) => ({ node: this.config.node.name, peer: ctx.peer, version: VERSION, time: Date.now() }));
    this.bus.on('rpc.peer_refused', (ev) => {
      this.metrics.rpcRefused.inc({ reason: ev.data.reason.slice(0, 60) });
    });
    registerCoreRoutes(this);
  }

  /** Pool definitions in force: the newest signed document from gossip, else the config file's. */
  pools(): PoolDef[] {
    return this.cluster?.pooldefs.current()?.pools ?? this.config.pools;
  }

  recomputeEffective(): void {
    this.effective = effectiveConfig({ ...this.config, pools: this.pools() }, this.config.node.name);
  }

  get rpcPort(): number {
    return this.#rpcPort;
  }

  /**
   * Calls a peer's agent.ping over mTLS and reports the round trip. A cluster member the network
   * topology does not let us reach directly is pinged through a relay of its network (`via`).
   */
  async pingPeer(peer: PeerAddress, timeoutMs = 5000): Promise<{ node: string; version: string; rttMs: number; via?: string }> {
    const t0 = performance.now();
    const route = this.cluster?.memberlist.member(peer.name) ? this.cluster.route(peer.name) : undefined;
    const body = { from: this.config.node.name };
    const res = (this.cluster && route?.via === 'relay'
      ? await this.cluster.callVia(route.relay, peer.name, 'agent.ping', body, { timeoutMs })
      : await this.peers.call(peer, 'agent.ping', body, { timeoutMs })) as { node: string; version: string };
    return { node: res.node, version: res.version, rttMs: Math.round((performance.now() - t0) * 1000) / 1000, ...(route?.via === 'relay' ? { via: route.relay } : {}) };
  }

  status(): Record<string, unknown> {
    return {
      node: this.config.node.name,
      version: VERSION,
      pid: process.pid,
      uptimeS: Math.round((Date.now() - this.startedAt) / 1000),
      configFile: this.config.file,
      dataDir: this.config.node.dataDir,
      network: this.config.node.network,
      pools: this.effective.pools,
      conflicts: this.effective.conflicts.length,
      members: this.cluster?.memberlist.numMembers() ?? 0,
      health: this.health?.summary().status ?? 'UNKNOWN',
      poolDocument: this.cluster?.pooldefs.current()?.version ?? null,
      rpc: { host: this.config.node.bind, port: this.#rpcPort },
      api: { socket: this.config.api.socket, tcp: this.api.tcpAddress ?? null },
      certificate: { node: this.tls.nodeName, notAfter: this.tls.notAfter.toISOString() },
      stateSchema: this.store.schemaVersion(),
    };
  }

  async reload(): Promise<ReloadResult> {
    const loaded = await loadConfigFile(this.config.file);
    if (!loaded.ok) {
      this.metrics.configReloads.inc({ result: 'refused' });
      this.logger.error({ file: this.config.file, problems: loaded.problems.length }, `config reload refused, keeping the running configuration:\n${formatProblems(loaded.problems)}`);
      this.bus.publish('config.reload_refused', { node: this.config.node.name, file: this.config.file, problems: loaded.problems.length });
      return { ok: false, problems: loaded.problems, needsRestart: [] };
    }
    const next = loaded.config;
    const needsRestart: string[] = [];
    const old = this.config.node;
    for (const k of ['name', 'bind', 'rpcPort', 'gossipPort', 'dataDir', 'advertise'] as const) {
      if (old[k] !== next.node[k]) needsRestart.push(`node.${k}`);
    }
    if (JSON.stringify(old.tls) !== JSON.stringify(next.node.tls)) needsRestart.push('node.tls');
    if (this.config.api.socket !== next.api.socket || JSON.stringify(this.config.api.tcp) !== JSON.stringify(next.api.tcp)) needsRestart.push('api.listeners');
    // Running components keep the settings they started with (a failover master or a file tree
    // in the middle of a transfer is not torn down by a reload): say so instead of pretending.
    const componentSettings = (pools: PoolDef[]) => JSON.stringify(pools.map((p) => [p.name, p.members, p.settings]));
    if (!this.cluster?.pooldefs.current() && componentSettings(this.config.pools) !== componentSettings(next.pools)) {
      needsRestart.push('pools (health rules, failover services, file trees)');
    }
    if (needsRestart.length > 0) {
      this.logger.warn({ settings: needsRestart }, 'config reload: these settings change only after a restart; the rest is applied');
    }
    // Restart-only settings keep their running values so status tells the truth.
    this.config = { ...next, node: { ...old, network: next.node.network, gossipKeyring: next.node.gossipKeyring }, api: { ...this.config.api, tokens: next.api.tokens } };
    this.recomputeEffective();
    this.cluster?.refreshMeta();
    this.api.setTokens(next.api.tokens);
    this.logger.level = next.log.level;
    this.metrics.configReloads.inc({ result: 'applied' });
    this.store.appendHistory('agent', 'config_reloaded', { conflicts: this.effective.conflicts.length });
    this.bus.publish('config.reloaded', { node: this.config.node.name, file: this.config.file });
    this.logger.info({ pools: this.effective.pools, conflicts: this.effective.conflicts.length }, 'config reloaded');
    return { ok: true, problems: [], needsRestart };
  }

  /** Stops the agent; with `leave`, first tells the cluster it leaves on purpose (not a failure). */
  stop(reason = 'requested', opts: { leave?: boolean } = {}): Promise<void> {
    this.#stopping ??= this.#stop(reason, opts.leave ?? false);
    return this.#stopping;
  }

  get stopping(): Promise<void> | undefined {
    return this.#stopping;
  }

  async #stop(reason: string, leave: boolean): Promise<void> {
    this.logger.info({ reason }, 'agent stopping');
    this.bus.publish('agent.stopping', { node: this.config.node.name, reason });
    // A master hands over before the RPC server closes (so it can still reach the voters).
    await Promise.all([...this.failovers.values()].map((f) => f.stop())).catch((err: unknown) => this.logger.warn({ err }, 'failover stop failed'));
    await this.health?.stop();
    await this.files?.stop().catch((err: unknown) => this.logger.warn({ err }, 'file sync stop failed'));
    await this.cluster?.stop({ leave }).catch((err: unknown) => this.logger.warn({ err }, 'membership stop failed'));
    await this.api.stop().catch((err: unknown) => this.logger.warn({ err }, 'api stop failed'));
    await this.rpc.close().catch((err: unknown) => this.logger.warn({ err }, 'rpc stop failed'));
    await this.peers.close();
    this.store.appendHistory('agent', 'stopped', { reason });
    this.store.close();
    this.#lock.release();
    this.logger.info('agent stopped');
    this.#markDone();
  }
}
