/**
 * Membership benchmark: our real agents (src/harness/cluster.ts) side by side with HashiCorp serf
 * (/usr/bin/serf) on loopback, same gossip profile on both sides.
 *
 *   node bench/membership/compare.ts --n 30 --trials 5 [--profile lan|local] [--skip-serf]
 *        [--starved-seconds 60] [--stop-ms 150] [--period-ms 300] [--bytes-seconds 20]
 *        [--grace-seconds 15] [--sim] [--sim-sizes 100,1000,10000] [--sim-duration 30]
 *
 * Phases (both clusters run at the same time and get the same treatment):
 * 1. steady state: bytes per member per second from iptables counters (same rules for both,
 *    see accounting.ts) and our own gossip byte gauges; CPU per agent from /proc.
 * 2. detection: per trial kill -9 one member (a different one each trial) in both clusters at the
 *    same instant; time until EVERY survivor declared it failed. Ours: the `at` stamp of the
 *    `member.failed` event on each survivor's /v1/events stream. Serf: arrival time of each
 *    agent's `serf: EventMemberFailed` log line (also the member-failed handler stamps, which
 *    include the serf agent's event coalescing). Then restart the victim and wait for N alive
 *    everywhere.
 * 3. CPU starvation: SIGSTOP/SIGCONT duty cycle on one member of each cluster; failed
 *    declarations about any OTHER member (by anyone) are false positives.
 * 4. --sim: bench/membership/sim.ts at the given sizes (virtual clock, same protocol code).
 * Last line of output is JSON. Needs root + iptables for the byte accounting (skipped otherwise).
 */
import { benchArgs, numberArg, usageError } from '../args.ts';
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { randomInt } from 'node:crypto';
import { Cluster, sleep } from '../../src/harness/cluster.ts';
import { SerfCluster, type ObservedEvent } from './serf-cluster.ts';
import { IptablesAccounting, cpuSeconds, rssMiB } from './accounting.ts';

const USAGE = 'node bench/membership/compare.ts --n 30 --trials 5 [--profile lan|local] [--skip-serf] [--starved-seconds 60] [--stop-ms 150] [--period-ms 300] [--bytes-seconds 20] [--grace-seconds 15] [--detect-timeout 120] [--sim] [--sim-sizes 100,1000,10000] [--sim-duration 30]';
const { values: a } = benchArgs({
  options: {
    n: { type: 'string', default: '10' },
    trials: { type: 'string', default: '5' },
    profile: { type: 'string', default: 'lan' },
    'skip-serf': { type: 'boolean', default: false },
    'starved-seconds': { type: 'string', default: '60' },
    'stop-ms': { type: 'string', default: '150' },
    'period-ms': { type: 'string', default: '300' },
    'bytes-seconds': { type: 'string', default: '20' },
    'grace-seconds': { type: 'string', default: '15' },
    'detect-timeout': { type: 'string', default: '120' },
    sim: { type: 'boolean', default: false },
    'sim-sizes': { type: 'string', default: '100,1000,10000' },
    'sim-duration': { type: 'string', default: '30' },
  },
}, USAGE);

const N = numberArg('--n', a.n, USAGE, { min: 3 });
const TRIALS = numberArg('--trials', a.trials, USAGE);
const PROFILE = a.profile;
const SKIP_SERF = a['skip-serf'];
const STARVED_S = numberArg('--starved-seconds', a['starved-seconds'], USAGE, { fraction: true });
const STOP_MS = numberArg('--stop-ms', a['stop-ms'], USAGE, { min: 1 });
const PERIOD_MS = numberArg('--period-ms', a['period-ms'], USAGE, { min: 2 });
const BYTES_S = numberArg('--bytes-seconds', a['bytes-seconds'], USAGE, { fraction: true });
const GRACE_S = numberArg('--grace-seconds', a['grace-seconds'], USAGE, { fraction: true });
const DETECT_TIMEOUT = numberArg('--detect-timeout', a['detect-timeout'], USAGE, { min: 1, fraction: true }) * 1000;
if (PROFILE !== 'lan' && PROFILE !== 'local') usageError('--profile must be lan or local', USAGE);
if (PERIOD_MS <= STOP_MS) usageError('--stop-ms must be below --period-ms', USAGE);
for (const size of a['sim-sizes'].split(',')) numberArg('--sim-sizes entry', size, USAGE, { min: 3 });
numberArg('--sim-duration', a['sim-duration'], USAGE, { min: 1, fraction: true });

const names = Array.from({ length: N }, (_, i) => `n${i + 1}`);
const say = (s: string): void => console.log(s);
const t0 = Date.now();
const stamp = (): string => `[${((Date.now() - t0) / 1000).toFixed(0).padStart(4)} s]`;
const log = (s: string): void => console.error(`${stamp()} ${s}`);

// ---------------------------------------------------------------- state + cleanup

let ours: Cluster | undefined;
let serf: SerfCluster | undefined;
let serfDir: string | undefined;
const acct = new IptablesAccounting();
const streams = new Map<string, () => void>();
const oursEvents: (ObservedEvent & { by?: string })[] = [];
let simChild: ChildProcess | undefined;
let cleaned = false;

async function cleanup(): Promise<void> {
  if (cleaned) return;
  cleaned = true;
  for (const stop of streams.values()) stop();
  streams.clear();
  simChild?.kill('SIGKILL');
  acct.cleanup();
  await Promise.allSettled([ours?.destroy(), serf?.destroy()]);
  if (serfDir) rmSync(serfDir, { recursive: true, force: true });
}

for (const sig of ['SIGINT', 'SIGTERM', 'SIGHUP'] as const) {
  process.once(sig, () => {
    log(`${sig}: cleaning up`);
    simChild?.kill('SIGKILL');
    void cleanup().finally(() => process.exit(130));
  });
}

// ---------------------------------------------------------------- our agents

const KIND: Record<string, ObservedEvent['kind'] | undefined> = {
  'member.failed': 'failed', 'member.suspect': 'suspect', 'member.alive': 'alive', 'member.joined': 'joined', 'member.left': 'left',
};

/** Follows one agent's event stream; member events land in oursEvents with the agent's own `at`. */
function follow(name: string): void {
  if (!ours) return;
  streams.get(name)?.();
  const { stop } = ours.events(name, (ev) => {
    const kind = KIND[ev.kind];
    const d = ev.data as { name?: string; by?: string };
    if (kind && d.name) oursEvents.push({ observer: name, kind, name: d.name, at: ev.at, by: d.by });
  });
  streams.set(name, stop);
}

async function oursView(name: string): Promise<Map<string, string>> {
  const rows = (await ours!.api(name, 'GET', '/v1/members')) as { name: string; status: string }[];
  return new Map(rows.map((r) => [r.name, r.status]));
}

function oursPid(name: string): number | undefined {
  const p = ours?.node(name).proc;
  return p && p.exitCode === null && p.signalCode === null ? p.pid : undefined;
}

async function metric(name: string, metricName: string): Promise<number> {
  const text = (await ours!.api(name, 'GET', '/metrics')) as string;
  const m = new RegExp(`^${metricName}(?:\\{[^}]*\\})? (\\S+)$`, 'm').exec(text);
  return m ? Number(m[1]) : NaN;
}

// ---------------------------------------------------------------- helpers

async function allSeeAllAlive(view: (n: string) => Promise<Map<string, string>>): Promise<boolean> {
  for (let i = 0; i < names.length; i += 10) {
    const views = await Promise.all(names.slice(i, i + 10).map((n) => view(n).catch(() => new Map<string, string>())));
    for (const v of views) if (names.some((m) => v.get(m) !== 'alive')) return false;
  }
  return true;
}

async function converge(what: string, view: (n: string) => Promise<Map<string, string>>, timeoutMs = 120_000): Promise<number> {
  const start = Date.now();
  while (!(await allSeeAllAlive(view))) {
    if (Date.now() - start > timeoutMs) throw new Error(`${what}: not all ${N} members see ${N} alive after ${timeoutMs / 1000} s`);
    await sleep(1000);
  }
  return Date.now() - start;
}

function median(xs: (number | null)[]): number | null {
  const v = xs.filter((x): x is number => x !== null).sort((p, q) => p - q);
  if (v.length === 0) return null;
  const mid = Math.floor(v.length / 2);
  return v.length % 2 ? v[mid]! : Math.round((v[mid - 1]! + v[mid]!) / 2);
}

/**
 * Per survivor, the first `failed` about `victim` at/after `since`: {all: last of those - since,
 * first}; suspect: the first suspicion raised by a prober's own failed probe (serf logs only
 * those; ours: by === observer), which splits detection into "first suspicion" + "suspicion timeout".
 */
function detection(events: (ObservedEvent & { by?: string })[], victim: string, since: number): { all: number | null; first: number | null; suspect: number | null; seen: number } {
  const first = new Map<string, number>();
  for (const e of events) {
    if (e.kind !== 'failed' || e.name !== victim || e.at < since || e.observer === victim) continue;
    if (!first.has(e.observer)) first.set(e.observer, e.at);
  }
  const ts = [...first.values()];
  const sus = events.filter((e) => e.kind === 'suspect' && e.name === victim && e.at >= since && (e.by === undefined || e.by === e.observer)).map((e) => e.at);
  return {
    all: first.size >= N - 1 ? Math.max(...ts) - since : null,
    first: ts.length ? Math.min(...ts) - since : null,
    suspect: sus.length ? Math.min(...sus) - since : null,
    seen: first.size,
  };
}

const fmt = (x: number | null): string => (x === null ? 'n/a' : `${x} ms`);

// ---------------------------------------------------------------- main

interface Result {
  [k: string]: unknown;
}

async function main(): Promise<Result> {
  const canAcct = IptablesAccounting.available();
  say(`membership compare: N=${N} trials=${TRIALS} profile=${PROFILE} serf=${SKIP_SERF ? 'skipped' : 'yes'} starved=${STARVED_S}s (${STOP_MS}/${PERIOD_MS} ms stop/period)`);
  log(`creating ${N} agents of ours (gossip profile ${PROFILE}, no overrides)`);
  ours = await Cluster.create({ nodes: names, gossip: { profile: PROFILE }, logLevel: 'info' });
  const oursPrefix = ours.node('n1').ip.split('.').slice(0, 3).join('.');
  if (!SKIP_SERF) {
    let p: string;
    do p = `127.${randomInt(1, 250)}.${randomInt(1, 250)}`; while (p === oursPrefix);
    serfDir = mkdtempSync(join(tmpdir(), 'multiall-serf-'));
    serf = new SerfCluster(serfDir, `${p}.`, names, PROFILE);
  }
  if (canAcct) {
    acct.add('ours', names.map((n) => ours!.node(n).ip));
    if (serf) acct.add('serf', names.map((n) => serf!.node(n).ip));
  } else {
    log('no root/iptables: byte accounting by iptables skipped');
  }

  const startT = Date.now();
  for (let i = 0; i < N; i += 5) {
    await Promise.all(names.slice(i, i + 5).map((n) => ours!.start(n, 60_000)));
    log(`ours: ${Math.min(N, i + 5)}/${N} started`);
  }
  for (const n of names) follow(n);
  if (serf) {
    const seeds = (self: string): string[] => names.filter((x) => x !== self).slice(0, 3);
    for (let i = 0; i < N; i += 10) await Promise.all(names.slice(i, i + 10).map((n) => serf!.start(n, seeds(n))));
    log(`serf: ${N}/${N} started`);
  }
  await converge('ours', oursView);
  log(`ours converged (${((Date.now() - startT) / 1000).toFixed(1)} s after first start)`);
  if (serf) {
    await converge('serf', (n) => serf!.members(n));
    log('serf converged');
  }

  // ---- 1. steady-state bytes and CPU
  log('settling 10 s, then measuring steady-state traffic');
  await sleep(10_000);
  const serfPid = (n: string): number | undefined => serf?.pid(n);
  const cpu0 = { ours: names.map((n) => cpuSeconds(oursPid(n))), serf: names.map((n) => cpuSeconds(serfPid(n))) };
  const b0 = acct.read();
  const m0 = await Promise.all(names.map(async (n) => (await metric(n, 'multiall_gossip_bytes_sent')) + (await metric(n, 'multiall_gossip_bytes_received'))));
  const w0 = Date.now();
  await sleep(BYTES_S * 1000);
  // prom-client resets the event-loop delay histogram at each scrape: this p99 covers the window.
  const lagP99 = Math.max(...(await Promise.all(names.map((n) => metric(n, 'multiall_process_nodejs_eventloop_lag_p99_seconds')))).filter(Number.isFinite));
  const b1 = acct.read();
  const m1 = await Promise.all(names.map(async (n) => (await metric(n, 'multiall_gossip_bytes_sent')) + (await metric(n, 'multiall_gossip_bytes_received'))));
  const secs = (Date.now() - w0) / 1000;
  const cpu1 = { ours: names.map((n) => cpuSeconds(oursPid(n))), serf: names.map((n) => cpuSeconds(serfPid(n))) };
  const perMember = (g: string): { total: number | null; udp: number | null; tcp: number | null } => {
    const x = b0.get(g);
    const y = b1.get(g);
    if (!x || !y) return { total: null, udp: null, tcp: null };
    const f = (v: number): number => Math.round(v / N / secs);
    return { total: f(y.udp + y.tcp - x.udp - x.tcp), udp: f(y.udp - x.udp), tcp: f(y.tcp - x.tcp) };
  };
  const oursBytes = perMember('ours');
  const serfBytes = perMember('serf');
  // our gauges count each byte once as sent and once as received: halve for "per member".
  const oursMetricBytes = Math.round(m1.reduce((s, v, i) => s + v - (m0[i] ?? 0), 0) / 2 / N / secs);
  const cpuPct = (x: number[], y: number[]): number => +((100 * y.reduce((s, v, i) => s + v - (x[i] ?? 0), 0)) / N / secs).toFixed(2);
  const oursCpu = cpuPct(cpu0.ours, cpu1.ours);
  const serfCpu = serf ? cpuPct(cpu0.serf, cpu1.serf) : null;
  const oursRss = Math.round(names.reduce((s, n) => s + rssMiB(oursPid(n)), 0) / N);
  const serfRss = serf ? Math.round(names.reduce((s, n) => s + rssMiB(serfPid(n)), 0) / N) : null;
  say(`bytes/member/s over ${secs.toFixed(1)} s (iptables, IP level, UDP+TCP): ours ${oursBytes.total} (udp ${oursBytes.udp}, tcp ${oursBytes.tcp})` +
    `  serf ${serfBytes.total} (udp ${serfBytes.udp}, tcp ${serfBytes.tcp});  ours by own gauges (payload): ${oursMetricBytes}`);
  say(`cpu per agent: ours ${oursCpu} %  serf ${serfCpu ?? 'n/a'} %;  rss per agent: ours ${oursRss} MiB  serf ${serfRss ?? 'n/a'} MiB;  ours max event-loop lag p99 ${(lagP99 * 1000).toFixed(1)} ms`);

  // ---- 2. detection trials
  const trials: { victim: string; ours: ReturnType<typeof detection>; serf?: ReturnType<typeof detection>; serfHandler?: number | null }[] = [];
  for (let t = 0; t < TRIALS; t++) {
    const victim = names[(1 + t) % N]!;
    const killAt = Date.now();
    await Promise.all([ours.kill(victim), serf?.kill(victim)]);
    const deadline = killAt + DETECT_TIMEOUT;
    let od = detection(oursEvents, victim, killAt);
    let sd = serf ? detection(serf.events, victim, killAt) : undefined;
    while ((od.all === null || (sd && sd.all === null)) && Date.now() < deadline) {
      await sleep(200);
      od = detection(oursEvents, victim, killAt);
      if (serf) sd = detection(serf.events, victim, killAt);
    }
    let serfHandler: number | null | undefined;
    if (serf) {
      // The agent's member-failed handler runs after serf's event coalescing (quiescent 1 s, max 3 s).
      const handlerAll = (): number | null => {
        const ts = names.filter((n) => n !== victim).map((o) => serf!.handlerFailed(o).find((e) => e.name === victim && e.at >= killAt)?.at);
        return ts.every((x) => x !== undefined) ? Math.max(...(ts as number[])) - killAt : null;
      };
      const hDeadline = Date.now() + 8000;
      while ((serfHandler = handlerAll()) === null && Date.now() < hDeadline && sd?.all !== null) await sleep(200);
    }
    trials.push({ victim, ours: od, serf: sd, serfHandler });
    say(`trial ${t + 1}/${TRIALS} kill -9 ${victim}: ours all ${fmt(od.all)} (first ${fmt(od.first)}, first suspicion ${fmt(od.suspect)}, ${od.seen}/${N - 1})` +
      (sd ? `  serf all ${fmt(sd.all)} (first ${fmt(sd.first)}, first suspicion ${fmt(sd.suspect)}, ${sd.seen}/${N - 1}; handler ${fmt(serfHandler ?? null)})` : ''));
    // Restart the victim on both sides and wait for full convergence.
    await ours.start(victim, 60_000);
    follow(victim);
    if (serf) await serf.start(victim, names.filter((x) => x !== victim).slice(0, 3));
    const co = await converge('ours after restart', oursView);
    const cs = serf ? await converge('serf after restart', (n) => serf!.members(n)) : 0;
    log(`  restarted ${victim}; converged (ours ${co} ms, serf ${cs} ms after the check started)`);
    await sleep(2000);
  }

  // ---- 3. CPU starvation
  let starvation: Result = {};
  if (STARVED_S > 0) {
    const starved = names[N - 1]!;
    log(`starving ${starved} on both sides for ${STARVED_S} s: SIGSTOP ${STOP_MS} ms every ${PERIOD_MS} ms`);
    const sStart = Date.now();
    const end = sStart + STARVED_S * 1000;
    let cycles = 0;
    try {
      while (Date.now() < end) {
        ours.signal(starved, 'SIGSTOP');
        serf?.signal(starved, 'SIGSTOP');
        await sleep(STOP_MS);
        ours.signal(starved, 'SIGCONT');
        serf?.signal(starved, 'SIGCONT');
        cycles++;
        await sleep(PERIOD_MS - STOP_MS);
      }
    } finally {
      ours.signal(starved, 'SIGCONT');
      serf?.signal(starved, 'SIGCONT');
    }
    const sEnd = Date.now();
    log(`  ${cycles} stop/cont cycles; watching ${GRACE_S} s more for late declarations`);
    await sleep(GRACE_S * 1000);
    const count = (evs: (ObservedEvent & { by?: string })[], isOurs: boolean): Result => {
      const win = evs.filter((e) => e.at >= sStart && e.at <= sEnd + GRACE_S * 1000);
      const fp = win.filter((e) => e.kind === 'failed' && e.name !== starved);
      const starvedDead = new Set(win.filter((e) => e.kind === 'failed' && e.name === starved).map((e) => e.observer));
      // "Suspicions raised": a prober's failed probe (serf logs it only on the prober; ours: by === observer).
      const raised = win.filter((e) => e.kind === 'suspect' && (!isOurs || e.by === e.observer));
      return {
        false_positives: fp.length,
        false_positive_pairs: [...new Set(fp.map((e) => `${e.observer}->${e.name}`))].slice(0, 10),
        starved_declared_dead_by: starvedDead.size,
        suspicions_of_healthy: raised.filter((e) => e.name !== starved).length,
        suspicions_of_starved: raised.filter((e) => e.name === starved).length,
        suspicions_raised_by_starved: raised.filter((e) => e.observer === starved).length,
      };
    };
    const so = count(oursEvents, true);
    const ss = serf ? count(serf.events, false) : undefined;
    say(`starvation ${STARVED_S} s of ${starved} (${STOP_MS}/${PERIOD_MS} ms): ours ${JSON.stringify(so)}`);
    if (ss) say(`starvation serf: ${JSON.stringify(ss)}`);
    const after = await converge('ours after starvation', oursView, 60_000).then(() => true, () => false);
    const afterSerf = serf ? await converge('serf after starvation', (n) => serf!.members(n), 60_000).then(() => true, () => false) : null;
    say(`after starvation everyone alive everywhere: ours ${after} serf ${afterSerf ?? 'n/a'}`);
    starvation = { starved, cycles, ours: so, serf: ss ?? null, reconverged: { ours: after, serf: afterSerf } };
  }

  await cleanup();

  // ---- 4. simulation
  const sim: Result[] = [];
  if (a.sim) {
    for (const size of a['sim-sizes'].split(',').map(Number)) {
      log(`sim: ${size} members, ${a['sim-duration']} s simulated`);
      const r = await runSim(size);
      if (r) {
        const d = r.detection as Record<string, unknown>;
        const p = r.perMemberPerSecond as Record<string, number>;
        const w = r.wallSeconds as Record<string, number>;
        say(`sim N=${size}: detection first ${Math.round(Number(d.firstMs))} ms, all ${Math.round(Number(d.allMs))} ms` +
          ` (suspicion min ${String(d.suspicionMinMs)} ms); false positives ${JSON.stringify(r.falsePositives)}; per member/s ${p.packets} pkts` +
          ` ${p.udpBytes} B udp + ${p.streamBytes} B tcp; wall ${w.total} s`);
        sim.push({ members: size, first_ms: Math.round(Number(d.firstMs)), all_ms: d.allMs === null ? null : Math.round(Number(d.allMs)), false_positives: r.falsePositives, udp_bytes_per_member_s: p.udpBytes, stream_bytes_per_member_s: p.streamBytes });
      } else {
        say(`sim N=${size}: failed or timed out`);
        sim.push({ members: size, error: true });
      }
    }
  }

  const oursMed = median(trials.map((t) => t.ours.all));
  const serfMed = serf ? median(trials.map((t) => t.serf?.all ?? null)) : null;
  const serfHandlerMed = serf ? median(trials.map((t) => t.serfHandler ?? null)) : null;
  const so = starvation.ours as Result | undefined;
  const ss = starvation.serf as Result | undefined;
  say(`detection-to-everyone median: ours ${fmt(oursMed)}  serf ${fmt(serfMed)} (serf handler ${fmt(serfHandlerMed)})` +
    (oursMed !== null && serfMed ? `  ratio ours/serf ${(oursMed / serfMed).toFixed(2)}` : ''));
  return {
    bench: 'membership', n: N, trials: TRIALS, profile: PROFILE,
    ours_detect_ms: oursMed,
    serf_detect_ms: serfMed,
    ratio: oursMed !== null && serfMed ? +(oursMed / serfMed).toFixed(2) : null,
    false_positives: so?.false_positives ?? null,
    serf_false_positives: ss?.false_positives ?? null,
    bytes_per_member_s: oursBytes.total,
    serf_bytes_per_member_s: serfBytes.total,
    ours_first_detect_ms: median(trials.map((t) => t.ours.first)),
    serf_first_detect_ms: serf ? median(trials.map((t) => t.serf?.first ?? null)) : null,
    ours_first_suspicion_ms: median(trials.map((t) => t.ours.suspect)),
    serf_first_suspicion_ms: serf ? median(trials.map((t) => t.serf?.suspect ?? null)) : null,
    serf_handler_detect_ms: serfHandlerMed,
    incomplete_trials: { ours: trials.filter((t) => t.ours.all === null).length, serf: serf ? trials.filter((t) => t.serf?.all === null).length : null },
    trials_ms: trials.map((t) => ({ victim: t.victim, ours: t.ours.all, serf: t.serf?.all ?? null, serf_handler: t.serfHandler ?? null })),
    starved_declared_dead_by: so?.starved_declared_dead_by ?? null,
    serf_starved_declared_dead_by: ss?.starved_declared_dead_by ?? null,
    starvation,
    bytes_detail: { ours: oursBytes, serf: serfBytes, ours_gauges_payload: oursMetricBytes, window_s: +secs.toFixed(1) },
    cpu_pct_per_agent: { ours: oursCpu, serf: serfCpu },
    rss_mib_per_agent: { ours: oursRss, serf: serfRss },
    ours_eventloop_lag_p99_ms: +(lagP99 * 1000).toFixed(1),
    sim,
  };
}

function runSim(size: number): Promise<Result | null> {
  return new Promise((resolve) => {
    const script = new URL('./sim.ts', import.meta.url).pathname;
    // Large simulated clusters need a bigger heap (5,000 members took 5.4 GiB; see docs/membership.md).
    const heap = size > 2000 ? [`--max-old-space-size=${Math.min(16_000, Math.ceil(size * 1.4))}`] : [];
    const p = spawn(process.execPath, [...heap, '--no-warnings=ExperimentalWarning', script, '--members', String(size), '--duration', a['sim-duration'], '--profile', PROFILE, '--quiet'], { stdio: ['ignore', 'pipe', 'inherit'] });
    simChild = p;
    let out = '';
    p.stdout.on('data', (c: Buffer) => (out += c.toString()));
    const timer = setTimeout(() => p.kill('SIGKILL'), 15 * 60_000);
    p.on('close', () => {
      clearTimeout(timer);
      simChild = undefined;
      const last = out.trim().split('\n').pop() ?? '';
      try {
        resolve(JSON.parse(last) as Result);
      } catch {
        resolve(null);
      }
    });
  });
}

try {
  const result = await main();
  console.log(JSON.stringify(result));
} catch (err) {
  log(`error: ${(err as Error).stack ?? String(err)}`);
  process.exitCode = 1;
} finally {
  await cleanup();
}
