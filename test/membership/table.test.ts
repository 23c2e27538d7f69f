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

test('table: round-robin, random picks and removal match the Map + array table for the same random sequence', () => {
  // Reference: the previous implementation's algorithm on a plain array.
  const rand1 = lcg(7);
  const rand2 = lcg(7);
  const t = new MemberTable(rand1, new MemberRegistry());
  const list: string[] = [];
  for (let i = 0; i < 300; i++) {
    t.add(row(`m${i}`, 1, i % 7 === 0 ? DEAD : ALIVE));
    const j = Math.floor(rand2() * (list.length + 1));
    if (j === list.length) list.push(`m${i}`);
    else {
      list.push(list[j] as string);
      list[j] = `m${i}`;
    }
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
  // A full pass visits every member once.
  const seen = new Set<string>();
  for (let i = 0; i < list.length; i++) seen.add(t.nextProbeTarget(() => true)?.name ?? '');
  assert.equal(seen.size, list.length);
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
