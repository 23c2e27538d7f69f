import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdir, readdir, symlink, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { RpcClientPool, type PeerAddress } from '../../src/rpc/client.ts';
import { RpcError } from '../../src/rpc/errors.ts';
import { SUMMARY_BYTES } from '../../src/filesync/buckets.ts';
import { decodeMiss, encodeEntry } from '../../src/filesync/protocol.ts';
import { decodeDeltaOp } from '../../src/filesync/delta/index.ts';
import type { FileVersion } from '../../src/filesync/resolve.ts';
import { logger, makeCluster, waitFor } from './cluster.ts';

const entry = (path: string, over: Partial<FileVersion> = {}): FileVersion => ({
  path, type: 'file', deleted: false, version: { b: 99 }, modifiedBy: 'b', mtimeNs: 1_700_000_000_000_000_000n, mode: 0o644, uid: 0, gid: 0, size: 3,
  hash: 'ab'.repeat(32), ...over,
});

async function rejects(p: Promise<unknown>, code: string, msg?: RegExp): Promise<void> {
  await assert.rejects(p, (e: unknown) => {
    assert.ok(e instanceof RpcError, String(e));
    assert.equal(e.code, code, e.message);
    if (msg) assert.match(e.message, msg);
    return true;
  });
}

test('hostile peers: strangers refused, unsafe paths and sizes rejected, nothing written outside the tree', async () => {
  const c = await makeCluster({ names: ['a', 'b'], watch: false });
  const evilTls = await c.pki.node('evil'); // valid pool certificate, but not a member of pool "web"
  const evil = new RpcClientPool({ tls: evilTls, logger });
  try {
    await c.start('a');
    await c.start('b');
    const addr = c.members.get('a')!.address as PeerAddress;
    const asB = c.node('b').pool;

    await rejects(evil.call(addr, 'files.summary', { tree: 'www', summary: Buffer.alloc(SUMMARY_BYTES) }), 'forbidden');
    await rejects(evil.call(addr, 'files.notify', { tree: 'www', entries: [] }), 'forbidden');
    await rejects(asB.call(addr, 'files.summary', { tree: 'nope', summary: Buffer.alloc(SUMMARY_BYTES) }), 'forbidden');

    for (const bad of ['../x', '/etc/passwd', 'a/../../x', 'a//b', '.multiall-tree', 'x\0y']) {
      await rejects(asB.call(addr, 'files.notify', { tree: 'www', entries: [encodeEntry(entry('ok'))].map((e) => { e[0] = bad; return e; }) }), 'bad_request', /E_PATH/);
    }
    const huge = encodeEntry(entry('huge'));
    huge[10] = 2 ** 51;
    await rejects(asB.call(addr, 'files.notify', { tree: 'www', entries: [huge] }), 'bad_request', /size/);
    await rejects(asB.call(addr, 'files.notify', { tree: 'www', entries: Array.from({ length: 3000 }, (_, i) => encodeEntry(entry(`f${i}`))) }), 'bad_request', /limit/);
    await rejects(asB.call(addr, 'files.entries', { tree: 'www', buckets: [9999] }), 'bad_request');
    await rejects(asB.call(addr, 'files.summary', { tree: 'www', summary: Buffer.alloc(10) }), 'bad_request');

    const fetch = async (body: unknown, send: Uint8Array[] = []): Promise<unknown[]> => {
      const s = await asB.openStream(addr, 'files.fetch', body);
      for (const c of send) await s.write(c);
      s.end();
      return s.collect();
    };
    await rejects(fetch({ tree: 'www', files: [['../../etc/passwd', Buffer.alloc(32), 0]] }), 'bad_request', /E_PATH/);
    await rejects(fetch({ tree: 'www', files: [['x', Buffer.alloc(32), 2 ** 40]] }), 'bad_request', /sigBytes/);
    await rejects(evil.openStream(addr, 'files.fetch', { tree: 'www', files: [['x', Buffer.alloc(32), 0]] }).then((s) => s.collect()), 'forbidden');
    // A file the peer does not have: a miss for that file, the batch itself succeeds.
    const missed = await fetch({ tree: 'www', files: [['missing', Buffer.alloc(32), 0]] });
    assert.equal(missed.length, 1);
    assert.match(decodeMiss(missed[0] as Uint8Array) ?? '', /no file with content/);
    // More signature bytes than announced, or garbage as a signature: the stream fails.
    await rejects(fetch({ tree: 'www', files: [['missing', Buffer.alloc(32), 4]] }, [Buffer.alloc(8)]), 'bad_request', /longer than the announced/);
    await rejects(fetch({ tree: 'www', files: [['missing', Buffer.alloc(32), 4]] }, [Buffer.alloc(4, 0xc1)]), 'bad_request', /E_WIRE/);
    // Every malformed request was counted (the strangers' were well-formed, only forbidden).
    assert.deepEqual(c.node('a').svc.badRequests(), { 'files.notify': 8, 'files.entries': 1, 'files.summary': 1, 'files.fetch': 4 });

    // A symlinked directory inside a's tree pointing outside: a remote entry below it must not
    // be written through the link.
    const outside = join(c.dir, 'outside');
    await mkdir(outside);
    await symlink(outside, join(c.node('a').root, 'link'));
    await c.node('a').svc.scanNow('www');
    await writeFile(join(c.node('b').root, 'payload'), 'pwn');
    await c.node('b').svc.scanNow('www');
    await waitFor('a got the payload', async () => (await readdir(c.node('a').root)).includes('payload'));
    const rec = c.node('b').svc.tree('www').record('payload')!;
    // Resume offsets: only the bytes after the offset are sent, END covers the whole file; an
    // offset past the end sends nothing but END (whose size then tells the receiver its bytes are wrong).
    const ops = async (offset: number) => (await fetch({ tree: 'www', files: [['payload', Buffer.from(rec.hash!, 'hex'), 0, offset]] })).flat().map((m) => decodeDeltaOp(m as Uint8Array));
    const resumed = await ops(1);
    assert.deepEqual(resumed.map((o) => (o.type === 'literal' ? Buffer.from(o.data).toString() : o.type === 'end' ? `end ${o.size}` : o.type)), ['wn', 'end 3']);
    assert.deepEqual((await ops(1 << 30)).map((o) => (o.type === 'end' ? `end ${o.size}` : o.type)), ['end 3']);
    const r = (await asB.call(addr, 'files.notify', { tree: 'www', entries: [encodeEntry({ ...rec, path: 'link/payload', version: { b: 50 } })] })) as { accepted: number };
    assert.equal(r.accepted, 1);
    await new Promise((res) => setTimeout(res, 300)); // give the (refused) apply a chance to do harm
    assert.deepEqual(await readdir(outside), [], 'nothing written outside the tree');
  } finally {
    await evil.close();
    await c.close();
  }
});
