import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import fc from 'fast-check';
import { IgnoreMatcher } from '../../src/filesync/index/gitignore.ts';
import { FileSyncError } from '../../src/filesync/errors.ts';
import { withTempDir } from './helpers.ts';

test('gitignore rules: table of expected verdicts', () => {
  const cases: Array<[string[], string, boolean, boolean]> = [
    // [patterns, path, isDir, ignored]
    [['*.log'], 'a.log', false, true],
    [['*.log'], 'x/y/a.log', false, true],
    [['*.log'], 'a.logx', false, false],
    [['/build'], 'build', true, true],
    [['/build'], 'src/build', true, false],
    [['build/'], 'build', false, false],
    [['build/'], 'src/build', true, true],
    [['build/'], 'src/build/out.o', false, true],
    [['a/b'], 'a/b', false, true],
    [['a/b'], 'x/a/b', false, false],
    [['a?c'], 'abc', false, true],
    [['a?c'], 'a/c', false, false],
    [['[a-c]x'], 'bx', false, true],
    [['[!a-c]x'], 'bx', false, false],
    [['[!a-c]x'], 'dx', false, true],
    [['[[:digit:]]*'], '7up', false, true],
    [['**/foo'], 'foo', false, true],
    [['**/foo'], 'a/b/foo', false, true],
    [['a/**/b'], 'a/b', false, true],
    [['a/**/b'], 'a/x/y/b', false, true],
    [['a/**'], 'a', true, false],
    [['a/**'], 'a/x/y', false, true],
    [['a**b'], 'a/b', false, false],
    [['*.tmp', '!keep.tmp'], 'keep.tmp', false, false],
    [['*.tmp', '!keep.tmp'], 'x.tmp', false, true],
    [['dir/', '!dir/keep'], 'dir/keep', false, true], // parent excluded: cannot re-include
    [['/*', '!/etc/'], 'etc/passwd', false, false],
    [['/*', '!/etc/'], 'var/log', false, true],
    [['\\#x', '\\!y'], '#x', false, true],
    [['\\#x', '\\!y'], '!y', false, true],
    [['# comment', '', 'z'], '# comment', false, false],
    [['trail  '], 'trail', false, true],
    [['sp\\ '], 'sp ', false, true],
    [['[]]'], ']', false, true],
  ];
  for (const [pats, path, isDir, want] of cases) {
    assert.equal(new IgnoreMatcher(pats).ignores(path, isDir), want, `${JSON.stringify(pats)} on ${path}${isDir ? '/' : ''}`);
  }
});

test('gitignore: bad patterns are rejected with E_PATTERN', () => {
  for (const p of ['abc\\', 'a[bc', '[[:nope:]]']) {
    assert.throws(() => new IgnoreMatcher([p]), (e: unknown) => e instanceof FileSyncError && e.code === 'E_PATTERN', p);
  }
});

const gitAvailable = spawnSync('git', ['--version']).status === 0;

test('gitignore: random patterns agree with `git check-ignore`', { skip: !gitAvailable && 'git not installed' }, async () => {
  const seg = fc.stringMatching(/^[abc.-]{1,3}$/).filter((s) => s !== '.' && s !== '..');
  const pathArb = fc.array(seg, { minLength: 1, maxLength: 3 }).map((s) => s.join('/'));
  const patTok = fc.constantFrom('a', 'b', 'c', '.', '*', '**', '?', '/', '[ab]', '[!a]', '[a-b]', '-');
  const patArb = fc.tuple(fc.boolean(), fc.array(patTok, { minLength: 1, maxLength: 5 })).map(([neg, t]) => (neg ? '!' : '') + t.join(''));
  await fc.assert(
    fc.asyncProperty(fc.array(patArb, { minLength: 1, maxLength: 4 }), fc.array(pathArb, { minLength: 1, maxLength: 12 }), async (pats, paths) => {
      await withTempDir(async (dir) => {
        // A path that is a prefix of another is a directory.
        const uniq = [...new Set(paths)];
        const isDir = (p: string): boolean => uniq.some((q) => q.startsWith(`${p}/`));
        if (uniq.some((p) => !isDir(p) && uniq.some((q) => q !== p && p.startsWith(`${q}/`) && !isDir(q)))) return;
        for (const p of uniq) {
          if (isDir(p)) await mkdir(join(dir, p), { recursive: true });
          else {
            await mkdir(join(dir, p, '..'), { recursive: true });
            await writeFile(join(dir, p), '');
          }
        }
        await writeFile(join(dir, '.gitignore'), pats.join('\n') + '\n');
        spawnSync('git', ['init', '-q', dir]);
        const r = spawnSync('git', ['-C', dir, '-c', 'core.excludesFile=/dev/null', 'check-ignore', '--no-index', '-v', '-n', '--stdin'], { input: uniq.join('\n') + '\n', encoding: 'utf8' });
        const m = new IgnoreMatcher(pats);
        const lines = r.stdout.trim().split('\n');
        assert.equal(lines.length, uniq.length, `git check-ignore failed: ${r.stderr}`);
        for (const line of lines) {
          const tab = line.indexOf('\t');
          const path = line.slice(tab + 1);
          const pattern = line.slice(0, tab).split(':').slice(2).join(':');
          const gitIgnored = pattern !== '' && !pattern.startsWith('!');
          assert.equal(m.ignores(path, isDir(path)), gitIgnored, `patterns ${JSON.stringify(pats)} path ${path}: git says ${line}`);
        }
      });
    }),
    { numRuns: 60, seed: 4242 },
  );
});
