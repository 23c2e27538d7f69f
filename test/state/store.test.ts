import { after, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, writeFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { spawn } from 'node:child_process';
import { openStore, Store } from '../../src/state/store.ts';
import { MIGRATIONS } from '../../src/state/migrations.ts';

const LATEST = Math.max(...MIGRATIONS.map((m) => m.version));
import { acquireLock, LockError } from '../../src/state/lock.ts';

const dirs: string[] = [];
const tmp = (): string => {
  const d = mkdtempSync(join(tmpdir(), 'multiall-state-'));
  dirs.push(d);
  return d;
};
after(() => {
  for (const d of dirs) rmSync(d, { recursive: true, force: true });
});

test('migrations apply once and record their versions', () => {
  const dir = tmp();
  const s1 = openStore(dir);
  assert.equal(s1.schemaVersion(), LATEST);
  s1.kvSet('a', '1');
  s1.close();
  const s2 = openStore(dir);
  assert.equal(s2.kvGet('a'), '1');
  const n = s2.db.prepare('SELECT COUNT(*) AS n FROM schema_migrations').get() as { n: number };
  assert.equal(n.n, MIGRATIONS.length);
  s2.close();
});

test('a database from a newer agent version is refused', () => {
  const dir = tmp();
  const s = openStore(dir);
  s.db.prepare("INSERT INTO schema_migrations VALUES (99, 'x', 'future', 0)").run();
  s.close();
  assert.throws(() => openStore(dir), /schema version 99, unknown/);
});

test('a failing migration leaves the previous schema intact', () => {
  const dir = tmp();
  openStore(dir).close();
  const bad = [...MIGRATIONS, { version: LATEST + 1, component: 't', name: 'broken', sql: 'CREATE TABLE ok1(x); CREATE TABLE nonsense(' }];
  assert.throws(() => new Store(join(dir, 'state.db'), bad));
  const s = openStore(dir);
  assert.equal(s.schemaVersion(), LATEST);
  const t = s.db.prepare("SELECT name FROM sqlite_master WHERE name = 'ok1'").get();
  assert.equal(t, undefined);
  s.close();
});

test('history is appended and read back newest first', () => {
  const s = openStore(tmp());
  s.appendHistory('failover', 'promoted', { term: 3 });
  s.appendHistory('health', 'changed', { status: 'OK' });
  assert.deepEqual(s.history({ component: 'failover' }).map((h) => h.data), [{ term: 3 }]);
  assert.equal(s.history().length, 2);
  s.close();
});

test('lock: a second owner is refused, a stale lock from a dead pid is taken over', () => {
  const dir = tmp();
  const lock = acquireLock(dir);
  // Same directory, simulated other live owner: pid 1 always exists.
  writeFileSync(lock.path, '1\n');
  assert.throws(() => acquireLock(dir), (e: unknown) => e instanceof LockError && /pid 1/.test(e.message));
  // A pid that cannot exist (beyond pid_max) is stale.
  writeFileSync(lock.path, '4194305\n');
  const again = acquireLock(dir);
  again.release();
});

test('kill -9 during heavy writes never corrupts the store', async () => {
  const dir = tmp();
  openStore(dir).close();
  const writer = `
    import { openStore } from ${JSON.stringify(new URL('../../src/state/store.ts', import.meta.url).pathname)};
    const s = openStore(${JSON.stringify(dir)});
    let i = Number(s.kvGet('last') ?? '-1') + 1;
    process.stdout.write('ready\\n');
    for (;;) {
      // Two rows per transaction: after any crash the count must stay even.
      s.transaction(() => { s.appendHistory('t', 'a', { i }); s.appendHistory('t', 'b', { i }); s.kvSet('last', String(i)); });
      i++;
    }`;
  for (let round = 0; round < 3; round++) {
    const child = spawn(process.execPath, ['--no-warnings', '--input-type=module', '-e', writer], { stdio: ['ignore', 'pipe', 'inherit'] });
    await new Promise<void>((resolve) => child.stdout.once('data', () => resolve()));
    await new Promise((r) => setTimeout(r, 150 + round * 100));
    child.kill('SIGKILL');
    await new Promise((r) => child.once('exit', r));
    const s = openStore(dir);
    assert.equal(s.integrityCheck(), 'ok');
    const { n } = s.db.prepare("SELECT COUNT(*) AS n FROM history WHERE component = 't'").get() as { n: number };
    assert.equal(n % 2, 0, 'a transaction was half applied');
    assert.ok(n > 0);
    const last = Number(s.kvGet('last'));
    assert.equal(n, (last + 1) * 2, 'history rows and the kv counter disagree');
    s.close();
  }
});
