// Settings schema and resolution: defaults, whole-pool checks, precise errors.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { failoverSectionSchema, resolveFailover, FailoverConfigError } from '../../src/failover/schema.ts';
import { ComponentRegistry } from '../../src/config/components.ts';

const problems = (section: unknown, members: string[]): string[] => {
  try {
    resolveFailover(section, members);
  } catch (e) {
    assert.ok(e instanceof FailoverConfigError, String(e));
    return e.problems;
  }
  return [];
};

test('defaults are applied on resolution', () => {
  const [s] = resolveFailover({ services: [{ name: 'vip' }] }, ['a', 'b', 'c']);
  assert.ok(s);
  assert.deepEqual(s.voters, ['a', 'b', 'c']);
  assert.equal(s.leaseMs, 3000);
  assert.equal(s.heartbeatMs, 1000);
  assert.deepEqual(s.preempt, { mode: 'preempt' });
  assert.equal(s.defaultPriority, 100);
  assert.deepEqual(s.actions.standby_to_master, []);
});

test('full service with actions, preempt-after and witness', () => {
  const [s] = resolveFailover({ services: [{
    name: 'db', priority: { a: 150 }, preempt: { after: '30s' }, witness: 'w', lease: '4s', heartbeat: '500ms',
    actions: {
      standby_to_master: [{ floating_ip: { address: '10.9.0.100/24', interface: 'veth0' } }, { run: 'promote %NODE% %TERM%', timeout: '20s', env: { A: '1' }, on_failure: 'retry', retries: 3 }],
      master_to_standby: [{ run: 'demote', on_failure: 'continue' }],
    },
  }] }, ['a', 'b']);
  assert.ok(s);
  assert.deepEqual(s.voters, ['a', 'b', 'w']);
  assert.deepEqual(s.preempt, { mode: 'after', afterMs: 30_000 });
  assert.deepEqual(s.actions.standby_to_master[0], { kind: 'floating_ip', address: '10.9.0.100/24', interface: 'veth0', onFailure: 'abort', retries: 2 });
  assert.deepEqual(s.actions.standby_to_master[1], { kind: 'run', run: 'promote %NODE% %TERM%', timeoutMs: 20_000, env: { A: '1' }, onFailure: 'retry', retries: 3 });
  assert.equal(s.actions.master_to_standby[0]?.onFailure, 'continue');
});

test('a two-member pool without witness is rejected with a clear message', () => {
  const p = problems({ services: [{ name: 'vip' }] }, ['a', 'b']);
  assert.equal(p.length, 1);
  assert.match(p[0]!, /failover\.services\[0\] \(vip\): the service has 2 voters \(a, b\).*Add a witness/);
  assert.match(problems({ services: [{ name: 'vip', voters: ['a', 'b'] }] }, ['a', 'b', 'c'])[0]!, /2 voters/);
});

test('unknown %VAR% and a lone % are errors at config time', () => {
  const p = problems({ services: [{ name: 'vip', actions: { standby_to_master: [{ run: 'x %MASTR% y' }, { run: '100% sure' }] } }] }, ['a', 'b', 'c']);
  assert.equal(p.length, 2);
  assert.match(p[0]!, /actions\.standby_to_master\.0\.run: unknown variable %MASTR%/);
  assert.match(p[1]!, /actions\.standby_to_master\.1\.run: a lone %/);
  assert.deepEqual(problems({ services: [{ name: 'vip', actions: { standby_to_master: [{ run: 'echo 100%% %MASTER%' }] } }] }, ['a', 'b', 'c']), []);
});

test('precise errors for bad values', () => {
  const cases: [unknown, RegExp][] = [
    [{ services: [{ name: 'vip', lease: '3 sec' }] }, /lease: expected a duration greater than zero like 500ms, 3s, 2m, 1h, got "3 sec"/],
    [{ services: [{ name: 'vip', lease: '2s', heartbeat: '1s' }] }, /lease \(2000ms\) must be longer than 2 × heartbeat/],
    [{ services: [{ name: 'vip', preempt: 'sometimes' }] }, /preempt: expected preempt, nopreempt or \{ after: <duration> \}/],
    [{ services: [{ name: 'vip', priority: { zz: 10 } }] }, /priority names zz, which is not a member of the pool/],
    [{ services: [{ name: 'vip', voters: ['a', 'q'] }] }, /voter q is not a member/],
    [{ services: [{ name: 'vip', witness: 'a' }] }, /witness a is a member of the pool/],
    [{ services: [{ name: 'vip', actions: { standby_to_master: [{ floating_ip: { address: '10.9.0.300/24', interface: 'eth0' } }] } }] }, /address: expected an address with prefix length/],
    [{ services: [{ name: 'vip', actions: { standby_to_master: [{ cmd: 'x' }] } }] }, /expected an action with "run" or "floating_ip", got keys \["cmd"\]/],
    [{ services: [{ name: 'vip', actions: { health_changed: [{ floating_ip: { address: '10.0.0.1/24', interface: 'eth0' } }] } }] }, /floating_ip is only meaningful/],
    [{ services: [{ name: 'vip', actions: { on_master: [] } }] }, /actions/],
    [{ services: [{ name: 'vip', actions: { standby_to_master: [{ run: 'x', on_failure: 'ignore' }] } }] }, /on_failure: expected abort, continue or retry/],
    [{ services: [{ name: 'vip' }, { name: 'vip' }] }, /duplicate service name/],
    [{ services: [{ name: 'vip', priority: { a: 0, b: 0, c: 0 } }] }, /nobody can become master/],
  ];
  for (const [section, re] of cases) {
    const p = problems(section, ['a', 'b', 'c']);
    assert.ok(p.some((x) => re.test(x)), `${JSON.stringify(section)} → ${JSON.stringify(p)}`);
  }
});

test('the section schema registers with the config component registry', () => {
  const reg = new ComponentRegistry();
  reg.register('failover', failoverSectionSchema, { description: 'failover services' });
  assert.ok(reg.has('failover'));
  // Pool contributions: every field optional (no defaults applied per pool).
  assert.deepEqual(failoverSectionSchema.parse({}), {});
  assert.deepEqual(failoverSectionSchema.parse({ services: [{ name: 'vip' }] }), { services: [{ name: 'vip' }] });
});
