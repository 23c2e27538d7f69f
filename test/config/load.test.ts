import { test, describe } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, writeFile, rm, mkdir } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as z from 'zod';
import { loadConfigFile, parseConfigText, DEFAULTS } from '../../src/config/load.ts';
import { ComponentRegistry, componentRegistry, knownComponents } from '../../src/config/components.ts';
import { BASE, FILE, bad, expectProblems, ok, withLine, yaml } from './helpers.ts';

const HASH = 'ab'.repeat(32);

describe('valid files', () => {
  test('the base file loads with its values', () => {
    const { config, warnings } = ok(yaml(...BASE));
    assert.deepEqual(warnings, []);
    assert.equal(config.file, FILE);
    assert.deepEqual(config.node, {
      name: 'web1',
      bind: '127.0.0.1',
      advertise: '127.0.0.1',
      rpcPort: 7950,
      gossipPort: 7946,
      network: 'lan1',
      dataDir: '/var/lib/multiall',
      tls: { ca: '/var/lib/multiall/tls/ca.crt', cert: '/var/lib/multiall/tls/node.crt', key: '/var/lib/multiall/tls/node.key' },
    });
    assert.deepEqual(config.api, { socket: '/var/lib/multiall/api.sock', tcp: { host: '127.0.0.1', port: 7951 }, tokens: [{ name: 'ci', role: 'read', sha256: HASH }] });
    assert.deepEqual(config.join, ['127.0.0.2:7946']);
    assert.deepEqual(config.networks, [{ name: 'lan1', relays: ['web1'] }]);
    assert.deepEqual(config.pools, [
      { name: 'web', members: ['web1', 'web2'], settings: { tags: { role: 'frontend' } } },
      { name: 'db', members: ['db1', 'web1'], settings: {} },
    ]);
    assert.deepEqual(config.overrides, {});
  });

  test('defaults: a minimal file', () => {
    const { config } = ok(yaml('node: { name: n1, bind: 127.0.0.1 }'));
    assert.equal(config.node.advertise, '127.0.0.1', 'advertise defaults to bind');
    assert.equal(config.node.rpcPort, 7950);
    assert.equal(config.node.gossipPort, 7946);
    assert.equal(config.node.network, 'default');
    assert.equal(config.node.dataDir, DEFAULTS.dataDir);
    assert.equal(config.node.gossipKeyring, undefined);
    assert.deepEqual(config.node.tls, { ca: '/var/lib/multiall/tls/ca.crt', cert: '/var/lib/multiall/tls/node.crt', key: '/var/lib/multiall/tls/node.key' });
    assert.deepEqual(config.api, { socket: '/var/lib/multiall/api.sock', tokens: [] });
    assert.deepEqual(config.log, { level: 'info', format: 'auto' });
    assert.deepEqual(config.join, []);
    assert.deepEqual(config.networks, []);
    assert.deepEqual(config.pools, []);
    assert.deepEqual(config.overrides, {});
  });

  test('relative paths are resolved against the directory of the config file', () => {
    const text = yaml(
      'node:',
      '  name: n1',
      '  bind: "::1"',
      '  data_dir: state',
      '  gossip_keyring: ../keys/keyring.json',
      '  tls: { ca: tls/pool-ca.crt, cert: /abs/node.crt }',
      'api: { socket: run/api.sock }',
    );
    const r = parseConfigText(text, 'conf/multiall.yaml');
    assert.ok(r.ok);
    const dir = join(process.cwd(), 'conf');
    assert.equal(r.config.file, join(dir, 'multiall.yaml'));
    assert.equal(r.config.node.dataDir, join(dir, 'state'));
    assert.equal(r.config.node.gossipKeyring, join(process.cwd(), 'keys/keyring.json'));
    assert.equal(r.config.node.tls.ca, join(dir, 'tls/pool-ca.crt'), 'relative to the file, not to data_dir');
    assert.equal(r.config.node.tls.cert, '/abs/node.crt', 'absolute paths are kept');
    assert.equal(r.config.node.tls.key, join(dir, 'state/tls/node.key'), 'the default is under data_dir');
    assert.equal(r.config.api.socket, join(dir, 'run/api.sock'));
  });

  test('IPv6 addresses, bracketed host:port, host names in join, token hash lower-cased', () => {
    const { config } = ok(
      yaml(
        'node: { name: n1, bind: "fd00::1", advertise: "fd00::1" }',
        'api:',
        '  tcp: "[::1]:7951"',
        `  tokens: [{ name: ops, role: operator, sha256: ${HASH.toUpperCase()} }]`,
        'join: ["[fd00::2]:7946", "seed-1.example.com:7946", "10.1.2.3:1"]',
      ),
    );
    assert.deepEqual(config.api.tcp, { host: '::1', port: 7951 });
    assert.equal(config.api.tokens[0]?.sha256, HASH);
    assert.deepEqual(config.join, ['[fd00::2]:7946', 'seed-1.example.com:7946', '10.1.2.3:1']);
  });

  test('an empty value is the same as leaving the key out', () => {
    const { config } = ok(yaml('node: { name: n1, bind: 127.0.0.1, advertise: }', 'api:', 'log:', 'join:', 'networks:', 'pools:', '  - name: p', '    members:', '    settings:', 'overrides:'));
    assert.equal(config.node.advertise, '127.0.0.1');
    assert.deepEqual(config.pools, [{ name: 'p', members: [], settings: {} }]);
  });

  test('the built-in components are tags and vars', () => {
    assert.deepEqual(knownComponents(), ['tags', 'vars']);
    const { config } = ok(yaml('node: { name: n1, bind: 127.0.0.1 }', 'pools:', '  - name: p', '    members: [n1]', '    settings: { vars: { a: x, b: 2, c: true }, tags: { t: "1" } }'));
    assert.deepEqual(config.pools[0]?.settings, { vars: { a: 'x', b: 2, c: true }, tags: { t: '1' } });
  });

  test('an override for a node in no pool is a warning, and the file still loads', () => {
    const { warnings, config } = ok(yaml(...BASE, 'overrides:', '  web9:', '    settings: { tags: { a: b } }'));
    expectProblems(warnings, [{ line: 26, column: 3, path: 'overrides.web9', message: /^override for node "web9", which is a member of no pool; did you mean "web1"\?$/, severity: 'warning' }]);
    assert.deepEqual(config.overrides.web9, { settings: { tags: { a: 'b' } } });
  });
});

describe('malformed files: each problem with its line, column and path', () => {
  test('unknown key, close to a known one: suggestion', () => {
    expectProblems(bad(withLine(4, '  rpcport: 7950')), [{ line: 4, column: 3, path: 'node.rpcport', message: /^unknown key "rpcport"; did you mean "rpc_port"\?$/ }]);
  });

  test('unknown key in camelCase: suggests the snake_case key', () => {
    expectProblems(bad(withLine(7, '  dataDir: /var/lib/multiall')), [{ line: 7, column: 3, path: 'node.dataDir', message: /did you mean "data_dir"\?$/ }]);
  });

  test('unknown key, far from any: lists the known keys', () => {
    expectProblems(bad(yaml(...BASE, 'colour: blue')), [
      { line: 25, column: 1, path: 'colour', message: /^unknown key "colour" \(known keys: node, api, log, join, gossip, admin_keys, networks, pools, overrides\)$/ },
    ]);
  });

  test('unknown key inside a list item', () => {
    expectProblems(bad(withLine(18, '    member: [web1, web2]')), [{ line: 18, column: 5, path: 'pools[0].member', message: /did you mean "members"\?$/ }]);
  });

  test('wrong type: a port given as a string', () => {
    expectProblems(bad(withLine(4, '  rpc_port: "7950"')), [{ line: 4, column: 13, path: 'node.rpc_port', message: /^expected a number, got the string "7950"$/ }]);
  });

  test('wrong type: a list where a mapping belongs, a mapping where a list belongs', () => {
    expectProblems(bad(withLine(12, 'join: { a: 1 }', 'log: [info]')), [
      { line: 12, column: 7, path: 'join', message: /^expected a list, got a mapping$/ },
      { line: 13, column: 6, path: 'log', message: /^expected a mapping, got a list$/ },
    ]);
  });

  test('wrong type: a number where a string belongs suggests quotes', () => {
    expectProblems(bad(withLine(20, '      tags: { role: frontend, tier: 1 }')), [
      { line: 20, column: 37, path: 'pools[0].settings.tags.tier', message: /^expected a string, got the number 1; put it in quotes \("1"\) to make it a string$/ },
    ]);
  });

  test('missing required key: reported at the mapping it belongs in', () => {
    expectProblems(bad(withLine(2)), [{ line: 1, column: 1, path: 'node.name', message: /^missing required key "name"$/ }]);
    expectProblems(bad(withLine(17, '  - members_: []').replace('    members: [web1, web2]\n', '')), [
      { line: 17, column: 5, path: 'pools[0].name', message: /^missing required key "name"$/ },
      { line: 17, column: 5, path: 'pools[0].members_', message: /did you mean "members"\?$/ },
    ]);
  });

  test('bad IP addresses', () => {
    expectProblems(bad(withLine(3, '  bind: 300.1.2.3')), [{ line: 3, column: 9, path: 'node.bind', message: /^"300\.1\.2\.3" is not an IPv4 or IPv6 address$/ }]);
    expectProblems(bad(withLine(3, '  bind: "[::1]"')), [{ line: 3, column: 9, path: 'node.bind', message: /^write the IPv6 address without brackets: ::1$/ }]);
    expectProblems(bad(withLine(3, '  bind: 127.0.0.1', '  advertise: 127.0.0.1:7950')), [
      { line: 4, column: 14, path: 'node.advertise', message: /includes a port; give the address alone/ },
    ]);
    expectProblems(bad(withLine(3, '  bind: localhost')), [{ line: 3, column: 9, path: 'node.bind', message: /^"localhost" is not an IPv4 or IPv6 address$/ }]);
  });

  test('wildcard bind needs an advertise address; advertise may not be a wildcard', () => {
    expectProblems(bad(withLine(3, '  bind: 0.0.0.0')), [{ line: 3, column: 9, path: 'node.bind', message: /^bind is the wildcard address 0\.0\.0\.0, which other nodes cannot reach/ }]);
    expectProblems(bad(withLine(3, '  bind: "::"', '  advertise: "::"')), [{ line: 4, column: 14, path: 'node.advertise', message: /not the wildcard ::$/ }]);
    ok(withLine(3, '  bind: 0.0.0.0', '  advertise: 10.0.0.1'));
  });

  test('bad ports', () => {
    expectProblems(bad(withLine(4, '  rpc_port: 0')), [{ line: 4, column: 13, path: 'node.rpc_port', message: /^port must be an integer from 1 to 65535, got 0$/ }]);
    expectProblems(bad(withLine(5, '  gossip_port: 65536')), [{ line: 5, column: 16, path: 'node.gossip_port', message: /got 65536$/ }]);
    expectProblems(bad(withLine(5, '  gossip_port: 79.5')), [{ line: 5, column: 16, path: 'node.gossip_port', message: /got 79\.5$/ }]);
    expectProblems(bad(withLine(5, '  gossip_port: 7950')), [{ line: 5, column: 16, path: 'node.gossip_port', message: /^rpc_port and gossip_port are both 7950; they must differ$/ }]);
    expectProblems(bad(withLine(9, '  tcp: "127.0.0.1:7950"')), [{ line: 9, column: 8, path: 'api.tcp', message: /^port 7950 is already node\.rpc_port$/ }]);
  });

  test('bad names', () => {
    expectProblems(bad(withLine(2, '  name: Web_1')), [{ line: 2, column: 9, path: 'node.name', message: /^"Web_1" is not a valid node name/ }]);
    expectProblems(bad(withLine(17, '  - name: -web')), [{ line: 17, column: 11, path: 'pools[0].name', message: /^"-web" is not a valid pool name/ }]);
    expectProblems(bad(withLine(14, `  - name: ${'a'.repeat(64)}`).replace('network: lan1', `network: ${'a'.repeat(64)}`)), [
      { line: 6, column: 12, path: 'node.network', message: /is not a valid network name/ },
      { line: 14, column: 11, path: 'networks[0].name', message: /is not a valid network name/ },
    ]);
  });

  test('duplicate pool', () => {
    expectProblems(bad(withLine(21, '  - name: web')), [{ line: 21, column: 11, path: 'pools[1].name', message: /^duplicate pool "web" \(first defined at pools\[0\], line 17\)$/ }]);
  });

  test('duplicate network', () => {
    expectProblems(bad(withLine(15, '    relays: [web1]', '  - name: lan1')), [{ line: 16, column: 11, path: 'networks[1].name', message: /^duplicate network "lan1"/ }]);
  });

  test('duplicate member within a pool', () => {
    expectProblems(bad(withLine(24, '      - db1')), [{ line: 24, column: 9, path: 'pools[1].members[1]', message: /^duplicate member "db1" \(already at pools\[1\]\.members\[0\], line 23\)$/ }]);
  });

  test('a member of two pools is fine', () => {
    ok(yaml(...BASE)); // web1 is in web and db
  });

  test('missing network reference', () => {
    expectProblems(bad(withLine(6, '  network: lan2')), [{ line: 6, column: 12, path: 'node.network', message: /^network "lan2" is not declared in networks; did you mean "lan1"\?$/ }]);
    expectProblems(bad(withLine(6, '  network: dmz')), [{ line: 6, column: 12, path: 'node.network', message: /^network "dmz" is not declared in networks \(declared: lan1\)$/ }]);
    expectProblems(bad(withLine(6)), [{ line: 1, column: 1, path: 'node.network', message: /^node\.network is not set, but networks are declared; set it to one of: lan1$/ }]);
  });

  test('a network may be anything when no networks are declared', () => {
    ok(yaml(...BASE.slice(0, 12), ...BASE.slice(15)).replace('network: lan1', 'network: anywhere'));
  });

  test('unknown relay', () => {
    expectProblems(bad(withLine(15, '    relays: [web1, db2]')), [{ line: 15, column: 20, path: 'networks[0].relays[1]', message: /^relay "db2" is not a member of any pool; did you mean "db1"\?$/ }]);
  });

  test('join entries must be host:port, IPv6 in brackets', () => {
    expectProblems(bad(withLine(12, 'join:', '  - "::1:7946"', '  - 127.0.0.2', '  - "[::1]:0"', '  - "bad_host:1"', '  - "[::1]:7946"')), [
      { line: 13, column: 5, path: 'join[0]', message: /write an IPv6 address in brackets, as \[addr\]:port/ },
      { line: 14, column: 5, path: 'join[1]', message: /has no port; expected host:port/ },
      { line: 15, column: 5, path: 'join[2]', message: /^port 0 is out of range \(1-65535\)$/ },
      { line: 16, column: 5, path: 'join[3]', message: /is neither an IPv4 address nor a valid host name/ },
    ]);
  });

  test('a seed listed twice is a warning', () => {
    const { warnings } = ok(withLine(12, 'join: ["127.0.0.2:7946", "127.0.0.2:7946"]'));
    expectProblems(warnings, [{ line: 12, column: 26, path: 'join[1]', message: /already listed at join\[0\]/, severity: 'warning' }]);
  });

  test('api.tcp must be an IP literal with a port', () => {
    expectProblems(bad(withLine(9, '  tcp: "localhost:7951"')), [{ line: 9, column: 8, path: 'api.tcp', message: /"localhost" is not an IP address/ }]);
  });

  test('bad token hash (the value is never echoed), bad role, duplicate token', () => {
    const problems = bad(withLine(11, '    - { name: ci, role: admin, sha256: s3cr3t-passw0rd }', `    - { name: ci, role: operator, sha256: ${HASH} }`));
    expectProblems(problems, [
      { line: 11, column: 25, path: 'api.tokens[0].role', message: /^must be one of read, operator; got the string "admin"$/ },
      { line: 11, column: 40, path: 'api.tokens[0].sha256', message: /^must be the sha256 of the token's secret as 64 hex digits \(got 15 characters\); the secret itself never goes in the config/ },
      { line: 12, column: 15, path: 'api.tokens[1].name', message: /^duplicate token "ci"/ },
    ]);
    assert.ok(!problems.some((p) => p.message.includes('s3cr3t')), 'the secret must not appear in messages');
  });

  test('two tokens with the same secret', () => {
    expectProblems(bad(withLine(11, `    - { name: a, role: read, sha256: ${HASH} }`, `    - { name: b, role: operator, sha256: ${HASH} }`)), [
      { line: 12, column: 42, path: 'api.tokens[1].sha256', message: /^same secret as api\.tokens\[0\] \(line 11\)/ },
    ]);
  });

  test('log level and format are enumerations, with a suggestion', () => {
    expectProblems(bad(yaml(...BASE, 'log: { level: warning, format: text }')), [
      { line: 25, column: 15, path: 'log.level', message: /^must be one of trace, debug, info, warn, error, fatal; got the string "warning"; did you mean "warn"\?$/ },
      { line: 25, column: 32, path: 'log.format', message: /^must be one of auto, json, pretty; got the string "text"$/ },
    ]);
  });

  test('unknown component, with the known ones listed', () => {
    expectProblems(bad(withLine(20, '      tag: { role: frontend }')), [
      { line: 20, column: 7, path: 'pools[0].settings.tag', message: /^unknown component "tag"; did you mean "tags"\? \(known components: tags, vars\)$/ },
    ]);
    expectProblems(bad(yaml(...BASE, 'overrides:', '  web1:', '    settings:', '      helth: {}')), [
      { line: 28, column: 7, path: 'overrides.web1.settings.helth', message: /^unknown component "helth" \(known components: tags, vars\)$/ },
    ]);
  });

  test('override keys are node names; overrides have only settings', () => {
    expectProblems(bad(yaml(...BASE, 'overrides:', '  Web1: {}', '  web2: { setting: {} }')), [
      { line: 26, column: 3, path: 'overrides.Web1', message: /^"Web1" is not a valid node name/ },
      { line: 27, column: 11, path: 'overrides.web2.setting', message: /did you mean "settings"\?$/ },
    ]);
  });

  test('YAML syntax errors are reported with their position and nothing else', () => {
    expectProblems(bad(withLine(18, '    members: [web1, web2', '    settings:')), [{ line: 19, column: 5, path: '', message: /^YAML syntax error: Flow sequence in block collection must be sufficiently indented and end with a \]$/ }]);
    expectProblems(bad(yaml('node:', '  name: "web1', '  bind: 1.2.3.4')), [{ line: 4, column: 1, path: '', message: /^YAML syntax error: Missing closing "quote/ }]);
    expectProblems(bad(yaml('node:', '\tname: web1')), [{ line: 2, column: 1, path: '', message: /^YAML syntax error: Tabs are not allowed as indentation/ }]);
  });

  test('duplicate key', () => {
    expectProblems(bad(withLine(4, '  rpc_port: 7950', '  rpc_port: 7951')), [{ line: 5, column: 3, path: '', message: /^duplicate key "rpc_port"/ }]);
  });

  test('several documents in one file', () => {
    expectProblems(bad(yaml(...BASE, '---', 'node: {}')), [{ line: 25, column: 1, path: '', message: /multiple documents/ }]);
  });

  test('aliases: resolved, unresolved, and too many', () => {
    const { config } = ok(yaml(...BASE.slice(0, 19), '      tags: &t { role: frontend }', '  - name: db', '    members: [db1]', '    settings: { tags: *t }'));
    assert.deepEqual(config.pools[1]?.settings, { tags: { role: 'frontend' } });
    expectProblems(bad(withLine(20, '      tags: *nothing')), [{ line: 20, column: 13, path: '', message: /^alias \*nothing refers to no anchor/ }]);
    const laughs = ['a: &a ["x", "x", "x", "x", "x", "x", "x", "x", "x", "x"]'];
    for (let i = 1; i < 8; i++) laughs.push(`${'abcdefgh'[i]}: &${'abcdefgh'[i]} [${Array(10).fill(`*${'abcdefgh'[i - 1]}`).join(', ')}]`);
    const problems = bad(yaml(...laughs));
    assert.equal(problems.length, 1);
    assert.match(problems[0]?.message ?? '', /alias/i);
  });

  test('keys that are collections, and __proto__', () => {
    expectProblems(bad(yaml('node: { name: n1, bind: 127.0.0.1 }', '? [a, b]', ': 1')), [{ line: 2, column: 3, path: '', message: /^a key must be a plain string/ }]);
    expectProblems(bad(yaml('node: { name: n1, bind: 127.0.0.1, __proto__: {} }')), [{ line: 1, column: 36, path: '', message: /"__proto__" is not allowed/ }]);
  });

  test('empty file, and a top level that is not a mapping', () => {
    expectProblems(bad(''), [{ line: 1, column: 1, path: '', message: /^the config is empty/ }]);
    expectProblems(bad('# only a comment\n'), [{ line: 1, column: 1, path: '', message: /^the config is empty/ }]);
    expectProblems(bad(yaml('- node')), [{ line: 1, column: 1, path: '', message: /^expected a mapping at the top level/ }]);
    expectProblems(bad(yaml('pools: []')), [{ line: 1, column: 1, path: 'node', message: /^missing required key "node"$/ }]);
  });

  test('every problem is reported, sorted by position', () => {
    const text = yaml(
      'node:', //                                          1
      '  name: web1', //                                   2
      '  bind: 1.2.3', //                                  3
      '  rpc_port: 99999', //                              4
      '  network: lan9', //                                5
      '  colour: red', //                                  6
      'networks: [{ name: lan1, relays: [ghost] }]', //    7
      'pools:', //                                         8
      '  - { name: web, members: [web1, web1] }', //       9
      '  - { name: web, members: [x_y] }', //              10
      'overrides:', //                                     11
      '  nobody: {}', //                                   12
    );
    expectProblems(bad(text), [
      { line: 3, column: 9, path: 'node.bind', message: /not an IPv4 or IPv6 address/ },
      { line: 4, column: 13, path: 'node.rpc_port', message: /got 99999/ },
      { line: 5, column: 12, path: 'node.network', message: /not declared in networks/ },
      { line: 6, column: 3, path: 'node.colour', message: /unknown key "colour"/ },
      { line: 7, column: 35, path: 'networks[0].relays[0]', message: /relay "ghost" is not a member of any pool/ },
      { line: 9, column: 34, path: 'pools[0].members[1]', message: /duplicate member "web1"/ },
      { line: 10, column: 13, path: 'pools[1].name', message: /duplicate pool "web"/ },
      { line: 10, column: 28, path: 'pools[1].members[0]', message: /"x_y" is not a valid node name/ },
      { line: 12, column: 3, path: 'overrides.nobody', message: /member of no pool/, severity: 'warning' },
    ]);
  });
});

describe('component registry', () => {
  const checks = z.array(
    z.strictObject({
      name: z.string(),
      kind: z.enum(['tcp', 'http']).optional(),
      interval: z.number().optional(),
    }),
  );
  const health = z.strictObject({ interval: z.number().optional(), checks: checks.optional() });

  test('a registered schema validates settings at parse time, with positions', () => {
    const registry = componentRegistry.clone();
    registry.register('health', health, { description: 'test' });
    const text = yaml(
      'node: { name: n1, bind: 127.0.0.1 }', //              1
      'pools:', //                                           2
      '  - name: p', //                                      3
      '    members: [n1]', //                                4
      '    settings:', //                                    5
      '      health:', //                                    6
      '        intervl: 5', //                               7
      '        checks:', //                                  8
      '          - { name: web, kind: tcpp }', //            9
      '          - { name: web, interval: "5s" }', //        10
    );
    expectProblems(bad(text, { components: registry }), [
      { line: 7, column: 9, path: 'pools[0].settings.health.intervl', message: /^unknown key "intervl"; did you mean "interval"\?$/ },
      { line: 9, column: 32, path: 'pools[0].settings.health.checks[0].kind', message: /^must be one of tcp, http; got the string "tcpp"; did you mean "tcp"\?$/ },
      { line: 10, column: 21, path: 'pools[0].settings.health.checks[1].name', message: /^duplicate name "web" in this list \(first at pools\[0\]\.settings\.health\.checks\[0\], line 9\)$/ },
      { line: 10, column: 36, path: 'pools[0].settings.health.checks[1].interval', message: /^expected a number, got the string "5s"$/ },
    ]);
    // The global registry does not know it.
    assert.match(bad(text)[0]?.message ?? '', /unknown component "health"/);
  });

  test('the config holds the sub-document as written, not the output of the schema', () => {
    const registry = new ComponentRegistry();
    registry.register('files', z.strictObject({ root: z.string().transform((s) => s.toUpperCase()), every: z.string().default('10s') }));
    const { config } = ok(yaml('node: { name: n1, bind: 127.0.0.1 }', 'pools: [{ name: p, members: [n1], settings: { files: { root: abc } } }]'), { components: registry });
    assert.deepEqual(config.pools[0]?.settings, { files: { root: 'abc' } });
  });

  test('range messages from zod are rewritten for administrators; custom ones kept', () => {
    const registry = new ComponentRegistry();
    registry.register('power', z.strictObject({ window: z.number().min(5).optional(), hosts: z.array(z.string()).min(1).optional(), id: z.string().max(3).optional(), n: z.number().max(9, { error: 'nine at most' }).optional() }));
    const text = yaml('node: { name: n1, bind: 127.0.0.1 }', 'pools: [{ name: p, settings: { power: { window: 2, hosts: [], id: abcd, n: 10 } } }]', 'api: { tokens: [{ name: "", role: read, sha256: ' + HASH + ' }] }');
    expectProblems(bad(text, { components: registry }), [
      { line: 2, column: 49, path: 'pools[0].settings.power.window', message: /^must be at least 5, got the number 2$/ },
      { line: 2, column: 59, path: 'pools[0].settings.power.hosts', message: /^must have at least 1 items$/ },
      { line: 2, column: 67, path: 'pools[0].settings.power.id', message: /^must be at most 3 characters long$/ },
      { line: 2, column: 76, path: 'pools[0].settings.power.n', message: /^nine at most$/ },
      { line: 3, column: 25, path: 'api.tokens[0].name', message: /^must not be empty$/ },
    ]);
  });

  test('registration rules', () => {
    const registry = new ComponentRegistry();
    registry.register('dns', health);
    registry.register('dns', health); // the very same schema: harmless
    assert.throws(() => registry.register('dns', z.object({})), /already registered/);
    assert.throws(() => registry.register('Bad-Name', health), /must match/);
    assert.deepEqual(registry.names(), ['dns']);
  });
});

describe('loadConfigFile', () => {
  test('reads a file, and reports a missing one as a problem', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'multiall-config-'));
    try {
      await mkdir(join(dir, 'etc'));
      const file = join(dir, 'etc', 'multiall.yaml');
      await writeFile(file, yaml('node: { name: n1, bind: 127.0.0.1, data_dir: ../var }'));
      const r = await loadConfigFile(file);
      assert.ok(r.ok);
      assert.equal(r.config.file, file);
      assert.equal(r.config.node.dataDir, join(dir, 'var'));
      const missing = await loadConfigFile(join(dir, 'nope.yaml'));
      assert.deepEqual(missing, { ok: false, problems: [{ file: join(dir, 'nope.yaml'), line: 0, column: 0, path: '', message: 'cannot read config file: no such file' }] });
      const isDir = await loadConfigFile(dir);
      assert.ok(!isDir.ok && /is a directory/.test(isDir.problems[0]?.message ?? ''));
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });
});
