/**
 * Digest-first push/pull: after one exchange both sides hold every row a full-state exchange
 * would have given them, and rows both sides already agree on are never sent.
 * Two real Memberlists on the simulated network; the other members are rows only, which a
 * topology puts out of reach, so nobody probes them or picks them for a push/pull.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Packr } from 'msgpackr';
import { SimNetwork, seededRandom } from '../../src/membership/sim.ts';
import { Topology } from '../../src/membership/topology.ts';
import { Memberlist } from '../../src/membership/memberlist.ts';
import { bucketCount, decide, type MemberDigest } from '../../src/membership/antientropy.ts';
import { ALIVE, DEAD, LEFT, SUSPECT } from '../../src/membership/state.ts';
import type { PushNodeState } from '../../src/membership/messages.ts';
import { lanConfig } from '../../src/membership/config.ts';

const packr = new Packr({ useRecords: false });

function row(name: string, incarnation: number, meta: Record<string, unknown> = { v: incarnation }): PushNodeState {
  return { name, addr: `10.9.${name.length}.${name.charCodeAt(name.length - 1)}:7946`, meta: Uint8Array.from(packr.pack(meta)), maint: null, incarnation, state: ALIVE };
}

type Run = (ms: number) => Promise<void>;
type RunUntil = (done: () => boolean, maxMs: number) => Promise<void>;

async function pair(tag: string, pushPullInterval: number): Promise<{ net: SimNetwork; a: Memberlist; b: Memberlist; run: Run; runUntil: RunUntil }> {
  const net = new SimNetwork({ seed: 7 });
  const real = new Set([`${tag}-a`, `${tag}-b`]);
  const mk = (n: string, i: number): Memberlist => new Memberlist({
    name: `${tag}-${n}`, transport: net.transport(`10.8.0.${i}:7946`), clock: net.clockFor(`10.8.0.${i}:7946`),
    config: { pushPullInterval, reconnectInterval: 0 }, topology: { canReach: (x, y) => real.has(x.name) && real.has(y.name), restricts: true },
  });
  const a = mk('a', 1);
  const b = mk('b', 2);
  await a.start();
  await b.start();
  // Both know each other (as after a join), so only the rows under test differ.
  a.applyState(b.localState());
  b.applyState(a.localState());
  // Virtual time until `done` holds (checked every 5 ms step) or `maxMs` have passed: the first
  // exchange falls at a random point of the period and takes a few simulated round trips.
  const runUntil: RunUntil = async (done, maxMs) => {
    const end = net.clock.now() + maxMs;
    while (net.clock.now() < end && !done()) {
      net.clock.runUntil(Math.min(end, net.clock.now() + 5));
      await new Promise<void>((r) => setImmediate(r));
    }
  };
  return { net, a, b, run: (ms) => runUntil(() => false, ms), runUntil };
}

const view = (m: Memberlist): Map<string, string> => new Map(m.members().map((x) => [x.name, `${x.state}@${x.incarnation}:${JSON.stringify(x.meta)}`]));

test('decide: rows travel towards the side that would apply them, coordinates alone when only they differ', () => {
  const d = (incarnation: number, state: MemberDigest['state'], hash = 1, coordSeq = 0): MemberDigest => ({ name: 'x', incarnation, state, hash, coordSeq });
  assert.deepEqual(decide(d(3, ALIVE), d(3, ALIVE)), { send: 'none', want: 'none' });
  assert.deepEqual(decide(d(4, ALIVE), d(3, ALIVE)), { send: 'row', want: 'none' });
  assert.deepEqual(decide(d(3, ALIVE), d(4, ALIVE)), { send: 'none', want: 'row' });
  assert.deepEqual(decide(d(3, ALIVE), d(3, SUSPECT)), { send: 'none', want: 'row' });
  assert.deepEqual(decide(d(3, DEAD), d(3, SUSPECT)), { send: 'row', want: 'none' });
  assert.deepEqual(decide(d(5, ALIVE), d(3, LEFT)), { send: 'row', want: 'none' });
  // Same incarnation and state, different content (a restart reusing an incarnation): both ways.
  assert.deepEqual(decide(d(3, ALIVE, 1), d(3, ALIVE, 2)), { send: 'row', want: 'row' });
  assert.deepEqual(decide(d(3, ALIVE, 1, 9), d(3, ALIVE, 1, 4)), { send: 'coord', want: 'none' });
  assert.deepEqual(decide(d(3, ALIVE, 1, 4), d(3, ALIVE, 1, 9)), { send: 'none', want: 'coord' });
  // Unknown members: only alive rows are useful (dead/suspect rows about strangers are ignored on merge).
  assert.deepEqual(decide(undefined, d(3, ALIVE)), { send: 'none', want: 'row' });
  assert.deepEqual(decide(undefined, d(3, DEAD)), { send: 'none', want: 'none' });
  assert.deepEqual(decide(d(3, ALIVE), undefined), { send: 'row', want: 'none' });
  assert.deepEqual(decide(d(3, SUSPECT), undefined), { send: 'none', want: 'none' });
  assert.deepEqual([1, 4, 5, 100, 1000, 10_000, 100_000].map(bucketCount), [2, 4, 8, 32, 64, 256, 256]);
});

for (const mode of ['join', 'periodic'] as const) {
  test(`push/pull (${mode}): both sides end with every row, the newer version of each`, async () => {
    const { a, b, run, runUntil } = await pair(`ae-miss-${mode}`, mode === 'join' ? 0 : 100);
    // a knows x0..x59, b knows x40..x99; of the 20 shared, a has newer x40..x49 and b x50..x54;
    // x55..x59 are equal on both.
    const x = (i: number): string => `ae-miss-${mode}-x${i}`;
    const aRows: PushNodeState[] = [];
    const bRows: PushNodeState[] = [];
    for (let i = 0; i < 60; i++) aRows.push(row(x(i), i >= 40 && i < 50 ? 5 : 2));
    for (let i = 40; i < 100; i++) bRows.push(row(x(i), i >= 50 && i < 55 ? 7 : 2));
    a.applyState(aRows);
    b.applyState(bRows);
    if (mode === 'join') await Promise.all([a.join([b.localMember().addr]), run(100)]);
    else {
      // Both sides started an exchange (the first ones fall within pushPullScale(100 ms, 102) =
      // 300 ms), then a few simulated round trips for them to finish.
      await runUntil(() => a.stats().pushPulls >= 2 && b.stats().pushPulls >= 2, 2000);
      await run(100);
    }
    const va = view(a);
    const vb = view(b);
    assert.equal(va.size, 102, 'a has every member');
    assert.deepEqual(va, vb, 'both views are identical');
    for (let i = 0; i < 100; i++) {
      const want = i >= 40 && i < 50 ? 5 : i >= 50 && i < 55 ? 7 : 2;
      assert.equal(va.get(x(i)), `alive@${want}:${JSON.stringify({ v: want })}`, x(i));
    }
    if (mode === 'join') {
      // Exactly the rows one side lacked or had older: a sent 40 + 10, b sent 40 + 5.
      assert.equal(a.stats().pushPullRowsSent, 50);
      assert.equal(b.stats().pushPullRowsSent, 45);
    }
    await Promise.all([a.shutdown(), b.shutdown()]);
  });
}

test('push/pull between identical views sends no rows; one changed member costs exactly one row', async () => {
  const { net, a, b, run, runUntil } = await pair('ae-same', 100);
  const rows = Array.from({ length: 300 }, (_, i) => row(`ae-same-x${i}`, 1 + (i % 3)));
  a.applyState(rows);
  b.applyState(rows);
  await runUntil(() => a.stats().pushPulls >= 2 && b.stats().pushPulls >= 2, 2000); // first ones within pushPullScale(100 ms, 302) = 500 ms
  await run(100); // let them finish
  assert.ok(a.stats().pushPulls >= 2 && b.stats().pushPulls >= 2, 'both exchanged (each counts its own and the peer\'s)');
  for (const m of [a, b]) {
    assert.equal(m.stats().pushPullRowsSent, 0, `${m.name} sent no rows`);
    assert.equal(m.stats().pushPullRowsReceived, 0, `${m.name} received no rows`);
  }
  // Nor any per-member digests: an exchange is the bucket hashes plus a near-empty answer.
  const exchanges = (a.stats().pushPulls + b.stats().pushPulls) / 2;
  assert.ok(net.counters.streamBytes / exchanges < 4 * bucketCount(302) + 64, `${net.counters.streamBytes} stream bytes in ${exchanges} exchanges`);
  // One member changed on a only (newer metadata): the next exchanges move that one row, once.
  a.applyState([row('ae-same-x17', 9, { role: 'db' })]);
  const before = a.stats().pushPulls + b.stats().pushPulls;
  // The next periodic round is at most 500 ms away on each side; one more round after the row
  // arrived shows it is not sent again.
  await runUntil(() => b.member('ae-same-x17')?.incarnation === 9, 2000);
  await run(600);
  assert.ok(a.stats().pushPulls + b.stats().pushPulls > before, 'another exchange happened');
  assert.equal(a.stats().pushPullRowsSent + b.stats().pushPullRowsSent, 1, 'one row in total');
  assert.equal(b.stats().pushPullRowsReceived, 1);
  assert.equal(b.member('ae-same-x17')?.incarnation, 9);
  assert.deepEqual(b.member('ae-same-x17')?.meta, { role: 'db' });
  await Promise.all([a.shutdown(), b.shutdown()]);
});

test('a joiner gets every alive row from the seed and sends only its own', async () => {
  const net = new SimNetwork({ seed: 3 });
  const mk = (n: string, i: number): Memberlist => new Memberlist({
    name: `ae-join-${n}`, transport: net.transport(`10.7.0.${i}:7946`), clock: net.clockFor(`10.7.0.${i}:7946`),
    config: { ...lanConfig(), pushPullInterval: 0, reconnectInterval: 0 },
  });
  const seed = mk('seed', 1);
  const joiner = mk('new', 2);
  await seed.start();
  await joiner.start();
  seed.applyState(Array.from({ length: 500 }, (_, i) => row(`ae-join-x${i}`, 1)));
  const joined = joiner.join([seed.localMember().addr]);
  while (net.clock.now() < 200) {
    net.clock.runUntil(net.clock.now() + 5);
    await new Promise<void>((r) => setImmediate(r));
  }
  assert.equal(await joined, 1);
  assert.equal(joiner.numMembers(), 502);
  assert.equal(seed.numMembers(), 502);
  assert.equal(joiner.stats().pushPullRowsSent, 1, 'the joiner sent only its own row');
  assert.equal(joiner.stats().pushPullRowsReceived, 501);
  await Promise.all([seed.shutdown(), joiner.shutdown()]);
});

test('one network: coordinates come from probes, push/pull does not carry their churn; every pair is still estimated', async () => {
  const net = new SimNetwork({ seed: 11 });
  const names = Array.from({ length: 8 }, (_, i) => `ae-coord-${i}`);
  const ml = names.map((name, i) => new Memberlist({
    name, transport: net.transport(`10.6.0.${i}:7946`), clock: net.clockFor(`10.6.0.${i}:7946`), rand: seededRandom(40 + i),
    coordinates: true, topology: new Topology([{ name: 'lan', relays: [] }]), config: { pushPullInterval: 2000 },
  }));
  for (const m of ml) await m.start();
  for (const m of ml) m.applyState(ml.flatMap((x) => x.localState().filter((r) => r.name === x.name)));
  const run = async (ms: number): Promise<void> => {
    const end = net.clock.now() + ms;
    while (net.clock.now() < end) {
      net.clock.runUntil(Math.min(end, net.clock.now() + 50));
      await new Promise<void>((r) => setImmediate(r));
    }
  };
  await run(60_000);
  for (const a of names) for (const b of names) if (a !== b) assert.ok(ml[0]?.estimateRtt(a, b) !== undefined, `${names[0]} estimates ${a}-${b}`);
  // Coordinates keep moving and being republished, yet a push/pull between identical views stays
  // the bucket hashes plus a near-empty answer (with two restricted networks it is ~125 bytes).
  const bytes0 = net.counters.streamBytes;
  const pp0 = ml.reduce((s, m) => s + m.stats().pushPulls, 0);
  await run(60_000);
  const exchanges = (ml.reduce((s, m) => s + m.stats().pushPulls, 0) - pp0) / 2;
  assert.ok(exchanges >= 100, `${exchanges} exchanges`);
  assert.ok((net.counters.streamBytes - bytes0) / exchanges < 4 * bucketCount(8) + 64, `${net.counters.streamBytes - bytes0} stream bytes in ${exchanges} exchanges`);
  for (const m of ml) await m.shutdown();
});
