import { test } from 'node:test';
import assert from 'node:assert/strict';
import { chown, lstat, mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { parseIdFile, SystemOwnerNames, type OwnerNames } from '../../src/filesync/owners.ts';
import { makeCluster, waitFor } from './cluster.ts';
import { withTempDir } from './helpers.ts';

test('owner names: passwd/group parsing (first name of an id and first id of a name win, bad lines skipped), reload on change, the system files', async () => {
  const t = parseIdFile('root:x:0:0:root:/root:/bin/bash\napp:x:1001:1001::/home/app:/bin/sh\nalias:x:1001:1001::/:/bin/sh\napp:x:2000:2000::/:/bin/sh\nbad line\n:x:5:5\nneg:x:-1:1\nbig:x:99999999999:1\n# comment\n');
  assert.deepEqual([...t.byId], [[0, 'root'], [1001, 'app'], [2000, 'app']]);
  assert.deepEqual([...t.byName], [['root', 0], ['app', 1001], ['alias', 1001]]);
  await withTempDir(async (dir) => {
    const passwd = join(dir, 'passwd');
    const group = join(dir, 'group');
    await writeFile(passwd, 'app:x:1001:1001::/:/bin/sh\n');
    await writeFile(group, 'staff:x:50:\n');
    const names = new SystemOwnerNames({ passwd, group, recheckMs: 0 });
    assert.equal(names.userName(1001), 'app');
    assert.equal(names.uidOf('app'), 1001);
    assert.equal(names.groupName(50), 'staff');
    assert.equal(names.gidOf('staff'), 50);
    assert.equal(names.uidOf('nobody-here'), undefined);
    await writeFile(passwd, 'app:x:1777:1001::/:/bin/sh\n');
    const { utimes } = await import('node:fs/promises');
    await utimes(passwd, new Date(), new Date(Date.now() + 2000)); // a new mtime even on a coarse clock
    assert.equal(names.uidOf('app'), 1777, 're-read after the file changed');
    const none = new SystemOwnerNames({ passwd: join(dir, 'missing'), group: join(dir, 'missing') });
    assert.equal(none.userName(0), undefined, 'no file: no names (numbers kept)');
  });
  const sys = new SystemOwnerNames();
  assert.equal(sys.userName(0), 'root');
  assert.equal(sys.uidOf('root'), 0);
});

/** A node's names: `table` maps a name to its id for both users and groups. */
function names(table: Record<string, number>): OwnerNames {
  const byId = new Map(Object.entries(table).map(([n, id]) => [id, n]));
  return { userName: (id) => byId.get(id), groupName: (id) => byId.get(id), uidOf: (n) => table[n], gidOf: (n) => table[n] };
}

const skip = process.getuid?.() !== 0 ? 'needs root to give files owners' : false;

for (const numeric of [false, true]) {
  test(`owners between nodes ${numeric ? 'by number (numeric_ids: true)' : 'by name, the number where a name is unknown (rsync\'s rule)'}`, { skip }, async () => {
    // "app" is 1001 on a and 1002 on b; "only-a" exists on a only; 1003 has no name anywhere.
    const c = await makeCluster({ names: ['a', 'b'], tree: { numericIds: numeric }, ownerNames: { a: names({ app: 1001, 'only-a': 1500 }), b: names({ app: 1002 }) } });
    try {
      await c.start('a');
      await c.start('b');
      const a = c.node('a').root;
      const b = c.node('b').root;
      const owner = async (root: string, p: string): Promise<string> => { const st = await lstat(join(root, p)); return `${st.uid}:${st.gid}`; };
      await mkdir(join(a, 'd'));
      for (const [f, id] of [['app.txt', 1001], ['only-a.txt', 1500], ['nameless.txt', 1003]] as const) {
        await writeFile(join(a, 'd', f), f);
        await chown(join(a, 'd', f), id, id);
      }
      await c.node('a').svc.scanNow('www');
      await waitFor('b has the files', async () => (await lstat(join(b, 'd/nameless.txt')).catch(() => null)) !== null);
      await waitFor('b applied the owners', async () => (await owner(b, 'd/app.txt')) === (numeric ? '1001:1001' : '1002:1002'));
      assert.equal(await owner(b, 'd/only-a.txt'), '1500:1500', 'a name unknown on b: the number');
      assert.equal(await owner(b, 'd/nameless.txt'), '1003:1003', 'no name: the number');
      // b's view of its own disk matches its index: no change to send back, a's owners stay.
      assert.equal(await c.node('b').svc.scanNow('www'), 0);
      // A file made on b for its app user arrives on a as a's app user.
      await writeFile(join(b, 'd', 'from-b.txt'), 'b');
      await chown(join(b, 'd', 'from-b.txt'), 1002, 1002);
      await c.node('b').svc.scanNow('www');
      await waitFor('a has from-b.txt', async () => (await lstat(join(a, 'd/from-b.txt')).catch(() => null)) !== null);
      await waitFor('a applied its owner', async () => (await owner(a, 'd/from-b.txt')) === (numeric ? '1002:1002' : '1001:1001'));
      assert.equal(await owner(a, 'd/app.txt'), '1001:1001');
      assert.equal(await c.node('a').svc.scanNow('www'), 0);
    } finally {
      await c.close();
    }
  });
}
