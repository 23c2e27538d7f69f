/**
 * Harness fixture for file sync tests with real agents: a started cluster whose one pool syncs
 * one tree, each node at its own directory under `dir` (all agents share this host, so every
 * node but the first gets its path by exception). A node run as another user owns its tree;
 * `more.pools` are added (e.g. the source pool of a one-way tree).
 */
import { chownSync, mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { Cluster } from '../../src/harness/cluster.ts';
import type { ClusterOptions } from '../../src/harness/cluster.ts';

export async function treeCluster(dir: string, pool: string, nodes: string[], tree: Record<string, unknown> & { name: string }, root: (n: string) => string, more: Partial<ClusterOptions> = {}): Promise<Cluster> {
  for (const n of nodes) {
    mkdirSync(root(n));
    const user = more.runAs?.[n];
    if (user !== undefined) chownSync(root(n), user.uid, user.gid); // its tree belongs to it
  }
  const c = await Cluster.create({
    ...more,
    nodes,
    dir: join(dir, 'cluster'),
    pools: [{
      name: pool, members: nodes,
      settings: {
        files: {
          trees: [{ ...tree, path: root(nodes[0]!) }],
          exceptions: Object.fromEntries(nodes.slice(1).map((n) => [n, { [tree.name]: { path: root(n) } }])),
        },
      },
    }, ...(more.pools ?? [])],
  });
  try {
    await c.startAll();
  } catch (e) {
    await c.destroy(); // the agents already started must not outlive the failed fixture
    throw e;
  }
  return c;
}
