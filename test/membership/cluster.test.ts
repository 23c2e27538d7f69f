/**
 * Protocol behaviour of 50-member clusters on the virtual clock and simulated network
 * (real Memberlist code; virtual time makes timing properties assertable without flakiness).
 */
import { test as nodeTest } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { SimCluster, simAddr } from '../../src/membership/sim.ts';
import { JoinError, Memberlist, type MemberEvent } from '../../src/membership/memberlist.ts';
import { Keyring } from '../../src/membership/keyring.ts';

const N = 50;
// Virtual time makes these take a second or two; the timeout only guards against a hang.
const test = (name: string, fn: () => Promise<void>) => nodeTest(name, { timeout: 60_000 }, fn);

function recorder() {
  const events: { node: number; ev: MemberEvent }[] = [];
  return { events, onEvent: (node: number, ev: MemberEvent) => events.push({ node, ev }) };
}

async function joined(opts: ConstructorParameters<typeof SimCluster>[0]): Promise<SimCluster> {
  const c = new SimCluster(opts);
  await c.startAll();
  await c.joinAll(2000);
  // Gossip alone usually converges in seconds; one push/pull period (60 s at 50 members)
  // guarantees it even for a member that missed a few broadcasts.
  await c.run(60_000);
  return c;
}

test('join through one seed converges: everyone sees everyone alive', async () => {
  const r = recorder();
  const c = await joined({ size: N, seed: 11, loss: 0.01, onEvent: r.onEvent });
  assert.deepEqual(c.liveViews(), new Array(N).fill(N - 1));
  for (let i = 0; i < N; i++) {
    const names = new Set(r.events.filter((e) => e.node === i && e.ev.kind === 'joined').map((e) => e.ev.member.name));
    assert.equal(names.size, N, `member ${i} saw ${names.size} joins (itself included)`);
  }
  assert.equal(r.events.filter((e) => e.ev.kind === 'failed').length, 0);
});

test('a crashed member is detected by all, with no false positives (1% loss)', async () => {
  const r = recorder();
  const c = await joined({ size: N, seed: 12, loss: 0.01, onEvent: r.onEvent });
  const t0 = c.clock.now();
  await c.kill(7);
  await c.run(60_000);
  for (let i = 0; i < N; i++) {
    if (i === 7) continue;
    assert.equal(c.members[i]?.member('n7')?.state, 'dead', `member ${i} view of n7`);
    assert.equal(c.members[i]?.numMembers(), N - 1);
  }
  const failed = r.events.filter((e) => e.ev.kind === 'failed');
  assert.deepEqual([...new Set(failed.map((e) => e.ev.member.name))], ['n7'], 'only n7 failed');
  // Detection respects the Lifeguard lower bound: never before min suspicion timeout.
  const first = Math.min(...failed.map((e) => e.ev.member.stateChangedAt)) - t0;
  const min = 4 * Math.log10(N) * 1000;
  assert.ok(first >= min, `first detection ${first} ms >= suspicion min ${min} ms`);
});

test('a slow member: Lifeguard awareness lowers its false suspicions, nobody is declared failed', async () => {
  const run = async (awarenessMaxMultiplier: number) => {
    const r = recorder();
    const c = await joined({ size: N, seed: 13, config: { awarenessMaxMultiplier }, onEvent: r.onEvent });
    const from = r.events.length;
    c.net.setSlow(simAddr(3), 1500); // its replies come back after the probe interval
    await c.run(60_000);
    const later = r.events.slice(from);
    return {
      byslow: later.filter((e) => e.ev.kind === 'suspect' && e.ev.by === 'n3' && e.node === 3).length,
      failed: later.filter((e) => e.ev.kind === 'failed').length,
      score: c.members[3]?.healthScore() ?? -1,
      views: c.liveViews(),
    };
  };
  const lifeguard = await run(8);
  const plain = await run(1);
  assert.equal(lifeguard.failed, 0, 'no false failures with awareness');
  assert.ok(lifeguard.score > 0, `slow member knows it is degraded (score ${lifeguard.score})`);
  assert.equal(plain.score, 0, 'awareness disabled');
  assert.ok(lifeguard.byslow * 2 < plain.byslow, `suspicions by the slow member: ${lifeguard.byslow} with awareness vs ${plain.byslow} without`);
  assert.deepEqual(lifeguard.views, new Array(N).fill(N - 1));
});

test('a partition longer than the suspicion timeout heals (reconnect + push/pull)', async () => {
  const c = await joined({ size: N, seed: 14 });
  const a = Array.from({ length: N / 2 }, (_, i) => simAddr(i));
  const b = Array.from({ length: N / 2 }, (_, i) => simAddr(i + N / 2));
  c.net.partition([a, b]);
  await c.run(90_000);
  const during = c.liveViews();
  assert.ok(during.every((v) => v === N / 2 - 1), `each side sees only itself: ${during.join(',')}`);
  c.net.heal();
  await c.run(120_000);
  assert.deepEqual(c.liveViews(), new Array(N).fill(N - 1));
});

test('graceful leave: others mark the member left, not failed', async () => {
  const r = recorder();
  const c = await joined({ size: N, seed: 15, onEvent: r.onEvent });
  const m9 = c.members[9] as Memberlist;
  const leaving = m9.leave(5_000);
  await c.run(6_000);
  await leaving;
  await m9.shutdown();
  c.net.setUp(simAddr(9), false);
  await c.run(30_000);
  for (let i = 0; i < N; i++) if (i !== 9) assert.equal(c.members[i]?.member('n9')?.state, 'left', `member ${i}`);
  assert.equal(r.events.filter((e) => e.ev.kind === 'failed').length, 0);
  assert.equal(r.events.filter((e) => e.ev.kind === 'left' && e.ev.member.name === 'n9' && e.node !== 9).length, N - 1);
});

test('metadata and maintenance changes spread to everyone; oversize meta is refused', async () => {
  const r = recorder();
  const c = await joined({ size: N, seed: 16, onEvent: r.onEvent });
  const m4 = c.members[4] as Memberlist;
  const inc = m4.localMember().incarnation;
  m4.setMeta({ pools: ['web', 'dns'], role: 'primary' });
  m4.setMaintenance(true, 'kernel upgrade');
  await c.run(5_000);
  for (let i = 0; i < N; i++) {
    const v = c.members[i]?.member('n4');
    assert.deepEqual(v?.meta, { pools: ['web', 'dns'], role: 'primary' }, `member ${i}`);
    assert.deepEqual(v?.maintenance, { on: true, reason: 'kernel upgrade' });
    assert.ok((v?.incarnation ?? 0) > inc);
  }
  assert.equal(r.events.filter((e) => e.ev.kind === 'maintenance' && e.ev.member.name === 'n4' && e.node !== 4).length, N - 1);
  assert.throws(() => m4.setMeta({ blob: 'x'.repeat(3000) }), /limit is 2048/);
});

for (const persisted of [false, true]) {
  test(`restart with the same name rejoins with a higher incarnation (${persisted ? 'persisted incarnation: no refutation needed' : 'incarnation from 1: refutes'})`, async () => {
    const r = recorder();
    // Seed 17: with the usual retransmit limit member 7 got no copy of n6's new alive (Poisson
    // tail, ~1 % of rejoins at 50 members) and held it dead until push/pull; rejoins now go out
    // on twice the limit (REJOIN_TRANSMIT_MULT).
    const c = await joined({ size: N, seed: 17, config: { reconnectInterval: 0 }, onEvent: r.onEvent });
    // A metadata change first, so others hold n6 above incarnation 1.
    c.members[6]?.setMeta({ role: 'db' });
    await c.run(5_000);
    await c.kill(6);
    await c.run(60_000);
    assert.equal(c.members[0]?.member('n6')?.state, 'dead');
    const deadInc = c.members[0]?.member('n6')?.incarnation ?? 0;
    assert.ok(deadInc >= 2);
    const m6 = await c.restart(6, persisted);
    assert.equal(m6.stats().incarnation > deadInc, persisted, 'a persisted incarnation starts above what others hold');
    const joining = m6.join([simAddr(0)]);
    await c.run(10_000);
    assert.equal(await joining, 1);
    for (let i = 0; i < N; i++) {
      const v = c.members[i]?.member('n6');
      assert.equal(v?.state, 'alive', `member ${i}`);
      assert.ok((v?.incarnation ?? 0) > deadInc, 'alive with a newer incarnation than its death');
    }
    assert.equal(m6.stats().refutes > 0, !persisted, persisted ? 'its first alive already beat the death' : 'it had to refute its old death');
  });
}

test('key rotation across a live encrypted cluster; a wrong key cannot join and is counted', async () => {
  const k1 = randomBytes(32).toString('base64');
  const k2 = randomBytes(32).toString('base64');
  const r = recorder();
  const c = await joined({ size: 20, seed: 18, keys: [k1], onEvent: r.onEvent });
  assert.deepEqual(c.liveViews(), new Array(20).fill(19));
  for (const m of c.members) m.keyring?.install(k2);
  await c.run(3_000);
  for (const m of c.members) {
    m.keyring?.use(k2); // rolling switch: old-primary members still decrypt with k2 installed
    await c.run(200);
  }
  await c.run(3_000);
  for (const m of c.members) m.keyring?.remove(k1);
  await c.run(20_000);
  assert.deepEqual(c.liveViews(), new Array(20).fill(19));
  assert.equal(r.events.filter((e) => e.ev.kind === 'failed').length, 0);
  assert.equal(c.members.reduce((s, m) => s + m.stats().authFailures, 0), 0);

  // An outsider with only the old key: its join is rejected and its packets are dropped, counted.
  const outsider = new Memberlist({ name: 'intruder', keyring: new Keyring([k1]), clock: c.net.clockFor('10.9.9.9:7946'), transport: c.net.transport('10.9.9.9:7946') });
  await outsider.start();
  const join = outsider.join([simAddr(0)]).then(() => null, (e: unknown) => e);
  await c.run(10_000);
  const err = await join;
  assert.ok(err instanceof JoinError, String(err));
  assert.match(err.message, /failed authentication/);
  assert.ok(c.members.every((m) => m.member('intruder') === undefined));
  assert.equal(c.members[0]?.stats().authFailures, 3, 'each join attempt dropped and counted');
  await outsider.shutdown();
});

test('news we originate (our suspicion, a death we declare) goes out at once, not at the next gossip tick', async () => {
  // Gossip ticks effectively off: only the immediate round and piggybacking on probes spread news.
  const r = recorder();
  const c = new SimCluster({ size: 12, seed: 5, config: { gossipInterval: 3_600_000 }, onEvent: r.onEvent });
  await c.startAll();
  c.bootstrapConverged();
  await c.run(3000);
  await c.kill(4);
  const failedBy = (): number[] => c.members.map((m, i) => (i !== 4 && m.member('n4')?.state === 'dead' ? i : -1)).filter((i) => i >= 0);
  while (failedBy().length === 0) await c.run(1, 1);
  // Network delay is 1-3 ms: within 10 ms the declarer's immediate round has reached its gossip
  // targets (3, one of which may be the dead member itself: gossip goes to the recently dead).
  // The declaration often happens inside our own failed probe (its confirmation ends the timer),
  // whose immediate round then carries it.
  await c.run(10, 1);
  assert.ok(failedBy().length >= 3, `members that know n4 is dead 10 ms after the first declaration: ${failedBy().join(',')}`);
});

test('members that hear of a suspicion probe the suspect at once: about k+1 of them per suspicion, whatever N', async () => {
  const c = await joined({ size: N, seed: 23 });
  for (const victim of [5, 15, 25]) await c.kill(victim);
  await c.run(60_000);
  for (let i = 0; i < N; i++) if (![5, 15, 25].includes(i)) for (const v of [5, 15, 25]) assert.equal(c.members[i]?.member(`n${v}`)?.state, 'dead');
  // Each of the ~47 members that hears a suspicion probes with probability (k+1)/(N−2) = 3/48:
  // 3 per victim expected, 9 for the three; far from every member probing every suspect.
  const extra = c.members.reduce((s, m) => s + m.stats().probesOnSuspicion, 0);
  assert.ok(extra >= 1 && extra <= 27, `${extra} out-of-turn probes for 3 suspicions`);
});

/**
 * A converged 30-member cluster (virtual time, `seed`) in which n3 crashes and `runMs` pass: when
 * it was first suspected (ms after the crash) and how many failures were declared about others.
 */
async function crashOfN3(seed: number, runMs: number, opts: { clockSkew?: number } = {}): Promise<{ c: SimCluster; suspectedAfter: number; falsePositives: number }> {
  let suspectedAt = Infinity;
  let falsePositives = 0;
  const c = new SimCluster({
    size: 30, seed, ...opts,
    onEvent: (_i, ev) => {
      if (ev.kind === 'suspect' && ev.member.name === 'n3') suspectedAt = Math.min(suspectedAt, c.clock.now());
      if (ev.kind === 'failed' && ev.member.name !== 'n3') falsePositives++;
    },
  });
  await c.startAll();
  c.bootstrapConverged();
  await c.run(5000 + seed * 37);
  const t0 = c.clock.now();
  await c.kill(3);
  await c.run(runMs);
  return { c, suspectedAfter: suspectedAt - t0, falsePositives };
}

test('every member is probed about once per probe interval: a crash is suspected within 3 intervals, whatever the seed', async () => {
  // With independent random probe orders, the probes a member receives are a Poisson process
  // (one per interval on average): in ~13 % of crashes nobody probed the victim for 2 intervals.
  const late: string[] = [];
  for (let seed = 1; seed <= 20; seed++) {
    const { suspectedAfter } = await crashOfN3(seed, 5000);
    // Next scheduled probe ≤ 2 intervals away, then the failed probe takes 1 interval.
    if (suspectedAfter > 3000 + 50) late.push(`seed ${seed}: ${Math.round(suspectedAfter)} ms`);
  }
  assert.deepEqual(late, []);
});

test('with members\' clocks off by up to ±60 s (no NTP) the schedule degrades to random coverage: crashes still suspected in a few intervals, detected by all, no false positives', async () => {
  // Measured (40 seeds, N=30): first suspicion median / max 1.5 / 2.5 s with one time base,
  // 1.5 / 4.5 s at ±5 s, 1.6 / 7.9 s at ±60 s — memberlist's random orders give the same tail.
  const slow: string[] = [];
  for (let seed = 1; seed <= 12; seed++) {
    const { c, suspectedAfter, falsePositives } = await crashOfN3(seed, 40_000, { clockSkew: 60_000 });
    if (suspectedAfter > 10_000) slow.push(`seed ${seed}: suspected after ${Math.round(suspectedAfter)} ms`);
    assert.equal(falsePositives, 0, `seed ${seed}`);
    for (let i = 0; i < 30; i++) if (i !== 3) assert.equal(c.members[i]?.member('n3')?.state, 'dead', `seed ${seed}: member ${i}`);
  }
  assert.deepEqual(slow, []);
});
