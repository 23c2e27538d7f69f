// Settings of the etcd election backend: resolution (defaults, section vs service) and the
// precise errors for everything wrong.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { failoverSectionSchema, resolveFailover, FailoverConfigError } from '../../src/failover/schema.ts';

const AB = ['a', 'b'];

function problems(section: unknown, members: string[] = AB): string[] {
  try {
    resolveFailover(section, members);
    return [];
  } catch (e) {
    assert.ok(e instanceof FailoverConfigError, String(e));
    return e.problems;
  }
}

test('etcd backend: defaults, no voters, two members need no witness', () => {
  const [s] = resolveFailover({ services: [{ name: 'vip', backend: { etcd: { endpoints: ['http://127.0.0.1:2379'] } } }] }, AB);
  assert.deepEqual(s!.backend, { kind: 'etcd', endpoints: ['http://127.0.0.1:2379'], prefix: '/multiall/', leaseTtlMs: 3000, tls: null });
  assert.deepEqual(s!.voters, []);
  assert.equal(s!.witness, null);
  assert.equal(s!.leaseMs, 3000);
  assert.equal(s!.heartbeatMs, 1000);
  // The same pool with the builtin election is refused (two voters, no witness).
  assert.equal(problems({ services: [{ name: 'vip' }] }).length, 1);
});

test('section backend applies to services without their own; a service may override it', () => {
  const etcd = { etcd: { endpoints: ['https://e1:2379', 'https://e2:2379'], prefix: '/ha/x/', lease_ttl: '5s', tls: { ca: '/etc/etcd/ca.pem', cert: '/etc/etcd/c.pem', key: '/etc/etcd/c.key' } } };
  const out = resolveFailover({ backend: etcd, services: [{ name: 'vip' }, { name: 'db', backend: 'builtin', voters: ['a', 'b', 'c'] }] }, ['a', 'b', 'c']);
  assert.deepEqual(out[0]!.backend, {
    kind: 'etcd', endpoints: ['https://e1:2379', 'https://e2:2379'], prefix: '/ha/x/', leaseTtlMs: 5000,
    tls: { ca: '/etc/etcd/ca.pem', cert: '/etc/etcd/c.pem', key: '/etc/etcd/c.key' },
  });
  assert.deepEqual(out[1]!.backend, { kind: 'builtin' });
  assert.deepEqual(out[1]!.voters, ['a', 'b', 'c']);
  // Without any backend: builtin.
  assert.deepEqual(resolveFailover({ services: [{ name: 'vip' }] }, ['a', 'b', 'c'])[0]!.backend, { kind: 'builtin' });
  // The parsed section is the input (the config contract: no defaults added).
  assert.deepEqual(failoverSectionSchema.parse({ backend: 'builtin' }), { backend: 'builtin' });
});

test('etcd backend: precise errors', () => {
  const one = (etcd: unknown, extra: Record<string, unknown> = {}): string[] => problems({ services: [{ name: 'vip', backend: { etcd }, ...extra }] });
  const has = (list: string[], path: string, re: RegExp): void => {
    assert.ok(list.some((p) => p.startsWith(path) && re.test(p)), `expected ${path} ~ ${re} in:\n${list.join('\n')}`);
  };
  has(one({ endpoints: ['grpc://e1:2379'] }), 'failover.services.0.backend.etcd.endpoints.0', /scheme grpc/);
  has(one({ endpoints: ['http://e1'] }), 'failover.services.0.backend.etcd.endpoints.0', /port is missing/);
  has(one({ endpoints: ['http://e1:2379/v3'] }), 'failover.services.0.backend.etcd.endpoints.0', /path/);
  has(one({ endpoints: ['not a url'] }), 'failover.services.0.backend.etcd.endpoints.0', /not a URL/);
  has(one({ endpoints: [] }), 'failover.services.0.backend.etcd.endpoints', /at least one/);
  has(one({}), 'failover.services.0.backend.etcd.endpoints', /./);
  has(one({ endpoints: ['http://e1:2379', 'https://e2:2379'] }), 'failover.services.0.backend.etcd.endpoints', /mixes http/);
  has(one({ endpoints: ['http://e1:2379'], tls: { ca: '/ca.pem' } }), 'failover.services.0.backend.etcd.tls', /use https/);
  has(one({ endpoints: ['https://e1:2379'], tls: { ca: 'ca.pem' } }), 'failover.services.0.backend.etcd.tls.ca', /absolute path/);
  has(one({ endpoints: ['https://e1:2379'], tls: { ca: '/ca.pem', cert: '/c.pem' } }), 'failover.services.0.backend.etcd.tls', /cert and key go together/);
  has(one({ endpoints: ['http://e1:2379'], lease_ttl: '2500ms' }), 'failover.services.0.backend.etcd.lease_ttl', /whole number of seconds/);
  has(one({ endpoints: ['http://e1:2379'], lease_ttl: '1s' }), 'failover.services.0.backend.etcd.lease_ttl', /from 2s/);
  has(one({ endpoints: ['http://e1:2379'], lease_ttl: 'soon' }), 'failover.services.0.backend.etcd.lease_ttl', /expected a duration/);
  has(one({ endpoints: ['http://e1:2379'], prefix: 'multiall' }), 'failover.services.0.backend.etcd.prefix', /starts and ends with \//);
  has(one({ endpoints: ['http://e1:2379'], ttl: '3s' }), 'failover.services.0.backend.etcd', /ttl/);
  has(problems({ services: [{ name: 'vip', backend: 'etcd' }] }), 'failover.services.0.backend', /expected builtin or \{ etcd/);
  has(problems({ services: [{ name: 'vip', backend: { etcd: { endpoints: ['http://e:1'] }, consul: {} } }] }), 'failover.services.0.backend', /unknown key\(s\) "consul"/);
  has(problems({ backend: 42, services: [] }), 'failover.backend', /expected builtin/);
  for (const k of ['voters', 'witness', 'lease', 'heartbeat']) {
    const v = k === 'voters' ? ['a', 'b'] : k === 'witness' ? 'w' : '3s';
    has(one({ endpoints: ['http://e1:2379'] }, { [k]: v }), 'failover.services[0] (vip)', new RegExp(`${k} configures the builtin election`));
  }
  // Valid ones produce no problem.
  assert.deepEqual(one({ endpoints: ['http://127.0.0.1:2379', 'http://[::1]:2379'], prefix: '/', lease_ttl: '2s' }), []);
});
