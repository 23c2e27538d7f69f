// Multi-instance election scenarios over the simulated transport and virtual clocks (sim.ts).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync, existsSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Sim, service } from './sim.ts';
import { processExecutor } from '../../src/failover/actions.ts';
import type { Action, ResolvedService } from '../../src/failover/types.ts';

const ABC = ['a', 'b', 'c'];

function startAll(sim: Sim, names: string[]): void {
  for (const n of names) sim.start(n);
}

function assertSafe(sim: Sim): void {
  assert.deepEqual(sim.violations, []);
  const r = sim.check();
  assert.deepEqual(r.violations, []);
}

function logAction(file: string, text: string): Action {
  return { kind: 'run', run: `echo "${text}" >> ${file}`, timeoutMs: 5000, env: {}, onFailure: 'abort', retries: 0 };
}

test('a master is elected; the highest priority wins', async () => {
  const sim = new Sim({ seed: 7, members: ABC, services: [service({ voters: ABC, priority: { b: 200 } })] });
  startAll(sim, ABC);
  await sim.run(10_000);
  assert.deepEqual(sim.masters('vip'), ['b']);
  const st = sim.node('a').fo!.status()[0]!;
  assert.equal(st.master, 'b');
  assert.equal(st.role, 'standby');
  assertSafe(sim);
});

test('master killed: a standby is promoted, actions run once, in order, with variables', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'fo-kill-'));
  try {
    const file = join(dir, 'log');
    const svc: ResolvedService = service({
      voters: ABC, priority: { a: 200, b: 150, c: 100 },
      actions: {
        standby_to_master: [logAction(file, '%NODE% s2m-1 term=%TERM% prev=%PREVIOUS_MASTER% slave=%SLAVE%'), logAction(file, '%NODE% s2m-2')],
        master_to_standby: [logAction(file, '%NODE% m2s new=%MASTER%')],
        to_fault: [],
        health_changed: [],
      },
    });
    const sim = new Sim({ seed: 3, members: ABC, services: [svc], realActions: true, executor: () => processExecutor() });
    startAll(sim, ABC);
    await sim.run(10_000);
    assert.deepEqual(sim.masters('vip'), ['a']);
    sim.kill('a');
    await sim.run(10_000);
    assert.deepEqual(sim.masters('vip'), ['b']);
    const lines = readFileSync(file, 'utf8').trim().split('\n');
    assert.deepEqual(lines, [
      'a s2m-1 term=1 prev= slave=b',
      'a s2m-2',
      'b s2m-1 term=2 prev=a slave=c',
      'b s2m-2',
    ]);
    assertSafe(sim);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('paused master: never master while stale, demotes on resume, the new master keeps the role', async () => {
  const sim = new Sim({ seed: 11, members: ABC, services: [service({ voters: ABC, priority: { a: 200 }, preempt: { mode: 'nopreempt' },
    actions: { standby_to_master: [logAction('-', 'up %NODE%')], master_to_standby: [logAction('-', 'down %NODE%')], to_fault: [], health_changed: [] } })] });
  startAll(sim, ABC);
  await sim.run(10_000);
  assert.deepEqual(sim.masters('vip'), ['a']);
  const a = sim.node('a').fo!;
  sim.pause('a');
  // While paused, a's timers do not run; we probe isMasterNow() as a resumed process would.
  let staleProbes = 0;
  let aWasMasterAfterB = false;
  for (let i = 0; i < 60; i++) {
    await sim.run(250);
    if (sim.masters('vip').includes('b') || sim.masters('vip').includes('c')) {
      staleProbes++;
      if (a.isMasterNow('vip')) aWasMasterAfterB = true;
    }
  }
  assert.ok(staleProbes > 0, 'another member became master during the pause');
  assert.equal(aWasMasterAfterB, false);
  const newMaster = sim.masters('vip')[0]!;
  const termBefore = a.status()[0]!.term;
  assert.equal(a.isMasterNow('vip'), false, 'stale lease is not valid right at resume, before any timer ran');
  sim.resume('a');
  await sim.run(5000);
  const st = a.status()[0]!;
  assert.equal(st.role, 'standby');
  assert.ok(st.term > termBefore, 'a learned the newer term');
  assert.equal(st.master, newMaster);
  assert.deepEqual(sim.masters('vip'), [newMaster], 'nopreempt: the new master stays');
  // a ran master_to_standby exactly once, after resuming.
  assert.deepEqual(sim.recorded.get('a#1')!.log.map((e) => e.command), ['echo "up a" >> -', 'echo "down a" >> -']);
  assertSafe(sim);
});

test('newer term makes a master step down (partitioned master, healed)', async () => {
  const sim = new Sim({ seed: 5, members: ABC, services: [service({ voters: ABC, priority: { a: 200 }, preempt: { mode: 'nopreempt' } })] });
  startAll(sim, ABC);
  await sim.run(10_000);
  sim.partition(['a'], ['b', 'c']);
  await sim.run(10_000);
  const m = sim.masters('vip');
  assert.equal(m.length, 1);
  assert.notEqual(m[0], 'a', 'the minority side cannot keep a master');
  assert.equal(sim.node('a').fo!.status()[0]!.role, 'standby');
  sim.heal();
  await sim.run(10_000);
  assert.deepEqual(sim.masters('vip'), m, 'nopreempt: the majority side master keeps the role');
  assertSafe(sim);
});

test('preempt: a higher-priority member that comes back takes over', async () => {
  const sim = new Sim({ seed: 9, members: ABC, services: [service({ voters: ABC, priority: { a: 200, b: 150 } })] });
  startAll(sim, ABC);
  await sim.run(8000);
  assert.deepEqual(sim.masters('vip'), ['a']);
  sim.node('a').healthy = false;
  await sim.run(8000);
  assert.deepEqual(sim.masters('vip'), ['b']);
  assert.equal(sim.node('a').fo!.status()[0]!.role, 'fault');
  sim.node('a').healthy = true;
  await sim.run(8000);
  assert.deepEqual(sim.masters('vip'), ['a']);
  assertSafe(sim);
});

test('nopreempt: the current master keeps the role when a better member returns', async () => {
  const sim = new Sim({ seed: 9, members: ABC, services: [service({ voters: ABC, priority: { a: 200, b: 150 }, preempt: { mode: 'nopreempt' } })] });
  startAll(sim, ABC);
  await sim.run(8000);
  sim.node('a').maintenance = true;
  await sim.run(8000);
  assert.deepEqual(sim.masters('vip'), ['b']);
  sim.node('a').maintenance = false;
  await sim.run(30_000);
  assert.deepEqual(sim.masters('vip'), ['b']);
  assertSafe(sim);
});

test('preempt after 20s: the better member takes over only after being eligible that long', async () => {
  const sim = new Sim({ seed: 4, members: ABC, services: [service({ voters: ABC, priority: { a: 200, b: 150 }, preempt: { mode: 'after', afterMs: 20_000 } })] });
  startAll(sim, ABC);
  await sim.run(8000);
  sim.node('a').healthy = false;
  await sim.run(8000);
  assert.deepEqual(sim.masters('vip'), ['b']);
  sim.node('a').healthy = true;
  await sim.run(15_000);
  assert.deepEqual(sim.masters('vip'), ['b'], 'still b before 20s');
  await sim.run(10_000);
  assert.deepEqual(sim.masters('vip'), ['a'], 'a after 20s');
  assertSafe(sim);
});

test('planned switchover: master_to_standby on the old master runs before standby_to_master on the target', async () => {
  const sim = new Sim({ seed: 21, members: ABC, services: [service({
    voters: ABC, priority: { a: 200 }, preempt: { mode: 'preempt' },
    actions: { standby_to_master: [logAction('-', 'up %NODE% %TERM%')], master_to_standby: [logAction('-', 'down %NODE% %MASTER%')], to_fault: [], health_changed: [] },
  })] });
  startAll(sim, ABC);
  await sim.run(8000);
  assert.deepEqual(sim.masters('vip'), ['a']);
  const p = sim.node('b').fo!.switchTo('vip', 'c'); // asked on a standby: forwarded to the master
  let reply: Awaited<typeof p> | undefined;
  void p.then((r) => { reply = r; });
  await sim.run(5000);
  assert.ok(reply !== undefined);
  assert.equal(reply.ok, true, reply.detail);
  assert.equal(reply.master, 'c');
  assert.deepEqual(sim.masters('vip'), ['c']);
  await sim.run(20_000);
  assert.deepEqual(sim.masters('vip'), ['c'], 'a switchover target is not preempted back');
  const all = [...sim.recorded.values()].flatMap((r) => r.log).sort((x, y) => x.at - y.at).map((e) => e.command);
  assert.deepEqual(all, ['echo "up a 1" >> -', 'echo "down a c" >> -', 'echo "up c 2" >> -']);
  const bad = await sim.node('c').fo!.switchTo('vip', 'zz');
  assert.equal(bad.ok, false);
  assert.match(bad.detail, /zz not a member of the pool/);
  assertSafe(sim);
});

test('two members and a witness: failover works, the witness never becomes master', async () => {
  const svc = service({ voters: ['a', 'b', 'w'], witness: 'w' });
  const sim = new Sim({ seed: 2, members: ['a', 'b'], extra: ['w'], services: [svc] });
  startAll(sim, ['a', 'b', 'w']);
  await sim.run(8000);
  const first = sim.masters('vip');
  assert.equal(first.length, 1);
  assert.notEqual(first[0], 'w');
  sim.kill(first[0]!);
  await sim.run(10_000);
  const second = sim.masters('vip');
  assert.equal(second.length, 1);
  assert.notEqual(second[0], first[0]);
  assert.notEqual(second[0], 'w');
  assert.equal(sim.node('w').fo!.status()[0]!.role, 'witness');
  // Without the witness the remaining member alone is no majority.
  sim.kill('w');
  await sim.run(10_000);
  assert.deepEqual(sim.masters('vip'), []);
  assertSafe(sim);
});

test('a restarted voter never votes twice in one term (vote persisted before the answer)', async () => {
  const sim = new Sim({ seed: 1, members: ABC, services: [service({ voters: ABC })] });
  sim.assumeAlive.add('a').add('b');
  sim.start('c');
  await sim.run(4000); // c's start-up quiet period is over
  const c = sim.node('c');
  const ask = (cand: string, term: number) => c.fo!.handleRpc('failover.vote', { pool: 'p', service: 'vip', term, candidate: cand }, cand) as Promise<{ granted: boolean; reason: string }>;
  const r1 = await ask('a', 5);
  assert.equal(r1.granted, true, r1.reason);
  sim.kill('c');
  sim.start('c');
  await sim.run(4000);
  const r2 = await ask('b', 5);
  assert.equal(r2.granted, false);
  assert.match(r2.reason, /already voted for a in term 5|lease of a/);
  await sim.run(4000);
  const r3 = await ask('b', 5);
  assert.equal(r3.granted, false);
  assert.match(r3.reason, /already voted for a in term 5/);
  const r4 = await ask('a', 5);
  assert.equal(r4.granted, true, 'the same vote may be repeated');
});

test('a node that died as master cleans up (master_to_standby) when it starts again', async () => {
  const sim = new Sim({ seed: 8, members: ABC, services: [service({ voters: ABC, priority: { a: 200 }, preempt: { mode: 'nopreempt' },
    actions: { standby_to_master: [logAction('-', 'up %NODE%')], master_to_standby: [logAction('-', 'down %NODE%')], to_fault: [], health_changed: [] } })] });
  startAll(sim, ABC);
  await sim.run(8000);
  assert.deepEqual(sim.masters('vip'), ['a']);
  sim.kill('a');
  sim.start('a');
  await sim.run(100);
  assert.deepEqual(sim.recorded.get('a#3')!.log.map((e) => e.command), ['echo "down a" >> -']);
  await sim.run(10_000);
  assert.ok(!existsSync('-'));
  assertSafe(sim);
});

test('health_changed runs on every member with %MEMBER% and %HEALTH%; fault runs to_fault', async () => {
  const sim = new Sim({ seed: 13, members: ABC, services: [service({ voters: ABC, priority: { a: 200 },
    actions: { standby_to_master: [], master_to_standby: [], to_fault: [logAction('-', 'fault %NODE%')], health_changed: [logAction('-', 'hc %NODE% %MEMBER% %HEALTH%')] } })] });
  startAll(sim, ABC);
  await sim.run(8000);
  for (const r of sim.recorded.values()) r.log.length = 0; // members coming up (down → ok) at start
  sim.node('c').healthy = false;
  await sim.run(3000);
  const cmds = [...sim.recorded.values()].flatMap((r) => r.log.map((e) => e.command)).sort();
  assert.deepEqual(cmds, ['echo "fault c" >> -', 'echo "hc a c unhealthy" >> -', 'echo "hc b c unhealthy" >> -', 'echo "hc c c unhealthy" >> -']);
  assert.deepEqual(sim.masters('vip'), ['a']);
  assertSafe(sim);
});
