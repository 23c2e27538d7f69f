// The history checker must flag each kind of violation (and accept a clean history).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { checkHistory, claimIntervals } from '../../src/failover/history-checker.ts';
import type { ClaimRecord } from '../../src/failover/election.ts';

const id = (_n: string, t: number): number => t;
const master = (node: string, term: number, at: number, until: number): ClaimRecord => ({ kind: 'master', node, service: 'vip', term, at, until });
const lease = (node: string, term: number, at: number, until: number): ClaimRecord => ({ kind: 'lease', node, service: 'vip', term, at, until });
const demote = (node: string, term: number, at: number): ClaimRecord => ({ kind: 'demote', node, service: 'vip', term, at, reason: 'x' });

function run(records: ClaimRecord[]): string[] {
  const { intervals, violations } = claimIntervals(records, id);
  return checkHistory(intervals, violations).violations.map((v) => v.kind);
}

test('a clean history passes', () => {
  assert.deepEqual(run([master('a', 1, 0, 10), lease('a', 1, 5, 15), demote('a', 1, 12), master('b', 2, 14, 20), master('a', 3, 25, 30)]), []);
});

test('two masters in one term', () => {
  assert.deepEqual(run([master('a', 1, 0, 10), master('b', 1, 20, 30)]), ['two-masters-in-term', 'term-order']);
});

test('overlap in real time, using lease extensions and demotions', () => {
  assert.deepEqual(run([master('a', 1, 0, 10), lease('a', 1, 5, 25), master('b', 2, 20, 30)]), ['overlap']);
  assert.deepEqual(run([master('a', 1, 0, 10), lease('a', 1, 5, 25), demote('a', 1, 19), master('b', 2, 20, 30)]), []);
  // Local clocks mapped to real time: b's clock is 100 ahead.
  const { intervals } = claimIntervals([master('a', 1, 0, 10), master('b', 2, 105, 130)], (n, t) => (n === 'b' ? t - 100 : t));
  assert.deepEqual(checkHistory(intervals).violations.map((v) => v.kind), ['overlap']);
});

test('term order and malformed records', () => {
  assert.deepEqual(run([master('a', 5, 0, 10), master('b', 4, 20, 30)]), ['term-order']);
  assert.deepEqual(run([lease('a', 1, 0, 10)]), ['malformed']);
  assert.deepEqual(run([master('a', 1, 0, 10), demote('a', 1, 3), lease('a', 1, 4, 12)]), ['malformed']);
});
