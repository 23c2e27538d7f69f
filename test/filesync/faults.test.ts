/**
 * Fault paths of transfers and catch-ups, each once a bug: a file failing before its first op,
 * a stream that cannot be opened, a sender's miss during a resume, a stream cut inside a
 * signature, a directory replaced by a file, setuid bits under a chown, a peer paging forever.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { lstat, mkdir, readFile, readdir, readlink, rm, rmdir, stat, unlink, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import type { PeerAddress } from '../../src/rpc/client.ts';
import { RpcServer } from '../../src/rpc/server.ts';
import { SUMMARY_BYTES } from '../../src/filesync/buckets.ts';
import { EMPTY_SIGNATURE, fetchBatch, type FetchItem } from '../../src/filesync/transfer.ts';
import { patch } from '../../src/filesync/delta/index.ts';
import { FileSyncError } from '../../src/filesync/errors.ts';
import { partialPathFor } from '../../src/filesync/partial.ts';
import { logger, makeCluster, waitFor } from './cluster.ts';
import { pseudoRandom, withTempDir } from './helpers.ts';

const sha = (b: Uint8Array): string => createHash('sha256').update(b).digest('hex');
const counters = (): { opBytes: number; sigBytes: number; resumedBytes: number } => ({ opBytes: 0, sigBytes: 0, resumedBytes: 0 });

test('a fetched file that fails before its first op (no parent directory) fails alone: the tree goes on and catches up', async () => {
  const c = await makeCluster({ names: ['a', 'b'], watch: false });
  try {
    const A = await c.start('a');
    const B = await c.start('b');
    await writeFile(join(A.root, 'd'), 'small');
    await A.svc.scanNow('www');
    await waitFor('b has file d', async () => (await lstat(join(B.root, 'd'))).isFile());
    // On b, d is deleted and not scanned yet; on a, d becomes a directory with a big file: b
    // skips d (its disk changed) and the big file's temp file cannot be created. Its ops (more
    // than the receiver's queue holds) used to wait forever for a reader, and with them the tree.
    await unlink(join(B.root, 'd'));
    await unlink(join(A.root, 'd'));
    await mkdir(join(A.root, 'd'));
    const big = pseudoRandom(12 << 20, 3);
    await writeFile(join(A.root, 'd', 'big'), big);
    await A.svc.scanNow('www');
    await waitFor('a sent b more of d/big than b\'s queue for one file holds', () => A.svc.status('www')[0]!.bytes.sent > 5 << 20);
    const scanned = await Promise.race([B.svc.scanNow('www').then(() => true), new Promise<false>((r) => setTimeout(() => r(false), 15_000).unref())]);
    assert.ok(scanned, 'a scan of b\'s tree completes (its lane is not blocked)');
    await waitFor('b gets d/big once its delete of d lost to a\'s directory', async () => sha(await readFile(join(B.root, 'd', 'big'))) === sha(big), 30_000);
  } finally {
    await c.close();
  }
});

test('a directory replaced by a file arrives as it is: no skip, no local version, no tombstone', async () => {
  const c = await makeCluster({ names: ['a', 'b'], watch: false });
  try {
    const A = await c.start('a');
    const B = await c.start('b');
    await mkdir(join(A.root, 'x'));
    await A.svc.scanNow('www');
    await waitFor('b has directory x', async () => (await lstat(join(B.root, 'x'))).isDirectory());
    await rmdir(join(A.root, 'x'));
    await writeFile(join(A.root, 'x'), pseudoRandom(5000, 8));
    await A.svc.scanNow('www');
    await waitFor('b has file x', async () => (await lstat(join(B.root, 'x'))).isFile());
    await B.svc.scanNow('www');
    const theirs = A.svc.tree('www').record('x')!;
    const ours = B.svc.tree('www').record('x')!;
    assert.equal(ours.type, 'file');
    assert.equal(ours.deleted, false);
    assert.deepEqual(ours.version, theirs.version, 'b took a\'s version as it is (a skip used to leave a tombstone bumped by b)');
  } finally {
    await c.close();
  }
});

test('fetch faults: an unopenable stream reports every file; a sender\'s miss keeps a resumable partial; a stream cut inside a signature leaks no open file', async () => {
  const c = await makeCluster({ names: ['a', 'b'], watch: false });
  try {
    const A = await c.start('a');
    const B = await c.start('b');
    const addr = c.members.get('a')!.address as PeerAddress;
    const content = pseudoRandom(3 << 20, 21);
    const target = join(c.dir, 'b', 'big.bin');
    const part = partialPathFor(target, sha(content));
    await writeFile(part, content.subarray(0, 1 << 20));
    const items = (): FetchItem[] => [{ path: 'big.bin', hash: sha(content), size: content.length, basis: null, target, patch: { partial: { path: part, offset: 1 << 20 } } }];

    const failedToOpen: (Error | undefined)[] = [];
    await assert.rejects(fetchBatch(() => Promise.reject(new Error('connect ECONNREFUSED')), 'www', [...items(), { ...items()[0]!, path: 'other' }], counters(), (i, r) => {
      failedToOpen[i] = r instanceof Error ? r : undefined;
    }), /ECONNREFUSED/);
    assert.equal(failedToOpen.length, 2);
    assert.ok(failedToOpen.every((e) => e?.message.includes('ECONNREFUSED')), 'each file was reported with the error (so its job fails and is retried)');

    // a has no file with that content: it answers with a miss. The partial is not proven wrong.
    const results: (Error | undefined)[] = [];
    await fetchBatch((body) => B.pool.openStream(addr, 'files.fetch', body), 'www', items(), counters(), (i, r) => {
      results[i] = r instanceof Error ? r : undefined;
    });
    assert.ok(results[0] instanceof FileSyncError && results[0].code === 'E_UNAVAILABLE', String(results[0]));
    assert.equal((await stat(part)).size, 1 << 20, 'the partial is kept for another sender');

    // The receiver announces a signature and ends the stream before sending it.
    await writeFile(join(A.root, 'f'), pseudoRandom(100_000, 22));
    await A.svc.scanNow('www');
    const file = join(A.root, 'f');
    const hash = Buffer.from(A.svc.tree('www').record('f')!.hash!, 'hex');
    const s = await B.pool.openStream(addr, 'files.fetch', { tree: 'www', files: [['f', hash, 100]] });
    s.end();
    await assert.rejects(s.collect(), /inside the signature/);
    const openOnF = async (): Promise<number> => {
      let n = 0;
      for (const fd of await readdir('/proc/self/fd')) if ((await readlink(`/proc/self/fd/${fd}`).catch(() => '')) === file) n++;
      return n;
    };
    await waitFor('a closed the file it had opened ahead', async () => (await openOnF()) === 0, 5000);
  } finally {
    await c.close();
  }
});

test('a peer whose entries pages never end (a cursor that does not advance) fails the catch-up instead of paging forever', async () => {
  const c = await makeCluster({ names: ['b', 'loop'], watch: false });
  const server = new RpcServer({ tls: await c.pki.node('loop'), host: '127.0.0.1', port: 0, logger });
  let pages = 0;
  server.handle('files.summary', () => Promise.resolve({ summary: Buffer.alloc(SUMMARY_BYTES, 0x5a), entries: 1 }));
  server.handle('files.entries', () => {
    pages++;
    return Promise.resolve({ entries: [], next: [0, 'same'] });
  });
  try {
    const B = await c.start('b');
    const { port } = await server.listen();
    c.members.set('loop', { name: 'loop', alive: true, pools: ['web'], address: { name: 'loop', host: '127.0.0.1', port } });
    B.svc.onMembersChanged();
    await waitFor('the catch-up from the looping peer failed', () => /cursor went back/.test(B.svc.status('www')[0]!.peers.find((p) => p.peer === 'loop')?.lastError ?? ''));
    assert.ok(pages <= 3, `${pages} pages asked for in one catch-up`);
  } finally {
    await server.close({ graceMs: 100 });
    await c.close();
  }
});

test('setuid and setgid bits survive the chown of a received file', { skip: process.getuid?.() !== 0 ? 'needs root (chown to another owner)' : false }, async () => {
  await withTempDir(async (dir) => {
    const data = Buffer.from('#!/bin/sh\n');
    for (const mode of [0o4755, 0o2755, 0o6750]) {
      const target = join(dir, `tool-${mode.toString(8)}`);
      await patch(null, [{ type: 'literal', data }, { type: 'end', size: data.length, sha256: createHash('sha256').update(data).digest() }], target, EMPTY_SIGNATURE, { mode, owner: { uid: 65534, gid: 65534 } });
      const st = await stat(target);
      assert.equal(st.mode & 0o7777, mode, `mode ${mode.toString(8)}`);
      assert.deepEqual([st.uid, st.gid], [65534, 65534]);
    }
  });
});

test('a directory deleted on a peer but holding excluded files here stays for them, takes the delete, and does not come back', async () => {
  const c = await makeCluster({ names: ['a', 'b'], watch: false, tree: { exclude: ['*.log', 'cache/'] } });
  try {
    const A = await c.start('a');
    const B = await c.start('b');
    await mkdir(join(A.root, 'app1/sub'), { recursive: true });
    await writeFile(join(A.root, 'app1/x.txt'), 'synced');
    await writeFile(join(A.root, 'app1/sub/y.txt'), 'synced');
    for (let i = 0; i < 10; i++) await writeFile(join(A.root, `keep${i}`), 'x'); // app1 is a small part of the tree
    await A.svc.scanNow('www');
    await waitFor('b has app1', async () => (await readFile(join(B.root, 'app1/sub/y.txt'), 'utf8').catch(() => '')) === 'synced');
    // Content b does not sync, in the directory and in a subdirectory.
    await writeFile(join(B.root, 'app1/error.log'), 'local log');
    await mkdir(join(B.root, 'app1/sub/cache'));
    await writeFile(join(B.root, 'app1/sub/cache/blob'), 'local cache');
    await B.svc.scanNow('www'); // the directories' mtimes moved: new versions, sent to a
    await waitFor('a has b\'s directory versions', () => JSON.stringify(A.svc.tree('www').record('app1/sub')?.version) === JSON.stringify(B.svc.tree('www').record('app1/sub')?.version));
    await rm(join(A.root, 'app1'), { recursive: true });
    await A.svc.scanNow('www');
    await waitFor('b took the deletes', () => B.svc.tree('www').record('app1')?.deleted === true && B.svc.tree('www').record('app1/sub')?.deleted === true);
    assert.equal(await readFile(join(B.root, 'app1/error.log'), 'utf8'), 'local log', 'excluded content is kept');
    assert.equal(await readFile(join(B.root, 'app1/sub/cache/blob'), 'utf8'), 'local cache');
    await assert.rejects(stat(join(B.root, 'app1/x.txt')), { code: 'ENOENT' });
    // b's next scans keep the tombstones: nothing comes back to a, and b is not behind.
    await B.svc.scanNow('www');
    assert.equal(B.svc.tree('www').record('app1')?.deleted, true);
    await A.svc.scanNow('www');
    await waitFor('b in sync with a, nothing failing', () => B.svc.status('www')[0]!.peers.every((p) => p.state === 'in-sync' && p.lastError === null));
    await assert.rejects(stat(join(A.root, 'app1')), { code: 'ENOENT' }, 'app1 did not come back to a');

    // a makes app1 again: b takes it over its kept directory (no skip), excluded content untouched.
    await mkdir(join(A.root, 'app1'));
    await writeFile(join(A.root, 'app1/again.txt'), 'again');
    await A.svc.scanNow('www');
    await waitFor('b has app1 again', async () => (await readFile(join(B.root, 'app1/again.txt'), 'utf8').catch(() => '')) === 'again');
    assert.equal(B.svc.tree('www').record('app1')?.deleted, false);
    assert.equal(await readFile(join(B.root, 'app1/error.log'), 'utf8'), 'local log');
  } finally {
    await c.close();
  }
});

test('a directory kept for excluded content: its tombstone outlives the purge there, and it goes once that content is gone', async () => {
  const c = await makeCluster({ names: ['a', 'b'], watch: false, tree: { exclude: ['*.log'], tombstoneMinAgeMs: 500 } });
  try {
    const A = await c.start('a');
    const B = await c.start('b');
    for (let i = 0; i < 10; i++) await writeFile(join(A.root, `keep${i}`), 'x');
    await mkdir(join(A.root, 'app1'));
    await writeFile(join(A.root, 'app1/x.txt'), 'synced');
    await A.svc.scanNow('www');
    await waitFor('b has app1', async () => (await readFile(join(B.root, 'app1/x.txt'), 'utf8').catch(() => '')) === 'synced');
    await writeFile(join(B.root, 'app1/error.log'), 'local log');
    await B.svc.scanNow('www');
    await waitFor('a has b\'s app1 version', () => JSON.stringify(A.svc.tree('www').record('app1')?.version) === JSON.stringify(B.svc.tree('www').record('app1')?.version));
    await rm(join(A.root, 'app1'), { recursive: true });
    await A.svc.scanNow('www');
    await waitFor('b took the delete', () => B.svc.tree('www').record('app1')?.deleted === true);
    // Both confirmed; a purges after the minimum age, b keeps its tombstone while app1 is there.
    await waitFor('a purged app1', () => A.svc.tree('www').record('app1') === undefined, 30_000);
    await B.svc.scanNow('www');
    B.svc.tree('www').catchUpAll();
    await new Promise((r) => setTimeout(r, 1500));
    await B.svc.scanNow('www');
    assert.equal(B.svc.tree('www').record('app1')?.deleted, true, 'b keeps the tombstone of its kept directory');
    await assert.rejects(stat(join(A.root, 'app1')), { code: 'ENOENT' }, 'app1 did not come back to a');
    // The log goes (logrotate): the kept directory goes too, and still does not come back.
    await unlink(join(B.root, 'app1/error.log'));
    await B.svc.scanNow('www');
    await assert.rejects(stat(join(B.root, 'app1')), { code: 'ENOENT' }, 'the empty kept directory was removed');
    await B.svc.scanNow('www');
    await assert.rejects(stat(join(A.root, 'app1')), { code: 'ENOENT' });
  } finally {
    await c.close();
  }
});

test('a change made right after start, deep in the tree, is seen: every directory is watched before start() returns', async () => {
  const c = await makeCluster({ names: ['a', 'b'] }); // watchers on, periodic scans hourly
  try {
    const dirs = Array.from({ length: 300 }, (_, i) => `d${String(i).padStart(3, '0')}/sub`);
    const root = join(c.dir, 'a', 'tree');
    for (const d of dirs) await mkdir(join(root, d), { recursive: true });
    await c.start('a');
    await writeFile(join(root, dirs.at(-1)!, 'late'), 'written right after start');
    await c.start('b');
    await waitFor('b has the late file', async () => (await readFile(join(c.node('b').root, dirs.at(-1)!, 'late'), 'utf8').catch(() => '')) === 'written right after start');
  } finally {
    await c.close();
  }
});
