import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { access, readFile, stat, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { GroupSync, Syncfs } from '../../src/filesync/groupsync.ts';
import { EMPTY_SIGNATURE } from '../../src/filesync/transfer.ts';
import { patch } from '../../src/filesync/delta/index.ts';
import { withTempDir, pseudoRandom } from './helpers.ts';

const exists = (p: string): Promise<boolean> => access(p).then(() => true, () => false);

test('syncfs coprocess: syncs existing paths, names a missing one in its error, and stays usable', async () => {
  const s = Syncfs.find();
  assert.ok(s !== null, 'bash and coreutils sync are Debian essentials');
  try {
    await withTempDir(async (dir) => {
      await writeFile(join(dir, 'a'), 'x');
      await s.sync([join(dir, 'a'), dir]);
      await assert.rejects(s.sync([join(dir, 'missing')]), /missing.*No such file/);
      await s.sync([dir]); // the coprocess survived the failure
    });
  } finally {
    s.close();
  }
});

test('group sync: many waiting files share few syncfs rounds, and every wait resolves', async () => {
  await withTempDir(async (dir) => {
    const g = new GroupSync({ maxFiles: 64, delayMs: 5 });
    try {
      const paths = Array.from({ length: 300 }, (_, i) => join(dir, `f${i}`));
      await Promise.all(paths.map(async (p) => {
        await writeFile(p, p);
        await g.durable(p, (await stat(p, { bigint: true })).dev);
      }));
      assert.equal(g.stats.files, 300);
      assert.equal(g.stats.fallbacks, 0);
      assert.ok(g.stats.rounds >= 1 && g.stats.rounds <= 300 / 8, `${g.stats.rounds} rounds for 300 files`);
    } finally {
      g.close();
    }
  });
});

test('group sync: when the syncfs helper fails, each file of the round is fsynced on its own (told once), a missing one rejects', async () => {
  await withTempDir(async (dir) => {
    const errors: string[] = [];
    // A "bash" that exits at once: the round's request fails with the helper gone.
    const g = new GroupSync({ syncfs: new Syncfs('/bin/false'), onFallback: (e) => errors.push(e.message) });
    try {
      const a = join(dir, 'a');
      await writeFile(a, 'a');
      const dev = (await stat(a, { bigint: true })).dev;
      await Promise.all([g.durable(a, dev), assert.rejects(g.durable(join(dir, 'gone'), dev), /ENOENT/)]);
      assert.equal(g.stats.fallbacks, 1);
      assert.equal(g.stats.rounds, 0);
      assert.match(errors[0] ?? '', /syncfs helper exited/);
    } finally {
      g.close();
    }
  });
});

test('group sync whose bash cannot be started falls back at once, without trying again every round', async () => {
  await withTempDir(async (dir) => {
    const errors: Error[] = [];
    const g = new GroupSync({ syncfs: new Syncfs(join(dir, 'no-such-bash')), onFallback: (e) => errors.push(e) });
    const a = join(dir, 'a');
    await writeFile(a, 'a');
    const dev = (await stat(a, { bigint: true })).dev;
    await g.durable(a, dev);
    await g.durable(a, dev);
    assert.equal(g.stats.fallbacks, 2);
    assert.equal(errors.length, 2);
    assert.match(errors[0]!.message, /cannot run .*no-such-bash.*ENOENT/);
    assert.equal(errors[1], errors[0], 'the second round failed with the same error object: no new spawn');
    g.close();
  });
});

test('group sync without a syncfs runner fsyncs each file', async () => {
  await withTempDir(async (dir) => {
    const g = new GroupSync({ syncfs: null });
    const a = join(dir, 'a');
    await writeFile(a, 'a');
    await g.durable(a, 0n);
    await assert.rejects(g.durable(join(dir, 'gone'), 0n), /ENOENT/);
    assert.deepEqual(g.stats, { rounds: 0, files: 0, fallbacks: 0 });
  });
});

test('patch() with `durable`: called once the complete temp file is closed, before the rename', async () => {
  await withTempDir(async (dir) => {
    const data = pseudoRandom(300_000, 7);
    const target = join(dir, 'out');
    let seen: { tmp: string; content: Buffer; targetThere: boolean } | undefined;
    const sha256 = new Uint8Array(createHash('sha256').update(data).digest());
    await patch(null, [{ type: 'literal', data: data.subarray(0, 200_000) }, { type: 'literal', data: data.subarray(200_000) }, { type: 'end', size: data.length, sha256 }], target, EMPTY_SIGNATURE, {
      durable: async (tmp) => {
        seen = { tmp, content: await readFile(tmp), targetThere: await exists(target) };
      },
    });
    assert.ok(seen !== undefined, 'durable was called');
    assert.ok(seen.content.equals(data), 'the temp file was complete when durable ran');
    assert.equal(seen.targetThere, false, 'not renamed before durable resolved');
    assert.ok((await readFile(target)).equals(data));
    assert.equal(await exists(seen.tmp), false);
  });
});
