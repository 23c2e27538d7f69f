/**
 * Topology with real agents: two networks, east (n1, n2; relay n2) and west (n3, n4; relay n3).
 * iptables blocks the only non-relay pair across networks (n1 ↔ n4) from the start, so anything
 * n1 learns about n4, and any call between them, must pass through the relays. Shows: full
 * membership everywhere, RTT estimates for the blocked pair, an RPC ping n1 → n4 through relay
 * n3, and failure detection of n4 reaching n1.
 */
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { Cluster, RPC_PORT, waitFor } from '../../src/harness/cluster.ts';

const NODES = ['n1', 'n2', 'n3', 'n4'];
const NET: Record<string, string> = { n1: 'east', n2: 'east', n3: 'west', n4: 'west' };
const skip = !Cluster.canPartition() && 'needs root and iptables';
let c: Cluster;

interface Row { name: string; status: string; network: string; rttMs?: number; relay?: boolean }

before(async () => {
  if (skip) return;
  c = await Cluster.create({
    nodes: NODES,
    configFor: (name) => ({
      node: { network: NET[name] },
      networks: [{ name: 'east', relays: ['n2'] }, { name: 'west', relays: ['n3'] }],
    }),
  });
  // Configs are written as nodes are added; rewrite them now that every node (and relay) exists.
  for (const n of NODES) c.writeConfig(n);
  c.partition(['n1'], ['n4']);
  await Promise.all(NODES.map((n) => c.start(n, 60_000))); // a loaded machine starts agents slowly
});
after(async () => {
  await c?.destroy();
});

test('every member sees every member alive, the blocked pair through the relays', { skip }, async () => {
  await waitFor(async () => {
    for (const n of NODES) {
      const rows = (await c.api(n, 'GET', '/v1/members')) as Row[];
      if (rows.filter((r) => r.status === 'alive').length !== NODES.length) return false;
    }
    return true;
  }, 'all four members alive in every view', 30_000);
  const rows = (await c.api('n1', 'GET', '/v1/members')) as Row[];
  assert.deepEqual(rows.filter((r) => r.relay).map((r) => r.name), ['n2', 'n3']);
  assert.equal(rows.find((r) => r.name === 'n4')?.network, 'west');
});

test('rtt between the blocked pair is estimated from gossiped coordinates; members shows an RTT column', { skip }, async () => {
  const r = await waitFor(async () => {
    const x = await c.cli('n1', ['rtt', 'n4']);
    return x.code === 0 ? x : null;
  }, 'n1 knows coordinates of itself and n4', 30_000);
  assert.match(r.stdout, /^Estimated n4 <-> n1 rtt: \d+\.\d{3} ms$/m);
  const both = await c.cli('n2', ['rtt', 'n1', 'n4', '--json']);
  assert.equal(both.code, 0, both.stderr);
  const j = JSON.parse(both.stdout) as { rttMs: number };
  assert.ok(Number.isFinite(j.rttMs) && j.rttMs >= 0);
  const unknown = await c.cli('n1', ['rtt', 'nobody']);
  assert.notEqual(unknown.code, 0);
  assert.match(unknown.stderr, /unknown member nobody/);

  const m = await c.cli('n1', ['members']);
  assert.equal(m.code, 0, m.stderr);
  assert.match(m.stdout, /\bRTT\b/);
  assert.match(m.stdout, /^n4\s.*\d+\.\d+ ms\s*$/m);
  const near = await c.cli('n1', ['nearest', '--n', '2', '--json']);
  assert.equal(near.code, 0, near.stderr);
  assert.equal((JSON.parse(near.stdout) as unknown[]).length, 2);
});

test('an RPC ping from n1 to n4 goes through relay n3; relays and same-network peers are direct', { skip }, async () => {
  assert.deepEqual(await c.api('n1', 'GET', '/v1/route?peer=n4'), { peer: 'n4', via: 'relay', relay: 'n3' });
  assert.deepEqual(await c.api('n1', 'GET', '/v1/route?peer=n3'), { peer: 'n3', via: 'direct' });
  assert.deepEqual(await c.api('n4', 'GET', '/v1/route?peer=n2'), { peer: 'n2', via: 'direct' });
  const n4 = c.node('n4');
  const res = (await c.api('n1', 'POST', '/v1/peers/ping', { name: 'n4', host: n4.ip, port: RPC_PORT })) as { node: string; via?: string };
  assert.equal(res.node, 'n4');
  assert.equal(res.via, 'n3');
  assert.ok(c.logLines('n3').some((l) => l.msg === 'relaying RPC call' && l.to === 'n4' && l.from === 'n1'), 'n3 logged the relayed call');
  // And the other way round, through east's relay.
  const back = (await c.api('n4', 'POST', '/v1/peers/ping', { name: 'n1', host: c.node('n1').ip, port: RPC_PORT })) as { via?: string };
  assert.equal(back.via, 'n2');
});

test('a crash of n4 is detected by the members that reach it and the news reaches n1', { skip }, async () => {
  await c.kill('n4');
  await waitFor(async () => {
    const rows = (await c.api('n1', 'GET', '/v1/members')) as Row[];
    return rows.find((r) => r.name === 'n4')?.status === 'dead';
  }, 'n1 sees n4 dead', 30_000);
  for (const n of ['n2', 'n3']) {
    await waitFor(async () => ((await c.api(n, 'GET', '/v1/members')) as Row[]).find((x) => x.name === 'n4')?.status === 'dead', `${n} sees n4 dead`, 30_000);
  }
});
