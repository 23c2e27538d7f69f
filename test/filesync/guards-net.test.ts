import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdir, readFile, readdir, rm, unlink, writeFile, lstat } from 'node:fs/promises';
import { spawnSync } from 'node:child_process';
import { join } from 'node:path';
import { makeCluster, waitFor, type Cluster } from './cluster.ts';

/** Entries of `dir` that are not hidden (the tree marker, our temp files). */
const visible = async (dir: string): Promise<number> => (await readdir(dir).catch(() => [])).filter((f) => !f.startsWith('.')).length;
const count = async (dir: string): Promise<number> => (await readdir(dir).catch(() => [])).filter((f) => f.startsWith('f')).length;

/** Nodes a and b with `n` files f0… written on a, scanned and present on b. */
async function seeded(n: number): Promise<Cluster> {
  const c = await makeCluster({ names: ['a', 'b'], watch: false });
  await c.start('a');
  await c.start('b');
  for (let i = 0; i < n; i++) await writeFile(join(c.node('a').root, `f${i}`), `x${i}`);
  await c.node('a').svc.scanNow('www');
  await waitFor(`b has ${n} files`, async () => (await count(c.node('b').root)) === n);
  return c;
}

/** Deletes f<from>…f<to − 1> on a and scans a. */
async function deleteOnA(c: Cluster, from: number, to: number): Promise<void> {
  for (let i = from; i < to; i++) await unlink(join(c.node('a').root, `f${i}`));
  await c.node('a').svc.scanNow('www');
}

test('a vanished or unmounted root pauses the tree instead of deleting on peers; resync restores it', async () => {
  const c = await makeCluster({ names: ['a', 'b'], watch: false });
  try {
    await c.start('a');
    await c.start('b');
    for (let i = 0; i < 12; i++) await writeFile(join(c.node('a').root, `f${i}`), `x${i}`);
    await c.node('a').svc.scanNow('www');
    await waitFor('b has 12 files', async () => (await count(c.node('b').root)) === 12);
    // "Unmount": the root is replaced by an empty directory (no marker).
    await rm(c.node('b').root, { recursive: true });
    await c.node('b').svc.scanNow('www');
    assert.match(c.node('b').svc.status('www')[0]!.paused ?? '', /^root-missing/);
    await mkdir(c.node('b').root);
    await c.node('b').svc.scanNow('www');
    assert.match(c.node('b').svc.status('www')[0]!.paused ?? '', /^marker-missing/, 'an empty directory without the marker (unmounted disk) also pauses');
    assert.ok(c.node('b').events.some((e) => e.kind === ('files.paused' as never)));
    // a's index and files are untouched; a change on a is not applied to the paused b.
    await writeFile(join(c.node('a').root, 'f0'), 'changed');
    await c.node('a').svc.scanNow('www');
    assert.equal(await count(c.node('a').root), 12);
    for (let i = 0; i < 12; i++) assert.equal(c.node('a').svc.tree('www').record(`f${i}`)?.deleted, false);
    assert.equal(await count(c.node('b').root), 0);
    // Admin confirms the new root: b starts over and gets everything back.
    await c.node('b').svc.resync('www');
    await waitFor('b restored from a', async () => (await count(c.node('b').root)) === 12 && (await readFile(join(c.node('b').root, 'f0'), 'utf8')) === 'changed');
    assert.equal(await count(c.node('a').root), 12, 'nothing deleted on a');
  } finally {
    await c.close();
  }
});

test('a local mass delete pauses the tree; peers keep their files until an admin confirms', async () => {
  const c = await seeded(20);
  try {
    await deleteOnA(c, 0, 15);
    assert.match(c.node('a').svc.status('www')[0]!.paused ?? '', /^mass-delete: local change set deletes 15 of 20/);
    assert.equal(await count(c.node('b').root), 20, 'b keeps everything');
    await c.node('a').svc.resync('www');
    await waitFor('b applied the confirmed deletes', async () => (await count(c.node('b').root)) === 5);
    assert.equal(c.node('a').svc.status('www')[0]!.paused, null);
  } finally {
    await c.close();
  }
});

test('a mass delete in slices (an rm -rf over several scans) is held too: recent deletes count together', async () => {
  const c = await seeded(30);
  try {
    // 10 of 30, then 10 of the 20 left: each slice at most half of what is left.
    await deleteOnA(c, 0, 10);
    assert.equal(c.node('a').svc.status('www')[0]!.paused, null, 'a third of the tree: not held');
    await waitFor('b applied the first slice', async () => (await count(c.node('b').root)) === 20);
    await deleteOnA(c, 10, 20);
    assert.match(c.node('a').svc.status('www')[0]!.paused ?? '', /^mass-delete: local change set deletes 20 of 30 entries .*10 of them deleted by the previous scans/);
    assert.equal(await count(c.node('b').root), 20, 'b keeps the second slice');
  } finally {
    await c.close();
  }
});

test('churn is not a mass delete: files deleted and as many created, scan after scan', async () => {
  const c = await seeded(30);
  try {
    for (let round = 0; round < 3; round++) {
      for (let i = 0; i < 9; i++) {
        await unlink(join(c.node('a').root, `f${round * 9 + i}`));
        await writeFile(join(c.node('a').root, `n${round * 9 + i}`), 'new');
      }
      await c.node('a').svc.scanNow('www');
      assert.equal(c.node('a').svc.status('www')[0]!.paused, null, `round ${round}`);
    }
  } finally {
    await c.close();
  }
});

test('post-sync actions run once after a burst of changes', async () => {
  const c = await makeCluster({ names: ['a', 'b'], watch: false, tree: { postSync: [{ run: 'echo "$MULTIALL_TREE $MULTIALL_CHANGED" >> ../post.log', timeoutMs: 5000 }], debounceMs: 300 } });
  try {
    await c.start('a');
    await c.start('b');
    for (let i = 0; i < 5; i++) await writeFile(join(c.node('a').root, `f${i}`), `x${i}`);
    await c.node('a').svc.scanNow('www');
    const log = join(c.node('b').root, '..', 'post.log');
    await waitFor('post-sync ran on b', async () => (await lstat(log).catch(() => null)) !== null);
    assert.equal(await readFile(log, 'utf8'), 'www 5\n');
    assert.ok(c.node('b').events.some((e) => e.kind === ('files.post_sync' as never)));
  } finally {
    await c.close();
  }
});

test('a filesystem mounted inside the tree that goes away: nothing deleted on peers, nothing written in its place; back, or accepted by resync', {
  skip: process.getuid?.() !== 0 ? 'needs root (bind mounts)' : false,
}, async () => {
  const c = await makeCluster({ names: ['a', 'b'], watch: false });
  const mnt = async (...args: string[]): Promise<void> => {
    // umount fails with "target is busy" while the agent still has a file open there (a write
    // or scan finishing): retried for a while.
    for (let attempt = 0; ; attempt++) {
      const r = spawnSync(args[0]!, args.slice(1), { encoding: 'utf8' });
      if (r.status === 0) return;
      if (attempt === 50 || !/busy/.test(r.stderr)) throw new Error(`${args.join(' ')}: ${r.stderr}`);
      await new Promise((res) => setTimeout(res, 100));
    }
  };
  let mounted = '';
  try {
    const A = await c.start('a');
    const B = await c.start('b');
    const disk = join(c.dir, 'uploads-disk');
    await mkdir(disk, { mode: 0o700 });
    for (let i = 0; i < 5; i++) await writeFile(join(disk, `u${i}`), `upload ${i}`);
    for (let i = 0; i < 20; i++) await writeFile(join(A.root, `k${i}`), `keep ${i}`);
    await mkdir(join(A.root, 'uploads'));
    await mnt('mount', '--bind', disk, (mounted = join(A.root, 'uploads')));
    await A.svc.scanNow('www');
    await waitFor('b has the uploads', async () => (await visible(join(B.root, 'uploads'))) === 5);

    await mnt('umount', mounted);
    mounted = '';
    await A.svc.scanNow('www');
    assert.equal(A.svc.tree('www').record('uploads/u0')?.deleted, false, 'not taken as deleted on a');
    assert.equal(A.svc.tree('www').record('uploads')?.mode, 0o700, 'the empty mount point\'s own mode (0755) is not taken either');
    await writeFile(join(B.root, 'uploads', 'from-b'), 'new on b');
    await B.svc.scanNow('www');
    await waitFor('a heard of b\'s new file and held it', () => (A.svc.status('www')[0]!.peers.find((p) => p.peer === 'b')?.behind ?? 0) > 0);
    assert.deepEqual(await readdir(join(A.root, 'uploads')), [], 'nothing written onto the empty mount point');
    assert.equal(await visible(join(B.root, 'uploads')), 6, 'b keeps every upload');

    await mnt('mount', '--bind', disk, (mounted = join(A.root, 'uploads')));
    await waitFor('a got b\'s new file once the filesystem is back', async () => (await readFile(join(disk, 'from-b'), 'utf8').catch(() => '')) === 'new on b', 30_000);

    // Gone for good: an admin accepts the tree as it is; the uploads are then deleted everywhere.
    await mnt('umount', mounted);
    mounted = '';
    await A.svc.resync('www');
    // (readdir throws while uploads is missing: an empty listing means it is there and empty.)
    await waitFor('b applied the accepted deletes', async () => (await readdir(join(B.root, 'uploads'))).filter((f) => !f.startsWith('.')).length === 0);
    assert.equal(await visible(B.root), 21, `the rest stays (b has: ${(await readdir(B.root)).sort().join(' ')})`);
  } finally {
    if (mounted !== '') spawnSync('umount', ['--lazy', mounted]); // never leave a mount behind
    await c.close();
  }
});
