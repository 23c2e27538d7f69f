/**
 * Health with real agents: a node's rule result reaches every member through gossip metadata,
 * and failover follows it: an unhealthy member is never elected, a master that turns unhealthy
 * steps down, and a recovered higher-priority member takes over again (preempt).
 */
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, writeFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Cluster, waitFor } from '../../src/harness/cluster.ts';

const NODES = ['h1', 'h2', 'h3'];
const dir = mkdtempSync(join(tmpdir(), 'multiall-health-'));
const flag = join(dir, 'h1-ready');
let c: Cluster;

async function healthOf(observer: string, member: string): Promise<string | undefined> {
  const r = (await c.api(observer, 'GET', '/v1/health')) as { members: { name: string; health: string }[] };
  return r.members.find((m) => m.name === member)?.health;
}

async function masterSeenBy(observer: string): Promise<string | null | undefined> {
  const rows = (await c.api(observer, 'GET', '/v1/failover')) as { master: string | null; isMaster: boolean }[];
  return rows[0]?.master;
}

before(async () => {
  c = await Cluster.create({
    nodes: NODES,
    dir,
    pools: [{
      name: 'web', members: NODES,
      settings: {
        health: {
          interval: '500ms',
          // Only h1 runs this rule: the others have it disabled by exception.
          rules: [{ name: 'ready', rule: `file ${flag} missing then critical` }],
          exceptions: { h2: { ready: { disabled: true } }, h3: { ready: { disabled: true } } },
        },
        failover: { services: [{ name: 'app', priority: { h1: 200, h2: 150, h3: 100 }, preempt: 'preempt', lease: '2s', heartbeat: '500ms' }] },
      },
    }],
  });
  await c.startAll();
});
after(async () => {
  await c?.destroy();
  rmSync(dir, { recursive: true, force: true });
});

test('an unhealthy member is seen as CRITICAL everywhere and is not elected', async () => {
  for (const o of NODES) await waitFor(async () => (await healthOf(o, 'h1')) === 'CRITICAL', `${o} sees h1 CRITICAL`);
  await waitFor(async () => (await masterSeenBy('h3')) === 'h2', 'h2 master while h1 is unhealthy');
  const cli = await c.cli('h3', ['health', '--pool', 'web']);
  assert.equal(cli.code, 0, cli.stderr);
  assert.match(cli.stdout, /h1\s+CRITICAL/);
  const local = await c.cli('h1', ['health', '--json']);
  const j = JSON.parse(local.stdout) as { local: { checks: { name: string; status: string; output: string }[] } };
  assert.equal(j.local.checks[0]?.name, 'ready');
  assert.equal(j.local.checks[0]?.status, 'CRITICAL');
});

test('the recovered higher-priority member takes over (preempt); turning unhealthy again makes it step down', async () => {
  writeFileSync(flag, 'ok');
  for (const o of NODES) await waitFor(async () => (await healthOf(o, 'h1')) === 'OK', `${o} sees h1 OK`);
  await waitFor(async () => (await masterSeenBy('h3')) === 'h1', 'h1 master after recovering');
  rmSync(flag);
  await waitFor(async () => (await masterSeenBy('h3')) === 'h2', 'h2 master again after h1 turned unhealthy');
  const st = (await c.api('h1', 'GET', '/v1/failover')) as { role: string }[];
  assert.equal(st[0]?.role, 'fault');
  const hist = (await c.api('h1', 'GET', '/v1/history?component=health')) as { data: { check: string; status: string } }[];
  assert.ok(hist.some((h) => h.data.check === 'ready' && h.data.status === 'OK'));
  assert.ok(hist.some((h) => h.data.check === 'ready' && h.data.status === 'CRITICAL'));
});
