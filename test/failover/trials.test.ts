// Randomized partition / kill / pause / drop / health trials over the simulation, each checked
// by the history checker (at most one master per term, never two masters at the same real time)
// and by the per-event isMasterNow() check. A control run with clock drift beyond the assumed
// bound shows the checks do catch two masters when the assumption is broken.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Sim, prng, service } from './sim.ts';
import { MAX_DRIFT_RATE } from '../../src/failover/lease.ts';
import type { PreemptPolicy } from '../../src/failover/types.ts';

const TRIAL_MS = 200_000;

interface TrialResult {
  violations: string[];
  checker: string[];
  terms: number;
  finalMasters: string[];
}

async function trial(seed: number, drift: number, settle = true): Promise<TrialResult> {
  const pick = prng(seed * 7919 + 1);
  const shape = seed % 3;
  const members = shape === 0 ? ['n1', 'n2'] : shape === 1 ? ['n1', 'n2', 'n3'] : ['n1', 'n2', 'n3', 'n4', 'n5'];
  const extra = shape === 0 ? ['w'] : [];
  const priority: Record<string, number> = {};
  for (const m of members) priority[m] = 50 + Math.floor(pick() * 3) * 50;
  const modes: PreemptPolicy[] = [{ mode: 'preempt' }, { mode: 'nopreempt' }, { mode: 'after', afterMs: 10_000 }];
  const svc = service({ voters: [...members, ...extra], witness: extra[0] ?? null, priority, preempt: modes[seed % 3] as PreemptPolicy });
  const sim = new Sim({ seed, members, extra, services: [svc], drift });
  const all = [...members, ...extra];
  for (const n of all) sim.start(n);
  const later: { at: number; fn: () => void }[] = [];
  const any = <T>(xs: T[]): T => xs[Math.floor(pick() * xs.length)] as T;
  while (sim.now < TRIAL_MS) {
    const next = sim.now + 2000 + pick() * 12_000;
    later.sort((a, b) => a.at - b.at);
    while (later.length > 0 && (later[0] as { at: number }).at <= next) {
      const l = later.shift() as { at: number; fn: () => void };
      await sim.runUntil(l.at);
      l.fn();
    }
    await sim.runUntil(next);
    const op = Math.floor(pick() * 8);
    const running = all.filter((n) => sim.node(n).running);
    switch (op) {
      case 0: { // random two-way split
        const a = all.filter(() => pick() < 0.5);
        sim.partition(a, all.filter((n) => !a.includes(n)));
        break;
      }
      case 1: sim.heal(); break;
      case 2: if (running.length > 0) {
        const n = any(running);
        sim.kill(n);
        later.push({ at: sim.now + 3000 + pick() * 25_000, fn: () => sim.start(n) });
      } break;
      case 3: if (running.length > 0) {
        const n = any(running);
        sim.pause(n);
        later.push({ at: sim.now + 500 + pick() * 12_000, fn: () => sim.resume(n) });
      } break;
      case 4: sim.dropRate = pick() < 0.5 ? 0 : pick() * 0.4; break;
      case 5: { const n = any(members); sim.node(n).healthy = !sim.node(n).healthy; break; }
      case 6: { const n = any(members); sim.node(n).maintenance = pick() < 0.3; break; }
      case 7: sim.delay = pick() < 0.5 ? [1, 20] : [1, 100 + pick() * 1400]; break;
    }
  }
  for (const l of later) l.fn();
  let finalMasters: string[] = [];
  if (settle) {
    sim.heal();
    sim.dropRate = 0;
    sim.delay = [1, 20];
    for (const n of all) {
      const s = sim.node(n);
      if (!s.running) sim.start(n);
      if (s.paused) sim.resume(n);
      s.healthy = true;
      s.maintenance = false;
    }
    await sim.run(40_000);
    finalMasters = sim.masters('vip');
  }
  const r = sim.check();
  const terms = new Set(r.intervals.map((i) => i.term)).size;
  return { violations: sim.violations, checker: r.violations.map((v) => `${v.kind}: ${v.detail}`), terms, finalMasters };
}

test('50 randomized trials: never two masters, one per term, a master after healing', async () => {
  const drift = MAX_DRIFT_RATE * 0.9;
  let elections = 0;
  for (let seed = 1; seed <= 50; seed++) {
    const r = await trial(seed, drift);
    assert.deepEqual(r.violations, [], `seed ${seed}: isMasterNow overlap`);
    assert.deepEqual(r.checker, [], `seed ${seed}: history checker`);
    assert.equal(r.finalMasters.length, 1, `seed ${seed}: exactly one master once everything healed (got ${r.finalMasters.join(',') || 'none'})`);
    elections += r.terms;
  }
  assert.ok(elections > 50 * 3, `the trials exercised many failovers (${elections} master terms)`);
});

test('control: with clock drift far beyond the bound, the checks catch two masters', async () => {
  let caught = 0;
  for (let seed = 1; seed <= 12 && caught === 0; seed++) {
    const r = await trial(seed, 0.45, false);
    if (r.violations.length > 0 && r.checker.length > 0) caught++;
  }
  assert.ok(caught > 0, 'expected at least one violating history when the drift assumption is broken');
});
