import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { readFile, readdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import fc from 'fast-check';
import {
  blockSizeFor, signature, delta, patch, encodeSignature, decodeSignature, encodeDeltaOp, decodeDeltaOp, MAX_LITERAL,
} from '../../src/filesync/delta/index.ts';
import type { DeltaOp, Signature } from '../../src/filesync/delta/index.ts';
import { weakSum } from '../../src/filesync/delta/rolling.ts';
import { FileSyncError } from '../../src/filesync/errors.ts';
import { withTempDir, pseudoRandom, collect } from './helpers.ts';

async function roundTrip(dir: string, basis: Buffer, next: Buffer, blockSize?: number): Promise<{ ops: DeltaOp[]; sig: Signature }> {
  const bPath = join(dir, 'basis');
  const nPath = join(dir, 'new');
  const out = join(dir, 'out');
  await writeFile(bPath, basis);
  await writeFile(nPath, next);
  const sig = await signature(bPath, blockSize === undefined ? {} : { blockSize });
  // Through the wire codecs, as between two agents.
  const sig2 = decodeSignature(encodeSignature(sig));
  const ops = (await collect(delta(sig2, nPath))).map((op) => decodeDeltaOp(encodeDeltaOp(op)));
  await patch(bPath, ops, out, sig);
  assert.ok((await readFile(out)).equals(next), 'patched file differs from the new file');
  return { ops, sig };
}

const literalBytes = (ops: DeltaOp[]): number => ops.reduce((n, op) => n + (op.type === 'literal' ? op.data.length : 0), 0);

test('blockSizeFor: ~sqrt(size), multiple of 8, clamped', () => {
  assert.equal(blockSizeFor(0), 512);
  assert.equal(blockSizeFor(100_000), 512);
  assert.equal(blockSizeFor(64 * 1024 * 1024), 8192);
  assert.equal(blockSizeFor(1_000_000), 1000);
  assert.equal(blockSizeFor(2 ** 38), 128 * 1024);
  assert.equal(blockSizeFor(2 ** 40), 256 * 1024); // grows past the clamp to stay within MAX_BLOCKS
  assert.equal(blockSizeFor(2 ** 44) % 8, 0);
  assert.ok(Math.ceil(2 ** 44 / blockSizeFor(2 ** 44)) <= 1 << 22);
  assert.throws(() => blockSizeFor(-1), FileSyncError);
  assert.throws(() => blockSizeFor(1.5), FileSyncError);
});

test('weakSum rolls: sum of a window equals the rolled sum', () => {
  const b = pseudoRandom(4000, 7);
  const bs = 700;
  let s1 = weakSum(b, 0, bs) & 0xffff;
  let s2 = weakSum(b, 0, bs) >>> 16;
  for (let p = 0; p + bs < b.length; p++) {
    const out = b[p]!;
    s1 = (s1 - out + b[p + bs]!) & 0xffff;
    s2 = (s2 - bs * out + s1) & 0xffff;
    assert.equal((s1 | (s2 << 16)) >>> 0, weakSum(b, p + 1, bs));
  }
});

test('identical file: one coalesced copy and no literal bytes', async () => {
  await withTempDir(async (dir) => {
    const data = pseudoRandom(300_000, 1);
    const { ops, sig } = await roundTrip(dir, data, data);
    assert.deepEqual(ops.filter((o) => o.type !== 'end'), [{ type: 'copy', start: 0, count: sig.weak.length }]);
  });
});

test('one-byte edit in the middle costs about one block of literal', async () => {
  await withTempDir(async (dir) => {
    const basis = pseudoRandom(1_000_000, 2);
    const next = Buffer.from(basis);
    next[500_000] = next[500_000]! ^ 0xff;
    const { ops, sig } = await roundTrip(dir, basis, next);
    assert.equal(literalBytes(ops), sig.blockSize);
    assert.equal(ops.filter((o) => o.type === 'copy').length, 2);
  });
});

test('insertions, deletions, appends, truncation and short tails round-trip with matches', async () => {
  await withTempDir(async (dir) => {
    const basis = pseudoRandom(50_003, 3); // short last block
    const cases: Array<[string, Buffer]> = [
      ['insert at start', Buffer.concat([Buffer.from('hello'), basis])],
      ['delete in middle', Buffer.concat([basis.subarray(0, 20_000), basis.subarray(20_777)])],
      ['append', Buffer.concat([basis, pseudoRandom(1234, 4)])],
      ['truncate', basis.subarray(0, 30_000)],
      ['same tail only', Buffer.concat([pseudoRandom(9000, 5), basis.subarray(49_152)])], // last full + short block
      ['empty', Buffer.alloc(0)],
    ];
    for (const [name, next] of cases) {
      const { ops } = await roundTrip(dir, basis, next, 512);
      if (name !== 'empty') assert.ok(ops.some((o) => o.type === 'copy'), `${name}: expected some copy`);
      if (name === 'insert at start') assert.equal(literalBytes(ops), 5);
    }
    await roundTrip(dir, Buffer.alloc(0), basis); // empty basis
    await roundTrip(dir, Buffer.alloc(0), Buffer.alloc(0));
  });
});

test('literal ops never exceed MAX_LITERAL', async () => {
  await withTempDir(async (dir) => {
    const { ops } = await roundTrip(dir, pseudoRandom(10_000, 8), pseudoRandom(300_000, 9));
    assert.ok(ops.every((o) => o.type !== 'literal' || o.data.length <= MAX_LITERAL));
    assert.equal(literalBytes(ops), 300_000);
  });
});

test('signature of a stream equals signature of the file', async () => {
  await withTempDir(async (dir) => {
    const data = pseudoRandom(77_777, 10);
    await writeFile(join(dir, 'f'), data);
    async function* chunks(): AsyncGenerator<Uint8Array> {
      for (let o = 0; o < data.length; o += 1000 + (o % 333)) yield data.subarray(o, Math.min(data.length, o + 1000 + (o % 333)));
    }
    const a = await signature(join(dir, 'f'));
    const b = await signature(chunks(), { sizeHint: data.length });
    assert.deepEqual(b, a);
    await assert.rejects(signature(chunks()), (e: unknown) => e instanceof FileSyncError && e.code === 'E_ARG');
  });
});

test('patch rejects a wrong hash, bad copies and a changed basis, leaving no temp file', async () => {
  await withTempDir(async (dir) => {
    const basis = pseudoRandom(20_000, 11);
    await writeFile(join(dir, 'basis'), basis);
    await writeFile(join(dir, 'target'), 'old');
    const sig = await signature(join(dir, 'basis'), { blockSize: 1024 });
    const good = await collect(delta(sig, join(dir, 'basis')));
    const end = good.at(-1)!;
    assert.equal(end.type, 'end');
    const badHash: DeltaOp[] = [...good.slice(0, -1), { type: 'end', size: 20_000, sha256: new Uint8Array(32) }];
    const cases: Array<[DeltaOp[], string]> = [
      [badHash, 'E_PATCH_HASH'],
      [[{ type: 'copy', start: 19, count: 2 }, end], 'E_DELTA'],
      [[{ type: 'literal', data: new Uint8Array(3) }], 'E_DELTA'],
      [[end, end], 'E_DELTA'],
    ];
    for (const [ops, code] of cases) {
      await assert.rejects(patch(join(dir, 'basis'), ops, join(dir, 'target'), sig), (e: unknown) => e instanceof FileSyncError && e.code === code);
    }
    await assert.rejects(patch(null, good, join(dir, 'target'), sig), (e: unknown) => e instanceof FileSyncError && e.code === 'E_DELTA');
    await writeFile(join(dir, 'basis'), basis.subarray(0, 100));
    await assert.rejects(patch(join(dir, 'basis'), good, join(dir, 'target'), sig), (e: unknown) => e instanceof FileSyncError && e.code === 'E_DELTA');
    assert.equal(await readFile(join(dir, 'target'), 'utf8'), 'old');
    assert.deepEqual((await readdir(dir)).sort(), ['basis', 'target']);
  });
});

test('property: patch(basis, delta(sig(basis), new)) == new for random edits', async () => {
  await withTempDir(async (dir) => {
    const edit = fc.record({ at: fc.nat(), del: fc.nat({ max: 700 }), ins: fc.uint8Array({ maxLength: 600 }) });
    await fc.assert(
      fc.asyncProperty(fc.nat({ max: 6000 }), fc.integer({ min: 1, max: 1 << 30 }), fc.array(edit, { maxLength: 6 }), fc.constantFrom(512, 520, 1024), async (size, seed, edits, bs) => {
        const basis = pseudoRandom(size, seed);
        let next = Buffer.from(basis);
        for (const e of edits) {
          const at = next.length === 0 ? 0 : e.at % (next.length + 1);
          next = Buffer.concat([next.subarray(0, at), Buffer.from(e.ins), next.subarray(Math.min(next.length, at + e.del))]);
        }
        await roundTrip(dir, basis, next, bs);
      }),
      { numRuns: 150 },
    );
  });
});

test('fuzz: decoders return valid values or throw E_WIRE, never anything else', async () => {
  await withTempDir(async (dir) => {
    await writeFile(join(dir, 'f'), pseudoRandom(3000, 12));
    const sig = await signature(join(dir, 'f'), { blockSize: 512 });
    const validSig = encodeSignature(sig);
    const validOps = [...(await collect(delta(sig, join(dir, 'f')))), { type: 'literal', data: new Uint8Array(5) } as DeltaOp].map(encodeDeltaOp);
    const mutate = (b: Uint8Array, idx: number, val: number, cut: number): Uint8Array => {
      const c = Uint8Array.from(b);
      if (c.length > 0) c[idx % c.length] = val;
      return c.subarray(0, c.length - (cut % (c.length + 1)));
    };
    const check = (fn: () => unknown): void => {
      try {
        fn();
      } catch (e) {
        if (!(e instanceof FileSyncError) || e.code !== 'E_WIRE') throw e;
      }
    };
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 200 }), fc.nat(), fc.nat({ max: 255 }), fc.nat({ max: 4 }), fc.nat({ max: 4 }), (raw, idx, val, cut, which) => {
        check(() => decodeSignature(raw));
        check(() => decodeDeltaOp(raw));
        const s = decodeSignatureOrNull(mutate(validSig, idx, val, cut));
        if (s !== null) assert.equal(s.weak.length, Math.ceil(s.fileSize / s.blockSize));
        check(() => decodeDeltaOp(mutate(validOps[which % validOps.length]!, idx, val, cut)));
      }),
      { numRuns: 3000 },
    );
    function decodeSignatureOrNull(b: Uint8Array): Signature | null {
      try {
        return decodeSignature(b);
      } catch (e) {
        if (!(e instanceof FileSyncError) || e.code !== 'E_WIRE') throw e;
        return null;
      }
    }
    // Structured but hostile values.
    const { pack } = await import('msgpackr');
    for (const v of [[1, 512, 2 ** 60, 16, Buffer.alloc(0), Buffer.alloc(0)], [1, 1, 0, 16, Buffer.alloc(0), Buffer.alloc(0)], [1, 512, 1024, 16, Buffer.alloc(4), Buffer.alloc(16)], [0, -1, 1], [0, 1, 0], [1, Buffer.alloc(MAX_LITERAL + 1)], [2, 1, Buffer.alloc(31)], [9, 1], { a: 1 }]) {
      check(() => decodeSignature(pack(v)));
      check(() => decodeDeltaOp(pack(v)));
      assert.throws(() => decodeSignature(pack(v)), FileSyncError);
    }
    // An op kind that decodes to a BigInt (uint64 larger than 2^53): found by the fuzz above.
    assert.throws(() => decodeDeltaOp(Uint8Array.from([0x92, 0xcf, 0xff, 0, 0, 0, 0, 0, 0, 1, 0x01])), (e: unknown) => e instanceof FileSyncError && e.code === 'E_WIRE' && /unknown kind/.test(e.message));
  });
});

test('delta from a stream equals delta from the file; patch without basis creates the file with the given mode', async () => {
  await withTempDir(async (dir) => {
    const basis = pseudoRandom(40_000, 13);
    const next = Buffer.concat([basis.subarray(0, 10_000), Buffer.from('inserted'), basis.subarray(10_000)]);
    await writeFile(join(dir, 'basis'), basis);
    await writeFile(join(dir, 'new'), next);
    const sig = await signature(join(dir, 'basis'), { blockSize: 1024 });
    async function* chunks(): AsyncGenerator<Uint8Array> {
      for (let o = 0; o < next.length; o += 777) yield next.subarray(o, o + 777);
    }
    assert.deepEqual(await collect(delta(sig, chunks())), await collect(delta(sig, join(dir, 'new'))));
    // A caller that knows the new file's SHA-256 (the index) gets the same ops, END carrying it.
    const hashed = await collect(delta(sig, join(dir, 'new')));
    const known = hashed.at(-1)!.type === 'end' ? (hashed.at(-1) as { sha256: Uint8Array }).sha256 : new Uint8Array(0);
    assert.deepEqual(await collect(delta(sig, join(dir, 'new'), undefined, known)), hashed);
    const told = await collect(delta(sig, join(dir, 'new'), undefined, new Uint8Array(32).fill(9)));
    assert.deepEqual(told.at(-1), { type: 'end', size: next.length, sha256: new Uint8Array(32).fill(9) }, 'END says what the caller knows');

    const empty = await signature(join(dir, 'nothing-yet'), { blockSize: 512 }).catch(() => null);
    assert.equal(empty, null, 'missing basis file is an error, not an empty signature');
    const none: Signature = { blockSize: 512, fileSize: 0, strongLen: 16, weak: new Uint32Array(0), strong: new Uint8Array(0) };
    const res = await patch(null, delta(none, join(dir, 'new')), join(dir, 'created'), none, { mode: 0o640 });
    assert.equal(res.size, next.length);
    assert.ok((await readFile(join(dir, 'created'))).equals(next));
    const { stat } = await import('node:fs/promises');
    assert.equal((await stat(join(dir, 'created'))).mode & 0o777, 0o640);
  });
});

test('patch gathers writes across its 4 MiB buffer: copies and literals from a reused buffer, or kept as they are, rebuild the file exactly', async () => {
  await withTempDir(async (dir) => {
    const basis = pseudoRandom(9 << 20, 11);
    const bPath = join(dir, 'basis');
    await writeFile(bPath, basis);
    const sig = await signature(bPath, { blockSize: 4096 });
    // New file: 1.5 MiB of new bytes, the whole basis, 3 MiB of new bytes, then blocks 10..19 again.
    const head = pseudoRandom(3 << 19, 12);
    const tail = pseudoRandom(3 << 20, 13);
    const want = Buffer.concat([head, basis, tail, basis.subarray(10 * 4096, 20 * 4096)]);
    const sha256 = new Uint8Array(createHash('sha256').update(want).digest());
    // Literals come from one buffer that is overwritten for every op (like wholeFileOps).
    function* ops(reuse: boolean): Generator<DeltaOp> {
      const scratch = Buffer.alloc(MAX_LITERAL);
      const literals = function* (data: Buffer): Generator<DeltaOp> {
        for (let off = 0; off < data.length; off += MAX_LITERAL) {
          const part = data.subarray(off, off + MAX_LITERAL);
          if (reuse) {
            part.copy(scratch);
            yield { type: 'literal', data: scratch.subarray(0, part.length) };
            scratch.fill(0xee); // what a producer reusing its buffer would do next
          } else {
            yield { type: 'literal', data: Buffer.from(part) };
          }
        }
      };
      yield* literals(head);
      yield { type: 'copy', start: 0, count: sig.weak.length };
      yield* literals(tail);
      yield { type: 'copy', start: 10, count: 10 };
      yield { type: 'end', size: want.length, sha256 };
    }
    await patch(bPath, ops(true), join(dir, 'a'), sig);
    assert.ok((await readFile(join(dir, 'a'))).equals(want), 'copied literals');
    await patch(bPath, ops(false), join(dir, 'b'), sig, { stableLiterals: true });
    assert.ok((await readFile(join(dir, 'b'))).equals(want), 'kept literals');
  });
});
