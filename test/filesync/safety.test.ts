import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdir, readFile, rm, symlink, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import fc from 'fast-check';
import { resolveInTree, validatePeerPath } from '../../src/filesync/safety.ts';
import { checkMassDelete, checkTree, initTree, mountsUnder, TREE_MARKER } from '../../src/filesync/guards.ts';
import { FileSyncError } from '../../src/filesync/errors.ts';
import { withTempDir } from './helpers.ts';

const isCode = (code: string) => (e: unknown): boolean => e instanceof FileSyncError && e.code === code;

test('validatePeerPath: accepts plain relative paths, rejects every escape', () => {
  for (const ok of ['a', 'a/b/c.txt', '.hidden', 'dir/..x', 'sp ace/é', 'a\\b', '...']) assert.equal(validatePeerPath(ok), ok);
  const bad: unknown[] = ['', '/etc/passwd', '../x', 'a/../../x', 'a/..', './a', 'a/./b', 'a//b', 'a/', 'a\0b', 'x'.repeat(256), 'a/'.repeat(2100) + 'b',
    TREE_MARKER, 'd/.multiall.f.0a1b2c.tmp', '\uD800', 42, null];
  for (const p of bad) assert.throws(() => validatePeerPath(p), isCode('E_PATH'), JSON.stringify(p));
  // Anything accepted is a relative path that stays inside the root after joining.
  fc.assert(
    fc.property(fc.string({ unit: fc.constantFrom('a', '.', '/', '\0', 'é', '\\') }), (p) => {
      let ok: string | null = null;
      try {
        ok = validatePeerPath(p);
      } catch (e) {
        if (!isCode('E_PATH')(e)) throw e;
      }
      if (ok !== null) {
        const joined = join('/root/tree', ok);
        assert.ok(joined.startsWith('/root/tree/') && joined === `/root/tree/${ok}`, ok);
      }
    }),
    { numRuns: 2000 },
  );
});

test('resolveInTree: refuses to write through a symlinked or non-directory parent', async () => {
  await withTempDir(async (dir) => {
    const root = join(dir, 'root');
    const outside = join(dir, 'outside');
    await mkdir(join(root, 'real/sub'), { recursive: true });
    await mkdir(outside);
    await symlink(outside, join(root, 'link'));
    await writeFile(join(root, 'file'), 'x');
    assert.equal(await resolveInTree(root, 'real/sub/x'), join(root, 'real/sub/x'));
    assert.equal(await resolveInTree(root, 'real/new/deeper/x'), join(root, 'real/new/deeper/x'));
    assert.equal(await resolveInTree(root, 'link'), join(root, 'link')); // the link itself may be replaced
    await assert.rejects(resolveInTree(root, 'link/passwd'), isCode('E_SYMLINK_PARENT'));
    await assert.rejects(resolveInTree(root, 'file/x'), isCode('E_SYMLINK_PARENT'));
    await assert.rejects(resolveInTree(root, '../outside/x'), isCode('E_PATH'));
  });
});

test('tree guard: marker, other tree, vanished root, other device', async () => {
  await withTempDir(async (dir) => {
    const root = join(dir, 'www');
    await assert.rejects(initTree(root, 'pool-web:/var/www', 'n1'), isCode('E_TREE_ROOT'));
    await mkdir(root);
    const id = await initTree(root, 'pool-web:/var/www', 'n1');
    const marker = JSON.parse(await readFile(join(root, TREE_MARKER), 'utf8')) as { treeId: string; createdBy: string };
    assert.deepEqual([marker.treeId, marker.createdBy], ['pool-web:/var/www', 'n1']);
    assert.deepEqual(await initTree(root, 'pool-web:/var/www', 'n2'), id); // idempotent
    await assert.rejects(initTree(root, 'other', 'n1'), isCode('E_TREE_ROOT'));
    assert.deepEqual(await checkTree(root, id), { ok: true });

    const reason = async (): Promise<string> => {
      const r = await checkTree(root, id);
      return r.ok ? 'ok' : r.reason;
    };
    assert.equal((await checkTree(root, { ...id, dev: `${id.dev}1` }).then((r) => (r.ok ? 'ok' : r.reason))), 'other-device');
    assert.equal((await checkTree(root, { ...id, treeId: 'x' }).then((r) => (r.ok ? 'ok' : r.reason))), 'other-tree');
    await writeFile(join(root, TREE_MARKER), 'garbage');
    assert.equal(await reason(), 'marker-invalid');
    await rm(join(root, TREE_MARKER)); // e.g. the disk is not mounted and we see the empty mount point
    assert.equal(await reason(), 'marker-missing');
    await rm(root, { recursive: true });
    assert.equal(await reason(), 'root-missing');
    await writeFile(root, '');
    assert.equal(await reason(), 'not-a-directory');
  });
});

test('mass-delete guard', () => {
  assert.deepEqual(checkMassDelete(1000, 100), { ok: true });
  assert.equal(checkMassDelete(1000, 501).ok, false);
  assert.equal(checkMassDelete(1000, 200, { maxPercent: 10 }).ok, false);
  assert.deepEqual(checkMassDelete(4, 3), { ok: true }); // small trees: fewer than minDeletes
  assert.equal(checkMassDelete(4, 4).ok, false); // but never the whole tree at once
  assert.deepEqual(checkMassDelete(1, 1), { ok: true });
  assert.deepEqual(checkMassDelete(0, 0), { ok: true });
  assert.throws(() => checkMassDelete(-1, 0), isCode('E_ARG'));
  assert.throws(() => checkMassDelete(10, 1, { maxPercent: 101 }), isCode('E_ARG'));
});

test('mountsUnder: mount points strictly inside the root, octal escapes decoded, others ignored', async () => {
  await withTempDir(async (dir) => {
    const root = join(dir, 'my tree');
    await mkdir(root);
    const info = join(dir, 'mountinfo');
    const esc = (p: string): string => p.replace(/ /g, '\\040');
    await writeFile(info, [
      '22 27 0:21 / /proc rw,relatime - proc proc rw',
      `40 27 8:1 / ${esc(root)} rw - ext4 /dev/sda1 rw`,
      `41 40 0:50 / ${esc(join(root, 'up loads'))} rw - tmpfs tmpfs rw`,
      `42 41 0:51 / ${esc(join(root, 'up loads/deeper'))} rw - nfs srv:/x rw`,
      `43 27 0:52 / ${esc(`${root}-sibling`)} rw - tmpfs tmpfs rw`,
      `44 27 0:53 / ${esc(join(root, '..x'))} rw - tmpfs tmpfs rw`,
      '',
    ].join('\n'));
    assert.deepEqual(await mountsUnder(root, info), ['..x', 'up loads', 'up loads/deeper']);
    assert.deepEqual(await mountsUnder(join(dir, 'missing'), info), []);
    assert.deepEqual(await mountsUnder(root, join(dir, 'no-such-mountinfo')), []);
  });
});
