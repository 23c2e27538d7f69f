import { test, describe } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { parseConfigText } from '../../src/config/load.ts';
import { effectiveConfig } from '../../src/config/effective.ts';
import { formatConfig, formatEffective, formatProblems } from '../../src/config/format.ts';
import type { ConfigProblem, EffectiveConfig } from '../../src/config/types.ts';
import { BASE, yaml } from './helpers.ts';

describe('formatProblems', () => {
  test('compiler style, warnings marked, position and path left out when unknown', () => {
    const problems: ConfigProblem[] = [
      { file: 'a.yaml', line: 3, column: 9, path: 'node.bind', message: 'bad address' },
      { file: 'a.yaml', line: 12, column: 3, path: 'overrides.web9', message: 'no pool', severity: 'warning' },
      { file: 'a.yaml', line: 4, column: 1, path: '', message: 'YAML syntax error: Tabs are not allowed as indentation' },
      { file: 'b.yaml', line: 0, column: 0, path: '', message: 'cannot read config file: no such file' },
    ];
    assert.equal(
      formatProblems(problems),
      [
        'a.yaml:3:9: node.bind: bad address',
        'a.yaml:12:3: overrides.web9: warning: no pool',
        'a.yaml:4:1: YAML syntax error: Tabs are not allowed as indentation',
        'b.yaml: cannot read config file: no such file',
      ].join('\n'),
    );
    assert.equal(formatProblems([problems[0] as ConfigProblem], 'warning'), 'a.yaml:3:9: node.bind: warning: bad address');
    assert.equal(formatProblems([]), '');
  });
});

describe('formatEffective', () => {
  const eff: EffectiveConfig = {
    node: 'n1',
    pools: ['a', 'b'],
    settings: { tags: { x: '1' } },
    values: [
      { path: 'tags.x', value: '1', source: { kind: 'pool', pool: 'a' } },
      { path: 'vars.long_name', value: [1, 2], source: { kind: 'override', node: 'n1' } },
    ],
    conflicts: [{ path: 'vars.y', values: [{ value: true, source: { kind: 'pool', pool: 'a' } }, { value: 'yes', source: { kind: 'pool', pool: 'b' } }] }],
  };

  test('a table, then the conflicts with every source', () => {
    assert.equal(
      formatEffective(eff, { json: false }),
      [
        'node n1: member of a, b',
        '',
        'PATH            VALUE  SOURCE',
        'tags.x          "1"    pool a',
        'vars.long_name  [1,2]  override n1',
        '',
        'CONFLICTS (1): set differently by several pools, so not set at all.',
        'Make the pools agree, or settle it for this node in overrides.n1.settings.',
        '  vars.y',
        '    true   pool a',
        '    "yes"  pool b',
      ].join('\n'),
    );
  });

  test('JSON is the EffectiveConfig', () => {
    assert.deepEqual(JSON.parse(formatEffective(eff, { json: true })), eff);
  });

  test('no settings, no pool', () => {
    assert.equal(formatEffective({ node: 'x', pools: [], settings: {}, values: [], conflicts: [] }, { json: false }), 'node x: member of no pool\n\n(no settings)');
  });
});

describe('formatConfig', () => {
  test('the YAML form loads again to the same config', () => {
    const text = yaml(...BASE, 'overrides:', '  web1: { settings: { tags: { role: canary } } }');
    const first = parseConfigText(text, '/etc/multiall/multiall.yaml');
    assert.ok(first.ok);
    const shown = formatConfig(first.config, { json: false });
    const again = parseConfigText(shown, '/elsewhere/copy.yaml');
    assert.ok(again.ok, JSON.stringify(!again.ok && again.problems));
    assert.deepEqual({ ...again.config, file: first.config.file }, first.config);
    assert.deepEqual(JSON.parse(formatConfig(first.config, { json: true })), first.config);
  });
});

describe('docs/configuration.md examples are what the code prints', () => {
  const doc = readFileSync(new URL('../../docs/configuration.md', import.meta.url), 'utf8');
  const example = (name: string): string => {
    const m = new RegExp(`<!-- example:${name} -->\\n\`\`\`[a-z]*\\n([\\s\\S]*?)\`\`\`\\n`).exec(doc);
    assert.ok(m, `example ${name} not found in docs/configuration.md`);
    return m[1] as string;
  };

  test('effective configuration with an override', () => {
    const r = parseConfigText(example('config'), '/etc/multiall/multiall.yaml');
    assert.ok(r.ok, JSON.stringify(!r.ok && r.problems));
    assert.deepEqual(r.warnings, []);
    assert.equal(r.config.node.gossipKeyring, '/etc/multiall/keyring.json');
    assert.equal(formatEffective(effectiveConfig(r.config, 'web1'), { json: false }) + '\n', example('effective'));
  });

  test('the same without the override: a conflict', () => {
    const text = example('config').replace(/^overrides:[\s\S]*$/m, '');
    const r = parseConfigText(text, '/etc/multiall/multiall.yaml');
    assert.ok(r.ok);
    assert.equal(formatEffective(effectiveConfig(r.config, 'web1'), { json: false }) + '\n', example('conflict'));
  });

  test('config check output', () => {
    const r = parseConfigText(example('broken'), 'multiall.yaml');
    assert.ok(!r.ok);
    assert.equal(formatProblems(r.problems) + '\n', example('check'));
  });
});
