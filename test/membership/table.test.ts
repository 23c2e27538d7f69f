/**
 * The compact member table (state.ts): handles write through to the table, views of the same
 * member share one version object across tables, names are interned and released, and a table
 * behaves like the simple Map + array it replaced (same picks for the same random sequence).
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { ALIVE, DEAD, LEFT, SUSPECT, MemberRegistry, MemberTable, type NodeState } from '../../src/membership/state.ts';
import { SimCluster } from '../../src/membership/sim.ts';

function lcg(seed: number): () => number {
  let s = seed;
  return () => (s = (s * 16807) % 2147483647) / 2147483647;
}

const row = (name: string, incarnation = 1, state: NodeState['state'] = ALIVE): NodeState => ({
  name, addr: `${name}:7946`, meta: Uint8Array.of(0x80), maint: null, incarnation, state, stateChange: 5,
});

test('table: handles read and write through; add copies; setState tracks live count and change time', () => {
  const reg = new MemberRegistry();
  const t = new MemberTable(lcg(1), reg);
  const plain = row('a');
  const a = t.add(plain);
  plain.incarnation = 99; // the object given to add is a copy source only
  assert.equal(t.get('a')?.incarnation, 1);
  a.incarnation = 7;
  a.meta = Uint8Array.of(1, 2, 3);
  a.maint = 'disk swap';
  a.addr = 'a2:7946';
  const again = t.get('a') as NodeState;
  assert.notEqual(again, a, 'handles are fresh objects');
  assert.deepEqual([again.incarnation, [...again.meta], again.maint, again.addr], [7, [1, 2, 3], 'disk swap', 'a2:7946']);
  assert.equal(t.liveCount, 1);
  t.setState(again, SUSPECT, 10);
  assert.equal(t.liveCount, 1);
  assert.equal(a.stateChange, 10);
  t.setState(a, DEAD, 20);
  assert.equal(t.liveCount, 0);
  assert.equal(again.state, DEAD);
  assert.equal(again.stateChange, 20);
  t.setState(a, DEAD, 30);
  assert.equal(a.stateChange, 20, 'no change, no new change time');
  t.add(row('b', 3, LEFT));
  assert.equal(t.liveCount, 0);
  assert.equal(t.get('b')?.state, LEFT);
  assert.equal(t.get('c'), undefined);
  assert.throws(() => t.add(row('a')), /already/);
});

test('table: views of the same member share a version object; names are released when no table holds them', () => {
  const reg = new MemberRegistry();
  const t1 = new MemberTable(lcg(1), reg);
  const t2 = new MemberTable(lcg(2), reg);
  const meta1 = Uint8Array.of(0x81, 0xa1, 0x76, 1);
  const meta2 = Uint8Array.of(0x81, 0xa1, 0x76, 1); // equal bytes, another buffer (as decoded from another packet)
  const x1 = t1.add({ ...row('x'), meta: meta1 });
  const x2 = t2.add({ ...row('x'), meta: meta2 });
  assert.equal(x2.meta, x1.meta, 'equal meta is stored once');
  x1.incarnation = 2;
  assert.equal(x2.incarnation, 1, 'tables are independent');
  x2.incarnation = 2;
  assert.equal(x2.meta, x1.meta);
  assert.equal(reg.size, 1);
  t1.remove('x');
  assert.equal(t1.get('x'), undefined);
  assert.equal(x1.incarnation, 2, 'a removed entry stays readable (the reaped event reads it)');
  assert.equal(reg.size, 1, 't2 still holds x');
  t2.remove('x');
  assert.equal(reg.size, 0);
  const y = t1.add(row('y')); // reuses x's id
  assert.equal(reg.highWater, 1);
  assert.equal(y.name, 'y');
  assert.equal(t2.get('y'), undefined, 'the reused id is absent from the other table');
  assert.equal(t1.size, 1);
  assert.equal(t2.size, 0);
});

test('table: probe schedule, random picks and removal match a plain array table', () => {
  const t = new MemberTable(lcg(7), new MemberRegistry());
  const list: string[] = [];
  for (let i = 0; i < 300; i++) {
    t.add(row(`m${i}`, 1, i % 7 === 0 ? DEAD : ALIVE));
    list.push(`m${i}`);
  }
  assert.deepEqual(t.all().map((s) => s.name), list);
  for (const gone of ['m5', 'm299', 'm0']) {
    t.remove(gone);
    const i = list.indexOf(gone);
    const last = list.pop() as string;
    if (last !== gone) list[i] = last;
  }
  assert.deepEqual(t.all().map((s) => s.name), list);
  assert.equal(t.liveCount, t.all().filter((s) => s.state === ALIVE).length);
  // M−1 consecutive rounds visit every other member once.
  const seen = new Set<string>();
  for (let r = 1000; r < 1000 + list.length - 1; r++) seen.add(t.probeTarget('m1', r, () => true)?.name ?? '');
  assert.equal(seen.size, list.length - 1);
  assert.ok(!seen.has('m1'));
  const picks = t.randomMembers(5, (s) => s.state === ALIVE);
  assert.equal(new Set(picks.map((p) => p.name)).size, 5);
  assert.ok(picks.every((p) => p.state === ALIVE));
  assert.deepEqual(t.randomMembers(3, () => false), []);
});

test('simulation on the compact table: 200 members converge and all detect a crash', async () => {
  const n = 200;
  const c = new SimCluster({ size: n, seed: 3 });
  await c.startAll();
  c.bootstrapConverged();
  await c.run(3000);
  assert.deepEqual(c.liveViews(), new Array(n).fill(n - 1));
  const m0 = c.members[0];
  const m1 = c.members[1];
  assert.ok(m0 && m1);
  const a = m0.member('n5');
  const b = m1.member('n5');
  assert.deepEqual(a?.meta, b?.meta);
  assert.equal(a?.incarnation, b?.incarnation);
  await c.kill(7);
  await c.run(40_000);
  for (let i = 0; i < n; i++) if (i !== 7) assert.equal(c.members[i]?.member('n7')?.state, 'dead', `member ${i}`);
});

test('probe schedule: in every round each member is probed by exactly one other; rejected targets fall to the next', () => {
  const names = Array.from({ length: 30 }, (_, i) => `n${i}`);
  const reg = new MemberRegistry();
  // Every member's own table, filled in a different order: the schedule depends on names only.
  const tables = names.map((_, i) => {
    const t = new MemberTable(lcg(i + 1), reg);
    for (let j = 0; j < names.length; j++) t.add(row(names[(i + j * 7) % names.length] as string));
    return t;
  });
  for (let r = 0; r < 2 * names.length; r++) {
    const targets = tables.map((t, i) => t.probeTarget(names[i] as string, r, () => true)?.name);
    assert.equal(new Set(targets).size, names.length, `round ${r}: ${targets.join(',')}`);
    targets.forEach((x, i) => assert.notEqual(x, names[i]));
  }
  // A target the filter rejects (dead, unreachable) passes the probe to the next in the ring.
  const t0 = tables[0] as MemberTable;
  const planned = t0.probeTarget('n0', 5, () => true)?.name;
  const next = t0.probeTarget('n0', 6, () => true)?.name;
  assert.equal(t0.probeTarget('n0', 5, (s) => s.name !== planned)?.name, next);
  assert.equal(t0.probeTarget('n0', 5, () => false), undefined);
  assert.equal(t0.probeTarget('n0', -24, () => true)?.name, planned, 'negative rounds count modulo M−1 too');
});
