/**
 * A one-way tree with real agents: w1 is in the source pool, w2 and w3 only in the tree's pool.
 * A change on the source reaches the receivers by notification (the scan interval and the
 * anti-entropy period are far longer than the wait), so the source agent knows it is one; a
 * receiver's local edit, delete and addition are reverted, and never reach the source.
 */
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, existsSync, writeFileSync, unlinkSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { waitFor } from '../../src/harness/cluster.ts';
import type { Cluster } from '../../src/harness/cluster.ts';
import { treeCluster } from './files-cluster.ts';

const NODES = ['w1', 'w2', 'w3'];
const dir = mkdtempSync(join(tmpdir(), 'multiall-oneway-'));
const root = (n: string) => join(dir, `${n}-site`);
const content = (n: string, f: string) => (existsSync(join(root(n), f)) ? readFileSync(join(root(n), f), 'utf8') : null);
let c: Cluster;

before(async () => {
  c = await treeCluster(dir, 'web', NODES, { name: 'site', mode: { one_way_from: 'deploy' }, debounce: '200ms', scan_interval: '10m' }, root, { pools: [{ name: 'deploy', members: ['w1'] }] });
});
after(async () => {
  await c?.destroy();
  rmSync(dir, { recursive: true, force: true });
});

test('receivers mirror the source; their local changes are reverted and never reach it', async () => {
  // The source notifies the members it sees alive: wait until it sees both.
  await waitFor(async () => {
    const st = await c.cli('w1', ['files', 'status', 'site', '--json']);
    return (JSON.parse(st.stdout) as { peers: { alive: boolean }[] }[])[0]!.peers.filter((p) => p.alive).length === 2;
  }, 'w1 sees both receivers alive', 20_000);
  writeFileSync(join(root('w1'), 'index.html'), 'v1 from the source');
  writeFileSync(join(root('w1'), 'about.html'), 'about');
  await waitFor(() => ['w2', 'w3'].every((n) => content(n, 'index.html') === 'v1 from the source' && content(n, 'about.html') === 'about'), 'receivers got the files', 20_000);
  writeFileSync(join(root('w2'), 'index.html'), 'defaced on w2');
  unlinkSync(join(root('w2'), 'about.html'));
  writeFileSync(join(root('w2'), 'shell.php'), 'dropped on w2');
  await waitFor(() => content('w2', 'index.html') === 'v1 from the source' && content('w2', 'about.html') === 'about' && content('w2', 'shell.php') === null, 'w2 reverted', 20_000);
  const events = await c.api('w2', 'GET', '/v1/files') as { files: { reverted: number } }[];
  assert.ok(events[0]!.files.reverted >= 3, 'reverts counted');
  assert.equal(content('w1', 'index.html'), 'v1 from the source');
  assert.equal(content('w1', 'shell.php'), null);
  assert.equal(content('w3', 'shell.php'), null);
  writeFileSync(join(root('w1'), 'index.html'), 'v2 from the source');
  await waitFor(() => ['w2', 'w3'].every((n) => content(n, 'index.html') === 'v2 from the source'), 'v2 on the receivers', 20_000);
});
