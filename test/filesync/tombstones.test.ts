/**
 * Tombstone expiry: a delete record is purged once older than tombstone_min_age and confirmed by
 * every member of the tree (via the summaries and entry lists the catch-ups exchange), and in
 * any case once older than tombstone_max_age. A member that was offline (so never confirmed)
 * and returns within the window gets the delete: nothing is resurrected, and the purge then
 * completes everywhere without a node taking the tombstone back from another.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFile, stat, unlink, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { makeCluster, waitFor, type Cluster } from './cluster.ts';
import { encodeEntry } from '../../src/filesync/protocol.ts';
import type { PeerAddress } from '../../src/rpc/client.ts';

const exists = (c: Cluster, n: string, p: string): Promise<boolean> => stat(join(c.node(n).root, p)).then(() => true, () => false);
const rec = (c: Cluster, n: string, p: string) => c.node(n).svc.tree('www').record(p);

/** Resolves after `node` completed `rounds` more catch-ups with `peer` (anti-entropy runs every 2 s). */
async function rounds(c: Cluster, node: string, peer: string, n: number): Promise<void> {
  const at = () => c.node(node).svc.status('www')[0]!.peers.find((p) => p.peer === peer)?.lastSyncAt ?? 0;
  for (let i = 0; i < n; i++) {
    const before = at();
    await waitFor(`${node} caught up with ${peer} again`, () => at() > before, 30_000);
  }
}

test('a tombstone is purged once every member has the delete; a member offline meanwhile gets it first', async () => {
  const c = await makeCluster({ names: ['a', 'b', 'c'], watch: false, tree: { tombstoneMinAgeMs: 1000, tombstoneMaxAgeMs: 3_600_000 } });
  try {
    for (const n of ['a', 'b', 'c']) await c.start(n);
    await writeFile(join(c.node('a').root, 'gone.txt'), 'to be deleted');
    await writeFile(join(c.node('a').root, 'kept.txt'), 'stays');
    await c.node('a').svc.scanNow('www');
    await waitFor('c has both files', async () => (await exists(c, 'c', 'gone.txt')) && (await exists(c, 'c', 'kept.txt')));
    await c.stop('c');
    await unlink(join(c.node('a').root, 'gone.txt'));
    await c.node('a').svc.scanNow('www');
    await waitFor('b applied the delete', async () => !(await exists(c, 'b', 'gone.txt')));
    // Older than the minimum age, a and b confirmed each other, but c never did: kept.
    await rounds(c, 'a', 'b', 3);
    await rounds(c, 'b', 'a', 1);
    for (const n of ['a', 'b']) assert.equal(rec(c, n, 'gone.txt')?.deleted, true, `${n} keeps the tombstone while c has not confirmed it`);
    await c.start('c');
    await waitFor('c applied the delete', async () => !(await exists(c, 'c', 'gone.txt')));
    await waitFor('purged on every node', () => ['a', 'b', 'c'].every((n) => rec(c, n, 'gone.txt') === undefined && c.node(n).svc.status('www')[0]!.tombstones === 0), 30_000);
    // Stays purged (no node takes it back from another), nothing resurrected, the rest in sync.
    await rounds(c, 'a', 'c', 2);
    for (const n of ['a', 'b', 'c']) {
      assert.equal(rec(c, n, 'gone.txt'), undefined, `no tombstone on ${n}`);
      assert.equal(await exists(c, n, 'gone.txt'), false, `gone.txt not resurrected on ${n}`);
      assert.equal(await readFile(join(c.node(n).root, 'kept.txt'), 'utf8'), 'stays');
    }
    await waitFor('all in sync', () => ['a', 'b', 'c'].every((n) => c.node(n).svc.status('www')[0]!.peers.every((p) => p.state === 'in-sync')), 30_000);
  } finally {
    await c.close();
  }
});

test('confirmations survive a restart: with every peer offline, a node still purges a tombstone they confirmed', async () => {
  const c = await makeCluster({ names: ['a', 'b', 'c'], watch: false, tree: { tombstoneMinAgeMs: 10_000, tombstoneMaxAgeMs: 3_600_000 } });
  try {
    for (const n of ['a', 'b', 'c']) await c.start(n);
    await writeFile(join(c.node('a').root, 'gone.txt'), 'to be deleted');
    await c.node('a').svc.scanNow('www');
    await waitFor('b and c have gone.txt', async () => (await exists(c, 'b', 'gone.txt')) && (await exists(c, 'c', 'gone.txt')));
    await unlink(join(c.node('a').root, 'gone.txt'));
    await c.node('a').svc.scanNow('www');
    await waitFor('b and c applied the delete', async () => !(await exists(c, 'b', 'gone.txt')) && !(await exists(c, 'c', 'gone.txt')));
    await rounds(c, 'a', 'b', 2);
    await rounds(c, 'a', 'c', 2);
    assert.equal(rec(c, 'a', 'gone.txt')?.deleted, true, 'younger than the minimum age: kept');
    await c.stop('b');
    await c.stop('c');
    await c.stop('a');
    await c.start('a');
    // Nobody can confirm anything now: only what a stored lets it purge.
    await waitFor('a purged the tombstone once old enough', () => rec(c, 'a', 'gone.txt') === undefined, 30_000);

    // The path is created anew on a, which has forgotten its delete; b still holds it. The new
    // version must dominate that tombstone (a's counter continues above it, see bump's clock),
    // or b's tombstone would delete the new file on a when b is back.
    await c.stop('a');
    await c.start('a');
    await writeFile(join(c.node('a').root, 'gone.txt'), 'back again');
    await c.node('a').svc.scanNow('www');
    assert.equal(rec(c, 'b', 'gone.txt')?.deleted, true, 'b (stopped) still holds the tombstone');
    await c.start('b');
    await waitFor('b has the new file', async () => (await readFile(join(c.node('b').root, 'gone.txt'), 'utf8').catch(() => '')) === 'back again');
    await rounds(c, 'a', 'b', 2);
    assert.equal(await readFile(join(c.node('a').root, 'gone.txt'), 'utf8'), 'back again', 'the new file survives on a');
    assert.equal(rec(c, 'a', 'gone.txt')?.deleted, false);
  } finally {
    await c.close();
  }
});

test('a tombstone dated in the future (a peer\'s clock) still expires: its age counts from when it arrived', async () => {
  const c = await makeCluster({ names: ['a', 'b', 'c'], watch: false, tree: { tombstoneMinAgeMs: 500, tombstoneMaxAgeMs: 1500 } });
  try {
    await c.start('a');
    await c.start('b');
    // c is a member that never comes: nobody can confirm everything, only the maximum age purges.
    const future = BigInt(Date.now() + 10 * 365 * 86_400_000) * 1_000_000n;
    const tomb = encodeEntry({ path: 'from-the-future', type: 'file', deleted: true, version: { b: 7 }, modifiedBy: 'b', mtimeNs: future, mode: 0o644, uid: 0, gid: 0, size: 0 });
    await c.node('b').pool.call(c.members.get('a')!.address as PeerAddress, 'files.notify', { tree: 'www', entries: [tomb] });
    await waitFor('a recorded the tombstone', () => rec(c, 'a', 'from-the-future')?.deleted === true);
    await waitFor('a purged it past the maximum age', () => rec(c, 'a', 'from-the-future') === undefined, 20_000);
  } finally {
    await c.close();
  }
});

test('past tombstone_max_age a tombstone is purged even unconfirmed; a member offline longer brings the file back', async () => {
  const c = await makeCluster({ names: ['a', 'b'], watch: false, tree: { tombstoneMinAgeMs: 500, tombstoneMaxAgeMs: 1500 } });
  try {
    await c.start('a');
    await c.start('b');
    await writeFile(join(c.node('a').root, 'old.txt'), 'old');
    await c.node('a').svc.scanNow('www');
    await waitFor('b has old.txt', () => exists(c, 'b', 'old.txt'));
    await c.stop('b');
    await unlink(join(c.node('a').root, 'old.txt'));
    await c.node('a').svc.scanNow('www');
    assert.equal(rec(c, 'a', 'old.txt')?.deleted, true);
    await waitFor('a purged the unconfirmed tombstone after the maximum age', () => rec(c, 'a', 'old.txt') === undefined, 30_000);
    // The documented trade-off: b was away longer than the maximum and still has the file.
    await c.start('b');
    await waitFor('old.txt is back on a', () => exists(c, 'a', 'old.txt'));
  } finally {
    await c.close();
  }
});

test('a one-way receiver that joins after a delete confirms it: the sources purge before the maximum age', async () => {
  const c = await makeCluster({ names: ['a', 'b', 'r'], watch: false, tree: { mode: { oneWayFrom: 'src' }, tombstoneMinAgeMs: 1000, tombstoneMaxAgeMs: 3_600_000 } });
  c.members.get('a')!.pools.push('src');
  c.members.get('b')!.pools.push('src');
  try {
    await c.start('a');
    await c.start('b');
    await writeFile(join(c.node('a').root, 'gone.txt'), 'to be deleted');
    await c.node('a').svc.scanNow('www');
    await waitFor('b has gone.txt', () => exists(c, 'b', 'gone.txt'));
    await unlink(join(c.node('a').root, 'gone.txt'));
    await c.node('a').svc.scanNow('www');
    await waitFor('b applied the delete', async () => !(await exists(c, 'b', 'gone.txt')));
    await rounds(c, 'a', 'b', 2); // older than the minimum age now; r (a member) has not confirmed
    assert.equal(rec(c, 'a', 'gone.txt')?.deleted, true);
    await c.start('r');
    await waitFor('purged on the sources, then on the receiver', () => ['a', 'b', 'r'].every((n) => rec(c, n, 'gone.txt') === undefined), 30_000);
    assert.equal(await exists(c, 'r', 'gone.txt'), false);
  } finally {
    await c.close();
  }
});
