/**
 * Resumable transfers at the file level: patch() into a partial file keeps what it received when
 * the op stream is cut, continues after it with ops that produce only the rest (delta() with a
 * prefix), and removes it when the content proves wrong; preparePartial() reuses only a fresh
 * partial of the same content; the crash cleanup keeps fresh partials and removes the rest.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { mkdir, readFile, readdir, stat, symlink, utimes, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { delta, patch, signature } from '../../src/filesync/delta/index.ts';
import type { DeltaOp, Signature } from '../../src/filesync/delta/index.ts';
import { FileSyncError } from '../../src/filesync/errors.ts';
import { removeStaleTempFiles } from '../../src/filesync/cleanup.ts';
import { PARTIAL_MAX_AGE_MS, partialPathFor, preparePartial } from '../../src/filesync/partial.ts';
import { EMPTY_SIGNATURE } from '../../src/filesync/transfer.ts';
import { pseudoRandom, withTempDir } from './helpers.ts';

const hex = (b: Buffer): string => createHash('sha256').update(b).digest('hex');

/** Ops for `content` from byte `from` on, as a resuming sender makes them (END over the whole file). */
function opsFrom(sig: Signature, content: Buffer, from: number): AsyncGenerator<DeltaOp> {
  async function* rest(): AsyncGenerator<Uint8Array> {
    for (let o = from; o < content.length; o += 100_000) yield content.subarray(o, o + 100_000);
  }
  return delta(sig, rest(), { sha: createHash('sha256').update(content.subarray(0, from)), size: from });
}

/** Ops that stop (like a dropped connection) after `bytes` bytes of literal data. */
async function* cutAfter(ops: AsyncIterable<DeltaOp>, bytes: number): AsyncGenerator<DeltaOp> {
  let n = 0;
  for await (const op of ops) {
    if (op.type === 'literal') n += op.data.length;
    if (n > bytes) throw new Error('connection reset');
    yield op;
  }
}

test('a cut transfer keeps its partial; the next one sends only the rest and yields the verified file', async () => {
  await withTempDir(async (dir) => {
    const content = pseudoRandom(3 << 20, 5);
    const target = join(dir, 'big.bin');
    const part = partialPathFor(target, hex(content));
    await assert.rejects(patch(null, cutAfter(opsFrom(EMPTY_SIGNATURE, content, 0), 1 << 20), target, EMPTY_SIGNATURE, { partial: { path: part, offset: 0 } }), /connection reset/);
    await assert.rejects(stat(target), { code: 'ENOENT' }, 'nothing under the real name');
    const kept = (await stat(part)).size;
    assert.ok(kept >= 1 << 20 && kept < content.length, `partial keeps what arrived (${kept} B)`);
    assert.ok((await readFile(part)).equals(content.subarray(0, kept)));

    const { path, offset } = await preparePartial(target, hex(content), content.length);
    assert.deepEqual({ path, offset }, { path: part, offset: kept });
    let sent = 0;
    async function* counted(): AsyncGenerator<DeltaOp> {
      for await (const op of opsFrom(EMPTY_SIGNATURE, content, offset)) {
        if (op.type === 'literal') sent += op.data.length;
        yield op;
      }
    }
    const res = await patch(null, counted(), target, EMPTY_SIGNATURE, { partial: { path, offset }, maxSize: content.length });
    assert.equal(sent, content.length - kept, 'only the missing bytes were sent');
    assert.equal(Buffer.from(res.sha256).toString('hex'), hex(content));
    assert.ok((await readFile(target)).equals(content));
    assert.deepEqual((await readdir(dir)).sort(), ['big.bin'], 'the partial became the file');
  });
});

test('resuming a delta transfer: the rest is still a delta against the basis', async () => {
  await withTempDir(async (dir) => {
    const basis = pseudoRandom(2 << 20, 9);
    const content = Buffer.from(basis);
    content.fill(7, 100_000, 100_100); // an edit near the start
    const target = join(dir, 'f');
    await writeFile(target, basis);
    const sig = await signature(target);
    const part = partialPathFor(target, hex(content));
    await writeFile(part, content.subarray(0, 1 << 20)); // half of it arrived before the cut
    let literal = 0;
    async function* counted(): AsyncGenerator<DeltaOp> {
      for await (const op of opsFrom(sig, content, 1 << 20)) {
        if (op.type === 'literal') literal += op.data.length;
        yield op;
      }
    }
    await patch(target, counted(), target, sig, { partial: { path: part, offset: 1 << 20 } });
    assert.ok((await readFile(target)).equals(content));
    assert.ok(literal <= sig.blockSize * 2, `the unchanged rest was copied from the basis (${literal} literal bytes)`);
  });
});

test('a partial whose bytes are wrong is removed, the target untouched; other content and stale partials are dropped', async () => {
  await withTempDir(async (dir) => {
    const content = pseudoRandom(2 << 20, 11);
    const target = join(dir, 'f');
    await writeFile(target, 'old');
    const part = partialPathFor(target, hex(content));
    const damaged = Buffer.from(content.subarray(0, 1 << 20));
    damaged[1234] = damaged[1234]! ^ 0xff; // e.g. a block lost in a power cut
    await writeFile(part, damaged);
    await assert.rejects(patch(null, opsFrom(EMPTY_SIGNATURE, content, damaged.length), target, EMPTY_SIGNATURE, { partial: { path: part, offset: damaged.length } }),
      (e: unknown) => e instanceof FileSyncError && e.code === 'E_PATCH_HASH');
    await assert.rejects(stat(part), { code: 'ENOENT' }, 'wrong bytes are not kept');
    assert.equal(await readFile(target, 'utf8'), 'old');

    // The source changed: a partial of the previous content at this name goes.
    const other = partialPathFor(target, hex(Buffer.from('previous version')));
    await writeFile(other, 'previous ver');
    assert.deepEqual(await preparePartial(target, hex(content), content.length), { path: part, offset: 0 });
    await assert.rejects(stat(other), { code: 'ENOENT' });
    // Longer than the content: cannot be a prefix of it.
    await writeFile(part, Buffer.concat([content, Buffer.from('x')]));
    assert.deepEqual(await preparePartial(target, hex(content), content.length), { path: part, offset: 0 });
    await assert.rejects(stat(part), { code: 'ENOENT' });
    // Too old: not resumed.
    await writeFile(part, content.subarray(0, 1000));
    const old = new Date(Date.now() - PARTIAL_MAX_AGE_MS - 60_000);
    await utimes(part, old, old);
    assert.deepEqual(await preparePartial(target, hex(content), content.length), { path: part, offset: 0 });
    await assert.rejects(stat(part), { code: 'ENOENT' });
  });
});

/** A fresh partial in `dir`/sub and one not written for longer than PARTIAL_MAX_AGE_MS in `dir`. */
async function freshAndStalePartials(dir: string, fill: { fresh: string; stale: string }): Promise<{ fresh: string; stale: string }> {
  await mkdir(join(dir, 'sub'));
  const fresh = partialPathFor(join(dir, 'sub', 'a.bin'), 'a'.repeat(64));
  const stale = partialPathFor(join(dir, 'b.bin'), 'b'.repeat(64));
  await writeFile(fresh, fill.fresh);
  await writeFile(stale, fill.stale);
  const old = new Date(Date.now() - PARTIAL_MAX_AGE_MS - 60_000);
  await utimes(stale, old, old);
  return { fresh, stale };
}

test('crash cleanup removes temp files (and temp symlinks) and stale partials, keeps fresh partials', async () => {
  await withTempDir(async (dir) => {
    const { fresh } = await freshAndStalePartials(dir, { fresh: 'x', stale: 'y' });
    await writeFile(join(dir, '.multiall.c.txt.0123456789ab.tmp'), 'z');
    await symlink('target', join(dir, 'sub', '.multiall.link.0123456789ac.tmp')); // a symlink about to be renamed
    await writeFile(join(dir, 'keep.txt'), 'user data');
    assert.deepEqual(await removeStaleTempFiles(dir), { removed: 3, kept: 1 });
    assert.deepEqual((await readdir(dir, { recursive: true })).sort(), ['keep.txt', 'sub', `sub/${fresh.split('/').pop()}`]);
  });
});

test('a transfer cut by the sender going away resumes from the partial when it is back', async () => {
  const { makeCluster, waitFor } = await import('./cluster.ts');
  // Slow sender (bandwidth limit) so the transfer is still running when it is cut.
  const c = await makeCluster({ names: ['a', 'b'], watch: false, tree: { bandwidthBps: 2_000_000 } });
  try {
    await c.start('a');
    await c.start('b');
    const content = pseudoRandom(8 << 20, 21);
    await writeFile(join(c.node('a').root, 'big.bin'), content);
    await c.node('a').svc.scanNow('www');
    const part = partialPathFor(join(c.node('b').root, 'big.bin'), hex(content));
    await waitFor('b received a quarter', async () => ((await stat(part).catch(() => null))?.size ?? 0) >= content.length / 4, 60_000);
    await c.stop('a');
    const kept = (await stat(part)).size;
    assert.ok(kept >= content.length / 4 && kept < content.length, `partial kept after the cut (${kept} B)`);
    await assert.rejects(stat(join(c.node('b').root, 'big.bin')), { code: 'ENOENT' });
    const before = c.node('b').svc.status('www')[0]!.bytes;
    await c.start('a');
    await waitFor('b has big.bin', () => c.node('b').svc.tree('www').record('big.bin')?.hash === hex(content), 60_000);
    assert.ok((await readFile(join(c.node('b').root, 'big.bin'))).equals(content));
    const after = c.node('b').svc.status('www')[0]!.bytes;
    assert.ok(after.resumed >= kept, `resumed ${after.resumed} B, at least the ${kept} B kept`);
    const fetched = after.received - before.received;
    console.log(`# kept ${kept} B, fetched after the cut ${fetched} B, resumed ${after.resumed} B of ${content.length} B`);
    assert.ok(fetched <= content.length - kept + 64 * 1024, `fetched after the cut: ${fetched} B of ${content.length} (${kept} B were kept)`);
    assert.deepEqual((await readdir(c.node('b').root)).filter((f) => f.startsWith('.multiall.') && f !== '.multiall-tree'), [], 'no partial left');
  } finally {
    await c.close();
  }
});

test('scans remove partials not written for a day and never index partials', async () => {
  const { makeCluster } = await import('./cluster.ts');
  const c = await makeCluster({ names: ['a'], watch: false });
  try {
    await c.start('a');
    const root = c.node('a').root;
    const { fresh, stale } = await freshAndStalePartials(root, { fresh: 'fresh', stale: 'stale' });
    await c.node('a').svc.scanNow('www');
    await assert.rejects(stat(stale), { code: 'ENOENT' }, 'stale partial removed by the scan');
    assert.equal(await readFile(fresh, 'utf8'), 'fresh', 'fresh partial kept');
    assert.equal(c.node('a').svc.status('www')[0]!.entries, 1, 'only sub/ is an entry');
  } finally {
    await c.close();
  }
});
