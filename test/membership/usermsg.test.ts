/**
 * User messages: an application payload gossiped to every member through the dissemination
 * queue, delivered once per member as `member.message` on its bus (simulated network, real
 * Memberlist code).
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { SimCluster } from '../../src/membership/sim.ts';
import { EventBus, type EventMap } from '../../src/events/bus.ts';
import { USER_DATA_MAX, UserMessageError } from '../../src/membership/memberlist.ts';

test('user messages reach every member exactly once (2% loss), copies are dropped, limits give clear errors', { timeout: 60_000 }, async () => {
  const N = 30;
  const buses = Array.from({ length: N }, () => new EventBus());
  const got: EventMap['member.message'][][] = buses.map(() => []);
  buses.forEach((b, i) => b.on('member.message', (ev) => got[i]?.push(ev.data)));
  const c = new SimCluster({ size: N, seed: 21, loss: 0.02, buses });
  await c.startAll();
  c.bootstrapConverged();
  await c.run(2000);
  const sender = c.members[3]!;
  for (let k = 0; k < 5; k++) sender.sendUserMessage('deploy.done', { k, service: 'web', tags: ['a', 'b'] });
  c.members[17]!.sendUserMessage('cache/flush', 'all');
  await c.run(10_000);
  for (let i = 0; i < N; i++) {
    const mine = got[i] ?? [];
    assert.equal(mine.length, 6, `member ${i} got ${mine.length} messages`);
    const ks = mine.filter((m) => m.topic === 'deploy.done' && m.from === 'n3').map((m) => (m.data as { k: number }).k).sort();
    assert.deepEqual(ks, [0, 1, 2, 3, 4], `member ${i}: each deploy.done once`);
    assert.deepEqual(mine.find((m) => m.topic === 'cache/flush'), { from: 'n17', topic: 'cache/flush', data: 'all' });
    assert.equal(c.members[i]?.stats().userMessagesDelivered, 6);
  }
  // Gossip sends each message several times; every copy after the first was recognised.
  assert.ok(c.members.reduce((s, m) => s + m.stats().userMessagesDuplicate, 0) > 0, 'duplicates arrived and were dropped');

  assert.throws(() => sender.sendUserMessage('big', 'x'.repeat(USER_DATA_MAX)), (e: unknown) => e instanceof UserMessageError && /bytes encoded, limit is 1024/.test(e.message));
  assert.throws(() => sender.sendUserMessage('bad topic', 1), (e: unknown) => e instanceof UserMessageError && /topic must be/.test(e.message));
  assert.equal(sender.stats().userMessagesSent, 5);
});

for (const pushPullInterval of [0, 2000]) {
  test(`a member cut off while a user message was gossiped ${pushPullInterval ? 'gets it from push/pull after the heal' : 'misses it without push/pull'}`, { timeout: 60_000 }, async () => {
    const N = 10;
    const buses = Array.from({ length: N }, () => new EventBus());
    const got = buses.map(() => 0);
    buses.forEach((b, i) => b.on('member.message', () => { got[i] = (got[i] ?? 0) + 1; }));
    const c = new SimCluster({ size: N, seed: 8, buses, config: { pushPullInterval } });
    await c.startAll();
    c.bootstrapConverged();
    await c.run(1000);
    c.net.partition([[c.members[9]!.localMember().addr]]);
    c.members[0]!.sendUserMessage('t', 1);
    await c.run(3000); // gossip has used up its transmits by now
    assert.equal(got[9], 0);
    c.net.heal();
    await c.run(10_000);
    assert.deepEqual(got.slice(0, 9), new Array(9).fill(1));
    assert.equal(got[9], pushPullInterval ? 1 : 0);
  });
}
