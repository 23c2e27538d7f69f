/**
 * File sync and membership share each agent's event loop: a bulk sync (4,000 small files and
 * 256 MB of large ones from one node to two) must not make the members suspect each other.
 * Real agents with the LAN gossip profile (probe timeout 500 ms), as deployed.
 */
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { createCipheriv } from 'node:crypto';
import { mkdtempSync, mkdirSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { waitFor } from '../../src/harness/cluster.ts';
import type { Cluster } from '../../src/harness/cluster.ts';
import { treeCluster } from './files-cluster.ts';

const NODES = ['b1', 'b2', 'b3'];
const dir = mkdtempSync(join(tmpdir(), 'multiall-bulk-'));
const root = (n: string) => join(dir, `${n}-data`);
let c: Cluster;

before(async () => {
  c = await treeCluster(dir, 'bulk', NODES, { name: 'data', debounce: '200ms', scan_interval: '10m' }, root, { gossip: { profile: 'lan' }, logLevel: 'info' });
});
after(async () => {
  await c?.destroy();
  rmSync(dir, { recursive: true, force: true });
});

test('a bulk sync does not disturb membership: no suspicion, no failure', async () => {
  const seen: string[] = [];
  const subs = NODES.map((n) => c.events(n, (ev) => {
    if (ev.kind === 'member.suspect' || ev.kind === 'member.failed') seen.push(`${n}: ${ev.kind} ${JSON.stringify(ev.data).slice(0, 120)}`);
  }));
  try {
    await Promise.all(subs.map((s) => s.ready));
    for (let d = 0; d < 40; d++) {
      mkdirSync(join(root('b1'), `d${d}`));
      for (let f = 0; f < 100; f++) writeFileSync(join(root('b1'), `d${d}`, `f${f}`), `file ${d}/${f} `.repeat(100));
    }
    for (let i = 0; i < 4; i++) writeFileSync(join(root('b1'), `big${i}`), createCipheriv('aes-128-ctr', Buffer.alloc(16, i), Buffer.alloc(16)).update(Buffer.alloc(64 << 20)));
    const done = (n: string): boolean => {
      try {
        return readdirSync(root(n)).includes('big3') && readdirSync(join(root(n), 'd39')).length === 100;
      } catch {
        return false;
      }
    };
    await waitFor(() => done('b2') && done('b3'), 'b2 and b3 have everything', 180_000);
    await new Promise((r) => setTimeout(r, 2000)); // a suspicion raised at the end would show by now
    assert.deepEqual(seen, []);
  } finally {
    for (const s of subs) s.stop();
  }
});
