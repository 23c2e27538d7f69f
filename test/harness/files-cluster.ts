/**
 * Harness fixture for file sync tests with real agents: a started cluster whose one pool syncs
 * one tree, each node at its own directory under `dir` (all agents share this host, so every
 * node but the first gets its path by exception).
 */
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { Cluster } from '../../src/harness/cluster.ts';

export async function treeCluster(dir: string, pool: string, nodes: string[], tree: Record<string, unknown> & { name: string }, root: (n: string) => string): Promise<Cluster> {
  for (const n of nodes) mkdirSync(root(n));
  const c = await Cluster.create({
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
    }],
  });
  await c.startAll();
  return c;
}
