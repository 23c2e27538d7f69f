/**
 * Failover benchmark: time from kill -9 of the master to the completion of the new master's
 * promotion action, for our agents (src/harness/cluster.ts, real processes on loopback) and for
 * keepalived/VRRP in network namespaces; plus false failovers while one agent is CPU-starved.
 *
 *   node bench/failover/compare.ts --trials 5 [--starved-minutes 10] [--skip-keepalived]
 *        [--rows default,fastgossip,fast] [--skip-starved]
 *
 * 1. Ours, row `default`: 3 agents f1/f2/f3, priorities 200/150/100 (as the keepalived side),
 *    every failover and gossip setting at its default (lease 3s, heartbeat 1s, preempt, gossip
 *    profile `lan`). The service's standby_to_master action appends `date +%s%N` to a file. Per
 *    trial: stable master, kill -9 it, sample = action timestamp of the new master − kill instant.
 *    Then restart the victim, wait until it is master again (preempt) and stable, repeat.
 *    Extra rows (documented knobs, NOT the defaults): `fastgossip` = failover defaults with the
 *    harness' FAST_GOSSIP timers; `fast` = lease 2s / heartbeat 500ms + FAST_GOSSIP (the values of
 *    test/harness/failover.test.ts).
 * 2. CPU starvation (default row only): with a stable master, pin one agent (a standby, then the
 *    master) to CPU 1 and run `stress-ng --cpu 4` at nice -5 pinned to the same CPU for
 *    --starved-minutes each. False failover = any new master claim (from the agents' claim logs)
 *    while nobody was killed.
 * 3. keepalived (bench/failover/keepalived.ts): 3 instances, priorities 200/150/100, advert_int 1s,
 *    notify_master appends a timestamp; kill -9 of the master's process group; same sampling.
 * Split brain: the history checker (src/failover/history-checker.ts) over all master claims of
 * every run; for keepalived, the VIP must be held by at most one namespace at each check.
 * Last line of output is JSON.
 */
import { benchArgs, numberArg, usageError } from '../args.ts';
import { spawn, execFileSync, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync, readFileSync, existsSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Cluster, FAST_GOSSIP, sleep, waitFor } from '../../src/harness/cluster.ts';
import { claimIntervals, checkHistory } from '../../src/failover/history-checker.ts';
import type { ClaimRecord } from '../../src/failover/election.ts';
import { KeepalivedCluster } from './keepalived.ts';
import { median } from '../stats.ts';

const USAGE = 'node bench/failover/compare.ts [--trials 5] [--starved-minutes 10] [--skip-keepalived] [--skip-starved] [--rows default,fastgossip,fast]';
const { values: a } = benchArgs({
  options: {
    trials: { type: 'string', default: '5' },
    'starved-minutes': { type: 'string', default: '10' },
    'skip-keepalived': { type: 'boolean', default: false },
    'skip-starved': { type: 'boolean', default: false },
    rows: { type: 'string', default: 'default,fastgossip,fast' },
  },
}, USAGE);
const TRIALS = numberArg('--trials', a.trials, USAGE);
const STARVED_MS = numberArg('--starved-minutes', a['starved-minutes'], USAGE, { fraction: true }) * 60_000;
const ROWS = (a.rows ?? 'default').split(',').filter(Boolean);
const NODES = ['f1', 'f2', 'f3'];
const PRIORITIES = { f1: 200, f2: 150, f3: 100 };

// ------------------------------------------------------------------------------------------
// Cleanup on every exit path (errors, Ctrl-C).

const cleanups: (() => Promise<void> | void)[] = [];
let cleaning = false;
async function cleanupAll(): Promise<void> {
  if (cleaning) return;
  cleaning = true;
  for (const f of cleanups.splice(0).reverse()) {
    try {
      await f();
    } catch (err) {
      console.error('cleanup:', (err as Error).message);
    }
  }
}
for (const sig of ['SIGINT', 'SIGTERM', 'SIGHUP'] as const) {
  process.on(sig, () => {
    console.error(`\n${sig}: cleaning up`);
    void cleanupAll().then(() => process.exit(130));
  });
}

const log = (msg: string): void => console.log(`[${new Date().toISOString().slice(11, 19)}] ${msg}`);

// ------------------------------------------------------------------------------------------
// Ours.

interface RowConfig { name: string; gossip: Record<string, unknown>; lease?: string; heartbeat?: string; label: string }
const ROW_CONFIGS: Record<string, RowConfig> = {
  default: { name: 'default', gossip: { profile: 'lan' }, label: 'defaults: lease 3s, heartbeat 1s, gossip lan' },
  fastgossip: { name: 'fastgossip', gossip: FAST_GOSSIP, label: 'lease 3s, heartbeat 1s, gossip FAST_GOSSIP (probe 200ms, suspicion_mult 3)' },
  fast: { name: 'fast', gossip: FAST_GOSSIP, lease: '2s', heartbeat: '500ms', label: 'lease 2s, heartbeat 500ms, gossip FAST_GOSSIP' },
};
for (const r of ROWS) if (ROW_CONFIGS[r] === undefined) usageError(`unknown row ${JSON.stringify(r)} in --rows (known: ${Object.keys(ROW_CONFIGS).join(', ')})`, USAGE);

interface Status { node: string; role: string; master: string | null; term: number; isMaster: boolean }
interface Promotion { atMs: number; node: string; term: number }

class Ours {
  readonly c: Cluster;
  readonly actionLog: string;
  readonly tmp: string;

  private constructor(c: Cluster, tmp: string, actionLog: string) {
    this.c = c;
    this.tmp = tmp;
    this.actionLog = actionLog;
  }

  static async create(row: RowConfig): Promise<Ours> {
    const tmp = mkdtempSync(join(tmpdir(), 'multiall-fobench-'));
    const actionLog = join(tmp, 'promotions.log');
    const c = await Cluster.create({
      nodes: NODES,
      gossip: row.gossip,
      pools: [{
        name: 'ha', members: NODES,
        settings: {
          failover: {
            services: [{
              name: 'vip', priority: PRIORITIES,
              ...(row.lease ? { lease: row.lease } : {}), ...(row.heartbeat ? { heartbeat: row.heartbeat } : {}),
              actions: { standby_to_master: [{ run: `echo "$(date +%%s%%N) %NODE% %TERM%" >> ${actionLog}` }] },
            }],
          },
        },
      }],
    });
    const o = new Ours(c, tmp, actionLog);
    cleanups.push(() => o.destroy());
    await c.startAll();
    return o;
  }

  async destroy(): Promise<void> {
    await this.c.destroy();
    rmSync(this.tmp, { recursive: true, force: true });
  }

  async statuses(timeoutMs = 2000): Promise<Map<string, Status>> {
    const out = new Map<string, Status>();
    await Promise.all(NODES.map(async (n) => {
      const h = this.c.node(n);
      if (!h.proc || h.proc.exitCode !== null || h.proc.signalCode !== null) return;
      try {
        const rows = (await this.c.api(n, 'GET', '/v1/failover', undefined, timeoutMs)) as Status[];
        if (rows[0]) out.set(n, rows[0]);
      } catch {
        // stopping or starved
      }
    }));
    return out;
  }

  /** All running nodes agree on one master and term, and that master says so. */
  async agreed(expect?: string, timeoutMs = 60_000): Promise<{ master: string; term: number }> {
    return waitFor(async () => {
      const st = await this.statuses();
      const running = NODES.filter((n) => this.c.node(n).proc?.exitCode === null && this.c.node(n).proc?.signalCode === null);
      const seen = running.map((n) => st.get(n));
      if (seen.length === 0 || seen.some((s) => !s)) return undefined;
      const m = seen[0]?.master;
      if (new Set(seen.map((s) => s?.master)).size !== 1 || new Set(seen.map((s) => s?.term)).size !== 1) return undefined;
      if (!m || (expect && m !== expect) || !st.get(m)?.isMaster) return undefined;
      return { master: m, term: seen[0]?.term ?? 0 };
    }, `agreement on a master${expect ? ` (${expect})` : ''}`, timeoutMs, 200);
  }

  /** Agreement that holds (same master and term) for `holdMs`. */
  async stable(expect?: string, holdMs = 3000): Promise<{ master: string; term: number }> {
    for (;;) {
      const first = await this.agreed(expect);
      await sleep(holdMs);
      const again = await this.agreed(expect);
      if (again.master === first.master && again.term === first.term) return again;
    }
  }

  promotions(): Promotion[] {
    if (!existsSync(this.actionLog)) return [];
    return readFileSync(this.actionLog, 'utf8').trim().split('\n').filter(Boolean).map((l) => {
      const [ns, node, term] = l.split(' ');
      return { atMs: Number(BigInt(ns ?? '0') / 1000n) / 1000, node: node ?? '', term: Number(term) };
    });
  }

  /** Master claims of every process of every node, with wall-clock times. */
  claims(): { wallAt: number; r: ClaimRecord; proc: string }[] {
    const out: { wallAt: number; r: ClaimRecord; proc: string }[] = [];
    for (const n of NODES) {
      for (const l of this.c.logLines(n)) {
        if (l.msg !== 'failover claim') continue;
        const r = l.claim as ClaimRecord;
        const origin = l.origin as number;
        out.push({ wallAt: origin + r.at, r, proc: `${r.node}#${origin}` });
      }
    }
    return out;
  }

  /** History checker over all claims so far: violations (two masters in a term or at once). */
  safety(): { ok: boolean; violations: string[]; masterIntervals: number } {
    const all = this.claims();
    const recs = all.map((x) => ({ ...x.r, node: x.proc }));
    const { intervals, violations } = claimIntervals(recs, (node, local) => Number(node.split('#')[1]) + local);
    const res = checkHistory(intervals.map((i) => ({ ...i, node: i.node.split('#')[0] ?? i.node })), violations);
    return { ok: res.ok, violations: res.violations.map((v) => `${v.kind}: ${v.detail}`), masterIntervals: res.intervals.length };
  }
}

async function oursTrials(o: Ours, trials: number): Promise<number[]> {
  const samples: number[] = [];
  for (let t = 0; t < trials; t++) {
    const { master, term } = await o.stable();
    const before = o.promotions().length;
    const t0 = Date.now();
    await o.c.kill(master);
    const p = await waitFor(() => o.promotions().slice(before).find((x) => x.node !== master && x.term > term), 'promotion action of a new master', 90_000, 20);
    const ms = p.atMs - t0;
    samples.push(Math.round(ms));
    const ups = o.promotions().slice(before);
    log(`  trial ${t + 1}: killed ${master} (term ${term}) → ${p.node} promoted in term ${p.term} after ${Math.round(ms)} ms${ups.length > 1 ? ` (promotions: ${ups.map((u) => `${u.node}@${u.term}`).join(',')})` : ''}`);
    const r0 = Date.now();
    await o.c.start(master);
    // Preempt (default): the restarted f1 (priority 200) takes the role back by switchover.
    if (t + 1 < trials) {
      const st = await o.stable('f1').catch(() => o.stable());
      log(`    ${master} restarted; stable master ${st.master} (term ${st.term}) after ${((Date.now() - r0) / 1000).toFixed(1)} s`);
    }
  }
  // With preempt (the default) the restarted f1 takes the role back: wait for that, so the
  // starvation runs that follow do not count this planned takeover as a false failover.
  await o.stable('f1');
  return samples;
}

/** CPU starvation: pin `target` to CPU 1 and run stress-ng at nice -5 on the same CPU. */
async function starve(o: Ours, target: 'standby' | 'master', durationMs: number): Promise<Record<string, unknown>> {
  const { master, term } = await o.stable('f1');
  const victim = target === 'master' ? master : (NODES.find((n) => n !== master) ?? 'f2');
  const pid = o.c.node(victim).proc?.pid;
  if (!pid) throw new Error(`no pid for ${victim}`);
  const cpuTicks = (): number => {
    const f = readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1]?.split(' ') ?? [];
    return Number(f[11]) + Number(f[12]);
  };
  const api = async (): Promise<number> => {
    const t = performance.now();
    try {
      await o.c.api(victim, 'GET', '/v1/failover', undefined, 10_000);
      return performance.now() - t;
    } catch {
      return Infinity;
    }
  };
  const b0 = cpuTicks();
  const baseLat: number[] = [];
  for (let i = 0; i < 5; i++) { baseLat.push(await api()); await sleep(2000); }
  const baseCpu = ((cpuTicks() - b0) / 100) / 10 * 100;
  execFileSync('taskset', ['-a', '-p', '-c', '1', String(pid)], { stdio: 'ignore' });
  const stress: ChildProcess = spawn('nice', ['-n', '-5', 'taskset', '-c', '1', 'stress-ng', '--cpu', '4', '--cpu-load', '100', '--timeout', `${Math.ceil(durationMs / 1000) + 5}s`, '--quiet'], {
    detached: true, stdio: 'ignore',
  });
  const killStress = (): void => {
    try {
      if (stress.pid) process.kill(-stress.pid, 'SIGKILL');
    } catch {
      // already gone
    }
  };
  cleanups.push(killStress);
  const startWall = Date.now();
  const ticks0 = cpuTicks();
  let maxTerm = term;
  let apiFailures = 0;
  let polls = 0;
  const lat: number[] = [];
  const masters = new Set<string>([master]);
  try {
    while (Date.now() - startWall < durationMs) {
      await sleep(2000);
      polls++;
      lat.push(await api());
      const st = await o.statuses(3000);
      if (!st.has(victim)) apiFailures++;
      for (const s of st.values()) {
        maxTerm = Math.max(maxTerm, s.term);
        if (s.master) masters.add(s.master);
      }
    }
  } finally {
    killStress();
  }
  const endWall = Date.now();
  const cpuPct = ((cpuTicks() - ticks0) / 100) / ((endWall - startWall) / 1000) * 100;
  try {
    execFileSync('taskset', ['-a', '-p', '-c', '0-1', String(pid)], { stdio: 'ignore' });
  } catch {
    // the agent died: reported below through the stable() check
  }
  await sleep(3000);
  const after = await o.stable();
  maxTerm = Math.max(maxTerm, after.term);
  const newMasters = o.claims().filter((x) => x.r.kind === 'master' && x.wallAt >= startWall && x.wallAt <= Date.now());
  const res = {
    loaded: `${victim} (${target})`,
    minutes: +(durationMs / 60_000).toFixed(2),
    false_failovers: newMasters.length,
    new_master_claims: newMasters.map((x) => `${x.r.node}@${x.r.term}`),
    term_increments: maxTerm - term,
    victim_cpu_pct: +cpuPct.toFixed(1),
    victim_cpu_pct_before: +baseCpu.toFixed(1),
    victim_api_ms: { before_median: Math.round(median(baseLat)), median: Math.round(median(lat)), max: Math.round(Math.max(...lat)) },
    victim_api_timeouts: `${apiFailures}/${polls}`,
    masters_seen: [...masters],
  };
  log(`  starved ${target} ${victim}: ${JSON.stringify(res)}`);
  return res;
}

// ------------------------------------------------------------------------------------------
// keepalived.

async function keepalivedTrials(trials: number): Promise<{ samples: number[]; splitBrainChecks: number; splitBrainSeen: number }> {
  const k = KeepalivedCluster.create([200, 150, 100]);
  cleanups.push(() => k.destroy());
  let checks = 0;
  let seen = 0;
  const check = (): string[] => {
    const h = k.holders();
    checks++;
    if (h.length > 1) seen++;
    return h;
  };
  try {
    for (let i = 0; i < 3; i++) k.start(i);
    const samples: number[] = [];
    for (let t = 0; t < trials; t++) {
      // Stable: k1 (priority 200) holds the VIP alone for 3 s.
      await waitFor(() => { const h = check(); return h.length === 1 && h[0] === 'k1'; }, 'k1 holding the VIP', 60_000, 200);
      await sleep(3000);
      const h = check();
      if (h.length !== 1 || h[0] !== 'k1') { t--; continue; }
      const before = k.notifications().length;
      const t0 = Date.now();
      await k.kill9(0);
      const n = await waitFor(() => {
        check();
        return k.notifications().slice(before).find((x) => x.name !== 'k1');
      }, 'notify_master of a new keepalived master', 60_000, 20);
      samples.push(Math.round(n.atMs - t0));
      log(`  trial ${t + 1}: killed k1 → ${n.name} notify_master after ${Math.round(n.atMs - t0)} ms`);
      await sleep(1000);
      check();
      k.start(0);
    }
    await waitFor(() => { const h = check(); return h.length === 1 && h[0] === 'k1'; }, 'k1 back', 60_000, 200);
    return { samples, splitBrainChecks: checks, splitBrainSeen: seen };
  } finally {
    k.destroy();
  }
}

// ------------------------------------------------------------------------------------------

function loadNote(): string {
  const others = execFileSync('ps', ['-eo', 'pid,pcpu,args', '--sort=-pcpu'], { encoding: 'utf8' })
    .split('\n').slice(1, 6).map((l) => l.trim()).filter(Boolean);
  return `loadavg ${readFileSync('/proc/loadavg', 'utf8').split(' ').slice(0, 3).join(' ')}; top: ${others.map((l) => l.slice(0, 90)).join(' | ')}`;
}

async function main(): Promise<void> {
  log(`failover bench: trials=${TRIALS} rows=${ROWS.join(',')} starved=${a['skip-starved'] ? 'skipped' : `${STARVED_MS / 60_000} min each`} keepalived=${a['skip-keepalived'] ? 'skipped' : 'yes'}`);
  log(`machine: ${loadNote()}`);
  const rows: Record<string, { label: string; median_ms: number; samples_ms: number[]; safety: ReturnType<Ours['safety']> }> = {};
  const starved: Record<string, unknown>[] = [];
  for (const r of ROWS) {
    const cfg = ROW_CONFIGS[r]!;
    log(`ours [${cfg.name}] ${cfg.label}`);
    const o = await Ours.create(cfg);
    const samples = await oursTrials(o, TRIALS);
    if (cfg.name === 'default' && !a['skip-starved'] && STARVED_MS > 0) {
      log(`CPU starvation, ${STARVED_MS / 60_000} min per variant (load: ${loadNote()})`);
      starved.push(await starve(o, 'standby', STARVED_MS));
      starved.push(await starve(o, 'master', STARVED_MS));
    }
    const safety = o.safety();
    rows[r] = { label: cfg.label, median_ms: median(samples), samples_ms: samples, safety };
    log(`ours [${cfg.name}] median ${median(samples)} ms, samples ${samples.join(', ')}; history checker: ${safety.ok ? 'ok' : 'VIOLATIONS'} (${safety.masterIntervals} master intervals)${safety.ok ? '' : `\n${safety.violations.join('\n')}`}`);
    await o.destroy();
  }
  let ka: Awaited<ReturnType<typeof keepalivedTrials>> | null = null;
  let kaWhy = 'skipped (--skip-keepalived)';
  if (!a['skip-keepalived']) {
    const why = KeepalivedCluster.feasible();
    if (why === null) {
      log('keepalived: 3 instances in network namespaces, priorities 200/150/100, advert_int 1s');
      ka = await keepalivedTrials(TRIALS);
      log(`keepalived median ${median(ka.samples)} ms, samples ${ka.samples.join(', ')}; VIP on >1 namespace in ${ka.splitBrainSeen}/${ka.splitBrainChecks} checks`);
    } else {
      kaWhy = why;
      log(`keepalived not measured: ${why}; documented: 3 × advert_int + skew_time = 3 + (256−150)/256 ≈ 3.41 s`);
    }
  }
  const d = rows.default ?? Object.values(rows)[0];
  const out = {
    bench: 'failover',
    trials: TRIALS,
    median_ms: d?.median_ms ?? null,
    samples_ms: d?.samples_ms ?? [],
    false_failovers: a['skip-starved'] ? null : starved.reduce((s, x) => s + Number(x.false_failovers), 0),
    split_brain: Object.values(rows).reduce((s, r) => s + r.safety.violations.length, 0),
    keepalived_ms: ka ? median(ka.samples) : 3414,
    keepalived_measured: ka !== null,
    ...(ka ? { keepalived_samples_ms: ka.samples, keepalived_vip_double: ka.splitBrainSeen } : { keepalived_note: kaWhy }),
    rows: Object.fromEntries(Object.entries(rows).map(([k, v]) => [k, { median_ms: v.median_ms, samples_ms: v.samples_ms }])),
    starved,
  };
  console.log(JSON.stringify(out));
}

try {
  await main();
} finally {
  await cleanupAll();
}
