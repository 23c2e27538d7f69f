import { test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { bump, compare, emptyVector, merge, validateVector } from '../../src/filesync/versionvector.ts';
import type { VersionVector } from '../../src/filesync/versionvector.ts';
import { resolve, resolveMirror } from '../../src/filesync/resolve.ts';
import type { FileVersion } from '../../src/filesync/resolve.ts';
import { conflictName } from '../../src/filesync/conflictname.ts';
import { FileSyncError } from '../../src/filesync/errors.ts';

const vec = (o: Record<string, number>): VersionVector => validateVector(o);
const T0 = 1_700_000_000_000_000_000n; // 2023-11-14T22:13:20Z

function fv(over: Partial<FileVersion> & Pick<FileVersion, 'version' | 'modifiedBy'>): FileVersion {
  return { path: 'www/index.html', type: 'file', deleted: false, mtimeNs: T0, mode: 0o644, uid: 0, gid: 0, size: 3, hash: 'aa', ...over };
}

test('version vectors: compare, merge, bump', () => {
  const a = vec({ A: 2, B: 1 });
  assert.equal(compare(a, a), 'equal');
  assert.equal(compare(a, vec({ A: 1 })), 'dominates');
  assert.equal(compare(vec({ A: 1 }), a), 'dominated');
  assert.equal(compare(vec({ A: 3 }), a), 'concurrent');
  assert.equal(compare(emptyVector(), a), 'dominated');
  assert.deepEqual({ ...merge(vec({ A: 3 }), a) }, { A: 3, B: 1 });
  assert.equal(compare(bump(a, 'C'), a), 'dominates');
  assert.equal(bump(a, 'A').A, 3);
  const proto = bump(emptyVector(), '__proto__');
  assert.equal(proto['__proto__'], 1);
  assert.equal(compare(proto, emptyVector()), 'dominates');
});

const vecArb = fc.dictionary(fc.constantFrom('A', 'B', 'C', 'D'), fc.integer({ min: 1, max: 4 })).map(vec);

test('version vectors: algebraic properties', () => {
  const inverse = { equal: 'equal', dominates: 'dominated', dominated: 'dominates', concurrent: 'concurrent' } as const;
  fc.assert(
    fc.property(vecArb, vecArb, fc.constantFrom('A', 'B', 'E'), (a, b, n) => {
      assert.equal(compare(b, a), inverse[compare(a, b)]);
      const m = merge(a, b);
      assert.ok(['dominates', 'equal'].includes(compare(m, a)) && ['dominates', 'equal'].includes(compare(m, b)));
      assert.equal(compare(m, merge(b, a)), 'equal');
      assert.equal(compare(bump(a, n), a), 'dominates');
    }),
  );
});

test('validateVector: rejects anything but node → integer 1..2^48, with E_WIRE', () => {
  for (const bad of [null, [], 5, 'x', { A: 0 }, { A: -1 }, { A: 1.5 }, { A: '1' }, { A: 2 ** 48 + 1 }, { A: Number.MAX_SAFE_INTEGER }, { '': 1 }, new Map([['A', 1]]), JSON.parse('{"__proto__": "x"}')]) {
    assert.throws(() => validateVector(bad), (e: unknown) => e instanceof FileSyncError && e.code === 'E_WIRE', JSON.stringify(bad));
  }
  const v = validateVector(JSON.parse('{"__proto__": 2, "A": 1}'));
  assert.equal(compare(v, vec({ A: 1 })), 'dominates');
  fc.assert(
    fc.property(fc.anything(), (x) => {
      try {
        validateVector(x);
      } catch (e) {
        if (!(e instanceof FileSyncError) || e.code !== 'E_WIRE') throw e;
      }
    }),
  );
});

test('resolve: newer wins, stale copies never resurrect a delete, deletes never remove unseen changes', () => {
  const v1 = vec({ A: 1 });
  const v2 = bump(v1, 'B');
  const local = fv({ version: v1, modifiedBy: 'A' });
  assert.equal(resolve(local, fv({ version: v2, modifiedBy: 'B', hash: 'bb' })).action, 'take-remote');
  assert.equal(resolve(fv({ version: v2, modifiedBy: 'B' }), local).action, 'keep-local');
  assert.equal(resolve(local, fv({ version: v1, modifiedBy: 'A' })).reason, 'in sync');
  assert.equal(resolve(undefined, fv({ version: v1, modifiedBy: 'A' })).action, 'take-remote');

  // B deleted after seeing v1; A comes back with its old v1 copy: A deletes, B does not resurrect.
  const tomb = fv({ version: v2, modifiedBy: 'B', deleted: true, hash: undefined });
  assert.deepEqual(resolve(local, tomb).action, 'take-remote');
  assert.deepEqual(resolve(tomb, local).action, 'keep-local');
  assert.equal(resolve(undefined, tomb).action, 'keep-local'); // tombstone recorded, nothing created

  // A changed the file while B (not having seen it) deleted it: the change wins on both sides.
  const changed = fv({ version: bump(v1, 'A'), modifiedBy: 'A', hash: 'cc' });
  const d1 = resolve(changed, tomb);
  const d2 = resolve(tomb, changed);
  assert.equal(d1.action, 'keep-local');
  assert.equal(d2.action, 'take-remote');
  assert.equal(compare(d1.version, d2.version), 'equal');
  assert.equal(compare(d1.version, tomb.version), 'dominates');
});

test('resolve: concurrent edits → conflict copy named after the loser; same content merges silently', () => {
  const base = vec({ A: 1, B: 1 });
  const a = fv({ version: bump(base, 'A'), modifiedBy: 'A', hash: 'aa', mtimeNs: T0 });
  const b = fv({ version: bump(base, 'B'), modifiedBy: 'web-2.example', hash: 'bb', mtimeNs: T0 + 5_000_000_000n });
  const onA = resolve(a, b);
  assert.deepEqual(onA.action === 'conflict' && [onA.winner, onA.conflictCopy], ['remote', 'www/index.conflict-A-20231114-221320.html']);
  const onB = resolve(b, a);
  assert.deepEqual(onB.action === 'conflict' && [onB.winner, onB.conflictCopy], ['local', 'www/index.conflict-A-20231114-221320.html']);
  // Same mtime: node name decides, identically on both sides.
  const b2 = { ...b, mtimeNs: T0 };
  const x = resolve(a, b2);
  const y = resolve(b2, a);
  assert.ok(x.action === 'conflict' && y.action === 'conflict' && x.winner === 'local' && y.winner === 'remote');
  // Same content, different mode: no conflict, winner's metadata.
  const same = resolve(a, { ...b, hash: 'aa', mode: 0o600 });
  assert.equal(same.action, 'take-remote');
  assert.equal(resolve(a, { ...b, hash: 'aa', mtimeNs: T0 - 1n, mode: 0o600 }).action, 'keep-local');
});

test('property: two nodes resolving the same concurrent pair converge', () => {
  const side = fc.record({
    node: fc.constantFrom('A', 'B', 'C'),
    deleted: fc.boolean(),
    type: fc.constantFrom('file', 'dir', 'symlink') as fc.Arbitrary<FileVersion['type']>,
    hash: fc.constantFrom('h1', 'h2'),
    mtime: fc.integer({ min: 0, max: 3 }),
    mode: fc.constantFrom(0o644, 0o600),
    version: vecArb,
  });
  fc.assert(
    fc.property(side, side, (s, t) => {
      const mk = (q: typeof s): FileVersion => fv({
        version: q.version, modifiedBy: q.node, deleted: q.deleted, type: q.type, hash: q.type === 'file' ? q.hash : undefined, target: q.type === 'symlink' ? q.hash : undefined, mtimeNs: T0 + BigInt(q.mtime), mode: q.mode,
      });
      // Equal vectors imply equal states (every change bumps), so such pairs cannot occur.
      fc.pre(compare(s.version, t.version) !== 'equal');
      const l = mk(s);
      const r = mk(t);
      const d1 = resolve(l, r);
      const d2 = resolve(r, l);
      // Which side's state each node ends up with as the main copy.
      const result = (d: typeof d1, mine: FileVersion, theirs: FileVersion): FileVersion =>
        d.action === 'keep-local' ? mine : d.action === 'take-remote' ? theirs : d.winner === 'local' ? mine : theirs;
      const res1 = result(d1, l, r);
      const res2 = result(d2, r, l);
      const state = (v: FileVersion): unknown[] => (v.deleted ? [true, v.type] : [false, v.type, v.hash, v.target, v.mode, v.mtimeNs]);
      assert.deepEqual(state(res1), state(res2));
      assert.equal(compare(d1.version, d2.version), 'equal');
      assert.equal(d1.action === 'conflict', d2.action === 'conflict');
      if (d1.action === 'conflict' && d2.action === 'conflict') assert.equal(d1.conflictCopy, d2.conflictCopy);
    }),
    { numRuns: 500 },
  );
});

test('conflictName: extension kept, dotfiles, unsafe node names, length bound', () => {
  assert.equal(conflictName('a/b/report.txt', 'n1', T0), 'a/b/report.conflict-n1-20231114-221320.txt');
  assert.equal(conflictName('x.tar.gz', 'n1', T0), 'x.tar.conflict-n1-20231114-221320.gz');
  assert.equal(conflictName('.bashrc', 'n1', T0), '.bashrc.conflict-n1-20231114-221320');
  assert.equal(conflictName('Makefile', 'n/../x.y', T0), 'Makefile.conflict-n____x_y-20231114-221320');
  const long = conflictName(`${'é'.repeat(120)}.txt`, 'node', T0);
  assert.ok(Buffer.byteLength(long) <= 255 && long.endsWith('.conflict-node-20231114-221320.txt'));
});

test('one-way receiver: the source\'s version is taken as is unless ours is the same or newer; never a conflict', () => {
  const src1 = fv({ version: vec({ s1: 2 }), modifiedBy: 's1', hash: 'bb' });
  const src2 = fv({ version: vec({ s1: 1, s2: 1 }), modifiedBy: 's2', hash: 'cc', mtimeNs: T0 + 5n });
  const older = fv({ version: vec({ s1: 1 }), modifiedBy: 's1' });
  assert.equal(resolveMirror(src1, src1).action, 'keep-local');
  assert.equal(resolveMirror(src1, older).action, 'keep-local', 'a stale source does not roll us back');
  assert.deepEqual(resolveMirror(older, src1), { action: 'take-remote', version: src1.version, reason: 'remote is newer' });
  // Concurrent (sources not yet resolved): taken with the source's own vector, not a merge, so
  // the sources' resolution (which dominates both) is still taken when it comes.
  const d = resolveMirror(src1, src2);
  assert.equal(d.action, 'take-remote');
  assert.deepEqual({ ...d.version }, { s1: 1, s2: 1 });
  assert.equal(compare(merge(src1.version, src2.version), d.version), 'dominates');
  assert.equal(resolveMirror(undefined, src1).action, 'take-remote');
  assert.equal(resolveMirror(undefined, { ...src1, deleted: true }).action, 'keep-local');
  fc.assert(fc.property(fc.dictionary(fc.constantFrom('s1', 's2', 's3'), fc.integer({ min: 1, max: 3 })), fc.dictionary(fc.constantFrom('s1', 's2', 's3'), fc.integer({ min: 1, max: 3 })), (x, y) => {
    const r = resolveMirror(fv({ version: vec(x), modifiedBy: 's1' }), fv({ version: vec(y), modifiedBy: 's2', hash: 'dd' }));
    assert.notEqual(r.action, 'conflict');
    if (r.action === 'take-remote') assert.deepEqual({ ...r.version }, { ...vec(y) });
  }));
});
