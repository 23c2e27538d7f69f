// Vote rules and lease arithmetic.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { rankCandidates, voteDecision, whyIneligible } from '../../src/failover/rules.ts';
import { DRIFT_MARGIN, MAX_DRIFT_RATE, marginIsSafe, masterLeaseEnd, voterLeaseEnd } from '../../src/failover/lease.ts';
import { service } from './sim.ts';
import type { PoolMember } from '../../src/failover/types.ts';

const m = (name: string, over: Partial<PoolMember> = {}): PoolMember => ({ name, alive: true, healthy: true, maintenance: false, ...over });
const svc = service({ voters: ['a', 'b', 'c'], priority: { a: 100, b: 150, c: 100 } });
const members = [m('a'), m('b'), m('c')];
const noLease = { now: 10_000, lease: null, noMasterSince: 10_000, lastMaster: null };

test('eligibility: alive, healthy, not in maintenance, not witness, priority > 0', () => {
  const s = service({ voters: ['a', 'b', 'w'], witness: 'w', priority: { b: 0 } });
  assert.equal(whyIneligible(s, m('a')), null);
  assert.equal(whyIneligible(s, m('a', { alive: false })), 'is not alive');
  assert.equal(whyIneligible(s, m('a', { healthy: false })), 'is not healthy');
  assert.equal(whyIneligible(s, m('a', { maintenance: true })), 'is in maintenance');
  assert.equal(whyIneligible(s, m('b')), 'has priority 0');
  assert.equal(whyIneligible(s, m('w')), 'is the witness');
  assert.equal(whyIneligible(s, undefined), 'not a member of the pool');
});

test('ranking: priority, then name; the last master first under nopreempt', () => {
  assert.deepEqual(rankCandidates(svc, members), ['b', 'a', 'c']);
  assert.deepEqual(rankCandidates(svc, [m('a'), m('b', { healthy: false }), m('c')]), ['a', 'c']);
  assert.deepEqual(rankCandidates(svc, members, 'c'), ['b', 'a', 'c'], 'preempt ignores the last master');
  const np = { ...svc, preempt: { mode: 'nopreempt' as const } };
  assert.deepEqual(rankCandidates(np, members, 'c'), ['c', 'b', 'a']);
  assert.deepEqual(rankCandidates(np, [m('a'), m('b'), m('c', { alive: false })], 'c'), ['b', 'a']);
});

test('vote: the best eligible member gets the vote, others wait their turn', () => {
  assert.equal(voteDecision(svc, members, 'b', noLease).grant, true);
  const a = voteDecision(svc, members, 'a', noLease);
  assert.equal(a.grant, false);
  assert.match(a.reason, /b is a better candidate \(a ranked 2, its turn in 3000ms\)/);
  assert.equal(voteDecision(svc, members, 'a', { ...noLease, now: 13_000 }).grant, true, 'after one lease without master, rank 2 may win');
  assert.equal(voteDecision(svc, members, 'c', { ...noLease, now: 13_000 }).grant, false);
  assert.equal(voteDecision(svc, members, 'c', { ...noLease, now: 16_000 }).grant, true);
  assert.equal(voteDecision(svc, [m('a'), m('b', { maintenance: true }), m('c')], 'a', noLease).grant, true);
  assert.match(voteDecision(svc, members, 'zz', noLease).reason, /zz not a member/);
});

test('vote: a valid lease blocks everyone but its holder; the start-up quiet period blocks all', () => {
  const lease = { ...noLease, lease: { holder: 'a', until: 12_000 } };
  assert.equal(voteDecision(svc, members, 'a', lease).grant, true, 'holder, ranking aside');
  const b = voteDecision(svc, members, 'b', lease);
  assert.equal(b.grant, false);
  assert.match(b.reason, /the lease of a is valid for another 2000ms/);
  assert.equal(voteDecision(svc, members, 'a', { ...lease, lease: { holder: 'a', until: 12_000 } , now: 12_000 }).grant, false, 'expired: ranking applies');
  const quiet = voteDecision(svc, members, 'b', { ...noLease, lease: { holder: null, until: 11_000 } });
  assert.match(quiet.reason, /start-up quiet period/);
  assert.equal(voteDecision(svc, [m('a', { healthy: false }), m('b'), m('c')], 'a', lease).grant, false, 'holder must still be eligible');
});

test('lease math: the master claim ends before any voter lease within the drift bound', () => {
  assert.equal(masterLeaseEnd(1000, 3000), 1000 + 3000 * (1 - DRIFT_MARGIN));
  assert.equal(voterLeaseEnd(1000, 3000), 4000);
  assert.equal(marginIsSafe(DRIFT_MARGIN, MAX_DRIFT_RATE), true);
  assert.equal(marginIsSafe(DRIFT_MARGIN, MAX_DRIFT_RATE * 1.05), false);
  assert.equal(marginIsSafe(0, 0.001), false, 'no margin is unsafe with any drift');
  // Property: clocks with rates within ±ρ (ρ ≤ MAX_DRIFT_RATE); the master starts its round at
  // real time s, a voter acks at real time s + d (d ≥ 0): the master's claim ends (real) no later
  // than the voter's lease.
  fc.assert(fc.property(
    fc.double({ min: 1 - MAX_DRIFT_RATE, max: 1 + MAX_DRIFT_RATE, noNaN: true }),
    fc.double({ min: 1 - MAX_DRIFT_RATE, max: 1 + MAX_DRIFT_RATE, noNaN: true }),
    fc.double({ min: 0, max: 10_000, noNaN: true }),
    fc.integer({ min: 100, max: 60_000 }),
    (rm, rv, d, lease) => {
      const s = 5000;
      const masterLocalStart = rm * s;
      const masterEndReal = masterLeaseEnd(masterLocalStart, lease) / rm;
      const voterLocalAck = rv * (s + d);
      const voterEndReal = voterLeaseEnd(voterLocalAck, lease) / rv;
      return masterEndReal <= voterEndReal + 1e-6;
    },
  ), { numRuns: 2000 });
});
