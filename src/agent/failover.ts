/**
 * One Failover (src/failover) per pool that declares services and that this node serves as a
 * member or voter/witness. The election RPCs travel over the agents' mTLS RPC; the pool view
 * comes from gossip (alive, maintenance) and the health status members publish in their
 * metadata (healthy = OK or WARNING).
 *
 * A service with `backend: { etcd: ... }` is elected through etcd instead (the Failover creates
 * and closes the etcd client itself); the agents' RPC then only forwards switchovers to the master.
 *
 * Public interface: startFailovers(agent, cluster) → Map<pool, Failover>. Depends on failover,
 * cluster, rpc.
 */
import { Failover } from '../failover/failover.ts';
import { resolveFailover } from '../failover/schema.ts';
import { StorePersistence, storeHistorySink } from '../failover/persistence.ts';
import { BadRequestError } from '../failover/messages.ts';
import { RpcError } from '../rpc/errors.ts';
import type { PoolView, PoolMember } from '../failover/types.ts';
import type { Agent } from './agent.ts';
import type { ClusterServices } from './cluster.ts';

const METHODS = ['failover.prevote', 'failover.vote', 'failover.heartbeat', 'failover.timeout_now', 'failover.switch'];

function poolView(cluster: ClusterServices, self: string, members: string[]): PoolView {
  return {
    self,
    members(): PoolMember[] {
      return members.map((name) => {
        const m = cluster.memberlist.member(name);
        const health = m?.meta.health;
        return {
          name,
          alive: m?.state === 'alive',
          healthy: health === 'OK' || health === 'WARNING',
          maintenance: m?.maintenance.on ?? false,
        };
      });
    },
  };
}

export function startFailovers(agent: Agent, cluster: ClusterServices): Map<string, Failover> {
  const node = agent.config.node.name;
  const out = new Map<string, Failover>();
  for (const pool of agent.pools()) {
    const section = pool.settings.failover;
    if (section === undefined) continue;
    const services = resolveFailover(section, pool.members);
    const serves = pool.members.includes(node) || services.some((s) => s.voters.includes(node) || s.witness === node);
    if (!serves || services.length === 0) continue;
    const f = new Failover({
      node,
      pool: pool.name,
      services,
      transport: {
        call: async (peer, method, body, timeoutMs) => {
          const addr = cluster.peerAddress(peer);
          if (!addr) throw new Error(`no RPC address known for ${peer}`);
          return agent.peers.call(addr, method, body, { timeoutMs });
        },
      },
      view: poolView(cluster, node, pool.members),
      persistence: new StorePersistence(agent.store),
      logger: agent.logger,
      bus: agent.bus,
      history: storeHistorySink(agent.store),
      // Claims in local monotonic time plus the process time origin: the history checker maps
      // them onto wall-clock time across agents (test/harness/failover.test.ts).
      trace: (r) => agent.logger.debug({ claim: r, origin: performance.timeOrigin }, 'failover claim'),
    });
    out.set(pool.name, f);
    const etcd = services.filter((s) => s.backend?.kind === 'etcd').map((s) => s.name);
    if (etcd.length > 0) agent.logger.info({ pool: pool.name, services: etcd }, 'failover: these services are elected through etcd');
  }
  for (const method of METHODS) {
    agent.rpc.handle(method, async (body, ctx) => {
      const pool = (body as { pool?: unknown } | null)?.pool;
      const f = typeof pool === 'string' ? out.get(pool) : undefined;
      if (!f) throw new RpcError('bad_request', `${method}: this node serves no failover for pool ${JSON.stringify(pool)}`);
      try {
        return await f.handleRpc(method, body, ctx.peer);
      } catch (err) {
        if (err instanceof BadRequestError) throw new RpcError('bad_request', err.message);
        throw err;
      }
    });
  }
  for (const f of out.values()) f.start();
  return out;
}
