import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync, readFileSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { TreeWatcher } from '../../src/filesync/watcher.ts';
import type { ScanScope } from '../../src/filesync/index/scanner.ts';
import { withTempDir } from './helpers.ts';

/** Starts a watcher on `dir` and collects what it reports. */
async function watching(dir: string, fn: (w: { scopes: (ScanScope | null)[]; overflows: number; next: () => Promise<ScanScope | null> }) => Promise<void>): Promise<void> {
  const scopes: (ScanScope | null)[] = [];
  let wake: (() => void) | undefined;
  const state = {
    scopes,
    overflows: 0,
    next: async (): Promise<ScanScope | null> => {
      const deadline = Date.now() + 10_000;
      while (scopes.length === 0) {
        if (Date.now() > deadline) throw new Error('the watcher reported nothing');
        await new Promise<void>((r) => { wake = r; setTimeout(r, 50); });
      }
      return scopes.shift()!;
    },
  };
  const w = new TreeWatcher({
    root: dir, debounceMs: 50,
    onChange: (s) => { scopes.push(s); wake?.(); },
    onFail: (err) => assert.fail(`watching failed: ${err.message}`),
    onOverflow: () => { state.overflows++; },
  });
  assert.ok(w.start());
  try {
    await new Promise((r) => setTimeout(r, 100)); // sub-directories get their watches
    await fn(state);
  } finally {
    w.close();
  }
}

const sorted = (s: ReadonlySet<string>): string[] => [...s].sort();

test('watcher: a window reports where its events were (changed entries; created, removed, moved subtrees and their directories)', async () => {
  await withTempDir(async (dir) => {
    mkdirSync(join(dir, 'a/b'), { recursive: true });
    writeFileSync(join(dir, 'a/b/f'), 'x');
    writeFileSync(join(dir, 'top'), 'x');
    await watching(dir, async (w) => {
      writeFileSync(join(dir, 'a/b/f'), 'changed'); // content: the entry itself
      writeFileSync(join(dir, 'a/new'), 'new'); // created: its subtree and its directory
      renameSync(join(dir, 'top'), join(dir, 'a/b/moved'));
      const s = await w.next();
      assert.ok(s !== null);
      assert.deepEqual(sorted(s.trees), ['a/b/moved', 'a/new', 'top']);
      assert.deepEqual(sorted(s.paths), ['', 'a', 'a/b', 'a/b/f', 'a/new']);
      rmSync(join(dir, 'a'), { recursive: true });
      const gone = await w.next();
      assert.ok(gone !== null && gone.trees.has('a'), 'a removed directory is a subtree to look at');
      assert.equal(w.overflows, 0);
    });
  });
});

const capacity = Number.parseInt(readFileSync('/proc/sys/fs/inotify/max_queued_events', 'utf8'), 10);

test('watcher: a directory removed and made again, or swapped for another under its name, is watched anew', async () => {
  await withTempDir(async (dir) => {
    mkdirSync(join(dir, 'x'));
    mkdirSync(join(dir, 'www'));
    mkdirSync(join(dir, 'www.new/sub'), { recursive: true });
    await watching(dir, async (w) => {
      rmSync(join(dir, 'x'), { recursive: true });
      mkdirSync(join(dir, 'x'));
      renameSync(join(dir, 'www'), join(dir, 'www.old'));
      renameSync(join(dir, 'www.new'), join(dir, 'www'));
      await w.next();
      await new Promise((r) => setTimeout(r, 200)); // the new directories get their watches
      w.scopes.length = 0;
      for (const f of ['x/inside', 'www/inside', 'www/sub/deeper']) {
        writeFileSync(join(dir, f), 'new');
        const s = await w.next();
        assert.ok(s === null || s.trees.has(f), `${f}: an event from inside the new directory (got ${JSON.stringify(s && { paths: [...s.paths], trees: [...s.trees] })})`);
      }
      writeFileSync(join(dir, 'www.old/after'), 'x');
      const old = await w.next();
      assert.ok(old === null || old.trees.has('www.old/after'), 'the moved-away directory reports under its new name, not as www');
    });
  });
});

test('watcher: a burst that fills the inotify queue while the event loop is busy is reported and asks for a whole-tree scan', {
  skip: capacity > 200_000 && `fs.inotify.max_queued_events is ${capacity}: too many files to create for an overflow`,
}, async () => {
  await withTempDir(async (dir) => {
    await watching(dir, async (w) => {
      // Synchronously (nothing reads the queue meanwhile): more creations than the queue holds.
      for (let i = 0; i < capacity + 100; i++) writeFileSync(join(dir, `f${i}`), '');
      const s = await w.next();
      assert.equal(s, null, 'whole-tree scan');
      assert.equal(w.overflows, 1);
      // A burst the queue holds is no overflow.
      for (let i = 0; i < 200; i++) writeFileSync(join(dir, `g${i}`), '');
      const small = await w.next();
      assert.ok(small !== null && small.trees.size === 200);
      assert.equal(w.overflows, 1);
    });
  });
});
