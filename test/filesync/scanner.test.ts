import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { spawnSync } from 'node:child_process';
import { chmod, lstat, mkdir, rename, symlink, unlink, utimes, writeFile } from 'node:fs/promises';
import { chmodSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { scan, scopeCovers } from '../../src/filesync/index/scanner.ts';
import { HashCache } from '../../src/filesync/index/hashcache.ts';
import { FileSyncError } from '../../src/filesync/errors.ts';
import { withTempDir } from './helpers.ts';
import { canRunAgentAs } from '../../src/harness/cluster.ts';

/** The `nobody` account (uid and gid 65534 on Debian). */
const NOBODY = { uid: 65534, gid: 65534 };

const past = new Date('2024-01-02T03:04:05Z');

async function makeTree(dir: string): Promise<void> {
  await mkdir(join(dir, 'etc/nginx/sites'), { recursive: true });
  await mkdir(join(dir, 'cache/deep'), { recursive: true });
  await mkdir(join(dir, 'empty'));
  await writeFile(join(dir, 'etc/nginx/nginx.conf'), 'worker_processes 4;\n');
  await writeFile(join(dir, 'etc/nginx/sites/a.conf'), 'server {}\n');
  await writeFile(join(dir, 'etc/app.log'), 'noise');
  await writeFile(join(dir, 'cache/deep/blob'), 'x'.repeat(1000));
  await writeFile(join(dir, 'README'), 'hi');
  await chmod(join(dir, 'README'), 0o600);
  await symlink('nginx/nginx.conf', join(dir, 'etc/current'));
  await writeFile(join(dir, '.multiall.README.abcdef.tmp'), 'partial'); // our temp file
  await writeFile(join(dir, '.multiall-tree'), '{}'); // our marker
  for (const f of ['etc/nginx/nginx.conf', 'etc/nginx/sites/a.conf', 'etc/app.log', 'cache/deep/blob', 'README']) await utimes(join(dir, f), past, past);
}

test('scan: entries, types, metadata, hashes; reserved names skipped', async () => {
  await withTempDir(async (dir) => {
    await makeTree(dir);
    const { entries, stats, problems } = await scan(dir);
    assert.deepEqual([...entries.keys()].sort(), [
      'README', 'cache', 'cache/deep', 'cache/deep/blob', 'empty', 'etc', 'etc/app.log', 'etc/current', 'etc/nginx', 'etc/nginx/nginx.conf', 'etc/nginx/sites', 'etc/nginx/sites/a.conf',
    ]);
    const readme = entries.get('README')!;
    assert.equal(readme.type, 'file');
    assert.equal(readme.size, 2);
    assert.equal(readme.mode, 0o600);
    assert.equal(readme.uid, process.getuid!());
    assert.equal(readme.mtimeNs, BigInt(past.getTime()) * 1_000_000n);
    assert.equal(readme.hash, createHash('sha256').update('hi').digest('hex'));
    assert.equal(readme.racy, undefined);
    const link = entries.get('etc/current')!;
    assert.equal(link.type, 'symlink');
    assert.equal(link.target, 'nginx/nginx.conf');
    assert.equal(link.hash, undefined);
    assert.equal(entries.get('empty')!.type, 'dir');
    assert.deepEqual(stats, { files: 5, dirs: 6, symlinks: 1, hashed: 5, reused: 0, bytesHashed: 2 + 20 + 10 + 5 + 1000 });
    assert.deepEqual(problems, []);
  });
});

test('scan: exclude prunes, include keeps matching files and their parents', async () => {
  await withTempDir(async (dir) => {
    await makeTree(dir);
    const ex = await scan(dir, { exclude: ['*.log', 'cache/', '!etc/app.log'] });
    assert.ok(!ex.entries.has('cache') && !ex.entries.has('cache/deep/blob'));
    assert.ok(ex.entries.has('etc/app.log'), 'negation re-includes');
    const inc = await scan(dir, { include: ['*.conf'], exclude: ['sites/'] });
    assert.deepEqual([...inc.entries.keys()].sort(), ['etc', 'etc/nginx', 'etc/nginx/nginx.conf']);
    const incDir = await scan(dir, { include: ['/cache/'] });
    assert.deepEqual([...incDir.entries.keys()].sort(), ['cache', 'cache/deep', 'cache/deep/blob']);
    await assert.rejects(scan(dir, { exclude: ['[oops'] }), (e: unknown) => e instanceof FileSyncError && e.code === 'E_PATTERN');
  });
});

test('scan with a scope: paths alone, trees with their content, nothing excluded or reserved; scopeCovers', async () => {
  await withTempDir(async (dir) => {
    await makeTree(dir);
    const full = await scan(dir, { exclude: ['cache/'] });
    const scope = {
      paths: new Set(['etc', 'README', 'gone.txt', '.multiall.README.abcdef.tmp', 'cache/deep/blob', 'etc/nginx/sites/a.conf']),
      trees: new Set(['etc/nginx', 'nothing-here']),
    };
    const res = await scan(dir, { exclude: ['cache/'], scope });
    // etc: its own entry only; etc/nginx: everything below; a.conf once; cache/ excluded; gone.txt absent.
    assert.deepEqual([...res.entries.keys()].sort(), ['README', 'etc', 'etc/nginx', 'etc/nginx/nginx.conf', 'etc/nginx/sites', 'etc/nginx/sites/a.conf']);
    for (const [p, e] of res.entries) assert.deepEqual(e, full.entries.get(p), `${p} as in a full scan`);
    assert.equal(res.stats.files, 3);
    assert.deepEqual(res.problems, []);
    // A scope holding the root is a full scan; include rules need whole directories.
    assert.deepEqual([...(await scan(dir, { scope: { paths: new Set(), trees: new Set(['']) } })).entries.keys()].sort(), [...(await scan(dir)).entries.keys()].sort());
    await assert.rejects(scan(dir, { include: ['*.conf'], scope }), (e: unknown) => e instanceof FileSyncError && e.code === 'E_ARG');
    assert.ok(scopeCovers(scope, 'etc') && scopeCovers(scope, 'etc/nginx') && scopeCovers(scope, 'etc/nginx/sites/deeper/x'));
    assert.ok(!scopeCovers(scope, 'etc/app.log') && !scopeCovers(scope, 'etc/nginxx') && !scopeCovers(scope, 'cache'));
  });
});

test('scan: rehashes only changed files; racy hashes are not trusted; renames hit the hash cache', async () => {
  await withTempDir(async (dir) => {
    await makeTree(dir);
    const cache = new HashCache();
    const first = await scan(dir, { hashCache: cache });
    const second = await scan(dir, { previous: first.entries, hashCache: cache });
    assert.equal(second.stats.hashed, 0);
    assert.equal(second.stats.reused, 5);

    await writeFile(join(dir, 'README'), 'changed');
    await utimes(join(dir, 'README'), past, past); // same mtime as before: the size change alone must trigger a rehash
    const third = await scan(dir, { previous: second.entries, hashCache: cache });
    assert.equal(third.stats.hashed, 1);
    assert.equal(third.entries.get('README')!.hash, createHash('sha256').update('changed').digest('hex'));

    // mtime in the future (like a write in the current timestamp tick): hash marked racy.
    const future = new Date(Date.now() + 3_600_000);
    await utimes(join(dir, 'etc/app.log'), future, future);
    const fourth = await scan(dir, { previous: third.entries, hashCache: cache });
    assert.equal(fourth.stats.hashed, 1);
    assert.equal(fourth.entries.get('etc/app.log')!.racy, true);
    const fifth = await scan(dir, { previous: fourth.entries, hashCache: cache });
    assert.equal(fifth.stats.hashed, 1, 'a racy hash is recomputed');
    await utimes(join(dir, 'etc/app.log'), past, past);

    await rename(join(dir, 'cache/deep/blob'), join(dir, 'blob-moved'));
    const sixth = await scan(dir, { previous: fifth.entries, hashCache: cache });
    assert.equal(sixth.entries.get('blob-moved')!.hash, first.entries.get('cache/deep/blob')!.hash);
    assert.equal(sixth.stats.hashed, 0, 'moved file and restored app.log both come from the cache');
    const seventh = await scan(dir, { previous: sixth.entries });
    assert.equal(seventh.stats.hashed, 0);
  });
});

test('hash cache: a file that got a deleted file\'s inode number (same size and mtime) is not taken for it; birth times tell them apart', async () => {
  await withTempDir(async (dir) => {
    const fixed = new Date('1985-10-26T08:15:00Z'); // npm's mtime for every packed file
    await writeFile(join(dir, 'a.js'), 'console.log("1.2.3")');
    await utimes(join(dir, 'a.js'), fixed, fixed);
    const cache = new HashCache();
    const first = await scan(dir, { hashCache: cache });
    const a = await lstat(join(dir, 'a.js'), { bigint: true });
    assert.equal(cache.get(a), first.entries.get('a.js')!.hash);
    assert.ok(a.birthtimeNs > 0n, 'this filesystem records birth times (ext4 does)');
    // Another file with the same inode number, size and mtime, created later: a miss.
    assert.equal(cache.get({ ...a, birthtimeNs: a.birthtimeNs + 1n }), undefined);
    // The real sequence; whether ext4 hands out the same inode again is up to it, the hash must be right either way.
    await unlink(join(dir, 'a.js'));
    await writeFile(join(dir, 'b.js'), 'console.log("9.9.9")');
    await utimes(join(dir, 'b.js'), fixed, fixed);
    const second = await scan(dir, { previous: first.entries, hashCache: cache });
    assert.equal(second.entries.get('b.js')!.hash, createHash('sha256').update('console.log("9.9.9")').digest('hex'));
  });
});

test('scan: a tree root that cannot be listed fails the scan (E_TREE_ROOT) instead of reporting its content gone', {
  skip: process.getuid?.() !== 0 ? 'needs root (to scan as nobody a directory it may enter but not list)' : !canRunAgentAs(NOBODY) ? 'nobody cannot read this checkout or its Node binary' : false,
}, async () => {
  const base = mkdtempSync(join(tmpdir(), 'multiall-unreadable-'));
  try {
    chmodSync(base, 0o711);
    const root = join(base, 'tree');
    mkdirSync(root, { mode: 0o711 }); // others (nobody) may enter, not list
    writeFileSync(join(root, 'file'), 'x');
    const script = `import { scan } from ${JSON.stringify(pathToFileURL(join(import.meta.dirname, '../../src/filesync/index/scanner.ts')).href)};
      try { const r = await scan(process.argv[1]); console.log(JSON.stringify({ entries: r.entries.size, problems: r.problems })); } catch (e) { console.log(JSON.stringify({ code: e.code, message: e.message })); }`;
    const r = spawnSync(process.execPath, ['--input-type=module', '-e', script, root], { uid: NOBODY.uid, gid: NOBODY.gid, encoding: 'utf8' });
    assert.equal(r.status, 0, r.stderr);
    const out = JSON.parse(r.stdout) as { code?: string; message?: string };
    assert.equal(out.code, 'E_TREE_ROOT', r.stdout);
    assert.match(out.message!, /cannot read tree root .*EACCES/);
  } finally {
    rmSync(base, { recursive: true, force: true });
  }
});

test('scan: special files and invalid names are reported, not synced; root must be a directory', async () => {
  await withTempDir(async (dir) => {
    await writeFile(join(dir, 'ok'), '1');
    const fifo = spawnSync('mkfifo', [join(dir, 'pipe')]).status === 0;
    await writeFile(Buffer.from(`${dir}/bad-\xff-name`, 'latin1'), 'x');
    const r = await scan(dir);
    assert.deepEqual([...r.entries.keys()], ['ok']);
    const reasons = r.problems.map((p) => p.reason).sort();
    assert.ok(reasons.includes('name is not valid UTF-8'));
    if (fifo) assert.ok(reasons.some((x) => x.startsWith('special file')));
    await assert.rejects(scan(join(dir, 'ok')), (e: unknown) => e instanceof FileSyncError && e.code === 'E_TREE_ROOT');
    await assert.rejects(scan(join(dir, 'nope')), (e: unknown) => e instanceof FileSyncError && e.code === 'E_TREE_ROOT');
  });
});
