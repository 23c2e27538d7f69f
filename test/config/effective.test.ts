import { test, describe } from 'node:test';
import assert from 'node:assert/strict';
import * as z from 'zod';
import { effectiveConfig } from '../../src/config/effective.ts';
import { componentRegistry } from '../../src/config/components.ts';
import type { Config, ComponentSettings, EffectiveConfig } from '../../src/config/types.ts';
import { ok, yaml } from './helpers.ts';

// A stand-in for a later component, with scalars, lists of scalars and a list of named objects.
const registry = componentRegistry.clone();
registry.register(
  'health',
  z.strictObject({
    interval: z.number().optional(),
    notify: z.array(z.string()).optional(),
    checks: z
      .array(z.strictObject({ name: z.string(), kind: z.string().optional(), port: z.number().optional(), timeout: z.number().optional() }))
      .optional(),
  }),
);

/** A config from pools given as settings, node `n1` unless said otherwise. */
function configOf(pools: { name: string; members: string[]; settings: ComponentSettings }[], overrides: Record<string, ComponentSettings> = {}): Config {
  return {
    file: '/etc/multiall.yaml',
    node: {
      name: 'n1', bind: '127.0.0.1', advertise: '127.0.0.1', rpcPort: 7950, gossipPort: 7946, network: 'default', dataDir: '/d',
      tls: { ca: '/d/tls/ca.crt', cert: '/d/tls/node.crt', key: '/d/tls/node.key' },
    },
    api: { socket: '/d/api.sock', tokens: [] },
    log: { level: 'info', format: 'auto' },
    join: [],
    gossip: { profile: 'lan' },
    adminKeys: [],
    networks: [],
    pools,
    overrides: Object.fromEntries(Object.entries(overrides).map(([k, v]) => [k, { settings: v }])),
  };
}

const pool = (name: string) => ({ kind: 'pool' as const, pool: name });
const override = (node: string) => ({ kind: 'override' as const, node });
const rows = (eff: EffectiveConfig) => eff.values.map((v) => [v.path, v.value, v.source.kind === 'pool' ? v.source.pool : `override:${v.source.node}`]);

describe('effectiveConfig', () => {
  test('two pools and an override, from YAML', () => {
    const { config } = ok(
      yaml(
        'node: { name: web1, bind: 127.0.0.1 }',
        'pools:',
        '  - name: web',
        '    members: [web1, web2]',
        '    settings:',
        '      tags: { role: frontend, dc: par1 }',
        '      vars: { port: 80 }',
        '      health: { interval: 5, checks: [{ name: http, kind: http, port: 80 }] }',
        '  - name: mail',
        '    members: [web1, mail1]',
        '    settings:',
        '      tags: { dc: par1, mail: "yes" }',
        '      vars: { port: 25 }',
        '      health: { interval: 10, checks: [{ name: smtp, kind: tcp, port: 25 }] }',
        '  - name: db',
        '    members: [db1]',
        '    settings: { tags: { role: database } }',
        'overrides:',
        '  web1:',
        '    settings: { health: { interval: 3 } }',
      ),
      { components: registry },
    );
    const eff = effectiveConfig(config, 'web1');
    assert.equal(eff.node, 'web1');
    assert.deepEqual(eff.pools, ['web', 'mail']);
    assert.deepEqual(eff.settings, {
      tags: { role: 'frontend', dc: 'par1', mail: 'yes' },
      vars: {}, // its only key conflicts
      health: { interval: 3, checks: [{ name: 'http', kind: 'http', port: 80 }, { name: 'smtp', kind: 'tcp', port: 25 }] },
    });
    assert.deepEqual(rows(eff), [
      ['health.checks[name=http].kind', 'http', 'web'],
      ['health.checks[name=http].name', 'http', 'web'],
      ['health.checks[name=http].port', 80, 'web'],
      ['health.checks[name=smtp].kind', 'tcp', 'mail'],
      ['health.checks[name=smtp].name', 'smtp', 'mail'],
      ['health.checks[name=smtp].port', 25, 'mail'],
      ['health.interval', 3, 'override:web1'],
      ['tags.dc', 'par1', 'web'],
      ['tags.mail', 'yes', 'mail'],
      ['tags.role', 'frontend', 'web'],
    ]);
    assert.deepEqual(eff.conflicts, [{ path: 'vars.port', values: [{ value: 80, source: pool('web') }, { value: 25, source: pool('mail') }] }]);

    // Another node of the same file: only its own pool.
    const db = effectiveConfig(config, 'db1');
    assert.deepEqual(db.pools, ['db']);
    assert.deepEqual(db.settings, { tags: { role: 'database' } });
    assert.deepEqual(db.conflicts, []);
  });

  test('a leaf set differently by two pools is a conflict, left out of settings and values', () => {
    const eff = effectiveConfig(configOf([
      { name: 'a', members: ['n1'], settings: { health: { interval: 5, notify: ['ops'] } } },
      { name: 'b', members: ['n1'], settings: { health: { interval: 10, notify: ['ops'] } } },
      { name: 'c', members: ['n1'], settings: { health: { interval: 5 } } },
    ]), 'n1');
    assert.deepEqual(eff.conflicts, [{ path: 'health.interval', values: [{ value: 5, source: pool('a') }, { value: 10, source: pool('b') }, { value: 5, source: pool('c') }] }]);
    assert.deepEqual(eff.settings, { health: { notify: ['ops'] } });
    assert.deepEqual(rows(eff), [['health.notify', ['ops'], 'a']]);
  });

  test('the override settles a conflict', () => {
    const eff = effectiveConfig(configOf([
      { name: 'a', members: ['n1'], settings: { health: { interval: 5 } } },
      { name: 'b', members: ['n1'], settings: { health: { interval: 10 } } },
    ], { n1: { health: { interval: 7 } } }), 'n1');
    assert.deepEqual(eff.conflicts, []);
    assert.deepEqual(eff.values, [{ path: 'health.interval', value: 7, source: override('n1') }]);
    assert.deepEqual(eff.settings, { health: { interval: 7 } });
  });

  test('equal values from two pools are not a conflict; the source is the first pool in file order', () => {
    const eff = effectiveConfig(configOf([
      { name: 'z', members: ['n1'], settings: { tags: { dc: 'par1' }, health: { notify: ['ops', 'dev'] } } },
      { name: 'a', members: ['n1'], settings: { tags: { dc: 'par1' }, health: { notify: ['ops', 'dev'] } } },
    ]), 'n1');
    assert.deepEqual(eff.conflicts, []);
    assert.deepEqual(rows(eff), [['health.notify', ['ops', 'dev'], 'z'], ['tags.dc', 'par1', 'z']]);
  });

  test('lists of scalars are leaves: different lists conflict, nothing is concatenated', () => {
    const eff = effectiveConfig(configOf([
      { name: 'a', members: ['n1'], settings: { health: { notify: ['ops'] } } },
      { name: 'b', members: ['n1'], settings: { health: { notify: ['ops', 'dba'] } } },
    ]), 'n1');
    assert.deepEqual(eff.conflicts.map((c) => c.path), ['health.notify']);
    assert.deepEqual(eff.settings, { health: {} });
  });

  test('named lists merge by name, conflicts per field, the override per field', () => {
    const config = configOf([
      { name: 'a', members: ['n1'], settings: { health: { checks: [{ name: 'http', port: 80, timeout: 2 }, { name: 'disk', kind: 'disk' }] } } },
      { name: 'b', members: ['n1'], settings: { health: { checks: [{ name: 'http', port: 8080, timeout: 2 }, { name: 'smtp', port: 25 }] } } },
    ]);
    const eff = effectiveConfig(config, 'n1');
    assert.deepEqual(eff.settings, { health: { checks: [{ name: 'http', timeout: 2 }, { name: 'disk', kind: 'disk' }, { name: 'smtp', port: 25 }] } });
    assert.deepEqual(eff.conflicts, [{ path: 'health.checks[name=http].port', values: [{ value: 80, source: pool('a') }, { value: 8080, source: pool('b') }] }]);
    assert.deepEqual(rows(eff), [
      ['health.checks[name=disk].kind', 'disk', 'a'],
      ['health.checks[name=disk].name', 'disk', 'a'],
      ['health.checks[name=http].name', 'http', 'a'],
      ['health.checks[name=http].timeout', 2, 'a'],
      ['health.checks[name=smtp].name', 'smtp', 'b'],
      ['health.checks[name=smtp].port', 25, 'b'],
    ]);

    config.overrides.n1 = { settings: { health: { checks: [{ name: 'http', port: 8443 }, { name: 'local', port: 1 }] } } };
    const settled = effectiveConfig(config, 'n1');
    assert.deepEqual(settled.conflicts, []);
    assert.deepEqual(settled.settings, {
      health: { checks: [{ name: 'http', port: 8443, timeout: 2 }, { name: 'disk', kind: 'disk' }, { name: 'smtp', port: 25 }, { name: 'local', port: 1 }] },
    });
    const http = settled.values.filter((v) => v.path.startsWith('health.checks[name=http]'));
    assert.deepEqual(http, [
      { path: 'health.checks[name=http].name', value: 'http', source: override('n1') },
      { path: 'health.checks[name=http].port', value: 8443, source: override('n1') },
      { path: 'health.checks[name=http].timeout', value: 2, source: pool('a') },
    ]);
  });

  test('an empty list joins a named list; a named list and a list of scalars conflict', () => {
    const eff = effectiveConfig(configOf([
      { name: 'a', members: ['n1'], settings: { health: { checks: [] } } },
      { name: 'b', members: ['n1'], settings: { health: { checks: [{ name: 'x' }] } } },
    ]), 'n1');
    assert.deepEqual(eff.settings, { health: { checks: [{ name: 'x' }] } });
    assert.deepEqual(eff.conflicts, []);
    const mixed = effectiveConfig(configOf([
      { name: 'a', members: ['n1'], settings: { vars: { v: ['x'] } } },
      { name: 'b', members: ['n1'], settings: { vars: { v: [{ name: 'x' }] } } },
    ]), 'n1');
    assert.deepEqual(mixed.conflicts.map((c) => c.path), ['vars.v']);
  });

  test('a mapping in one pool and a scalar in another conflict; an override of either kind wins', () => {
    const pools = [
      { name: 'a', members: ['n1'], settings: { vars: { x: { deep: 1 } } } },
      { name: 'b', members: ['n1'], settings: { vars: { x: 5 } } },
    ];
    assert.deepEqual(effectiveConfig(configOf(pools), 'n1').conflicts, [{ path: 'vars.x', values: [{ value: { deep: 1 }, source: pool('a') }, { value: 5, source: pool('b') }] }]);
    const scalar = effectiveConfig(configOf(pools, { n1: { vars: { x: 'over' } } }), 'n1');
    assert.deepEqual([scalar.settings, scalar.conflicts], [{ vars: { x: 'over' } }, []]);
    const mapping = effectiveConfig(configOf(pools, { n1: { vars: { x: { other: 2 } } } }), 'n1');
    assert.deepEqual([mapping.settings, mapping.conflicts, rows(mapping)], [{ vars: { x: { other: 2 } } }, [], [['vars.x.other', 2, 'override:n1']]]);
  });

  test('an override merges into the pools key by key and adds what they lack', () => {
    const eff = effectiveConfig(configOf(
      [{ name: 'a', members: ['n1'], settings: { tags: { role: 'web', dc: 'par1' } } }],
      { n1: { tags: { dc: 'ams1' }, vars: { k: true } } },
    ), 'n1');
    assert.deepEqual(eff.settings, { tags: { role: 'web', dc: 'ams1' }, vars: { k: true } });
    assert.deepEqual(rows(eff), [['tags.dc', 'ams1', 'override:n1'], ['tags.role', 'web', 'a'], ['vars.k', true, 'override:n1']]);
  });

  test('a node in no pool gets its override alone; an unknown node gets nothing', () => {
    const config = configOf([{ name: 'a', members: ['n2'], settings: { tags: { x: '1' } } }], { n1: { tags: { y: '2' } } });
    const eff = effectiveConfig(config, 'n1');
    assert.deepEqual([eff.pools, eff.settings, eff.conflicts], [[], { tags: { y: '2' } }, []]);
    const none = effectiveConfig(config, 'constructor');
    assert.deepEqual([none.pools, none.settings, none.values, none.conflicts], [[], {}, [], []]);
  });

  test('odd keys are quoted in paths; values are copies', () => {
    const settings = { tags: { 'app.kubernetes.io/name': 'web' } };
    const config = configOf([{ name: 'a', members: ['n1'], settings }]);
    const eff = effectiveConfig(config, 'n1');
    assert.deepEqual(eff.values.map((v) => v.path), ['tags["app.kubernetes.io/name"]']);
    (eff.settings.tags as Record<string, string>)['app.kubernetes.io/name'] = 'changed';
    assert.equal(settings.tags['app.kubernetes.io/name'], 'web');
  });
});
