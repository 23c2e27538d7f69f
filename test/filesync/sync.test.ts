import { test } from 'node:test';
import assert from 'node:assert/strict';
import { chmod, lstat, mkdir, readFile, readlink, rename, rm, stat, symlink, unlink, writeFile, open, readdir } from 'node:fs/promises';
import { join } from 'node:path';
import { makeCluster, waitFor, type Cluster } from './cluster.ts';
import { pseudoRandom } from './helpers.ts';

const read = (c: Cluster, n: string, p: string): Promise<string> => readFile(join(c.node(n).root, p), 'utf8');
const exists = (c: Cluster, n: string, p: string): Promise<boolean> => lstat(join(c.node(n).root, p)).then(() => true, () => false);

test('create, modify, delete, rename, chmod, symlink and empty dir propagate to every node (watcher-driven)', async () => {
  const c = await makeCluster({ names: ['a', 'b', 'c'] });
  try {
    for (const n of ['a', 'b', 'c']) await c.start(n);
    const a = c.node('a').root;
    await mkdir(join(a, 'site/css'), { recursive: true });
    await writeFile(join(a, 'site/index.html'), '<h1>hello</h1>');
    await writeFile(join(a, 'site/css/main.css'), 'body{}');
    await mkdir(join(a, 'empty'));
    await symlink('site/index.html', join(a, 'home'));
    for (const n of ['b', 'c']) {
      await waitFor(`${n} has the files`, async () => (await read(c, n, 'site/index.html')) === '<h1>hello</h1>' && (await read(c, n, 'site/css/main.css')) === 'body{}');
      await waitFor(`${n} has the symlink and empty dir`, async () => (await readlink(join(c.node(n).root, 'home'))) === 'site/index.html' && (await stat(join(c.node(n).root, 'empty'))).isDirectory());
    }
    // Modify on b, chmod on c, rename and delete on a.
    await writeFile(join(c.node('b').root, 'site/index.html'), '<h1>changed on b</h1>');
    await waitFor('a sees b\'s edit', async () => (await read(c, 'a', 'site/index.html')) === '<h1>changed on b</h1>');
    await chmod(join(c.node('c').root, 'site/css/main.css'), 0o600);
    await waitFor('chmod reaches a and b', async () => ((await stat(join(c.node('a').root, 'site/css/main.css'))).mode & 0o777) === 0o600 && ((await stat(join(c.node('b').root, 'site/css/main.css'))).mode & 0o777) === 0o600);
    const mtimeA = (await stat(join(c.node('a').root, 'site/css/main.css'))).mtimeMs;
    assert.ok(Math.abs(mtimeA - (await stat(join(c.node('c').root, 'site/css/main.css'))).mtimeMs) < 1, 'mtime preserved');
    await rename(join(a, 'site/css/main.css'), join(a, 'site/css/renamed.css'));
    await rm(join(a, 'empty'), { recursive: true });
    for (const n of ['b', 'c']) {
      await waitFor(`${n} sees the rename`, async () => (await read(c, n, 'site/css/renamed.css')) === 'body{}' && !(await exists(c, n, 'site/css/main.css')));
      await waitFor(`${n} sees the delete`, async () => !(await exists(c, n, 'empty')));
    }
    // The rename was served from the local copy, not the network.
    assert.ok(c.node('b').svc.status('www')[0]!.files.copiedLocally >= 1, 'renamed content copied locally');
    const st = c.node('a').svc.status('www')[0]!;
    await waitFor('a reports b and c in sync', () => c.node('a').svc.status('www')[0]!.peers.every((p) => p.state === 'in-sync'));
    assert.equal(st.paused, null);
  } finally {
    await c.close();
  }
});

test('a 1-byte edit in a 20 MB file transfers a small fraction of it', async () => {
  const c = await makeCluster({ names: ['a', 'b'], watch: false });
  try {
    await c.start('a');
    await c.start('b');
    const big = pseudoRandom(20 * 1024 * 1024, 7);
    await writeFile(join(c.node('a').root, 'big.bin'), big);
    await c.node('a').svc.scanNow('www');
    await waitFor('b has big.bin', async () => (await stat(join(c.node('b').root, 'big.bin')).catch(() => null))?.size === big.length && c.node('b').svc.tree('www').record('big.bin')?.hash !== undefined, 60_000);
    const before = c.node('b').svc.status('www')[0]!.bytes;
    assert.ok(before.received >= big.length, 'the first copy went whole-file');
    const fh = await open(join(c.node('a').root, 'big.bin'), 'r+');
    await fh.write(Buffer.from([big[10 * 1024 * 1024]! ^ 0xff]), 0, 1, 10 * 1024 * 1024);
    await fh.close();
    await c.node('a').svc.scanNow('www');
    const wantHash = c.node('a').svc.tree('www').record('big.bin')!.hash;
    await waitFor('b has the edit', () => c.node('b').svc.tree('www').record('big.bin')?.hash === wantHash, 60_000);
    const after = c.node('b').svc.status('www')[0]!.bytes;
    const wire = after.received - before.received + after.sigSent - before.sigSent;
    const onDisk = await readFile(join(c.node('b').root, 'big.bin'));
    big[10 * 1024 * 1024] = big[10 * 1024 * 1024]! ^ 0xff;
    assert.ok(onDisk.equals(big), 'content identical');
    assert.ok(wire < big.length * 0.02, `wire bytes ${wire} should be < 2% of ${big.length}`);
    console.log(`# 1-byte edit in 20 MiB: ${after.received - before.received} B of delta ops + ${after.sigSent - before.sigSent} B of signature`);
  } finally {
    await c.close();
  }
});

test('concurrent edits: the same conflict copy on both sides, winner under the name', async () => {
  const c = await makeCluster({ names: ['a', 'b'], watch: false });
  try {
    await c.start('a');
    await c.start('b');
    await writeFile(join(c.node('a').root, 'doc.txt'), 'base\n');
    await c.node('a').svc.scanNow('www');
    await waitFor('b has doc', async () => (await read(c, 'b', 'doc.txt').catch(() => '')) === 'base\n');
    // Both edit before either scans: concurrent versions.
    await c.stop('b');
    await writeFile(join(c.node('a').root, 'doc.txt'), 'edit from a\n');
    await writeFile(join(c.node('b').root, 'doc.txt'), 'edit from b, later\n');
    const later = new Date(Date.now() + 5000);
    const { utimes } = await import('node:fs/promises');
    await utimes(join(c.node('b').root, 'doc.txt'), later, later); // b's edit is newer: b wins
    await c.node('a').svc.scanNow('www');
    await c.start('b');
    const copies = async (n: string): Promise<string[]> => (await readdir(c.node(n).root)).filter((f) => f.includes('.conflict-') && !f.startsWith('.multiall.')).sort();
    await waitFor('conflict copy on both', async () => (await copies('a')).length === 1 && (await copies('b')).length === 1);
    assert.deepEqual(await copies('a'), await copies('b'));
    const copy = (await copies('a'))[0]!;
    assert.match(copy, /^doc\.conflict-a-\d{8}-\d{6}\.txt$/);
    await waitFor('contents settle', async () => (await read(c, 'a', 'doc.txt')) === 'edit from b, later\n' && (await read(c, 'b', 'doc.txt')) === 'edit from b, later\n');
    assert.equal(await read(c, 'a', copy), 'edit from a\n');
    assert.equal(await read(c, 'b', copy), 'edit from a\n');
    assert.ok(c.node('a').svc.conflicts().length + c.node('b').svc.conflicts().length >= 1);
    assert.ok([...c.node('a').events, ...c.node('b').events].some((e) => e.kind === ('files.conflict' as never)));
    await waitFor('in sync after the conflict', () => c.node('a').svc.status('www')[0]!.peers[0]!.state === 'in-sync');
  } finally {
    await c.close();
  }
});

test('unscanned local files are never overwritten by incoming versions (new path, edited file, many files at once)', async () => {
  const c = await makeCluster({ names: ['a', 'b'], watch: false });
  try {
    await c.start('a');
    await c.start('b');
    await writeFile(join(c.node('a').root, 'edited.txt'), 'v1');
    await c.node('a').svc.scanNow('www');
    await waitFor('b has edited.txt', async () => (await read(c, 'b', 'edited.txt').catch(() => '')) === 'v1');
    // b gets local files nobody scanned yet: one at a path a is about to create, one edit.
    await writeFile(join(c.node('b').root, 'new.txt'), 'local, unscanned');
    await writeFile(join(c.node('b').root, 'edited.txt'), 'local edit, unscanned');
    await writeFile(join(c.node('a').root, 'new.txt'), 'from a');
    await writeFile(join(c.node('a').root, 'edited.txt'), 'v2 from a');
    for (let i = 0; i < 40; i++) await writeFile(join(c.node('a').root, `bulk${i}.txt`), `bulk ${i}`);
    await c.node('a').svc.scanNow('www');
    await waitFor('b has the bulk files', async () => (await read(c, 'b', 'bulk39.txt').catch(() => '')) === 'bulk 39');
    assert.equal(await read(c, 'b', 'new.txt'), 'local, unscanned');
    assert.equal(await read(c, 'b', 'edited.txt'), 'local edit, unscanned');
    assert.ok(!(await readdir(c.node('b').root)).some((f) => f.startsWith('.multiall.') && f.endsWith('.tmp')), 'no temp files left');
    // Once b scans, both sides see concurrent versions and resolve them like any conflict.
    await c.node('b').svc.scanNow('www');
    await waitFor('conflicts resolved the same way on both', async () => (await read(c, 'a', 'new.txt')) === (await read(c, 'b', 'new.txt')) && (await read(c, 'a', 'edited.txt')) === (await read(c, 'b', 'edited.txt')));
  } finally {
    await c.close();
  }
});

test('a node that was offline catches up, and a delete made meanwhile does not resurrect', async () => {
  const c = await makeCluster({ names: ['a', 'b', 'c'], watch: false });
  try {
    for (const n of ['a', 'b', 'c']) await c.start(n);
    const a = c.node('a').root;
    for (let i = 0; i < 5; i++) await writeFile(join(a, `f${i}.txt`), `v1 ${i}`);
    await c.node('a').svc.scanNow('www');
    await waitFor('c has everything', async () => (await read(c, 'c', 'f4.txt').catch(() => '')) === 'v1 4');
    await c.stop('c');
    await writeFile(join(a, 'f1.txt'), 'v2 1');
    await unlink(join(a, 'f2.txt'));
    await writeFile(join(a, 'new.txt'), 'created while c was away');
    await c.node('a').svc.scanNow('www');
    await waitFor('b got the changes', async () => (await read(c, 'b', 'new.txt').catch(() => '')) === 'created while c was away' && !(await exists(c, 'b', 'f2.txt')));
    await c.stop('a'); // only b can tell c now
    await c.start('c');
    await waitFor('c caught up from b', async () => (await read(c, 'c', 'f1.txt')) === 'v2 1' && (await read(c, 'c', 'new.txt').catch(() => '')) === 'created while c was away' && !(await exists(c, 'c', 'f2.txt')));
    await c.start('a');
    await c.node('c').svc.scanNow('www');
    await waitFor('everyone in sync', () => ['a', 'b', 'c'].every((n) => c.node(n).svc.status('www')[0]!.peers.every((p) => p.state === 'in-sync')));
    for (const n of ['a', 'b', 'c']) assert.equal(await exists(c, n, 'f2.txt'), false, `f2 stays deleted on ${n}`);
    assert.equal(c.node('c').svc.tree('www').record('f2.txt')?.deleted, true, 'tombstone recorded');
  } finally {
    await c.close();
  }
});

test('watcher events narrow the scan to where they happened: add, chmod, directory move, subtree delete, new deep tree', async () => {
  const c = await makeCluster({ names: ['a', 'b'] });
  try {
    const a = join(c.dir, 'a', 'tree'); // the root a will get
    for (let d = 0; d < 10; d++) {
      await mkdir(join(a, `d${d}`), { recursive: true });
      for (let f = 0; f < 30; f++) await writeFile(join(a, `d${d}`, `f${f}`), `file ${d}/${f}`);
    }
    await c.start('a');
    await c.start('b');
    await waitFor('b has the 300 files', async () => (await readdir(join(c.node('b').root, 'd9'))).length === 30, 30_000);
    const scoped = async (what: string, done: () => Promise<boolean>): Promise<void> => {
      await waitFor(`b: ${what}`, done);
      const s = c.node('a').svc.status('www')[0]!.lastScan!;
      assert.ok(s.scoped, `${what}: a scanned only the watcher's scope`);
      assert.ok(s.entries <= 40, `${what}: a's scan saw ${s.entries} entries, not the tree's 310`);
    };
    await writeFile(join(a, 'd3/new.txt'), 'new');
    await scoped('new file', async () => (await read(c, 'b', 'd3/new.txt')) === 'new');
    await chmod(join(a, 'd1/f1'), 0o600);
    await scoped('chmod', async () => ((await stat(join(c.node('b').root, 'd1/f1'))).mode & 0o777) === 0o600);
    await rename(join(a, 'd5'), join(a, 'd5moved'));
    await scoped('directory move', async () => (await read(c, 'b', 'd5moved/f29')) === 'file 5/29' && !(await exists(c, 'b', 'd5')));
    await rm(join(a, 'd7'), { recursive: true });
    await scoped('subtree delete', async () => !(await exists(c, 'b', 'd7')));
    await mkdir(join(a, 'x/y'), { recursive: true });
    await writeFile(join(a, 'x/y/z'), 'deep');
    await scoped('new deep tree', async () => (await read(c, 'b', 'x/y/z')) === 'deep');
    // The narrowed scans recorded exactly what a full scan finds: a verifying rescan changes nothing.
    assert.equal(await c.node('a').svc.scanNow('www'), 0);
    assert.equal(c.node('a').svc.status('www')[0]!.lastScan!.scoped, false);
    assert.equal(c.node('a').svc.status('www')[0]!.entries, c.node('b').svc.status('www')[0]!.entries);
    // Deleting most of the tree is still held by the mass-delete guard (its share is of the whole index).
    for (const d of ['d0', 'd1', 'd2', 'd3', 'd4', 'd6', 'd8']) await rm(join(a, d), { recursive: true });
    await waitFor('a paused the tree', () => c.node('a').svc.status('www')[0]!.paused?.startsWith('mass-delete') === true);
    assert.equal(await read(c, 'b', 'd0/f0'), 'file 0/0', 'b keeps its files');
  } finally {
    await c.close();
  }
});

test('restart rehashes only changed files', async () => {
  const c = await makeCluster({ names: ['a'], watch: false });
  try {
    await c.start('a');
    for (let i = 0; i < 20; i++) await writeFile(join(c.node('a').root, `f${i}`), `content ${i}`);
    await c.node('a').svc.scanNow('www');
    await c.stop('a');
    const old = new Date(Date.now() - 60_000);
    const { utimes } = await import('node:fs/promises');
    for (let i = 0; i < 20; i++) await utimes(join(c.node('a').root, `f${i}`), old, old); // not racy any more
    await writeFile(join(c.node('a').root, 'f3'), 'changed');
    await utimes(join(c.node('a').root, 'f3'), old, new Date(Date.now() - 30_000));
    await c.start('a');
    await c.node('a').svc.scanNow('www'); // second scan after restart: the mtime change above made them all "changed" once
    await writeFile(join(c.node('a').root, 'f5'), 'changed too');
    await utimes(join(c.node('a').root, 'f5'), old, new Date(Date.now() - 20_000));
    await c.stop('a');
    await c.start('a');
    const s = c.node('a').svc.status('www')[0]!.lastScan!;
    assert.equal(s.hashed, 1, 'only f5 rehashed after restart');
    assert.equal(s.reused, 19);
  } finally {
    await c.close();
  }
});

test('directory and symlink mtimes propagate; a directory\'s is set after its children are written', async () => {
  const c = await makeCluster({ names: ['a', 'b'] });
  try {
    await c.start('a');
    await c.start('b');
    const a = c.node('a').root;
    const { lutimes, utimes } = await import('node:fs/promises');
    const mtime = async (n: string, p: string): Promise<number> => (await lstat(join(c.node(n).root, p))).mtimeMs;
    const same = async (p: string): Promise<boolean> => Math.abs((await mtime('a', p)) - (await mtime('b', p))) < 1;
    await mkdir(join(a, 'd/sub'), { recursive: true });
    for (let i = 0; i < 5; i++) await writeFile(join(a, 'd', `f${i}`), `file ${i}`);
    await writeFile(join(a, 'd/sub/x'), 'x');
    await symlink('d/f0', join(a, 'link'));
    // Set after the children were created (as `rsync -a` or `cp -a` would leave them).
    await utimes(join(a, 'd/sub'), new Date('2020-01-02T03:04:05Z'), new Date('2020-01-02T03:04:05Z'));
    await utimes(join(a, 'd'), new Date('2021-05-06T07:08:09Z'), new Date('2021-05-06T07:08:09Z'));
    await lutimes(join(a, 'link'), new Date('2019-09-09T09:09:09Z'), new Date('2019-09-09T09:09:09Z'));
    await c.node('a').svc.scanNow('www');
    await waitFor('b has the files with a\'s directory and symlink mtimes', async () => (await read(c, 'b', 'd/f4').catch(() => '')) === 'file 4' && (await exists(c, 'b', 'd/sub/x'))
      && (await same('d')) && (await same('d/sub')) && (await same('link')));
    assert.equal(new Date(await mtime('b', 'd')).toISOString(), '2021-05-06T07:08:09.000Z');
    assert.equal(new Date(await mtime('b', 'link')).toISOString(), '2019-09-09T09:09:09.000Z');
    // A new file in d on a (then d's mtime set again): on b d's mtime is a's, not the time b wrote the file.
    await writeFile(join(a, 'd/new'), 'new');
    await utimes(join(a, 'd'), new Date('2022-01-01T00:00:00Z'), new Date('2022-01-01T00:00:00Z'));
    await lutimes(join(a, 'link'), new Date('2018-01-01T00:00:00Z'), new Date('2018-01-01T00:00:00Z'));
    await c.node('a').svc.scanNow('www');
    await waitFor('b follows', async () => (await exists(c, 'b', 'd/new')) && (await same('d')) && (await same('link')));
    assert.equal(new Date(await mtime('b', 'd')).toISOString(), '2022-01-01T00:00:00.000Z');
    // What b wrote is not a local change of b's (which would bump b's counter in d's version).
    await c.node('b').svc.scanNow('www');
    for (const n of ['a', 'b']) {
      const d = c.node(n).svc.tree('www').record('d')!;
      assert.equal(d.modifiedBy, 'a', `d last changed by a (seen on ${n})`);
      assert.equal(d.version.b, undefined, `b never bumped d (seen on ${n})`);
    }
    // The other way round too.
    await utimes(join(c.node('b').root, 'd/sub'), new Date('2023-03-03T03:03:03Z'), new Date('2023-03-03T03:03:03Z'));
    await c.node('b').svc.scanNow('www');
    await waitFor('a takes b\'s directory mtime', () => same('d/sub'));
  } finally {
    await c.close();
  }
});

test('an initial sync larger than one entries page pulls every file once, without failures (directories in a later page first)', async () => {
  const c = await makeCluster({ names: ['a', 'b'], watch: false });
  try {
    await c.start('a');
    const a = c.node('a').root;
    // 2,200 entries: two pages (2,048 + 152) in bucket order, so some directories come after their files.
    for (let d = 0; d < 100; d++) await mkdir(join(a, `d${d}`), { recursive: true });
    for (let i = 0; i < 2100; i++) await writeFile(join(a, `d${i % 100}`, `f${i}.txt`), `file ${i}`);
    await c.node('a').svc.scanNow('www');
    await c.start('b');
    await waitFor('b has every entry', () => c.node('b').svc.status('www')[0]!.entries >= 2200, 60_000);
    const synced = c.node('b').events.filter((e) => e.kind === 'files.synced').map((e) => e.data as { applied: number; failed: number });
    assert.equal(synced.reduce((n, s) => n + s.failed, 0), 0, 'no entry failed for a missing parent directory');
    assert.equal(c.node('b').svc.status('www')[0]!.files.pulled, 2100);
    assert.equal(await read(c, 'b', 'd99/f2099.txt'), 'file 2099');
  } finally {
    await c.close();
  }
});
