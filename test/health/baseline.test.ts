import assert from 'node:assert/strict';
import { test } from 'node:test';
import { parse as parseYaml } from 'yaml';
import { BaselineError, mergePoolSections, parseHealthSettings, rulesForNode } from '../../src/health/baseline.ts';

const YAML_SECTION = `
interval: 10s
rules:
  - { name: disk-root, rule: "disk / usage > 90% for 3 cycles then critical" }
  - "load 1m > 4 for 2 cycles then warning"
  - name: api
    kind: http
    params: { url: "http://127.0.0.1:8080/health" }
    metric: latency
    op: ">"
    threshold: 500ms
    then: warning
    every: 5s
exceptions:
  web3:
    disk-root: { threshold: 95 }
    api: { threshold: "750ms", for: 2 }
  db1:
    api: { disabled: true }
`;

test('a YAML health section with text and structured rules, and per-server exceptions', () => {
  const s = parseHealthSettings(parseYaml(YAML_SECTION));
  assert.deepEqual(s.rules.map((r) => r.name), ['disk-root', 'load-1m', 'api']);

  const web1 = rulesForNode('web1', s);
  const disk1 = web1.find((r) => r.name === 'disk-root');
  assert.equal(disk1?.condition.type === 'compare' && disk1.condition.value, 90);
  assert.equal(disk1?.everyMs, 10_000);
  assert.equal(disk1?.timeoutMs, 10_000);
  assert.equal(web1.find((r) => r.name === 'api')?.everyMs, 5000);

  const web3 = rulesForNode('web3', s);
  const disk3 = web3.find((r) => r.name === 'disk-root');
  assert.equal(disk3?.condition.type === 'compare' && disk3.condition.value, 95);
  const api3 = web3.find((r) => r.name === 'api');
  assert.equal(api3?.condition.type === 'compare' && api3.condition.value, 750);
  assert.equal(api3?.forCycles, 2);
  // The section itself is not modified by applying exceptions.
  assert.equal(s.rules[0]?.condition.type === 'compare' && s.rules[0].condition.value, 90);

  assert.deepEqual(rulesForNode('db1', s).map((r) => r.name), ['disk-root', 'load-1m']);
});

function problems(fn: () => unknown): string[] {
  try {
    fn();
  } catch (e) {
    assert.ok(e instanceof BaselineError, String(e));
    return e.problems.map((p) => `${p.path}: ${p.message}`);
  }
  assert.fail('expected a BaselineError');
}

test('unknown rule names and inapplicable exceptions are errors', () => {
  assert.deepEqual(problems(() => parseHealthSettings({
    rules: [{ name: 'disk-root', rule: 'disk / usage > 90% then critical' }],
    exceptions: { web3: { 'disk-rot': { threshold: 95 } } },
  })), ['health.exceptions.web3.disk-rot: unknown rule "disk-rot"; known rules: disk-root']);

  assert.deepEqual(problems(() => parseHealthSettings({
    rules: [{ name: 'pg', rule: 'tcp 127.0.0.1:5432 fails then critical' }],
    exceptions: { web3: { pg: { threshold: 5 } } },
  })), ['health.exceptions.web3.pg.threshold: rule "pg" (tcp 127.0.0.1:5432 fails then critical) has no numeric threshold']);

  assert.deepEqual(problems(() => parseHealthSettings({
    rules: ['disk / usage > 90% then critical'],
    exceptions: { web3: { 'disk-root-usage': { threshold: 120 } } },
  })), ['health.exceptions.web3.disk-root-usage.threshold: expected a percentage 0-100, got 120']);

  assert.deepEqual(problems(() => parseHealthSettings({
    rules: ['disk / usage > 90% then critical'],
    exceptions: { web3: { 'disk-root-usage': {} } },
  })), ['health.exceptions.web3.disk-root-usage: expected at least one of threshold, disabled, for, recover, then']);
});

test('bad rules in a section report their index and the parser message', () => {
  assert.deepEqual(problems(() => parseHealthSettings({
    interval: '10 s',
    rules: ['disk / usage > 90%', { name: 'x', rule: 'tcp 127.0.0.1 fails then critical' }, 'disk / usage > 80% then warning'],
  })), [
    'health.interval: expected a duration like 500ms, 10s, 2m, 1h, got "10 s"',
    'health.rules[0]: "disk / usage > 90%": column 19: expected \'then warning\' or \'then critical\', got end of rule; form: disk PATH usage|inodes OP N% [for N cycles] then warning|critical [every DURATION] [timeout DURATION] [recover after N cycles]',
    'health.rules[1].rule: "tcp 127.0.0.1 fails then critical": column 5: expected HOST:PORT like 127.0.0.1:5432 (port 1-65535), got "127.0.0.1"; form: tcp HOST:PORT (fails | latency OP DURATION) [for N cycles] then warning|critical [every DURATION] [timeout DURATION] [recover after N cycles]',
  ]);
  assert.deepEqual(problems(() => parseHealthSettings({ rules: ['disk / usage > 90% then critical', 'disk / usage > 80% then warning'] })),
    ['health.rules[1]: duplicate rule name "disk-root-usage" (also rules[0]); give one an explicit name']);
  assert.deepEqual(problems(() => parseHealthSettings({ rules: [], colour: 'red' })).length, 1);
});

test('pools: rules are unioned by name, conflicts name both pools, exceptions may target another pool\'s rule', () => {
  const web = { interval: '10s', rules: [{ name: 'disk-root', rule: 'disk / usage > 90% then critical' }, { name: 'nginx', rule: 'process nginx count < 1 then critical' }] };
  const db = { interval: '5s', rules: [{ name: 'disk-root', rule: 'disk / usage > 90% then critical' }, { name: 'pg', rule: 'tcp 127.0.0.1:5432 fails then critical' }], exceptions: { web3: { nginx: { disabled: true } } } };
  const merged = mergePoolSections([{ pool: 'web', section: web }, { pool: 'db', section: db }]);
  assert.deepEqual(merged.rules.map((r) => r.name), ['disk-root', 'nginx', 'pg']);
  assert.equal(merged.interval, 5000);
  assert.deepEqual(rulesForNode('web3', merged).map((r) => r.name), ['disk-root', 'pg']);

  const db2 = { rules: [{ name: 'disk-root', rule: 'disk / usage > 80% then critical' }] };
  assert.deepEqual(problems(() => mergePoolSections([{ pool: 'web', section: web }, { pool: 'db', section: db2 }])),
    ['pools.db.health.rules.disk-root: rule "disk-root" is defined differently in pool web (disk / usage > 90% then critical) and pool db (disk / usage > 80% then critical)']);

  const bad = { rules: [], exceptions: { web3: { nope: { disabled: true } } } };
  assert.deepEqual(problems(() => mergePoolSections([{ pool: 'web', section: web }, { pool: 'x', section: bad }])),
    ['pools.x.health.exceptions.web3.nope: unknown rule "nope"; known rules: disk-root, nginx']);
});
