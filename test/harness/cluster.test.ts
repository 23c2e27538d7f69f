/**
 * Real agent processes on loopback: mTLS between pool members, refusal of a foreign CA,
 * kill -9 and restart with intact state, the state-dir lock, SIGHUP reload, partitions.
 */
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { readFileSync, writeFileSync } from 'node:fs';
import { Cluster, waitFor, runCli } from '../../src/harness/cluster.ts';

let c: Cluster;

before(async () => {
  c = await Cluster.create({ nodes: 3 });
  await c.startAll();
});
after(async () => {
  await c?.destroy();
});

function ping(from: string, to: string): Promise<unknown> {
  const t = c.node(to);
  return c.api(from, 'POST', '/v1/peers/ping', { name: to, host: t.ip, port: t.rpcPort, timeoutMs: 3000 });
}

test('three agents talk to each other over mutual TLS', async () => {
  for (const a of ['n1', 'n2', 'n3']) {
    for (const b of ['n1', 'n2', 'n3']) {
      if (a === b) continue;
      const r = (await ping(a, b)) as { node: string };
      assert.equal(r.node, b);
    }
  }
});

test('a fourth agent with a certificate from a foreign CA is refused both ways', async () => {
  await c.addNode('intruder', { foreignCa: true });
  await c.start('intruder');
  await assert.rejects(ping('intruder', 'n1'), /502/);
  await assert.rejects(ping('n1', 'intruder'), /502/);
  // n1 counted and logged the refused handshake.
  const metrics = (await c.api('n1', 'GET', '/metrics')) as string;
  const m = /multiall_rpc_peer_refused_total\{[^}]*\} (\d+)/.exec(metrics);
  assert.ok(m && Number(m[1]) >= 1, `no refusal counted:\n${metrics.split('\n').filter((l) => l.includes('refused')).join('\n')}`);
  assert.ok(c.logLines('n1').some((l) => /refused/i.test(String(l.msg))), 'refusal not logged on n1');
  await c.stop('intruder');
});

test('the CLI shows status and pings a peer through the local API', async () => {
  const st = await c.cli('n1', ['status', '--json']);
  assert.equal(st.code, 0, st.stderr);
  const status = JSON.parse(st.stdout) as { node: string; pools: string[] };
  assert.equal(status.node, 'n1');
  assert.deepEqual(status.pools, ['demo']);
  const n2 = c.node('n2');
  const p = await c.cli('n1', ['ping', `n2@${n2.ip}:${n2.rpcPort}`]);
  assert.equal(p.code, 0, p.stderr);
  assert.match(p.stdout, /n2 .*rtt .* ms over mutual TLS/);
  const bad = await c.cli('n1', ['ping', 'not-an-address']);
  assert.equal(bad.code, 2);
  assert.match(bad.stderr, /expected NAME@HOST:PORT/);
});

test('a second agent on the same state directory refuses to start', async () => {
  const h = c.node('n1');
  const r = await runCli(['--config', h.configPath, 'agent']);
  assert.equal(r.code, 1);
  assert.match(r.stderr, /already running on state directory/);
  // The first one is unharmed.
  assert.ok(await ping('n2', 'n1'));
});

test('kill -9 then restart keeps local state intact', async () => {
  const before = (await c.api('n2', 'GET', '/v1/history?component=agent')) as { kind: string }[];
  assert.ok(before.some((e) => e.kind === 'started'));
  await c.kill('n2');
  await c.start('n2');
  const afterRows = (await c.api('n2', 'GET', '/v1/history?component=agent&limit=1000')) as { kind: string }[];
  assert.equal(afterRows.filter((e) => e.kind === 'started').length, before.filter((e) => e.kind === 'started').length + 1);
  assert.ok(await ping('n1', 'n2'));
});

test('SIGHUP reloads a valid config and refuses an invalid one, keeping the running config', async () => {
  const h = c.node('n3');
  const original = readFileSync(h.configPath, 'utf8');
  try {
    writeFileSync(h.configPath, original.replace('node:', 'node:\n  bogus_key: 1'));
    c.signal('n3', 'SIGHUP');
    await waitFor(() => c.logLines('n3').some((l) => /reload refused/.test(String(l.msg))), 'reload refusal in the log');
    assert.ok(await ping('n1', 'n3'), 'agent must keep running after a refused reload');
    writeFileSync(h.configPath, original.replace('pools:', 'pools:\n  - name: extra\n    members: [n3]\n    settings: {}'));
    c.signal('n3', 'SIGHUP');
    await waitFor(async () => ((await c.api('n3', 'GET', '/v1/status')) as { pools: string[] }).pools.includes('extra'), 'pool "extra" after reload');
  } finally {
    writeFileSync(h.configPath, original);
  }
});

test('partition cuts exactly the chosen links, heal restores them', { skip: !Cluster.canPartition() && 'needs root and iptables' }, async () => {
  c.partition(['n1'], ['n2']);
  try {
    await assert.rejects(ping('n1', 'n2'));
    assert.ok(await ping('n1', 'n3'));
    assert.ok(await ping('n3', 'n2'));
  } finally {
    c.heal();
  }
  await waitFor(() => ping('n1', 'n2'), 'n1 -> n2 after heal');
});

test('SIGTERM stops an agent cleanly with exit code 0', async () => {
  const code = await c.stop('n3');
  assert.equal(code, 0);
  const log = c.logLines('n3');
  assert.ok(log.some((l) => l.msg === 'agent stopped'));
  // No secret ends up in the log.
  const key = readFileSync(`${c.node('n3').dir}/tls/node.key`, 'utf8').split('\n')[1] ?? 'x';
  assert.ok(!c.logOf('n3').includes(key));
});

test('an agent that cannot start says why and exits 1', async () => {
  const p = spawn(process.execPath, ['--no-warnings', new URL('../../src/cli/main.ts', import.meta.url).pathname, 'agent'], { stdio: 'pipe' });
  let err = '';
  p.stderr.on('data', (d: Buffer) => (err += d.toString()));
  const code = await new Promise((r) => p.on('close', r));
  assert.equal(code, 2);
  assert.match(err, /--config FILE is required/);
});
