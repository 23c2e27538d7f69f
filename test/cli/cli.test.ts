/** The real `multiall` CLI as a user runs it: exit codes, precise config errors, security commands. */
import { after, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, writeFileSync, statSync, existsSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createHash } from 'node:crypto';
import { runCli } from '../../src/harness/cluster.ts';

const dir = mkdtempSync(join(tmpdir(), 'multiall-cli-'));
after(() => rmSync(dir, { recursive: true, force: true }));

test('--help works everywhere and exits 0; unknown commands and options exit 2', async () => {
  for (const args of [['--help'], ['config', '--help'], ['config', 'check', '--help'], ['ca', 'issue', '--help'], ['failover', 'switch', '--help'], ['keys', '--help']]) {
    const r = await runCli(args);
    assert.equal(r.code, 0, `${args.join(' ')}: ${r.stderr}`);
    assert.match(r.stdout, /Usage: multiall/);
  }
  assert.equal((await runCli(['frobnicate'])).code, 2);
  assert.equal((await runCli(['status', '--bogus'])).code, 2);
  const v = await runCli(['--version']);
  assert.equal(v.code, 0);
  assert.match(v.stdout, /^\d+\.\d+\.\d+/);
});

test('config check names file, line, column and path of every problem', async () => {
  const file = join(dir, 'bad.yaml');
  writeFileSync(file, ['node:', '  name: Web_1', '  bind: 10.0.0.300', '  rpc_port: 70000', 'pools:', '  - name: web', '    membres: [a]', ''].join('\n'));
  const r = await runCli(['config', 'check', file]);
  assert.equal(r.code, 1);
  assert.match(r.stderr, new RegExp(`${file}:2:9: node\\.name: `));
  assert.match(r.stderr, new RegExp(`${file}:3:9: node\\.bind: `));
  assert.match(r.stderr, new RegExp(`${file}:4:13: node\\.rpc_port: `));
  assert.match(r.stderr, new RegExp(`${file}:7:5: pools\\[0\\]\\.membres: .*did you mean "members"`));
  const j = await runCli(['config', 'check', file, '--json']);
  assert.equal(j.code, 1);
  const parsed = JSON.parse(j.stdout) as { ok: boolean; problems: { line: number; path: string }[] };
  assert.equal(parsed.ok, false);
  assert.ok(parsed.problems.some((p) => p.path === 'node.bind' && p.line === 3));
  assert.equal((await runCli(['config', 'check', join(dir, 'missing.yaml')])).code, 2);
});

test('config show --effective prints sources and exits 1 on conflicts', async () => {
  const file = join(dir, 'pools.yaml');
  writeFileSync(file, [
    'node: { name: web1, bind: 127.0.0.1 }',
    'pools:',
    '  - { name: web, members: [web1], settings: { tags: { tier: front, zone: a } } }',
    '  - { name: cache, members: [web1], settings: { tags: { tier: back } } }',
    '',
  ].join('\n'));
  const r = await runCli(['config', 'show', file, '--effective']);
  assert.equal(r.code, 1, 'two pools set tags.tier differently: a conflict');
  assert.match(r.stdout, /tags\.zone\s+"a"\s+pool web/);
  assert.match(r.stdout, /tags\.tier\n\s+"front"\s+pool web\n\s+"back"\s+pool cache/);
  assert.match(r.stdout, /tags\.tier/);
  writeFileSync(file, `${[
    'node: { name: web1, bind: 127.0.0.1 }',
    'pools:',
    '  - { name: web, members: [web1], settings: { tags: { tier: front } } }',
    '  - { name: cache, members: [web1], settings: { tags: { tier: back } } }',
    'overrides:',
    '  web1: { settings: { tags: { tier: edge } } }',
  ].join('\n')}\n`);
  const ok = await runCli(['config', 'show', file, '--effective', '--json']);
  assert.equal(ok.code, 0, ok.stderr);
  const eff = JSON.parse(ok.stdout) as { values: { path: string; value: unknown; source: { kind: string } }[]; conflicts: unknown[] };
  assert.deepEqual(eff.conflicts, []);
  assert.deepEqual(eff.values.find((v) => v.path === 'tags.tier'), { path: 'tags.tier', value: 'edge', source: { kind: 'override', node: 'web1' } });
});

test('ca init / ca issue / keygen / token create', async () => {
  const ca = join(dir, 'ca');
  assert.equal((await runCli(['ca', 'init', '--dir', ca])).code, 0);
  assert.equal(statSync(join(ca, 'ca.key')).mode & 0o777, 0o600);
  const again = await runCli(['ca', 'init', '--dir', ca]);
  assert.equal(again.code, 1, 'an existing CA is never overwritten silently');
  const out = join(dir, 'web1-tls');
  const r = await runCli(['ca', 'issue', 'web1', '--ca-dir', ca, '--out', out, '--ip', '10.0.0.1']);
  assert.equal(r.code, 0, r.stderr);
  assert.ok(existsSync(join(out, 'node.crt')) && existsSync(join(out, 'ca.crt')));
  assert.equal(statSync(join(out, 'node.key')).mode & 0o777, 0o600);
  const bad = await runCli(['ca', 'issue', 'Not A Name', '--ca-dir', ca, '--out', out]);
  assert.equal(bad.code, 1);
  assert.match(bad.stderr, /name/i);
  assert.equal((await runCli(['ca', 'issue', 'web2', '--ca-dir', ca, '--out', out, '--days', 'ten'])).code, 2);
  const k = await runCli(['keygen']);
  assert.equal(Buffer.from(k.stdout.trim(), 'base64').length, 32);
  const t = await runCli(['token', 'create', '--name', 'ci', '--role', 'operator', '--json']);
  const tok = JSON.parse(t.stdout) as { secret: string; sha256: string };
  assert.equal(createHash('sha256').update(tok.secret).digest('hex'), tok.sha256);
  assert.equal((await runCli(['token', 'create', '--name', 'x', '--role', 'admin'])).code, 2);
});

test('commands that need an agent exit 3 when none runs', async () => {
  const r = await runCli(['--socket', join(dir, 'nope.sock'), 'status']);
  assert.equal(r.code, 3);
  assert.match(r.stderr, /cannot reach the agent/);
});
