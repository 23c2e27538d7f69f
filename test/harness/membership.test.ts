/**
 * Membership with real agent processes on loopback (short gossip timers, real protocol code):
 * join, metadata/maintenance, kill -9, SIGSTOP/SIGCONT refutation, partition and heal, key
 * rotation under traffic, signed pool definitions converging, hostile packets, graceful leave.
 */
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { createSocket } from 'node:dgram';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Cluster, waitFor, runCli } from '../../src/harness/cluster.ts';
import { generateGossipKey } from '../../src/security/gossipkey.ts';

interface Row { name: string; status: string; pools: string[]; maintenanceReason?: string; incarnation: number }

const adminDir = mkdtempSync(join(tmpdir(), 'multiall-admin-'));
let c: Cluster;
const NODES = ['m1', 'm2', 'm3', 'm4', 'm5'];

async function view(from: string): Promise<Map<string, Row>> {
  const rows = (await c.api(from, 'GET', '/v1/members')) as Row[];
  return new Map(rows.map((r) => [r.name, r]));
}

/** Waits until every listed observer sees `who` in one of `states`. */
async function allSee(observers: string[], who: string, states: string[], what: string, timeoutMs = 30_000): Promise<void> {
  await waitFor(async () => {
    for (const o of observers) {
      const st = (await view(o)).get(who)?.status;
      if (!st || !states.includes(st)) return false;
    }
    return true;
  }, what, timeoutMs);
}

before(async () => {
  const k = await runCli(['admin', 'keygen', '--out', adminDir]);
  assert.equal(k.code, 0, k.stderr);
  c = await Cluster.create({ nodes: NODES, adminKeys: [join(adminDir, 'admin.pub')], logLevel: 'info' });
  await c.startAll();
});
after(async () => {
  await c?.destroy();
  rmSync(adminDir, { recursive: true, force: true }); // holds the admin signing key
});

test('five agents join and all see each other alive', async () => {
  for (const n of NODES) for (const m of NODES) await allSee([n], m, ['alive'], `${n} sees ${m} alive`);
  const r = await c.cli('m1', ['members']);
  assert.equal(r.code, 0, r.stderr);
  for (const n of NODES) assert.match(r.stdout, new RegExp(`^${n}\\s+\\S+\\s+alive`, 'm'));
});

test('maintenance spreads as metadata and clears again', async () => {
  const r = await c.cli('m2', ['maintenance', 'on', '--reason', 'disk swap']);
  assert.equal(r.code, 0, r.stderr);
  await allSee(NODES, 'm2', ['maintenance'], 'm2 in maintenance everywhere');
  assert.equal((await view('m4')).get('m2')?.maintenanceReason, 'disk swap');
  await c.cli('m2', ['maintenance', 'off']);
  await allSee(NODES, 'm2', ['alive'], 'm2 back from maintenance');
});

/** Collects the data of `member.message` events from an agent's /v1/events stream until stopped. */
function messages(name: string): { got: unknown[]; ready: Promise<void>; stop: () => void } {
  const got: unknown[] = [];
  const follow = c.events(name, (ev) => {
    if (ev.kind === 'member.message') got.push(ev.data);
  });
  return { got, ...follow };
}

test('a user message posted on one agent reaches every agent once, as member.message', async () => {
  const streams = NODES.map((n) => messages(n));
  try {
    await Promise.all(streams.map((s) => s.ready));
    const sent = await c.api('m2', 'POST', '/v1/messages', { topic: 'deploy.done', data: { service: 'web', build: 42 } });
    assert.deepEqual(sent, { sent: true });
    await waitFor(async () => streams.every((s) => s.got.length >= 1), 'every agent got the message');
    await new Promise((r) => setTimeout(r, 1000)); // gossip copies keep arriving for a while: still one each
    for (const s of streams) assert.deepEqual(s.got, [{ from: 'm2', topic: 'deploy.done', data: { service: 'web', build: 42 } }]);
    const big = await c.api('m2', 'POST', '/v1/messages', { topic: 'x', data: 'y'.repeat(2000) }).catch((e: unknown) => e);
    assert.match(String((big as Error).message ?? big), /limit is 1024/);
  } finally {
    for (const s of streams) s.stop();
  }
});

test('hostile packets are dropped and counted, the agent keeps working', async () => {
  const sock = createSocket('udp4');
  const target = c.node('m1');
  for (let i = 0; i < 200; i++) {
    await new Promise<void>((r) => sock.send(randomBytes(1 + (i % 1300)), target.gossipPort, target.ip, () => r()));
  }
  sock.close();
  await waitFor(async () => {
    const m = /multiall_gossip_auth_failures\{[^}]*\} (\d+)/.exec((await c.api('m1', 'GET', '/metrics')) as string);
    return m && Number(m[1]) >= 150;
  }, 'auth failures counted on m1');
  await allSee(['m1'], 'm3', ['alive'], 'm1 still sees m3');
});

test('kill -9 is detected by every survivor; restarted, it resumes above its old incarnation', async () => {
  await c.kill('m5');
  await allSee(['m1', 'm2', 'm3', 'm4'], 'm5', ['dead'], 'm5 dead everywhere');
  const deadInc = (await view('m1')).get('m5')?.incarnation ?? 0;
  assert.ok(deadInc >= 1);
  await c.start('m5');
  await allSee(['m1', 'm2', 'm3', 'm4'], 'm5', ['alive'], 'm5 alive again after restart');
  // Its incarnation was persisted in its state store: the first alive it sent already beat the
  // death others held, so it never had to refute (a restart from incarnation 1 must).
  assert.ok(((await view('m5')).get('m5')?.incarnation ?? 0) > deadInc);
  const refutes = /multiall_gossip_refutes\{[^}]*\} (\d+)/.exec((await c.api('m5', 'GET', '/metrics')) as string);
  assert.equal(refutes?.[1], '0', 'no refutation after the restart');
});

test('a restarted member rejoins the members it knew, though it has no seeds of its own', async () => {
  // m1 is the member the others joined: its config lists no seeds.
  await c.kill('m1');
  await allSee(['m2', 'm3', 'm4', 'm5'], 'm1', ['dead'], 'm1 dead everywhere');
  const before = c.logLines('m1').length;
  await c.start('m1');
  await waitFor(() => c.logLines('m1').slice(before).some((l) => l.msg === 'joined the cluster' && Number(l.known) >= 1), 'm1 joined the members it knew', 30_000);
  await allSee(['m1', 'm2', 'm3', 'm4', 'm5'], 'm1', ['alive'], 'm1 alive everywhere again');
  await allSee(['m1'], 'm5', ['alive'], 'm1 sees the others');
});

test('a paused member is suspected, and refutes after SIGCONT', async () => {
  c.pause('m4');
  try {
    await waitFor(async () => ['suspect', 'dead'].includes((await view('m1')).get('m4')?.status ?? ''), 'm4 suspected');
  } finally {
    c.resume('m4');
  }
  await allSee(NODES, 'm4', ['alive'], 'm4 alive again everywhere');
  const refutes = /multiall_gossip_refutes\{[^}]*\} (\d+)/.exec((await c.api('m4', 'GET', '/metrics')) as string);
  assert.ok(refutes && Number(refutes[1]) >= 1, 'm4 refuted the suspicion about itself');
});

test('a partition makes each side see the other failed, and heals', { skip: !Cluster.canPartition() && 'needs root and iptables' }, async () => {
  c.partition(['m1', 'm2'], ['m3', 'm4', 'm5']);
  try {
    await allSee(['m1', 'm2'], 'm4', ['dead'], 'm4 dead from the small side');
    await allSee(['m3', 'm4', 'm5'], 'm1', ['dead'], 'm1 dead from the large side');
  } finally {
    c.heal();
  }
  for (const n of NODES) await allSee(NODES, n, ['alive'], `${n} alive everywhere after heal`, 40_000);
});

test('gossip key rotation across the live cluster without losing anyone', async () => {
  const k2 = generateGossipKey();
  for (const op of ['install', 'use'] as const) {
    const r = await c.cli('m1', ['keys', op, k2]);
    assert.equal(r.code, 0, `${op}: ${r.stdout}${r.stderr}`);
    for (const n of NODES) assert.match(r.stdout, new RegExp(`^${n}\\s+ok`, 'm'));
  }
  const list = (await c.api('m3', 'GET', '/v1/keys')) as { primary: string; keys: string[] };
  assert.equal(list.keys.length, 2);
  assert.equal(list.primary, `${k2.slice(0, 4)}…(256 bit)`);
  const old = JSON.parse((await import('node:fs')).readFileSync(join(c.dir, 'keyring.json'), 'utf8')) as { keys: string[] };
  const oldKey = old.keys.find((k) => k !== k2);
  assert.ok(oldKey);
  const rm = await c.cli('m2', ['keys', 'remove', oldKey]);
  assert.equal(rm.code, 0, rm.stdout + rm.stderr);
  // Everyone still talks with only the new key.
  await new Promise((r) => setTimeout(r, 1500));
  for (const n of NODES) await allSee(NODES, n, ['alive'], `${n} alive after rotation`);
});

test('signed pool definitions converge on every member; forged ones are refused', async () => {
  const file = join(adminDir, 'pools.yaml');
  writeFileSync(file, 'pools:\n  - name: web\n    members: [m1, m2, m3]\n    settings: { tags: { tier: front } }\n  - name: db\n    members: [m4, m5]\n');
  const r = await c.cli('m3', ['pools', 'apply', file, '--key', join(adminDir, 'admin.key')]);
  assert.equal(r.code, 0, r.stderr);
  await waitFor(async () => {
    for (const n of NODES) {
      const p = (await c.api(n, 'GET', '/v1/pools')) as { version: number; pools: { name: string }[] };
      if (p.version !== 1 || p.pools.map((x) => x.name).join() !== 'web,db') return false;
    }
    return true;
  }, 'pool document version 1 everywhere');
  await waitFor(async () => ((await view('m1')).get('m5')?.pools ?? []).includes('db'), 'm5 advertises pool db');
  const doc = ((await c.api('m1', 'GET', '/v1/pools')) as { pools: unknown[] });
  const forged = { kind: 'multiall.pools/v1', version: 99, issuedAt: '', signer: '0123456789abcdef', pools: doc.pools, signature: 'AAAA' };
  await assert.rejects(c.api('m2', 'POST', '/v1/pools', { document: forged }), /422/);
});

test('graceful leave: members see "left", and the agent exits 0', async () => {
  const r = await c.cli('m3', ['leave']);
  assert.equal(r.code, 0, r.stderr);
  assert.equal(await c.node('m3').exited, 0);
  await allSee(['m1', 'm2', 'm4', 'm5'], 'm3', ['left'], 'm3 left everywhere');
});
