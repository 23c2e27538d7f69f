import { test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { encodeFrame, FrameDecoder } from '../../src/rpc/frame.ts';
import { FileSyncError } from '../../src/filesync/errors.ts';
import { decodeEntriesReq, decodeEntriesRes, decodeEntry, decodeNotifyReq, decodeFetchReq, decodeMiss, decodeSummaryReq, decodeSummaryRes, encodeEntry, encodeMiss, MAX_FETCH_FILES } from '../../src/filesync/protocol.ts';
import type { FileVersion } from '../../src/filesync/resolve.ts';
import type { OwnerNames } from '../../src/filesync/owners.ts';
import { Summary, BUCKETS, bucketOf } from '../../src/filesync/buckets.ts';

const DECODERS = [decodeEntry, decodeSummaryReq, decodeSummaryRes, decodeEntriesReq, decodeEntriesRes, decodeNotifyReq, decodeFetchReq, (v: unknown) => (v instanceof Uint8Array ? decodeMiss(v) : undefined)];

/** What the RPC layer hands a handler: the body after a msgpack round trip. */
function viaWire(body: unknown): unknown {
  const frames = new FrameDecoder({ maxFrameBytes: 1 << 24 }).push(encodeFrame({ t: 'res', id: 1, body }, 1 << 24));
  return (frames[0]!.msg as { body: unknown }).body;
}

function onlyFileSyncErrors(fn: () => unknown): void {
  try {
    fn();
  } catch (e) {
    if (!(e instanceof FileSyncError) || !['E_WIRE', 'E_PATH'].includes(e.code)) throw e;
  }
}

const segment = fc.stringMatching(/^[a-zA-Z0-9_\-. ]{1,12}$/).filter((s) => s !== '.' && s !== '..' && !s.startsWith('.multiall.'));
const pathArb = fc.array(segment, { minLength: 1, maxLength: 4 }).map((s) => s.join('/')).filter((p) => p !== '.multiall-tree');
const versionArb: fc.Arbitrary<FileVersion> = fc.record({
  path: pathArb,
  type: fc.constantFrom('file' as const, 'dir' as const, 'symlink' as const),
  deleted: fc.boolean(),
  version: fc.dictionary(fc.stringMatching(/^[a-z0-9]{1,8}$/), fc.integer({ min: 1, max: 2 ** 40 }), { minKeys: 1, maxKeys: 4, noNullPrototype: true }),
  modifiedBy: fc.stringMatching(/^[a-z0-9]{1,8}$/),
  mtimeNs: fc.bigInt({ min: 0n, max: 2n ** 40n * 1_000_000_000n }),
  mode: fc.integer({ min: 0, max: 0o7777 }),
  uid: fc.nat(65535), gid: fc.nat(65535), size: fc.nat(2 ** 40),
  hash: fc.uint8Array({ minLength: 32, maxLength: 32 }).map((b) => Buffer.from(b).toString('hex')),
  target: fc.string({ minLength: 1, maxLength: 30 }).filter((s) => !s.includes('\0')),
}, { noNullPrototype: true }).map((v) => {
  const out: FileVersion = { ...v };
  if (v.type !== 'file') delete out.hash;
  if (v.type !== 'symlink') delete out.target;
  return out;
});

/** Owner names of a sender: even ids have a name ('u<id>' / 'g<id>'), odd ones none. */
const NAMES: OwnerNames = {
  userName: (uid) => (uid % 2 === 0 ? `u${uid}` : undefined),
  groupName: (gid) => (gid % 2 === 0 ? `g${gid}` : undefined),
  uidOf: () => undefined,
  gidOf: () => undefined,
};

test('entries survive encode → msgpack wire → decode, with and without owner names', () => {
  fc.assert(fc.property(versionArb, (v) => {
    const d = decodeEntry(viaWire(encodeEntry(v)));
    assert.deepEqual({ ...d, version: { ...d.version } }, v);
    const named = decodeEntry(viaWire(encodeEntry(v, NAMES)));
    assert.deepEqual({ ...named, version: { ...named.version } }, {
      ...v, ...(v.uid % 2 === 0 ? { user: `u${v.uid}` } : {}), ...(v.gid % 2 === 0 ? { group: `g${v.gid}` } : {}),
    });
  }), { numRuns: 300 });
  const e = encodeEntry({ path: 'f', type: 'dir', deleted: false, version: { a: 1 }, modifiedBy: 'a', mtimeNs: 0n, mode: 0o755, uid: 0, gid: 0, size: 0 }, NAMES);
  for (const bad of ['', 'x:y', 'a\nb', 'n\0', 'x'.repeat(257), 7]) {
    assert.throws(() => decodeEntry(viaWire([...e.slice(0, 13), bad, null])), /entry user name/);
    assert.throws(() => decodeEntry(viaWire([...e.slice(0, 13), null, bad])), /entry group name/);
  }
  assert.throws(() => decodeEntry(viaWire(e.slice(0, 14))), /array of 13 \(or 15/);
});

test('decoders: arbitrary input yields a value or E_WIRE/E_PATH, never another exception', () => {
  fc.assert(fc.property(fc.anything({ withBigInt: true, withTypedArray: true, withNullPrototype: true }), (junk) => {
    for (const d of DECODERS) {
      onlyFileSyncErrors(() => d(junk));
      let wired: unknown;
      try {
        wired = viaWire(junk);
      } catch {
        continue; // not encodable by msgpack (e.g. a BigInt beyond 64 bits): cannot arrive
      }
      onlyFileSyncErrors(() => d(wired));
    }
  }), { numRuns: 500 });
});

test('decoders: mutated valid bodies are decoded or rejected precisely', () => {
  const body = (v: FileVersion[]): Record<string, unknown> => ({ tree: 'www', entries: v.map((x, i) => encodeEntry(x, i % 2 === 0 ? NAMES : null)) });
  fc.assert(fc.property(fc.array(versionArb, { minLength: 1, maxLength: 3 }), fc.nat(), fc.nat(14), fc.anything(), (vs, which, field, junk) => {
    const b = body(vs) as { entries: unknown[][] };
    const e = b.entries[which % b.entries.length]!;
    e[field] = junk;
    onlyFileSyncErrors(() => decodeNotifyReq(viaWire(b)));
    onlyFileSyncErrors(() => decodeEntriesRes(viaWire({ entries: b.entries, next: [which % 300, junk] })));
    onlyFileSyncErrors(() => decodeFetchReq(viaWire({ tree: 'www', files: [['ok', Buffer.alloc(32), 0], [junk, Buffer.alloc(32), which]] })));
    onlyFileSyncErrors(() => decodeFetchReq(viaWire({ tree: 'www', files: [['ok', junk, which]] })));
    onlyFileSyncErrors(() => decodeFetchReq(viaWire({ tree: 'www', files: [['ok', Buffer.alloc(32), 0, junk]] })));
    onlyFileSyncErrors(() => decodeEntriesReq(viaWire({ tree: 'www', buckets: [which % 300, field], after: junk })));
  }), { numRuns: 300 });
});

test('fetch requests: bounds, paths and sizes are checked; misses round-trip and never look like delta ops', () => {
  const h = Buffer.alloc(32, 1);
  const ok = decodeFetchReq(viaWire({ tree: 'www', files: [['a/b', h, 0], ['c', h, 100, 5 << 20]] }));
  assert.deepEqual(ok, { tree: 'www', files: [{ path: 'a/b', hash: h.toString('hex'), sigBytes: 0, offset: 0 }, { path: 'c', hash: h.toString('hex'), sigBytes: 100, offset: 5 << 20 }] });
  const bad = (body: unknown, re: RegExp): void => assert.throws(() => decodeFetchReq(viaWire(body)), (e: unknown) => e instanceof FileSyncError && re.test(e.message));
  bad({ tree: 'www', files: [] }, /files must be/);
  bad({ tree: 'www', files: Array.from({ length: MAX_FETCH_FILES + 1 }, (_, i) => [`f${i}`, h, 0]) }, /files must be/);
  bad({ tree: 'www', files: [['../x', h, 0]] }, /E_PATH/);
  bad({ tree: 'www', files: [['x', Buffer.alloc(31), 0]] }, /hash/);
  bad({ tree: 'www', files: [['x', h, 2 ** 40]] }, /sigBytes/);
  bad({ tree: 'www', files: [['x', h]] }, /\[path, hash, sigBytes, offset\?\]/);
  bad({ tree: 'www', files: [['x', h, 0, -1]] }, /offset/);
  bad({ tree: 'www', files: [['x', h, 0, 2 ** 60]] }, /offset/);
  bad({ tree: 'www', files: [['x', h, 0, 1, 2]] }, /\[path, hash, sigBytes, offset\?\]/);
  assert.equal(decodeMiss(encodeMiss('gone')), 'gone');
  assert.equal(decodeMiss(encodeMiss('x'.repeat(5000)))?.length, 512);
  fc.assert(fc.property(fc.uint8Array({ maxLength: 64 }), (b) => {
    onlyFileSyncErrors(() => decodeMiss(b));
  }), { numRuns: 300 });
});

test('summary digests: XOR updates equal a rebuild, and any version change shows in its bucket', () => {
  fc.assert(fc.property(fc.uniqueArray(versionArb, { selector: (v) => v.path, maxLength: 20 }), fc.nat(), (vs, k) => {
    const inc = new Summary();
    for (const v of vs) inc.update(undefined, v);
    if (vs.length === 0) return;
    const i = k % vs.length;
    const changed = { ...vs[i]!, version: { ...vs[i]!.version, zz: 1 } };
    const before = Buffer.from(inc.bytes);
    inc.update(vs[i], changed);
    assert.deepEqual(inc.diff(before), [bucketOf(changed.path)]);
    const rebuilt = new Summary();
    vs.forEach((v, j) => rebuilt.update(undefined, j === i ? changed : v));
    assert.deepEqual(rebuilt.diff(inc.bytes), []);
    assert.ok(bucketOf(changed.path) < BUCKETS);
  }), { numRuns: 200 });
});
