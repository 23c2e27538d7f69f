/**
 * File sync with real agent processes: a tree declared once for the pool (each node's path set
 * by exception, since all run on one host) stays identical; an agent stopped during changes
 * catches up without resurrecting deletes; kill -9 during a large transfer leaves no partial
 * file under the real name and the transfer completes after restart.
 */
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, mkdirSync, writeFileSync, readFileSync, existsSync, readdirSync, unlinkSync, openSync, writeSync, closeSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createHash, randomBytes } from 'node:crypto';
import { waitFor } from '../../src/harness/cluster.ts';
import type { Cluster } from '../../src/harness/cluster.ts';
import { treeCluster } from './files-cluster.ts';

const NODES = ['s1', 's2', 's3'];
const dir = mkdtempSync(join(tmpdir(), 'multiall-files-'));
const root = (n: string) => join(dir, `${n}-site`);
let c: Cluster;

const sha = (p: string) => createHash('sha256').update(readFileSync(p)).digest('hex');
const same = (rel: string, nodes = NODES) => nodes.every((n) => existsSync(join(root(n), rel)) && sha(join(root(n), rel)) === sha(join(root('s1'), rel)));

before(async () => {
  c = await treeCluster(dir, 'web', NODES, { name: 'site', exclude: ['*.swp'], debounce: '200ms', scan_interval: '5s' }, root);
});
after(async () => {
  await c?.destroy();
  rmSync(dir, { recursive: true, force: true });
});

test('a file created on one member appears on every member; excluded files stay local', async () => {
  writeFileSync(join(root('s1'), 'index.html'), '<h1>hello</h1>\n');
  writeFileSync(join(root('s1'), 'draft.swp'), 'editor junk');
  await waitFor(() => same('index.html'), 'index.html on every member');
  assert.ok(!existsSync(join(root('s2'), 'draft.swp')));
  const st = await c.cli('s2', ['files', 'status', '--json']);
  assert.equal(st.code, 0, st.stderr);
  const rows = JSON.parse(st.stdout) as { tree: string; peers: { peer: string }[] }[];
  assert.equal(rows[0]?.tree, 'site');
  assert.deepEqual(rows[0]?.peers.map((p) => p.peer).sort(), ['s1', 's3']);
  // The progress view ends by itself once every peer is in sync.
  await waitFor(async () => {
    const w = await c.cli('s2', ['files', 'status', '--watch']);
    return w.code === 0 && /site\s+\[#+\]\s+100%.*in sync/.test(w.stdout);
  }, 'files status --watch reports in sync');
});

test('a member stopped during changes catches up, and a delete made meanwhile stays deleted', async () => {
  writeFileSync(join(root('s2'), 'old.txt'), 'to be deleted');
  await waitFor(() => same('old.txt'), 'old.txt everywhere');
  assert.equal(await c.stop('s3'), 0);
  unlinkSync(join(root('s1'), 'old.txt'));
  writeFileSync(join(root('s1'), 'index.html'), '<h1>hello again</h1>\n');
  mkdirSync(join(root('s2'), 'img'));
  writeFileSync(join(root('s2'), 'img', 'logo.svg'), '<svg/>');
  await waitFor(() => same('index.html', ['s1', 's2']) && same('img/logo.svg', ['s1', 's2']), 's1 and s2 in sync');
  await c.start('s3');
  await waitFor(() => same('index.html') && same('img/logo.svg') && !existsSync(join(root('s3'), 'old.txt')), 's3 caught up', 40_000);
  assert.ok(!existsSync(join(root('s1'), 'old.txt')), 'the delete was not undone by the returning member');
});

test('kill -9 during a large transfer: no partial file under the real name, completes after restart', async () => {
  const big = join(root('s1'), 'big.bin');
  const fd = openSync(big, 'w');
  for (let i = 0; i < 48; i++) writeSync(fd, randomBytes(1024 * 1024));
  closeSync(fd);
  // Kill the receiver as soon as it has started writing anything for big.bin.
  await waitFor(() => readdirSync(root('s2')).some((f) => f.includes('big.bin')), 's2 starts receiving', 30_000, 5);
  await c.kill('s2');
  const target = join(root('s2'), 'big.bin');
  if (existsSync(target)) assert.equal(sha(target), sha(big), 'a file under the real name must be complete');
  await c.start('s2');
  await waitFor(() => same('big.bin'), 'big.bin complete on every member', 60_000);
  await waitFor(() => readdirSync(root('s2')).every((f) => !f.startsWith('.multiall.')), 'no temp files left on s2', 30_000);
});
