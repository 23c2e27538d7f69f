/**
 * Topology: the reachability rule and relay routing (unit), and the real Memberlist code on a
 * virtual clock over an in-test network with per-pair latency and blocked pairs: gossip only goes
 * where the topology allows, membership still converges across networks through relays, failure
 * detection works, and Vivaldi coordinates learned over the protocol estimate real RTTs.
 */
import { test as nodeTest } from 'node:test';
import assert from 'node:assert/strict';
import { Topology, NoRouteError, type TopoMember } from '../../src/membership/topology.ts';
import { Memberlist } from '../../src/membership/memberlist.ts';
import { VirtualClock } from '../../src/membership/clock.ts';
import { seededRandom } from '../../src/membership/sim.ts';
import type { Transport, TransportHandler } from '../../src/membership/transport.ts';

const test = (name: string, fn: () => Promise<void> | void) => nodeTest(name, { timeout: 60_000 }, fn);

const m = (name: string, net: string, extra: Record<string, unknown> = {}): TopoMember => ({ name, meta: { net, ...extra } });

test('rule: same network, relays (either side), direct lists (either way), unknown networks', () => {
  const t = new Topology([
    { name: 'east', relays: ['e9'] },
    { name: 'west', relays: ['w9'], direct: ['south'] },
    { name: 'south', relays: [] },
  ]);
  assert.ok(t.canReach(m('e1', 'east'), m('e2', 'east')));
  assert.ok(!t.canReach(m('e1', 'east'), m('w1', 'west')));
  assert.ok(!t.canReach(m('w1', 'west'), m('e1', 'east')), 'symmetric');
  assert.ok(t.canReach(m('e1', 'east'), m('w9', 'west')), 'everyone reaches the relays of every network');
  assert.ok(t.canReach(m('w9', 'west'), m('e1', 'east')), 'relays reach everyone');
  assert.ok(t.canReach(m('e9', 'east'), m('w9', 'west')));
  assert.ok(t.canReach(m('s1', 'south'), m('w1', 'west')), 'direct listed by the other side counts');
  assert.ok(t.canReach(m('w1', 'west'), m('s1', 'south')));
  assert.ok(!t.canReach(m('s1', 'south'), m('e1', 'east')));
  assert.ok(t.canReach(m('x', 'mars'), m('e1', 'east')), 'undeclared network is not cut off');
  assert.ok(t.canReach({ name: 'y', meta: {} }, m('e1', 'east')), 'unknown metadata is not cut off');
  assert.ok(t.canReach(m('e1', 'east'), m('e5', 'west', { relay: true })), 'a member advertising relay: true is a relay');
  assert.ok(!t.isRelay(m('w9', 'east')), 'a relay of west is not a relay when it sits in east');
  assert.ok(new Topology([{ name: 'only', relays: [] }]).canReach(m('a', 'only'), m('b', 'other')), 'one network: no restriction');
  assert.ok(new Topology([]).canReach(m('a', 'x'), m('b', 'y')));
});

test('route: direct when reachable, else the nearest live relay of the peer\'s network', () => {
  const t = new Topology([{ name: 'east', relays: ['e8', 'e9'] }, { name: 'west', relays: ['w8', 'w9'] }]);
  const live = [m('e1', 'east'), m('e8', 'east'), m('e9', 'east'), m('w1', 'west'), m('w8', 'west'), m('w9', 'west')];
  const rtt = new Map([['w8', 40], ['w9', 12]]);
  assert.deepEqual(t.route(m('e1', 'east'), m('e9', 'east'), live, (n) => rtt.get(n)), { via: 'direct' });
  assert.deepEqual(t.route(m('e1', 'east'), m('w9', 'west'), live, (n) => rtt.get(n)), { via: 'direct' });
  assert.deepEqual(t.route(m('e1', 'east'), m('w1', 'west'), live, (n) => rtt.get(n)), { via: 'relay', relay: 'w9' });
  // Unknown RTTs sort last, ties by name.
  assert.deepEqual(t.route(m('e1', 'east'), m('w1', 'west'), live, () => undefined), { via: 'relay', relay: 'w8' });
  // Only live relays count (w8, w9 gone): no route.
  assert.throws(() => t.route(m('e1', 'east'), m('w1', 'west'), live.slice(0, 4), () => undefined), NoRouteError);
});

/** In-memory network on a virtual clock: one-way delay = rtt/2 per pair; blocked pairs drop and count. */
class LatencyNet {
  readonly clock = new VirtualClock();
  readonly handlers = new Map<string, TransportHandler | null>();
  rtt: (a: string, b: string) => number = () => 2;
  blocked: (a: string, b: string) => boolean = () => false;
  blockedAttempts = 0;
  readonly #rand = seededRandom(5);

  #delay(a: string, b: string): number {
    return (this.rtt(a, b) / 2) * (1 + 0.1 * this.#rand());
  }

  transport(addr: string): Transport {
    return {
      start: async (h) => { this.handlers.set(addr, h); },
      sendPacket: (to, data) => {
        if (this.blocked(addr, to)) { this.blockedAttempts++; return; }
        this.clock.setTimer(this.#delay(addr, to), () => this.handlers.get(to)?.onPacket(addr, data));
      },
      request: (to, data, timeoutMs, cb) => {
        let done = false;
        const finish = (err: Error | null, resp?: Uint8Array) => { if (!done) { done = true; this.clock.clearTimer(timer); cb(err, resp); } };
        const timer = this.clock.setTimer(timeoutMs, () => finish(new Error('timeout')));
        if (this.blocked(addr, to)) { this.blockedAttempts++; return; }
        this.clock.setTimer(this.#delay(addr, to), () => {
          const h = this.handlers.get(to);
          if (!h) return;
          h.onRequest(addr, data, (resp) => this.clock.setTimer(this.#delay(to, addr), () => finish(null, resp)));
        });
      },
      localAddress: () => addr,
      close: async () => { this.handlers.set(addr, null); },
    };
  }

  async run(ms: number): Promise<void> {
    const end = this.clock.now() + ms;
    while (this.clock.now() < end) {
      this.clock.runUntil(Math.min(end, this.clock.now() + 50));
      await new Promise<void>((r) => setImmediate(r));
    }
  }
}

// Two networks of four: east e1..e4 (relay e4), west w1..w4 (relay w1). 2 ms inside a network,
// 60 ms between networks; non-relay pairs across networks are blocked.
const EAST = ['e1', 'e2', 'e3', 'e4'];
const WEST = ['w1', 'w2', 'w3', 'w4'];
const RELAYS = new Set(['e4', 'w1']);
const netOf = (n: string) => (n.startsWith('e') ? 'east' : 'west');
const addrOf = (n: string) => `${n}:7946`;
const nameOf = (a: string) => a.split(':')[0] as string;

async function twoNetworks(): Promise<{ net: LatencyNet; ml: Map<string, Memberlist> }> {
  const net = new LatencyNet();
  net.rtt = (a, b) => (netOf(nameOf(a)) === netOf(nameOf(b)) ? 2 : 60);
  net.blocked = (a, b) => netOf(nameOf(a)) !== netOf(nameOf(b)) && !RELAYS.has(nameOf(a)) && !RELAYS.has(nameOf(b));
  const topo = new Topology([{ name: 'east', relays: ['e4'] }, { name: 'west', relays: ['w1'] }]);
  const ml = new Map<string, Memberlist>();
  [...EAST, ...WEST].forEach((n, i) => {
    ml.set(n, new Memberlist({
      name: n, transport: net.transport(addrOf(n)), clock: net.clock, rand: seededRandom(100 + i),
      meta: { net: netOf(n) }, topology: topo, coordinates: true,
    }));
  });
  for (const x of ml.values()) await x.start();
  // Everyone joins through its own network's relay (the relays join each other).
  let settled = false;
  void Promise.all([...ml].filter(([n]) => n !== 'w1').map(([n, x]) => x.join([addrOf(netOf(n) === 'east' && n !== 'e4' ? 'e4' : 'w1')]))).then(() => { settled = true; });
  while (!settled) await net.run(100); // joins need virtual time to pass
  return { net, ml };
}

test('memberlist with topology: converges across networks through relays, never sends to a blocked pair', async () => {
  const { net, ml } = await twoNetworks();
  await net.run(60_000);
  for (const [n, x] of ml) {
    const live = x.liveMembers().map((y) => y.name).sort();
    assert.deepEqual(live, [...EAST, ...WEST].sort(), `${n}'s view`);
    assert.equal(x.members().filter((y) => y.state !== 'alive').length, 0, `${n} suspects nobody`);
  }
  assert.equal(net.blockedAttempts, 0, 'no probe, gossip or push/pull was sent across a blocked pair');
  assert.ok(!ml.get('e1')?.canReach('w2') && ml.get('e1')?.canReach('w1') && ml.get('e1')?.canReach('e2'));

  // A crash in west is detected by west and the relays, and reaches east through the relays.
  await ml.get('w3')?.shutdown();
  await net.run(60_000);
  for (const [n, x] of ml) if (n !== 'w3') assert.equal(x.member('w3')?.state, 'dead', `${n}'s view of w3`);
  assert.equal(net.blockedAttempts, 0);
  for (const x of ml.values()) await x.shutdown();
});

test('memberlist with coordinates: RTT estimates over the protocol match the network, also for pairs that never talk', async () => {
  const { net, ml } = await twoNetworks();
  await net.run(120_000);
  const e1 = ml.get('e1') as Memberlist;
  assert.ok(e1.coordinate() !== null);
  for (const a of [...EAST, ...WEST]) {
    for (const b of [...EAST, ...WEST]) {
      if (a === b) continue;
      const est = e1.estimateRtt(a, b);
      assert.ok(est !== undefined, `e1 knows coordinates of ${a} and ${b}`);
      const truth = netOf(a) === netOf(b) ? 2 : 60;
      // Generous bounds: the estimate must tell a 2 ms neighbour from a 60 ms one.
      if (truth === 2) assert.ok(est < 10, `${a}-${b}: ${est.toFixed(2)} ms (truth 2)`);
      else assert.ok(est > 40 && est < 80, `${a}-${b}: ${est.toFixed(2)} ms (truth 60)`);
    }
  }
  // e1 never exchanged a packet with w2, yet estimates it from gossiped coordinates.
  assert.ok((e1.estimateRtt('w2') ?? 0) > 40);
  const near = e1.nearest(3).map((r) => r.member.name).sort();
  assert.deepEqual(near, ['e2', 'e3', 'e4']);
  assert.deepEqual(e1.nearest(1, (x) => x.meta.net === 'west').map((r) => r.member.name).length, 1);
  for (const x of ml.values()) await x.shutdown();
});
