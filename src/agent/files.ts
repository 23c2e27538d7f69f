/**
 * File sync in the agent: one FileSyncService with the trees of every pool this node belongs to
 * (`settings.files` of each pool, per-node exceptions applied). Peers and their liveness come
 * from membership; content moves over the agents' mTLS RPC streams.
 *
 * Public interface: startFiles(agent, cluster) → FileSyncService | undefined. Depends on
 * filesync, cluster.
 */
import { FileSyncService } from '../filesync/service.ts';
import { resolveTrees } from '../filesync/schema.ts';
import { removeStaleTempFiles } from '../filesync/cleanup.ts';
import { registerFilesMetrics } from '../filesync/metrics.ts';
import type { TreeConfig } from '../filesync/types.ts';
import type { Agent } from './agent.ts';
import type { ClusterServices } from './cluster.ts';

export async function startFiles(agent: Agent, cluster: ClusterServices): Promise<FileSyncService | undefined> {
  const node = agent.config.node.name;
  const pools = agent.pools();
  const trees: TreeConfig[] = [];
  for (const pool of pools) {
    if (!pool.members.includes(node) || pool.settings.files === undefined) continue;
    trees.push(...resolveTrees(pool.settings.files as Parameters<typeof resolveTrees>[0], { node, pool: pool.name }));
  }
  if (trees.length === 0) return undefined;
  for (const t of trees) {
    const { removed, kept } = await removeStaleTempFiles(t.root);
    if (removed > 0) agent.logger.warn({ tree: t.name, removed }, 'removed temp files of transfers interrupted by a crash');
    if (kept > 0) agent.logger.info({ tree: t.name, kept }, 'kept partial files of interrupted transfers: they resume');
  }
  const service = new FileSyncService(
    {
      node,
      store: agent.store,
      rpc: agent.rpc,
      peers: agent.peers,
      bus: agent.bus,
      logger: agent.logger.child({ component: 'files' }),
      members: (poolName) => {
        const pool = agent.pools().find((p) => p.name === poolName);
        // This node is listed too (alive): a tree needs to know whether it is a source itself.
        return (pool?.members ?? [])
          .map((name) => {
            if (name === node) return { name, alive: true };
            const address = cluster.peerAddress(name);
            return { name, alive: cluster.memberlist.member(name)?.state === 'alive', ...(address ? { address } : {}) };
          });
      },
    },
    trees,
  );
  await service.start();
  registerFilesMetrics(agent.metrics.registry, service);
  // A member coming back (or joining) triggers a catch-up with it.
  for (const kind of ['member.joined', 'member.alive', 'member.updated'] as const) {
    agent.bus.on(kind, () => service.onMembersChanged());
  }
  agent.logger.info({ trees: trees.map((t) => `${t.pool}/${t.name}:${t.root}`) }, 'file sync started');
  return service;
}
