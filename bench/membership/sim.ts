/**
 * Membership simulation benchmark: the real Memberlist code, N members on a virtual clock.
 *
 *   node bench/membership/sim.ts --members 1000 --duration 30 [--loss 0.01] [--profile lan]
 *        [--join] [--seed 1] [--latency 1] [--jitter 2] [--slow 0] [--warmup 5] [--name-width 5]
 *
 * Scenario: start a converged cluster (or --join: everyone joins member 0 through the protocol),
 * warm up, then at t0 crash one member and 1 s later change another member's metadata. Reports
 * failure detection (first detector, all members), dissemination of the update (99.9 %, 100 %),
 * false positives and load per member, both in the measurement window and in a quiet stretch of
 * the warmup (from 2 s on, no membership change); last line of output is JSON.
 * Members are named n00000, n00001, … (--name-width; 0 = n0, n1, …) so that byte counts do not
 * grow with N just because names get longer.
 */
import { benchArgs, numberArg, usageError } from '../args.ts';
import { profileConfig, retransmitLimit, suspicionTimeout, type ConfigProfile } from '../../src/membership/config.ts';
import { SimCluster } from '../../src/membership/sim.ts';
import type { MemberEvent } from '../../src/membership/memberlist.ts';

const USAGE = 'node bench/membership/sim.ts --members 1000 --duration 30 [--loss 0.01] [--profile lan|wan|local] [--join] [--seed 1] [--latency 1] [--jitter 2] [--slow 0] [--warmup 5] [--name-width 5] [--quiet]';
const { values: a } = benchArgs({
  options: {
    members: { type: 'string', default: '1000' },
    duration: { type: 'string', default: '30' },
    warmup: { type: 'string', default: '5' },
    loss: { type: 'string', default: '0' },
    latency: { type: 'string', default: '1' },
    jitter: { type: 'string', default: '2' },
    profile: { type: 'string', default: 'lan' },
    seed: { type: 'string', default: '1' },
    slow: { type: 'string', default: '0' },
    'name-width': { type: 'string', default: '5' },
    join: { type: 'boolean', default: false },
    quiet: { type: 'boolean', default: false },
  },
}, USAGE);

const N = numberArg('--members', a.members, USAGE, { min: 3 });
const duration = numberArg('--duration', a.duration, USAGE, { min: 1, fraction: true }) * 1000;
const warmup = numberArg('--warmup', a.warmup, USAGE, { fraction: true }) * 1000;
const profile = a.profile as ConfigProfile;
if (!['lan', 'wan', 'local'].includes(profile)) usageError('--profile must be lan, wan or local', USAGE);
const cfg = profileConfig(profile);
const log = (s: string): void => {
  if (!a.quiet) console.error(s);
};

const nameWidth = numberArg('--name-width', a['name-width'], USAGE);
const nameOf = (i: number): string => `n${String(i).padStart(nameWidth, '0')}`;
const victim = 1;
const updater = 2;
const slowCount = numberArg('--slow', a.slow, USAGE); // members with 300 ms event-loop lag during the run
const seed = numberArg('--seed', a.seed, USAGE);
const loss = numberArg('--loss', a.loss, USAGE, { fraction: true });
if (loss >= 1) usageError('--loss must be below 1', USAGE);
const latency = numberArg('--latency', a.latency, USAGE, { fraction: true });
const jitter = numberArg('--jitter', a.jitter, USAGE, { fraction: true });
let recording = false;
let t0 = 0;
let tUpdate = 0;
const failedSeen = new Map<number, number>(); // observer -> time it marked the victim failed
const updateSeen = new Map<number, number>();
let falseFailed = 0;
let falseSuspect = 0;
const killed = new Set<string>([nameOf(victim)]);

const onEvent = (i: number, ev: MemberEvent): void => {
  if (!recording) return;
  const now = cluster.clock.now();
  const who = ev.member.name;
  if (ev.kind === 'failed') {
    if (who === nameOf(victim)) {
      if (!failedSeen.has(i)) failedSeen.set(i, now - t0);
    } else if (!killed.has(who)) falseFailed++;
  } else if (ev.kind === 'suspect' && !killed.has(who)) {
    falseSuspect++;
  } else if (ev.kind === 'updated' && who === nameOf(updater) && tUpdate > 0) {
    if (!updateSeen.has(i)) updateSeen.set(i, now - tUpdate);
  }
};

const wall0 = performance.now();
const cluster = new SimCluster({
  size: N, seed, loss, latency, jitter,
  config: cfg, onEvent, name: nameOf,
});
await cluster.startAll();
if (a.join) {
  log(`joining ${N} members through member 0 ...`);
  await cluster.joinAll(Math.max(1000, N * 2));
} else {
  cluster.bootstrapConverged();
}
const wallSetup = performance.now() - wall0;
log(`setup ${(wallSetup / 1000).toFixed(1)} s; warmup ${warmup / 1000} s`);
// Quiet load: the warmup after its first 2 s (members' own start-up announcements are done).
const quietFrom = Math.min(2000, warmup / 2);
await cluster.run(quietFrom);
const q0 = { ...cluster.net.counters };
await cluster.run(warmup - quietFrom);
const q1 = { ...cluster.net.counters };
const quietS = (warmup - quietFrom) / 1000;
const views = cluster.liveViews();
const converged = views.filter((v) => v === N - 1).length;
log(`converged views after warmup: ${converged}/${N}`);
for (let s = 0; s < slowCount; s++) cluster.net.setSlow(cluster.members[10 + s]?.localMember().addr ?? '', 300);

// Measurement window.
const c0 = { ...cluster.net.counters };
const mem0 = process.memoryUsage().rss;
recording = true;
t0 = cluster.clock.now();
await cluster.kill(victim);
await cluster.run(1000);
tUpdate = cluster.clock.now();
cluster.members[updater]?.setMeta({ version: 2, role: 'web' });
const wallRun0 = performance.now();
const chunk = 1000;
for (let t = 1000; t < duration; t += chunk) {
  await cluster.run(Math.min(chunk, duration - t));
  if (!a.quiet && (t / chunk) % 5 === 0) log(`  t=${((t + chunk) / 1000).toFixed(0)} s detected=${failedSeen.size} updated=${updateSeen.size} wall=${((performance.now() - wall0) / 1000).toFixed(1)} s`);
}
const wallRun = performance.now() - wallRun0;
const windowS = (cluster.clock.now() - t0) / 1000;
const c1 = cluster.net.counters;

const observers = N - 1; // everyone but the victim
const pct = (m: Map<number, number>, p: number): number | null => {
  const need = Math.ceil(p * (m === updateSeen ? observers - 1 : observers)); // updater itself doesn't emit
  if (m.size < need) return null;
  return [...m.values()].sort((x, y) => x - y)[need - 1] ?? null;
};
const fanout = cfg.gossipNodes;
// Serf's logistic epidemic model: rounds until 99.9 % infected.
const epidemicRounds = Math.log((N + 1) / (1 / 0.999 - 1)) / (fanout / 2);
const sMin = suspicionTimeout(cfg.suspicionMult, N, cfg.probeInterval);
const t999 = pct(updateSeen, 0.999);
const result = {
  members: N,
  profile,
  loss,
  join: a.join,
  simulatedSeconds: windowS,
  convergedAfterWarmup: converged,
  detection: {
    firstMs: failedSeen.size ? Math.min(...failedSeen.values()) : null,
    allMs: pct(failedSeen, 1),
    p999Ms: pct(failedSeen, 0.999),
    detectedBy: failedSeen.size,
    suspicionMinMs: sMin,
    suspicionMaxMs: cfg.suspicionMaxTimeoutMult * sMin,
  },
  dissemination: {
    p999Ms: t999,
    allMs: pct(updateSeen, 1),
    p999Rounds: t999 === null ? null : +(t999 / cfg.gossipInterval).toFixed(1),
    reached: updateSeen.size,
    theoryLogFanoutRounds: Math.ceil(Math.log(N) / Math.log(fanout)),
    /** The target: 99.9 % reached within 1.5 × ceil(log_fanout N) gossip rounds. */
    within1_5xLogRounds: t999 === null ? false : t999 / cfg.gossipInterval <= 1.5 * Math.ceil(Math.log(N) / Math.log(fanout)),
    theoryEpidemicRounds999: +epidemicRounds.toFixed(1),
    retransmitLimit: retransmitLimit(cfg.retransmitMult, N),
  },
  falsePositives: { failed: falseFailed, suspect: falseSuspect },
  quietPerMemberPerSecond: {
    packets: +((q1.packets - q0.packets) / N / quietS).toFixed(2),
    udpBytes: Math.round((q1.bytes - q0.bytes) / N / quietS),
    streamBytes: Math.round((q1.streamBytes - q0.streamBytes) / N / quietS),
  },
  perMemberPerSecond: {
    packets: +((c1.packets - c0.packets) / N / windowS).toFixed(2),
    udpBytes: Math.round((c1.bytes - c0.bytes) / N / windowS),
    streamBytes: Math.round((c1.streamBytes - c0.streamBytes) / N / windowS),
    streams: +((c1.streams - c0.streams) / N / windowS).toFixed(3),
  },
  droppedPackets: c1.dropped - c0.dropped,
  wallSeconds: { setup: +(wallSetup / 1000).toFixed(1), run: +(wallRun / 1000).toFixed(1), total: +((performance.now() - wall0) / 1000).toFixed(1) },
  rssMiB: Math.round(Math.max(mem0, process.memoryUsage().rss) / 1048576),
};
console.log(JSON.stringify(result));
