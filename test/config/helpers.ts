/** Shared helpers for the config tests. */
import assert from 'node:assert/strict';
import { parseConfigText, type ParseOptions } from '../../src/config/load.ts';
import type { Config, ConfigProblem } from '../../src/config/types.ts';

export const FILE = '/etc/multiall/multiall.yaml';

/** Joins lines into a YAML text (line numbers in the tests count from the first element = line 1). */
export const yaml = (...lines: string[]): string => lines.join('\n') + '\n';

/** Parses text that must be valid; returns the config and warnings. */
export function ok(text: string, opts?: ParseOptions): { config: Config; warnings: ConfigProblem[] } {
  const r = parseConfigText(text, FILE, opts);
  if (!r.ok) assert.fail(`expected a valid config, got:\n${r.problems.map((p) => `${p.line}:${p.column} ${p.path}: ${p.message}`).join('\n')}`);
  return { config: r.config, warnings: r.warnings };
}

/** Parses text that must be invalid; returns its problems. */
export function bad(text: string, opts?: ParseOptions): ConfigProblem[] {
  const r = parseConfigText(text, FILE, opts);
  if (r.ok) assert.fail('expected problems, the config loaded');
  return r.problems;
}

export interface Expected {
  line: number;
  column: number;
  path: string;
  message: RegExp;
  severity?: 'warning';
}

/** Asserts the problems are exactly these, in this order. */
export function expectProblems(problems: ConfigProblem[], expected: Expected[]): void {
  const got = problems.map((p) => `${p.line}:${p.column} ${p.path} ${p.severity ?? 'error'}: ${p.message}`);
  assert.equal(problems.length, expected.length, `wrong number of problems:\n${got.join('\n')}`);
  expected.forEach((e, i) => {
    const p = problems[i] as ConfigProblem;
    assert.equal(p.file, FILE);
    assert.deepEqual(
      { line: p.line, column: p.column, path: p.path, severity: p.severity ?? 'error' },
      { line: e.line, column: e.column, path: e.path, severity: e.severity ?? 'error' },
      `problem ${i}: ${got[i]}`,
    );
    assert.match(p.message, e.message, `problem ${i}: ${got[i]}`);
  });
}

/** A valid file: the base for the malformed variants (line numbers noted on the right). */
export const BASE = [
  'node:', //                                1
  '  name: web1', //                         2
  '  bind: 127.0.0.1', //                    3
  '  rpc_port: 7950', //                     4
  '  gossip_port: 7946', //                  5
  '  network: lan1', //                      6
  '  data_dir: /var/lib/multiall', //        7
  'api:', //                                 8
  '  tcp: "127.0.0.1:7951"', //              9
  '  tokens:', //                            10
  `    - { name: ci, role: read, sha256: ${'ab'.repeat(32)} }`, // 11
  'join: ["127.0.0.2:7946"]', //             12
  'networks:', //                            13
  '  - name: lan1', //                       14
  '    relays: [web1]', //                   15
  'pools:', //                               16
  '  - name: web', //                        17
  '    members: [web1, web2]', //            18
  '    settings:', //                        19
  '      tags: { role: frontend }', //       20
  '  - name: db', //                         21
  '    members:', //                         22
  '      - db1', //                          23
  '      - web1', //                         24
];

/** BASE with line `n` (1-based) replaced by `text` (several lines allowed). */
export function withLine(n: number, ...text: string[]): string {
  const lines = [...BASE];
  lines.splice(n - 1, 1, ...text);
  return yaml(...lines);
}
