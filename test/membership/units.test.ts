import { test } from 'node:test';
import assert from 'node:assert/strict';
import { ConfigError, lanConfig, localConfig, pushPullScale, retransmitLimit, suspicionTimeout, validateConfig, wanConfig } from '../../src/membership/config.ts';
import { ALIVE, DEAD, LEFT, SUSPECT, MemberTable, aliveOverrides, deadApplies, suspectApplies, type NodeState } from '../../src/membership/state.ts';
import { Suspicion, suspicionRemaining } from '../../src/membership/suspicion.ts';
import { Awareness, lagPenalty } from '../../src/membership/awareness.ts';
import { BroadcastQueue } from '../../src/membership/broadcast.ts';
import { VirtualClock } from '../../src/membership/clock.ts';
import { AddressError, formatAddr, parseAddr } from '../../src/membership/addr.ts';

const node = (state: NodeState['state'], incarnation: number): NodeState => ({ name: 'x', addr: 'a:1', meta: new Uint8Array(), maint: null, incarnation, state, stateChange: 0 });

test('config: memberlist formulas and profiles', () => {
  // Values from memberlist util.go as derived in research/membership.md.
  assert.equal(suspicionTimeout(4, 100, 1000), 8000);
  assert.equal(suspicionTimeout(4, 1000, 1000), 12000);
  assert.equal(suspicionTimeout(4, 10000, 1000), 16000);
  assert.equal(suspicionTimeout(4, 3, 1000), 4000); // floor at log10 N = 1
  assert.equal(retransmitLimit(4, 100), 12);
  assert.equal(retransmitLimit(4, 1000), 16);
  assert.equal(retransmitLimit(4, 10000), 20);
  assert.equal(pushPullScale(30000, 32), 30000);
  assert.equal(pushPullScale(30000, 100), 90000);
  assert.equal(pushPullScale(30000, 1000), 180000);
  assert.equal(pushPullScale(30000, 10000), 300000);
  assert.equal(wanConfig().probeInterval, 5000);
  assert.equal(localConfig().probeTimeout, 200);
  assert.equal(lanConfig().gossipNodes, 3);
  assert.throws(() => validateConfig({ ...lanConfig(), probeTimeout: 2000 }), ConfigError);
  assert.throws(() => validateConfig({ ...lanConfig(), gossipInterval: -1 }), /gossipInterval/);
});

test('state: incarnation precedence rules', () => {
  assert.equal(aliveOverrides(node(ALIVE, 5), 5), false, 'same incarnation alive is a no-op');
  assert.equal(aliveOverrides(node(SUSPECT, 5), 6), true, 'refutation needs a newer incarnation');
  assert.equal(aliveOverrides(node(DEAD, 5), 5), false, 'dead is not undone at the same incarnation');
  assert.equal(suspectApplies(node(ALIVE, 5), 5), true);
  assert.equal(suspectApplies(node(ALIVE, 5), 4), false, 'stale suspicion');
  assert.equal(suspectApplies(node(DEAD, 5), 9), false, 'dead is not downgraded to suspect');
  assert.equal(deadApplies(node(SUSPECT, 5), 5), true);
  assert.equal(deadApplies(node(ALIVE, 5), 4), false);
  assert.equal(deadApplies(node(LEFT, 1), 9), false);
});

test('state: member table probe schedule visits every other member once per M−1 rounds, live count tracks states', () => {
  let seed = 1;
  const t = new MemberTable(() => ((seed = (seed * 16807) % 2147483647) / 2147483647));
  for (let i = 0; i < 20; i++) t.add({ ...node(ALIVE, 1), name: `m${i}` });
  assert.equal(t.liveCount, 20);
  const seen = new Set<string>();
  for (let r = 0; r < 19; r++) seen.add(t.probeTarget('m0', r, () => true)?.name ?? '');
  assert.equal(seen.size, 19);
  const m3 = t.get('m3') as NodeState;
  t.setState(m3, DEAD, 10);
  assert.equal(t.liveCount, 19);
  assert.equal(m3.stateChange, 10);
  t.remove('m4');
  assert.equal(t.size, 19);
  assert.equal(t.liveCount, 18);
  const picks = t.randomMembers(5, (s) => s.state === ALIVE);
  assert.equal(new Set(picks).size, 5);
  assert.ok(picks.every((p) => p.state === ALIVE));
  assert.throws(() => t.add({ ...node(ALIVE, 1), name: 'm1' }), /already/);
});

test('suspicion: timeout starts at max and shrinks to min with k confirmations', () => {
  const min = 12000;
  const max = 72000;
  assert.equal(suspicionRemaining(0, 3, 0, min, max), max);
  const one = suspicionRemaining(1, 3, 0, min, max);
  const two = suspicionRemaining(2, 3, 0, min, max);
  assert.ok(one < max && two < one && two > min, `${one} ${two}`);
  assert.equal(suspicionRemaining(3, 3, 0, min, max), min);
  assert.equal(suspicionRemaining(3, 3, 5000, min, max), min - 5000, 'elapsed time counts');

  const clock = new VirtualClock();
  let fired = -1;
  const s = new Suspicion(clock, 'a', 2, 1000, 6000, (n) => { fired = n; });
  assert.equal(s.confirm('a'), false, 'the accuser is not a confirmation');
  clock.advance(500);
  assert.equal(s.confirm('b'), true);
  assert.equal(s.confirm('b'), false, 'duplicates do not count');
  assert.equal(s.confirm('c'), true);
  assert.equal(s.confirm('d'), false, 'beyond k');
  clock.advance(499);
  assert.equal(fired, -1);
  clock.advance(1);
  assert.equal(fired, 2, 'fires at min once k confirmations arrived');

  const lone = new Suspicion(clock, 'a', 2, 1000, 6000, () => { fired = 99; });
  clock.advance(5999);
  assert.notEqual(fired, 99);
  clock.advance(1);
  assert.equal(fired, 99, 'unconfirmed suspicion waits the full max');
  lone.stop();
});

test('awareness: bounded score scales timeouts; external penalty', () => {
  const a = new Awareness(8);
  assert.equal(a.scale(500), 500);
  a.applyDelta(3);
  assert.equal(a.score, 3);
  assert.equal(a.scale(500), 2000);
  a.applyDelta(100);
  assert.equal(a.score, 7);
  a.applyDelta(-100);
  assert.equal(a.score, 0);
  a.setExternal(lagPenalty(600, 500)); // 600 ms lag at 500 ms timeout -> 2 points
  assert.equal(a.score, 2);
  a.applyDelta(-1);
  assert.equal(a.score, 2, 'probe success does not erase an external penalty');
  a.setExternal(0);
  assert.equal(a.score, 0);
});

test('broadcast queue: retransmit limit, newest first, invalidation, packet size', () => {
  let limit = 2;
  const q = new BroadcastQueue(() => limit);
  const msg = (n: number, len = 10) => new Uint8Array(len).fill(n);
  let notified = 0;
  q.queue({ key: 'a', msg: msg(1), notify: () => notified++ });
  q.queue({ key: 'b', msg: msg(2) });
  q.queue({ key: 'a', msg: msg(3) }); // supersedes a/1
  assert.equal(notified, 1, 'superseded broadcast is finished');
  assert.equal(q.length, 2);
  let got = q.getBroadcasts(2, 1000);
  assert.deepEqual(got.map((m) => m[0]), [3, 2], 'newest first');
  got = q.getBroadcasts(2, 1000);
  assert.equal(got.length, 2);
  assert.equal(q.getBroadcasts(2, 1000).length, 0, 'transmit limit reached');
  assert.equal(q.length, 0);

  limit = 5;
  for (let i = 0; i < 50; i++) q.queue({ key: `k${i}`, msg: msg(i, 100) });
  got = q.getBroadcasts(2, 1400);
  assert.equal(got.length, 13, '13 × (100+2) fit in 1400');
  assert.equal(got[0]?.[0], 49);
  const next = q.getBroadcasts(2, 1400);
  assert.equal(next[0]?.[0], 36, 'least-transmitted go before re-sends');

  // A rejoin asks for a multiple of the limit.
  const boosted = new BroadcastQueue(() => 3);
  boosted.queue({ key: 'r', msg: msg(7), mult: 2 });
  boosted.queue({ key: 'n', msg: msg(8) });
  const sends = [0, 0];
  for (let i = 0; i < 10; i++) for (const m of boosted.getBroadcasts(2, 1000)) sends[m[0] === 7 ? 0 : 1]!++;
  assert.deepEqual(sends, [6, 3]);

  const small = new BroadcastQueue(() => 3, 10);
  for (let i = 0; i < 15; i++) small.queue({ key: `k${i}`, msg: msg(i) });
  assert.equal(small.length, 10);
  assert.equal(small.dropped, 5);
});

test('addr: host:port parsing with IPv6 and precise errors', () => {
  assert.deepEqual(parseAddr('10.0.0.1:7000'), { host: '10.0.0.1', port: 7000 });
  assert.deepEqual(parseAddr('web1'), { host: 'web1', port: 7946 });
  assert.deepEqual(parseAddr('[::1]:8000'), { host: '::1', port: 8000 });
  assert.deepEqual(parseAddr('fe80::1'), { host: 'fe80::1', port: 7946 });
  assert.equal(formatAddr('::1', 1), '[::1]:1');
  assert.throws(() => parseAddr('h:99999'), AddressError);
  assert.throws(() => parseAddr('[::1'), /missing "]"/);
  assert.throws(() => parseAddr(''), AddressError);
});

test('virtual clock: ordered timers, cancellation', () => {
  const c = new VirtualClock();
  const order: number[] = [];
  c.setTimer(30, () => order.push(3));
  const h = c.setTimer(20, () => order.push(2));
  c.setTimer(10, () => { order.push(1); c.setTimer(5, () => order.push(15)); });
  c.clearTimer(h);
  c.advance(100);
  assert.deepEqual(order, [1, 15, 3]);
  assert.equal(c.now(), 100);
  assert.equal(c.pending, 0);
});
