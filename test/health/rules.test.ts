import assert from 'node:assert/strict';
import { test } from 'node:test';
import fc from 'fast-check';
import { RuleSyntaxError, parseRule, structuredRuleSchema } from '../../src/health/rules.ts';

test('disk, load, cpu, memory, swap rules', () => {
  const d = parseRule('disk / usage > 90% for 3 cycles then critical');
  assert.equal(d.name, 'disk-root-usage');
  assert.deepEqual(d.params, { kind: 'disk', path: '/' });
  assert.deepEqual(d.condition, { type: 'compare', metric: 'usage', op: '>', value: 90, unit: 'percent', text: '90%' });
  assert.equal(d.then, 'critical');
  assert.equal(d.forCycles, 3);
  assert.equal(d.recoverCycles, 1);

  const i = parseRule('disk /var inodes > 80% then warning');
  assert.equal(i.name, 'disk-var-inodes');
  assert.equal(i.condition.type === 'compare' && i.condition.metric, 'inodes');
  assert.equal(i.then, 'warning');

  const l = parseRule('load 1m > 4 for 2 cycles then warning');
  assert.deepEqual(l.condition, { type: 'compare', metric: '1m', op: '>', value: 4, unit: 'number', text: '4' });
  assert.equal(l.forCycles, 2);

  const c = parseRule('cpu > 95% for 5 cycles then critical');
  assert.equal(c.condition.type === 'compare' && c.condition.metric, 'usage');
  assert.equal(c.forCycles, 5);
  assert.equal(parseRule('cpu iowait >= 20% then warning').name, 'cpu-iowait');

  const m = parseRule('memory usage > 90% then warning');
  assert.equal(m.kind, 'memory');
  const s = parseRule('swap usage > 50% then warning');
  assert.equal(s.kind, 'swap');
  assert.equal(s.condition.type === 'compare' && s.condition.value, 50);
});

test('process rules: name, pidfile, match', () => {
  const p = parseRule('process nginx count < 1 then critical');
  assert.deepEqual(p.params, { kind: 'process', name: 'nginx' });
  assert.deepEqual(p.condition, { type: 'compare', metric: 'count', op: '<', value: 1, unit: 'integer', text: '1' });
  const f = parseRule('process pidfile /run/nginx.pid missing then critical');
  assert.deepEqual(f.params, { kind: 'process', pidfile: '/run/nginx.pid' });
  assert.deepEqual(f.condition, { type: 'flag', metric: 'missing' });
  const r = parseRule('process match "nginx: master" count != 1 then warning');
  assert.deepEqual(r.params, { kind: 'process', match: 'nginx: master' });
});

test('network rules: tcp, http, dns, postgres, mysql', () => {
  const t = parseRule('tcp 127.0.0.1:5432 fails then critical');
  assert.deepEqual(t.params, { kind: 'tcp', host: '127.0.0.1', port: 5432 });
  assert.deepEqual(t.condition, { type: 'flag', metric: 'fails' });
  assert.deepEqual(parseRule('tcp [::1]:22 fails then critical').params, { kind: 'tcp', host: '::1', port: 22 });

  const h = parseRule('http http://127.0.0.1:8080/health status != 200 for 2 cycles then critical');
  assert.deepEqual(h.params, { kind: 'http', url: 'http://127.0.0.1:8080/health', method: 'GET' });
  assert.deepEqual(h.condition, { type: 'compare', metric: 'status', op: '!=', value: 200, unit: 'integer', text: '200' });
  assert.equal(h.forCycles, 2);
  const b = parseRule('http https://example.com/?a=b&c=~d body !~ "ok" then warning');
  assert.deepEqual(b.condition, { type: 'match', metric: 'body', op: '!~', pattern: 'ok' });
  assert.equal(b.params.kind === 'http' && b.params.url, 'https://example.com/?a=b&c=~d');
  const lat = parseRule('http http://127.0.0.1/ method HEAD latency > 500ms then warning');
  assert.deepEqual(lat.condition, { type: 'compare', metric: 'latency', op: '>', value: 500, unit: 'duration', text: '500ms' });
  assert.equal(lat.params.kind === 'http' && lat.params.method, 'HEAD');

  const d = parseRule('dns example.com @127.0.0.1:53 type A fails then critical');
  assert.deepEqual(d.params, { kind: 'dns', name: 'example.com', server: '127.0.0.1', port: 53, type: 'A' });
  assert.deepEqual(parseRule('dns example.com @10.0.0.1 type mx fails then critical').params, { kind: 'dns', name: 'example.com', server: '10.0.0.1', port: 53, type: 'MX' });

  assert.deepEqual(parseRule('postgres 127.0.0.1:5432 fails then critical').params, { kind: 'postgres', host: '127.0.0.1', port: 5432, user: 'postgres', database: 'postgres' });
  assert.deepEqual(parseRule('postgres db1 user app database shop fails then critical').params, { kind: 'postgres', host: 'db1', port: 5432, user: 'app', database: 'shop' });
  assert.deepEqual(parseRule('mysql 127.0.0.1:3306 fails then critical').params, { kind: 'mysql', host: '127.0.0.1', port: 3306 });
});

test('file and command rules, options', () => {
  const a = parseRule('file /var/run/app.heartbeat age > 60s then critical');
  assert.deepEqual(a.condition, { type: 'compare', metric: 'age', op: '>', value: 60_000, unit: 'duration', text: '60s' });
  assert.deepEqual(parseRule('file /x missing then warning').condition, { type: 'flag', metric: 'missing' });
  const s = parseRule('file /x size > 1GB then warning');
  assert.equal(s.condition.type === 'compare' && s.condition.value, 1024 ** 3);

  const c = parseRule('command "/usr/lib/nagios/plugins/check_foo -w 1" then nagios');
  assert.deepEqual(c.params, { kind: 'command', command: '/usr/lib/nagios/plugins/check_foo -w 1' });
  assert.deepEqual(c.condition, { type: 'nagios' });
  assert.equal(c.then, 'nagios');
  assert.equal(c.name, 'command-check_foo');
  assert.equal(parseRule('command "true" fails then critical').condition.type, 'flag');

  const o = parseRule('tcp 127.0.0.1:80 fails for 2 cycles then critical every 10s timeout 5s recover after 3 cycles', 'web');
  assert.equal(o.name, 'web');
  assert.equal(o.everyMs, 10_000);
  assert.equal(o.timeoutMs, 5000);
  assert.equal(o.recoverCycles, 3);
  // Clauses in any order.
  const o2 = parseRule('tcp 127.0.0.1:80 fails every 2m then critical recover after 1 cycle for 4 cycles');
  assert.equal(o2.everyMs, 120_000);
  assert.equal(o2.forCycles, 4);
});

function syntaxError(src: string): RuleSyntaxError {
  try {
    parseRule(src);
  } catch (e) {
    assert.ok(e instanceof RuleSyntaxError, `expected RuleSyntaxError, got ${String(e)}`);
    return e;
  }
  assert.fail(`expected ${JSON.stringify(src)} to be rejected`);
}

test('syntax errors give the column, what was expected and the form', () => {
  const e1 = syntaxError('disk / usage > 9x% then critical');
  assert.equal(e1.column, 16);
  assert.equal(e1.message, 'column 16: expected a percentage like 90%, got "9x%"; form: disk PATH usage|inodes OP N% [for N cycles] then warning|critical [every DURATION] [timeout DURATION] [recover after N cycles]');

  const e2 = syntaxError('dsk / usage > 90% then critical');
  assert.equal(e2.column, 1);
  assert.match(e2.message, /^column 1: expected a check kind \(disk, load, cpu, .*\), got "dsk"$/);

  const e3 = syntaxError('disk / usage > 90%');
  assert.equal(e3.column, 19);
  assert.match(e3.message, /^column 19: expected 'then warning' or 'then critical', got end of rule; form: disk PATH/);

  const e4 = syntaxError('disk / space > 90% then critical');
  assert.equal(e4.column, 8);
  assert.match(e4.message, /expected one of: usage, inodes, got "space"/);

  const e5 = syntaxError('load 1m > 4 for two cycles then warning');
  assert.equal(e5.column, 17);
  assert.match(e5.message, /expected a cycle count >= 1, got "two"/);

  const e6 = syntaxError('tcp 127.0.0.1 fails then critical');
  assert.equal(e6.column, 5);
  assert.match(e6.message, /expected HOST:PORT like 127.0.0.1:5432 \(port 1-65535\), got "127.0.0.1"; form: tcp HOST:PORT/);

  const e7 = syntaxError('disk / usage > 90% then nagios');
  assert.equal(e7.column, 25);
  assert.match(e7.message, /expected warning or critical \('then nagios' is for command rules without a condition\)/);

  const e8 = syntaxError('command "check_x then nagios');
  assert.equal(e8.column, 9);
  assert.match(e8.message, /expected a closing ", got end of rule/);

  const e9 = syntaxError('http ftp://x/ fails then critical');
  assert.equal(e9.column, 6);
  assert.match(e9.message, /expected an http:\/\/ or https:\/\/ URL/);

  const e10 = syntaxError('file /x age > 60 then critical');
  assert.equal(e10.column, 15);
  assert.match(e10.message, /expected a duration like 500ms, 10s, 2m, 1h, got "60"/);

  const e11 = syntaxError('tcp 127.0.0.1:80 fails then critical then warning');
  assert.equal(e11.column, 38);
  assert.match(e11.message, /expected at most one 'then' clause/);

  const e12 = syntaxError('dns example.com 127.0.0.1 fails then critical');
  assert.equal(e12.column, 17);
  assert.match(e12.message, /expected @SERVER\[:PORT\]/);

  const e13 = syntaxError('http http://x/ body ~ ok then warning');
  assert.equal(e13.column, 23);
  assert.match(e13.message, /expected a quoted regular expression/);

  const e14 = syntaxError('process nginx count < 1 then critical every 0s');
  assert.equal(e14.column, 45);
  assert.match(e14.message, /expected a duration greater than zero/);
});

test('structured form produces the same Rule as the text form', () => {
  const text = parseRule('disk / usage > 90% for 3 cycles then critical', 'disk-root');
  const s = structuredRuleSchema.parse({ name: 'disk-root', kind: 'disk', params: { path: '/' }, metric: 'usage', op: '>', threshold: '90%', for: 3, then: 'critical' });
  assert.deepEqual({ ...s, source: '' }, { ...text, source: '' });
  assert.equal(s.source, 'disk / usage > 90% for 3 cycles then critical');

  const h = structuredRuleSchema.parse({ kind: 'http', params: { url: 'http://127.0.0.1:8080/health' }, metric: 'body', op: '!~', pattern: 'ok', then: 'warning', every: '5s', timeout: '2s', recover: 2 });
  assert.deepEqual(h.condition, { type: 'match', metric: 'body', op: '!~', pattern: 'ok' });
  assert.equal(h.everyMs, 5000);
  assert.equal(h.timeoutMs, 2000);
  assert.equal(h.recoverCycles, 2);
  const c = structuredRuleSchema.parse({ kind: 'command', params: { command: 'check_load -w 1' }, then: 'nagios' });
  assert.deepEqual(c.condition, { type: 'nagios' });
  assert.deepEqual(structuredRuleSchema.parse({ kind: 'postgres', params: { host: '127.0.0.1' }, metric: 'fails', then: 'critical' }).params,
    { kind: 'postgres', host: '127.0.0.1', port: 5432, user: 'postgres', database: 'postgres' });
});

test('structured form errors name the field', () => {
  const issues = (v: unknown): string[] => {
    const r = structuredRuleSchema.safeParse(v);
    assert.equal(r.success, false);
    return r.error?.issues.map((i) => `${i.path.join('.')}: ${i.message}`) ?? [];
  };
  assert.deepEqual(issues({ kind: 'disk', params: { path: 'var' }, metric: 'usage', op: '>', threshold: 90, then: 'critical' }), ['params.path: expected an absolute path (starting with /)']);
  assert.deepEqual(issues({ kind: 'disk', params: { path: '/' }, metric: 'space', op: '>', threshold: 90, then: 'critical' }), ['metric: expected one of: usage, inodes, got "space"']);
  assert.deepEqual(issues({ kind: 'file', params: { path: '/x' }, metric: 'age', op: '>', threshold: 60, then: 'critical' }), ['threshold: expected a duration like 500ms, 10s, 2m, 1h as a string (a bare number is ambiguous)']);
  assert.deepEqual(issues({ kind: 'tcp', params: { host: 'x', port: 99999 }, metric: 'fails', then: 'critical' }).length, 1);
  assert.match(issues({ kind: 'disk', params: { path: '/' }, metric: 'usage', op: '>', threshold: 90, then: 'critical', cycles: 3 })[0] ?? '', /cycles/);
  assert.deepEqual(issues({ kind: 'disk', params: { path: '/' }, metric: 'usage', op: '>', threshold: 90, then: 'nagios' }), ["then: expected warning or critical ('nagios' is for command rules without a metric)"]);
});

test('fuzz: the parser either returns a Rule or throws a RuleSyntaxError inside the line', () => {
  const words = ['disk', 'load', 'cpu', 'http', 'tcp', 'file', 'command', 'process', 'dns', '/', 'usage', '>', '90%', 'for', '3', 'cycles', 'then', 'critical', 'nagios', '"x"', '@127.0.0.1', '1m', 'fails', 'every', '10s', 'recover', 'after', '!~', '"', 'http://a/', '127.0.0.1:1'];
  fc.assert(fc.property(fc.oneof(fc.string(), fc.array(fc.constantFrom(...words), { maxLength: 12 }).map((a) => a.join(' '))), (src) => {
    try {
      parseRule(src);
    } catch (e) {
      assert.ok(e instanceof RuleSyntaxError, String(e));
      assert.ok(e.column >= 1 && e.column <= src.length + 1, `column ${e.column} outside ${JSON.stringify(src)}`);
    }
  }), { numRuns: 2000 });
});
