/**
 * Resumable large transfers with real agent processes: a bandwidth-limited tree makes a large
 * transfer slow; the receiver, then the sender, is killed -9 in the middle. After the restart the
 * file arrives complete and verified, and the receiver fetches only what its partial file lacked
 * (counted in `files status --json`: bytes.received vs bytes.resumed).
 */
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, readdirSync, statSync, existsSync, writeFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createHash, randomBytes } from 'node:crypto';
import { waitFor } from '../../src/harness/cluster.ts';
import type { Cluster } from '../../src/harness/cluster.ts';
import { treeCluster } from './files-cluster.ts';

const NODES = ['r1', 'r2'];
const SIZE = 24 << 20;
const dir = mkdtempSync(join(tmpdir(), 'multiall-resume-'));
const root = (n: string) => join(dir, `${n}-bulk`);
let c: Cluster;

const sha = (p: string) => createHash('sha256').update(readFileSync(p)).digest('hex');
const partialOf = (name: string) => readdirSync(root('r2')).find((f) => f.startsWith(`.multiall.${name}.`) && f.endsWith('.part.tmp'));
const partialSize = (name: string) => {
  const p = partialOf(name);
  return p === undefined ? 0 : statSync(join(root('r2'), p)).size;
};
type Bytes = { received: number; resumed: number };
async function bytesOf(n: string): Promise<Bytes> {
  const st = await c.cli(n, ['files', 'status', 'bulk', '--json']);
  assert.equal(st.code, 0, st.stderr);
  return (JSON.parse(st.stdout) as { bytes: Bytes }[])[0]!.bytes;
}

before(async () => {
  c = await treeCluster(dir, 'store', NODES, { name: 'bulk', debounce: '200ms', scan_interval: '5s', bandwidth_limit: '4MB/s' }, root);
});
after(async () => {
  await c?.destroy();
  rmSync(dir, { recursive: true, force: true });
});

/** Writes a large random file on r1 and waits until r2's partial of it holds a third. */
async function startTransfer(name: string): Promise<string> {
  const src = join(root('r1'), name);
  writeFileSync(src, randomBytes(SIZE));
  await waitFor(() => partialSize(name) >= SIZE / 3, `r2 received a third of ${name}`, 60_000, 20);
  return src;
}

test('receiver killed -9 mid-transfer: after its restart only the missing part is fetched', async () => {
  const src = await startTransfer('a.bin');
  await c.kill('r2');
  assert.ok(!existsSync(join(root('r2'), 'a.bin')), 'no partial file under the real name');
  const kept = partialSize('a.bin');
  assert.ok(kept >= SIZE / 3 && kept < SIZE, `partial kept (${kept} B)`);
  await c.start('r2');
  await waitFor(() => existsSync(join(root('r2'), 'a.bin')) && sha(join(root('r2'), 'a.bin')) === sha(src), 'a.bin complete on r2', 60_000);
  const b = await bytesOf('r2');
  console.log(`# receiver killed: kept ${kept} B; after restart fetched ${b.received} B, resumed ${b.resumed} B of ${SIZE} B`);
  assert.ok(b.resumed >= kept, `resumed (${b.resumed} B) at least what was kept`);
  assert.ok(b.received < SIZE * 0.75, `fetched after restart (${b.received} B) clearly less than the file (${SIZE} B)`);
  const metric = /multiall_files_bytes\{[^}]*kind="resumed"[^}]*\} (\d+)/.exec((await c.api('r2', 'GET', '/metrics')) as string);
  assert.equal(Number(metric?.[1]), b.resumed, 'the same count on /metrics');
  assert.equal(partialOf('a.bin'), undefined, 'no partial left');
});

test('sender killed -9 mid-transfer: the receiver keeps its partial and resumes when the sender is back', async () => {
  const before = await bytesOf('r2');
  const src = await startTransfer('b.bin');
  await c.kill('r1');
  const kept = partialSize('b.bin');
  assert.ok(kept >= SIZE / 3 && kept < SIZE, `partial kept on r2 (${kept} B)`);
  assert.ok(!existsSync(join(root('r2'), 'b.bin')), 'no partial file under the real name');
  await c.start('r1');
  await waitFor(() => existsSync(join(root('r2'), 'b.bin')) && sha(join(root('r2'), 'b.bin')) === sha(src), 'b.bin complete on r2', 60_000);
  const after = await bytesOf('r2');
  const fetched = after.received - before.received;
  console.log(`# sender killed: kept ${kept} B; fetched ${fetched} B in all, resumed ${after.resumed - before.resumed} B of ${SIZE} B`);
  assert.ok(after.resumed - before.resumed >= kept, 'the kept part was not fetched again');
  assert.ok(fetched < SIZE * 1.05, `fetched ${fetched} B in all for a ${SIZE} B file (from scratch: ${SIZE + kept} B)`);
  assert.equal(partialOf('b.bin'), undefined, 'no partial left');
});
