/**
 * Failover with real agent processes: election by priority, kill -9 of the master, a paused
 * (SIGSTOP) master that must never act on a stale lease, planned switchover, and randomized
 * kill/pause/partition trials. Every agent logs its master claims; the history checker proves
 * at most one master per term and never two masters at the same wall-clock time.
 */
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync, existsSync } from 'node:fs';
import { join } from 'node:path';
import { Cluster, waitFor, sleep } from '../../src/harness/cluster.ts';
import { claimIntervals, checkHistory } from '../../src/failover/history-checker.ts';
import type { ClaimRecord } from '../../src/failover/election.ts';

const NODES = ['f1', 'f2', 'f3'];
let c: Cluster;
let actionLog: string;

interface Status { node: string; role: string; master: string | null; term: number; isMaster: boolean }

async function statuses(nodes: string[] = NODES): Promise<Map<string, Status>> {
  const out = new Map<string, Status>();
  for (const n of nodes) {
    const h = c.node(n);
    if (!h.proc || h.proc.exitCode !== null || h.proc.signalCode !== null) continue;
    try {
      const rows = (await c.api(n, 'GET', '/v1/failover', undefined, 2000)) as Status[];
      if (rows[0]) out.set(n, rows[0]);
    } catch {
      // paused or stopping
    }
  }
  return out;
}

/** Waits until every running, unpaused node agrees on one master (and that master says so). */
async function agreedMaster(expect?: string, nodes: string[] = NODES, timeoutMs = 30_000): Promise<{ master: string; term: number }> {
  return waitFor(async () => {
    const st = await statuses(nodes);
    const seen = nodes.map((n) => st.get(n));
    if (seen.some((s) => !s)) return undefined;
    const masters = new Set(seen.map((s) => s?.master));
    const terms = new Set(seen.map((s) => s?.term));
    const m = seen[0]?.master;
    if (masters.size !== 1 || terms.size !== 1 || !m || (expect && m !== expect)) return undefined;
    if (!nodes.includes(m) || !st.get(m)?.isMaster) return undefined;
    return { master: m, term: seen[0]?.term ?? 0 };
  }, `agreement on master${expect ? ` ${expect}` : ''} among ${nodes.join(',')}`, timeoutMs);
}

function actions(): string[] {
  return existsSync(actionLog) ? readFileSync(actionLog, 'utf8').trim().split('\n').filter(Boolean) : [];
}

function claims(): { records: ClaimRecord[]; origin: Map<string, number> } {
  const records: ClaimRecord[] = [];
  const origin = new Map<string, number>();
  for (const n of NODES) {
    for (const l of c.logLines(n)) {
      if (l.msg !== 'failover claim') continue;
      const r = l.claim as ClaimRecord;
      records.push(r);
      // Each restart of a node has its own time origin: key by node + origin.
      origin.set(`${r.node}@${r.at}@${r.kind}@${r.term}`, l.origin as number);
    }
  }
  return { records, origin };
}

function assertSafe(): void {
  const { records, origin } = claims();
  // A node that restarts starts a new process clock; rename per process so terms stay separate.
  const renamed = records.map((r) => ({ ...r, node: `${r.node}#${origin.get(`${r.node}@${r.at}@${r.kind}@${r.term}`)}` }));
  const { intervals, violations } = claimIntervals(renamed, (node, local) => Number(node.split('#')[1]) + local);
  // Intervals of different processes of the same node are still one node: check with real names.
  const res = checkHistory(intervals.map((i) => ({ ...i, node: i.node.split('#')[0] ?? i.node })), violations);
  assert.ok(res.ok, `safety violated:\n${res.violations.map((v) => `${v.kind}: ${v.detail}`).join('\n')}`);
  assert.ok(res.intervals.length > 0, 'no master claims were recorded');
}

before(async () => {
  c = await Cluster.create({
    nodes: NODES,
    pools: [{
      name: 'ha', members: NODES,
      settings: {
        failover: {
          services: [{
            name: 'vip', priority: { f1: 200, f2: 150, f3: 100 }, preempt: 'nopreempt', lease: '2s', heartbeat: '500ms',
            actions: {
              standby_to_master: [{ run: 'echo up %NODE% %TERM% >> ACTIONLOG' }],
              master_to_standby: [{ run: 'echo down %NODE% %TERM% >> ACTIONLOG' }],
              to_fault: [{ run: 'echo fault %NODE% %TERM% >> ACTIONLOG' }],
            },
          }],
        },
      },
    }],
  });
  actionLog = join(c.dir, 'actions.log');
  for (const n of NODES) {
    const h = c.node(n);
    c.writeConfig(n);
    const text = readFileSync(h.configPath, 'utf8').replaceAll('ACTIONLOG', actionLog);
    (await import('node:fs')).writeFileSync(h.configPath, text);
  }
  await c.startAll();
});
after(async () => {
  await c?.destroy();
});

test('the highest-priority healthy member becomes master and runs its actions once', async () => {
  const { master, term } = await agreedMaster('f1');
  assert.equal(master, 'f1');
  await waitFor(() => actions().includes(`up f1 ${term}`), 'standby_to_master action of f1');
  assert.equal(actions().filter((l) => l.startsWith('up ')).length, 1);
  const cli = await c.cli('f2', ['failover', 'status']);
  assert.equal(cli.code, 0, cli.stderr);
  assert.match(cli.stdout, /ha\s+vip\s+standby\s+f1/);
});

test('kill -9 of the master: the next standby is promoted, its actions run once', async () => {
  const before = actions().length;
  await c.kill('f1');
  const { master, term } = await agreedMaster('f2', ['f2', 'f3']);
  await waitFor(() => actions().includes(`up ${master} ${term}`), 'standby_to_master of f2');
  const ups = actions().slice(before).filter((l) => l.startsWith('up '));
  assert.deepEqual(ups, [`up f2 ${term}`]);
  await c.start('f1');
  // nopreempt: f2 stays master although f1 has the higher priority.
  const again = await agreedMaster('f2');
  assert.equal(again.term, term);
});

test('a paused master is replaced, and after SIGCONT demotes without acting as master', async () => {
  const { term: oldTerm } = await agreedMaster('f2');
  c.pause('f2');
  let newMaster: { master: string; term: number };
  try {
    newMaster = await agreedMaster(undefined, ['f1', 'f3']);
    assert.notEqual(newMaster.master, 'f2');
    assert.ok(newMaster.term > oldTerm);
  } finally {
    c.resume('f2');
  }
  await waitFor(async () => (await statuses()).get('f2')?.master === newMaster.master, 'f2 follows the new master');
  // f2 never ran a master action for a term after it was paused.
  assert.ok(!actions().some((l) => l.startsWith('up f2 ') && Number(l.split(' ')[2]) > oldTerm));
  assertSafe();
});

test('planned switchover runs master_to_standby on the old master before standby_to_master on the new one', async () => {
  const { master } = await agreedMaster();
  const target = NODES.find((n) => n !== master) ?? 'f3';
  const before = actions().length;
  const r = await c.cli(target, ['failover', 'switch', 'vip', '--to', target]);
  assert.equal(r.code, 0, r.stdout + r.stderr);
  const { term } = await agreedMaster(target);
  await waitFor(() => actions().includes(`up ${target} ${term}`), 'new master action');
  const seq = actions().slice(before);
  const down = seq.findIndex((l) => l.startsWith(`down ${master} `));
  const up = seq.indexOf(`up ${target} ${term}`);
  assert.ok(down >= 0 && down < up, `order was: ${seq.join(' | ')}`);
});

test('randomized kill / pause / partition trials never produce two masters', async () => {
  let seed = 12345;
  const rnd = () => ((seed = (seed * 1103515245 + 12345) % 2 ** 31) / 2 ** 31);
  const trials = Number(process.env.MULTIALL_FAILOVER_TRIALS ?? 4);
  for (let t = 0; t < trials; t++) {
    const victim = NODES[Math.floor(rnd() * NODES.length)] ?? 'f1';
    const fault = Math.floor(rnd() * (Cluster.canPartition() ? 3 : 2));
    if (fault === 0) {
      await c.kill(victim);
      await sleep(1500 + rnd() * 2500);
      await c.start(victim);
    } else if (fault === 1) {
      c.pause(victim);
      await sleep(1500 + rnd() * 3000);
      c.resume(victim);
    } else {
      c.partition([victim], NODES.filter((n) => n !== victim));
      await sleep(2000 + rnd() * 3000);
      c.heal();
    }
    await agreedMaster(undefined, NODES, 40_000);
  }
  assertSafe();
});
