/** Whatever the text, the loader answers: a config or problems with positions, never an exception. */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { stringify } from 'yaml';
import { parseConfigText } from '../../src/config/load.ts';
import { effectiveConfig } from '../../src/config/effective.ts';
import { formatEffective, formatProblems, formatConfig } from '../../src/config/format.ts';
import type { LoadResult } from '../../src/config/types.ts';
import { BASE, yaml } from './helpers.ts';

function check(text: string): LoadResult {
  const r = parseConfigText(text, 'fuzz.yaml');
  assert.equal(typeof r.ok, 'boolean');
  const problems = r.ok ? r.warnings : r.problems;
  if (!r.ok) assert.ok(r.problems.length > 0, 'a failure has at least one problem');
  const lines = text.split('\n').length + 1;
  for (const p of problems) {
    assert.equal(p.file, 'fuzz.yaml');
    assert.ok(Number.isInteger(p.line) && p.line >= 0 && p.line <= lines, `line ${p.line} of ${lines}`);
    assert.ok(Number.isInteger(p.column) && p.column >= 0, `column ${p.column}`);
    assert.equal(typeof p.path, 'string');
    assert.ok(p.message.length > 0);
  }
  assert.equal(typeof formatProblems(problems), 'string');
  if (r.ok) {
    for (const name of new Set([r.config.node.name, ...r.config.pools.flatMap((p) => p.members)])) {
      const eff = effectiveConfig(r.config, name);
      formatEffective(eff, { json: false });
      formatEffective(eff, { json: true });
    }
    formatConfig(r.config, { json: false });
  }
  return r;
}

const YAMLISH = [
  'node', 'name', 'bind', 'pools', 'members', 'settings', 'tags', 'vars', 'overrides', 'networks', 'relays', 'join', 'api',
  'tokens', 'rpc_port', '127.0.0.1', '::1', 'web1', '7946', '-', ':', ': ', '- ', '\n', '\n  ', '\n    ', ' ', '  ', '[', ']',
  '{', '}', ',', '"', "'", '#', '&a', '*a', '!!str', '!tag', '? ', '---', '...', '|', '>', '\t', 'null', '~', 'true', '1e9',
  '__proto__', 'constructor', '%YAML 1.2', '@', '`', '\r\n', 'é', '\u0000',
];

test('random YAML-ish text never throws', () => {
  fc.assert(
    fc.property(fc.array(fc.constantFrom(...YAMLISH), { maxLength: 60 }), (parts) => {
      check(parts.join(''));
    }),
    { numRuns: 1500 },
  );
});

test('random unicode text never throws', () => {
  fc.assert(fc.property(fc.string({ unit: 'binary', maxLength: 200 }), (s) => void check(s)), { numRuns: 500 });
});

test('random structures serialised as YAML never throw', () => {
  const leaf = fc.oneof(fc.string({ maxLength: 8 }), fc.integer(), fc.double(), fc.boolean(), fc.constant(null), fc.constantFrom('web1', '127.0.0.1', 'lan1', '::1', '[::1]:7946'));
  const key = fc.constantFrom('node', 'name', 'bind', 'advertise', 'pools', 'members', 'settings', 'tags', 'vars', 'overrides', 'networks', 'relays', 'join', 'api', 'tcp', 'tokens', 'role', 'sha256', 'log', 'level', 'web1', 'x');
  const { tree } = fc.letrec((tie) => ({
    tree: fc.oneof({ depthSize: 'small' }, leaf, tie('list'), tie('map')),
    list: fc.array(tie('tree'), { maxLength: 4 }),
    map: fc.dictionary(key, tie('tree'), { maxKeys: 5 }),
  }));
  fc.assert(fc.property(tree, (value) => void check(stringify(value))), { numRuns: 800 });
});

test('a valid file with random edits never throws', () => {
  const base = yaml(...BASE);
  fc.assert(
    fc.property(
      fc.array(fc.tuple(fc.nat({ max: base.length }), fc.nat({ max: 5 }), fc.constantFrom(...YAMLISH)), { minLength: 1, maxLength: 4 }),
      (edits) => {
        let text = base;
        for (const [at, del, ins] of edits) text = text.slice(0, at) + ins + text.slice(at + del);
        check(text);
      },
    ),
    { numRuns: 1500 },
  );
});

test('the unedited base file is valid (sanity check for the test above)', () => {
  assert.ok(check(yaml(...BASE)).ok);
});
