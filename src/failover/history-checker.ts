/**
 * History checker: proves, for a recorded run, the failover safety properties. Input is what
 * each node claimed (ClaimRecord: became master / extended lease / demoted, in its local clock)
 * plus a mapping from a node's local clock to a common timebase ("real time": the simulation's
 * global time, or the wall clock for agent processes on one host). Reusable with real agent
 * processes: collect each agent's claim records (trace sink → log lines) and pass `toReal`.
 *
 * A node's master interval for a term starts at its `master` record and ends at the earliest of
 * its `demote` record and the end of the lease it last recorded (`until` of the newest
 * master/lease record): a node killed as master stops claiming when its lease runs out.
 *
 * Checked, per service:
 *   1. at most one node is master per term;
 *   2. no two intervals of different nodes overlap in real time (never two masters);
 *   3. masters follow each other in increasing term order;
 *   4. records are well-formed (lease end after start, no record after a demote in a term).
 *
 * Public interface: claimIntervals, checkHistory, MasterInterval, Violation, CheckResult.
 * Depends on: ./election.ts (ClaimRecord type).
 */
import type { ClaimRecord } from './election.ts';

export interface MasterInterval {
  service: string;
  node: string;
  term: number;
  /** Real (common timebase) start, inclusive. */
  start: number;
  /** Real end, exclusive. */
  end: number;
}

export interface Violation {
  kind: 'two-masters-in-term' | 'overlap' | 'term-order' | 'malformed';
  detail: string;
}

export interface CheckResult {
  ok: boolean;
  violations: Violation[];
  intervals: MasterInterval[];
}

/** Builds master intervals (real time) from claim records. */
export function claimIntervals(records: readonly ClaimRecord[], toReal: (node: string, local: number) => number): { intervals: MasterInterval[]; violations: Violation[] } {
  const violations: Violation[] = [];
  const open = new Map<string, { service: string; node: string; term: number; start: number; until: number; demoted: number | null }>();
  for (const r of records) {
    const k = `${r.service}\u0000${r.node}\u0000${r.term}`;
    const cur = open.get(k);
    if (r.kind === 'master') {
      if (cur !== undefined) violations.push({ kind: 'malformed', detail: `${r.node} became master of ${r.service} twice in term ${r.term}` });
      if (r.until <= r.at) violations.push({ kind: 'malformed', detail: `${r.node} term ${r.term}: lease end ${r.until} not after start ${r.at}` });
      open.set(k, { service: r.service, node: r.node, term: r.term, start: r.at, until: r.until, demoted: null });
    } else if (cur === undefined) {
      violations.push({ kind: 'malformed', detail: `${r.kind} record of ${r.node} term ${r.term} without a master record` });
    } else if (r.kind === 'lease') {
      if (cur.demoted !== null) violations.push({ kind: 'malformed', detail: `${r.node} extended its lease in term ${r.term} after demoting` });
      cur.until = Math.max(cur.until, r.until);
    } else {
      cur.demoted ??= r.at;
    }
  }
  const intervals = [...open.values()].map((o) => ({
    service: o.service, node: o.node, term: o.term,
    start: toReal(o.node, o.start),
    end: toReal(o.node, o.demoted === null ? o.until : Math.min(o.demoted, o.until)),
  }));
  return { intervals, violations };
}

/** Checks intervals for the safety properties. */
export function checkHistory(intervals: readonly MasterInterval[], prior: readonly Violation[] = []): CheckResult {
  const violations: Violation[] = [...prior];
  const byService = new Map<string, MasterInterval[]>();
  for (const i of intervals) {
    if (!(i.end >= i.start)) violations.push({ kind: 'malformed', detail: `${i.node} term ${i.term}: interval ends (${i.end}) before it starts (${i.start})` });
    let l = byService.get(i.service);
    if (l === undefined) byService.set(i.service, (l = []));
    l.push(i);
  }
  for (const [service, list] of byService) {
    const byTerm = new Map<number, Set<string>>();
    for (const i of list) {
      let s = byTerm.get(i.term);
      if (s === undefined) byTerm.set(i.term, (s = new Set()));
      s.add(i.node);
    }
    for (const [term, nodes] of byTerm) {
      if (nodes.size > 1) violations.push({ kind: 'two-masters-in-term', detail: `${service}: term ${term} has masters ${[...nodes].sort().join(', ')}` });
    }
    // Empty intervals (demoted at once) claim nothing; the rest must not overlap.
    const real = list.filter((i) => i.end > i.start).sort((a, b) => a.start - b.start || a.term - b.term);
    for (let a = 0; a < real.length; a++) {
      const x = real[a] as MasterInterval;
      for (let b = a + 1; b < real.length; b++) {
        const y = real[b] as MasterInterval;
        if (y.start >= x.end) break; // sorted by start: every later interval starts after x ended
        if (y.node !== x.node) {
          violations.push({ kind: 'overlap', detail: `${service}: ${x.node} (term ${x.term}, ${x.start}–${x.end}) and ${y.node} (term ${y.term}, ${y.start}–${y.end}) were master at the same time` });
        }
      }
      const next = real[a + 1];
      if (next !== undefined && next.term <= x.term && next.node !== x.node) {
        violations.push({ kind: 'term-order', detail: `${service}: ${next.node} (term ${next.term}) became master after ${x.node} (term ${x.term})` });
      }
    }
  }
  return { ok: violations.length === 0, violations, intervals: [...intervals] };
}
