/**
 * One-way trees: receivers mirror the source pool. Local modifications, deletions, additions
 * and chmods on a receiver are reverted (event + log), never sent to the sources; a revert that
 * would remove most of the tree pauses it until an admin confirms; a receiver joining with files
 * of its own gets the sources' versions and loses its additions only after its first complete
 * catch-up.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { chmod, mkdir, readFile, readdir, stat, unlink, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { makeCluster, waitFor, type Cluster } from './cluster.ts';

const read = (c: Cluster, n: string, p: string): Promise<string> => readFile(join(c.node(n).root, p), 'utf8');
const exists = (c: Cluster, n: string, p: string): Promise<boolean> => stat(join(c.node(n).root, p)).then(() => true, () => false);
const inSync = (c: Cluster, n: string): boolean => c.node(n).svc.status('www')[0]!.peers.filter((p) => p.peer === 'a').every((p) => p.state === 'in-sync');

test('a one-way receiver reverts local changes to the source\'s version', async () => {
  const c = await makeCluster({ names: ['a', 'b', 'c'], watch: false, tree: { mode: { oneWayFrom: 'src' } } });
  c.members.get('a')!.pools.push('src');
  try {
    await c.start('a');
    await c.start('b');
    const a = c.node('a').root;
    for (let i = 0; i < 5; i++) await writeFile(join(a, `f${i}.txt`), `source ${i}`);
    await mkdir(join(a, 'd'));
    await writeFile(join(a, 'd', 'g.txt'), 'in a dir');
    await chmod(join(a, 'f3.txt'), 0o640);
    await c.node('a').svc.scanNow('www');
    await waitFor('b mirrors a', async () => (await read(c, 'b', 'd/g.txt').catch(() => '')) === 'in a dir' && inSync(c, 'b'));

    const b = c.node('b').root;
    await writeFile(join(b, 'f1.txt'), 'local edit on a receiver');
    await unlink(join(b, 'f2.txt'));
    await unlink(join(b, 'd', 'g.txt'));
    await chmod(join(b, 'f3.txt'), 0o600);
    await writeFile(join(b, 'added.txt'), 'not on the source');
    await mkdir(join(b, 'extra/deep'), { recursive: true });
    await writeFile(join(b, 'extra/deep/x'), 'x');
    await c.node('b').svc.scanNow('www');
    await waitFor('b reverted', async () => (await read(c, 'b', 'f1.txt')) === 'source 1' && (await read(c, 'b', 'f2.txt').catch(() => '')) === 'source 2'
      && (await read(c, 'b', 'd/g.txt').catch(() => '')) === 'in a dir');
    assert.equal((await stat(join(b, 'f3.txt'))).mode & 0o777, 0o640, 'mode restored');
    assert.equal(await exists(c, 'b', 'added.txt'), false, 'local addition removed');
    assert.equal(await exists(c, 'b', 'extra'), false, 'added directory tree removed');
    const ev = c.node('b').events.filter((e) => e.kind === ('files.reverted' as never)).map((e) => e.data as { removed: number; restored: number; paths: string[] });
    assert.ok(ev.length >= 1, 'files.reverted published');
    assert.equal(c.node('b').svc.status('www')[0]!.files.reverted, ev.reduce((n, e) => n + e.removed + e.restored, 0), 'counted in status');
    // d: deleting g.txt changed its mtime, which is set back too.
    assert.deepEqual([...new Set(ev.flatMap((e) => e.paths))].sort(), ['added.txt', 'd', 'd/g.txt', 'extra', 'extra/deep', 'extra/deep/x', 'f1.txt', 'f2.txt', 'f3.txt']);
    // Nothing of b's edits reached the source; b still in sync with it.
    assert.equal(await read(c, 'a', 'f1.txt'), 'source 1');
    assert.equal(await exists(c, 'a', 'added.txt'), false);
    assert.equal(c.node('a').svc.tree('www').record('f2.txt')?.deleted, false);
    assert.deepEqual(c.node('b').svc.tree('www').record('f1.txt')?.version, c.node('a').svc.tree('www').record('f1.txt')?.version, 'no version of b\'s own');
    await waitFor('b in sync with a', async () => {
      c.node('b').svc.tree('www').catchUpAll();
      await new Promise((r) => setTimeout(r, 100));
      return inSync(c, 'b');
    });

    // Source changes still arrive, and overwrite whatever the receiver did meanwhile (unscanned).
    await writeFile(join(b, 'f0.txt'), 'unscanned receiver edit');
    await writeFile(join(a, 'f0.txt'), 'source 0, v2');
    await c.node('a').svc.scanNow('www');
    await waitFor('b took the source\'s new version', async () => (await read(c, 'b', 'f0.txt')) === 'source 0, v2');

    // Reverting that would remove most of the tree: paused, nothing removed until resync.
    for (let i = 0; i < 20; i++) await writeFile(join(b, `junk${i}`), 'junk');
    await c.node('b').svc.scanNow('www');
    assert.match(c.node('b').svc.status('www')[0]!.paused ?? '', /^mass-delete: reverting local additions on a one-way receiver/);
    assert.equal((await readdir(b)).filter((f) => f.startsWith('junk')).length, 20);
    await c.node('b').svc.resync('www');
    await waitFor('junk removed after resync', async () => (await readdir(b)).filter((f) => f.startsWith('junk')).length === 0);
    assert.equal(await read(c, 'b', 'f4.txt'), 'source 4');

    // A receiver joining with files of its own: the source's versions replace its copies; its
    // additions stay until its first complete catch-up, then go.
    await mkdir(join(c.dir, 'c', 'tree'), { recursive: true });
    await writeFile(join(c.dir, 'c', 'tree', 'f4.txt'), 'an old copy on c');
    await writeFile(join(c.dir, 'c', 'tree', 'mine.txt'), 'c\'s own');
    await c.start('c');
    await waitFor('c has the source\'s files', async () => (await read(c, 'c', 'f4.txt')) === 'source 4' && (await read(c, 'c', 'd/g.txt').catch(() => '')) === 'in a dir' && inSync(c, 'c'));
    await c.node('c').svc.scanNow('www');
    assert.equal(await exists(c, 'c', 'mine.txt'), false, 'c\'s addition removed once c mirrored the source');
    assert.equal(await read(c, 'a', 'f4.txt'), 'source 4');
  } finally {
    await c.close();
  }
});
