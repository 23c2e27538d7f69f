// Built-in floating IP action inside a network namespace created for the test (root needed;
// skipped with the reason when `ip netns` is not usable).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { ActionsRunner, processExecutor } from '../../src/failover/actions.ts';
import { arpingAvailable } from '../../src/failover/floating-ip.ts';
import { emptyVars } from '../../src/failover/vars.ts';
import { silentLogger } from '../../src/log/logger.ts';
import type { Action } from '../../src/failover/types.ts';

const NS = `fo-test-${process.pid}`;

function sh(...argv: string[]): string {
  return execFileSync(argv[0] as string, argv.slice(1), { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] });
}

function setup(): string | null {
  try {
    sh('ip', 'netns', 'add', NS);
    sh('ip', 'netns', 'exec', NS, 'ip', 'link', 'add', 'fo0', 'type', 'veth', 'peer', 'name', 'fo1');
    sh('ip', 'netns', 'exec', NS, 'ip', 'link', 'set', 'fo0', 'up');
    sh('ip', 'netns', 'exec', NS, 'ip', 'link', 'set', 'fo1', 'up');
    return null;
  } catch (e) {
    try { sh('ip', 'netns', 'del', NS); } catch { /* was not created */ }
    return `ip netns not usable here: ${(e as Error).message.split('\n')[0]}`;
  }
}

const skip = setup();

test('floating_ip: added on standby_to_master, removed on master_to_standby, idempotent', { skip: skip ?? false }, async (t) => {
  t.after(() => { try { sh('ip', 'netns', 'del', NS); } catch { /* already gone */ } });
  const prefix = ['ip', 'netns', 'exec', NS];
  const fip: Action = { kind: 'floating_ip', address: '10.9.0.100/24', interface: 'fo0', onFailure: 'abort', retries: 0 };
  const bad: Action = { kind: 'floating_ip', address: '10.9.0.101/24', interface: 'nosuch0', onFailure: 'abort', retries: 0 };
  const r = new ActionsRunner({
    pool: 'p', service: 'vip', node: 'n1', logger: silentLogger(), executor: processExecutor(prefix),
    actions: { standby_to_master: [fip], master_to_standby: [fip], to_fault: [bad], health_changed: [] },
  });
  const addrs = (): string => sh(...prefix, 'ip', '-4', 'addr', 'show', 'dev', 'fo0');
  const up = await r.enqueue('standby_to_master', emptyVars());
  assert.equal(up.ok, true, JSON.stringify(up));
  assert.match(addrs(), /inet 10\.9\.0\.100\/24/);
  const arping = await arpingAvailable(prefix);
  assert.match(up.actions[0]!.detail, arping ? /gratuitous ARP|arping failed/ : /arping not installed: no gratuitous ARP sent/);
  const again = await r.enqueue('standby_to_master', emptyVars());
  assert.equal(again.ok, true);
  assert.match(again.actions[0]!.detail, /already present/);
  const down = await r.enqueue('master_to_standby', emptyVars());
  assert.equal(down.ok, true);
  assert.doesNotMatch(addrs(), /10\.9\.0\.100/);
  const downAgain = await r.enqueue('master_to_standby', emptyVars());
  assert.equal(downAgain.ok, true);
  assert.match(downAgain.actions[0]!.detail, /already absent/);
  const f = await r.enqueue('to_fault', emptyVars());
  assert.equal(f.ok, false);
  assert.match(f.actions[0]!.detail, /ip addr del 10\.9\.0\.101\/24 dev nosuch0 failed: .*nosuch0|Cannot find device/);
});
