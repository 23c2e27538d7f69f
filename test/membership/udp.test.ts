/**
 * Real sockets: Memberlist instances on 127.0.0.1 (UDP + TCP on ephemeral ports), wall clock.
 * Waits poll for a condition with a generous deadline; nothing asserts on durations.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { JoinError, Memberlist } from '../../src/membership/memberlist.ts';
import { localConfig } from '../../src/membership/config.ts';
import { EventBus } from '../../src/events/bus.ts';

// Fast timers so the test takes seconds (same protocol, smaller constants).
const fast = { ...localConfig(), probeInterval: 200, probeTimeout: 100, gossipInterval: 50, suspicionMult: 2, pushPullInterval: 2000, tcpTimeout: 1000, joinRetries: 1 };

async function until(what: string, cond: () => boolean, deadlineMs = 20_000): Promise<void> {
  const end = Date.now() + deadlineMs;
  while (!cond()) {
    if (Date.now() > end) throw new Error(`timed out waiting for: ${what}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

test('real UDP/TCP on 127.0.0.1: encrypted join, failure detection, wrong key dropped and counted', { timeout: 60_000 }, async () => {
  const key = randomBytes(32).toString('base64');
  const bus = new EventBus();
  const failed: string[] = [];
  bus.on('member.failed', (ev) => failed.push(ev.data.name));
  const nodes: Memberlist[] = [];
  for (let i = 0; i < 4; i++) {
    const m = new Memberlist({ name: `u${i}`, bindAddr: '127.0.0.1', port: 0, config: fast, keyring: [key], meta: { i }, ...(i === 0 ? { bus } : {}) });
    await m.start();
    nodes.push(m);
  }
  try {
    const seed = nodes[0]?.localMember().addr as string;
    assert.match(seed, /^127\.0\.0\.1:\d+$/);
    for (const m of nodes.slice(1)) assert.equal(await m.join([seed]), 1);
    await until('all see 4 alive', () => nodes.every((m) => m.numMembers() === 4));
    assert.deepEqual(nodes[3]?.member('u1')?.meta, { i: 1 });

    // Wrong key: join is refused and every packet/stream it sends is dropped and counted.
    const intruder = new Memberlist({ name: 'bad', bindAddr: '127.0.0.1', port: 0, config: fast, keyring: [randomBytes(32).toString('base64')] });
    await intruder.start();
    await assert.rejects(intruder.join([seed]), (e: unknown) => e instanceof JoinError && /authentication/.test(e.message));
    assert.ok((nodes[0]?.stats().authFailures ?? 0) >= 1);
    await intruder.shutdown();
    assert.ok(nodes.every((m) => m.member('bad') === undefined));

    // Crash u3 (no leave): the others detect it.
    await nodes[3]?.shutdown();
    await until('u3 marked dead by the others', () => nodes.slice(0, 3).every((m) => m.member('u3')?.state === 'dead'));
    assert.deepEqual(failed, ['u3']);
    assert.ok(nodes.slice(0, 3).every((m) => m.numMembers() === 3));
    // u3's port is closed while its host (127.0.0.1) is up: a probe ends on the refused TCP fallback.
    assert.ok(nodes.slice(0, 3).some((m) => m.stats().probesRefused >= 1), 'a probe of u3 was concluded by the refused connection');

    // Graceful leave of u2.
    await nodes[2]?.leave(2000);
    await nodes[2]?.shutdown();
    await until('u2 marked left', () => nodes.slice(0, 2).every((m) => m.member('u2')?.state === 'left'));
    assert.deepEqual(failed, ['u3'], 'a leave is not a failure');
  } finally {
    for (const m of nodes) await m.shutdown();
  }
});
